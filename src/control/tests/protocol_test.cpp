// The control wire format: round trips of every message, and every malformed case.
#include "control/protocol.h"

#include <gtest/gtest.h>

namespace crosvm::control {
namespace {

Request RoundTrip(const Request& in) {
  auto bytes = EncodeRequest(in);
  Request out;
  DecodeError err;
  EXPECT_TRUE(DecodeRequest(bytes, false, &out, &err)) << err.message;
  return out;
}

TEST(ProtocolTest, EveryRequestRoundTrips) {
  std::vector<RequestBody> bodies = {Ping{},
                                     Stop{},
                                     Suspend{},
                                     Resume{},
                                     BalloonSetTarget{0x123456789abcdefull},
                                     BalloonStats{},
                                     DiskResize{7, uint64_t{5} << 40}};
  uint32_t id = 100;
  for (const auto& body : bodies) {
    Request in{id++, body};
    Request out = RoundTrip(in);
    EXPECT_EQ(out.id, in.id);
    ASSERT_EQ(out.body.index(), in.body.index());
    EXPECT_EQ(out.type(), in.type());
  }
  EXPECT_EQ(std::get<BalloonSetTarget>(RoundTrip({1, BalloonSetTarget{42}}).body).bytes, 42u);
  auto d = std::get<DiskResize>(RoundTrip({1, DiskResize{3, 1ull << 33}}).body);
  EXPECT_EQ(d.index, 3u);
  EXPECT_EQ(d.new_size, 1ull << 33);
}

TEST(ProtocolTest, HeaderLayoutIsLittleEndianAndDocumented) {
  auto b = EncodeRequest({0x01020304, DiskResize{0x0a0b0c0d, 0x1122334455667788ull}});
  ASSERT_EQ(b.size(), kHeaderSize + 12);
  std::vector<uint8_t> want = {'C',  'V',  'M',  'C',  1,    0,    7,    0,    12,   0,
                               0,    0,    4,    3,    2,    1,    0x0d, 0x0c, 0x0b, 0x0a,
                               0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11};
  EXPECT_EQ(b, want);
}

TEST(ProtocolTest, EveryReplyRoundTrips) {
  struct Case {
    RequestType type;
    Reply reply;
  };
  BalloonStatsInfo stats{{4096, 8192}, {{0, 11}, {7, 1ull << 40}}};
  std::vector<Case> cases = {
      {RequestType::kPing, Reply::Ok(VersionInfo{1, 4242}, "crosvm")},
      {RequestType::kStop, Reply::Ok({}, "stopping")},
      {RequestType::kBalloonSetTarget, Reply::Ok(BalloonState{1 << 20, 1 << 19})},
      {RequestType::kBalloonStats, Reply::Ok(stats)},
      {RequestType::kSuspend, Reply::Error(StatusCode::kInvalidState, "already suspended")},
  };
  for (const auto& c : cases) {
    auto bytes = EncodeReply(static_cast<uint16_t>(c.type), 9, c.reply);
    uint16_t type;
    uint32_t id;
    Reply out;
    std::string error;
    ASSERT_TRUE(DecodeReply(bytes, &type, &id, &out, &error)) << error;
    EXPECT_EQ(type, static_cast<uint16_t>(c.type) | kReplyBit);
    EXPECT_EQ(id, 9u);
    EXPECT_EQ(out.status, c.reply.status);
    EXPECT_EQ(out.message, c.reply.message);
    EXPECT_EQ(out.body.index(), c.reply.body.index());
  }
  auto bytes = EncodeReply(static_cast<uint16_t>(RequestType::kBalloonStats), 1, Reply::Ok(stats));
  uint16_t type;
  uint32_t id;
  Reply out;
  std::string error;
  ASSERT_TRUE(DecodeReply(bytes, &type, &id, &out, &error)) << error;
  auto& s = std::get<BalloonStatsInfo>(out.body);
  EXPECT_EQ(s.state.target_bytes, 4096u);
  EXPECT_EQ(s.state.actual_bytes, 8192u);
  ASSERT_EQ(s.stats.size(), 2u);
  EXPECT_EQ(s.stats[1].tag, 7);
  EXPECT_EQ(s.stats[1].value, 1ull << 40);
}

TEST(ProtocolTest, ReplyThatDoesNotFitTheRequestBecomesInternalError) {
  // A Stop reply carrying balloon state: the handler got it wrong.
  auto bytes =
      EncodeReply(static_cast<uint16_t>(RequestType::kStop), 1, Reply::Ok(BalloonState{1, 2}));
  uint16_t type;
  uint32_t id;
  Reply out;
  std::string error;
  ASSERT_TRUE(DecodeReply(bytes, &type, &id, &out, &error)) << error;
  EXPECT_EQ(out.status, StatusCode::kInternal);
  // An error reply never carries a body; an overlong message is cut.
  Reply e = Reply::Error(StatusCode::kFailed, std::string(5000, 'x'));
  e.body = BalloonState{1, 2};
  bytes = EncodeReply(static_cast<uint16_t>(RequestType::kBalloonSetTarget), 1, e);
  ASSERT_TRUE(DecodeReply(bytes, &type, &id, &out, &error)) << error;
  EXPECT_EQ(out.status, StatusCode::kFailed);
  EXPECT_EQ(out.message.size(), kMaxReplyMessageBytes);
  EXPECT_TRUE(std::holds_alternative<std::monostate>(out.body));
}

DecodeError DecodeFails(std::vector<uint8_t> bytes, bool truncated = false) {
  Request out;
  DecodeError err;
  EXPECT_FALSE(DecodeRequest(bytes, truncated, &out, &err));
  EXPECT_FALSE(err.message.empty());
  return err;
}

TEST(ProtocolTest, EveryMalformedRequestIsRefusedWithItsCode) {
  auto good = EncodeRequest({77, BalloonSetTarget{1}});
  // Empty, and every truncation of the header and of the payload.
  for (size_t n = 0; n < good.size(); ++n) {
    auto err = DecodeFails({good.begin(), good.begin() + static_cast<long>(n)});
    EXPECT_EQ(err.code, StatusCode::kMalformed) << n;
    if (n >= kHeaderSize) {
      EXPECT_EQ(err.request_id, 77u) << "id echoed when readable";
    }
  }
  // Trailing bytes.
  auto longer = good;
  longer.push_back(0);
  EXPECT_EQ(DecodeFails(longer).code, StatusCode::kMalformed);
  // Bad magic.
  auto bad = good;
  bad[0] = 'X';
  EXPECT_EQ(DecodeFails(bad).code, StatusCode::kMalformed);
  // Version 2 and version 0.
  for (uint8_t v : {0, 2}) {
    bad = good;
    bad[4] = v;
    auto err = DecodeFails(bad);
    EXPECT_EQ(err.code, StatusCode::kUnsupportedVersion);
    EXPECT_EQ(err.request_id, 77u);
  }
  // Unknown types, type 0, and a reply type sent as a request.
  for (uint16_t t : {0, 8, 0x7fff, 0xffff, 0x8001}) {
    bad = good;
    bad[6] = static_cast<uint8_t>(t);
    bad[7] = static_cast<uint8_t>(t >> 8);
    auto err = DecodeFails(bad);
    EXPECT_EQ(err.code, t & kReplyBit ? StatusCode::kMalformed : StatusCode::kUnknownType) << t;
    EXPECT_EQ(err.type, t);
  }
  // Length field that disagrees with the message, both ways, and a huge one.
  for (uint32_t len : {0u, 7u, 9u, 0xffffffffu}) {
    bad = good;
    for (int i = 0; i < 4; ++i) bad[8 + i] = static_cast<uint8_t>(len >> (8 * i));
    EXPECT_EQ(DecodeFails(bad).code, StatusCode::kMalformed) << len;
  }
  // A known type with the wrong payload size (consistent header): Stop with 8 bytes.
  auto stop = EncodeRequest({1, Stop{}});
  stop.insert(stop.end(), 8, 0);
  stop[8] = 8;
  EXPECT_EQ(DecodeFails(stop).code, StatusCode::kMalformed);
  // DiskResize with a BalloonSetTarget-sized payload.
  auto resize = EncodeRequest({1, DiskResize{1, 2}});
  resize.resize(kHeaderSize + 8);
  resize[8] = 8;
  EXPECT_EQ(DecodeFails(resize).code, StatusCode::kMalformed);
  // Oversized: more than the maximum, or cut by the receiver's buffer.
  std::vector<uint8_t> huge(kMaxMessageSize + 1, 0);
  EXPECT_EQ(DecodeFails(huge).code, StatusCode::kTooLarge);
  EXPECT_EQ(DecodeFails(good, /*truncated=*/true).code, StatusCode::kTooLarge);
}

TEST(ProtocolTest, MalformedRepliesAreRefused) {
  auto good = EncodeReply(static_cast<uint16_t>(RequestType::kBalloonSetTarget), 5,
                          Reply::Ok(BalloonState{1, 2}, "ok"));
  uint16_t type;
  uint32_t id;
  Reply out;
  std::string error;
  ASSERT_TRUE(DecodeReply(good, &type, &id, &out, &error));
  for (size_t n = 0; n < good.size(); ++n) {
    std::vector<uint8_t> cut(good.begin(), good.begin() + static_cast<long>(n));
    EXPECT_FALSE(DecodeReply(cut, &type, &id, &out, &error)) << n;
    // Same cut with a consistent length field: the payload itself is short.
    if (n >= kHeaderSize) {
      uint32_t len = static_cast<uint32_t>(n - kHeaderSize);
      for (int i = 0; i < 4; ++i) cut[8 + i] = static_cast<uint8_t>(len >> (8 * i));
      EXPECT_FALSE(DecodeReply(cut, &type, &id, &out, &error)) << n;
    }
  }
  auto bad = good;
  bad[kHeaderSize] = 200;  // unknown status
  EXPECT_FALSE(DecodeReply(bad, &type, &id, &out, &error));
  bad = good;
  bad[7] = 0;  // a request type
  EXPECT_FALSE(DecodeReply(bad, &type, &id, &out, &error));
  bad = good;
  bad[kHeaderSize + 4] = 0xff;  // message length beyond the payload
  EXPECT_FALSE(DecodeReply(bad, &type, &id, &out, &error));
  // Stats count larger than the bytes present, or than the maximum.
  auto stats = EncodeReply(static_cast<uint16_t>(RequestType::kBalloonStats), 1,
                           Reply::Ok(BalloonStatsInfo{{1, 2}, {{1, 1}}}));
  size_t count_at = kHeaderSize + 8 + 16;
  for (uint8_t c : {0, 2, 65}) {
    bad = stats;
    bad[count_at] = c;
    EXPECT_FALSE(DecodeReply(bad, &type, &id, &out, &error)) << int{c};
  }
}

}  // namespace
}  // namespace crosvm::control
