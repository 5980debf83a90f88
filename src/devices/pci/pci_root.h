// The PCI root bus: configuration mechanism #1 (ports 0xcf8-0xcff), a host bridge at 00:00.0,
// devices at 00:01.0 upwards, BAR allocation, and the mapping of BARs on the MMIO and I/O
// buses, which follows the guest's programming (command register decode bits, BAR moves).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

#include "base/error.h"
#include "base/rate_limited_log.h"
#include "devices/bus.h"
#include "devices/pci/address_allocator.h"
#include "devices/pci/pci_device.h"

namespace crosvm::devices::pci {

// One device's legacy interrupt wiring, for the MP table: INTA# of `slot` on IOAPIC `pin`.
struct IntxRoute {
  uint8_t slot;
  uint8_t intx_pin;  // 0 = INTA#
  uint8_t ioapic_pin;
};

class PciRoot {
 public:
  static constexpr uint8_t kMaxSlots = 32;
  static constexpr uint32_t kFirstIntxPin = 16;  // IOAPIC pins 16..23 carry PCI INTx
  static constexpr uint32_t kNumIntxPins = 8;
  static constexpr uint16_t kConfigAddressPort = 0xcf8;
  static constexpr uint64_t kConfigIoSize = 8;  // 0xcf8-0xcff

  PciRoot(Bus* mmio, Bus* io);
  ~PciRoot();
  PciRoot(const PciRoot&) = delete;
  PciRoot& operator=(const PciRoot&) = delete;

  // Puts `device` in the next free slot, programs its BARs with addresses from `alloc` and
  // wires its INTA# to an IOAPIC pin. The BARs decode once the guest enables them in the
  // command register. Returns the slot.
  base::Result<uint8_t> AddDevice(std::shared_ptr<PciDevice> device, SystemAllocator& alloc);
  const std::vector<IntxRoute>& intx_routes() const { return intx_routes_; }

  // Configuration accesses (bus 0 only; function 0 only: every device is single-function).
  // Absent functions read all-ones.
  uint32_t ReadConfig(uint8_t bus, uint8_t dev, uint8_t fn, size_t reg);
  void WriteConfig(uint8_t bus, uint8_t dev, uint8_t fn, size_t reg, size_t offset,
                   std::span<const uint8_t> data);

  // The BusDevice to insert on the I/O bus at 0xcf8 (kConfigIoSize ports).
  std::shared_ptr<BusDevice> config_io() { return config_io_; }

  // Removes every BAR from the buses (teardown).
  void UnmapAll();

  // Where BAR `bar` of `slot` is mapped now, if it is (tests).
  std::optional<uint64_t> MappedAt(uint8_t slot, int bar);

 private:
  struct Slot {
    std::shared_ptr<PciDevice> device;
    std::array<std::optional<uint64_t>, kNumBars> mapped;
  };
  class ConfigIo;
  std::shared_ptr<PciDevice> Device(uint8_t dev);
  void UpdateMappingsLocked(uint8_t slot_index, Slot& slot);
  void UnmapLocked(Slot& slot, const BarInfo& bar);

  Bus* mmio_;
  Bus* io_;
  std::mutex mu_;
  std::map<uint8_t, Slot> slots_;
  std::vector<IntxRoute> intx_routes_;
  std::shared_ptr<BusDevice> config_io_;
  base::RateLimitedLog log_;  // the guest places BARs: what it gets wrong is rate-limited
};

}  // namespace crosvm::devices::pci
