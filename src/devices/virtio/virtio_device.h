// What a virtio device type (block, rng, ...) implements; the transport (VirtioPciDevice)
// does feature negotiation, the status machine, queue configuration and interrupts.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "base/error.h"
#include "devices/virtio/interrupt.h"
#include "devices/virtio/queue.h"
#include "memory/guest_memory.h"

namespace crosvm::devices::virtio {

// Everything a device needs to run once the driver set DRIVER_OK.
struct ActivateContext {
  memory::GuestMemory* mem = nullptr;
  Interrupt* interrupt = nullptr;  // outlives the activation
  std::vector<Queue> queues;       // one per device queue; only `ready` ones may be used
  std::vector<int> queue_fds;      // the notification eventfd of each queue
  uint64_t features = 0;           // negotiated
};

class VirtioDevice {
 public:
  virtual ~VirtioDevice() = default;
  virtual uint32_t DeviceType() const = 0;
  virtual std::string DebugName() const = 0;
  virtual uint32_t PciClassCode() const = 0;
  virtual std::vector<uint16_t> QueueMaxSizes() const = 0;
  // Device feature bits, including ring features; the transport adds VIRTIO_F_VERSION_1.
  virtual uint64_t Features() const = 0;
  // Device-specific configuration space; reads past its end return zeros.
  virtual void ReadConfig(uint64_t offset, std::span<uint8_t> data) const;
  virtual void WriteConfig(uint64_t /*offset*/, std::span<const uint8_t> /*data*/) {}
  // The configuration generation (virtio 1.x 2.4.1): changes whenever the device changes its
  // configuration space, so a driver reading several fields sees a consistent snapshot.
  virtual uint32_t ConfigGeneration() const { return 0; }
  // Starts processing (on the device's own worker thread).
  virtual base::Status Activate(ActivateContext ctx) = 0;
  // Stops processing: when it returns, no thread of the device touches guest memory.
  virtual void Reset() = 0;
  // Appends the file descriptors the device itself uses (a disk image, a tap...): a jailed
  // device process keeps exactly these, plus the transport's. Fds created after the jail is set
  // up (a worker's epoll) need not be listed.
  virtual void AppendKeptFds(std::vector<int>& /*fds*/) const {}
  // The VMM's typed requests (device_control.h), from a thread that is neither a vCPU's nor
  // the worker's. Errors carry an errno saying what kind of failure (EINVAL: bad request,
  // EROFS / ENOTSUP: refused, EAGAIN: not now). Default: no requests.
  virtual base::Result<std::vector<uint8_t>> Control(uint32_t op, std::span<const uint8_t> payload);
};

// How much one wake-up of a worker may do before it yields: a guest (a second vCPU refilling the
// ring) must not keep a worker busy forever, and a reset or shutdown must not wait behind it.
struct DrainBudget {
  size_t max_chains = 64;
  uint64_t max_bytes = uint64_t{16} << 20;  // buffer bytes the chains declare, read or written
};

// Pops available chains of `queue`, answers each with `handle` (which returns the used length),
// and interrupts the driver if it asked for it. Invalid chains are logged (rate-limited) and
// given back with length 0; a broken ring sets DEVICE_NEEDS_RESET. Stops early when `*stop`
// becomes true (checked between chains) or `budget` is spent; `*more` (if given) then says
// whether chains are left, and the caller must reschedule itself (the worker writes the queue's
// eventfd). Otherwise re-arms notifications. Returns the number of chains handled.
size_t DrainQueue(const std::string& name, Queue& queue, Interrupt& interrupt, RateLimitedLog& log,
                  const std::function<uint32_t(const DescriptorChain&)>& handle,
                  const std::atomic<bool>* stop = nullptr, DrainBudget budget = {},
                  bool* more = nullptr);

class Worker;

// Starts a worker thread serving queue 0 of `ctx`: each available chain goes to `handle`,
// which returns the used length, at most `budget` per wake-up. The INTx resample fd is served
// too. Fails if queue 0 was not enabled by the driver.
base::Result<std::unique_ptr<Worker>> StartSingleQueueWorker(
    const std::string& name, ActivateContext ctx,
    std::function<uint32_t(const memory::GuestMemory&, const DescriptorChain&)> handle,
    DrainBudget budget = {});

}  // namespace crosvm::devices::virtio
