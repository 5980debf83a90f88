#include "base/event_loop.h"

#include <sys/epoll.h>

#include <array>

namespace crosvm::base {

Result<EventLoop> EventLoop::Create() {
  int fd = epoll_create1(EPOLL_CLOEXEC);
  if (fd < 0) return Error::FromErrno("epoll_create1");
  return EventLoop(ScopedFd(fd));
}

Status EventLoop::Add(int fd, Handler handler, uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  if (epoll_ctl(epfd_.get(), EPOLL_CTL_ADD, fd, &ev) < 0) {
    return Error::FromErrno("epoll_ctl add fd " + std::to_string(fd));
  }
  handlers_[fd] = std::move(handler);
  return Ok();
}

Status EventLoop::Remove(int fd) {
  handlers_.erase(fd);
  if (epoll_ctl(epfd_.get(), EPOLL_CTL_DEL, fd, nullptr) < 0) {
    return Error::FromErrno("epoll_ctl del fd " + std::to_string(fd));
  }
  return Ok();
}

Status EventLoop::Run() {
  std::array<epoll_event, 16> events;
  while (!quit_) {
    int n = epoll_wait(epfd_.get(), events.data(), events.size(), -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::FromErrno("epoll_wait");
    }
    for (int i = 0; i < n && !quit_; ++i) {
      auto it = handlers_.find(events[i].data.fd);
      if (it == handlers_.end()) continue;  // removed by an earlier handler in this batch
      Handler handler = it->second;         // copy: the handler may remove itself
      handler(events[i].events);
    }
  }
  return Ok();
}

}  // namespace crosvm::base
