// MSI-X (PCI Local Bus Spec 3.0, 6.8.2): the capability's message control, the vector table
// and the pending-bit array that live in a BAR, and delivery of each vector through an irqfd
// whose GSI is routed (through an MsiRouter, in the end the VM's GsiRouter) to the MSI message
// the guest programmed.
//
// Routes are installed when the guest programs the table (an entry written while unmasked,
// an entry unmasked, MSI-X enabled), never when a vector fires: KVM_SET_GSI_ROUTING replaces
// the whole table, and an interrupt must cost one eventfd write, whatever the guest writes
// into the table. Anything that writes a vector's irqfd directly (vhost, a sandboxed device)
// can rely on the route being current while the vector is unmasked.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/eventfd.h"
#include "base/rate_limited_log.h"
#include "devices/pci/msi_router.h"
#include "devices/pci/vm_control.h"

namespace crosvm::devices::pci {

inline constexpr uint16_t kMsixEnable = 1 << 15;
inline constexpr uint16_t kMsixFunctionMask = 1 << 14;
inline constexpr size_t kMsixEntrySize = 16;
inline constexpr uint32_t kMsixVectorMasked = 1;
// The body of the capability (after id and next): message control, table, PBA.
inline constexpr size_t kMsixCapBodySize = 10;

class MsixConfig {
 public:
  // `vm` and `router` may be null (unit tests): vectors then only write their eventfds.
  static base::Result<std::unique_ptr<MsixConfig>> Create(uint16_t num_vectors, VmControl* vm,
                                                          MsiRouter* router, std::string name);
  ~MsixConfig();
  MsixConfig(const MsixConfig&) = delete;
  MsixConfig& operator=(const MsixConfig&) = delete;

  uint16_t num_vectors() const { return static_cast<uint16_t>(vectors_.size()); }
  size_t table_size() const { return vectors_.size() * kMsixEntrySize; }
  size_t pba_size() const { return ((vectors_.size() + 63) / 64) * 8; }

  // The capability body for PciConfiguration::AddCapability, and its write mask (only the
  // enable and function-mask bits are writable).
  std::vector<uint8_t> CapabilityBody(uint8_t bar, uint32_t table_offset,
                                      uint32_t pba_offset) const;
  static std::vector<uint8_t> CapabilityWriteMask();
  // Called after the guest wrote the capability's message control register.
  void SetMessageControl(uint16_t control);
  bool enabled() const;

  // BAR accesses at offsets relative to the table / PBA. Table accesses must be 4 or 8
  // bytes, naturally aligned; others read zeros and are ignored. The PBA is read-only.
  void ReadTable(uint64_t offset, std::span<uint8_t> data);
  void WriteTable(uint64_t offset, std::span<const uint8_t> data);
  void ReadPba(uint64_t offset, std::span<uint8_t> data);

  // Raises `vector`: through its irqfd when MSI-X is enabled and the vector unmasked, else it
  // becomes pending. Returns false (and does nothing) when MSI-X is disabled or `vector` does
  // not exist: the caller then falls back to INTx.
  bool Signal(uint16_t vector);

  // The PCI command register's Bus Master Enable: an MSI is a memory write, so while it is
  // clear vectors only become pending; they are delivered once it is set again (and the
  // vector unmasked). True until the owner says otherwise.
  void SetBusMaster(bool enabled);

  // Every vector's eventfd (for a jailed device's kept fds).
  void AppendKeptFds(std::vector<int>& fds) const {
    for (const auto& v : vectors_) fds.push_back(v.evt.fd());
  }
  // For tests.
  int vector_fd(uint16_t vector) const { return vectors_[vector].evt.fd(); }
  bool pending(uint16_t vector) const;

 private:
  struct Vector {
    uint32_t addr_lo = 0, addr_hi = 0, data = 0;
    uint32_t control = kMsixVectorMasked;
    bool pending = false;
    uint32_t gsi = 0;
    base::EventFd evt;
    bool irqfd = false;
    bool routed = false;  // a route for (routed_addr, routed_data) is installed
    uint64_t routed_addr = 0;
    uint32_t routed_data = 0;
  };
  MsixConfig(VmControl* vm, MsiRouter* router, std::string name)
      : vm_(vm), router_(router), name_(std::move(name)) {}
  bool MaskedLocked(const Vector& v) const;
  // Installs the route for v's current message if it is not installed; false on failure.
  bool SyncRouteLocked(Vector& v);
  void FireLocked(Vector& v);
  void DeliverPendingLocked();

  VmControl* vm_;
  MsiRouter* router_;
  std::string name_;
  mutable std::mutex mu_;
  std::vector<Vector> vectors_;
  uint16_t control_ = 0;
  bool bus_master_ = true;
  bool logged_enable_ = false;
  base::RateLimitedLog log_;
};

}  // namespace crosvm::devices::pci
