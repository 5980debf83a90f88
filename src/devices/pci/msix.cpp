#include "devices/pci/msix.h"

#include <sys/eventfd.h>

#include <cstring>

#include "base/logging.h"

namespace crosvm::devices::pci {

base::Result<std::unique_ptr<MsixConfig>> MsixConfig::Create(uint16_t num_vectors, VmControl* vm,
                                                             MsiRouter* router, std::string name) {
  if (num_vectors == 0 || num_vectors > 2048) {
    return base::Error(name + ": MSI-X needs 1..2048 vectors");
  }
  std::unique_ptr<MsixConfig> m(new MsixConfig(vm, router, std::move(name)));
  m->vectors_.reserve(num_vectors);
  for (uint16_t i = 0; i < num_vectors; ++i) {
    CROSVM_ASSIGN_OR_RETURN(auto evt, base::EventFd::Create(EFD_NONBLOCK));
    Vector v{.evt = std::move(evt)};
    if (router != nullptr) {
      CROSVM_ASSIGN_OR_RETURN(v.gsi, router->AllocateGsi());
    }
    m->vectors_.push_back(std::move(v));
  }
  if (vm != nullptr && router != nullptr) {
    for (auto& v : m->vectors_) {
      CROSVM_RETURN_IF_ERROR(vm->RegisterIrqfd(v.evt.fd(), v.gsi, std::nullopt));
      v.irqfd = true;
    }
  }
  return m;
}

MsixConfig::~MsixConfig() {
  for (auto& v : vectors_) {
    if (v.irqfd) (void)vm_->UnregisterIrqfd(v.evt.fd(), v.gsi);
    if (v.routed && router_ != nullptr) (void)router_->RemoveRoute(v.gsi);
  }
}

std::vector<uint8_t> MsixConfig::CapabilityBody(uint8_t bar, uint32_t table_offset,
                                                uint32_t pba_offset) const {
  std::vector<uint8_t> body(kMsixCapBodySize, 0);
  uint16_t control = static_cast<uint16_t>(vectors_.size() - 1);
  uint32_t table = table_offset | (bar & 7);
  uint32_t pba = pba_offset | (bar & 7);
  std::memcpy(&body[0], &control, 2);
  std::memcpy(&body[2], &table, 4);
  std::memcpy(&body[6], &pba, 4);
  return body;
}

std::vector<uint8_t> MsixConfig::CapabilityWriteMask() {
  std::vector<uint8_t> mask(kMsixCapBodySize, 0);
  mask[1] = static_cast<uint8_t>((kMsixEnable | kMsixFunctionMask) >> 8);
  return mask;
}

bool MsixConfig::enabled() const {
  std::lock_guard lock(mu_);
  return control_ & kMsixEnable;
}

bool MsixConfig::pending(uint16_t vector) const {
  std::lock_guard lock(mu_);
  return vector < vectors_.size() && vectors_[vector].pending;
}

bool MsixConfig::MaskedLocked(const Vector& v) const {
  return (control_ & kMsixFunctionMask) || (v.control & kMsixVectorMasked);
}

bool MsixConfig::SyncRouteLocked(Vector& v) {
  if (router_ == nullptr) return true;
  uint64_t addr = (static_cast<uint64_t>(v.addr_hi) << 32) | v.addr_lo;
  if (v.routed && v.routed_addr == addr && v.routed_data == v.data) return true;
  auto s = router_->SetMsiRoute(v.gsi, addr, v.data);
  if (!s.ok()) {
    v.routed = false;
    log_.Log(base::LogLevel::kError, __FILE__, __LINE__,
             name_ + ": cannot route MSI-X vector: " + s.error().ToString());
    return false;
  }
  v.routed = true;
  v.routed_addr = addr;
  v.routed_data = v.data;
  return true;
}

void MsixConfig::FireLocked(Vector& v) {
  // The route was installed when the guest programmed the entry; only a failed (or never
  // attempted) installation is retried here.
  uint64_t addr = (static_cast<uint64_t>(v.addr_hi) << 32) | v.addr_lo;
  if (router_ != nullptr && (!v.routed || v.routed_addr != addr || v.routed_data != v.data) &&
      !SyncRouteLocked(v)) {
    return;
  }
  (void)v.evt.Write();
}

void MsixConfig::DeliverPendingLocked() {
  if (!(control_ & kMsixEnable)) return;
  for (auto& v : vectors_) {
    if (!MaskedLocked(v)) (void)SyncRouteLocked(v);
    if (v.pending && bus_master_ && !MaskedLocked(v)) {
      v.pending = false;
      FireLocked(v);
    }
  }
}

void MsixConfig::SetMessageControl(uint16_t control) {
  std::lock_guard lock(mu_);
  if ((control & kMsixEnable) && !(control_ & kMsixEnable) && !logged_enable_) {
    // Logged once per device: the guest may toggle the bit as often as it likes.
    logged_enable_ = true;
    CROSVM_LOG(INFO) << name_ << ": the driver enabled MSI-X (" << vectors_.size() << " vectors)";
  }
  control_ = control & (kMsixEnable | kMsixFunctionMask);
  DeliverPendingLocked();
}

void MsixConfig::ReadTable(uint64_t offset, std::span<uint8_t> data) {
  std::memset(data.data(), 0, data.size());
  if ((data.size() != 4 && data.size() != 8) || offset % data.size() != 0 ||
      offset >= table_size() || data.size() > table_size() - offset) {
    return;
  }
  std::lock_guard lock(mu_);
  for (size_t done = 0; done < data.size(); done += 4) {
    uint64_t off = offset + done;
    const Vector& v = vectors_[off / kMsixEntrySize];
    uint32_t value = 0;
    switch (off % kMsixEntrySize) {
      case 0:
        value = v.addr_lo;
        break;
      case 4:
        value = v.addr_hi;
        break;
      case 8:
        value = v.data;
        break;
      case 12:
        value = v.control;
        break;
    }
    std::memcpy(data.data() + done, &value, 4);
  }
}

void MsixConfig::WriteTable(uint64_t offset, std::span<const uint8_t> data) {
  if ((data.size() != 4 && data.size() != 8) || offset % data.size() != 0 ||
      offset >= table_size() || data.size() > table_size() - offset) {
    return;
  }
  std::lock_guard lock(mu_);
  for (size_t done = 0; done < data.size(); done += 4) {
    uint64_t off = offset + done;
    Vector& v = vectors_[off / kMsixEntrySize];
    uint32_t value;
    std::memcpy(&value, data.data() + done, 4);
    switch (off % kMsixEntrySize) {
      case 0:
        v.addr_lo = value & ~uint32_t{3};  // the message address is dword aligned
        break;
      case 4:
        v.addr_hi = value;
        break;
      case 8:
        v.data = value;
        break;
      case 12: {
        bool was_masked = v.control & kMsixVectorMasked;
        v.control = value & kMsixVectorMasked;  // the other bits are reserved
        if (was_masked && !(v.control & kMsixVectorMasked) && (control_ & kMsixEnable) &&
            !MaskedLocked(v)) {
          (void)SyncRouteLocked(v);
          if (v.pending && bus_master_) {
            v.pending = false;
            FireLocked(v);
          }
        }
        break;
      }
    }
  }
  // An entry rewritten while live (unmasked, MSI-X on): its route follows now, once per table
  // write, rather than at its next interrupt.
  Vector& v = vectors_[offset / kMsixEntrySize];
  if ((control_ & kMsixEnable) && !MaskedLocked(v)) (void)SyncRouteLocked(v);
}

void MsixConfig::ReadPba(uint64_t offset, std::span<uint8_t> data) {
  std::memset(data.data(), 0, data.size());
  if ((data.size() != 4 && data.size() != 8) || offset % data.size() != 0 || offset >= pba_size() ||
      data.size() > pba_size() - offset) {
    return;
  }
  std::lock_guard lock(mu_);
  for (size_t i = 0; i < data.size() * 8; ++i) {
    size_t vector = offset * 8 + i;
    if (vector < vectors_.size() && vectors_[vector].pending) data[i / 8] |= 1 << (i % 8);
  }
}

void MsixConfig::SetBusMaster(bool enabled) {
  std::lock_guard lock(mu_);
  bool was = bus_master_;
  bus_master_ = enabled;
  if (enabled && !was) DeliverPendingLocked();
}

bool MsixConfig::Signal(uint16_t vector) {
  std::lock_guard lock(mu_);
  if (!(control_ & kMsixEnable) || vector >= vectors_.size()) return false;
  Vector& v = vectors_[vector];
  if (MaskedLocked(v) || !bus_master_) {
    v.pending = true;
  } else {
    FireLocked(v);
  }
  return true;
}

}  // namespace crosvm::devices::pci
