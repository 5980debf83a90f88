#include "devices/virtio/virtio_device.h"

#include <cstring>
#include <memory>

#include "devices/virtio/worker.h"

namespace crosvm::devices::virtio {

void VirtioDevice::ReadConfig(uint64_t, std::span<uint8_t> data) const {
  std::memset(data.data(), 0, data.size());
}

size_t DrainQueue(const std::string& name, Queue& queue, Interrupt& interrupt, RateLimitedLog& log,
                  const std::function<uint32_t(const DescriptorChain&)>& handle) {
  size_t handled = 0;
  DescriptorChain chain;
  std::string error;
  while (true) {
    while (true) {
      auto r = queue.Pop(&chain, &error);
      if (r == Queue::PopResult::kEmpty) break;
      if (r == Queue::PopResult::kBroken) {
        log.Warn(name + ": " + error + "; the device needs a reset");
        if (queue.NeedsInterrupt()) interrupt.SignalQueue(queue.msix_vector);
        interrupt.SetNeedsReset();
        return handled;
      }
      uint32_t len = 0;
      if (r == Queue::PopResult::kBadChain) {
        log.Warn(name + ": " + error + "; returned unused");
      } else {
        len = handle(chain);
      }
      queue.AddUsed(chain.head, len);
      ++handled;
    }
    if (!queue.EnableNotification()) break;
  }
  if (queue.NeedsInterrupt()) interrupt.SignalQueue(queue.msix_vector);
  return handled;
}

base::Result<std::unique_ptr<Worker>> StartSingleQueueWorker(
    const std::string& name, ActivateContext ctx,
    std::function<uint32_t(const memory::GuestMemory&, const DescriptorChain&)> handle) {
  if (ctx.queues.empty() || !ctx.queues[0].ready) {
    return base::Error(name + ": the driver did not enable queue 0");
  }
  struct State {
    std::string name;
    memory::GuestMemory* mem;
    Interrupt* interrupt;
    Queue queue;
    RateLimitedLog log;
    std::function<uint32_t(const memory::GuestMemory&, const DescriptorChain&)> handle;
  };
  auto state = std::make_shared<State>(
      State{name, ctx.mem, ctx.interrupt, ctx.queues[0], RateLimitedLog(), std::move(handle)});
  std::vector<Worker::Source> sources;
  sources.push_back({ctx.queue_fds[0], [state] {
                       DrainQueue(
                           state->name, state->queue, *state->interrupt, state->log,
                           [&](const DescriptorChain& c) { return state->handle(*state->mem, c); });
                     }});
  sources.push_back({ctx.interrupt->resample_fd(), [state] { state->interrupt->Resample(); }});
  return Worker::Start(name, std::move(sources));
}

}  // namespace crosvm::devices::virtio
