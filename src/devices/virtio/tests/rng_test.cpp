// virtio-rng: every device-writable buffer of a chain is filled with random bytes.
#include "devices/virtio/rng.h"

#include <gtest/gtest.h>

#include "devices/virtio/tests/test_driver.h"
#include "devices/virtio/virtio.h"

namespace crosvm::devices::virtio {
namespace {

using testing::MakeTestMemory;
using testing::TestQueue;

constexpr uint64_t kData = 0x100000;

TEST(RngTest, FillsEveryWritableBufferAndNothingElse) {
  auto mem = MakeTestMemory();
  TestQueue tq(mem, 0x1000, 16);
  Queue q = tq.MakeDeviceQueue(0);
  // A readable buffer (ignored) and three writable ones of different sizes.
  tq.WriteChain(0, {{kData, 64, false},
                    {kData + 0x1000, 100, true},
                    {kData + 0x2000, 1, true},
                    {kData + 0x3000, 4096, true}});
  tq.Publish(0);
  DescriptorChain chain;
  std::string error;
  ASSERT_EQ(q.Pop(&chain, &error), Queue::PopResult::kChain) << error;
  EXPECT_EQ(RngDevice::FillChain(mem, chain), 100u + 1 + 4096);
  std::vector<uint8_t> readable(64), big(4096);
  ASSERT_TRUE(mem.Read(kData, readable).ok());
  EXPECT_EQ(readable, std::vector<uint8_t>(64, 0));
  ASSERT_TRUE(mem.Read(kData + 0x3000, big).ok());
  int nonzero = 0;
  for (uint8_t b : big) nonzero += b != 0;
  EXPECT_GT(nonzero, 3500) << "4096 random bytes are not mostly zero";
  EXPECT_EQ(*mem.ReadObj<uint8_t>(kData + 0x1000 + 100), 0) << "nothing past the buffer";

  // A second fill gives different bytes.
  std::vector<uint8_t> again(4096);
  ASSERT_TRUE(mem.Read(kData + 0x3000, big).ok());
  RngDevice::FillChain(mem, chain);
  ASSERT_TRUE(mem.Read(kData + 0x3000, again).ok());
  EXPECT_NE(big, again);
}

TEST(RngTest, ReadOnlyChainGetsNothing) {
  auto mem = MakeTestMemory();
  TestQueue tq(mem, 0x1000, 16);
  Queue q = tq.MakeDeviceQueue(0);
  tq.WriteChain(0, {{kData, 64, false}});
  tq.Publish(0);
  DescriptorChain chain;
  std::string error;
  ASSERT_EQ(q.Pop(&chain, &error), Queue::PopResult::kChain);
  EXPECT_EQ(RngDevice::FillChain(mem, chain), 0u);
}

TEST(RngTest, DeviceIdentity) {
  RngDevice rng;
  EXPECT_EQ(rng.DeviceType(), kTypeRng);
  EXPECT_EQ(rng.QueueMaxSizes(), std::vector<uint16_t>{RngDevice::kQueueSize});
  EXPECT_TRUE(rng.Features() & Bit(kFeatureRingIndirectDesc));
  uint8_t cfg[4] = {1, 2, 3, 4};
  rng.ReadConfig(0, cfg);
  EXPECT_EQ(cfg[0], 0) << "no configuration space";
}

// A chain may offer far more than any entropy request needs (256 buffers as large as RAM):
// one chain gets at most kMaxBytesPerChain, and the used length says how much.
TEST(RngTest, OneChainGetsAtMostTheCap) {
  auto mem = MakeTestMemory();
  TestQueue tq(mem, 0x1000, 16);
  Queue q = tq.MakeDeviceQueue(0);
  tq.WriteChain(0, {{kData, 0x100000, true}, {kData + 0x100000, 0x100000, true}});
  tq.Publish(0);
  DescriptorChain chain;
  std::string error;
  ASSERT_EQ(q.Pop(&chain, &error), Queue::PopResult::kChain) << error;
  EXPECT_EQ(RngDevice::FillChain(mem, chain), RngDevice::kMaxBytesPerChain);
  // Nothing past the cap was touched.
  std::vector<uint8_t> after(4096);
  ASSERT_TRUE(mem.Read(kData + RngDevice::kMaxBytesPerChain, after).ok());
  EXPECT_EQ(after, std::vector<uint8_t>(4096, 0));
  EXPECT_LE(RngDevice::kMaxBytesPerChain, uint64_t{64} * 1024);
}

}  // namespace
}  // namespace crosvm::devices::virtio
