#include "sandbox/sigsys_reporter.h"

#include <seccomp.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace crosvm::sandbox {

using base::Error;
using base::Result;
using base::Status;

namespace {

// si_code of a seccomp SIGSYS. glibc's <signal.h> does not define it and the kernel's
// <asm-generic/siginfo.h> that does clashes with it.
#ifdef SYS_SECCOMP
constexpr int kSysSeccomp = SYS_SECCOMP;
#else
constexpr int kSysSeccomp = 1;
#endif

// Read by the handler; a lock-free atomic is safe to use from a signal handler.
std::atomic<int> g_report_fd{-1};
static_assert(std::atomic<int>::is_always_lock_free);

void OnSigsys(int sig, siginfo_t* info, void*) {
  if (info->si_code != kSysSeccomp) {
    // Not a seccomp trap: die of the signal as if there were no handler.
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigaction(sig, &dfl, nullptr);
    raise(sig);
    return;
  }
  SigsysRecord record;
  record.syscall_nr = info->si_syscall;
  record.arch = info->si_arch;
  int fd = g_report_fd.load(std::memory_order_relaxed);
  if (fd >= 0) {
    ssize_t n;
    do {
      n = syscall(SYS_write, fd, &record, sizeof(record));
    } while (n < 0 && errno == EINTR);
  }
  // Raw syscalls rather than the libc functions: a sanitizer's _exit interceptor makes calls of
  // its own (sigaltstack) that the filter traps, with SIGSYS blocked in this handler.
  syscall(SYS_exit_group, kSeccompTrapExitCode);
  __builtin_unreachable();
}

}  // namespace

Status InstallSigsysReporter(int fd) {
  g_report_fd.store(fd, std::memory_order_relaxed);
  struct sigaction sa {};
  sa.sa_sigaction = OnSigsys;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGSYS, &sa, nullptr) != 0) return Error::FromErrno("sigaction(SIGSYS)");
  // A blocked SIGSYS would make the kernel kill the process instead of running the handler.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGSYS);
  if (sigprocmask(SIG_UNBLOCK, &set, nullptr) != 0) return Error::FromErrno("unblocking SIGSYS");
  return base::Ok();
}

Result<std::optional<SigsysRecord>> ReadSigsysRecord(int fd) {
  SigsysRecord record;
  auto* bytes = reinterpret_cast<char*>(&record);
  size_t done = 0;
  while (done < sizeof(record)) {
    ssize_t n = read(fd, bytes + done, sizeof(record) - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::FromErrno("reading SIGSYS record");
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  if (done == 0) return std::optional<SigsysRecord>();
  if (done != sizeof(record)) {
    return Error("short SIGSYS record: " + std::to_string(done) + " bytes");
  }
  if (record.magic != kSigsysRecordMagic) return Error("SIGSYS record with a bad magic number");
  return std::optional<SigsysRecord>(record);
}

std::string SyscallName(int nr, uint32_t arch) {
  char* name = seccomp_syscall_resolve_num_arch(arch, nr);
  if (!name) return "syscall_" + std::to_string(nr);
  std::string out(name);
  free(name);
  return out;
}

}  // namespace crosvm::sandbox
