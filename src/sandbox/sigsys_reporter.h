// Telling the parent which syscall a jailed child was trapped on.
//
// Child, before loading a DefaultAction::kTrap filter: InstallSigsysReporter(pipe_write_fd).
// A trapped syscall then writes one SigsysRecord to the fd and exits with
// kSeccompTrapExitCode. Parent: ReadSigsysRecord(pipe_read_fd) and SyscallName(record.nr).
// The filter must allow write(2) on that fd and exit_group(2), or the report itself traps and
// the kernel kills the child with SIGSYS.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "base/error.h"

namespace crosvm::sandbox {

// The exit status of a process whose SIGSYS reporter ran.
inline constexpr int kSeccompTrapExitCode = 253;
// "SYSC" little-endian; tells a record from stray bytes on the fd.
inline constexpr uint32_t kSigsysRecordMagic = 0x43535953;

// Written with a single write(2), so it is atomic on a pipe.
struct SigsysRecord {
  uint32_t magic = kSigsysRecordMagic;
  int32_t syscall_nr = -1;  // siginfo si_syscall
  uint32_t arch = 0;        // siginfo si_arch (AUDIT_ARCH_*)
};
static_assert(sizeof(SigsysRecord) == 12);

// Installs a SIGSYS handler for the whole process. The handler only makes the write(2) and
// exit_group(2) syscalls (raw, bypassing libc and sanitizer interceptors).
// A SIGSYS that is not from seccomp (kill -SYS) gets the default action instead.
base::Status InstallSigsysReporter(int fd);

// Reads one record. nullopt when the fd is at EOF before any byte (the child was not trapped);
// an error for a short or malformed record.
base::Result<std::optional<SigsysRecord>> ReadSigsysRecord(int fd);

// "openat", or "syscall_<nr>" when libseccomp does not know the number. arch 0 is the native one.
std::string SyscallName(int nr, uint32_t arch = 0);

}  // namespace crosvm::sandbox
