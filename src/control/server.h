// ControlServer: the VM's end of the control socket. A SOCK_SEQPACKET Unix socket, mode 0600,
// served by one epoll thread: every message is decoded (garbage gets an error reply, never ends
// the server), handed to the ControlHandler, and answered. Peers whose uid is neither ours nor
// root are refused; clients are bounded in number and in how long they may sit idle, so a
// client that connects and sends nothing delays nobody.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "base/error.h"
#include "base/eventfd.h"
#include "base/fd.h"
#include "control/protocol.h"

namespace crosvm::control {

// The integrator's side: runs on the server thread, one request at a time. Keep it bounded in
// time (other clients wait meanwhile); requests that take long answer kUnavailable.
class ControlHandler {
 public:
  virtual ~ControlHandler() = default;
  virtual Reply Handle(const Request& request) = 0;
};

// `path` as given to -s: a directory gets "crosvm-<pid>.sock" inside it; anything else is the
// socket's path itself.
std::string ResolveSocketPath(const std::string& path, pid_t pid);

struct ControlServerOptions {
  size_t max_clients = 16;
  // A client that sends nothing for this long is disconnected.
  std::chrono::milliseconds idle_timeout{10000};
};

class ControlServer {
 public:
  // Binds `path` (already resolved: see ResolveSocketPath) and starts serving. A stale socket
  // (nothing listens: ECONNREFUSED) is replaced; a live one, or a non-socket file, is an error.
  // `handler` must outlive the server.
  static base::Result<std::unique_ptr<ControlServer>> Start(const std::string& path,
                                                            ControlHandler* handler,
                                                            ControlServerOptions options = {});
  // Stops the thread, closes every client, removes the socket.
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  const std::string& path() const { return path_; }
  // Removes the socket file now if it is still ours (same inode): safe to call from any exit
  // path, more than once, and from a signal handler (stat and unlink only).
  void Remove();
  // Stops serving (joins the thread); the socket file stays until Remove or the destructor.
  void Stop();

  // Counters, for tests and the exit log.
  uint64_t requests_served() const { return served_.load(); }
  uint64_t bad_requests() const { return bad_.load(); }
  uint64_t refused_peers() const { return refused_.load(); }
  uint64_t busy_refusals() const { return busy_.load(); }
  uint64_t idle_disconnects() const { return idle_.load(); }

 private:
  ControlServer(std::string path, base::ScopedFd listen_fd, base::EventFd stop,
                ControlHandler* handler, ControlServerOptions options);
  void Run();

  const std::string path_;
  char path_c_[108] = {};  // for Remove() without allocation
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  base::ScopedFd listen_fd_;
  base::EventFd stop_;
  ControlHandler* handler_;
  ControlServerOptions options_;
  std::thread thread_;
  std::atomic<uint64_t> served_{0}, bad_{0}, refused_{0}, busy_{0}, idle_{0};
};

}  // namespace crosvm::control
