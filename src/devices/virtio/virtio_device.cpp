#include "devices/virtio/virtio_device.h"

#include <unistd.h>

#include <cstring>
#include <memory>

#include "devices/virtio/worker.h"

namespace crosvm::devices::virtio {

void VirtioDevice::ReadConfig(uint64_t, std::span<uint8_t> data) const {
  std::memset(data.data(), 0, data.size());
}

size_t DrainQueue(const std::string& name, Queue& queue, Interrupt& interrupt, RateLimitedLog& log,
                  const std::function<uint32_t(const DescriptorChain&)>& handle,
                  const std::atomic<bool>* stop, DrainBudget budget, bool* more) {
  size_t handled = 0;
  uint64_t bytes = 0;
  DescriptorChain chain;
  std::string error;
  if (more != nullptr) *more = false;
  auto stopped = [&] { return stop != nullptr && stop->load(std::memory_order_relaxed); };
  auto spent = [&] { return handled >= budget.max_chains || bytes >= budget.max_bytes; };
  while (true) {
    while (true) {
      if (stopped()) return handled;  // the device is being reset: no more guest memory
      // Bus mastering off: no DMA. The transport kicks the queues when it comes back on.
      if (!interrupt.bus_master()) break;
      if (spent()) {
        // Yield: what is left is picked up on the next wake-up, after other events (a
        // stop request among them). Notifications stay suppressed until then.
        if (more != nullptr) *more = true;
        if (queue.NeedsInterrupt()) interrupt.SignalQueue(queue.msix_vector);
        return handled;
      }
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
        bytes += chain.readable_bytes + chain.writable_bytes;
      }
      queue.AddUsed(chain.head, len);
      ++handled;
    }
    if (!interrupt.bus_master() || !queue.EnableNotification()) break;
  }
  if (queue.NeedsInterrupt()) interrupt.SignalQueue(queue.msix_vector);
  return handled;
}

base::Result<std::unique_ptr<Worker>> StartSingleQueueWorker(
    const std::string& name, ActivateContext ctx,
    std::function<uint32_t(const memory::GuestMemory&, const DescriptorChain&)> handle,
    DrainBudget budget) {
  if (ctx.queues.empty() || !ctx.queues[0].ready) {
    return base::Error(name + ": the driver did not enable queue 0");
  }
  struct State {
    std::string name;
    memory::GuestMemory* mem;
    Interrupt* interrupt;
    Queue queue;
    int queue_fd;
    DrainBudget budget;
    std::shared_ptr<std::atomic<bool>> stop;
    RateLimitedLog log;
    std::function<uint32_t(const memory::GuestMemory&, const DescriptorChain&)> handle;
  };
  auto stop = std::make_shared<std::atomic<bool>>(false);
  auto state =
      std::make_shared<State>(State{name, ctx.mem, ctx.interrupt, ctx.queues[0], ctx.queue_fds[0],
                                    budget, stop, RateLimitedLog(), std::move(handle)});
  std::vector<Worker::Source> sources;
  sources.push_back({ctx.queue_fds[0], [state] {
                       bool more = false;
                       DrainQueue(
                           state->name, state->queue, *state->interrupt, state->log,
                           [&](const DescriptorChain& c) { return state->handle(*state->mem, c); },
                           state->stop.get(), state->budget, &more);
                       // Budget spent: come back after the other events (a stop request).
                       if (more) {
                         uint64_t one = 1;
                         (void)!write(state->queue_fd, &one, sizeof(one));
                       }
                     }});
  sources.push_back({ctx.interrupt->resample_fd(), [state] { state->interrupt->Resample(); }});
  return Worker::Start(name, std::move(sources), std::move(stop));
}

base::Result<std::vector<uint8_t>> VirtioDevice::Control(uint32_t op,
                                                         std::span<const uint8_t> /*payload*/) {
  return base::Error(DebugName() + ": no control request " + std::to_string(op), ENOTSUP);
}

}  // namespace crosvm::devices::virtio
