#include "devices/bus.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace crosvm::devices {
namespace {

using ::testing::HasSubstr;

// Records every access; reads answer `tag + offset` in each byte.
class FakeDevice : public BusDevice {
 public:
  struct Access {
    bool write;
    uint64_t offset;
    std::vector<uint8_t> data;
  };

  explicit FakeDevice(std::string name, uint8_t tag = 0) : name_(std::move(name)), tag_(tag) {}
  std::string DebugName() const override { return name_; }
  void Read(uint64_t offset, std::span<uint8_t> data) override {
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(tag_ + offset + i);
    accesses.push_back({false, offset, {data.begin(), data.end()}});
  }
  void Write(uint64_t offset, std::span<const uint8_t> data) override {
    accesses.push_back({true, offset, {data.begin(), data.end()}});
  }

  std::vector<Access> accesses;

 private:
  std::string name_;
  uint8_t tag_;
};

TEST(BusTest, InsertAndLookup) {
  Bus bus("io");
  auto dev = std::make_shared<FakeDevice>("dev");
  ASSERT_TRUE(bus.Insert(dev, 0x3f8, 8).ok());
  uint64_t base = 0;
  EXPECT_EQ(bus.DeviceAt(0x3f8, &base), dev);
  EXPECT_EQ(base, 0x3f8u);
  base = 0;
  EXPECT_EQ(bus.DeviceAt(0x3ff, &base), dev);
  EXPECT_EQ(base, 0x3f8u);
  EXPECT_EQ(bus.DeviceAt(0x3f7), nullptr);
  EXPECT_EQ(bus.DeviceAt(0x400), nullptr);
  EXPECT_EQ(bus.DeviceAt(0), nullptr);
}

TEST(BusTest, DispatchesWithTheOffsetFromTheBase) {
  Bus bus("io");
  auto a = std::make_shared<FakeDevice>("a", 0x10);
  auto b = std::make_shared<FakeDevice>("b", 0x80);
  ASSERT_TRUE(bus.Insert(a, 0x60, 4).ok());
  ASSERT_TRUE(bus.Insert(b, 0x70, 2).ok());

  uint8_t r[2] = {};
  EXPECT_TRUE(bus.Read(0x62, r));
  EXPECT_EQ(r[0], 0x12);
  EXPECT_EQ(r[1], 0x13);
  ASSERT_EQ(a->accesses.size(), 1u);
  EXPECT_FALSE(a->accesses[0].write);
  EXPECT_EQ(a->accesses[0].offset, 2u);
  EXPECT_EQ(a->accesses[0].data.size(), 2u);

  const uint8_t w[] = {0xab};
  EXPECT_TRUE(bus.Write(0x71, w));
  ASSERT_EQ(b->accesses.size(), 1u);
  EXPECT_TRUE(b->accesses[0].write);
  EXPECT_EQ(b->accesses[0].offset, 1u);
  EXPECT_EQ(b->accesses[0].data, std::vector<uint8_t>{0xab});
  EXPECT_EQ(a->accesses.size(), 1u);
}

TEST(BusTest, WholeRangeAccessIsHandled) {
  Bus bus("mmio");
  auto dev = std::make_shared<FakeDevice>("dev");
  ASSERT_TRUE(bus.Insert(dev, 0x1000, 8).ok());
  uint8_t r[8];
  EXPECT_TRUE(bus.Read(0x1000, r));
  ASSERT_EQ(dev->accesses.size(), 1u);
  EXPECT_EQ(dev->accesses[0].offset, 0u);
  EXPECT_EQ(dev->accesses[0].data.size(), 8u);
}

TEST(BusTest, OverlapsAreRejected) {
  struct Case {
    const char* what;
    uint64_t base, len;
  } cases[] = {
      {"exact", 0x100, 0x10},      {"partial below", 0xf8, 0x10},    {"partial above", 0x108, 0x10},
      {"last byte", 0x10f, 1},     {"first byte", 0xff, 2},          {"contained", 0x104, 4},
      {"containing", 0x0, 0x1000}, {"same base, shorter", 0x100, 1},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    Bus bus("io");
    auto first = std::make_shared<FakeDevice>("first");
    ASSERT_TRUE(bus.Insert(first, 0x100, 0x10).ok());
    auto s = bus.Insert(std::make_shared<FakeDevice>("second"), c.base, c.len);
    ASSERT_FALSE(s.ok());
    EXPECT_THAT(s.error().message(), HasSubstr("overlaps"));
    // The bus is unchanged.
    EXPECT_EQ(bus.DeviceAt(0x100), first);
    EXPECT_EQ(bus.DeviceAt(0x10f), first);
    EXPECT_EQ(bus.DeviceAt(0xff), nullptr);
    EXPECT_EQ(bus.DeviceAt(0x110), nullptr);
  }
}

TEST(BusTest, AdjacentRangesAreAllowed) {
  Bus bus("io");
  auto mid = std::make_shared<FakeDevice>("mid");
  auto lo = std::make_shared<FakeDevice>("lo");
  auto hi = std::make_shared<FakeDevice>("hi");
  ASSERT_TRUE(bus.Insert(mid, 0x100, 0x10).ok());
  ASSERT_TRUE(bus.Insert(lo, 0xf0, 0x10).ok());
  ASSERT_TRUE(bus.Insert(hi, 0x110, 0x10).ok());
  EXPECT_EQ(bus.DeviceAt(0xff), lo);
  EXPECT_EQ(bus.DeviceAt(0x100), mid);
  EXPECT_EQ(bus.DeviceAt(0x10f), mid);
  EXPECT_EQ(bus.DeviceAt(0x110), hi);
}

TEST(BusTest, OverlapWithANeighbourInTheMiddleIsRejected) {
  Bus bus("io");
  ASSERT_TRUE(bus.Insert(std::make_shared<FakeDevice>("a"), 0x100, 0x10).ok());
  ASSERT_TRUE(bus.Insert(std::make_shared<FakeDevice>("b"), 0x200, 0x10).ok());
  // Fits between them ...
  EXPECT_TRUE(bus.Insert(std::make_shared<FakeDevice>("c"), 0x110, 0xf0).ok());
  // ... but nothing more does.
  EXPECT_FALSE(bus.Insert(std::make_shared<FakeDevice>("d"), 0x1ff, 1).ok());
  EXPECT_FALSE(bus.Insert(std::make_shared<FakeDevice>("e"), 0x50, 0x100).ok());
}

TEST(BusTest, EmptyAndWrappingRangesAreRejected) {
  Bus bus("mmio");
  auto s = bus.Insert(std::make_shared<FakeDevice>("zero"), 0x1000, 0);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.error().message(), HasSubstr("bad range"));
  EXPECT_FALSE(bus.Insert(std::make_shared<FakeDevice>("wrap"), UINT64_MAX, 2).ok());
  EXPECT_FALSE(bus.Insert(std::make_shared<FakeDevice>("wrap"), 0x1000, UINT64_MAX).ok());
  EXPECT_EQ(bus.DeviceAt(0x1000), nullptr);
  EXPECT_EQ(bus.DeviceAt(UINT64_MAX), nullptr);
  EXPECT_EQ(bus.DeviceAt(0), nullptr);
  // Up to, but not including, the last address is representable.
  EXPECT_TRUE(bus.Insert(std::make_shared<FakeDevice>("top"), UINT64_MAX - 0x10, 0x10).ok());
  EXPECT_NE(bus.DeviceAt(UINT64_MAX - 1), nullptr);
}

TEST(BusTest, AccessStraddlingTheEndIsUnhandled) {
  Bus bus("io");
  auto dev = std::make_shared<FakeDevice>("dev");
  ASSERT_TRUE(bus.Insert(dev, 0x100, 8).ok());
  uint8_t r[4] = {1, 2, 3, 4};
  EXPECT_FALSE(bus.Read(0x106, r));
  EXPECT_EQ(r[0], 0xff);
  EXPECT_EQ(r[3], 0xff);
  const uint8_t w[2] = {1, 2};
  EXPECT_FALSE(bus.Write(0x107, w));
  // Straddling the start too.
  EXPECT_FALSE(bus.Read(0xfe, r));
  EXPECT_TRUE(dev->accesses.empty());
  // Ending exactly at the end is fine.
  EXPECT_TRUE(bus.Read(0x104, r));
  EXPECT_EQ(dev->accesses.size(), 1u);
}

TEST(BusTest, StraddlingIntoANeighbourIsUnhandled) {
  Bus bus("io");
  auto a = std::make_shared<FakeDevice>("a");
  auto b = std::make_shared<FakeDevice>("b");
  ASSERT_TRUE(bus.Insert(a, 0x100, 2).ok());
  ASSERT_TRUE(bus.Insert(b, 0x102, 2).ok());
  uint8_t r[2];
  EXPECT_FALSE(bus.Read(0x101, r));
  EXPECT_TRUE(a->accesses.empty());
  EXPECT_TRUE(b->accesses.empty());
}

TEST(BusTest, UnhandledReadsReturnAllOnes) {
  Bus bus("io");
  for (size_t size : {1u, 2u, 4u, 8u}) {
    std::vector<uint8_t> r(size, 0x5a);
    EXPECT_FALSE(bus.Read(0x80, r));
    EXPECT_EQ(r, std::vector<uint8_t>(size, 0xff));
  }
  const uint8_t w[] = {0};
  EXPECT_FALSE(bus.Write(0x80, w));
  // Reading the same unhandled address again behaves the same (it is only logged once).
  uint8_t r = 0;
  EXPECT_FALSE(bus.Read(0x80, {&r, 1}));
  EXPECT_EQ(r, 0xff);
}

TEST(BusTest, Remove) {
  Bus bus("io");
  auto dev = std::make_shared<FakeDevice>("dev");
  ASSERT_TRUE(bus.Insert(dev, 0x60, 4).ok());
  // Only the base identifies a device.
  EXPECT_FALSE(bus.Remove(0x61).ok());
  EXPECT_EQ(bus.DeviceAt(0x60), dev);

  ASSERT_TRUE(bus.Remove(0x60).ok());
  EXPECT_EQ(bus.DeviceAt(0x60), nullptr);
  uint8_t r = 0;
  EXPECT_FALSE(bus.Read(0x60, {&r, 1}));
  EXPECT_EQ(r, 0xff);
  EXPECT_TRUE(dev->accesses.empty());

  auto s = bus.Remove(0x60);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.error().message(), HasSubstr("nothing inserted"));

  // The range can be used again.
  auto other = std::make_shared<FakeDevice>("other");
  EXPECT_TRUE(bus.Insert(other, 0x60, 8).ok());
  EXPECT_EQ(bus.DeviceAt(0x67), other);
}

TEST(BusTest, RemoveLeavesOtherDevices) {
  Bus bus("io");
  auto a = std::make_shared<FakeDevice>("a");
  auto b = std::make_shared<FakeDevice>("b");
  ASSERT_TRUE(bus.Insert(a, 0x10, 1).ok());
  ASSERT_TRUE(bus.Insert(b, 0x20, 1).ok());
  ASSERT_TRUE(bus.Remove(0x10).ok());
  EXPECT_EQ(bus.DeviceAt(0x10), nullptr);
  EXPECT_EQ(bus.DeviceAt(0x20), b);
}

}  // namespace
TEST(BusTest, SweepingUnhandledAddressesGivesABoundedNumberOfLines) {
  Bus bus("mmio");
  ::testing::internal::CaptureStderr();
  uint8_t b = 0;
  for (uint64_t addr = 0; addr < 10000; ++addr) bus.Write(0x100000 + addr * 8, {&b, 1});
  std::string out = ::testing::internal::GetCapturedStderr();
  size_t lines = std::count(out.begin(), out.end(), '\n');
  EXPECT_GE(lines, 1u);
  EXPECT_LE(lines, 20u) << out.substr(0, 2000);
}

}  // namespace crosvm::devices
