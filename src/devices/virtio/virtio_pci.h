// The virtio 1.x PCI transport, modern interface only (virtio 1.1, 4.1): vendor 0x1af4, device
// 0x1040 + type, revision 1, one 64-bit memory BAR (BAR0) holding the common configuration,
// ISR, device configuration, notification area and the MSI-X table and PBA, described by
// vendor capabilities (plus the VIRTIO_PCI_CAP_PCI_CFG window).
//
// BAR0 layout:
//   0x0000 common configuration (0x38 bytes)
//   0x1000 ISR status (1 byte)
//   0x2000 device configuration (up to 0x1000 bytes)
//   0x3000 notifications: queue n at 0x3000 + 4 n (notify_off_multiplier 4), each an
//          ioeventfd for 2-byte writes once the BAR is mapped
//   0x4000 MSI-X table (16 bytes per vector: one per queue plus one for configuration)
//   0x6000 MSI-X pending-bit array
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/eventfd.h"
#include "devices/pci/msi_router.h"
#include "devices/pci/msix.h"
#include "devices/pci/pci_device.h"
#include "devices/pci/vm_control.h"
#include "devices/virtio/interrupt.h"
#include "devices/virtio/queue.h"
#include "devices/virtio/virtio_device.h"
#include "memory/guest_memory.h"

namespace crosvm::devices::virtio {

// Offsets in BAR0.
inline constexpr uint64_t kCommonCfgOffset = 0x0000;
inline constexpr uint64_t kCommonCfgSize = 0x38;
inline constexpr uint64_t kIsrOffset = 0x1000;
inline constexpr uint64_t kDeviceCfgOffset = 0x2000;
inline constexpr uint64_t kDeviceCfgSize = 0x1000;
inline constexpr uint64_t kNotifyOffset = 0x3000;
inline constexpr uint32_t kNotifyMultiplier = 4;
inline constexpr uint64_t kMsixTableOffset = 0x4000;
inline constexpr uint64_t kMsixPbaOffset = 0x6000;
inline constexpr uint64_t kBar0Size = 0x8000;
inline constexpr int kBarIndex = 0;

// Common configuration registers (struct virtio_pci_common_cfg).
inline constexpr uint64_t kDeviceFeatureSelect = 0x00;
inline constexpr uint64_t kDeviceFeature = 0x04;
inline constexpr uint64_t kDriverFeatureSelect = 0x08;
inline constexpr uint64_t kDriverFeature = 0x0c;
inline constexpr uint64_t kMsixConfig = 0x10;
inline constexpr uint64_t kNumQueues = 0x12;
inline constexpr uint64_t kDeviceStatus = 0x14;
inline constexpr uint64_t kConfigGeneration = 0x15;
inline constexpr uint64_t kQueueSelect = 0x16;
inline constexpr uint64_t kQueueSize = 0x18;
inline constexpr uint64_t kQueueMsixVector = 0x1a;
inline constexpr uint64_t kQueueEnable = 0x1c;
inline constexpr uint64_t kQueueNotifyOff = 0x1e;
inline constexpr uint64_t kQueueDesc = 0x20;
inline constexpr uint64_t kQueueDriver = 0x28;
inline constexpr uint64_t kQueueDevice = 0x30;

// Vendor capability types (4.1.4).
inline constexpr uint8_t kCapCommonCfg = 1;
inline constexpr uint8_t kCapNotifyCfg = 2;
inline constexpr uint8_t kCapIsrCfg = 3;
inline constexpr uint8_t kCapDeviceCfg = 4;
inline constexpr uint8_t kCapPciCfg = 5;

class VirtioPciDevice : public pci::PciDevice {
 public:
  // `vm` and `router` may be null (tests): no ioeventfds, irqfds or routes then, and the
  // eventfds are only written. `mem` must outlive the device.
  static base::Result<std::shared_ptr<VirtioPciDevice>> Create(std::unique_ptr<VirtioDevice> device,
                                                               memory::GuestMemory* mem,
                                                               pci::VmControl* vm,
                                                               pci::MsiRouter* router,
                                                               bool use_msix = true);
  ~VirtioPciDevice() override;

  // PciDevice.
  std::string DebugName() const override { return name_; }
  uint32_t ReadConfigRegister(size_t reg) override;
  void WriteConfigRegister(size_t reg, size_t offset, std::span<const uint8_t> data) override;
  std::vector<pci::BarInfo> Bars() override {
    std::lock_guard lock(cfg_mu_);
    return config_.bars();
  }
  uint64_t BarAddress(int bar) override {
    std::lock_guard lock(cfg_mu_);
    return config_.BarAddress(bar);
  }
  uint16_t Command() override {
    std::lock_guard lock(cfg_mu_);
    return config_.command();
  }
  base::Status SetBarAddress(int bar, uint64_t addr) override {
    std::lock_guard lock(cfg_mu_);
    return config_.SetBarAddress(bar, addr);
  }
  base::Status AssignIntx(uint32_t gsi) override;
  void ReadBar(int bar, uint64_t offset, std::span<uint8_t> data) override;
  void WriteBar(int bar, uint64_t offset, std::span<const uint8_t> data) override;
  void OnBarMapped(int bar, uint64_t addr) override;
  void OnBarUnmapped(int bar, uint64_t addr) override;
  base::Result<std::vector<uint8_t>> DeviceControl(uint32_t op,
                                                   std::span<const uint8_t> payload) override {
    return device_->Control(op, payload);
  }

  // Stops the device (joins its worker) and drops the ioeventfds: for VM teardown.
  void Shutdown();
  // The file descriptors the device and its transport use (queue notification and interrupt
  // eventfds, the device's own files): what a jailed device process keeps open.
  std::vector<int> KeptFds() const;

  // For tests.
  VirtioDevice* device() { return device_.get(); }
  Interrupt* interrupt() { return interrupt_.get(); }
  pci::MsixConfig* msix() { return msix_.get(); }
  int queue_event_fd(size_t queue) const { return queue_evts_[queue].fd(); }
  bool active() const;

 private:
  VirtioPciDevice(std::string name, std::unique_ptr<VirtioDevice> device, memory::GuestMemory* mem,
                  pci::VmControl* vm);
  base::Status Init(pci::MsiRouter* router, bool use_msix);

  void ReadCommon(uint64_t offset, std::span<uint8_t> data);
  void WriteCommon(uint64_t offset, std::span<const uint8_t> data);
  void WriteStatus(uint8_t status, std::unique_lock<std::mutex>& lock);
  // Stops the device and resets the transport state. Drops `lock` (mu_) while the device's
  // worker is joined, so that other vCPUs' accesses to this device do not wait behind it.
  void ResetLocked(std::unique_lock<std::mutex>& lock);
  // The command register changed: Bus Master Enable and Interrupt Disable follow.
  void CommandChanged(uint16_t command);
  Queue* SelectedQueue();
  uint64_t OfferedFeatures() const;
  void RegisterIoeventfds(uint64_t bar_addr);
  void UnregisterIoeventfds();

  const std::string name_;
  std::unique_ptr<VirtioDevice> device_;
  memory::GuestMemory* mem_;
  pci::VmControl* vm_;
  mutable std::mutex cfg_mu_;  // config_ (never held while calling into the device)
  pci::PciConfiguration config_;
  std::unique_ptr<pci::MsixConfig> msix_;
  std::unique_ptr<Interrupt> interrupt_;
  std::vector<base::EventFd> queue_evts_;
  uint8_t msix_cap_ = 0;     // offset of the MSI-X capability (0: none)
  uint8_t pci_cfg_cap_ = 0;  // offset of the VIRTIO_PCI_CAP_PCI_CFG capability

  mutable std::mutex mu_;  // everything below
  std::vector<Queue> queues_;
  uint32_t device_feature_select_ = 0;
  uint32_t driver_feature_select_ = 0;
  uint64_t driver_features_ = 0;
  uint8_t status_ = 0;
  uint16_t queue_select_ = 0;
  bool active_ = false;
  bool resetting_ = false;  // the device is being stopped with mu_ released
  bool bus_master_ = false;
  std::optional<uint64_t> ioeventfd_base_;
  base::RateLimitedLog log_;  // everything the driver can get wrong  // BAR0 address the ioeventfds
                              // are registered at
};

}  // namespace crosvm::devices::virtio
