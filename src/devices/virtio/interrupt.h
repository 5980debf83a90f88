// How a virtio device interrupts the driver: an MSI-X vector when the driver enabled MSI-X
// (each queue and the configuration have their own vector), otherwise the ISR status register
// and the level-triggered INTA# line (an irqfd with a resample fd: KVM lowers the line at the
// guest's EOI and tells us, and we raise it again while the ISR still has bits set).
//
// Shared by the transport (vCPU threads: ISR reads, MSI-X programming) and the device's worker
// thread (signalling); every member is thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "base/error.h"
#include "base/eventfd.h"
#include "devices/pci/msix.h"
#include "devices/pci/vm_control.h"

namespace crosvm::devices::virtio {

class Interrupt {
 public:
  // `msix` may be null (no MSI-X capability); it must outlive the Interrupt.
  static base::Result<std::unique_ptr<Interrupt>> Create(pci::MsixConfig* msix);
  ~Interrupt();

  // Connects INTA# to `gsi` through a resampling irqfd (no-op when vm is null).
  base::Status ConnectIntx(pci::VmControl* vm, uint32_t gsi);

  // A used buffer on a queue whose MSI-X vector is `vector`.
  void SignalQueue(uint16_t vector);
  // The device configuration changed (or the device needs a reset).
  void SignalConfigChanged();
  // The device hit an error it cannot recover from: DEVICE_NEEDS_RESET shows in the status
  // and the driver gets a configuration-change interrupt.
  void SetNeedsReset();
  bool needs_reset() const { return needs_reset_.load(); }

  // The driver reads the ISR: returns the bits and clears them.
  uint8_t ReadAndClearIsr();
  // KVM lowered INTA# at the guest's EOI: raise it again if the ISR still has bits.
  void Resample();
  // The INTx eventfds and every MSI-X vector's eventfd (for a jailed device's kept fds).
  void AppendKeptFds(std::vector<int>& fds) const;
  int intx_fd() const { return intx_.fd(); }
  int resample_fd() const { return resample_.fd(); }
  // The PCI command register's Interrupt Disable bit.
  void SetIntxDisabled(bool disabled);
  // The PCI command register's Bus Master Enable bit: while clear the device does no DMA
  // (workers leave the queues alone) and sends no MSI (MSI-X vectors go pending). True until
  // the transport says otherwise.
  void SetBusMaster(bool enabled) { bus_master_.store(enabled); }
  bool bus_master() const { return bus_master_.load(); }

  void set_config_vector(uint16_t v) { config_vector_.store(v); }
  uint16_t config_vector() const { return config_vector_.load(); }
  // Device reset: ISR, vectors and the needs-reset state cleared.
  void Reset();

 private:
  Interrupt(pci::MsixConfig* msix, base::EventFd intx, base::EventFd resample)
      : msix_(msix), intx_(std::move(intx)), resample_(std::move(resample)) {}
  void Raise(uint8_t isr_bit, uint16_t vector);

  pci::MsixConfig* msix_;
  base::EventFd intx_;
  base::EventFd resample_;
  pci::VmControl* vm_ = nullptr;
  uint32_t gsi_ = 0;
  std::atomic<uint8_t> isr_{0};
  std::atomic<bool> intx_disabled_{false};
  std::atomic<bool> bus_master_{true};
  std::atomic<bool> needs_reset_{false};
  std::atomic<uint16_t> config_vector_{0xffff};
};

}  // namespace crosvm::devices::virtio
