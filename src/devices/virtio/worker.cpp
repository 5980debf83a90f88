#include "devices/virtio/worker.h"

#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "base/logging.h"

namespace crosvm::devices::virtio {

base::Result<std::unique_ptr<Worker>> Worker::Start(
    std::string name, std::vector<Source> sources, std::shared_ptr<std::atomic<bool>> stop,
    const std::function<base::Status(base::EventLoop*)>& setup) {
  if (!stop) stop = std::make_shared<std::atomic<bool>>(false);
  CROSVM_ASSIGN_OR_RETURN(auto kill, base::EventFd::Create(EFD_NONBLOCK));
  CROSVM_ASSIGN_OR_RETURN(auto loop, base::EventLoop::Create());
  std::unique_ptr<Worker> w(new Worker(std::move(kill), std::move(loop), std::move(stop)));
  Worker* self = w.get();
  CROSVM_RETURN_IF_ERROR(
      self->loop_.Add(self->kill_.fd(), [self](uint32_t) { self->loop_.Quit(); }));
  for (auto& s : sources) {
    int fd = s.fd;
    auto handler = std::move(s.handler);
    CROSVM_RETURN_IF_ERROR(self->loop_.Add(fd, [fd, handler](uint32_t) {
      uint64_t count;
      if (read(fd, &count, sizeof(count)) < 0 && errno != EAGAIN) return;
      handler();
    }));
  }
  if (setup) CROSVM_RETURN_IF_ERROR(setup(&self->loop_));
  w->thread_ = std::thread([self, name] {
    pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
    auto status = self->loop_.Run();
    if (!status.ok())
      CROSVM_LOG(ERROR) << name << ": worker loop failed: " << status.error().ToString();
  });
  return w;
}

Worker::~Worker() {
  stop_->store(true);
  (void)kill_.Write();
  if (thread_.joinable()) thread_.join();
}

}  // namespace crosvm::devices::virtio
