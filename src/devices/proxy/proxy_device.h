// The VM-process side of a device that runs in its own process: a pci::PciDevice that turns
// every call into a request over a Channel, applies the effects that come back (ioeventfds,
// irqfds, MSI routes) to the VM's VmControl and MsiRouter before it returns, and answers
// PciRoot's queries (Bars, BarAddress, Command) from a copy of the device's state that every
// reply to a state-changing call refreshes, so they never cross the process boundary.
//
// If the device process dies or answers garbage, the proxy fails for good: reads return
// all-ones, writes are dropped, `on_failure` runs once with the reason (the VM stops) and a
// rate-limited error is logged per dropped access. A dead peer never hangs a caller: the
// channel reports end of stream.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/rate_limited_log.h"
#include "devices/pci/msi_router.h"
#include "devices/pci/pci_device.h"
#include "devices/pci/vm_control.h"
#include "devices/proxy/channel.h"
#include "devices/proxy/effects.h"
#include "devices/proxy/proxy_protocol.h"

namespace crosvm::devices::proxy {

class ProxyDevice : public pci::PciDevice {
 public:
  using FailureCallback = std::function<void(const std::string& why)>;

  // `name` is the device's DebugName (known before the fork). Asks the device for its state
  // once; fails if it does not answer. `vm` and `router` receive the effects (may be null).
  static base::Result<std::shared_ptr<ProxyDevice>> Create(std::string name, Channel channel,
                                                           pci::VmControl* vm,
                                                           pci::MsiRouter* router,
                                                           FailureCallback on_failure);
  ~ProxyDevice() override;

  // PciDevice.
  std::string DebugName() const override { return name_; }
  uint32_t ReadConfigRegister(size_t reg) override;
  void WriteConfigRegister(size_t reg, size_t offset, std::span<const uint8_t> data) override;
  std::vector<pci::BarInfo> Bars() override;
  uint64_t BarAddress(int bar) override;
  uint16_t Command() override;
  base::Status SetBarAddress(int bar, uint64_t addr) override;
  base::Status AssignIntx(uint32_t gsi) override;
  void ReadBar(int bar, uint64_t offset, std::span<uint8_t> data) override;
  void WriteBar(int bar, uint64_t offset, std::span<const uint8_t> data) override;
  void OnBarMapped(int bar, uint64_t addr) override;
  void OnBarUnmapped(int bar, uint64_t addr) override;
  // Travels as a DeviceControl request; the device's error comes back with its errno.
  base::Result<std::vector<uint8_t>> DeviceControl(uint32_t op,
                                                   std::span<const uint8_t> payload) override;

  // Asks the device process to shut the device down (it then stops serving) and applies the
  // last effects. Afterwards every call is answered locally as if the device had failed, but
  // without `on_failure`.
  base::Status Shutdown();

  bool failed() const { return failed_.load(); }
  // Requests sent so far (tests: proof that a query was answered from the cache).
  uint64_t requests_sent() const { return requests_sent_.load(); }

 private:
  ProxyDevice(std::string name, Channel channel, pci::VmControl* vm, pci::MsiRouter* router,
              FailureCallback on_failure);
  // One round trip under mu_: sends `req`, applies every effect, returns the final reply.
  // On a transport or protocol failure returns nullopt with `*why` set and the proxy failed.
  std::optional<Reply> CallLocked(Request req, std::string* why);
  // CallLocked, then the failure (if any) reported after mu_ is released. Returns nullopt
  // when the proxy has failed (now or earlier).
  std::optional<Reply> Call(Request req);
  void ReportFailure(const std::string& why);
  void LogDropped(const char* what);

  const std::string name_;
  const FailureCallback on_failure_;
  std::mutex mu_;  // one request at a time; everything below
  Channel channel_;
  EffectApplier applier_;
  // The cache has its own lock: PciRoot's queries never wait behind a round trip.
  mutable std::mutex cache_mu_;
  DeviceState cache_;
  uint32_t next_seq_ = 1;
  std::atomic<bool> shut_down_{false};
  std::atomic<bool> failed_{false};
  std::atomic<bool> failure_reported_{false};
  std::atomic<uint64_t> requests_sent_{0};
  base::RateLimitedLog log_;
};

}  // namespace crosvm::devices::proxy
