// DeviceHost: one virtio PCI device and where it runs. With the sandbox on (the default) the
// device runs in its own jailed process (src/sandbox/jail.h) under its seccomp policy, and the
// VM reaches it through a ProxyDevice (src/devices/proxy/); with the sandbox off it runs in the
// VMM process. The device's code is the same either way: it talks to the VM through its own
// DeviceVmControl / DeviceMsiRouter, which forward to the VM's objects here and record effects
// in the device process.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "base/error.h"
#include "base/fd.h"
#include "devices/pci/msi_router.h"
#include "devices/pci/pci_device.h"
#include "devices/pci/vm_control.h"
#include "devices/proxy/effects.h"
#include "devices/proxy/proxy_device.h"
#include "devices/virtio/virtio_pci.h"
#include "sandbox/jail.h"
#include "sandbox/seccomp_filter.h"

namespace crosvm::vmm {

struct SandboxOptions {
  bool enabled = true;
  std::optional<std::string> policy_dir;  // --seccomp-policy-dir
};

class DeviceHost {
 public:
  using Factory = std::function<base::Result<std::shared_ptr<devices::virtio::VirtioPciDevice>>(
      devices::pci::VmControl* vm, devices::pci::MsiRouter* router)>;
  using FailureCallback = std::function<void(const std::string& why)>;

  // Builds the device with `make` (handing it this device's own VmControl and MsiRouter) and,
  // when the sandbox is on, starts its process: `jail_name` names it ("blk0": hostname in its
  // namespace, "crosvm:blk0" in ps), `policy` is its seccomp policy's name ("block_device").
  // `on_failure` runs (on any thread, at most once) when the device process dies or stops
  // answering while the VM runs; it must only ask the VM to stop.
  static base::Result<std::unique_ptr<DeviceHost>> Create(
      std::string jail_name, std::string policy, const Factory& make, devices::pci::VmControl* vm,
      devices::pci::MsiRouter* router, const SandboxOptions& options, FailureCallback on_failure);
  ~DeviceHost();
  DeviceHost(const DeviceHost&) = delete;
  DeviceHost& operator=(const DeviceHost&) = delete;

  // What the PCI root bus gets: the device itself, or its proxy.
  std::shared_ptr<devices::pci::PciDevice> pci_device() const;
  std::string name() const { return name_; }
  bool jailed() const { return jail_.has_value(); }
  // The device process (jailed only; else -1): its PID, and an fd readable once it has ended.
  pid_t pid() const { return jail_ ? jail_->pid() : -1; }
  int exit_fd() const { return jail_ ? jail_->exit_fd() : -1; }

  // How the device process ended, in one line naming the device ("virtio-blk vda (pid 123):
  // blocked system call openat (257) ..."). Blocks until it has ended.
  std::string DescribeExit();

  // Orderly stop at VM teardown: the device stops (its worker joined, its disk flushed and
  // closed — in its own process when jailed) and the process is reaped. Bounded: a device
  // process that does not finish in time is killed (and says so).
  void Stop();

 private:
  struct Child;  // what the device process uses; see device_host.cpp
  DeviceHost() = default;
  std::string DescribeExitOnce();
  base::Status StartJail(const std::string& jail_name, const std::string& policy,
                         const SandboxOptions& options, devices::pci::VmControl* vm,
                         devices::pci::MsiRouter* router, FailureCallback on_failure);

  std::string name_;
  std::unique_ptr<devices::proxy::DeviceVmControl> vm_control_;
  std::unique_ptr<devices::proxy::DeviceMsiRouter> router_;
  std::shared_ptr<devices::virtio::VirtioPciDevice> device_;  // sandbox off
  std::shared_ptr<devices::proxy::ProxyDevice> proxy_;        // sandbox on
  std::unique_ptr<Child> child_;
  std::optional<sandbox::Jail> jail_;
  base::ScopedFd sigsys_read_;  // the device's seccomp trap report
  std::mutex exit_mu_;
  std::optional<std::string> exit_description_;
  bool clean_exit_ = false;  // DescribeExit's answer (the report is read once)
  bool stopped_ = false;
};

// Exit status of crosvm when a device process died or failed (documented in the README).
inline constexpr int kExitDeviceFailed = 4;

}  // namespace crosvm::vmm
