// A PCI function on the root bus, as PciRoot sees it: its configuration space, its BARs and
// what happens when the guest maps them.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/error.h"
#include "devices/pci/pci_config.h"

namespace crosvm::devices::pci {

class PciDevice {
 public:
  virtual ~PciDevice() = default;
  virtual std::string DebugName() const = 0;

  // Configuration space. PciRoot serializes these calls (one lock for the whole bus).
  virtual uint32_t ReadConfigRegister(size_t reg) = 0;
  virtual void WriteConfigRegister(size_t reg, size_t offset, std::span<const uint8_t> data) = 0;
  // The BARs the device declares and their current programming (under PciRoot's lock).
  virtual std::vector<BarInfo> Bars() = 0;
  virtual uint64_t BarAddress(int bar) = 0;
  virtual uint16_t Command() = 0;
  // Firmware-style initial programming by PciRoot.
  virtual base::Status SetBarAddress(int bar, uint64_t addr) = 0;
  // The legacy interrupt: the IOAPIC pin the device raises as INTA#.
  virtual base::Status AssignIntx(uint32_t gsi) = 0;

  // Accesses to a mapped BAR, from any vCPU thread.
  virtual void ReadBar(int bar, uint64_t offset, std::span<uint8_t> data) = 0;
  virtual void WriteBar(int bar, uint64_t offset, std::span<const uint8_t> data) = 0;

  // The BAR now decodes at `addr` (memory or I/O space), or no longer does. Called by PciRoot
  // when the guest enables decoding or moves the BAR.
  virtual void OnBarMapped(int /*bar*/, uint64_t /*addr*/) {}
  virtual void OnBarUnmapped(int /*bar*/, uint64_t /*addr*/) {}

  // A request from the VMM that is not a bus access (a balloon target, a disk resize): `op`
  // and `payload` are the device type's business (devices/virtio/device_control.h); the answer
  // is its reply payload. Errors carry an errno that says what kind of failure it was (EINVAL,
  // EROFS, ENOTSUP, EAGAIN...). A device with no such requests refuses them all.
  virtual base::Result<std::vector<uint8_t>> DeviceControl(uint32_t op,
                                                           std::span<const uint8_t> payload) {
    (void)payload;
    return base::Error(DebugName() + ": no control request " + std::to_string(op), ENOTSUP);
  }
};

// A PciDevice with a plain PciConfiguration and no BAR behaviour of its own (host bridge, tests).
class SimplePciDevice : public PciDevice {
 public:
  SimplePciDevice(std::string name, const PciIds& ids) : name_(std::move(name)), config_(ids) {}
  std::string DebugName() const override { return name_; }
  uint32_t ReadConfigRegister(size_t reg) override { return config_.ReadRegister(reg); }
  void WriteConfigRegister(size_t reg, size_t offset, std::span<const uint8_t> data) override {
    config_.WriteRegister(reg, offset, data);
  }
  std::vector<BarInfo> Bars() override { return config_.bars(); }
  uint64_t BarAddress(int bar) override { return config_.BarAddress(bar); }
  uint16_t Command() override { return config_.command(); }
  base::Status SetBarAddress(int bar, uint64_t addr) override {
    return config_.SetBarAddress(bar, addr);
  }
  base::Status AssignIntx(uint32_t gsi) override {
    config_.SetInterrupt(static_cast<uint8_t>(gsi), 1);
    return base::Ok();
  }
  void ReadBar(int, uint64_t, std::span<uint8_t> data) override {
    for (auto& b : data) b = 0;
  }
  void WriteBar(int, uint64_t, std::span<const uint8_t>) override {}
  PciConfiguration& config() { return config_; }

 private:
  std::string name_;
  PciConfiguration config_;
};

}  // namespace crosvm::devices::pci
