// VmControl on a real KVM VM: the VMM's side of what devices ask of the hypervisor. It lives in
// the VMM layer so that the device libraries (crosvm_pci, crosvm_virtio) do not link KVM.
#pragma once

#include "devices/pci/vm_control.h"
#include "kvm/kvm.h"

namespace crosvm::vmm {

class KvmVmControl : public devices::pci::VmControl {
 public:
  explicit KvmVmControl(kvm::Vm& vm) : vm_(vm) {}
  base::Status RegisterIoeventfd(int fd, uint64_t addr, uint32_t len, bool pio,
                                 std::optional<uint64_t> datamatch) override {
    return vm_.RegisterIoeventfd(fd, addr, len, pio, datamatch);
  }
  base::Status UnregisterIoeventfd(int fd, uint64_t addr, uint32_t len, bool pio,
                                   std::optional<uint64_t> datamatch) override {
    return vm_.UnregisterIoeventfd(fd, addr, len, pio, datamatch);
  }
  base::Status RegisterIrqfd(int fd, uint32_t gsi, std::optional<int> resample_fd) override {
    return vm_.RegisterIrqfd(fd, gsi, resample_fd);
  }
  base::Status UnregisterIrqfd(int fd, uint32_t gsi) override {
    return vm_.UnregisterIrqfd(fd, gsi);
  }
  base::Status SetGsiRouting(const std::vector<kvm_irq_routing_entry>& entries) override {
    return vm_.SetGsiRouting(entries);
  }

 private:
  kvm::Vm& vm_;
};

}  // namespace crosvm::vmm
