// ControlClient: the command line's end of the control socket. One connection, one request at
// a time, each answered within a timeout; every failure is an Error that says what happened
// (no socket there, nobody listening, refused, no answer in time, an answer that is not one).
#pragma once

#include <chrono>
#include <span>
#include <string>

#include "base/error.h"
#include "base/fd.h"
#include "control/protocol.h"

namespace crosvm::control {

class ControlClient {
 public:
  static base::Result<ControlClient> Connect(const std::string& path);

  // Sends `body` and waits up to `timeout` for its reply. An error reply from the server is a
  // Reply (status != kOk), not an Error; Errors are for transport and protocol failures.
  base::Result<Reply> Call(const RequestBody& body,
                           std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // Sends raw bytes (tests: hostile clients) and waits for one reply.
  base::Result<Reply> CallRaw(std::span<const uint8_t> bytes, uint32_t expect_id,
                              std::chrono::milliseconds timeout);

  int fd() const { return fd_.get(); }
  const std::string& path() const { return path_; }

 private:
  ControlClient(std::string path, base::ScopedFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}

  std::string path_;
  base::ScopedFd fd_;
  uint32_t next_id_ = 1;
};

}  // namespace crosvm::control
