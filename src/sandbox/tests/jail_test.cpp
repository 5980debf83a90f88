// Jailed children inspect themselves and report over a pipe; the test also reads their /proc
// entries from the host side.
#include "sandbox/jail.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace crosvm::sandbox {
namespace {

using base::ScopedFd;

struct Pipe {
  ScopedFd r;
  ScopedFd w;
};

Pipe MakePipe() {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) std::abort();
  return {ScopedFd(fds[0]), ScopedFd(fds[1])};
}

// In the child: one report, written whole.
void WriteAll(int fd, const std::string& s) {
  size_t done = 0;
  while (done < s.size()) {
    ssize_t n = write(fd, s.data() + done, s.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

// Reads "key=value" lines until a line "end" (or EOF, or 10 s without data: a failure, not a hang).
std::map<std::string, std::string> ReadReport(int fd) {
  std::string text;
  char buf[1024];
  while (text.find("end\n") == std::string::npos) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 10000) != 1) break;
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  std::map<std::string, std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    size_t eq = line.find('=');
    if (eq != std::string::npos) out[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return out;
}

// /proc/PID/status as key -> value (leading whitespace of the value dropped).
std::map<std::string, std::string> ReadStatus(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::map<std::string, std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    size_t start = line.find_first_not_of(" \t", colon + 1);
    out[line.substr(0, colon)] = start == std::string::npos ? "" : line.substr(start);
  }
  return out;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string ReadLink(const std::string& path) {
  char buf[256];
  ssize_t n = readlink(path.c_str(), buf, sizeof(buf));
  return n < 0 ? "" : std::string(buf, static_cast<size_t>(n));
}

bool WaitReadable(int fd, int timeout_ms) {
  struct pollfd p = {fd, POLLIN, 0};
  return poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}

bool ProcessGone(pid_t pid) {
  return kill(pid, 0) != 0 && errno == ESRCH;
}

std::string JoinInts(const std::vector<int>& v) {
  std::string s;
  for (int x : v) s += (s.empty() ? "" : ",") + std::to_string(x);
  return s;
}

// In the child: fds open below the RLIMIT_NOFILE soft limit (/proc is not mounted there).
std::vector<int> ProbeOpenFds() {
  struct rlimit lim;
  getrlimit(RLIMIT_NOFILE, &lim);
  std::vector<int> open;
  for (int fd = 0; fd < static_cast<int>(lim.rlim_cur); ++fd) {
    if (fcntl(fd, F_GETFD) >= 0) open.push_back(fd);
  }
  return open;
}

JailConfig Named(const std::string& name) {
  JailConfig config;
  config.name = name;
  return config;
}

int BlockForever() {
  while (true) pause();
}

class JailTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base::Status support = CheckSandboxSupport();
    ASSERT_TRUE(support.ok()) << support.error().ToString();
  }
};

TEST_F(JailTest, SandboxSupportProbePasses) {
  EXPECT_TRUE(CheckSandboxSupport().ok());
}

TEST_F(JailTest, SandboxSupportProbeNamesMissingUserNamespaces) {
  // A helper in its own user namespace sets that namespace's user.max_user_namespaces to 0, so
  // the probe it runs cannot create one.
  Pipe out = MakePipe();
  pid_t helper = fork();
  ASSERT_GE(helper, 0);
  if (helper == 0) {
    if (unshare(CLONE_NEWUSER) != 0) _exit(100);
    std::ofstream("/proc/self/uid_map") << "0 " << geteuid() << " 1\n";
    std::ofstream max("/proc/sys/user/max_user_namespaces");
    max << "0\n";
    max.close();
    if (!max) _exit(101);
    base::Status s = CheckSandboxSupport();
    WriteAll(out.w.get(),
             "message=" + (s.ok() ? std::string("ok") : s.error().ToString()) + "\nend\n");
    _exit(0);
  }
  out.w.reset();
  auto got = ReadReport(out.r.get());
  int status = 0;
  ASSERT_EQ(waitpid(helper, &status, 0), helper);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_EQ(got["message"],
            "user namespaces are not available (sysctl user.max_user_namespaces=0); run with "
            "--disable-sandbox to run devices without a sandbox");
}

TEST_F(JailTest, DeviceIsPidOneWithoutCapabilitiesInOwnNamespaces) {
  Pipe report = MakePipe();
  Pipe release = MakePipe();
  int w = report.w.get();
  int r = release.r.get();
  JailConfig config{.name = "blk0", .keep_fds = {w, r}, .binds = {}, .keep_stdio = true};
  auto jail = Jail::Spawn(config, nullptr, [w, r] {
    char host[65] = {};
    gethostname(host, sizeof(host) - 1);
    WriteAll(w, "host=" + std::string(host) + "\npid=" + std::to_string(getpid()) +
                    "\nuid=" + std::to_string(getuid()) + "\ngid=" + std::to_string(getgid()) +
                    "\ndumpable=" + std::to_string(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0)) + "\nend\n");
    char c;
    (void)!read(r, &c, 1);  // until the test lets go
    return 0;
  });
  ASSERT_TRUE(jail.ok()) << jail.error().ToString();
  report.w.reset();
  release.r.reset();

  auto inside = ReadReport(report.r.get());
  EXPECT_EQ(inside["pid"], "1");
  EXPECT_EQ(inside["host"], "blk0");
  EXPECT_EQ(inside["uid"], "0");
  EXPECT_EQ(inside["gid"], "0");
  // The ID change in the relay resets dumpable; the jail restores it so /proc/PID stays readable.
  EXPECT_EQ(inside["dumpable"], std::to_string(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0)));

  pid_t pid = jail->pid();
  ASSERT_GT(pid, 1);
  auto status = ReadStatus(pid);
  EXPECT_EQ(status["NoNewPrivs"], "1");
  for (const char* set : {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"}) {
    EXPECT_EQ(status[set], "0000000000000000") << set;
  }
  std::string outside_uid = std::to_string(geteuid() == 0 ? 65534 : geteuid());
  std::string outside_gid = std::to_string(geteuid() == 0 ? 65534 : getegid());
  EXPECT_EQ(status["Uid"],
            outside_uid + "\t" + outside_uid + "\t" + outside_uid + "\t" + outside_uid);
  EXPECT_EQ(status["Gid"].substr(0, outside_gid.size() + 1), outside_gid + "\t");
  if (geteuid() == 0) {
    EXPECT_EQ(status["Groups"], "");  // host root's groups were dropped
  }
  for (const char* ns : {"user", "mnt", "pid", "net", "ipc", "uts"}) {
    std::string mine = ReadLink(std::string("/proc/self/ns/") + ns);
    std::string theirs = ReadLink("/proc/" + std::to_string(pid) + "/ns/" + ns);
    ASSERT_FALSE(theirs.empty()) << ns;
    EXPECT_NE(mine, theirs) << ns;
  }
  EXPECT_EQ(ReadFile("/proc/" + std::to_string(pid) + "/comm"), "crosvm:blk0\n");
  EXPECT_NE(getsid(pid), getsid(0));  // out of the caller's session: no terminal signals

  // Seen from the host: only stdio and the two kept pipes.
  std::set<int> fds;
  for (const auto& e :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) {
    fds.insert(std::stoi(e.path().filename().string()));
  }
  EXPECT_EQ(fds, (std::set<int>{0, 1, 2, w, r}));

  ASSERT_EQ(write(release.w.get(), "x", 1), 1);
  auto end = jail->Wait();
  ASSERT_TRUE(end.ok()) << end.error().ToString();
  EXPECT_TRUE(end->exited());
  EXPECT_EQ(end->exit_code, 0);
}

TEST_F(JailTest, HostRootsSupplementaryGroupsAreDropped) {
  // Only host root can drop its groups; anyone else keeps theirs (shown as overflow IDs).
  bool root = geteuid() == 0;
  int expected = root ? 0 : getgroups(0, nullptr);
  pid_t helper = fork();
  ASSERT_GE(helper, 0);
  if (helper == 0) {
    gid_t groups[] = {4242, 4343};
    if (root && setgroups(2, groups) != 0) _exit(100);
    auto jail = Jail::Spawn(Named("groups"), nullptr, [] { return getgroups(0, nullptr); });
    if (!jail.ok()) _exit(101);
    auto end = jail->Wait();
    _exit(end.ok() && end->exited() ? end->exit_code : 102);
  }
  int status = 0;
  ASSERT_EQ(waitpid(helper, &status, 0), helper);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), expected) << "groups in the jail (100+: the helper failed)";
}

TEST_F(JailTest, RootHoldsOnlyTheBindMounts) {
  char tmpl[] = "/tmp/jail_test.XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string base = tmpl;
  // The device is nobody on the host (when the test runs as root): it needs world access.
  ASSERT_EQ(chmod(base.c_str(), 0755), 0);
  ASSERT_EQ(mkdir((base + "/ro").c_str(), 0755), 0);
  ASSERT_EQ(mkdir((base + "/rw").c_str(), 0777), 0);
  ASSERT_EQ(chmod((base + "/rw").c_str(), 0777), 0);
  { std::ofstream(base + "/ro/hello") << "hi"; }
  ASSERT_EQ(chmod((base + "/ro/hello").c_str(), 0666), 0);

  Pipe report = MakePipe();
  int w = report.w.get();
  JailConfig config{.name = "fs",
                    .keep_fds = {w},
                    .binds = {{base + "/ro", "/data/ro", false},
                              {base + "/rw", "/rw", true},
                              {base + "/ro/hello", "/hello.ro", false},
                              {"/dev/null", "/dev/null", true}},
                    .keep_stdio = true};
  auto jail = Jail::Spawn(config, nullptr, [w] {
    std::vector<std::string> names;
    if (DIR* d = opendir("/")) {
      while (dirent* e = readdir(d)) {
        std::string n = e->d_name;
        if (n != "." && n != "..") names.push_back(n);
      }
      closedir(d);
    }
    std::sort(names.begin(), names.end());
    std::string root;
    for (const auto& n : names) root += (root.empty() ? "" : ",") + n;

    int fd = open("/data/ro/new", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    int ro_errno = fd < 0 ? errno : 0;
    int file_fd = open("/hello.ro", O_WRONLY | O_CLOEXEC);
    int ro_file_errno = file_fd < 0 ? errno : 0;
    char buf[16] = {};
    int in = open("/data/ro/hello", O_RDONLY | O_CLOEXEC);
    ssize_t got = in < 0 ? -1 : read(in, buf, sizeof(buf) - 1);
    int out = open("/rw/out", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    bool wrote = out >= 0 && write(out, "written", 7) == 7;
    int root_errno = mkdir("/newdir", 0755) != 0 ? errno : 0;
    int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    bool null_ok = null >= 0 && write(null, "x", 1) == 1;
    WriteAll(w, "root=" + root + "\nro_errno=" + std::to_string(ro_errno) +
                    "\nro_file_errno=" + std::to_string(ro_file_errno) +
                    "\nread=" + (got > 0 ? std::string(buf, static_cast<size_t>(got)) : "") +
                    "\nwrote=" + std::to_string(wrote) + "\nroot_errno=" +
                    std::to_string(root_errno) + "\nnull=" + std::to_string(null_ok) + "\nend\n");
    return 0;
  });
  ASSERT_TRUE(jail.ok()) << jail.error().ToString();
  report.w.reset();
  auto inside = ReadReport(report.r.get());
  auto end = jail->Wait();
  ASSERT_TRUE(end.ok());
  EXPECT_EQ(end->ToString(), "exited 0");

  EXPECT_EQ(inside["root"], "data,dev,hello.ro,rw");
  EXPECT_EQ(inside["ro_errno"], std::to_string(EROFS));
  EXPECT_EQ(inside["ro_file_errno"], std::to_string(EROFS));
  EXPECT_EQ(inside["read"], "hi");
  EXPECT_EQ(inside["wrote"], "1");
  EXPECT_EQ(inside["root_errno"], std::to_string(EROFS));
  EXPECT_EQ(inside["null"], "1");
  EXPECT_EQ(ReadFile(base + "/rw/out"), "written");
  EXPECT_FALSE(std::filesystem::exists(base + "/ro/new"));
  std::filesystem::remove_all(base);
}

TEST_F(JailTest, ReadOnlyBindCoversItsSubmounts) {
  char tmpl[] = "/tmp/jail_test.XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string base = tmpl;
  ASSERT_EQ(chmod(base.c_str(), 0755), 0);
  ASSERT_EQ(mkdir((base + "/sub").c_str(), 0755), 0);
  // The submount lives in a helper's private mount namespace, not in the test's.
  pid_t helper = fork();
  ASSERT_GE(helper, 0);
  if (helper == 0) {
    if (unshare(CLONE_NEWNS) != 0) _exit(100);
    if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) _exit(101);
    if (mount("tmpfs", (base + "/sub").c_str(), "tmpfs", 0, "mode=0777,size=64k") != 0) _exit(102);
    JailConfig config = Named("sub");
    config.binds = {{base, "/b", false}};
    auto jail = Jail::Spawn(config, nullptr, [] {
      int fd = open("/b/sub/file", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
      return fd >= 0 ? 0 : errno;
    });
    if (!jail.ok()) _exit(103);
    auto end = jail->Wait();
    _exit(end.ok() && end->exited() ? end->exit_code : 104);
  }
  int status = 0;
  ASSERT_EQ(waitpid(helper, &status, 0), helper);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), EROFS) << "100+: the helper failed";
  std::filesystem::remove_all(base);
}

TEST_F(JailTest, OnlyKeptFdsStayOpenAndRlimitsAreSet) {
  ScopedFd unkept(open("/dev/null", O_RDONLY));  // open in the test, must be closed in the child
  ASSERT_TRUE(unkept.valid());
  for (bool keep_stdio : {true, false}) {
    Pipe report = MakePipe();
    int w = report.w.get();
    JailConfig config{.name = "fds", .keep_fds = {w}, .binds = {}, .keep_stdio = keep_stdio};
    auto jail = Jail::Spawn(config, nullptr, [w] {
      std::vector<int> open = ProbeOpenFds();
      struct rlimit core, nofile;
      getrlimit(RLIMIT_CORE, &core);
      getrlimit(RLIMIT_NOFILE, &nofile);
      WriteAll(w, "fds=" + JoinInts(open) + "\ncore=" + std::to_string(core.rlim_cur) + "/" +
                      std::to_string(core.rlim_max) +
                      "\nnofile=" + std::to_string(nofile.rlim_cur) + "/" +
                      std::to_string(nofile.rlim_max) + "\nend\n");
      return 0;
    });
    ASSERT_TRUE(jail.ok()) << jail.error().ToString();
    report.w.reset();
    auto inside = ReadReport(report.r.get());
    EXPECT_EQ(jail->Wait()->ToString(), "exited 0");

    std::vector<int> expected = keep_stdio ? std::vector<int>{0, 1, 2, w} : std::vector<int>{w};
    EXPECT_EQ(inside["fds"], JoinInts(expected)) << "keep_stdio=" << keep_stdio;
    EXPECT_EQ(inside["core"], "0/0");
    struct rlimit mine;
    ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &mine), 0);
    rlim_t bound = std::min<rlim_t>(std::max(64, w + 32), mine.rlim_max);
    EXPECT_EQ(inside["nofile"], std::to_string(bound) + "/" + std::to_string(bound));
  }
}

TEST_F(JailTest, FailedStepIsSpawnsError) {
  JailConfig config{.name = "blk1",
                    .keep_fds = {},
                    .binds = {{"/nonexistent/jail-test-missing", "/disk", false}},
                    .keep_stdio = true};
  bool main_ran = false;
  auto jail = Jail::Spawn(config, nullptr, [&main_ran] {
    main_ran = true;
    return 0;
  });
  ASSERT_FALSE(jail.ok());
  EXPECT_EQ(jail.error().errnum(), ENOENT);
  std::string text = jail.error().ToString();
  EXPECT_NE(text.find("jail blk1"), std::string::npos) << text;
  EXPECT_NE(text.find("mounts"), std::string::npos) << text;
  EXPECT_NE(text.find("bind /nonexistent/jail-test-missing"), std::string::npos) << text;
  EXPECT_NE(text.find("No such file or directory"), std::string::npos) << text;
  EXPECT_FALSE(main_ran);
}

TEST_F(JailTest, InvalidConfigIsRefusedBeforeForking) {
  auto main = [] { return 0; };
  JailConfig relative = Named("x");
  relative.binds = {{"/dev/null", "null", false}};
  auto a = Jail::Spawn(relative, nullptr, main);
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.error().message().find("jail path must be absolute"), std::string::npos);

  JailConfig dotdot = Named("x");
  dotdot.binds = {{"/dev/null", "/a/../b", false}};
  EXPECT_FALSE(Jail::Spawn(dotdot, nullptr, main).ok());

  int closed = open("/dev/null", O_RDONLY);
  ASSERT_GE(closed, 0);
  close(closed);
  JailConfig bad_fd = Named("x");
  bad_fd.keep_fds = {closed};
  auto b = Jail::Spawn(bad_fd, nullptr, main);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.error().message().find("not open"), std::string::npos);

  EXPECT_FALSE(Jail::Spawn(JailConfig{}, nullptr, main).ok());  // no name
}

TEST_F(JailTest, ExitCodeIsRelayedAndExitFdBecomesReadable) {
  auto jail = Jail::Spawn(Named("seven"), nullptr, [] { return 7; });
  ASSERT_TRUE(jail.ok()) << jail.error().ToString();
  ASSERT_GE(jail->exit_fd(), 0);
  EXPECT_TRUE(WaitReadable(jail->exit_fd(), 10000));
  auto end = jail->Wait();
  ASSERT_TRUE(end.ok());
  EXPECT_TRUE(end->exited());
  EXPECT_EQ(end->exit_code, 7);
  EXPECT_EQ(jail->Wait()->exit_code, 7);  // the answer is kept
}

TEST_F(JailTest, SigkillFromTheHostIsRelayedAsSignal) {
  auto jail = Jail::Spawn(Named("victim"), nullptr, BlockForever);
  ASSERT_TRUE(jail.ok()) << jail.error().ToString();
  EXPECT_FALSE(WaitReadable(jail->exit_fd(), 100));  // still running
  ASSERT_EQ(kill(jail->pid(), SIGKILL), 0);
  EXPECT_TRUE(WaitReadable(jail->exit_fd(), 10000));
  auto end = jail->Wait();
  ASSERT_TRUE(end.ok());
  EXPECT_FALSE(end->exited());
  EXPECT_EQ(end->signal, SIGKILL);
  EXPECT_EQ(end->ToString(), "killed by signal 9");
}

TEST_F(JailTest, KillEndsTheDevice) {
  auto jail = Jail::Spawn(Named("victim"), nullptr, BlockForever);
  ASSERT_TRUE(jail.ok()) << jail.error().ToString();
  jail->Kill();
  auto end = jail->Wait();
  ASSERT_TRUE(end.ok());
  EXPECT_EQ(end->signal, SIGKILL);
  jail->Kill();  // after the end: nothing happens
}

int g_hook_value = 0;

TEST_F(JailTest, HookRunsInTheConfinedChildBeforeMain) {
  auto jail = Jail::Spawn(
      Named("hook"),
      [] {
        // Runs after confinement: no_new_privs is already set.
        if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1) return base::Status(base::Error("nnp"));
        g_hook_value = 40;
        return base::Ok();
      },
      [] { return g_hook_value + 2; });
  ASSERT_TRUE(jail.ok()) << jail.error().ToString();
  EXPECT_EQ(jail->Wait()->ToString(), "exited 42");
  EXPECT_EQ(g_hook_value, 0);  // the child's memory, not ours

  auto failing = Jail::Spawn(
      {.name = "hook", .keep_fds = {}, .binds = {}, .keep_stdio = false},
      [] { return base::Status(base::Error("no filter")); }, [] { return 0; });
  ASSERT_TRUE(failing.ok()) << failing.error().ToString();
  auto end = failing->Wait();
  ASSERT_TRUE(end.ok());
  EXPECT_EQ(end->exit_code, Jail::kSetupFailedExitCode);
}

TEST_F(JailTest, DestructorLeavesNoProcessBehind) {
  pid_t device = -1;
  pid_t relay = -1;
  {
    auto jail = Jail::Spawn(Named("gone"), nullptr, BlockForever);
    ASSERT_TRUE(jail.ok()) << jail.error().ToString();
    device = jail->pid();
    relay = std::stoi(ReadStatus(device)["PPid"]);
    ASSERT_GT(relay, 1);
    EXPECT_EQ(std::stoi(ReadStatus(relay)["PPid"]), getpid());
  }
  // Reaped, not zombies: /proc has neither.
  EXPECT_TRUE(ProcessGone(device));
  EXPECT_TRUE(ProcessGone(relay));
  EXPECT_FALSE(std::filesystem::exists("/proc/" + std::to_string(device)));
}

// Orphans of the jail processes are reparented to this test (a subreaper) so it can reap them.
class SubreaperJailTest : public JailTest {
 protected:
  void SetUp() override {
    JailTest::SetUp();
    ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
  }
  void TearDown() override { prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0); }

  static ScopedFd PidFd(pid_t pid) {
    return ScopedFd(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
  }

  // The exit status of `pid`, or -1 if it does not end within 10 s.
  static int Reap(pid_t pid) {
    ScopedFd fd = PidFd(pid);
    if (fd.valid() && !WaitReadable(fd.get(), 10000)) return -1;
    int status = 0;
    return waitpid(pid, &status, 0) == pid ? status : -1;
  }
};

TEST_F(SubreaperJailTest, DeviceDiesWithTheRelay) {
  auto jail = Jail::Spawn(Named("pair"), nullptr, BlockForever);
  ASSERT_TRUE(jail.ok()) << jail.error().ToString();
  pid_t device = jail->pid();
  pid_t relay = std::stoi(ReadStatus(device)["PPid"]);
  ScopedFd device_fd = PidFd(device);
  ASSERT_TRUE(device_fd.valid());
  ASSERT_EQ(kill(relay, SIGKILL), 0);
  bool ended = WaitReadable(device_fd.get(), 10000);
  if (!ended) syscall(SYS_pidfd_send_signal, device_fd.get(), SIGKILL, nullptr, 0);
  EXPECT_TRUE(ended);
  EXPECT_EQ(jail->Wait()->signal, SIGKILL);
  int status = Reap(device);  // the orphaned device came to us
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
}

TEST_F(SubreaperJailTest, JailDiesWithTheSpawningProcess) {
  Pipe pids = MakePipe();
  pid_t helper = fork();
  ASSERT_GE(helper, 0);
  if (helper == 0) {
    auto jail = Jail::Spawn(Named("orphan"), nullptr, BlockForever);
    if (!jail.ok()) _exit(1);
    pid_t device = jail->pid();
    pid_t relay = std::stoi(ReadStatus(device)["PPid"]);
    WriteAll(pids.w.get(),
             "device=" + std::to_string(device) + "\nrelay=" + std::to_string(relay) + "\nend\n");
    _exit(0);  // no destructor: the jail must go because its spawner went
  }
  pids.w.reset();
  auto got = ReadReport(pids.r.get());
  ASSERT_EQ(Reap(helper), 0);
  ASSERT_FALSE(got["device"].empty());
  pid_t device = std::stoi(got["device"]);
  pid_t relay = std::stoi(got["relay"]);
  int relay_status = Reap(relay);
  int device_status = Reap(device);
  // Still unreaped (so the PIDs are still theirs) when the test failed: clean up.
  if (relay_status == -1) kill(relay, SIGKILL);
  if (device_status == -1) kill(device, SIGKILL);
  EXPECT_TRUE(WIFSIGNALED(relay_status) && WTERMSIG(relay_status) == SIGKILL) << relay_status;
  EXPECT_TRUE(WIFSIGNALED(device_status) && WTERMSIG(device_status) == SIGKILL) << device_status;
}

TEST_F(JailTest, SpawnsFromAMultithreadedProcess) {
  std::atomic<bool> stop{false};
  std::thread busy([&stop] {
    while (!stop) {
      std::vector<std::string> churn(64, std::string(100, 'x'));  // keeps malloc locks busy
    }
  });
  for (int i = 0; i < 5; ++i) {
    auto jail = Jail::Spawn(Named("mt"), nullptr, [] {
      std::string s(1000, 'y');
      return static_cast<int>(s.size() % 7);
    });
    ASSERT_TRUE(jail.ok()) << jail.error().ToString();
    EXPECT_EQ(jail->Wait()->exit_code, 1000 % 7);
  }
  stop = true;
  busy.join();
}

}  // namespace
}  // namespace crosvm::sandbox
