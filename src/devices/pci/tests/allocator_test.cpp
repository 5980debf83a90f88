// The address allocator and the x86 system windows.
#include "devices/pci/address_allocator.h"

#include <gtest/gtest.h>

#include "arch/x86_64/layout.h"

namespace crosvm::devices::pci {
namespace {

TEST(AllocatorTest, AlignedFirstFit) {
  AddressAllocator a("test", 0x1000, 0x10000);
  EXPECT_EQ(*a.Allocate(0x100, 0x100), 0x1000u);
  EXPECT_EQ(*a.Allocate(0x1000, 0x1000), 0x2000u) << "aligned up past the first block";
  EXPECT_EQ(*a.Allocate(0x100, 0x100), 0x1100u) << "the hole before is reused";
  EXPECT_FALSE(a.Allocate(0x20000, 1).ok()) << "larger than the window";
  EXPECT_FALSE(a.Allocate(0, 1).ok());
  EXPECT_FALSE(a.Allocate(0x10, 3).ok()) << "alignment not a power of two";
}

TEST(AllocatorTest, ExhaustionAndRelease) {
  AddressAllocator a("test", 0, 0x4000);
  auto x = a.Allocate(0x2000, 0x2000);
  auto y = a.Allocate(0x2000, 0x2000);
  ASSERT_TRUE(x.ok() && y.ok());
  EXPECT_FALSE(a.Allocate(0x10, 0x10).ok());
  ASSERT_TRUE(a.Release(*x).ok());
  EXPECT_FALSE(a.Release(*x).ok()) << "double release";
  ASSERT_TRUE(a.Release(*y).ok());
  EXPECT_EQ(*a.Allocate(0x4000, 0x4000), 0u) << "released ranges merge";
}

TEST(AllocatorTest, ReservedRangesAreNeverHandedOut) {
  AddressAllocator a("test", 0, 0x10000);
  ASSERT_TRUE(a.Reserve(0x3000, 0x2000).ok());
  ASSERT_TRUE(a.Reserve(0xf000, 0x100000).ok()) << "partly outside the window";
  EXPECT_FALSE(a.Reserve(0x10, 0).ok());
  std::vector<uint64_t> got;
  while (true) {
    auto r = a.Allocate(0x1000, 0x1000);
    if (!r.ok()) break;
    got.push_back(*r);
  }
  EXPECT_EQ(got.size(), 13u);  // 16 pages minus 2 reserved minus the last one
  for (uint64_t g : got) {
    EXPECT_TRUE(g + 0x1000 <= 0x3000 || g >= 0x5000) << std::hex << g;
    EXPECT_LT(g, 0xf000u);
  }
}

TEST(AllocatorTest, X86WindowsKeepTheBenchmarkAddressesFree) {
  auto s = CreateX86SystemAllocator(uint64_t{6} << 30);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->mmio32.base(), arch::kMmioGapStart);
  EXPECT_EQ(s->mmio32.end(), arch::kIoapicAddr);
  EXPECT_EQ(s->mmio64.base(), uint64_t{6} << 30);
  // Fill the 32-bit window with 16 MiB blocks: none may touch 0xd8000000-0xd8ffffff.
  int n = 0;
  while (true) {
    auto r = s->mmio32.Allocate(1 << 24, 1 << 24);
    if (!r.ok()) break;
    ++n;
    EXPECT_NE(*r, 0xd8000000u);
    EXPECT_LT(*r + (1 << 24), arch::kIoapicAddr + 1);
  }
  EXPECT_EQ(n, (0xfec00000 - 0xd0000000) / (1 << 24) - 1);
  // Same for ports: 0x5e0 is never handed out.
  while (true) {
    auto r = s->io.Allocate(4, 4);
    if (!r.ok()) break;
    EXPECT_FALSE(*r <= 0x5e0 && 0x5e0 < *r + 4);
    EXPECT_GE(*r, 0x1000u);
  }
  auto low = CreateX86SystemAllocator(256 << 20);
  ASSERT_TRUE(low.ok());
  EXPECT_EQ(low->mmio64.base(), uint64_t{4} << 30) << "never below 4 GiB";
}

}  // namespace
}  // namespace crosvm::devices::pci
