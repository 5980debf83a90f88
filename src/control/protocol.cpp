#include "control/protocol.h"

#include <cstring>

namespace crosvm::control {
namespace {

class Writer {
 public:
  void U16(uint16_t v) { Le(v, 2); }
  void U32(uint32_t v) { Le(v, 4); }
  void U64(uint64_t v) { Le(v, 8); }
  void Bytes(const void* p, size_t n) {
    auto* b = static_cast<const uint8_t*>(p);
    out_.insert(out_.end(), b, b + n);
  }
  std::vector<uint8_t>& out() { return out_; }

 private:
  void Le(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out_.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  std::vector<uint8_t> out_;
};

// Reads little-endian fields; any read past the end sets failed() and returns 0.
class Reader {
 public:
  explicit Reader(std::span<const uint8_t> data) : data_(data) {}
  uint16_t U16() { return static_cast<uint16_t>(Le(2)); }
  uint32_t U32() { return static_cast<uint32_t>(Le(4)); }
  uint64_t U64() { return Le(8); }
  bool Bytes(void* out, size_t n) {
    if (failed_ || data_.size() - pos_ < n) return failed_ = true, false;
    std::memcpy(out, data_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  size_t remaining() const { return data_.size() - pos_; }
  bool failed() const { return failed_; }

 private:
  uint64_t Le(size_t n) {
    if (failed_ || data_.size() - pos_ < n) {
      failed_ = true;
      return 0;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v |= uint64_t{data_[pos_ + i]} << (8 * i);
    pos_ += n;
    return v;
  }
  std::span<const uint8_t> data_;
  size_t pos_ = 0;
  bool failed_ = false;
};

void WriteHeader(Writer& w, uint16_t type, uint32_t payload_len, uint32_t id) {
  w.Bytes(kMagic, 4);
  w.U16(kProtocolVersion);
  w.U16(type);
  w.U32(payload_len);
  w.U32(id);
}

// Fills the header length once the payload is written.
void PatchLength(std::vector<uint8_t>& out) {
  uint32_t len = static_cast<uint32_t>(out.size() - kHeaderSize);
  for (int i = 0; i < 4; ++i) out[8 + i] = static_cast<uint8_t>(len >> (8 * i));
}

struct Header {
  uint16_t version, type;
  uint32_t length, id;
};

// Checks magic, version and length against the message; `what` is "request" or "reply".
bool ReadHeader(std::span<const uint8_t> msg, Header* h, std::string* error, StatusCode* code) {
  *code = StatusCode::kMalformed;
  if (msg.size() < kHeaderSize) {
    *error = "truncated header (" + std::to_string(msg.size()) + " of " +
             std::to_string(kHeaderSize) + " bytes)";
    return false;
  }
  Reader r(msg);
  uint8_t magic[4];
  r.Bytes(magic, 4);
  h->version = r.U16();
  h->type = r.U16();
  h->length = r.U32();
  h->id = r.U32();
  if (std::memcmp(magic, kMagic, 4) != 0) {
    *error = "bad magic (not a crosvm control message)";
    h->type = 0;
    h->id = 0;
    return false;
  }
  if (h->version != kProtocolVersion) {
    *code = StatusCode::kUnsupportedVersion;
    *error = "protocol version " + std::to_string(h->version) + " is not supported (this is " +
             std::to_string(kProtocolVersion) + ")";
    return false;
  }
  if (h->length != msg.size() - kHeaderSize) {
    *error = "payload length " + std::to_string(h->length) + " does not match the message (" +
             std::to_string(msg.size() - kHeaderSize) + " bytes)";
    return false;
  }
  return true;
}

std::optional<RequestType> KnownType(uint16_t t) {
  if (t >= static_cast<uint16_t>(RequestType::kPing) &&
      t <= static_cast<uint16_t>(RequestType::kDiskResize))
    return static_cast<RequestType>(t);
  return std::nullopt;
}

size_t RequestPayloadSize(RequestType t) {
  switch (t) {
    case RequestType::kBalloonSetTarget:
      return 8;
    case RequestType::kDiskResize:
      return 12;
    default:
      return 0;
  }
}

}  // namespace

const char* StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return "ok";
    case StatusCode::kMalformed:
      return "malformed request";
    case StatusCode::kUnsupportedVersion:
      return "unsupported protocol version";
    case StatusCode::kUnknownType:
      return "unknown request type";
    case StatusCode::kTooLarge:
      return "message too large";
    case StatusCode::kPermissionDenied:
      return "permission denied";
    case StatusCode::kBusy:
      return "busy";
    case StatusCode::kInvalidState:
      return "invalid state";
    case StatusCode::kInvalidArgument:
      return "invalid argument";
    case StatusCode::kUnavailable:
      return "unavailable";
    case StatusCode::kFailed:
      return "failed";
    case StatusCode::kInternal:
      return "internal error";
  }
  return "unknown status";
}

RequestType Request::type() const {
  // The variant's alternatives are in RequestType order, starting at kPing = 1.
  return static_cast<RequestType>(body.index() + 1);
}

size_t ExpectedReplyBodyIndex(RequestType type) {
  switch (type) {
    case RequestType::kPing:
      return 1;
    case RequestType::kBalloonSetTarget:
      return 2;
    case RequestType::kBalloonStats:
      return 3;
    default:
      return 0;
  }
}

std::vector<uint8_t> EncodeRequest(const Request& request) {
  Writer w;
  WriteHeader(w, static_cast<uint16_t>(request.type()), 0, request.id);
  if (auto* b = std::get_if<BalloonSetTarget>(&request.body)) {
    w.U64(b->bytes);
  } else if (auto* d = std::get_if<DiskResize>(&request.body)) {
    w.U32(d->index);
    w.U64(d->new_size);
  }
  PatchLength(w.out());
  return std::move(w.out());
}

bool DecodeRequest(std::span<const uint8_t> msg, bool truncated, Request* out, DecodeError* err) {
  *err = DecodeError{};
  if (truncated || msg.size() > kMaxMessageSize) {
    err->code = StatusCode::kTooLarge;
    err->message = "request larger than " + std::to_string(kMaxMessageSize) + " bytes";
    return false;
  }
  Header h{};
  if (!ReadHeader(msg, &h, &err->message, &err->code)) {
    if (msg.size() >= kHeaderSize) {
      err->type = h.type;
      err->request_id = h.id;
    }
    return false;
  }
  err->type = h.type;
  err->request_id = h.id;
  if (h.type & kReplyBit) {
    err->message = "type " + std::to_string(h.type) + " is a reply, not a request";
    return false;
  }
  auto type = KnownType(h.type);
  if (!type) {
    err->code = StatusCode::kUnknownType;
    err->message = "unknown request type " + std::to_string(h.type);
    return false;
  }
  if (h.length != RequestPayloadSize(*type)) {
    err->message = "request type " + std::to_string(h.type) + " takes a " +
                   std::to_string(RequestPayloadSize(*type)) + "-byte payload, not " +
                   std::to_string(h.length);
    return false;
  }
  Reader r(msg.subspan(kHeaderSize));
  out->id = h.id;
  switch (*type) {
    case RequestType::kPing:
      out->body = Ping{};
      break;
    case RequestType::kStop:
      out->body = Stop{};
      break;
    case RequestType::kSuspend:
      out->body = Suspend{};
      break;
    case RequestType::kResume:
      out->body = Resume{};
      break;
    case RequestType::kBalloonSetTarget:
      out->body = BalloonSetTarget{r.U64()};
      break;
    case RequestType::kBalloonStats:
      out->body = BalloonStats{};
      break;
    case RequestType::kDiskResize: {
      DiskResize d;
      d.index = r.U32();
      d.new_size = r.U64();
      out->body = d;
      break;
    }
  }
  return !r.failed();
}

std::vector<uint8_t> EncodeReply(uint16_t type, uint32_t request_id, const Reply& reply_in) {
  Reply reply = reply_in;
  auto known = KnownType(type & ~kReplyBit);
  if (reply.status == StatusCode::kOk) {
    size_t want = known ? ExpectedReplyBodyIndex(*known) : 0;
    if (reply.body.index() != want) {
      reply = Reply::Error(StatusCode::kInternal, "the handler's reply does not fit the request");
    } else if (auto* s = std::get_if<BalloonStatsInfo>(&reply.body);
               s && s->stats.size() > kMaxBalloonStats) {
      s->stats.resize(kMaxBalloonStats);
    }
  } else {
    reply.body = std::monostate{};
  }
  if (reply.message.size() > kMaxReplyMessageBytes) reply.message.resize(kMaxReplyMessageBytes);

  Writer w;
  WriteHeader(w, static_cast<uint16_t>(type | kReplyBit), 0, request_id);
  w.U32(static_cast<uint32_t>(reply.status));
  w.U32(static_cast<uint32_t>(reply.message.size()));
  w.Bytes(reply.message.data(), reply.message.size());
  if (auto* v = std::get_if<VersionInfo>(&reply.body)) {
    w.U16(v->protocol_version);
    w.U16(0);
    w.U32(v->pid);
  } else if (auto* b = std::get_if<BalloonState>(&reply.body)) {
    w.U64(b->target_bytes);
    w.U64(b->actual_bytes);
  } else if (auto* s = std::get_if<BalloonStatsInfo>(&reply.body)) {
    w.U64(s->state.target_bytes);
    w.U64(s->state.actual_bytes);
    w.U32(static_cast<uint32_t>(s->stats.size()));
    for (const auto& st : s->stats) {
      w.U16(st.tag);
      w.U64(st.value);
    }
  }
  PatchLength(w.out());
  return std::move(w.out());
}

bool DecodeReply(std::span<const uint8_t> msg, uint16_t* type, uint32_t* request_id, Reply* out,
                 std::string* error) {
  if (msg.size() > kMaxMessageSize) {
    *error = "reply larger than " + std::to_string(kMaxMessageSize) + " bytes";
    return false;
  }
  Header h{};
  StatusCode code;
  if (!ReadHeader(msg, &h, error, &code)) return false;
  *type = h.type;
  *request_id = h.id;
  if (!(h.type & kReplyBit)) {
    *error = "type " + std::to_string(h.type) + " is not a reply";
    return false;
  }
  Reader r(msg.subspan(kHeaderSize));
  uint32_t status = r.U32();
  uint32_t msg_len = r.U32();
  if (r.failed()) {
    *error = "truncated reply status";
    return false;
  }
  if (status > static_cast<uint32_t>(StatusCode::kInternal)) {
    *error = "unknown status code " + std::to_string(status);
    return false;
  }
  if (msg_len > kMaxReplyMessageBytes || msg_len > r.remaining()) {
    *error = "bad message length " + std::to_string(msg_len);
    return false;
  }
  Reply reply;
  reply.status = static_cast<StatusCode>(status);
  reply.message.resize(msg_len);
  r.Bytes(reply.message.data(), msg_len);
  auto known = KnownType(h.type & ~kReplyBit);
  size_t want = (reply.status == StatusCode::kOk && known) ? ExpectedReplyBodyIndex(*known) : 0;
  switch (want) {
    case 1: {
      VersionInfo v;
      v.protocol_version = r.U16();
      uint16_t reserved = r.U16();
      v.pid = r.U32();
      if (reserved != 0) {
        *error = "reserved field set in the version reply";
        return false;
      }
      reply.body = v;
      break;
    }
    case 2:
      reply.body = BalloonState{r.U64(), r.U64()};
      break;
    case 3: {
      BalloonStatsInfo s;
      s.state.target_bytes = r.U64();
      s.state.actual_bytes = r.U64();
      uint32_t n = r.U32();
      if (r.failed() || n > kMaxBalloonStats || r.remaining() != size_t{n} * 10) {
        *error = "bad balloon stats payload";
        return false;
      }
      for (uint32_t i = 0; i < n; ++i) {
        BalloonStat st;
        st.tag = r.U16();
        st.value = r.U64();
        s.stats.push_back(st);
      }
      reply.body = std::move(s);
      break;
    }
    default:
      break;
  }
  if (r.failed()) {
    *error = "truncated reply payload";
    return false;
  }
  if (r.remaining() != 0) {
    *error = std::to_string(r.remaining()) + " unexpected bytes after the reply payload";
    return false;
  }
  *out = std::move(reply);
  return true;
}

}  // namespace crosvm::control
