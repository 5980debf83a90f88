#include "devices/pci/pci_root.h"

#include <atomic>
#include <cstring>

#include "base/logging.h"
#include "base/strings.h"

namespace crosvm::devices::pci {
namespace {

using base::Hex;

// A BAR of a PCI device as seen on the MMIO or I/O bus.
class BarDevice : public BusDevice {
 public:
  BarDevice(std::shared_ptr<PciDevice> device, int bar) : device_(std::move(device)), bar_(bar) {}
  std::string DebugName() const override {
    return device_->DebugName() + " BAR" + std::to_string(bar_);
  }
  void Read(uint64_t offset, std::span<uint8_t> data) override {
    device_->ReadBar(bar_, offset, data);
  }
  void Write(uint64_t offset, std::span<const uint8_t> data) override {
    device_->WriteBar(bar_, offset, data);
  }

 private:
  std::shared_ptr<PciDevice> device_;
  int bar_;
};

// Host bridge ids: Red Hat's "QEMU PCIe host bridge" id pair is widely known to guests and has
// no quirks in Linux; the class (0x0600) is what Linux's type-1 sanity check looks for.
constexpr PciIds kHostBridgeIds{.vendor = 0x1b36,
                                .device = 0x0008,
                                .class_code = kClassHostBridge,
                                .revision = 0,
                                .subsystem_vendor = 0,
                                .subsystem_id = 0};

}  // namespace

// Configuration mechanism #1: the 32-bit address register at 0xcf8 (enable bit 31, bus 23:16,
// device 15:11, function 10:8, register 7:2) and the data window at 0xcfc-0xcff.
class PciRoot::ConfigIo : public BusDevice {
 public:
  explicit ConfigIo(PciRoot* root) : root_(root) {}
  std::string DebugName() const override { return "PCI config (0xcf8)"; }

  void Read(uint64_t offset, std::span<uint8_t> data) override {
    std::memset(data.data(), 0xff, data.size());
    if (offset == 0 && data.size() == 4) {
      uint32_t a = address_.load();
      std::memcpy(data.data(), &a, 4);
      return;
    }
    if (offset < 4) return;
    size_t byte = offset - 4;
    if (byte + data.size() > 4) return;
    uint32_t a = address_.load();
    if (!(a & 0x80000000u) || ExtendedRegister(a)) return;
    uint32_t v = root_->ReadConfig(static_cast<uint8_t>(a >> 16), (a >> 11) & 0x1f, (a >> 8) & 7,
                                   (a & 0xfc) >> 2);
    v >>= 8 * byte;
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(v >> (8 * i));
  }

  void Write(uint64_t offset, std::span<const uint8_t> data) override {
    if (offset == 0 && data.size() == 4) {
      uint32_t a;
      std::memcpy(&a, data.data(), 4);
      address_.store(a & 0x8ffffffcu);  // reserved bits 30:28 and 1:0 read as zero
      return;
    }
    if (offset < 4) return;  // byte writes to 0xcf8-0xcfb are not address-register writes
    size_t byte = offset - 4;
    if (byte + data.size() > 4) return;
    uint32_t a = address_.load();
    if (!(a & 0x80000000u) || ExtendedRegister(a)) return;
    root_->WriteConfig(static_cast<uint8_t>(a >> 16), (a >> 11) & 0x1f, (a >> 8) & 7,
                       (a & 0xfc) >> 2, byte, data);
  }

 private:
  // Bits 27:24 select registers 0x100-0xfff (AMD's extended configuration access through
  // 0xcf8, which Linux uses on AMD hosts). Conventional PCI functions have none: reads return
  // all-ones and writes are dropped, rather than aliasing the first 256 bytes.
  static bool ExtendedRegister(uint32_t address) { return (address >> 24) & 0xf; }

  PciRoot* root_;
  std::atomic<uint32_t> address_{0};
};

PciRoot::PciRoot(Bus* mmio, Bus* io) : mmio_(mmio), io_(io) {
  slots_[0] = Slot{std::make_shared<SimplePciDevice>("PCI host bridge", kHostBridgeIds), {}};
  config_io_ = std::make_shared<ConfigIo>(this);
}

PciRoot::~PciRoot() {
  UnmapAll();
}

base::Result<uint8_t> PciRoot::AddDevice(std::shared_ptr<PciDevice> device,
                                         SystemAllocator& alloc) {
  std::lock_guard lock(mu_);
  uint8_t slot = 1;
  while (slot < kMaxSlots && slots_.count(slot)) ++slot;
  if (slot >= kMaxSlots) return base::Error("PCI bus 0 is full (32 slots)");

  for (const BarInfo& bar : device->Bars()) {
    base::Result<uint64_t> addr = base::Error("");
    if (bar.type == BarType::kIo) {
      addr = alloc.io.Allocate(bar.size, bar.size);
    } else if (bar.type == BarType::kMem32) {
      addr = alloc.mmio32.Allocate(bar.size, bar.size);
    } else {
      // 64-bit BARs go below 4 GiB while there is room for them (guests that map only the
      // first 4 GiB, like the test guests, can then reach them), large ones above.
      constexpr uint64_t kLargeBar = uint64_t{256} << 20;
      if (bar.size < kLargeBar) addr = alloc.mmio32.Allocate(bar.size, bar.size);
      if (!addr.ok()) addr = alloc.mmio64.Allocate(bar.size, bar.size);
    }
    if (!addr.ok()) {
      return addr.error().Wrap(device->DebugName() + " BAR" + std::to_string(bar.index));
    }
    CROSVM_RETURN_IF_ERROR(device->SetBarAddress(bar.index, *addr));
  }
  uint32_t ioapic_pin = kFirstIntxPin + (slot - 1u) % kNumIntxPins;
  CROSVM_RETURN_IF_ERROR(device->AssignIntx(ioapic_pin));
  intx_routes_.push_back(IntxRoute{slot, 0, static_cast<uint8_t>(ioapic_pin)});
  CROSVM_LOG(INFO) << "PCI 00:" << (slot < 16 ? "0" : "") << std::hex << int{slot} << std::dec
                   << ".0: " << device->DebugName() << ", INTA# on IOAPIC pin " << ioapic_pin;
  slots_[slot] = Slot{std::move(device), {}};
  return slot;
}

std::shared_ptr<PciDevice> PciRoot::Device(uint8_t dev) {
  std::lock_guard lock(mu_);
  auto it = slots_.find(dev);
  return it == slots_.end() ? nullptr : it->second.device;
}

// The device is called without the root lock: a configuration access can take long (a virtio
// reset through the VIRTIO_PCI_CAP_PCI_CFG window stops the device's worker), and the other
// vCPUs' accesses to other devices must not wait behind it.
uint32_t PciRoot::ReadConfig(uint8_t bus, uint8_t dev, uint8_t fn, size_t reg) {
  if (bus != 0 || fn != 0 || reg >= kConfigSize / 4) return 0xffffffff;
  auto device = Device(dev);
  if (!device) return 0xffffffff;
  return device->ReadConfigRegister(reg);
}

void PciRoot::WriteConfig(uint8_t bus, uint8_t dev, uint8_t fn, size_t reg, size_t offset,
                          std::span<const uint8_t> data) {
  if (bus != 0 || fn != 0 || reg >= kConfigSize / 4) return;
  auto device = Device(dev);
  if (!device) return;
  device->WriteConfigRegister(reg, offset, data);
  // The command register (decode enables) or a BAR changed: the bus mappings follow. They are
  // recomputed from the device's registers under the lock, so concurrent writers converge.
  constexpr size_t kCommandReg = kCommand / 4;
  constexpr size_t kFirstBarReg = kBar0 / 4;
  if (reg == kCommandReg || (reg >= kFirstBarReg && reg < kFirstBarReg + kNumBars)) {
    std::lock_guard lock(mu_);
    auto it = slots_.find(dev);
    if (it != slots_.end()) UpdateMappingsLocked(dev, it->second);
  }
}

void PciRoot::UnmapLocked(Slot& slot, const BarInfo& bar) {
  auto& mapped = slot.mapped[bar.index];
  if (!mapped) return;
  Bus* bus = bar.type == BarType::kIo ? io_ : mmio_;
  (void)bus->Remove(*mapped);
  slot.device->OnBarUnmapped(bar.index, *mapped);
  mapped.reset();
}

void PciRoot::UpdateMappingsLocked(uint8_t slot_index, Slot& slot) {
  uint16_t command = slot.device->Command();
  for (const BarInfo& bar : slot.device->Bars()) {
    bool io = bar.type == BarType::kIo;
    bool decode = command & (io ? kCommandIo : kCommandMemory);
    uint64_t addr = slot.device->BarAddress(bar.index);
    // Address 0 is "unassigned"; an address whose range wraps is where a BAR sits while it is
    // sized (all-ones written): neither decodes.
    bool valid = addr != 0 && addr + bar.size > addr && (!io || addr + bar.size <= 0x10000);
    std::optional<uint64_t> want;
    if (decode && valid) want = addr;
    auto& mapped = slot.mapped[bar.index];
    if (mapped == want) continue;
    UnmapLocked(slot, bar);
    if (!want) continue;
    Bus* bus = io ? io_ : mmio_;
    auto status = bus->Insert(std::make_shared<BarDevice>(slot.device, bar.index), *want, bar.size);
    if (!status.ok()) {
      // The guest placed the BAR over something else: it does not decode there.
      CROSVM_LOG_RATE_LIMITED(log_, WARNING)
          << "PCI 00:" << std::hex << int{slot_index} << std::dec << ".0 BAR" << bar.index << " at "
          << Hex(*want) << " is not mapped: " << status.error().ToString();
      continue;
    }
    mapped = want;
    slot.device->OnBarMapped(bar.index, *want);
  }
}

void PciRoot::UnmapAll() {
  std::lock_guard lock(mu_);
  for (auto& [index, slot] : slots_) {
    for (const BarInfo& bar : slot.device->Bars()) UnmapLocked(slot, bar);
  }
}

std::optional<uint64_t> PciRoot::MappedAt(uint8_t slot, int bar) {
  std::lock_guard lock(mu_);
  auto it = slots_.find(slot);
  if (it == slots_.end() || bar < 0 || bar >= static_cast<int>(kNumBars)) return std::nullopt;
  return it->second.mapped[bar];
}

}  // namespace crosvm::devices::pci
