// Filters evaluated by the kernel: each case forks a child that loads the filter and makes
// syscalls; the parent checks how the child ended and what the SIGSYS reporter wrote.
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/uio.h>

#include <array>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "base/fd.h"
#include "sandbox/seccomp_filter.h"
#include "sandbox/seccomp_policy.h"
#include "sandbox/sigsys_reporter.h"
#include "sandbox/tests/test_util.h"

namespace crosvm::sandbox {
namespace {

// What the child needs besides the calls under test: the reporter's write and exit_group, and
// what libseccomp's load may do after the filter is in (freeing its buffers).
// Under AddressSanitizer, every call of a noreturn function (the child's exit) first runs
// __asan_handle_no_return, which asks sigaltstack where the signal stack is.
#if defined(__SANITIZE_ADDRESS__)
#define CROSVM_TEST_ASAN_CALLS "sigaltstack: 1\n"
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CROSVM_TEST_ASAN_CALLS "sigaltstack: 1\n"
#endif
#endif
#ifndef CROSVM_TEST_ASAN_CALLS
#define CROSVM_TEST_ASAN_CALLS ""
#endif
constexpr const char* kBase =
    "write: 1\nexit_group: 1\nmunmap: 1\nbrk: 1\nmadvise: 1\n" CROSVM_TEST_ASAN_CALLS;

enum class LoadWith { kLibseccomp, kBpfProgram };

// The child's exit: _exit() under ASan goes through an interceptor that calls sigaltstack.
[[noreturn]] void ExitNow(int code) {
  syscall(SYS_exit_group, code);
  __builtin_unreachable();
}

struct ChildOutcome {
  bool exited = false;
  int exit_code = -1;
  int signal = 0;
  std::optional<SigsysRecord> record;
};

CompiledFilter MustCompile(const std::string& rules, DefaultAction action = DefaultAction::kTrap) {
  auto policy = SeccompPolicy::ParseString(std::string(kBase) + rules, "test.policy", "/");
  EXPECT_TRUE(policy.ok()) << policy.error().ToString();
  if (!policy.ok()) std::abort();
  auto filter = Compile(*policy, action);
  EXPECT_TRUE(filter.ok()) << filter.error().ToString();
  if (!filter.ok()) std::abort();
  return std::move(filter).value();
}

// Forks; the child installs the reporter, runs `before_load`, loads the filter and _exits with
// body()'s result (it never returns into gtest).
ChildOutcome RunInChild(const CompiledFilter& filter, const std::function<int()>& body,
                        LoadWith load = LoadWith::kLibseccomp,
                        const std::function<void()>& before_load = nullptr) {
  std::optional<BpfProgram> bpf;
  if (load == LoadWith::kBpfProgram) {
    auto exported = filter.ExportBpf();
    EXPECT_TRUE(exported.ok()) << exported.error().ToString();
    if (exported.ok()) bpf.emplace(std::move(exported).value());
  }
  int fds[2];
  EXPECT_EQ(pipe2(fds, O_CLOEXEC), 0);
  base::ScopedFd read_end(fds[0]), write_end(fds[1]);
  pid_t pid = fork();
  EXPECT_GE(pid, 0);
  if (pid == 0) {
    read_end.reset();
    if (!InstallSigsysReporter(write_end.get()).ok()) _exit(101);
    if (before_load) before_load();
    if (load == LoadWith::kBpfProgram) {
      if (!bpf || bpf->InstallAsyncSignalSafe() != 0) _exit(102);
    } else if (!filter.Load().ok()) {
      _exit(103);
    }
    ExitNow(body());
  }
  write_end.reset();
  ChildOutcome out;
  int status = 0;
  EXPECT_EQ(waitpid(pid, &status, 0), pid);
  out.exited = WIFEXITED(status);
  if (out.exited) out.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) out.signal = WTERMSIG(status);
  auto record = ReadSigsysRecord(read_end.get());
  EXPECT_TRUE(record.ok()) << record.error().ToString();
  if (record.ok()) out.record = *record;
  return out;
}

// A syscall whose kernel side ignores its arguments, so only the filter decides.
long Call(long nr, uint64_t a0 = 0, uint64_t a1 = 0) {
  return syscall(nr, a0, a1, 0, 0, 0, 0);
}

enum class Verdict { kAllowed, kTrapped, kOther };

std::ostream& operator<<(std::ostream& os, Verdict v) {
  return os << (v == Verdict::kAllowed ? "allowed" : v == Verdict::kTrapped ? "trapped" : "other");
}

// Runs Call(nr, a0, a1) in a child under `filter`: allowed (returned >= 0), or trapped with a
// record naming `nr`.
Verdict Try(const CompiledFilter& filter, long nr, uint64_t a0, uint64_t a1 = 0,
            LoadWith load = LoadWith::kLibseccomp) {
  ChildOutcome out = RunInChild(
      filter, [&] { return Call(nr, a0, a1) >= 0 ? 0 : 1; }, load);
  if (out.exited && out.exit_code == 0 && !out.record) return Verdict::kAllowed;
  if (out.exited && out.exit_code == kSeccompTrapExitCode && out.record &&
      out.record->syscall_nr == nr && out.record->arch == AUDIT_ARCH_X86_64) {
    return Verdict::kTrapped;
  }
  ADD_FAILURE() << "exit " << out.exit_code << " signal " << out.signal << " record "
                << (out.record ? SyscallName(out.record->syscall_nr) : "none");
  return Verdict::kOther;
}

TEST(SeccompFilterTest, EqualityAllowsMatchingArgsAndTrapsOthers) {
  CompiledFilter f = MustCompile("getuid: arg0 == 5\n");
  EXPECT_EQ(Try(f, SYS_getuid, 5), Verdict::kAllowed);

  ChildOutcome out = RunInChild(f, [] { return Call(SYS_getuid, 6) >= 0 ? 0 : 1; });
  EXPECT_TRUE(out.exited);
  EXPECT_EQ(out.exit_code, kSeccompTrapExitCode);
  ASSERT_TRUE(out.record.has_value());
  EXPECT_EQ(out.record->magic, kSigsysRecordMagic);
  EXPECT_EQ(out.record->syscall_nr, SYS_getuid);
  EXPECT_EQ(out.record->arch, static_cast<uint32_t>(AUDIT_ARCH_X86_64));
  EXPECT_EQ(SyscallName(out.record->syscall_nr), "getuid");
  EXPECT_EQ(SyscallName(out.record->syscall_nr, out.record->arch), "getuid");
}

TEST(SeccompFilterTest, UnlistedSyscallIsTrappedAndNamed) {
  CompiledFilter f = MustCompile("getuid: 1\n");
  ChildOutcome out = RunInChild(f, [] { return Call(SYS_getppid) >= 0 ? 0 : 1; });
  EXPECT_EQ(out.exit_code, kSeccompTrapExitCode);
  ASSERT_TRUE(out.record.has_value());
  EXPECT_EQ(SyscallName(out.record->syscall_nr), "getppid");
  EXPECT_EQ(Try(f, SYS_getuid, 12345), Verdict::kAllowed);
}

TEST(SeccompFilterTest, ReturnGivesThatErrno) {
  CompiledFilter f = MustCompile("getgid: return 13\ngeteuid: return ENOSYS\n");
  ChildOutcome out = RunInChild(f, [] {
    errno = 0;
    if (Call(SYS_getgid) != -1 || errno != 13) return 1;
    errno = 0;
    if (Call(SYS_geteuid) != -1 || errno != ENOSYS) return 2;
    return 0;
  });
  EXPECT_TRUE(out.exited);
  EXPECT_EQ(out.exit_code, 0);
  EXPECT_FALSE(out.record.has_value());
}

TEST(SeccompFilterTest, AnyBitMask) {
  CompiledFilter f = MustCompile("getuid: arg0 & 0x6\n");
  for (uint64_t v : std::initializer_list<uint64_t>{0x2, 0x4, 0x6, 0x7, 0x102}) {
    EXPECT_EQ(Try(f, SYS_getuid, v), Verdict::kAllowed) << v;
  }
  for (uint64_t v : std::initializer_list<uint64_t>{0x0, 0x1, 0x8, 0x100})
    EXPECT_EQ(Try(f, SYS_getuid, v), Verdict::kTrapped) << v;
}

TEST(SeccompFilterTest, InMask) {
  CompiledFilter f = MustCompile("getuid: arg0 in 0x5\n");
  for (uint64_t v : std::initializer_list<uint64_t>{0x0, 0x1, 0x4, 0x5})
    EXPECT_EQ(Try(f, SYS_getuid, v), Verdict::kAllowed) << v;
  for (uint64_t v : std::initializer_list<uint64_t>{0x2, 0x7, 0x8, 0x100000000}) {
    EXPECT_EQ(Try(f, SYS_getuid, v), Verdict::kTrapped) << v;
  }
}

TEST(SeccompFilterTest, OrOfAnds) {
  CompiledFilter f = MustCompile("getuid: arg0 == 1 && arg1 == 2 || arg0 == 3\n");
  EXPECT_EQ(Try(f, SYS_getuid, 1, 2), Verdict::kAllowed);
  EXPECT_EQ(Try(f, SYS_getuid, 3, 0), Verdict::kAllowed);
  EXPECT_EQ(Try(f, SYS_getuid, 3, 7), Verdict::kAllowed);
  EXPECT_EQ(Try(f, SYS_getuid, 1, 3), Verdict::kTrapped);
  EXPECT_EQ(Try(f, SYS_getuid, 2, 2), Verdict::kTrapped);
}

TEST(SeccompFilterTest, OrderingOperators) {
  CompiledFilter f = MustCompile(
      "getuid: arg0 < 10\ngetgid: arg0 <= 10\ngeteuid: arg0 > 10\ngetegid: arg0 >= 10\n"
      "getppid: arg0 != 10\n");
  struct Case {
    long nr;
    std::array<bool, 3> allowed;  // for 9, 10, 11
  };
  for (const Case& c :
       {Case{SYS_getuid, {true, false, false}}, Case{SYS_getgid, {true, true, false}},
        Case{SYS_geteuid, {false, false, true}}, Case{SYS_getegid, {false, true, true}},
        Case{SYS_getppid, {true, false, true}}}) {
    for (int i = 0; i < 3; ++i) {
      EXPECT_EQ(Try(f, c.nr, 9 + i), c.allowed[i] ? Verdict::kAllowed : Verdict::kTrapped)
          << SyscallName(static_cast<int>(c.nr)) << " " << 9 + i;
    }
  }
}

TEST(SeccompFilterTest, MergedTestsOfOneArgument) {
  // (arg0 & 1) && arg0 in 3: 1 and 3 only.
  CompiledFilter f = MustCompile("getuid: arg0 & 1 && arg0 in 3\n");
  for (uint64_t v : std::initializer_list<uint64_t>{1, 3})
    EXPECT_EQ(Try(f, SYS_getuid, v), Verdict::kAllowed) << v;
  for (uint64_t v : std::initializer_list<uint64_t>{0, 2, 5})
    EXPECT_EQ(Try(f, SYS_getuid, v), Verdict::kTrapped) << v;
}

TEST(SeccompFilterTest, AllSixtyFourBitsAreCompared) {
  CompiledFilter f = MustCompile("getuid: arg0 == 0x100000005\n");
  EXPECT_EQ(Try(f, SYS_getuid, 0x100000005), Verdict::kAllowed);
  EXPECT_EQ(Try(f, SYS_getuid, 5), Verdict::kTrapped);
}

TEST(SeccompFilterTest, KillProcessDefault) {
  CompiledFilter f = MustCompile("getuid: 1\n", DefaultAction::kKillProcess);
  ChildOutcome out = RunInChild(f, [] { return Call(SYS_getppid) >= 0 ? 0 : 1; });
  EXPECT_FALSE(out.exited);
  EXPECT_EQ(out.signal, SIGSYS);
  EXPECT_FALSE(out.record.has_value());  // killed outright, the handler never ran
}

TEST(SeccompFilterTest, LogDefaultLetsUnlistedCallsThrough) {
  CompiledFilter f = MustCompile("getuid: arg0 == 1\n", DefaultAction::kLog);
  pid_t parent = getpid();
  ChildOutcome out = RunInChild(f, [parent] {
    if (Call(SYS_getppid) != parent) return 1;
    if (Call(SYS_getuid, 2) < 0) return 2;  // not matching, but logged and allowed
    return 0;
  });
  EXPECT_TRUE(out.exited);
  EXPECT_EQ(out.exit_code, 0);
  EXPECT_FALSE(out.record.has_value());
}

TEST(SeccompFilterTest, ExportedBpfBehavesTheSame) {
  CompiledFilter f = MustCompile("getuid: arg0 == 1 || arg0 & 0x30\n");
  auto fd = f.ExportBpfFd();
  ASSERT_TRUE(fd.ok()) << fd.error().ToString();
  struct stat st {};
  ASSERT_EQ(fstat(fd->get(), &st), 0);
  EXPECT_GT(st.st_size, 0);
  EXPECT_EQ(st.st_size % sizeof(sock_filter), 0u);
  EXPECT_EQ(lseek(fd->get(), 0, SEEK_CUR), 0);
  auto bpf = f.ExportBpf();
  ASSERT_TRUE(bpf.ok()) << bpf.error().ToString();
  EXPECT_EQ(bpf->instructions().size() * sizeof(sock_filter), static_cast<size_t>(st.st_size));

  for (uint64_t v : std::initializer_list<uint64_t>{1, 0x10, 0x20}) {
    EXPECT_EQ(Try(f, SYS_getuid, v, 0, LoadWith::kBpfProgram), Verdict::kAllowed) << v;
  }
  for (uint64_t v : std::initializer_list<uint64_t>{0, 2, 0x40}) {
    EXPECT_EQ(Try(f, SYS_getuid, v, 0, LoadWith::kBpfProgram), Verdict::kTrapped) << v;
  }
}

TEST(SeccompFilterTest, EmptyBpfProgramIsRefused) {
  EXPECT_FALSE(BpfProgram({}).Install().ok());
}

// The filter must also cover threads that existed before it was loaded (TSYNC): a thread
// started first makes a forbidden call after the load.
void ExpectOtherThreadTrapped(LoadWith load) {
  CompiledFilter f = MustCompile("read: 1\ngetuid: arg0 == 0\n");
  int started[2], go[2], hold[2];
  ASSERT_EQ(pipe(started), 0);
  ASSERT_EQ(pipe(go), 0);
  ASSERT_EQ(pipe(hold), 0);
  ChildOutcome out = RunInChild(
      f,
      [&] {
        char c = 1;
        if (write(go[1], &c, 1) != 1) return 3;
        // Nothing is ever written to `hold`: block until the thread's trap ends the process.
        if (read(hold[0], &c, 1) == 1) return 4;
        return 5;
      },
      load,
      [&] {
        // Leaked on purpose: the process ends from inside the thread.
        new std::thread([&] {
          char c = 1;
          if (write(started[1], &c, 1) != 1) ExitNow(8);
          if (read(go[0], &c, 1) != 1) ExitNow(6);
          Call(SYS_getuid, 99);
          ExitNow(7);  // not filtered
        });
        // Load only once the thread runs its own code: glibc's thread start-up (signal mask,
        // rseq) would be trapped too, with SIGSYS still blocked.
        char c;
        if (read(started[0], &c, 1) != 1) _exit(9);
      });
  for (int fd : {started[0], started[1], go[0], go[1], hold[0], hold[1]}) close(fd);
  EXPECT_EQ(out.exit_code, kSeccompTrapExitCode) << "signal " << out.signal;
  ASSERT_TRUE(out.record.has_value());
  EXPECT_EQ(out.record->syscall_nr, SYS_getuid);
}

TEST(SeccompFilterTest, LoadCoversExistingThreads) {
  ExpectOtherThreadTrapped(LoadWith::kLibseccomp);
}

TEST(SeccompFilterTest, BpfInstallCoversExistingThreads) {
  ExpectOtherThreadTrapped(LoadWith::kBpfProgram);
}

TEST(SigsysReporterTest, NonSeccompSigsysKillsAsUsual) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  base::ScopedFd read_end(fds[0]), write_end(fds[1]);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (!InstallSigsysReporter(write_end.get()).ok()) _exit(1);
    kill(getpid(), SIGSYS);
    _exit(2);
  }
  write_end.reset();
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGSYS);
  auto record = ReadSigsysRecord(read_end.get());
  ASSERT_TRUE(record.ok());
  EXPECT_FALSE(record->has_value());
}

TEST(SigsysReporterTest, ReadRejectsShortAndForeignRecords) {
  auto feed = [](const void* data, size_t size) {
    int fds[2];
    EXPECT_EQ(pipe(fds), 0);
    EXPECT_EQ(write(fds[1], data, size), static_cast<ssize_t>(size));
    close(fds[1]);
    auto r = ReadSigsysRecord(fds[0]);
    close(fds[0]);
    return r;
  };
  SigsysRecord good;
  good.syscall_nr = SYS_openat;
  good.arch = AUDIT_ARCH_X86_64;
  auto r = feed(&good, sizeof(good));
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ((*r)->syscall_nr, SYS_openat);
  r = feed(&good, 5);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "short SIGSYS record: 5 bytes");
  SigsysRecord bad = good;
  bad.magic = 0;
  r = feed(&bad, sizeof(bad));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message(), "SIGSYS record with a bad magic number");
}

TEST(SigsysReporterTest, SyscallNames) {
  EXPECT_EQ(SyscallName(SYS_openat), "openat");
  EXPECT_EQ(SyscallName(SYS_read), "read");
  EXPECT_EQ(SyscallName(99999), "syscall_99999");
}

// The shipped policies.
std::vector<std::string> ShippedPolicies() {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(CROSVM_POLICY_SOURCE_DIR)) {
    if (e.path().extension() == ".policy") out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(ShippedPolicyTest, AllParseAndCompile) {
  std::vector<std::string> files = ShippedPolicies();
  for (const char* name :
       {"common_device", "block_device", "rng_device", "net_device", "balloon_device"}) {
    EXPECT_NE(std::find(files.begin(), files.end(),
                        std::string(CROSVM_POLICY_SOURCE_DIR) + "/" + name + ".policy"),
              files.end())
        << name;
  }
  for (const std::string& file : files) {
    auto policy = SeccompPolicy::ParseFile(file);
    ASSERT_TRUE(policy.ok()) << policy.error().ToString();
    EXPECT_NE(policy->Find("exit_group"), nullptr) << file;
    for (DefaultAction a :
         {DefaultAction::kTrap, DefaultAction::kKillProcess, DefaultAction::kLog}) {
      auto filter = Compile(*policy, a);
      ASSERT_TRUE(filter.ok()) << file << ": " << filter.error().ToString();
      EXPECT_TRUE(filter->ExportBpf().ok()) << file;
    }
  }
}

// What the AddressSanitizer runtime itself calls in the jailed child around thread creation.
// Production binaries are not sanitized, so the shipped policies do not carry these; a sanitized
// test run uses copies of the policies with these rules put in place of the shipped ones.
#if defined(__SANITIZE_ADDRESS__)
constexpr std::pair<const char*, const char*> kSanitizerRuntime[] = {
    {"madvise", "1"},  // any advice, not only DONTNEED and FREE
    {"pipe2", "1"},       {"sched_getaffinity", "1"},
    {"sigaltstack", "1"}, {"gettid", "1"},  // the runtime's thread registry, in every new thread
};
#else
constexpr std::pair<const char*, const char*> kSanitizerRuntime[] = {{nullptr, nullptr}};
#endif

// The shipped policy file `name`, from a copy of the policy folder patched for the sanitizer
// runtime (unchanged in normal builds).
CompiledFilter CompileShipped(const std::string& name) {
  TempDir dir;
  for (const auto& e : std::filesystem::directory_iterator(CROSVM_POLICY_SOURCE_DIR)) {
    std::ifstream in(e.path());
    std::string text, line;
    while (std::getline(in, line)) {
      bool replaced = false;
      for (const auto& [syscall, rule] : kSanitizerRuntime) {
        if (syscall && line.rfind(std::string(syscall) + ":", 0) == 0) replaced = true;
      }
      text += (replaced ? "# replaced for the sanitizer runtime" : line) + "\n";
    }
    if (e.path().filename() == "common_device.policy") {
      for (const auto& [syscall, rule] : kSanitizerRuntime) {
        if (syscall) text += std::string(syscall) + ": " + rule + "\n";
      }
    }
    dir.Write(e.path().filename().string(), text);
  }
  auto policy = SeccompPolicy::ParseFile(dir.path() + "/" + name);
  EXPECT_TRUE(policy.ok()) << policy.error().ToString();
  if (!policy.ok()) std::abort();
  auto filter = Compile(*policy, DefaultAction::kTrap);
  EXPECT_TRUE(filter.ok()) << filter.error().ToString();
  if (!filter.ok()) std::abort();
  return std::move(filter).value();
}

// Each body returns a distinct code for the step that failed, then makes one forbidden call:
// the child must end trapped on exactly that call, so nothing before it was trapped.
void ExpectTrappedOn(const CompiledFilter& f, const std::function<int()>& body, long nr) {
  ChildOutcome out = RunInChild(f, body);
  ASSERT_TRUE(out.exited) << "signal " << out.signal;
  ASSERT_EQ(out.exit_code, kSeccompTrapExitCode)
      << "step " << out.exit_code << " failed"
      << (out.record ? ", trapped on " + SyscallName(out.record->syscall_nr) : "");
  ASSERT_TRUE(out.record.has_value());
  EXPECT_EQ(SyscallName(out.record->syscall_nr), SyscallName(static_cast<int>(nr)));
}

TEST(ShippedPolicyTest, CommonDeviceRunsThreadsEventsAndMemory) {
  CompiledFilter f = CompileShipped("common_device.policy");
  ExpectTrappedOn(
      f,
      [] {
        // Threads with a name, a mutex and a condition variable, joined.
        std::mutex mu;
        std::condition_variable cv;
        bool ready = false;
        std::thread t([&] {
          pthread_setname_np(pthread_self(), "crosvm_test");
          std::lock_guard<std::mutex> lock(mu);
          ready = true;
          cv.notify_one();
        });
        {
          std::unique_lock<std::mutex> lock(mu);
          if (!cv.wait_for(lock, std::chrono::seconds(10), [&] { return ready; })) return 1;
        }
        t.join();
        // Large and small allocations, and a reallocation that moves a big block.
        std::vector<char> big(8 << 20, 1);
        big.resize(32 << 20);
        big.clear();
        big.shrink_to_fit();
        // The event loop's calls.
        int ev = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (ev < 0) return 2;
        uint64_t one = 1;
        if (write(ev, &one, sizeof(one)) != sizeof(one)) return 3;
        int ep = epoll_create1(EPOLL_CLOEXEC);
        if (ep < 0) return 4;
        epoll_event e{};
        e.events = EPOLLIN;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, ev, &e) != 0) return 5;
        if (epoll_wait(ep, &e, 1, 1000) != 1) return 6;
        if (read(ev, &one, sizeof(one)) != sizeof(one)) return 7;
        if (close(ep) != 0 || close(ev) != 0) return 8;
        timespec ts{0, 1000};
        if (nanosleep(&ts, nullptr) != 0) return 9;
        // Never an executable mapping.
        mmap(nullptr, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        return 10;
      },
      SYS_mmap);
}

TEST(ShippedPolicyTest, CommonDeviceRefusesFork) {
  CompiledFilter f = CompileShipped("common_device.policy");
  ExpectTrappedOn(
      f,
      [] {
        pid_t pid = fork();
        if (pid == 0) _exit(0);
        return 1;
      },
      SYS_clone);
}

TEST(ShippedPolicyTest, BlockDeviceDoesDiskIo) {
  CompiledFilter f = CompileShipped("block_device.policy");
  std::string path = "/tmp/crosvm_seccomp_disk_XXXXXX";
  int fd = mkstemp(path.data());
  ASSERT_GE(fd, 0);
  unlink(path.c_str());
  ExpectTrappedOn(
      f,
      [fd] {
        char buf[4096] = {1, 2, 3};
        if (pwrite(fd, buf, sizeof(buf), 8192) != sizeof(buf)) return 1;
        if (pread(fd, buf, sizeof(buf), 8192) != sizeof(buf) || buf[2] != 3) return 2;
        if (fdatasync(fd) != 0) return 5;
        // tmpfs and most file systems support both; EOPNOTSUPP would still mean "not trapped".
        if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096) != 0 &&
            errno != EOPNOTSUPP)
          return 6;
        if (fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 0, 4096) != 0 &&
            errno != EOPNOTSUPP)
          return 7;
        if (ftruncate(fd, 1 << 20) != 0) return 9;
        // The file grew: a read past the old end finds zeros.
        if (pread(fd, buf, sizeof(buf), (1 << 20) - 4096) != sizeof(buf) || buf[0] != 0) return 10;
        int flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) return 11;
        // Opening files is not a disk device's business.
        open("/etc/hostname", O_RDONLY);
        return 12;
      },
      SYS_openat);
  close(fd);
}

TEST(ShippedPolicyTest, RngDeviceGetsRandomBytes) {
  CompiledFilter f = CompileShipped("rng_device.policy");
  ExpectTrappedOn(
      f,
      [] {
        char buf[64];
        if (getrandom(buf, sizeof(buf), 0) != sizeof(buf)) return 1;
        Call(SYS_pread64, 0);
        return 2;
      },
      SYS_pread64);
}

// The net device's calls on a real TAP (made in a network namespace of the child's own before
// the filter goes in, as the VMM does before the jail) and on a socketpair: the two ioctls it
// needs pass and frames move (the child then ends trapped on a call no policy rule names);
// any other ioctl is trapped.
ChildOutcome RunNetDeviceChild(const CompiledFilter& f, bool reconfigure) {
  int tap = -1;
  int sv[2] = {-1, -1};
  return RunInChild(
      f,
      [&] {
        if (tap < 0) return 1;
        if (reconfigure) {
          ifreq ifr{};
          ioctl(tap, TUNSETIFF, &ifr);
          return 2;
        }
        int size = 12;
        if (ioctl(tap, TUNSETVNETHDRSZ, &size) != 0) return 3;
        if (ioctl(tap, TUNSETOFFLOAD, static_cast<unsigned long>(TUN_F_CSUM | TUN_F_TSO4)) != 0)
          return 4;
        char buf[128] = {};
        iovec iov{buf, sizeof(buf)};
        // Nothing queued on the TAP: EAGAIN, not a trap.
        if (readv(tap, &iov, 1) >= 0 || errno != EAGAIN) return 5;
        // The TAP is down: the kernel refuses the frame, the filter lets the call through.
        iovec frame{buf, 60};
        if (writev(tap, &frame, 1) >= 0 && errno != EIO) return 6;
        if (sv[0] < 0 || writev(sv[0], &frame, 1) != 60) return 7;
        if (readv(sv[1], &iov, 1) != 60) return 8;
        Call(SYS_pread64, 0);
        return 9;
      },
      LoadWith::kLibseccomp,
      [&] {
        if (unshare(CLONE_NEWNET) != 0) return;
        int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
        ifreq ifr{};
        ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
        if (fd >= 0 && ioctl(fd, TUNSETIFF, &ifr) == 0) tap = fd;
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) sv[0] = -1;
      });
}

TEST(ShippedPolicyTest, NetDeviceDoesTapIo) {
  CompiledFilter f = CompileShipped("net_device.policy");
  for (bool reconfigure : {false, true}) {
    ChildOutcome out = RunNetDeviceChild(f, reconfigure);
    ASSERT_TRUE(out.exited) << "signal " << out.signal;
    ASSERT_EQ(out.exit_code, kSeccompTrapExitCode)
        << "step " << out.exit_code << " failed"
        << (out.record ? ", trapped on " + SyscallName(out.record->syscall_nr) : "");
    ASSERT_TRUE(out.record.has_value());
    EXPECT_EQ(SyscallName(out.record->syscall_nr), reconfigure ? "ioctl" : "pread64");
  }
}

TEST(ShippedPolicyTest, BalloonDevicePunchesHolesAndNothingElse) {
  CompiledFilter f = CompileShipped("balloon_device.policy");
  int fd = memfd_create("balloon_policy_test", MFD_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, 1 << 20), 0);
  ExpectTrappedOn(
      f,
      [fd] {
        if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4096, 8192) != 0) return 1;
        // Zeroing a range is not releasing it.
        fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 0, 4096);
        return 2;
      },
      SYS_fallocate);
  close(fd);
}

}  // namespace
}  // namespace crosvm::sandbox
