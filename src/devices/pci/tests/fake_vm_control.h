// A VmControl that records what a device asked of the hypervisor, for tests without KVM.
#pragma once

#include <mutex>
#include <optional>
#include <set>
#include <tuple>
#include <vector>

#include "devices/pci/vm_control.h"

namespace crosvm::devices::pci {

class FakeVmControl : public VmControl {
 public:
  struct Ioeventfd {
    int fd;
    uint64_t addr;
    uint32_t len;
    bool pio;
    std::optional<uint64_t> datamatch;
    auto operator<=>(const Ioeventfd&) const = default;
  };
  struct Irqfd {
    int fd;
    uint32_t gsi;
    std::optional<int> resample;
    auto operator<=>(const Irqfd&) const = default;
  };

  base::Status RegisterIoeventfd(int fd, uint64_t addr, uint32_t len, bool pio,
                                 std::optional<uint64_t> datamatch) override {
    std::lock_guard lock(mu);
    ioeventfds.insert({fd, addr, len, pio, datamatch});
    return base::Ok();
  }
  base::Status UnregisterIoeventfd(int fd, uint64_t addr, uint32_t len, bool pio,
                                   std::optional<uint64_t> datamatch) override {
    std::lock_guard lock(mu);
    if (ioeventfds.erase({fd, addr, len, pio, datamatch}) == 0) {
      return base::Error("no such ioeventfd");
    }
    return base::Ok();
  }
  base::Status RegisterIrqfd(int fd, uint32_t gsi, std::optional<int> resample) override {
    std::lock_guard lock(mu);
    irqfds.push_back({fd, gsi, resample});
    return base::Ok();
  }
  base::Status UnregisterIrqfd(int fd, uint32_t gsi) override {
    std::lock_guard lock(mu);
    for (auto it = irqfds.begin(); it != irqfds.end(); ++it) {
      if (it->fd == fd && it->gsi == gsi) {
        irqfds.erase(it);
        return base::Ok();
      }
    }
    return base::Error("no such irqfd");
  }
  base::Status SetGsiRouting(const std::vector<kvm_irq_routing_entry>& entries) override {
    std::lock_guard lock(mu);
    routing = entries;
    ++routing_updates;
    return base::Ok();
  }

  std::mutex mu;
  std::set<Ioeventfd> ioeventfds;
  std::vector<Irqfd> irqfds;
  std::vector<kvm_irq_routing_entry> routing;
  int routing_updates = 0;
};

}  // namespace crosvm::devices::pci
