#include "devices/pci/gsi_router.h"

#include <string>

namespace crosvm::devices::pci {

base::Result<uint32_t> GsiRouter::AllocateGsi() {
  std::lock_guard lock(mu_);
  if (next_gsi_ > kMaxGsi) return base::Error("out of GSIs for MSI routes");
  return next_gsi_++;
}

std::vector<kvm_irq_routing_entry> GsiRouter::TableLocked() const {
  std::vector<kvm_irq_routing_entry> table;
  // KVM's default x86 routing: each legacy IRQ below 16 goes to the PIC pin and the IOAPIC
  // pin of the same number; 16-23 exist only on the IOAPIC.
  for (uint32_t gsi = 0; gsi < kIoapicPins; ++gsi) {
    kvm_irq_routing_entry e{};
    e.gsi = gsi;
    e.type = KVM_IRQ_ROUTING_IRQCHIP;
    e.u.irqchip.irqchip = KVM_IRQCHIP_IOAPIC;
    e.u.irqchip.pin = gsi;
    table.push_back(e);
    if (gsi < 16) {
      e.u.irqchip.irqchip = gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE;
      e.u.irqchip.pin = gsi % 8;
      table.push_back(e);
    }
  }
  for (const auto& [gsi, msi] : msi_routes_) {
    kvm_irq_routing_entry e{};
    e.gsi = gsi;
    e.type = KVM_IRQ_ROUTING_MSI;
    e.u.msi.address_lo = static_cast<uint32_t>(msi.address);
    e.u.msi.address_hi = static_cast<uint32_t>(msi.address >> 32);
    e.u.msi.data = msi.data;
    table.push_back(e);
  }
  return table;
}

std::vector<kvm_irq_routing_entry> GsiRouter::Table() const {
  std::lock_guard lock(mu_);
  return TableLocked();
}

base::Status GsiRouter::SetMsiRoute(uint32_t gsi, uint64_t address, uint32_t data) {
  if (gsi < kFirstMsiGsi || gsi > kMaxGsi) {
    return base::Error("GSI " + std::to_string(gsi) + " is not an MSI GSI");
  }
  std::lock_guard lock(mu_);
  msi_routes_[gsi] = Msi{address, data};
  return vm_->SetGsiRouting(TableLocked());
}

base::Status GsiRouter::RemoveRoute(uint32_t gsi) {
  std::lock_guard lock(mu_);
  if (msi_routes_.erase(gsi) == 0) return base::Ok();
  return vm_->SetGsiRouting(TableLocked());
}

}  // namespace crosvm::devices::pci
