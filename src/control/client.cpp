#include "control/client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>

namespace crosvm::control {
namespace {

// Waits for `events` on fd until `deadline`; false on timeout.
bool WaitFor(int fd, short events, std::chrono::steady_clock::time_point deadline) {
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd p{fd, events, 0};
    int r = poll(&p, 1, static_cast<int>(std::max<int64_t>(0, left.count())));
    if (r > 0) return true;
    if (r == 0) return false;
    if (errno != EINTR) return true;  // let the following call report the error
  }
}

}  // namespace

base::Result<ControlClient> ControlClient::Connect(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path))
    return base::Error("control socket path '" + path + "' is empty or too long");
  std::memcpy(addr.sun_path, path.data(), path.size());
  base::ScopedFd fd(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) return base::Error::FromErrno("socket");
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    int err = errno;
    switch (err) {
      case ENOENT:
        return base::Error("no control socket at " + path + " (is crosvm running?)", err);
      case ECONNREFUSED:
        return base::Error(
            "control socket " + path + " refuses connections (stale socket: crosvm is not running)",
            err);
      case EACCES:
      case EPERM:
        return base::Error("control socket " + path + ": permission denied", err);
      case EAGAIN:
        return base::Error("control socket " + path + " is busy (connection backlog full)", err);
      case EPROTOTYPE:
        return base::Error(path + " is not a crosvm control socket", err);
      default:
        return base::Error::FromErrno("connecting to control socket " + path, err);
    }
  }
  return ControlClient(path, std::move(fd));
}

base::Result<Reply> ControlClient::Call(const RequestBody& body,
                                        std::chrono::milliseconds timeout) {
  Request req{next_id_++, body};
  if (next_id_ == 0) next_id_ = 1;  // 0 is for unsolicited server replies
  auto bytes = EncodeRequest(req);
  return CallRaw(bytes, req.id, timeout);
}

base::Result<Reply> ControlClient::CallRaw(std::span<const uint8_t> bytes, uint32_t expect_id,
                                           std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL) < 0) {
    if (errno == EINTR) continue;
    // The server may have refused us (permission, busy) and hung up: its reply is queued.
    if (errno == EPIPE || errno == ECONNRESET) break;
    if (errno == EAGAIN && WaitFor(fd_.get(), POLLOUT, deadline)) continue;
    if (errno == EAGAIN)
      return base::Error("control socket " + path_ + ": timed out sending the request");
    return base::Error::FromErrno("control socket " + path_ + ": sending the request");
  }
  uint8_t buf[kMaxMessageSize + 1];
  while (true) {
    if (!WaitFor(fd_.get(), POLLIN, deadline)) {
      return base::Error("control socket " + path_ + ": no reply within " +
                         std::to_string(timeout.count()) + " ms");
    }
    ssize_t n = recv(fd_.get(), buf, sizeof(buf), 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n < 0) return base::Error::FromErrno("control socket " + path_ + ": receiving the reply");
    if (n == 0)
      return base::Error("control socket " + path_ + ": closed the connection without a reply");
    uint16_t type = 0;
    uint32_t id = 0;
    Reply reply;
    std::string error;
    if (!DecodeReply({buf, static_cast<size_t>(n)}, &type, &id, &reply, &error))
      return base::Error("control socket " + path_ + ": malformed reply: " + error);
    // id 0: the server refused the connection itself (permission, busy) before any request.
    if (id == 0 && reply.status != StatusCode::kOk) return reply;
    if (id != expect_id) {
      return base::Error("control socket " + path_ + ": reply to request " + std::to_string(id) +
                         ", expected " + std::to_string(expect_id));
    }
    return reply;
  }
}

}  // namespace crosvm::control
