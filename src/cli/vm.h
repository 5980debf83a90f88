// Builds a VM from a Config (memory, kernel, devices, vCPUs) and runs it until the guest ends.
#pragma once

#include "base/error.h"
#include "cli/config.h"

namespace crosvm::cli {

// Exit statuses of `crosvm run`.
inline constexpr int kExitOk = 0;          // guest powered off, reset or halted
inline constexpr int kExitVmError = 1;     // setup failed or a vCPU hit an unrecoverable error
inline constexpr int kExitUsage = 2;       // bad command line
inline constexpr int kExitGuestCrash = 3;  // the guest reported a crash (KVM system event)

// Runs the VM; returns the process exit status. Setup errors come back as an Error before any
// vCPU has run.
base::Result<int> RunVm(const Config& config);

}  // namespace crosvm::cli
