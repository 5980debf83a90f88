// EventLoop: an epoll loop that calls a handler when a registered fd becomes readable.
#pragma once

#include <functional>
#include <map>

#include "base/error.h"
#include "base/fd.h"

namespace crosvm::base {

class EventLoop {
 public:
  // Called with the epoll events that fired (EPOLLIN, EPOLLHUP, ...).
  using Handler = std::function<void(uint32_t events)>;

  static Result<EventLoop> Create();

  Status Add(int fd, Handler handler, uint32_t events = 0x001 /* EPOLLIN */);
  Status Remove(int fd);
  // Runs until Quit() is called from a handler. Returns an error only if epoll itself fails.
  Status Run();
  void Quit() { quit_ = true; }

 private:
  explicit EventLoop(ScopedFd epfd) : epfd_(std::move(epfd)) {}
  ScopedFd epfd_;
  std::map<int, Handler> handlers_;
  bool quit_ = false;
};

}  // namespace crosvm::base
