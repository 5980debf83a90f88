// One end of a SOCK_SEQPACKET socketpair between the VM process and a device process: whole
// messages of at most kMaxMessageSize bytes, each with up to kMaxFds file descriptors
// (SCM_RIGHTS). A message that does not fit is an error on both sides, never silently cut.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "base/error.h"
#include "base/fd.h"

namespace crosvm::devices::proxy {

struct Message {
  std::vector<uint8_t> bytes;
  std::vector<base::ScopedFd> fds;  // received with MSG_CMSG_CLOEXEC
};

class Channel {
 public:
  static constexpr size_t kMaxMessageSize = 4096;
  static constexpr size_t kMaxFds = 32;

  // Both ends, close-on-exec.
  static base::Result<std::pair<Channel, Channel>> CreatePair();

  Channel() = default;
  explicit Channel(base::ScopedFd fd) : fd_(std::move(fd)) {}

  // Sends one message (1..kMaxMessageSize bytes: an empty one would read as end of stream).
  // A peer that is gone gives an error with errno EPIPE (no SIGPIPE).
  base::Status Send(std::span<const uint8_t> bytes, std::span<const int> fds = {});
  // Receives one message; std::nullopt when the peer closed its end (orderly or by dying).
  // Blocks until then. Truncated data or descriptors are errors (the fds that did arrive are
  // closed).
  base::Result<std::optional<Message>> Recv();

  int fd() const { return fd_.get(); }
  bool valid() const { return fd_.valid(); }
  // Ends the stream in both directions without closing the fd: the peer's Recv returns
  // std::nullopt, and so does ours.
  void Shutdown();

 private:
  base::ScopedFd fd_;
};

}  // namespace crosvm::devices::proxy
