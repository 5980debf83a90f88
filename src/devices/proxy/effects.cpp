#include "devices/proxy/effects.h"

#include <fcntl.h>

#include <string>

#include "base/logging.h"

namespace crosvm::devices::proxy {
namespace {

base::Result<base::ScopedFd> Dup(int fd) {
  int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (d < 0) return base::Error::FromErrno("dup of fd " + std::to_string(fd) + " for an effect");
  return base::ScopedFd(d);
}

}  // namespace

void EffectRecorder::Close() {
  std::lock_guard lock(mu_);
  closed_ = true;
  pending_.clear();
}

void EffectRecorder::Add(Effect e) {
  std::lock_guard lock(mu_);
  if (closed_) return;  // the device is being torn down; nobody applies effects any more
  if (!request_thread_ || *request_thread_ != std::this_thread::get_id()) {
    outside_.fetch_add(1);
    if (!warned_) {
      warned_ = true;
      CROSVM_LOG(WARNING) << "device process: " << EffectTypeName(e.type)
                          << " outside a request; it goes with the next reply (warned once)";
    }
  }
  pending_.push_back(std::move(e));
}

base::Status EffectRecorder::RecordIoeventfd(bool reg, int fd, uint64_t addr, uint32_t len,
                                             bool pio, std::optional<uint64_t> datamatch) {
  Effect e;
  e.type = reg ? EffectType::kRegisterIoeventfd : EffectType::kUnregisterIoeventfd;
  CROSVM_ASSIGN_OR_RETURN(e.fd, Dup(fd));
  e.key = fd;
  e.addr = addr;
  e.len = len;
  e.pio = pio;
  e.datamatch = datamatch;
  Add(std::move(e));
  return base::Ok();
}

base::Status EffectRecorder::RecordRegisterIrqfd(int fd, uint32_t gsi,
                                                 std::optional<int> resample_fd) {
  Effect e;
  e.type = EffectType::kRegisterIrqfd;
  CROSVM_ASSIGN_OR_RETURN(e.fd, Dup(fd));
  e.key = fd;
  e.gsi = gsi;
  if (resample_fd) {
    CROSVM_ASSIGN_OR_RETURN(auto r, Dup(*resample_fd));
    e.resample_fd = std::move(r);
    e.resample_key = *resample_fd;
  }
  Add(std::move(e));
  return base::Ok();
}

base::Status EffectRecorder::RecordUnregisterIrqfd(int fd, uint32_t gsi) {
  Effect e;
  e.type = EffectType::kUnregisterIrqfd;
  CROSVM_ASSIGN_OR_RETURN(e.fd, Dup(fd));
  e.key = fd;
  e.gsi = gsi;
  Add(std::move(e));
  return base::Ok();
}

void EffectRecorder::RecordSetMsiRoute(uint32_t gsi, uint64_t address, uint32_t data) {
  Effect e;
  e.type = EffectType::kSetMsiRoute;
  e.gsi = gsi;
  e.addr = address;
  e.data = data;
  Add(std::move(e));
}

void EffectRecorder::RecordRemoveRoute(uint32_t gsi) {
  Effect e;
  e.type = EffectType::kRemoveRoute;
  e.gsi = gsi;
  Add(std::move(e));
}

void EffectRecorder::BeginRequest() {
  std::lock_guard lock(mu_);
  request_thread_ = std::this_thread::get_id();
}

void EffectRecorder::EndRequest() {
  std::lock_guard lock(mu_);
  request_thread_.reset();
}

std::vector<Effect> EffectRecorder::Take() {
  std::lock_guard lock(mu_);
  return std::exchange(pending_, {});
}

base::Status DeviceVmControl::RegisterIoeventfd(int fd, uint64_t addr, uint32_t len, bool pio,
                                                std::optional<uint64_t> datamatch) {
  if (auto* r = recorder_.load()) return r->RecordIoeventfd(true, fd, addr, len, pio, datamatch);
  if (real_ == nullptr) return base::Ok();
  return real_->RegisterIoeventfd(fd, addr, len, pio, datamatch);
}

base::Status DeviceVmControl::UnregisterIoeventfd(int fd, uint64_t addr, uint32_t len, bool pio,
                                                  std::optional<uint64_t> datamatch) {
  if (auto* r = recorder_.load()) return r->RecordIoeventfd(false, fd, addr, len, pio, datamatch);
  if (real_ == nullptr) return base::Ok();
  return real_->UnregisterIoeventfd(fd, addr, len, pio, datamatch);
}

base::Status DeviceVmControl::RegisterIrqfd(int fd, uint32_t gsi, std::optional<int> resample_fd) {
  if (auto* r = recorder_.load()) return r->RecordRegisterIrqfd(fd, gsi, resample_fd);
  if (real_ == nullptr) return base::Ok();
  return real_->RegisterIrqfd(fd, gsi, resample_fd);
}

base::Status DeviceVmControl::UnregisterIrqfd(int fd, uint32_t gsi) {
  if (auto* r = recorder_.load()) return r->RecordUnregisterIrqfd(fd, gsi);
  if (real_ == nullptr) return base::Ok();
  return real_->UnregisterIrqfd(fd, gsi);
}

base::Status DeviceVmControl::SetGsiRouting(const std::vector<kvm_irq_routing_entry>& entries) {
  if (recorder_.load() != nullptr) {
    return base::Error(
        "a device process cannot install a GSI routing table (its copy is stale); route "
        "changes go through the MsiRouter");
  }
  if (real_ == nullptr) return base::Ok();
  return real_->SetGsiRouting(entries);
}

base::Result<uint32_t> DeviceMsiRouter::AllocateGsi() {
  if (recorder_.load() != nullptr) {
    return base::Error("GSIs are allocated before the device is jailed");
  }
  if (real_ == nullptr) return base::Error("no GSI router");
  return real_->AllocateGsi();
}

base::Status DeviceMsiRouter::SetMsiRoute(uint32_t gsi, uint64_t address, uint32_t data) {
  if (auto* r = recorder_.load()) {
    r->RecordSetMsiRoute(gsi, address, data);
    return base::Ok();
  }
  if (real_ == nullptr) return base::Ok();
  return real_->SetMsiRoute(gsi, address, data);
}

base::Status DeviceMsiRouter::RemoveRoute(uint32_t gsi) {
  if (auto* r = recorder_.load()) {
    r->RecordRemoveRoute(gsi);
    return base::Ok();
  }
  if (real_ == nullptr) return base::Ok();
  return real_->RemoveRoute(gsi);
}

base::Status EffectApplier::Apply(Effect e) {
  switch (e.type) {
    case EffectType::kRegisterIoeventfd: {
      if (vm_ == nullptr) return base::Ok();
      CROSVM_RETURN_IF_ERROR(vm_->RegisterIoeventfd(e.fd.get(), e.addr, e.len, e.pio, e.datamatch));
      ioeventfds_[{e.key, e.addr, e.len, e.pio}] = std::move(e.fd);
      return base::Ok();
    }
    case EffectType::kUnregisterIoeventfd: {
      if (vm_ == nullptr) return base::Ok();
      auto it = ioeventfds_.find({e.key, e.addr, e.len, e.pio});
      // Unknown to us (registered before the device was jailed): the received fd names the
      // same eventfd, which is what KVM matches on.
      int fd = it != ioeventfds_.end() ? it->second.get() : e.fd.get();
      auto s = vm_->UnregisterIoeventfd(fd, e.addr, e.len, e.pio, e.datamatch);
      if (it != ioeventfds_.end()) ioeventfds_.erase(it);
      return s;
    }
    case EffectType::kRegisterIrqfd: {
      if (vm_ == nullptr) return base::Ok();
      std::optional<int> resample;
      if (e.resample_fd) resample = e.resample_fd->get();
      CROSVM_RETURN_IF_ERROR(vm_->RegisterIrqfd(e.fd.get(), e.gsi, resample));
      irqfds_[{e.key, e.gsi}] = Irqfd{std::move(e.fd), std::move(e.resample_fd)};
      return base::Ok();
    }
    case EffectType::kUnregisterIrqfd: {
      if (vm_ == nullptr) return base::Ok();
      auto it = irqfds_.find({e.key, e.gsi});
      int fd = it != irqfds_.end() ? it->second.fd.get() : e.fd.get();
      auto s = vm_->UnregisterIrqfd(fd, e.gsi);
      if (it != irqfds_.end()) irqfds_.erase(it);
      return s;
    }
    case EffectType::kSetMsiRoute:
      if (router_ == nullptr) return base::Ok();
      return router_->SetMsiRoute(e.gsi, e.addr, e.data);
    case EffectType::kRemoveRoute:
      if (router_ == nullptr) return base::Ok();
      return router_->RemoveRoute(e.gsi);
  }
  return base::Error("unknown effect");
}

}  // namespace crosvm::devices::proxy
