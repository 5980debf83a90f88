// Helpers for the virtio-net end-to-end tests: crosvm in the background, its device processes
// as seen in /proc, and the host end of the guest's network (ICMP echo, a UDP listener). Only
// ever used inside a network namespace the test created.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "background.h"

namespace crosvm::e2e {

// The fds of a device process that are none of: its eventfds and epoll fd, one channel socket,
// one seccomp report pipe, /dev/null, `stderr_path` on fd 2, and /dev/net/tun (its TAP).
std::vector<std::string> UnexpectedDeviceFds(pid_t pid, const std::string& stderr_path);
// How many of its fds point to `target`.
int CountFds(pid_t pid, const std::string& target);

// ICMP echo over a raw socket (the test runs as root).
class Pinger {
 public:
  explicit Pinger(const std::string& ip);
  ~Pinger();
  bool ok() const { return fd_ >= 0; }
  // Sends one echo request; the round trip in ms, or nullopt when no reply came in `timeout_ms`.
  std::optional<double> Once(int timeout_ms);

 private:
  int fd_ = -1;
  std::string ip_;
  uint16_t id_;
  uint16_t seq_ = 0;
};

// A UDP socket bound to 0.0.0.0:port.
class UdpListener {
 public:
  explicit UdpListener(int port);
  ~UdpListener();
  bool ok() const { return fd_ >= 0; }
  // What arrived within `timeout_ms` (at most one datagram), or "".
  std::string Receive(int timeout_ms);
  const std::string& last_sender() const { return last_sender_; }

 private:
  int fd_ = -1;
  std::string last_sender_;
};

}  // namespace crosvm::e2e
