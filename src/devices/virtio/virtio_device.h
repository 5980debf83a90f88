// What a virtio device type (block, rng, ...) implements; the transport (VirtioPciDevice)
// does feature negotiation, the status machine, queue configuration and interrupts.
#pragma once

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
  // Starts processing (on the device's own worker thread).
  virtual base::Status Activate(ActivateContext ctx) = 0;
  // Stops processing: when it returns, no thread of the device touches guest memory.
  virtual void Reset() = 0;
};

// Pops every available chain of `queue`, answers each with `handle` (which returns the used
// length), re-arms notifications and interrupts the driver if it asked for it. Invalid chains
// are logged (rate-limited) and given back with length 0; a broken ring sets
// DEVICE_NEEDS_RESET. Returns the number of chains handled.
size_t DrainQueue(const std::string& name, Queue& queue, Interrupt& interrupt, RateLimitedLog& log,
                  const std::function<uint32_t(const DescriptorChain&)>& handle);

class Worker;

// Starts a worker thread serving queue 0 of `ctx`: each available chain goes to `handle`,
// which returns the used length. The INTx resample fd is served too. Fails if queue 0 was not
// enabled by the driver.
base::Result<std::unique_ptr<Worker>> StartSingleQueueWorker(
    const std::string& name, ActivateContext ctx,
    std::function<uint32_t(const memory::GuestMemory&, const DescriptorChain&)> handle);

}  // namespace crosvm::devices::virtio
