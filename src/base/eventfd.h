// EventFd: a counter file descriptor used to signal between threads and to KVM (irqfd/ioeventfd).
#pragma once

#include <cstdint>

#include "base/error.h"
#include "base/fd.h"

namespace crosvm::base {

class EventFd {
 public:
  static Result<EventFd> Create(unsigned flags = 0);

  Status Write(uint64_t value = 1) const;
  // Reads and resets the counter; blocks unless created non-blocking.
  Result<uint64_t> Read() const;
  int fd() const { return fd_.get(); }

 private:
  explicit EventFd(ScopedFd fd) : fd_(std::move(fd)) {}
  ScopedFd fd_;
};

}  // namespace crosvm::base
