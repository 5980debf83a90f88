// Compiling a SeccompPolicy into a kernel filter and loading it.
//
//   CROSVM_ASSIGN_OR_RETURN(auto policy, SeccompPolicy::ParseFile(path));
//   CROSVM_ASSIGN_OR_RETURN(auto filter, Compile(policy, DefaultAction::kTrap));
//   CROSVM_ASSIGN_OR_RETURN(BpfProgram bpf, filter.ExportBpf());  // in the parent
//   ... fork ...
//   bpf.InstallAsyncSignalSafe();                                  // in the child
#pragma once

#include <linux/filter.h>

#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "sandbox/seccomp_policy.h"

namespace crosvm::sandbox {

// What the filter does with a syscall the policy does not allow.
enum class DefaultAction {
  kTrap,         // SIGSYS (SECCOMP_RET_TRAP): real use, so the process can report the syscall
  kKillProcess,  // SECCOMP_RET_KILL_PROCESS
  kLog,          // allowed but logged by the kernel (SCMP_ACT_LOG): recording which are used
};

// A classic-BPF seccomp program, exported from a CompiledFilter.
class BpfProgram {
 public:
  explicit BpfProgram(std::vector<sock_filter> instructions)
      : instructions_(std::move(instructions)) {}
  const std::vector<sock_filter>& instructions() const { return instructions_; }

  // Sets no_new_privs and installs the program on every thread of the process
  // (SECCOMP_FILTER_FLAG_TSYNC). Only prctl(2) and seccomp(2), no allocation: safe in a child
  // forked from a multithreaded parent. Returns 0 or an errno value (ESRCH: a thread could not
  // be synchronised).
  int InstallAsyncSignalSafe() const;
  // The same with an error message (which allocates).
  base::Status Install() const;

 private:
  std::vector<sock_filter> instructions_;
};

// A libseccomp filter context (scmp_filter_ctx), released on destruction. Loading sets
// no_new_privs and synchronises all threads (SCMP_FLTATR_CTL_NNP, SCMP_FLTATR_CTL_TSYNC);
// another architecture's syscalls kill the process.
class CompiledFilter {
 public:
  CompiledFilter(CompiledFilter&& other) noexcept;
  CompiledFilter& operator=(CompiledFilter&& other) noexcept;
  CompiledFilter(const CompiledFilter&) = delete;
  CompiledFilter& operator=(const CompiledFilter&) = delete;
  ~CompiledFilter();

  // Loads the filter into the calling process with libseccomp (which allocates; after a fork
  // from a multithreaded parent use ExportBpf() before the fork and BpfProgram in the child).
  base::Status Load() const;
  // A memfd holding the raw BPF program (struct sock_filter array), at offset 0.
  base::Result<base::ScopedFd> ExportBpfFd() const;
  base::Result<BpfProgram> ExportBpf() const;

 private:
  friend base::Result<CompiledFilter> Compile(const SeccompPolicy&, DefaultAction);
  explicit CompiledFilter(void* ctx) : ctx_(ctx) {}
  void* ctx_ = nullptr;  // scmp_filter_ctx
};

// Errors carry the FILE:LINE of the rule libseccomp rejected.
base::Result<CompiledFilter> Compile(const SeccompPolicy& policy, DefaultAction default_action);

}  // namespace crosvm::sandbox
