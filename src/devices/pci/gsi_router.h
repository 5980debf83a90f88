// The VM's one GSI routing table. KVM_SET_GSI_ROUTING replaces the whole table, so every user
// of routes (MSI-X vectors of every device) goes through this router, which always installs
// KVM's default routes (GSI 0-15 to the PIC and IOAPIC pins 0-15, GSI 16-23 to IOAPIC pins
// 16-23) plus every MSI route currently set.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <vector>

#include "base/error.h"
#include "devices/pci/msi_router.h"
#include "devices/pci/vm_control.h"

namespace crosvm::devices::pci {

class GsiRouter : public MsiRouter {
 public:
  static constexpr uint32_t kIoapicPins = 24;
  static constexpr uint32_t kFirstMsiGsi = kIoapicPins;
  static constexpr uint32_t kMaxGsi = 1023;

  explicit GsiRouter(VmControl* vm) : vm_(vm) {}

  // MsiRouter. SetMsiRoute and RemoveRoute install the whole table.
  base::Result<uint32_t> AllocateGsi() override;
  base::Status SetMsiRoute(uint32_t gsi, uint64_t address, uint32_t data) override;
  base::Status RemoveRoute(uint32_t gsi) override;

  // The table as it would be installed now.
  std::vector<kvm_irq_routing_entry> Table() const;

 private:
  struct Msi {
    uint64_t address;
    uint32_t data;
  };
  std::vector<kvm_irq_routing_entry> TableLocked() const;

  VmControl* vm_;
  mutable std::mutex mu_;
  uint32_t next_gsi_ = kFirstMsiGsi;
  std::map<uint32_t, Msi> msi_routes_;
};

}  // namespace crosvm::devices::pci
