// The device-process side: serves a ProxyDevice's requests with the real pci::PciDevice, and
// sends back with each reply the effects the device recorded meanwhile (its DeviceVmControl
// and DeviceMsiRouter must have been switched to `recorder` with UseRecorder).
#pragma once

#include <functional>

#include "base/error.h"
#include "base/rate_limited_log.h"
#include "devices/pci/pci_device.h"
#include "devices/proxy/channel.h"
#include "devices/proxy/effects.h"
#include "devices/proxy/proxy_protocol.h"

namespace crosvm::devices::proxy {

class DeviceServer {
 public:
  // `on_shutdown` stops the device (e.g. VirtioPciDevice::Shutdown); may be empty.
  DeviceServer(Channel channel, pci::PciDevice* device, EffectRecorder* recorder,
               std::function<void()> on_shutdown)
      : channel_(std::move(channel)),
        device_(device),
        recorder_(recorder),
        on_shutdown_(std::move(on_shutdown)) {}

  // Serves until the VM process closes the channel or sends Shutdown (both Ok; after a
  // Shutdown the device has been stopped). An error: the channel itself failed.
  base::Status Run();

  // For tests that need to end the stream from the device side.
  Channel& channel() { return channel_; }

 private:
  // Serves one request into `reply` (result and state; effects are added by Send).
  void Dispatch(const Request& req, Reply* reply);
  // Sends the reply with every pending effect, in as many messages as they need.
  base::Status SendReply(Reply reply);
  base::Status SendRejection(uint32_t seq, uint8_t type, const std::string& why);

  Channel channel_;
  pci::PciDevice* device_;
  EffectRecorder* recorder_;
  std::function<void()> on_shutdown_;
  base::RateLimitedLog log_;
};

}  // namespace crosvm::devices::proxy
