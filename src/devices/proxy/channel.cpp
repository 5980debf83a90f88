#include "devices/proxy/channel.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace crosvm::devices::proxy {

base::Result<std::pair<Channel, Channel>> Channel::CreatePair() {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0) {
    return base::Error::FromErrno("socketpair for a device channel");
  }
  return std::pair{Channel(base::ScopedFd(fds[0])), Channel(base::ScopedFd(fds[1]))};
}

base::Status Channel::Send(std::span<const uint8_t> bytes, std::span<const int> fds) {
  if (bytes.empty() || bytes.size() > kMaxMessageSize) {
    return base::Error("device channel: message of " + std::to_string(bytes.size()) +
                       " bytes (1.." + std::to_string(kMaxMessageSize) + " allowed)");
  }
  if (fds.size() > kMaxFds) {
    return base::Error("device channel: " + std::to_string(fds.size()) + " fds in one message (" +
                       std::to_string(kMaxFds) + " allowed)");
  }
  iovec iov{const_cast<uint8_t*>(bytes.data()), bytes.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  if (!fds.empty()) {
    std::memset(control, 0, sizeof(control));
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  ssize_t n;
  do {
    n = sendmsg(fd_.get(), &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return base::Error::FromErrno("device channel: sendmsg");
  // A seqpacket send is all or nothing; anything else means the socket is not what we think.
  if (static_cast<size_t>(n) != bytes.size()) return base::Error("device channel: short send");
  return base::Ok();
}

base::Result<std::optional<Message>> Channel::Recv() {
  // One byte more than allowed: a message that fills it was too long (MSG_TRUNC says so too).
  std::vector<uint8_t> buf(kMaxMessageSize + 1);
  iovec iov{buf.data(), buf.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n;
  do {
    n = recvmsg(fd_.get(), &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == ECONNRESET) return std::optional<Message>();
    return base::Error::FromErrno("device channel: recvmsg");
  }
  Message m;
  // Take ownership of whatever arrived before judging the message, so nothing leaks.
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      m.fds.emplace_back(fd);
    }
  }
  if (n == 0) return std::optional<Message>();  // Send never sends empty messages
  if ((msg.msg_flags & MSG_TRUNC) || static_cast<size_t>(n) > kMaxMessageSize) {
    return base::Error("device channel: message longer than " + std::to_string(kMaxMessageSize) +
                       " bytes");
  }
  if (msg.msg_flags & MSG_CTRUNC) {
    return base::Error("device channel: more than " + std::to_string(kMaxFds) +
                       " fds in one message");
  }
  buf.resize(static_cast<size_t>(n));
  m.bytes = std::move(buf);
  return std::optional<Message>(std::move(m));
}

void Channel::Shutdown() {
  if (fd_.valid()) (void)shutdown(fd_.get(), SHUT_RDWR);
}

}  // namespace crosvm::devices::proxy
