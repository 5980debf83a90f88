#include "control/server.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>

#include "base/logging.h"

namespace crosvm::control {
namespace {

using Clock = std::chrono::steady_clock;

bool FillAddr(const std::string& path, sockaddr_un* addr) {
  std::memset(addr, 0, sizeof(*addr));
  addr->sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr->sun_path)) return false;
  std::memcpy(addr->sun_path, path.data(), path.size());
  return true;
}

// What a connect() to an existing socket file says about its owner.
enum class Probe { kLive, kStale, kError };
Probe ProbeSocket(const std::string& path, int* err) {
  sockaddr_un addr;
  FillAddr(path, &addr);
  base::ScopedFd fd(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) return *err = errno, Probe::kError;
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) return Probe::kLive;
  *err = errno;
  // EAGAIN: a live listener whose backlog is full. EPROTOTYPE: someone else's stream socket.
  if (errno == EAGAIN || errno == EPROTOTYPE) return Probe::kLive;
  if (errno == ECONNREFUSED) return Probe::kStale;
  return Probe::kError;
}

void SendReply(int fd, uint16_t type, uint32_t id, const Reply& reply) {
  auto bytes = EncodeReply(type, id, reply);
  // Never blocks: a client that does not read its replies loses them (and the caller drops it).
  (void)!send(fd, bytes.data(), bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
}

// Answers a connection that will not be served, then closes it so the client still reads the
// answer: closing with its request unread would make the client's recv fail with ECONNRESET,
// so stop further sends (SHUT_RD makes them fail with EPIPE) and drain the queue first.
void RefuseConnection(base::ScopedFd fd, const Reply& reply) {
  SendReply(fd.get(), 0, 0, reply);
  shutdown(fd.get(), SHUT_RD);
  uint8_t buf[64];
  while (recv(fd.get(), buf, sizeof(buf), MSG_DONTWAIT) > 0) {
  }
}

}  // namespace

std::string ResolveSocketPath(const std::string& path, pid_t pid) {
  struct stat st {};
  if (stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    std::string dir = path;
    while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
    if (dir != "/") dir += '/';
    return dir + "crosvm-" + std::to_string(pid) + ".sock";
  }
  return path;
}

ControlServer::ControlServer(std::string path, base::ScopedFd listen_fd, base::EventFd stop,
                             ControlHandler* handler, ControlServerOptions options)
    : path_(std::move(path)),
      listen_fd_(std::move(listen_fd)),
      stop_(std::move(stop)),
      handler_(handler),
      options_(options) {
  std::memcpy(path_c_, path_.c_str(), std::min(path_.size() + 1, sizeof(path_c_) - 1));
}

base::Result<std::unique_ptr<ControlServer>> ControlServer::Start(const std::string& path,
                                                                  ControlHandler* handler,
                                                                  ControlServerOptions options) {
  sockaddr_un addr;
  if (!FillAddr(path, &addr)) {
    return base::Error("control socket path '" + path + "' is empty or longer than " +
                       std::to_string(sizeof(addr.sun_path) - 1) + " bytes");
  }
  struct stat st {};
  if (lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      return base::Error("control socket path " + path + " exists and is not a socket");
    int err = 0;
    switch (ProbeSocket(path, &err)) {
      case Probe::kLive:
        return base::Error("control socket " + path +
                           " is in use: another crosvm is listening on it");
      case Probe::kStale:
        CROSVM_LOG(INFO) << "control socket " << path << ": replacing a stale socket";
        break;
      case Probe::kError:
        return base::Error::FromErrno(
            "control socket " + path + ": cannot check the existing socket", err);
    }
  }

  // Bind inside a private (0700) directory next to the target, set the mode, then rename into
  // place: nobody can connect before the mode is 0600, and a stale socket is replaced
  // atomically.
  std::string dir = path.substr(0, path.find_last_of('/') + 1);
  std::string tmpdir = dir + ".cvmXXXXXX";
  if (mkdtemp(tmpdir.data()) == nullptr)
    return base::Error::FromErrno("control socket: mkdtemp " + tmpdir);
  std::string tmp = tmpdir + "/s";
  auto cleanup_tmp = [&] {
    unlink(tmp.c_str());
    rmdir(tmpdir.c_str());
  };
  sockaddr_un tmp_addr;
  if (!FillAddr(tmp, &tmp_addr)) {
    cleanup_tmp();
    return base::Error("control socket path '" + path + "' is too long to bind safely");
  }
  base::ScopedFd fd(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) {
    cleanup_tmp();
    return base::Error::FromErrno("control socket: socket");
  }
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&tmp_addr), sizeof(tmp_addr)) != 0 ||
      chmod(tmp.c_str(), 0600) != 0 || listen(fd.get(), 16) != 0 ||
      rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    cleanup_tmp();
    return base::Error::FromErrno("control socket: binding " + path, err);
  }
  rmdir(tmpdir.c_str());

  auto fail = [&](base::Error e) {
    unlink(path.c_str());
    return e;
  };
  auto stop = base::EventFd::Create(EFD_NONBLOCK | EFD_CLOEXEC);
  if (!stop.ok()) return fail(stop.error());
  std::unique_ptr<ControlServer> s(
      new ControlServer(path, std::move(fd), std::move(*stop), handler, options));
  if (lstat(path.c_str(), &st) != 0) return fail(base::Error::FromErrno("control socket: stat"));
  s->dev_ = st.st_dev;
  s->ino_ = st.st_ino;
  s->thread_ = std::thread([self = s.get()] { self->Run(); });
  return s;
}

ControlServer::~ControlServer() {
  Stop();
  Remove();
}

void ControlServer::Remove() {
  struct stat st {};
  if (path_c_[0] == '\0' || lstat(path_c_, &st) != 0) return;
  // Someone else's socket under the same name (a later crosvm) stays.
  if (st.st_dev != dev_ || st.st_ino != ino_) return;
  unlink(path_c_);
}

void ControlServer::Stop() {
  if (!thread_.joinable()) return;
  (void)stop_.Write();
  thread_.join();
}

void ControlServer::Run() {
  pthread_setname_np(pthread_self(), "crosvm_control");
  base::ScopedFd ep(epoll_create1(EPOLL_CLOEXEC));
  if (!ep.valid()) {
    CROSVM_LOG(ERROR) << "control socket: epoll_create1: " << strerror(errno);
    return;
  }
  auto add = [&](int fd) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    return epoll_ctl(ep.get(), EPOLL_CTL_ADD, fd, &ev) == 0;
  };
  if (!add(listen_fd_.get()) || !add(stop_.fd())) {
    CROSVM_LOG(ERROR) << "control socket: epoll_ctl: " << strerror(errno);
    return;
  }
  struct Client {
    base::ScopedFd fd;
    Clock::time_point last;
  };
  std::map<int, Client> clients;
  auto drop = [&](int fd) {
    epoll_ctl(ep.get(), EPOLL_CTL_DEL, fd, nullptr);
    clients.erase(fd);
  };

  auto accept_one = [&] {
    base::ScopedFd c(accept4(listen_fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!c.valid()) return;
    ucred cred{};
    socklen_t len = sizeof(cred);
    if (getsockopt(c.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
        (cred.uid != geteuid() && cred.uid != 0)) {
      refused_.fetch_add(1);
      CROSVM_LOG(WARNING) << "control socket: refused a client with uid " << cred.uid << " (pid "
                          << cred.pid << ")";
      RefuseConnection(std::move(c), Reply::Error(StatusCode::kPermissionDenied,
                                                  "uid " + std::to_string(cred.uid) +
                                                      " may not control this VM"));
      return;
    }
    if (clients.size() >= options_.max_clients) {
      busy_.fetch_add(1);
      RefuseConnection(std::move(c),
                       Reply::Error(StatusCode::kBusy, "too many control clients; try again"));
      return;
    }
    int fd = c.get();
    if (!add(fd)) return;
    clients.emplace(fd, Client{std::move(c), Clock::now()});
  };

  auto serve = [&](int fd, uint32_t events) {
    auto it = clients.find(fd);
    if (it == clients.end()) return;
    uint8_t buf[kMaxMessageSize];
    iovec iov{buf, sizeof(buf)};
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (events & (EPOLLHUP | EPOLLERR)) drop(fd);
      return;
    }
    if (n <= 0) {  // end of stream (or an empty message, which no client sends), or an error
      drop(fd);
      return;
    }
    it->second.last = Clock::now();
    Request req;
    DecodeError err;
    if (!DecodeRequest({buf, static_cast<size_t>(n)}, (mh.msg_flags & MSG_TRUNC) != 0, &req,
                       &err)) {
      bad_.fetch_add(1);
      CROSVM_LOG(WARNING) << "control socket: bad request: " << err.message;
      SendReply(fd, err.type, err.request_id, Reply::Error(err.code, err.message));
      return;
    }
    Reply reply = handler_->Handle(req);
    served_.fetch_add(1);
    auto bytes = EncodeReply(static_cast<uint16_t>(req.type()), req.id, reply);
    if (send(fd, bytes.data(), bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL) < 0) drop(fd);
  };

  while (true) {
    int timeout = -1;
    if (!clients.empty()) {
      auto oldest = std::min_element(clients.begin(), clients.end(), [](auto& a, auto& b) {
                      return a.second.last < b.second.last;
                    })->second.last;
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          oldest + options_.idle_timeout - Clock::now());
      timeout = static_cast<int>(std::max<int64_t>(0, left.count()) + 1);
    }
    epoll_event evs[32];
    int n = epoll_wait(ep.get(), evs, 32, timeout);
    if (n < 0) {
      if (errno == EINTR) continue;
      CROSVM_LOG(ERROR) << "control socket: epoll_wait: " << strerror(errno);
      return;
    }
    for (int i = 0; i < n; ++i) {
      int fd = evs[i].data.fd;
      if (fd == stop_.fd()) return;
      if (fd == listen_fd_.get()) {
        accept_one();
      } else {
        serve(fd, evs[i].events);
      }
    }
    auto now = Clock::now();
    for (auto it = clients.begin(); it != clients.end();) {
      int fd = it->first;
      ++it;
      if (now - clients[fd].last >= options_.idle_timeout) {
        idle_.fetch_add(1);
        drop(fd);
      }
    }
  }
}

}  // namespace crosvm::control
