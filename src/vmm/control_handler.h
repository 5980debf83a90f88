// VmControlHandler: what each control-socket request does to the VM. It knows the VM only by
// the hooks it is given (stop, the vCPU run state and how to kick the vCPUs, the balloon's and
// each disk's DeviceControl), so it runs, and is tested, without KVM or device processes.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "base/error.h"
#include "control/server.h"
#include "vmm/vcpu_run_state.h"

namespace crosvm::vmm {

// A device's PciDevice::DeviceControl.
using DeviceControlFn =
    std::function<base::Result<std::vector<uint8_t>>(uint32_t op, std::span<const uint8_t>)>;

struct VmControlHooks {
  std::function<void()> stop;          // asks the VM to end with status 0
  VcpuRunState* run_state = nullptr;   // null: suspend/resume unavailable
  std::function<void()> kick_vcpus;    // gets every vCPU out of KVM_RUN
  DeviceControlFn balloon;             // empty: no balloon
  std::vector<DeviceControlFn> disks;  // by disk index (vda = 0)
  pid_t pid = 0;                       // for Ping
  std::chrono::milliseconds pause_timeout{2000};
};

class VmControlHandler : public control::ControlHandler {
 public:
  explicit VmControlHandler(VmControlHooks hooks) : hooks_(std::move(hooks)) {}
  control::Reply Handle(const control::Request& request) override;

  // A device's error as a reply: its errno says which status (EINVAL, ENOTSUP, EROFS, EFBIG:
  // invalid argument; EAGAIN: unavailable; anything else: failed).
  static control::Reply FromError(const base::Error& error);

 private:
  control::Reply Suspend();
  control::Reply Resume();
  control::Reply Balloon(uint32_t op, std::span<const uint8_t> payload, bool stats);
  control::Reply DiskResize(uint32_t index, uint64_t size);

  VmControlHooks hooks_;
};

}  // namespace crosvm::vmm
