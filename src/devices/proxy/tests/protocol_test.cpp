// The request and reply encodings: round trips, and every malformed message is refused with
// a Status that says what was wrong.
#include "devices/proxy/proxy_protocol.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace crosvm::devices::proxy {
namespace {

using ::testing::HasSubstr;

Request Req(RequestType t) {
  Request r;
  r.type = t;
  r.seq = 77;
  return r;
}

std::vector<Request> OneOfEach() {
  std::vector<Request> all;
  Request r = Req(RequestType::kReadConfigRegister);
  r.reg = 13;
  all.push_back(r);
  r = Req(RequestType::kWriteConfigRegister);
  r.reg = 1;
  r.offset = 2;
  r.data = {0xaa, 0xbb};
  all.push_back(r);
  all.push_back(Req(RequestType::kBars));
  r = Req(RequestType::kBarAddress);
  r.bar = 5;
  all.push_back(r);
  all.push_back(Req(RequestType::kCommand));
  for (auto t :
       {RequestType::kSetBarAddress, RequestType::kOnBarMapped, RequestType::kOnBarUnmapped}) {
    r = Req(t);
    r.bar = 2;
    r.addr = 0x123456789abcdef0;
    all.push_back(r);
  }
  r = Req(RequestType::kAssignIntx);
  r.gsi = 19;
  all.push_back(r);
  r = Req(RequestType::kReadBar);
  r.bar = 0;
  r.addr = 0x3000;
  r.len = 8;
  all.push_back(r);
  r = Req(RequestType::kWriteBar);
  r.addr = 0x14;
  r.data = {1, 2, 3, 4};
  all.push_back(r);
  all.push_back(Req(RequestType::kShutdown));
  return all;
}

TEST(ProtocolTest, EveryRequestRoundTrips) {
  auto all = OneOfEach();
  ASSERT_EQ(all.size(), 12u) << "one per PciDevice call, plus Shutdown";
  for (const Request& r : all) {
    SCOPED_TRACE(RequestTypeName(r.type));
    auto bytes = EncodeRequest(r);
    auto d = DecodeRequest(bytes);
    ASSERT_TRUE(d.ok()) << d.error().ToString();
    EXPECT_EQ(d->seq, r.seq);
    EXPECT_EQ(d->type, r.type);
    EXPECT_EQ(d->reg, r.reg);
    EXPECT_EQ(d->offset, r.offset);
    EXPECT_EQ(d->bar, r.bar);
    EXPECT_EQ(d->addr, r.addr);
    EXPECT_EQ(d->gsi, r.gsi);
    EXPECT_EQ(d->len, r.len);
    EXPECT_EQ(d->data, r.data);
  }
}

TEST(ProtocolTest, RequestLayoutIsLittleEndianAndFixed) {
  Request r = Req(RequestType::kSetBarAddress);
  r.seq = 0x01020304;
  r.bar = 1;
  r.addr = 0x1122334455667788;
  EXPECT_EQ(EncodeRequest(r), (std::vector<uint8_t>{4, 3, 2, 1, 6, 1, 0x88, 0x77, 0x66, 0x55, 0x44,
                                                    0x33, 0x22, 0x11}));
}

TEST(ProtocolTest, EveryTruncatedRequestIsRefused) {
  for (const Request& r : OneOfEach()) {
    auto bytes = EncodeRequest(r);
    for (size_t n = 0; n < bytes.size(); ++n) {
      auto d = DecodeRequest(std::span(bytes).first(n));
      ASSERT_FALSE(d.ok()) << RequestTypeName(r.type) << " cut to " << n;
      EXPECT_THAT(d.error().message(), HasSubstr("truncated"));
    }
    bytes.push_back(0);
    auto d = DecodeRequest(bytes);
    ASSERT_FALSE(d.ok()) << RequestTypeName(r.type) << " with a trailing byte";
    EXPECT_THAT(d.error().message(), HasSubstr("trailing"));
  }
}

// Decodes `bytes` and expects an error mentioning `what`.
void ExpectBadRequest(std::vector<uint8_t> bytes, const std::string& what) {
  auto d = DecodeRequest(bytes);
  ASSERT_FALSE(d.ok()) << "accepted; expected: " << what;
  EXPECT_THAT(d.error().message(), HasSubstr(what));
}

TEST(ProtocolTest, MalformedRequestsAreRefused) {
  ExpectBadRequest({1, 0, 0, 0, 0}, "unknown type 0");
  ExpectBadRequest({1, 0, 0, 0, 14}, "unknown type 14");  // past DeviceControl (13)
  // ReadConfigRegister beyond the 4 KiB space.
  ExpectBadRequest({1, 0, 0, 0, 1, 0x00, 0x04, 0, 0}, "config register 1024");
  // WriteConfigRegister: zero length, five bytes, a write past the register.
  ExpectBadRequest({1, 0, 0, 0, 2, 1, 0, 0, 0, 0, 0}, "config write of 0 bytes");
  ExpectBadRequest({1, 0, 0, 0, 2, 1, 0, 0, 0, 0, 5, 1, 2, 3, 4, 5}, "config write of 5 bytes");
  ExpectBadRequest({1, 0, 0, 0, 2, 1, 0, 0, 0, 3, 2, 1, 2}, "at byte 3");
  ExpectBadRequest({1, 0, 0, 0, 2, 1, 0, 0, 0, 4, 1, 1}, "at byte 4");
  // The data is shorter than its length says.
  ExpectBadRequest({1, 0, 0, 0, 2, 1, 0, 0, 0, 0, 4, 1, 2}, "truncated at data");
  // BAR index 6 in every request that names a BAR.
  ExpectBadRequest({1, 0, 0, 0, 4, 6}, "BAR index 6");
  ExpectBadRequest({1, 0, 0, 0, 6, 6, 0, 0, 0, 0, 0, 0, 0, 0}, "BAR index 6");
  ExpectBadRequest({1, 0, 0, 0, 10, 6, 0, 0, 0, 0, 0, 0, 0, 0}, "BAR index 6");
  ExpectBadRequest({1, 0, 0, 0, 11, 255, 0, 0, 0, 0, 0, 0, 0, 0}, "BAR index 255");
  ExpectBadRequest({1, 0, 0, 0, 8, 6, 0, 0, 0, 0, 0, 0, 0, 0, 4}, "BAR index 6");
  // BAR accesses of 0 or more than kMaxBarAccess bytes, or wrapping around.
  ExpectBadRequest({1, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, "BAR access of 0 bytes");
  ExpectBadRequest({1, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 65}, "BAR access of 65 bytes");
  ExpectBadRequest({1, 0, 0, 0, 8, 0, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 4}, "wraps");
  ExpectBadRequest({1, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, "BAR access of 0 bytes");
  ExpectBadRequest({1, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 1}, "truncated at data");
  // Requests without arguments take none.
  ExpectBadRequest({1, 0, 0, 0, 3, 0}, "1 trailing bytes");
  ExpectBadRequest({1, 0, 0, 0, 12, 0, 0}, "2 trailing bytes");
}

base::ScopedFd NewEventFd() {
  return base::ScopedFd(eventfd(0, EFD_CLOEXEC));
}

Reply FullReply() {
  Reply r;
  r.seq = 9;
  r.type = RequestType::kOnBarMapped;
  r.value = 0xfeedface;
  DeviceState st;
  st.command = 0x0406;
  st.bars.push_back({pci::BarInfo{0, pci::BarType::kMem64, 0x8000, false}, 0xc0000000});
  st.bars.push_back({pci::BarInfo{2, pci::BarType::kIo, 0x20, false}, 0xc000});
  st.bars.push_back({pci::BarInfo{3, pci::BarType::kMem32, 0x1000, true}, 0xd0000000});
  r.state = st;
  Effect e;
  e.type = EffectType::kRegisterIoeventfd;
  e.fd = NewEventFd();
  e.key = 17;
  e.addr = 0xc0003000;
  e.len = 2;
  e.datamatch = 0x1234;
  r.effects.push_back(std::move(e));
  e = Effect{};
  e.type = EffectType::kRegisterIrqfd;
  e.fd = NewEventFd();
  e.key = 18;
  e.gsi = 20;
  e.resample_fd = NewEventFd();
  e.resample_key = 19;
  r.effects.push_back(std::move(e));
  e = Effect{};
  e.type = EffectType::kSetMsiRoute;
  e.gsi = 24;
  e.addr = 0xfee00000;
  e.data = 0x4041;
  r.effects.push_back(std::move(e));
  e = Effect{};
  e.type = EffectType::kUnregisterIrqfd;
  e.fd = NewEventFd();
  e.key = 18;
  e.gsi = 20;
  r.effects.push_back(std::move(e));
  e = Effect{};
  e.type = EffectType::kUnregisterIoeventfd;
  e.fd = NewEventFd();
  e.key = 17;
  e.addr = 0xc0003000;
  e.len = 2;
  e.pio = true;
  r.effects.push_back(std::move(e));
  e = Effect{};
  e.type = EffectType::kRemoveRoute;
  e.gsi = 24;
  r.effects.push_back(std::move(e));
  return r;
}

std::vector<base::ScopedFd> Dups(const std::vector<int>& fds) {
  std::vector<base::ScopedFd> out;
  for (int fd : fds) out.emplace_back(dup(fd));
  return out;
}

TEST(ProtocolTest, ReplyRoundTripsWithStateEffectsAndFds) {
  Reply r = FullReply();
  std::vector<int> fds;
  auto bytes = EncodeReply(r, &fds);
  ASSERT_EQ(fds.size(), 5u) << "ioeventfd, irqfd + resample, and two unregistrations";
  EXPECT_EQ(fds[0], r.effects[0].fd.get());
  EXPECT_EQ(fds[2], r.effects[1].resample_fd->get());
  auto d = DecodeReply(bytes, Dups(fds));
  ASSERT_TRUE(d.ok()) << d.error().ToString();
  EXPECT_EQ(d->seq, 9u);
  EXPECT_EQ(d->type, RequestType::kOnBarMapped);
  EXPECT_EQ(d->value, 0xfeedfaceu);
  ASSERT_TRUE(d->state.has_value());
  EXPECT_EQ(d->state->command, 0x0406);
  ASSERT_EQ(d->state->bars.size(), 3u);
  EXPECT_EQ(d->state->bars[1].info.index, 2);
  EXPECT_EQ(d->state->bars[1].info.type, pci::BarType::kIo);
  EXPECT_EQ(d->state->bars[1].address, 0xc000u);
  EXPECT_TRUE(d->state->bars[2].info.prefetchable);
  EXPECT_EQ(d->state->bars[0].info.size, 0x8000u);
  ASSERT_EQ(d->effects.size(), 6u);
  const Effect& io = d->effects[0];
  EXPECT_EQ(io.type, EffectType::kRegisterIoeventfd);
  EXPECT_EQ(io.key, 17);
  EXPECT_EQ(io.addr, 0xc0003000u);
  EXPECT_EQ(io.len, 2u);
  EXPECT_EQ(io.datamatch, std::optional<uint64_t>(0x1234));
  EXPECT_FALSE(io.pio);
  EXPECT_TRUE(d->effects[4].pio);
  EXPECT_FALSE(d->effects[4].datamatch.has_value());
  const Effect& irq = d->effects[1];
  EXPECT_EQ(irq.gsi, 20u);
  EXPECT_EQ(irq.resample_key, 19);
  ASSERT_TRUE(irq.resample_fd.has_value());
  EXPECT_EQ(d->effects[2].addr, 0xfee00000u);
  EXPECT_EQ(d->effects[2].data, 0x4041u);
  EXPECT_EQ(d->effects[5].type, EffectType::kRemoveRoute);
  // The fds went to the effects that carry them, in order: the resample fd is the irqfd's.
  uint64_t one = 1, v = 0;
  ASSERT_EQ(write(irq.resample_fd->get(), &one, 8), 8);
  ASSERT_EQ(read(r.effects[1].resample_fd->get(), &v, 8), 8);
  ASSERT_EQ(write(io.fd.get(), &one, 8), 8);
  ASSERT_EQ(read(r.effects[0].fd.get(), &v, 8), 8);
}

TEST(ProtocolTest, ErrorAndDataRepliesRoundTrip) {
  Reply r;
  r.seq = 3;
  r.type = RequestType::kSetBarAddress;
  r.flags = kReplyStatusError;
  r.error = "BAR 0 misaligned";
  std::vector<int> fds;
  auto d = DecodeReply(EncodeReply(r, &fds), {});
  ASSERT_TRUE(d.ok()) << d.error().ToString();
  EXPECT_EQ(d->flags, kReplyStatusError);
  EXPECT_EQ(d->error, "BAR 0 misaligned");
  EXPECT_FALSE(d->state.has_value());
  r = Reply{};
  r.type = RequestType::kReadBar;
  r.data = {1, 2, 3, 4, 5, 6, 7, 8};
  d = DecodeReply(EncodeReply(r, &fds), {});
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->data, r.data);
}

TEST(ProtocolTest, EveryTruncatedReplyIsRefused) {
  Reply r = FullReply();
  r.error = "x";
  r.flags = kReplyStatusError;
  r.data = {1, 2};
  std::vector<int> fds;
  auto bytes = EncodeReply(r, &fds);
  for (size_t n = 0; n < bytes.size(); ++n) {
    auto d = DecodeReply(std::span(bytes).first(n), Dups(fds));
    ASSERT_FALSE(d.ok()) << "cut to " << n;
  }
  bytes.push_back(0);
  auto d = DecodeReply(bytes, Dups(fds));
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.error().message(), HasSubstr("trailing"));
}

// Offsets in a reply without error, data or state: seq 0, type 4, flags 5, value 6,
// error_len 14, data_len 16, effect count 17, first effect 18.
std::vector<uint8_t> Header(uint8_t flags = 0) {
  return {1, 0, 0, 0, 1, flags, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
}

void ExpectBadReply(const std::vector<uint8_t>& bytes, const std::string& what, size_t fds = 0) {
  std::vector<base::ScopedFd> owned;
  for (size_t i = 0; i < fds; ++i) owned.push_back(NewEventFd());
  auto d = DecodeReply(bytes, std::move(owned));
  ASSERT_FALSE(d.ok()) << "accepted; expected: " << what;
  EXPECT_THAT(d.error().message(), HasSubstr(what));
}

std::vector<uint8_t> With(std::vector<uint8_t> a, const std::vector<uint8_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

TEST(ProtocolTest, MalformedRepliesAreRefused) {
  auto ok = With(Header(), {0});
  ASSERT_TRUE(DecodeReply(ok, {}).ok());
  auto bad = ok;
  bad[4] = 0;
  ExpectBadReply(bad, "unknown request type 0");
  bad = ok;
  bad[4] = 200;
  ExpectBadReply(bad, "unknown request type 200");
  ExpectBadReply(With(Header(0x10), {0}), "unknown flags 16");
  // Errors: too long, flag without message, message without flag.
  bad = Header(kReplyRejected);
  bad[14] = 0x01;
  bad[15] = 0x04;  // 1025 bytes
  ExpectBadReply(bad, "error of 1025 bytes");
  ExpectBadReply(With(Header(kReplyStatusError), {0}), "error flag without a message");
  bad = Header();
  bad[14] = 1;
  ExpectBadReply(With(bad, {'x', 0, 0}), "error message without the flag");
  // Data beyond the widest BAR access.
  bad = Header();
  bad[16] = 65;
  ExpectBadReply(With(bad, std::vector<uint8_t>(66, 0)), "data of 65 bytes");
  // State: too many BARs, a bad index, a bad type, a bad boolean.
  ExpectBadReply(With(Header(kReplyHasState), {0, 0, 7}), "7 BARs");
  std::vector<uint8_t> bar = {0, 1, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  ASSERT_TRUE(DecodeReply(With(With(Header(kReplyHasState), {0, 0, 1}), With(bar, {0})), {}).ok());
  auto b = bar;
  b[0] = 6;
  ExpectBadReply(With(With(Header(kReplyHasState), {0, 0, 1}), With(b, {0})), "BAR index 6");
  b = bar;
  b[1] = 3;
  ExpectBadReply(With(With(Header(kReplyHasState), {0, 0, 1}), With(b, {0})), "BAR type 3");
  b = bar;
  b[2] = 2;
  ExpectBadReply(With(With(Header(kReplyHasState), {0, 0, 1}), With(b, {0})), "prefetchable");
  // Effects: too many, unknown type, bad fields.
  ExpectBadReply(With(Header(), {17}), "17 effects");
  ExpectBadReply(With(Header(), {1, 0}), "unknown effect type 0");
  ExpectBadReply(With(Header(), {1, 7}), "unknown effect type 7");
  std::vector<uint8_t> ioevt = {1, 5, 0, 0, 0, 0, 0x30, 0, 0, 0, 0, 0, 0, 2,
                                0, 0, 0, 0, 0, 0, 0,    0, 0, 0, 0, 0, 0};
  ASSERT_TRUE(DecodeReply(With(Header(), With({1}, ioevt)),
                          [] {
                            std::vector<base::ScopedFd> v;
                            v.push_back(NewEventFd());
                            return v;
                          }())
                  .ok());
  auto e = ioevt;
  e[13] = 3;
  ExpectBadReply(With(Header(), With({1}, e)), "ioeventfd length 3", 1);
  e = ioevt;
  e[17] = 2;
  ExpectBadReply(With(Header(), With({1}, e)), "pio is 2", 1);
  e = ioevt;
  e[1] = 0xff;
  e[2] = 0xff;
  e[3] = 0xff;
  e[4] = 0xff;
  ExpectBadReply(With(Header(), With({1}, e)), "negative fd key", 1);
  // RegisterIrqfd whose resample flag and key disagree.
  std::vector<uint8_t> irq = {3, 5, 0, 0, 0, 20, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff};
  ExpectBadReply(With(Header(), With({1}, irq)), "does not match its flag", 2);
  // The fds must match what the effects need, exactly.
  ExpectBadReply(With(Header(), With({1}, ioevt)), "0 fds for effects that need 1");
  ExpectBadReply(With(Header(), With({1}, ioevt)), "2 fds for effects that need 1", 2);
  ExpectBadReply(With(Header(), {0}), "1 fds for effects that need 0", 1);
  irq[9] = 0;
  ExpectBadReply(With(Header(), With({1}, irq)), "2 fds for effects that need 1", 2);
  // A partial reply carries effects only.
  bad = With(Header(kReplyMore), {0});
  bad[6] = 1;
  ExpectBadReply(bad, "partial reply carries a result");
  ExpectBadReply(With(Header(kReplyMore | kReplyHasState), {0, 0, 0, 0}),
                 "partial reply carries a result");
}

// DeviceControl: the VMM's typed requests (balloon, disk resize) to a device process.
TEST(ProtocolTest, DeviceControlRoundTrips) {
  Request r;
  r.seq = 9;
  r.type = RequestType::kDeviceControl;
  r.op = 4;
  r.data = {1, 2, 3, 4, 5, 6, 7, 8};
  auto bytes = EncodeRequest(r);
  ASSERT_EQ(bytes.size(), 4u + 1 + 4 + 2 + 8);
  auto d = DecodeRequest(bytes);
  ASSERT_TRUE(d.ok()) << d.error().ToString();
  EXPECT_EQ(d->op, 4u);
  EXPECT_EQ(d->data, r.data);

  Reply reply;
  reply.seq = 9;
  reply.type = RequestType::kDeviceControl;
  reply.data.assign(kMaxControlPayload, 0xab);  // longer than a BAR access may be
  std::vector<int> fds;
  auto rd = DecodeReply(EncodeReply(reply, &fds), {});
  ASSERT_TRUE(rd.ok()) << rd.error().ToString();
  EXPECT_EQ(rd->data.size(), kMaxControlPayload);

  Reply err;
  err.seq = 9;
  err.type = RequestType::kDeviceControl;
  err.flags = kReplyStatusError;
  err.error = "read-only";
  err.value = 30;  // EROFS
  auto ed = DecodeReply(EncodeReply(err, &fds), {});
  ASSERT_TRUE(ed.ok()) << ed.error().ToString();
  EXPECT_EQ(ed->value, 30u);
  EXPECT_EQ(ed->error, "read-only");
}

TEST(ProtocolTest, MalformedDeviceControlIsRefused) {
  Request r;
  r.type = RequestType::kDeviceControl;
  r.op = 1;
  r.data = {1, 2, 3};
  auto good = EncodeRequest(r);
  for (size_t n = 5; n < good.size(); ++n) {
    EXPECT_FALSE(DecodeRequest(std::span(good).first(n)).ok()) << "truncated to " << n;
  }
  auto trailing = good;
  trailing.push_back(0);
  EXPECT_FALSE(DecodeRequest(trailing).ok());
  // A payload length over the limit, with the bytes there.
  r.data.assign(kMaxControlPayload + 1, 0);
  auto big = EncodeRequest(r);
  auto d = DecodeRequest(big);
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.error().message().find("control payload"), std::string::npos);
  // A length that claims more than is there.
  auto lying = good;
  lying[9] = 200;
  EXPECT_FALSE(DecodeRequest(lying).ok());

  // A reply whose data is over the limit.
  Reply reply;
  reply.type = RequestType::kDeviceControl;
  reply.data.assign(kMaxControlPayload + 1, 0);
  std::vector<int> fds;
  auto rd = DecodeReply(EncodeReply(reply, &fds), {});
  ASSERT_FALSE(rd.ok());
  EXPECT_NE(rd.error().message().find("control reply"), std::string::npos);
  // A reply type past DeviceControl is unknown.
  Reply other;
  other.type = RequestType::kDeviceControl;
  auto bytes = EncodeReply(other, &fds);
  bytes[4] = static_cast<uint8_t>(RequestType::kDeviceControl) + 1;
  EXPECT_FALSE(DecodeReply(bytes, {}).ok());
}

}  // namespace
}  // namespace crosvm::devices::proxy
