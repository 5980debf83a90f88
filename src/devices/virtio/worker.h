// A device's worker thread: an epoll loop over the device's eventfds (queue notifications,
// the INTx resample fd) and a kill eventfd. Handlers run on the worker thread, never on a
// vCPU thread. Destroying the Worker stops the loop and joins the thread.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/error.h"
#include "base/event_loop.h"
#include "base/eventfd.h"

namespace crosvm::devices::virtio {

class Worker {
 public:
  struct Source {
    int fd;  // a non-blocking eventfd; drained before its handler runs
    std::function<void()> handler;
  };
  // `stop` (created if null) becomes true when the Worker is destroyed, before the kill
  // eventfd is written: handlers that loop check it between units of work.
  // `setup` (optional) runs before the thread starts and may register fds that are not
  // eventfds (a TAP): it gets the loop, which handlers may then change, on the worker thread
  // only (e.g. stop waiting on an fd while there is nothing to do with it).
  static base::Result<std::unique_ptr<Worker>> Start(
      std::string name, std::vector<Source> sources,
      std::shared_ptr<std::atomic<bool>> stop = nullptr,
      const std::function<base::Status(base::EventLoop*)>& setup = nullptr);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

 private:
  Worker(base::EventFd kill, base::EventLoop loop, std::shared_ptr<std::atomic<bool>> stop)
      : kill_(std::move(kill)), loop_(std::move(loop)), stop_(std::move(stop)) {}
  base::EventFd kill_;
  base::EventLoop loop_;
  std::shared_ptr<std::atomic<bool>> stop_;
  std::thread thread_;
};

}  // namespace crosvm::devices::virtio
