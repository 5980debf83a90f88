// Configuration space behaviour of one function: identification, command register, BAR sizing
// for 32- and 64-bit memory and I/O BARs, the capability list.
#include "devices/pci/pci_config.h"

#include <gtest/gtest.h>

#include <cstring>

namespace crosvm::devices::pci {
namespace {

constexpr PciIds kIds{.vendor = 0x1234,
                      .device = 0x5678,
                      .class_code = 0x018000,
                      .revision = 3,
                      .subsystem_vendor = 0xabcd,
                      .subsystem_id = 0x40};

void Write32(PciConfiguration& c, size_t offset, uint32_t v) {
  c.WriteRegister(offset / 4, 0, {reinterpret_cast<uint8_t*>(&v), 4});
}
void Write16(PciConfiguration& c, size_t offset, uint16_t v) {
  c.WriteRegister(offset / 4, offset % 4, {reinterpret_cast<uint8_t*>(&v), 2});
}
void Write8(PciConfiguration& c, size_t offset, uint8_t v) {
  c.WriteRegister(offset / 4, offset % 4, {&v, 1});
}

TEST(PciConfigTest, Identification) {
  PciConfiguration c(kIds);
  EXPECT_EQ(c.ReadRegister(0), 0x56781234u);
  EXPECT_EQ(c.ReadRegister(2), 0x01800003u);
  EXPECT_EQ(c.ReadRegister(3) & 0x00ff0000, 0u) << "header type 0";
  EXPECT_EQ(c.ReadRegister(0x2c / 4), 0x0040abcdu);
  // Read-only: the guest cannot change them.
  Write32(c, 0, 0xffffffff);
  Write32(c, 8, 0);
  Write32(c, 0x2c, 0);
  EXPECT_EQ(c.ReadRegister(0), 0x56781234u);
  EXPECT_EQ(c.ReadRegister(2), 0x01800003u);
  EXPECT_EQ(c.ReadRegister(0x2c / 4), 0x0040abcdu);
  EXPECT_EQ(c.ReadRegister(64), 0xffffffffu) << "beyond the 256 bytes";
}

TEST(PciConfigTest, CommandRegisterWritableBits) {
  PciConfiguration c(kIds);
  EXPECT_EQ(c.command(), 0);
  Write16(c, kCommand, 0xffff);
  EXPECT_EQ(c.command(), kCommandIo | kCommandMemory | kCommandMaster | kCommandParity |
                             kCommandSerr | kCommandIntxDisable);
  Write16(c, kCommand, kCommandMemory);
  EXPECT_EQ(c.command(), kCommandMemory);
  // Status is not writable (no error bits to clear here).
  Write16(c, kStatus, 0xffff);
  EXPECT_EQ(c.ReadWord(kStatus), 0);
}

TEST(PciConfigTest, Mem32BarSizing) {
  PciConfiguration c(kIds);
  ASSERT_TRUE(c.AddBar({.index = 1, .type = BarType::kMem32, .size = 0x1000}).ok());
  ASSERT_TRUE(c.SetBarAddress(1, 0xd0001000).ok());
  EXPECT_EQ(c.ReadRegister(5), 0xd0001000u);
  Write32(c, 0x14, 0xffffffff);
  EXPECT_EQ(c.ReadRegister(5), 0xfffff000u) << "size mask";
  Write32(c, 0x14, 0xd0002000);
  EXPECT_EQ(c.BarAddress(1), 0xd0002000u);
  Write32(c, 0x14, 0xd0002abc);  // bits below the size are hard-wired to zero
  EXPECT_EQ(c.ReadRegister(5), 0xd0002000u);
  EXPECT_EQ(c.ReadRegister(4), 0u) << "unimplemented BAR0 reads zero";
  Write32(c, 0x10, 0xffffffff);
  EXPECT_EQ(c.ReadRegister(4), 0u);
}

TEST(PciConfigTest, Mem64PrefetchableBarSizing) {
  PciConfiguration c(kIds);
  ASSERT_TRUE(
      c.AddBar(
           {.index = 2, .type = BarType::kMem64, .size = uint64_t{1} << 33, .prefetchable = true})
          .ok());
  EXPECT_EQ(c.ReadRegister(6), 0xcu) << "64-bit, prefetchable";
  Write32(c, 0x18, 0xffffffff);
  Write32(c, 0x1c, 0xffffffff);
  EXPECT_EQ(c.ReadRegister(6), 0x0000000cu);
  EXPECT_EQ(c.ReadRegister(7), 0xfffffffeu);
  ASSERT_TRUE(c.SetBarAddress(2, 0x2000000000).ok());
  EXPECT_EQ(c.BarAddress(2), 0x2000000000u);
  EXPECT_FALSE(c.SetBarAddress(2, 0x2000001000).ok()) << "misaligned";
  EXPECT_FALSE(c.AddBar({.index = 3, .type = BarType::kMem32, .size = 16}).ok())
      << "BAR3 is the upper half of BAR2";
  EXPECT_FALSE(c.AddBar({.index = 5, .type = BarType::kMem64, .size = 16}).ok())
      << "a 64-bit BAR5 has no upper half";
}

TEST(PciConfigTest, IoBarSizing) {
  PciConfiguration c(kIds);
  ASSERT_TRUE(c.AddBar({.index = 0, .type = BarType::kIo, .size = 0x20}).ok());
  EXPECT_EQ(c.ReadRegister(4), 1u);
  Write32(c, 0x10, 0xffffffff);
  EXPECT_EQ(c.ReadRegister(4), 0xffffffe1u);
  Write32(c, 0x10, 0x1020);
  EXPECT_EQ(c.BarAddress(0), 0x1020u);
}

TEST(PciConfigTest, BadBarsAreRefused) {
  PciConfiguration c(kIds);
  EXPECT_FALSE(c.AddBar({.index = 6, .type = BarType::kMem32, .size = 16}).ok());
  EXPECT_FALSE(c.AddBar({.index = 0, .type = BarType::kMem32, .size = 24}).ok());
  EXPECT_FALSE(c.AddBar({.index = 0, .type = BarType::kMem32, .size = 8}).ok());
  EXPECT_FALSE(c.AddBar({.index = 0, .type = BarType::kIo, .size = 512}).ok());
  ASSERT_TRUE(c.AddBar({.index = 0, .type = BarType::kMem32, .size = 16}).ok());
  EXPECT_FALSE(c.AddBar({.index = 0, .type = BarType::kMem32, .size = 16}).ok());
  EXPECT_FALSE(c.SetBarAddress(0, uint64_t{1} << 32).ok()) << "32-bit BAR above 4 GiB";
}

TEST(PciConfigTest, CapabilityListWalk) {
  PciConfiguration c(kIds);
  EXPECT_FALSE(c.ReadWord(kStatus) & kStatusCapList);
  uint8_t a[] = {1, 2};
  uint8_t b[] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  uint8_t b_mask[] = {0, 0xff, 0, 0, 0, 0, 0, 0, 0, 0};
  auto first = c.AddCapability(0x09, a);
  auto second = c.AddCapability(0x11, b, b_mask);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_TRUE(c.ReadWord(kStatus) & kStatusCapList);
  std::vector<std::pair<uint8_t, uint8_t>> seen;  // (offset, id)
  for (uint8_t p = c.ReadByte(kCapabilityPointer); p != 0; p = c.ReadByte(p + 1u)) {
    EXPECT_EQ(p % 4, 0);
    seen.push_back({p, c.ReadByte(p)});
  }
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0], std::make_pair(*first, uint8_t{0x09}));
  EXPECT_EQ(seen[1], std::make_pair(*second, uint8_t{0x11}));
  EXPECT_EQ(c.ReadByte(*first + 2u), 1);
  // Only the masked byte is writable.
  Write32(c, *second, 0xffffffff);
  EXPECT_EQ(c.ReadByte(*second), 0x11);
  EXPECT_EQ(c.ReadByte(*second + 1u), 0) << "next pointer is read-only";
  EXPECT_EQ(c.ReadByte(*second + 2u), 3);
  EXPECT_EQ(c.ReadByte(*second + 3u), 0xff);
  // Capabilities that do not fit are refused.
  std::vector<uint8_t> big(250);
  EXPECT_FALSE(c.AddCapability(0x09, big).ok());
}

TEST(PciConfigTest, InterruptLineWritablePinNot) {
  PciConfiguration c(kIds);
  c.SetInterrupt(17, 1);
  EXPECT_EQ(c.ReadRegister(15) & 0xffff, 0x0111u);
  Write8(c, kInterruptLine, 5);
  Write8(c, kInterruptPin, 4);
  EXPECT_EQ(c.ReadRegister(15) & 0xffff, 0x0105u);
}

TEST(PciConfigTest, OddAccessesAreIgnored) {
  PciConfiguration c(kIds);
  uint8_t four[4] = {0xff, 0xff, 0xff, 0xff};
  c.WriteRegister(1, 2, four);  // crosses the register end
  c.WriteRegister(1, 4, {four, 1});
  c.WriteRegister(64, 0, four);
  EXPECT_EQ(c.command(), 0);
}

}  // namespace
}  // namespace crosvm::devices::pci
