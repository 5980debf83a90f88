// virtio-rng (virtio 1.1, 5.4): one request queue; every device-writable buffer the driver
// offers is filled with bytes from the host's getrandom(), up to a cap per chain.
#pragma once

#include <atomic>
#include <memory>

#include "devices/virtio/virtio.h"
#include "devices/virtio/virtio_device.h"
#include "devices/virtio/worker.h"

namespace crosvm::devices::virtio {

class RngDevice : public VirtioDevice {
 public:
  static constexpr uint16_t kQueueSize = 256;
  // The most bytes one chain gets: a chain may declare 256 buffers as large as guest RAM, and
  // the driver is told how much it got (the used length), so it simply asks again.
  static constexpr uint64_t kMaxBytesPerChain = 64 * 1024;

  RngDevice() = default;
  ~RngDevice() override;

  uint32_t DeviceType() const override { return kTypeRng; }
  std::string DebugName() const override { return "virtio-rng"; }
  uint32_t PciClassCode() const override;
  std::vector<uint16_t> QueueMaxSizes() const override { return {kQueueSize}; }
  uint64_t Features() const override;
  base::Status Activate(ActivateContext ctx) override;
  void Reset() override;

  // Fills the device-writable buffers of `chain` front to back, at most kMaxBytesPerChain
  // bytes; returns the bytes written.
  static uint32_t FillChain(const memory::GuestMemory& mem, const DescriptorChain& chain);

  uint64_t requests_served() const { return requests_.load(); }
  uint64_t bytes_served() const { return bytes_.load(); }

 private:
  std::unique_ptr<Worker> worker_;
  std::atomic<uint64_t> requests_{0};
  std::atomic<uint64_t> bytes_{0};
};

}  // namespace crosvm::devices::virtio
