// ControlServer and ControlClient over real sockets: path handling, stale and live sockets,
// modes and peer credentials, hostile and silent clients.
#include "control/server.h"

#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <thread>

#include "control/client.h"

namespace crosvm::control {
namespace {

using namespace std::chrono_literals;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/crosvm_control_XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class TestHandler : public ControlHandler {
 public:
  Reply Handle(const Request& req) override {
    {
      std::lock_guard lock(mu);
      seen.push_back(req.type());
    }
    if (std::holds_alternative<Ping>(req.body)) return Reply::Ok(VersionInfo{1, 1234});
    if (auto* b = std::get_if<BalloonSetTarget>(&req.body))
      return Reply::Ok(BalloonState{b->bytes, b->bytes / 2});
    if (std::holds_alternative<Suspend>(req.body))
      return Reply::Error(StatusCode::kInvalidState, "already suspended");
    return Reply::Ok({}, "done");
  }
  std::mutex mu;
  std::vector<RequestType> seen;
};

// A raw connected socket (no protocol), for hostile and silent clients.
base::ScopedFd RawConnect(const std::string& path) {
  base::ScopedFd fd(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return {};
  return fd;
}

// A bound and listening socket that nobody serves (or, closed, a stale socket file).
base::ScopedFd RawListen(const std::string& path) {
  base::ScopedFd fd(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  EXPECT_EQ(bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  EXPECT_EQ(listen(fd.get(), 4), 0);
  return fd;
}

Reply MustCall(const std::string& path, const RequestBody& body) {
  auto c = ControlClient::Connect(path);
  EXPECT_TRUE(c.ok()) << c.error().ToString();
  if (!c.ok()) return Reply::Error(StatusCode::kInternal, "connect");
  auto r = c->Call(body, 2s);
  EXPECT_TRUE(r.ok()) << r.error().ToString();
  return r.ok() ? *r : Reply::Error(StatusCode::kInternal, "call");
}

TEST(SocketPathTest, DirectoryGetsPidName) {
  TempDir d;
  EXPECT_EQ(ResolveSocketPath(d.path(), 321), d.path() + "/crosvm-321.sock");
  EXPECT_EQ(ResolveSocketPath(d.path() + "//", 5), d.path() + "/crosvm-5.sock");
  EXPECT_EQ(ResolveSocketPath(d.path() + "/vm.sock", 5), d.path() + "/vm.sock");
  EXPECT_EQ(ResolveSocketPath("/", 5), "/crosvm-5.sock");
  // An existing file is taken as the socket path (Start then refuses it).
  std::string file = d.path() + "/file";
  close(creat(file.c_str(), 0600));
  EXPECT_EQ(ResolveSocketPath(file, 5), file);
}

TEST(ControlServerTest, ServesRequestsAndRemovesSocketOnDestruction) {
  TempDir d;
  TestHandler h;
  std::string path = ResolveSocketPath(d.path(), getpid());
  {
    auto s = ControlServer::Start(path, &h);
    ASSERT_TRUE(s.ok()) << s.error().ToString();
    struct stat st {};
    ASSERT_EQ(lstat(path.c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, 0600u);
    // No temporary directory is left next to the socket.
    int entries = 0;
    for (auto& e : std::filesystem::directory_iterator(d.path())) entries += !e.path().empty();
    EXPECT_EQ(entries, 1);

    Reply r = MustCall(path, Ping{});
    EXPECT_EQ(r.status, StatusCode::kOk);
    EXPECT_EQ(std::get<VersionInfo>(r.body).pid, 1234u);
    r = MustCall(path, BalloonSetTarget{1 << 20});
    EXPECT_EQ(std::get<BalloonState>(r.body).actual_bytes, 1u << 19);
    r = MustCall(path, Suspend{});
    EXPECT_EQ(r.status, StatusCode::kInvalidState);
    EXPECT_EQ(r.message, "already suspended");
    // Several requests on one connection.
    auto c = ControlClient::Connect(path);
    ASSERT_TRUE(c.ok());
    for (int i = 0; i < 3; ++i) {
      auto rr = c->Call(DiskResize{1, 4096});
      ASSERT_TRUE(rr.ok()) << rr.error().ToString();
      EXPECT_EQ(rr->message, "done");
    }
    EXPECT_EQ((*s)->requests_served(), 6u);
  }
  EXPECT_NE(access(path.c_str(), F_OK), 0) << "socket removed by the destructor";
}

TEST(ControlServerTest, ExplicitRemoveLeavesAnotherSocketAlone) {
  TempDir d;
  TestHandler h;
  std::string path = d.path() + "/c.sock";
  auto s = ControlServer::Start(path, &h);
  ASSERT_TRUE(s.ok());
  (*s)->Remove();
  EXPECT_NE(access(path.c_str(), F_OK), 0);
  (*s)->Remove();  // twice is fine
  // A new socket under the same name (a later crosvm) survives the old server's destructor.
  auto other = RawListen(path);
  s->reset();
  EXPECT_EQ(access(path.c_str(), F_OK), 0);
}

TEST(ControlServerTest, StaleSocketIsReplacedLiveOneRefused) {
  TempDir d;
  TestHandler h;
  std::string path = d.path() + "/c.sock";
  { auto stale = RawListen(path); }  // closed: the file stays, nobody listens
  ASSERT_EQ(access(path.c_str(), F_OK), 0);
  auto c = ControlClient::Connect(path);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message().find("refuses connections"), std::string::npos)
      << c.error().message();

  auto s = ControlServer::Start(path, &h);
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  EXPECT_EQ(MustCall(path, Ping{}).status, StatusCode::kOk);

  auto second = ControlServer::Start(path, &h);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.error().message().find("another crosvm is listening"), std::string::npos)
      << second.error().message();
  // The first server is untouched.
  EXPECT_EQ(MustCall(path, Ping{}).status, StatusCode::kOk);

  std::string file = d.path() + "/plain";
  close(creat(file.c_str(), 0600));
  auto third = ControlServer::Start(file, &h);
  ASSERT_FALSE(third.ok());
  EXPECT_NE(third.error().message().find("not a socket"), std::string::npos);
  EXPECT_EQ(access(file.c_str(), F_OK), 0) << "a non-socket file is never removed";

  auto too_long = ControlServer::Start(d.path() + "/" + std::string(120, 'x'), &h);
  EXPECT_FALSE(too_long.ok());
}

TEST(ControlClientTest, ClearErrors) {
  TempDir d;
  auto missing = ControlClient::Connect(d.path() + "/nothing.sock");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message().find("no control socket at"), std::string::npos);

  // Accepted by the kernel (backlog) but never answered: a timeout.
  std::string silent = d.path() + "/silent.sock";
  auto listener = RawListen(silent);
  auto c = ControlClient::Connect(silent);
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  auto t0 = std::chrono::steady_clock::now();
  auto r = c->Call(Ping{}, 200ms);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("no reply within 200 ms"), std::string::npos)
      << r.error().message();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);

  // A server that answers garbage, then one that hangs up.
  std::thread peer([&] {
    base::ScopedFd a(accept(listener.get(), nullptr, nullptr));  // the backlogged connection
    base::ScopedFd b(accept(listener.get(), nullptr, nullptr));
    uint8_t buf[64];
    (void)!recv(b.get(), buf, sizeof(buf), 0);
    (void)!send(b.get(), "garbage!garbage!garbage!", 24, 0);
    base::ScopedFd e(accept(listener.get(), nullptr, nullptr));
    (void)!recv(e.get(), buf, sizeof(buf), 0);
  });
  auto g = ControlClient::Connect(silent);
  ASSERT_TRUE(g.ok());
  r = g->Call(Ping{}, 2s);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("malformed reply"), std::string::npos) << r.error().message();
  auto e = ControlClient::Connect(silent);
  ASSERT_TRUE(e.ok());
  r = e->Call(Ping{}, 2s);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("closed the connection"), std::string::npos)
      << r.error().message();
  peer.join();
}

TEST(ControlServerTest, GarbageGetsErrorRepliesAndServingGoesOn) {
  TempDir d;
  TestHandler h;
  std::string path = d.path() + "/c.sock";
  auto s = ControlServer::Start(path, &h);
  ASSERT_TRUE(s.ok());
  auto c = ControlClient::Connect(path);
  ASSERT_TRUE(c.ok());
  std::vector<uint8_t> junk = {1, 2, 3};
  auto r = c->CallRaw(junk, 0, 2s);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->status, StatusCode::kMalformed);
  // Unknown type: the id comes back.
  auto unknown = EncodeRequest({55, Ping{}});
  unknown[6] = 99;
  r = c->CallRaw(unknown, 55, 2s);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->status, StatusCode::kUnknownType);
  // Oversized.
  std::vector<uint8_t> huge(3 * kMaxMessageSize, 'C');
  r = c->CallRaw(huge, 0, 2s);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->status, StatusCode::kTooLarge);
  // The same connection, and a new one, still work.
  r = c->Call(Ping{});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, StatusCode::kOk);
  EXPECT_EQ(MustCall(path, Ping{}).status, StatusCode::kOk);
  EXPECT_EQ((*s)->bad_requests(), 3u);
  std::lock_guard lock(h.mu);
  EXPECT_EQ(h.seen.size(), 2u) << "garbage never reaches the handler";
}

TEST(ControlServerTest, SilentClientsBlockNobodyAndAreBounded) {
  TempDir d;
  TestHandler h;
  std::string path = d.path() + "/c.sock";
  ControlServerOptions opts;
  opts.max_clients = 3;
  opts.idle_timeout = 300ms;
  auto s = ControlServer::Start(path, &h, opts);
  ASSERT_TRUE(s.ok());
  auto silent1 = RawConnect(path);
  auto silent2 = RawConnect(path);
  ASSERT_TRUE(silent1.valid() && silent2.valid());
  // Another client is served at once.
  auto t0 = std::chrono::steady_clock::now();
  auto c = ControlClient::Connect(path);
  ASSERT_TRUE(c.ok());
  auto r = c->Call(Ping{}, 1s);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->status, StatusCode::kOk);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 250ms);
  // Three clients connected: a fourth is told the server is busy.
  auto busy = ControlClient::Connect(path);
  ASSERT_TRUE(busy.ok());
  r = busy->Call(Ping{}, 1s);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->status, StatusCode::kBusy);
  EXPECT_EQ((*s)->busy_refusals(), 1u);
  // The silent ones are disconnected after the idle timeout; their slots come back.
  for (int fd : {silent1.get(), silent2.get()}) {
    uint8_t buf[16];
    pollfd p{fd, POLLIN, 0};
    ASSERT_EQ(poll(&p, 1, 3000), 1);
    EXPECT_EQ(recv(fd, buf, sizeof(buf), 0), 0) << "end of stream";
  }
  EXPECT_GE((*s)->idle_disconnects(), 2u);
  EXPECT_EQ(MustCall(path, Ping{}).status, StatusCode::kOk);
}

// Runs `fn` in a child that has become uid/gid 65534; returns its exit code.
int RunAsNobody(const std::function<int()>& fn) {
  pid_t pid = fork();
  if (pid == 0) {
    if (setgroups(0, nullptr) != 0 || setgid(65534) != 0 || setuid(65534) != 0) _exit(100);
    _exit(fn());
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 200;
}

TEST(ControlServerTest, OtherUsersAreRefusedByModeAndByCredentials) {
  if (geteuid() != 0) GTEST_FAIL() << "needs root (to setuid to another user)";
  TempDir d;
  ASSERT_EQ(chmod(d.path().c_str(), 0755), 0);
  TestHandler h;
  std::string path = d.path() + "/c.sock";
  auto s = ControlServer::Start(path, &h);
  ASSERT_TRUE(s.ok());
  // Mode 0600: the kernel refuses the connect.
  EXPECT_EQ(RunAsNobody([&] {
              auto c = ControlClient::Connect(path);
              if (c.ok()) return 1;
              return c.error().errnum() == EACCES ? 0 : 2;
            }),
            0);
  // Even with the mode opened up, the peer's uid is checked.
  ASSERT_EQ(chmod(path.c_str(), 0666), 0);
  EXPECT_EQ(RunAsNobody([&] {
              auto c = ControlClient::Connect(path);
              if (!c.ok()) return 3;
              auto r = c->Call(Ping{}, 2s);
              if (!r.ok()) return 4;
              return r->status == StatusCode::kPermissionDenied ? 0 : 5;
            }),
            0);
  EXPECT_EQ((*s)->refused_peers(), 1u);
  {
    std::lock_guard lock(h.mu);
    EXPECT_TRUE(h.seen.empty());
  }
  // Root (our uid) is still served.
  EXPECT_EQ(MustCall(path, Ping{}).status, StatusCode::kOk);
}

}  // namespace
}  // namespace crosvm::control
