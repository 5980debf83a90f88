#include "devices/virtio/device_control.h"

#include <gtest/gtest.h>

#include <cerrno>

namespace crosvm::devices::virtio {
namespace {

TEST(DeviceControlTest, U64AndEmptyPayloads) {
  auto b = EncodeU64(0x0102030405060708);
  EXPECT_EQ(b.front(), 0x08);
  EXPECT_EQ(*DecodeU64(b, "x"), 0x0102030405060708u);
  b.pop_back();
  auto bad = DecodeU64(b, "x");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().errnum(), EINVAL);
  EXPECT_TRUE(DecodeEmpty({}, "x").ok());
  uint8_t one[1] = {0};
  EXPECT_FALSE(DecodeEmpty(one, "x").ok());
}

TEST(DeviceControlTest, BalloonStateAndStats) {
  auto s = DecodeBalloonState(EncodeBalloonState({8192, 4096}));
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->target_bytes, 8192u);
  EXPECT_EQ(s->actual_bytes, 4096u);
  EXPECT_FALSE(DecodeBalloonState(std::vector<uint8_t>(15)).ok());

  BalloonControlStat stats[] = {{1, 10}, {7, 70}};
  auto bytes = EncodeBalloonStats({1, 2}, stats);
  std::vector<BalloonControlStat> out;
  auto d = DecodeBalloonStats(bytes, &out);
  ASSERT_TRUE(d.ok());
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[1].tag, 7);
  EXPECT_EQ(out[1].value, 70u);
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(DecodeBalloonStats(std::span(bytes).first(n), &out).ok()) << n;
  }
  auto lying = bytes;
  lying[16] = 65;  // more entries than allowed
  EXPECT_FALSE(DecodeBalloonStats(lying, &out).ok());
  // Encoding caps the count.
  std::vector<BalloonControlStat> many(100);
  EXPECT_EQ(EncodeBalloonStats({}, many).size(), 20u + kMaxControlStats * 10);
}

}  // namespace
}  // namespace crosvm::devices::virtio
