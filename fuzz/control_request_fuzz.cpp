// libFuzzer target: the control socket's message decoders (src/control/protocol.h). The input is
// one received message. It is decoded as a request (as the server does) and as a reply (as the
// client does); whatever decodes must encode back to the same bytes, and the error reply the
// server would send for it must itself decode. Crashes, sanitizer reports and broken round
// trips are bugs; refusals are not.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "control/protocol.h"
#include "fuzz_check.h"

using namespace crosvm::control;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> msg(data, size);
  Request req;
  DecodeError err;
  uint16_t type = 0;
  uint32_t id = 0;
  Reply reply;
  std::string error;
  if (DecodeRequest(msg, false, &req, &err)) {
    auto again = EncodeRequest(req);
    FUZZ_CHECK(again.size() == size && std::equal(again.begin(), again.end(), data));
    // The handler's answer, whatever it is, goes out as a well-formed reply.
    auto out = EncodeReply(static_cast<uint16_t>(req.type()), req.id, Reply::Ok({}, "ok"));
    FUZZ_CHECK(DecodeReply(out, &type, &id, &reply, &error));
    FUZZ_CHECK(id == req.id);
  } else {
    FUZZ_CHECK(!err.message.empty());
    auto out = EncodeReply(err.type, err.request_id, Reply::Error(err.code, err.message));
    FUZZ_CHECK(out.size() <= kMaxMessageSize);
    FUZZ_CHECK(DecodeReply(out, &type, &id, &reply, &error));
    FUZZ_CHECK(reply.status == err.code);
  }
  if (DecodeReply(msg, &type, &id, &reply, &error)) {
    FUZZ_CHECK(reply.message.size() <= kMaxReplyMessageBytes);
    auto again = EncodeReply(type, id, reply);
    FUZZ_CHECK(again.size() == size && std::equal(again.begin(), again.end(), data));
  }
  return 0;
}
