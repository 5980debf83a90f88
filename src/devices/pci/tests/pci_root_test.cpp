// The root bus through configuration mechanism #1 (the BusDevice at 0xcf8), BAR allocation,
// INTx assignment and BAR mapping on the buses as the guest programs the devices.
#include "devices/pci/pci_root.h"

#include <gtest/gtest.h>

#include <cstring>

#include "arch/x86_64/layout.h"

namespace crosvm::devices::pci {
namespace {

// A device with a 32-bit memory BAR, a 64-bit one and an I/O BAR, that records its mappings.
class TestDevice : public SimplePciDevice {
 public:
  TestDevice()
      : SimplePciDevice("test device", PciIds{.vendor = 0x1af4,
                                              .device = 0x1044,
                                              .class_code = kClassOther,
                                              .revision = 1,
                                              .subsystem_vendor = 0,
                                              .subsystem_id = 0}) {
    EXPECT_TRUE(config().AddBar({.index = 0, .type = BarType::kMem32, .size = 0x1000}).ok());
    EXPECT_TRUE(config().AddBar({.index = 2, .type = BarType::kMem64, .size = 0x4000}).ok());
    EXPECT_TRUE(config().AddBar({.index = 4, .type = BarType::kIo, .size = 0x20}).ok());
  }
  void ReadBar(int bar, uint64_t offset, std::span<uint8_t> data) override {
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(bar * 16 + offset + i);
  }
  void OnBarMapped(int bar, uint64_t addr) override { events.push_back({bar, addr, true}); }
  void OnBarUnmapped(int bar, uint64_t addr) override { events.push_back({bar, addr, false}); }
  struct Event {
    int bar;
    uint64_t addr;
    bool mapped;
    bool operator==(const Event&) const = default;
  };
  std::vector<Event> events;
};

class PciRootTest : public ::testing::Test {
 protected:
  PciRootTest() : root_(&mmio_, &io_), alloc_(*CreateX86SystemAllocator(256 << 20)) {
    EXPECT_TRUE(
        io_.Insert(root_.config_io(), PciRoot::kConfigAddressPort, PciRoot::kConfigIoSize).ok());
  }
  // Mechanism #1 as a guest does it.
  uint32_t CfgRead(uint8_t dev, uint8_t reg_offset, size_t size = 4) {
    uint32_t addr = 0x80000000u | (uint32_t{dev} << 11) | (reg_offset & 0xfc);
    io_.Write(0xcf8, {reinterpret_cast<uint8_t*>(&addr), 4});
    uint32_t v = 0;
    io_.Read(0xcfc + (reg_offset & 3), {reinterpret_cast<uint8_t*>(&v), size});
    return v;
  }
  void CfgWrite(uint8_t dev, uint8_t reg_offset, uint32_t v, size_t size = 4) {
    uint32_t addr = 0x80000000u | (uint32_t{dev} << 11) | (reg_offset & 0xfc);
    io_.Write(0xcf8, {reinterpret_cast<uint8_t*>(&addr), 4});
    io_.Write(0xcfc + (reg_offset & 3), {reinterpret_cast<uint8_t*>(&v), size});
  }

  Bus mmio_{"mmio"};
  Bus io_{"io"};
  PciRoot root_;
  SystemAllocator alloc_;
};

TEST_F(PciRootTest, AddressRegisterAndHostBridge) {
  uint32_t a = 0x80001234;
  io_.Write(0xcf8, {reinterpret_cast<uint8_t*>(&a), 4});
  uint32_t back = 0;
  io_.Read(0xcf8, {reinterpret_cast<uint8_t*>(&back), 4});
  EXPECT_EQ(back, 0x80001234u);
  EXPECT_EQ(CfgRead(0, 0x0a, 2), 0x0600u) << "host bridge class";
  EXPECT_EQ(CfgRead(0, 0) & 0xffff, 0x1b36u);
  EXPECT_EQ(CfgRead(5, 0), 0xffffffffu) << "empty slot";
  // Enable bit clear: no configuration cycle.
  uint32_t off = 0;
  io_.Write(0xcf8, {reinterpret_cast<uint8_t*>(&off), 4});
  uint32_t v = 0;
  io_.Read(0xcfc, {reinterpret_cast<uint8_t*>(&v), 4});
  EXPECT_EQ(v, 0xffffffffu);
  // Other functions and buses are absent.
  uint32_t fn1 = 0x80000100;
  io_.Write(0xcf8, {reinterpret_cast<uint8_t*>(&fn1), 4});
  io_.Read(0xcfc, {reinterpret_cast<uint8_t*>(&v), 4});
  EXPECT_EQ(v, 0xffffffffu);
  uint32_t bus1 = 0x80010000;
  io_.Write(0xcf8, {reinterpret_cast<uint8_t*>(&bus1), 4});
  io_.Read(0xcfc, {reinterpret_cast<uint8_t*>(&v), 4});
  EXPECT_EQ(v, 0xffffffffu);
}

TEST_F(PciRootTest, ExtendedRegistersDoNotAliasTheFirst256Bytes) {
  // AMD extended configuration access: register 0x100 of the host bridge.
  uint32_t a = 0x81000000u;
  io_.Write(0xcf8, {reinterpret_cast<uint8_t*>(&a), 4});
  uint32_t v = 0;
  io_.Read(0xcfc, {reinterpret_cast<uint8_t*>(&v), 4});
  EXPECT_EQ(v, 0xffffffffu);
  uint32_t cmd = 0xffff;
  io_.Write(0xcfc, {reinterpret_cast<uint8_t*>(&cmd), 4});
  EXPECT_EQ(CfgRead(0, 0) & 0xffff, 0x1b36u);
}

TEST_F(PciRootTest, ByteAndWordAccessesThroughTheDataPort) {
  ASSERT_TRUE(root_.AddDevice(std::make_shared<TestDevice>(), alloc_).ok());
  EXPECT_EQ(CfgRead(1, 0x00, 1), 0xf4u);
  EXPECT_EQ(CfgRead(1, 0x01, 1), 0x1au);
  EXPECT_EQ(CfgRead(1, 0x02, 2), 0x1044u);
  EXPECT_EQ(CfgRead(1, 0x03, 1), 0x10u);
  CfgWrite(1, 0x3c, 9, 1);
  EXPECT_EQ(CfgRead(1, 0x3c, 1), 9u);
  EXPECT_EQ(CfgRead(1, 0x3d, 1), 1u) << "INTA#";
}

TEST_F(PciRootTest, AddDeviceAllocatesBarsAndIntx) {
  auto dev = std::make_shared<TestDevice>();
  auto slot = root_.AddDevice(dev, alloc_);
  ASSERT_TRUE(slot.ok());
  EXPECT_EQ(*slot, 1);
  uint64_t bar0 = dev->BarAddress(0), bar2 = dev->BarAddress(2), bar4 = dev->BarAddress(4);
  EXPECT_GE(bar0, arch::kMmioGapStart);
  EXPECT_EQ(bar0 % 0x1000, 0u);
  EXPECT_GE(bar2, arch::kMmioGapStart);
  EXPECT_LT(bar2, arch::kMmioGapEnd) << "small 64-bit BARs go below 4 GiB";
  EXPECT_EQ(bar2 % 0x4000, 0u);
  EXPECT_GE(bar4, 0x1000u);
  EXPECT_EQ(bar4 % 0x20, 0u);
  for (int i = 0; i < 9; ++i)
    ASSERT_TRUE(root_.AddDevice(std::make_shared<TestDevice>(), alloc_).ok());
  const auto& routes = root_.intx_routes();
  ASSERT_EQ(routes.size(), 10u);
  for (size_t i = 0; i < routes.size(); ++i) {
    EXPECT_EQ(routes[i].slot, i + 1);
    EXPECT_EQ(routes[i].intx_pin, 0);
    EXPECT_EQ(routes[i].ioapic_pin, 16 + i % 8) << "pins 16..23, shared round-robin";
  }
  EXPECT_EQ(CfgRead(1, 0x3c, 1), 16u);
  EXPECT_EQ(CfgRead(10, 0x3c, 1), 17u);
}

TEST_F(PciRootTest, BarsDecodeOnlyWhenEnabled) {
  auto dev = std::make_shared<TestDevice>();
  ASSERT_TRUE(root_.AddDevice(dev, alloc_).ok());
  uint64_t bar0 = dev->BarAddress(0), bar2 = dev->BarAddress(2), bar4 = dev->BarAddress(4);
  EXPECT_EQ(mmio_.DeviceAt(bar0), nullptr);
  CfgWrite(1, 0x04, kCommandMemory, 2);
  EXPECT_NE(mmio_.DeviceAt(bar0), nullptr);
  EXPECT_NE(mmio_.DeviceAt(bar2 + 0x3fff), nullptr);
  EXPECT_EQ(io_.DeviceAt(bar4), nullptr) << "I/O decoding still off";
  uint8_t b = 0;
  mmio_.Read(bar2 + 5, {&b, 1});
  EXPECT_EQ(b, 2 * 16 + 5) << "the access reaches BAR2 at its offset";
  CfgWrite(1, 0x04, kCommandMemory | kCommandIo, 2);
  EXPECT_NE(io_.DeviceAt(bar4 + 0x1f), nullptr);
  CfgWrite(1, 0x04, 0, 2);
  EXPECT_EQ(mmio_.DeviceAt(bar0), nullptr);
  EXPECT_EQ(io_.DeviceAt(bar4), nullptr);
  EXPECT_EQ(dev->events.size(), 6u);
  EXPECT_EQ(root_.MappedAt(1, 0), std::nullopt);
}

TEST_F(PciRootTest, GuestMovesABar) {
  auto dev = std::make_shared<TestDevice>();
  ASSERT_TRUE(root_.AddDevice(dev, alloc_).ok());
  CfgWrite(1, 0x04, kCommandMemory, 2);
  uint64_t old = dev->BarAddress(0);
  dev->events.clear();
  CfgWrite(1, 0x10, 0xe0000000);
  EXPECT_EQ(mmio_.DeviceAt(old), nullptr);
  EXPECT_NE(mmio_.DeviceAt(0xe0000000), nullptr);
  EXPECT_EQ(root_.MappedAt(1, 0), 0xe0000000u);
  ASSERT_EQ(dev->events.size(), 2u);
  EXPECT_EQ(dev->events[0], (TestDevice::Event{0, old, false}));
  EXPECT_EQ(dev->events[1], (TestDevice::Event{0, 0xe0000000, true}));
  // A 64-bit BAR moved above 4 GiB, one half at a time.
  CfgWrite(1, 0x1c, 0x10);
  CfgWrite(1, 0x18, 0x0);
  EXPECT_EQ(root_.MappedAt(1, 2), 0x1000000000u);
  EXPECT_NE(mmio_.DeviceAt(0x1000000000), nullptr);
}

TEST_F(PciRootTest, SizingWithDecodeOnDoesNotMapAtTheMask) {
  auto dev = std::make_shared<TestDevice>();
  ASSERT_TRUE(root_.AddDevice(dev, alloc_).ok());
  CfgWrite(1, 0x04, kCommandMemory, 2);
  uint64_t bar2 = dev->BarAddress(2);
  CfgWrite(1, 0x18, 0xffffffff);
  CfgWrite(1, 0x1c, 0xffffffff);
  EXPECT_EQ(CfgRead(1, 0x18), 0xffffc004u);
  EXPECT_EQ(CfgRead(1, 0x1c), 0xffffffffu);
  // 0xffffffffffffc000 + 0x4000 wraps: the BAR decodes nowhere while it is sized.
  EXPECT_EQ(root_.MappedAt(1, 2), std::nullopt);
  CfgWrite(1, 0x18, static_cast<uint32_t>(bar2));
  CfgWrite(1, 0x1c, static_cast<uint32_t>(bar2 >> 32));
  EXPECT_EQ(root_.MappedAt(1, 2), bar2);
}

TEST_F(PciRootTest, BarPlacedOverAnotherDeviceDoesNotDecode) {
  auto a = std::make_shared<TestDevice>();
  auto b = std::make_shared<TestDevice>();
  ASSERT_TRUE(root_.AddDevice(a, alloc_).ok());
  ASSERT_TRUE(root_.AddDevice(b, alloc_).ok());
  CfgWrite(1, 0x04, kCommandMemory, 2);
  CfgWrite(2, 0x04, kCommandMemory, 2);
  CfgWrite(2, 0x10, static_cast<uint32_t>(a->BarAddress(0)));
  EXPECT_EQ(root_.MappedAt(2, 0), std::nullopt);
  EXPECT_EQ(root_.MappedAt(1, 0), a->BarAddress(0)) << "the first device keeps its range";
  // An I/O BAR moved over the config ports does not decode either.
  CfgWrite(2, 0x04, kCommandIo, 2);
  CfgWrite(2, 0x20, 0xce0);
  EXPECT_EQ(root_.MappedAt(2, 4), std::nullopt);
  EXPECT_EQ(CfgRead(0, 0) & 0xffff, 0x1b36u) << "0xcf8 still works";
}

TEST_F(PciRootTest, UnmapAllRemovesEverything) {
  auto dev = std::make_shared<TestDevice>();
  ASSERT_TRUE(root_.AddDevice(dev, alloc_).ok());
  CfgWrite(1, 0x04, kCommandMemory | kCommandIo, 2);
  root_.UnmapAll();
  EXPECT_EQ(mmio_.DeviceAt(dev->BarAddress(0)), nullptr);
  EXPECT_EQ(io_.DeviceAt(dev->BarAddress(4)), nullptr);
}

TEST_F(PciRootTest, BusIsFullAfter31Devices) {
  for (int i = 0; i < 31; ++i) {
    ASSERT_TRUE(
        root_.AddDevice(std::make_shared<SimplePciDevice>("d", PciIds{.vendor = 1}), alloc_).ok());
  }
  EXPECT_FALSE(
      root_.AddDevice(std::make_shared<SimplePciDevice>("d", PciIds{.vendor = 1}), alloc_).ok());
}

}  // namespace
}  // namespace crosvm::devices::pci
