// Effects instead of callbacks. A device calls pci::VmControl and pci::MsiRouter; in a device
// process those calls must not reach back into the VM process (which is blocked waiting for
// the reply), and must not touch the child's copies of the VM's objects (the routing table in
// a child's GsiRouter copy is stale). So each device gets, in the VM process, a
// DeviceVmControl and a DeviceMsiRouter that forward to the real objects; after fork() the
// child switches them to an EffectRecorder (UseRecorder), whose effects the DeviceServer sends
// with its reply and the ProxyDevice applies, in order, through an EffectApplier.
#pragma once

#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "base/error.h"
#include "base/rate_limited_log.h"
#include "devices/pci/msi_router.h"
#include "devices/pci/vm_control.h"
#include "devices/proxy/proxy_protocol.h"

namespace crosvm::devices::proxy {

// The effects recorded since the last Take(). Thread-safe: a device's worker thread may
// record too; such an effect travels with the next reply and is warned about once.
class EffectRecorder {
 public:
  // Records a call; fds are dup'ed (close-on-exec), so the caller keeps its own.
  base::Status RecordIoeventfd(bool reg, int fd, uint64_t addr, uint32_t len, bool pio,
                               std::optional<uint64_t> datamatch);
  base::Status RecordRegisterIrqfd(int fd, uint32_t gsi, std::optional<int> resample_fd);
  base::Status RecordUnregisterIrqfd(int fd, uint32_t gsi);
  void RecordSetMsiRoute(uint32_t gsi, uint64_t address, uint32_t data);
  void RecordRemoveRoute(uint32_t gsi);

  // The server brackets each request: effects recorded by another thread, or between
  // requests, are the ones warned about.
  void BeginRequest();
  void EndRequest();
  std::vector<Effect> Take();
  // The server has stopped: what the device records from now on (its destructor's
  // unregistrations) is dropped without a warning.
  void Close();

  // Effects recorded outside a request so far (tests).
  uint64_t outside_request() const { return outside_.load(); }

 private:
  void Add(Effect e);

  std::mutex mu_;
  std::vector<Effect> pending_;
  std::optional<std::thread::id> request_thread_;
  std::atomic<uint64_t> outside_{0};
  bool warned_ = false;
  bool closed_ = false;
};

// A device's VmControl: forwards to the VM's, or records (in the device process).
class DeviceVmControl : public pci::VmControl {
 public:
  explicit DeviceVmControl(pci::VmControl* real) : real_(real) {}
  // From now on every call is recorded (call in the child, before serving).
  void UseRecorder(EffectRecorder* recorder) { recorder_.store(recorder); }

  base::Status RegisterIoeventfd(int fd, uint64_t addr, uint32_t len, bool pio,
                                 std::optional<uint64_t> datamatch) override;
  base::Status UnregisterIoeventfd(int fd, uint64_t addr, uint32_t len, bool pio,
                                   std::optional<uint64_t> datamatch) override;
  base::Status RegisterIrqfd(int fd, uint32_t gsi, std::optional<int> resample_fd) override;
  base::Status UnregisterIrqfd(int fd, uint32_t gsi) override;
  // Refused while recording: a device process's view of the table is stale, so only route
  // operations (through DeviceMsiRouter) travel.
  base::Status SetGsiRouting(const std::vector<kvm_irq_routing_entry>& entries) override;

 private:
  pci::VmControl* real_;
  std::atomic<EffectRecorder*> recorder_{nullptr};
};

// A device's MsiRouter: forwards to the VM's GsiRouter, or records.
class DeviceMsiRouter : public pci::MsiRouter {
 public:
  explicit DeviceMsiRouter(pci::MsiRouter* real) : real_(real) {}
  void UseRecorder(EffectRecorder* recorder) { recorder_.store(recorder); }

  // Refused while recording: MSI-X takes its GSIs in VirtioPciDevice::Create, before the
  // device is jailed, and nothing asks for more later.
  base::Result<uint32_t> AllocateGsi() override;
  base::Status SetMsiRoute(uint32_t gsi, uint64_t address, uint32_t data) override;
  base::Status RemoveRoute(uint32_t gsi) override;

 private:
  pci::MsiRouter* real_;
  std::atomic<EffectRecorder*> recorder_{nullptr};
};

// Applies a device process's effects to the VM's VmControl and MsiRouter (either may be null:
// those effects are then dropped). Keeps the fd of every registered eventfd by its key, so
// an unregistration names the same fd number as the registration did, and the eventfd stays
// open while KVM (or a fake) refers to it. Not thread-safe: the ProxyDevice's lock covers it.
class EffectApplier {
 public:
  EffectApplier(pci::VmControl* vm, pci::MsiRouter* router) : vm_(vm), router_(router) {}
  // Carries out `e`; an error is the VM-side call's (the device already thought it worked).
  base::Status Apply(Effect e);

  size_t registered_fds() const { return ioeventfds_.size() + irqfds_.size(); }

 private:
  pci::VmControl* vm_;
  pci::MsiRouter* router_;
  // What a registration was (key, address, length, pio) -> the fd used for it.
  using IoeventfdKey = std::tuple<int32_t, uint64_t, uint32_t, bool>;
  std::map<IoeventfdKey, base::ScopedFd> ioeventfds_;
  // (key, gsi) -> the fd used for the registration (the resample fd is kept with it).
  using IrqfdKey = std::pair<int32_t, uint32_t>;
  struct Irqfd {
    base::ScopedFd fd;
    std::optional<base::ScopedFd> resample;
  };
  std::map<IrqfdKey, Irqfd> irqfds_;
};

}  // namespace crosvm::devices::proxy
