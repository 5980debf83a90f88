#include "sandbox/jail.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <poll.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace crosvm::sandbox {
namespace {

using base::Error;
using base::Result;
using base::ScopedFd;
using base::Status;

constexpr int kNamespaceFlags =
    CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET | CLONE_NEWPID;
constexpr uid_t kNobody = 65534;
// The new root's tmpfs is mounted here first. Nothing is shadowed by it: pivot_root moves it
// away before any bind source is looked up (sources are then read under kOldRoot).
constexpr char kStagingDir[] = "/tmp";
constexpr char kOldRoot[] = "/.old_root";
constexpr char kRootTmpfsOptions[] = "size=1m,nr_inodes=4096,mode=0755";
constexpr size_t kCommLength = 15;
constexpr size_t kMaxMessageText = 2048;  // keeps a message under PIPE_BUF: one atomic write

// ---- Set-up messages from the relay and the device to Spawn, one write(2) each. ----

enum class Msg : char {
  kReadyForMap = 'U',  // relay: unshared, waiting for uid_map/gid_map
  kDevicePid = 'P',    // relay: value is the device's host PID
  kSetupDone = 'K',    // device: confined, waiting for the go byte before the hook
  kError = 'E',        // either: value is errno, text is the message; the sender exits 126
};

struct MsgHeader {
  char type;
  int32_t value;
  uint32_t length;
};

struct Message {
  Msg type;
  int32_t value;
  std::string text;
};

void SendMessage(int fd, Msg type, int32_t value, const std::string& text = "") {
  MsgHeader header;
  std::memset(&header, 0, sizeof(header));
  header.type = static_cast<char>(type);
  header.value = value;
  header.length = static_cast<uint32_t>(std::min(text.size(), kMaxMessageText));
  char buf[sizeof(MsgHeader) + kMaxMessageText];
  std::memcpy(buf, &header, sizeof(header));
  std::memcpy(buf + sizeof(header), text.data(), header.length);
  // A failed write means Spawn has gone; the sender notices on its next read of the go socket.
  while (write(fd, buf, sizeof(header) + header.length) < 0 && errno == EINTR) {
  }
}

// The parent's side of the report pipe: yields whole messages, nullopt at EOF.
class MessageReader {
 public:
  explicit MessageReader(int fd) : fd_(fd) {}

  Result<std::optional<Message>> Next() {
    while (true) {
      if (buf_.size() >= sizeof(MsgHeader)) {
        MsgHeader header;
        std::memcpy(&header, buf_.data(), sizeof(header));
        if (header.length > kMaxMessageText) return Error("jail: malformed set-up message");
        if (buf_.size() >= sizeof(header) + header.length) {
          Message m{static_cast<Msg>(header.type), header.value,
                    buf_.substr(sizeof(header), header.length)};
          buf_.erase(0, sizeof(header) + header.length);
          return std::optional<Message>(std::move(m));
        }
      }
      char chunk[4096];
      ssize_t n = read(fd_, chunk, sizeof(chunk));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Error::FromErrno("jail: reading set-up messages");
      if (n == 0) return std::optional<Message>();
      buf_.append(chunk, static_cast<size_t>(n));
    }
  }

 private:
  int fd_;
  std::string buf_;
};

// ---- Small system-call helpers. ----

int PidfdOpen(pid_t pid) {
  return static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
}

int PidfdSendSignal(int pidfd, int sig) {
  return static_cast<int>(syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

// One byte from the go socket; false at EOF (Spawn gave up or died).
bool ReadGoByte(int fd) {
  char c;
  ssize_t n;
  do {
    n = read(fd, &c, 1);
  } while (n < 0 && errno == EINTR);
  return n == 1;
}

// MSG_NOSIGNAL: a child that died early must not raise SIGPIPE in the caller.
Status WriteGoByte(int fd) {
  char c = 1;
  ssize_t n;
  do {
    n = send(fd, &c, 1, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n != 1) return Error::FromErrno("jail: releasing the jailed process");
  return base::Ok();
}

Status WriteProcFile(pid_t pid, const char* file, const std::string& text) {
  std::string path = "/proc/" + std::to_string(pid) + "/" + file;
  ScopedFd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd.valid()) return Error::FromErrno("open " + path);
  // uid_map and gid_map take their whole content in a single write.
  if (write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    return Error::FromErrno("write " + path);
  }
  return base::Ok();
}

std::string ReadSmallFile(const char* path) {
  ScopedFd fd(open(path, O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return "";
  char buf[256];
  ssize_t n = read(fd.get(), buf, sizeof(buf) - 1);
  if (n <= 0) return "";
  std::string s(buf, static_cast<size_t>(n));
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// The highest capability number, read before the jail hides /proc; probing is the fallback.
int LastCapability() {
  std::string text = ReadSmallFile("/proc/sys/kernel/cap_last_cap");
  if (!text.empty()) return std::atoi(text.c_str());
  int cap = 0;
  while (prctl(PR_CAPBSET_READ, cap + 1, 0, 0, 0) >= 0) ++cap;
  return cap;
}

ExitInfo DecodeWaitStatus(int status) {
  ExitInfo info;
  if (WIFSIGNALED(status)) {
    info.signal = WTERMSIG(status);
  } else {
    info.exit_code = WEXITSTATUS(status);
  }
  return info;
}

Result<ExitInfo> WaitForPid(pid_t pid) {
  int status = 0;
  pid_t r;
  do {
    r = waitpid(pid, &status, 0);
  } while (r < 0 && errno == EINTR);
  if (r < 0) return Error::FromErrno("waitpid " + std::to_string(pid));
  return DecodeWaitStatus(status);
}

// Closes every fd not in `keep` (sorted, unique) with close_range over the gaps.
Status CloseAllExcept(const std::vector<int>& keep) {
  unsigned int low = 0;
  for (int fd : keep) {
    auto k = static_cast<unsigned int>(fd);
    if (k > low && close_range(low, k - 1, 0) != 0) return Error::FromErrno("close_range");
    low = k + 1;
  }
  if (close_range(low, ~0U, 0) != 0) return Error::FromErrno("close_range");
  return base::Ok();
}

Status InStep(const char* step, Status status) {
  if (!status.ok()) return status.error().Wrap(step);
  return status;
}

// Dies with SIGKILL when the process's parent does; the getppid() check closes the window in
// which the parent may already have gone.
void DieWithParent(pid_t expected_parent) {
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 || getppid() != expected_parent) _exit(1);
}

// Both children start from the caller's signal state; handlers belong to the caller's logic, so
// they are reset (ignored signals stay ignored, as across execve) and nothing is blocked.
void ResetSignals() {
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    struct sigaction old;
    if (sigaction(sig, nullptr, &old) != 0) continue;  // glibc-internal signals
    if (old.sa_handler == SIG_IGN && !(old.sa_flags & SA_SIGINFO)) continue;
    if (old.sa_handler == SIG_DFL && !(old.sa_flags & SA_SIGINFO)) continue;
    signal(sig, SIG_DFL);
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
}

// ---- The device's confinement steps (run in the device, PID 1 of the new PID namespace). ----

Status MakeMountPoint(const std::string& path, bool directory) {
  for (size_t slash = path.find('/', 1); slash != std::string::npos;
       slash = path.find('/', slash + 1)) {
    std::string parent = path.substr(0, slash);
    if (mkdir(parent.c_str(), 0755) != 0 && errno != EEXIST) {
      return Error::FromErrno("mkdir " + parent);
    }
  }
  if (directory) {
    if (mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) return Error::FromErrno("mkdir " + path);
    return base::Ok();
  }
  ScopedFd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644));
  if (!fd.valid() && errno != EISDIR) return Error::FromErrno("create " + path);
  return base::Ok();
}

// A read-only remount of a bind must repeat the flags the mount already has: in a user namespace
// the kernel locks nosuid/nodev/noexec/atime flags of mounts that came from outside.
Status RemountReadOnly(const std::string& path) {
  struct statvfs vfs;
  if (statvfs(path.c_str(), &vfs) != 0) return Error::FromErrno("statvfs " + path);
  unsigned long flags = MS_REMOUNT | MS_BIND | MS_RDONLY;
  if (vfs.f_flag & ST_NOSUID) flags |= MS_NOSUID;
  if (vfs.f_flag & ST_NODEV) flags |= MS_NODEV;
  if (vfs.f_flag & ST_NOEXEC) flags |= MS_NOEXEC;
  if (vfs.f_flag & ST_NOATIME) flags |= MS_NOATIME;
  if (vfs.f_flag & ST_NODIRATIME) flags |= MS_NODIRATIME;
  if (vfs.f_flag & ST_RELATIME) flags |= MS_RELATIME;
  if (mount(nullptr, path.c_str(), nullptr, flags, nullptr) != 0) {
    return Error::FromErrno("remount " + path + " read-only");
  }
  return base::Ok();
}

// The remount above only covers the bind's top mount; mounts below it (a bound /dev's /dev/shm)
// need mount_setattr (Linux 5.12+; older kernels leave them as they are).
Status SubmountsReadOnly(const std::string& path) {
  struct mount_attr attr;
  std::memset(&attr, 0, sizeof(attr));
  attr.attr_set = MOUNT_ATTR_RDONLY;
  if (syscall(SYS_mount_setattr, AT_FDCWD, path.c_str(), AT_RECURSIVE, &attr, sizeof(attr)) != 0 &&
      errno != ENOSYS) {
    return Error::FromErrno("make the mounts under " + path + " read-only");
  }
  return base::Ok();
}

struct ResolvedBind {
  std::string source;  // canonical host path
  std::string target;
  bool directory;
  bool writable;
};

Status SetUpMounts(const std::vector<BindMount>& binds) {
  // Resolve sources while the host's tree is still the root, so absolute symlinks mean what they
  // mean on the host.
  std::vector<ResolvedBind> resolved;
  for (const BindMount& b : binds) {
    char* real = realpath(b.host_path.c_str(), nullptr);
    if (real == nullptr) return Error::FromErrno("bind " + b.host_path + ": realpath");
    std::string source(real);
    free(real);
    struct stat st;
    if (stat(source.c_str(), &st) != 0) return Error::FromErrno("bind " + b.host_path + ": stat");
    resolved.push_back({source, b.jail_path, S_ISDIR(st.st_mode), b.writable});
  }
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return Error::FromErrno("make / recursively private");
  }
  if (mount("tmpfs", kStagingDir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, kRootTmpfsOptions) !=
      0) {
    return Error::FromErrno(std::string("mount tmpfs on ") + kStagingDir);
  }
  std::string put_old = std::string(kStagingDir) + kOldRoot;
  if (mkdir(put_old.c_str(), 0700) != 0) return Error::FromErrno("mkdir " + put_old);
  if (syscall(SYS_pivot_root, kStagingDir, put_old.c_str()) != 0) {
    return Error::FromErrno("pivot_root");
  }
  if (chdir("/") != 0) return Error::FromErrno("chdir /");
  for (const ResolvedBind& b : resolved) {
    std::string what = "bind " + b.source + " to " + b.target;
    CROSVM_RETURN_IF_ERROR(InStep(what.c_str(), MakeMountPoint(b.target, b.directory)));
    std::string from = kOldRoot + (b.source == "/" ? std::string() : b.source);
    if (mount(from.c_str(), b.target.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0) {
      return Error::FromErrno(what);
    }
    if (!b.writable) {
      CROSVM_RETURN_IF_ERROR(InStep(what.c_str(), RemountReadOnly(b.target)));
      CROSVM_RETURN_IF_ERROR(InStep(what.c_str(), SubmountsReadOnly(b.target)));
    }
  }
  if (umount2(kOldRoot, MNT_DETACH) != 0) return Error::FromErrno("unmount the old root");
  if (rmdir(kOldRoot) != 0) return Error::FromErrno(std::string("rmdir ") + kOldRoot);
  // Only the writable binds stay writable; the root itself is just scaffolding.
  CROSVM_RETURN_IF_ERROR(RemountReadOnly("/"));
  if (chdir("/") != 0) return Error::FromErrno("chdir /");
  return base::Ok();
}

Status SetNames(const std::string& name) {
  if (sethostname(name.data(), name.size()) != 0) return Error::FromErrno("sethostname");
  std::string comm = ("crosvm:" + name).substr(0, kCommLength);
  if (prctl(PR_SET_NAME, comm.c_str(), 0, 0, 0) != 0) return Error::FromErrno("PR_SET_NAME");
  return base::Ok();
}

Status SetRlimits(int highest_kept_fd) {
  struct rlimit core = {0, 0};
  if (setrlimit(RLIMIT_CORE, &core) != 0) return Error::FromErrno("setrlimit RLIMIT_CORE");
  struct rlimit nofile;
  if (getrlimit(RLIMIT_NOFILE, &nofile) != 0) return Error::FromErrno("getrlimit RLIMIT_NOFILE");
  rlim_t want = std::max<rlim_t>(64, static_cast<rlim_t>(highest_kept_fd) + 32);
  // Raising the hard limit needs CAP_SYS_RESOURCE on the host; never try.
  want = std::min(want, nofile.rlim_max);
  nofile.rlim_cur = want;
  nofile.rlim_max = want;
  if (setrlimit(RLIMIT_NOFILE, &nofile) != 0) return Error::FromErrno("setrlimit RLIMIT_NOFILE");
  return base::Ok();
}

Status DropCapabilities(int last_cap) {
  for (int cap = 0; cap <= last_cap; ++cap) {
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
      return Error::FromErrno("PR_CAPBSET_DROP " + std::to_string(cap));
    }
  }
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) {
    return Error::FromErrno("PR_CAP_AMBIENT_CLEAR_ALL");
  }
  struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (syscall(SYS_capset, &header, data) != 0) return Error::FromErrno("capset");
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return Error::FromErrno("PR_SET_NO_NEW_PRIVS");
  return base::Ok();
}

// What both children need; it lives in the caller's memory, copied by fork.
struct SpawnArgs {
  const JailConfig* config;
  const Jail::Hook* before_main;
  const Jail::Main* main;
  pid_t spawner;
  int report;  // write end
  int go;      // the children's end of the go socket
  int last_cap;
};

Status ConfineDevice(const SpawnArgs& a) {
  const JailConfig& c = *a.config;
  std::vector<int> keep = c.keep_fds;
  if (c.keep_stdio) keep.insert(keep.end(), {0, 1, 2});
  std::sort(keep.begin(), keep.end());
  keep.erase(std::unique(keep.begin(), keep.end()), keep.end());
  int highest = keep.empty() ? 0 : keep.back();

  CROSVM_RETURN_IF_ERROR(InStep("mounts", SetUpMounts(c.binds)));
  CROSVM_RETURN_IF_ERROR(InStep("names", SetNames(c.name)));
  CROSVM_RETURN_IF_ERROR(InStep("rlimits", SetRlimits(highest)));
  // The report pipe and go socket stay open until the go byte; nothing else the caller's does.
  std::vector<int> keep_now = keep;
  keep_now.insert(keep_now.end(), {a.report, a.go});
  std::sort(keep_now.begin(), keep_now.end());
  CROSVM_RETURN_IF_ERROR(InStep("close fds", CloseAllExcept(keep_now)));
  CROSVM_RETURN_IF_ERROR(InStep("capabilities", DropCapabilities(a.last_cap)));
  return base::Ok();
}

[[noreturn]] void RunDevice(const SpawnArgs& a, int relay_alive) {
  // The relay is outside this PID namespace, so getppid() is 0 here: a pipe whose write end only
  // the relay holds tells whether it is still there after PR_SET_PDEATHSIG.
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) _exit(Jail::kSetupFailedExitCode);
  struct pollfd p = {relay_alive, POLLIN, 0};
  if (poll(&p, 1, 0) != 0) _exit(Jail::kSetupFailedExitCode);
  close(relay_alive);

  Status s = ConfineDevice(a);
  if (!s.ok()) {
    SendMessage(a.report, Msg::kError, s.error().errnum(), s.error().message());
    _exit(Jail::kSetupFailedExitCode);
  }
  SendMessage(a.report, Msg::kSetupDone, 0);
  // Wait until Spawn holds a pidfd of this process, so Kill() can never hit a recycled PID.
  if (!ReadGoByte(a.go)) _exit(Jail::kSetupFailedExitCode);
  close(a.report);
  close(a.go);

  Status hook = (*a.before_main) ? (*a.before_main)() : base::Ok();
  if (!hook.ok()) {
    std::string line =
        "jail " + a.config->name + ": before_main: " + hook.error().ToString() + "\n";
    (void)!write(2, line.data(), line.size());
    _exit(Jail::kSetupFailedExitCode);
  }
  int code = (*a.main)();
  fflush(nullptr);
  _exit(code);
}

// Ends the relay the way the device ended: same exit code, or the same signal re-raised (no core:
// the relay is made undumpable first). 128+signal if the signal does not kill it.
[[noreturn]] void RelayEnd(int status) {
  if (!WIFSIGNALED(status)) _exit(WEXITSTATUS(status));
  int sig = WTERMSIG(status);
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  signal(sig, SIG_DFL);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, sig);
  sigprocmask(SIG_UNBLOCK, &set, nullptr);
  raise(sig);
  _exit(128 + sig);
}

[[noreturn]] void RelayFail(int report, const Error& e) {
  SendMessage(report, Msg::kError, e.errnum(), e.message());
  _exit(Jail::kSetupFailedExitCode);
}

[[noreturn]] void RunRelay(const SpawnArgs& a) {
  DieWithParent(a.spawner);
  ResetSignals();
  // Its own session: a terminal's ^C or hangup goes to the VMM, which decides the devices' fate,
  // not straight to the relays.
  if (setsid() < 0) RelayFail(a.report, Error::FromErrno("namespaces: setsid"));
  bool to_nobody = geteuid() == 0;
  // Host root's supplementary groups would survive the mapping; only host root can drop them,
  // and only before leaving the initial user namespace.
  if (to_nobody && setgroups(0, nullptr) != 0) {
    RelayFail(a.report, Error::FromErrno("namespaces: setgroups"));
  }
  if (unshare(kNamespaceFlags) != 0) {
    RelayFail(a.report, Error::FromErrno("namespaces: unshare(CLONE_NEWUSER | CLONE_NEWNS | "
                                         "CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET | "
                                         "CLONE_NEWPID)"));
  }
  // A process cannot write its own maps with an outside ID other than its own; Spawn writes them.
  int dumpable = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
  SendMessage(a.report, Msg::kReadyForMap, 0);
  if (!ReadGoByte(a.go)) _exit(Jail::kSetupFailedExitCode);
  // Inside, become 0: for host root this moves the process's IDs to nobody outside.
  if (setresgid(0, 0, 0) != 0) RelayFail(a.report, Error::FromErrno("uid map: setresgid(0)"));
  if (setresuid(0, 0, 0) != 0) RelayFail(a.report, Error::FromErrno("uid map: setresuid(0)"));
  // A credential change resets both the parent-death signal and dumpable (to suid_dumpable).
  if (dumpable >= 0) prctl(PR_SET_DUMPABLE, dumpable, 0, 0, 0);
  DieWithParent(a.spawner);

  int alive[2];
  if (pipe2(alive, O_CLOEXEC) != 0) RelayFail(a.report, Error::FromErrno("namespaces: pipe"));
  pid_t device = fork();
  if (device < 0) RelayFail(a.report, Error::FromErrno("namespaces: fork the device"));
  if (device == 0) {
    close(alive[1]);
    RunDevice(a, alive[0]);
  }
  close(alive[0]);
  SendMessage(a.report, Msg::kDevicePid, device);
  // Hold nothing of the caller's while the device runs; only the device's liveness pipe.
  if (CloseAllExcept({alive[1]}).ok()) {
    struct rlimit core = {0, 0};
    setrlimit(RLIMIT_CORE, &core);
  }
  int status = 0;
  pid_t r;
  do {
    r = waitpid(device, &status, 0);
  } while (r < 0 && errno == EINTR);
  if (r < 0) _exit(Jail::kSetupFailedExitCode);
  RelayEnd(status);
}

Status ValidateConfig(const JailConfig& c) {
  if (c.name.empty() || c.name.size() > 64) return Error("jail: name must be 1 to 64 characters");
  for (int fd : c.keep_fds) {
    // A closed number here could later be one of the set-up pipes, which the device closes.
    if (fd < 0 || fcntl(fd, F_GETFD) < 0) {
      return Error("jail " + c.name + ": fd " + std::to_string(fd) + " to keep is not open");
    }
  }
  for (const BindMount& b : c.binds) {
    std::string what = "jail " + c.name + ": bind " + b.host_path + " to " + b.jail_path;
    if (b.host_path.empty() || b.host_path[0] != '/') {
      return Error(what + ": host path must be absolute");
    }
    if (b.jail_path.size() < 2 || b.jail_path[0] != '/' || b.jail_path.back() == '/') {
      return Error(what + ": jail path must be absolute, not / and without a trailing /");
    }
    if (b.jail_path.find("/../") != std::string::npos || b.jail_path.ends_with("/..") ||
        b.jail_path.find("/./") != std::string::npos || b.jail_path.ends_with("/.") ||
        b.jail_path.find("//") != std::string::npos) {
      return Error(what + ": jail path must be normalized");
    }
    if (b.jail_path == kOldRoot || b.jail_path.starts_with(std::string(kOldRoot) + "/")) {
      return Error(what + ": jail path is reserved");
    }
  }
  return base::Ok();
}

}  // namespace

std::string ExitInfo::ToString() const {
  if (exited()) return "exited " + std::to_string(exit_code);
  return "killed by signal " + std::to_string(signal);
}

Jail::Jail(pid_t relay_pid, ScopedFd relay_pidfd)
    : relay_pid_(relay_pid), relay_pidfd_(std::move(relay_pidfd)) {}

Jail::Jail(Jail&& other) noexcept
    : relay_pid_(std::exchange(other.relay_pid_, -1)),
      device_pid_(std::exchange(other.device_pid_, -1)),
      relay_pidfd_(std::move(other.relay_pidfd_)),
      device_pidfd_(std::move(other.device_pidfd_)),
      exit_(std::exchange(other.exit_, std::nullopt)) {}

Jail& Jail::operator=(Jail&& other) noexcept {
  if (this != &other) {
    Release();
    relay_pid_ = std::exchange(other.relay_pid_, -1);
    device_pid_ = std::exchange(other.device_pid_, -1);
    relay_pidfd_ = std::move(other.relay_pidfd_);
    device_pidfd_ = std::move(other.device_pidfd_);
    exit_ = std::exchange(other.exit_, std::nullopt);
  }
  return *this;
}

Jail::~Jail() {
  Release();
}

void Jail::Release() {
  if (relay_pid_ > 0 && !exit_) {
    Kill();
    (void)Wait();
  }
  relay_pid_ = -1;
  device_pid_ = -1;
  relay_pidfd_.reset();
  device_pidfd_.reset();
  exit_.reset();
}

void Jail::Kill() {
  if (exit_ || !device_pidfd_.valid()) return;
  // ESRCH: it has ended already; the relay is exiting on its own.
  (void)PidfdSendSignal(device_pidfd_.get(), SIGKILL);
}

Result<ExitInfo> Jail::Wait() {
  if (exit_) return *exit_;
  if (relay_pid_ <= 0) return Error("jail: no process to wait for");
  CROSVM_ASSIGN_OR_RETURN(ExitInfo info, WaitForPid(relay_pid_));
  exit_ = info;
  return info;
}

Result<Jail> Jail::Spawn(const JailConfig& config, Hook before_main, Main main) {
  CROSVM_RETURN_IF_ERROR(ValidateConfig(config));
  if (!main) return Error("jail " + config.name + ": no main function");
  int report[2];
  int go[2];
  if (pipe2(report, O_CLOEXEC) != 0) return Error::FromErrno("jail: pipe");
  ScopedFd report_r(report[0]), report_w(report[1]);
  // A socket, not a pipe, for the caller's writes: send() can refuse SIGPIPE.
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, go) != 0) {
    return Error::FromErrno("jail: socketpair");
  }
  ScopedFd go_r(go[0]), go_w(go[1]);

  SpawnArgs args{&config,        &before_main, &main,           getpid(),
                 report_w.get(), go_r.get(),   LastCapability()};
  // Buffered output would otherwise be written once more by each child that flushes.
  fflush(nullptr);
  pid_t relay = fork();
  if (relay < 0) return Error::FromErrno("jail " + config.name + ": fork");
  if (relay == 0) {
    close(report_r.release());
    close(go_w.release());
    RunRelay(args);
  }
  report_w.reset();
  go_r.reset();

  ScopedFd pidfd(PidfdOpen(relay));
  if (!pidfd.valid()) {
    Error e = Error::FromErrno("jail " + config.name + ": pidfd_open");
    kill(relay, SIGKILL);  // still our unreaped child: the PID cannot have been reused
    (void)WaitForPid(relay);
    return e;
  }
  Jail jail(relay, std::move(pidfd));
  bool ended_early = false;
  Status s = jail.FinishSpawn(config, std::move(report_r), std::move(go_w), &ended_early);
  if (!s.ok()) {
    // The pipe and socket are closed, so both children exit on their own; reap the relay.
    Result<ExitInfo> end = jail.Wait();
    if (!ended_early) return s.error();
    return Error(s.error().message() + " (" +
                 (end.ok() ? end->ToString() : end.error().ToString()) + ")");
  }
  return jail;
}

// The set-up conversation: answer kReadyForMap with the ID maps, collect the device's PID and
// its kSetupDone, then release it with the second go byte once its pidfd is held.
Status Jail::FinishSpawn(const JailConfig& config, ScopedFd report, ScopedFd go,
                         bool* ended_early) {
  const std::string context = "jail " + config.name;
  MessageReader reader(report.get());
  bool done = false;
  while (device_pid_ <= 0 || !done) {
    CROSVM_ASSIGN_OR_RETURN(std::optional<Message> msg, reader.Next());
    if (!msg) {
      *ended_early = true;
      return Error(context + ": the jailed process ended during set-up");
    }
    switch (msg->type) {
      case Msg::kReadyForMap: {
        bool to_nobody = geteuid() == 0;
        std::string uid_map = "0 " + std::to_string(to_nobody ? kNobody : geteuid()) + " 1\n";
        std::string gid_map = "0 " + std::to_string(to_nobody ? kNobody : getegid()) + " 1\n";
        Status s = WriteProcFile(relay_pid_, "uid_map", uid_map);
        if (s.ok()) s = WriteProcFile(relay_pid_, "setgroups", "deny");
        if (s.ok()) s = WriteProcFile(relay_pid_, "gid_map", gid_map);
        if (s.ok()) s = WriteGoByte(go.get());
        if (!s.ok()) return s.error().Wrap(context + ": uid map");
        break;
      }
      case Msg::kDevicePid:
        device_pid_ = msg->value;
        break;
      case Msg::kSetupDone:
        done = true;
        break;
      case Msg::kError:
        return Error(msg->text, msg->value).Wrap(context);
      default:
        return Error(context + ": unexpected set-up message");
    }
  }
  device_pidfd_.reset(PidfdOpen(device_pid_));
  if (!device_pidfd_.valid()) return Error::FromErrno(context + ": pidfd_open of the device");
  CROSVM_RETURN_IF_ERROR(WriteGoByte(go.get()));
  return base::Ok();
}

// ---- Host support probe. ----

namespace {

constexpr char kDisableHint[] = "run with --disable-sandbox to run devices without a sandbox";

// Runs in a forked, single-threaded child (unshare(CLONE_NEWUSER) refuses threaded callers).
std::string ProbeNamespaces() {
  if (unshare(CLONE_NEWUSER) != 0) {
    int err = errno;
    std::string max = ReadSmallFile("/proc/sys/user/max_user_namespaces");
    if (max == "0") return "user namespaces are not available (sysctl user.max_user_namespaces=0)";
    if (ReadSmallFile("/proc/sys/kernel/unprivileged_userns_clone") == "0") {
      return "user namespaces are not available (sysctl kernel.unprivileged_userns_clone=0)";
    }
    return std::string("user namespaces are not available (unshare(CLONE_NEWUSER): ") +
           std::strerror(err) + ")";
  }
  struct {
    int flag;
    const char* what;
  } const kinds[] = {{CLONE_NEWNS, "mount"},
                     {CLONE_NEWIPC, "IPC"},
                     {CLONE_NEWUTS, "UTS"},
                     {CLONE_NEWNET, "network"},
                     {CLONE_NEWPID, "PID"}};
  for (const auto& k : kinds) {
    if (unshare(k.flag) != 0) {
      return std::string(k.what) + " namespaces are not available (" + std::strerror(errno) + ")";
    }
  }
  // Catches LSM policies that allow the user namespace but strip its capabilities.
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return std::string("mounts inside a user namespace are not permitted (") +
           std::strerror(errno) + ")";
  }
  if (PidfdOpen(getpid()) < 0 && errno == ENOSYS) return "pidfd_open is not available (Linux 5.3+)";
  // With a null filter the kernel answers EFAULT (or EACCES) when filters exist, EINVAL if not.
  if (prctl(PR_SET_SECCOMP, 2 /* SECCOMP_MODE_FILTER */, nullptr, 0, 0) != 0 && errno == EINVAL) {
    return "seccomp filters are not available in this kernel";
  }
  return "";
}

}  // namespace

Status CheckSandboxSupport() {
  if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) < 0 && errno == EINVAL) {
    return Error(std::string("seccomp is not available in this kernel; ") + kDisableHint);
  }
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return Error::FromErrno("sandbox probe: pipe");
  ScopedFd r(fds[0]), w(fds[1]);
  fflush(nullptr);
  pid_t child = fork();
  if (child < 0) return Error::FromErrno("sandbox probe: fork");
  if (child == 0) {
    std::string problem = ProbeNamespaces();
    (void)!write(w.get(), problem.data(), problem.size());
    _exit(0);
  }
  w.reset();
  std::string problem;
  char buf[512];
  ssize_t n;
  while ((n = read(r.get(), buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR)) {
    if (n > 0) problem.append(buf, static_cast<size_t>(n));
  }
  CROSVM_ASSIGN_OR_RETURN(ExitInfo end, WaitForPid(child));
  if (!problem.empty()) return Error(problem + "; " + kDisableHint);
  if (!end.exited() || end.exit_code != 0) {
    return Error("sandbox probe " + end.ToString() + "; " + kDisableHint);
  }
  return base::Ok();
}

}  // namespace crosvm::sandbox
