// What devices need from the hypervisor for fast paths: ioeventfds (guest writes that signal an
// eventfd in the kernel, without a VM exit to user space), irqfds (an eventfd write that raises
// a GSI) and the GSI routing table. An interface so that devices can be tested without KVM.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "base/error.h"

namespace crosvm::devices::pci {

class VmControl {
 public:
  virtual ~VmControl() = default;
  virtual base::Status RegisterIoeventfd(int fd, uint64_t addr, uint32_t len, bool pio,
                                         std::optional<uint64_t> datamatch) = 0;
  virtual base::Status UnregisterIoeventfd(int fd, uint64_t addr, uint32_t len, bool pio,
                                           std::optional<uint64_t> datamatch) = 0;
  // With `resample_fd`: a level-triggered irqfd; KVM lowers the line at the guest's EOI and
  // signals resample_fd, and the device raises it again if it still needs service.
  virtual base::Status RegisterIrqfd(int fd, uint32_t gsi, std::optional<int> resample_fd) = 0;
  virtual base::Status UnregisterIrqfd(int fd, uint32_t gsi) = 0;
  // Replaces the whole routing table.
  virtual base::Status SetGsiRouting(const std::vector<kvm_irq_routing_entry>& entries) = 0;
};

}  // namespace crosvm::devices::pci
