// libFuzzer target: PCI configuration space as a guest drives it. A PciRoot with a device that
// has a 32-bit memory, a 64-bit memory and an I/O BAR, and a virtio PCI transport (MSI-X, the
// VIRTIO_PCI_CAP_PCI_CFG window, a device whose activation does nothing), is driven by a
// sequence of 8-byte operations decoded from the input: configuration reads and writes through
// mechanism #1 (ports 0xcf8-0xcff, any width and offset) or directly, BAR reprogramming with
// decode enabled (BAR moves, overlapping BARs), and accesses to wherever the BARs are mapped
// now. Crashes, sanitizer reports, leaks, and a BAR PciRoot reports as mapped without a device
// on the bus there, are failures.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "base/logging.h"
#include "devices/bus.h"
#include "devices/pci/address_allocator.h"
#include "devices/pci/gsi_router.h"
#include "devices/pci/pci_root.h"
#include "devices/pci/tests/fake_vm_control.h"
#include "devices/virtio/virtio.h"
#include "devices/virtio/virtio_device.h"
#include "devices/virtio/virtio_pci.h"
#include "memory/guest_memory.h"

#include "fuzz_check.h"

namespace {

namespace pci = crosvm::devices::pci;
namespace virtio = crosvm::devices::virtio;
using crosvm::devices::Bus;

class BarsDevice : public pci::SimplePciDevice {
 public:
  BarsDevice()
      : SimplePciDevice("fuzz device", pci::PciIds{.vendor = 0x1af4,
                                                   .device = 0x10f0,
                                                   .class_code = pci::kClassOther,
                                                   .revision = 1,
                                                   .subsystem_vendor = 0,
                                                   .subsystem_id = 0}) {
    (void)config().AddBar({.index = 0, .type = pci::BarType::kMem32, .size = 0x1000});
    (void)config().AddBar(
        {.index = 2, .type = pci::BarType::kMem64, .size = 0x4000, .prefetchable = true});
    (void)config().AddBar({.index = 4, .type = pci::BarType::kIo, .size = 0x20});
  }
};

// Two queues; activation and reset do nothing (no worker thread, no guest memory access).
class IdleDevice : public virtio::VirtioDevice {
 public:
  uint32_t DeviceType() const override { return 4; }  // entropy source
  std::string DebugName() const override { return "fuzz virtio"; }
  uint32_t PciClassCode() const override { return pci::kClassOther; }
  std::vector<uint16_t> QueueMaxSizes() const override { return {64, 16}; }
  uint64_t Features() const override {
    return virtio::Bit(virtio::kFeatureRingEventIdx) |
           virtio::Bit(virtio::kFeatureRingIndirectDesc);
  }
  crosvm::base::Status Activate(virtio::ActivateContext) override { return crosvm::base::Ok(); }
  void Reset() override {}
};

crosvm::memory::GuestMemory& Memory() {
  static auto* mem = new crosvm::memory::GuestMemory(
      std::move(crosvm::memory::GuestMemory::Create({{0, 64 << 10}}).value()));
  return *mem;
}

struct Machine {
  Bus mmio{"mmio"};
  Bus io{"io"};
  pci::FakeVmControl vm;
  pci::GsiRouter router{&vm};
  pci::PciRoot root{&mmio, &io};
  std::array<uint8_t, 2> slots{};
  std::array<std::shared_ptr<pci::PciDevice>, 2> devices;
};

uint32_t Le32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// One operation: kind, device (slot index), register/offset, width, 4 bytes of value.
void Run(Machine& m, const uint8_t* op) {
  const uint8_t kind = op[0] % 8;
  const uint8_t which = op[1] & 1;
  const uint8_t dev = (op[1] & 0x80) ? (op[1] >> 1) & 0x1f : m.slots[which];
  const uint8_t reg = op[2];
  const size_t width = size_t{1} << (op[3] & 3);  // 1, 2, 4 or 8
  const uint32_t value = Le32(op + 4);
  uint8_t buf[8] = {};
  std::memcpy(buf, &value, 4);
  std::memcpy(buf + 4, &value, 4);
  switch (kind) {
    case 0:    // mechanism #1 write
    case 1: {  // mechanism #1 read
      uint32_t addr = 0x80000000u | (uint32_t{dev} << 11) | (reg & 0xfc);
      if (op[3] & 0x80) addr = value;  // a raw address register value: bus, function, enable
      m.io.Write(pci::PciRoot::kConfigAddressPort, {reinterpret_cast<uint8_t*>(&addr), 4});
      uint64_t port = 0xcfc + ((op[3] >> 2) & 3);
      if (kind == 0) {
        m.io.Write(port, {buf, width});
      } else {
        m.io.Read(port, {buf, width});
      }
      break;
    }
    case 2:  // direct write, any offset within (or across) a register
      m.root.WriteConfig(op[3] >> 6, dev, (op[3] >> 2) & 7, reg >> 2, reg & 3, {buf, width});
      break;
    case 3:
      (void)m.root.ReadConfig(op[3] >> 6, dev, (op[3] >> 2) & 7, reg >> 2);
      break;
    case 4: {  // move a BAR and turn decoding on: the way firmware and Linux do it
      const size_t bar_reg = pci::kBar0 / 4 + (reg % 6);
      uint32_t v = value;
      m.root.WriteConfig(0, dev, 0, bar_reg, 0, {reinterpret_cast<uint8_t*>(&v), 4});
      uint16_t command =
          static_cast<uint16_t>((op[3] & 0x10 ? pci::kCommandMemory : 0) |
                                (op[3] & 0x20 ? pci::kCommandIo : 0) | pci::kCommandMaster);
      m.root.WriteConfig(0, dev, 0, pci::kCommand / 4, 0,
                         {reinterpret_cast<uint8_t*>(&command), 2});
      break;
    }
    case 5:    // access a BAR where it is mapped now
    case 6: {  // (or, with no mapping, wherever the value points)
      const int bar = reg % 6;
      auto at = m.root.MappedAt(m.slots[which], bar);
      bool io = (op[3] & 0x40) != 0;
      uint64_t addr = at ? *at + (value & 0x7fff) : value;
      Bus& bus = io ? m.io : m.mmio;
      if (kind == 5) {
        bus.Write(addr, {buf, width});
      } else {
        bus.Read(addr, {buf, width});
      }
      break;
    }
    case 7:  // the virtio common configuration and notification area, through BAR0
      if (auto at = m.root.MappedAt(m.slots[1], 0)) {
        uint64_t offset = (op[3] & 0x40) ? virtio::kNotifyOffset + (reg & 7) : reg % 0x40;
        m.mmio.Write(*at + offset, {buf, width});
      }
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  crosvm::base::SetLogLevel(crosvm::base::LogLevel::kError);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0 || size > 8 * 4096) return 0;
  auto alloc = pci::CreateX86SystemAllocator(256 << 20);
  FUZZ_CHECK(alloc.ok());
  Machine m;
  FUZZ_CHECK(
      m.io.Insert(m.root.config_io(), pci::PciRoot::kConfigAddressPort, pci::PciRoot::kConfigIoSize)
          .ok());
  m.devices[0] = std::make_shared<BarsDevice>();
  auto vdev = virtio::VirtioPciDevice::Create(std::make_unique<IdleDevice>(), &Memory(), &m.vm,
                                              &m.router, data[0] & 1);
  FUZZ_CHECK(vdev.ok());
  m.devices[1] = *vdev;
  for (int i = 0; i < 2; ++i) {
    auto slot = m.root.AddDevice(m.devices[i], *alloc);
    FUZZ_CHECK(slot.ok());
    m.slots[i] = *slot;
  }
  for (size_t i = 1; i + 8 <= size; i += 8) {
    Run(m, data + i);
    // Whatever the root says is mapped must be on the bus at that address.
    for (int d = 0; d < 2; ++d) {
      for (int bar = 0; bar < 6; ++bar) {
        auto at = m.root.MappedAt(m.slots[d], bar);
        FUZZ_CHECK(!at || m.mmio.DeviceAt(*at) || m.io.DeviceAt(*at));
      }
    }
  }
  (*vdev)->Shutdown();
  m.root.UnmapAll();
  return 0;
}
