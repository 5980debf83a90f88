#include "devices/bus.h"

#include "base/rate_limited_log.h"

#include <cstring>

#include "base/logging.h"
#include "base/strings.h"

namespace crosvm::devices {
namespace {

using base::Hex;

}  // namespace

base::Status Bus::Insert(std::shared_ptr<BusDevice> device, uint64_t base, uint64_t len) {
  if (len == 0 || base + len < base) {
    return base::Error(name_ + " bus: bad range " + Hex(base) + "+" + Hex(len) + " for " +
                       device->DebugName());
  }
  std::unique_lock lock(mu_);
  // The first entry starting at or after base must start at or after our end, and the entry
  // before it must end at or before our base.
  auto next = entries_.lower_bound(base);
  if (next != entries_.end() && next->first < base + len) {
    return base::Error(name_ + " bus: " + device->DebugName() + " at " + Hex(base) + "+" +
                       Hex(len) + " overlaps " + next->second.device->DebugName() + " at " +
                       Hex(next->first));
  }
  if (next != entries_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second.len > base) {
      return base::Error(name_ + " bus: " + device->DebugName() + " at " + Hex(base) + "+" +
                         Hex(len) + " overlaps " + prev->second.device->DebugName() + " at " +
                         Hex(prev->first));
    }
  }
  entries_.emplace(base, Entry{len, std::move(device)});
  return base::Ok();
}

base::Status Bus::Remove(uint64_t base) {
  std::unique_lock lock(mu_);
  if (entries_.erase(base) == 0) {
    return base::Error(name_ + " bus: nothing inserted at " + Hex(base));
  }
  return base::Ok();
}

const Bus::Entry* Bus::Find(uint64_t addr, uint64_t size, uint64_t* base) const {
  auto it = entries_.upper_bound(addr);
  if (it == entries_.begin()) return nullptr;
  --it;
  uint64_t off = addr - it->first;
  if (off >= it->second.len || size > it->second.len - off) return nullptr;
  if (base != nullptr) *base = it->first;
  return &it->second;
}

std::shared_ptr<BusDevice> Bus::DeviceAt(uint64_t addr, uint64_t* base) const {
  std::shared_lock lock(mu_);
  const Entry* e = Find(addr, 1, base);
  return e ? e->device : nullptr;
}

bool Bus::Read(uint64_t addr, std::span<uint8_t> data) {
  std::shared_ptr<BusDevice> device;
  uint64_t base = 0;
  {
    std::shared_lock lock(mu_);
    const Entry* e = Find(addr, data.size(), &base);
    if (e != nullptr) device = e->device;
  }
  if (!device) {
    std::memset(data.data(), 0xff, data.size());
    LogUnhandled("read", addr, data.size());
    return false;
  }
  device->Read(addr - base, data);
  return true;
}

bool Bus::Write(uint64_t addr, std::span<const uint8_t> data) {
  std::shared_ptr<BusDevice> device;
  uint64_t base = 0;
  {
    std::shared_lock lock(mu_);
    const Entry* e = Find(addr, data.size(), &base);
    if (e != nullptr) device = e->device;
  }
  if (!device) {
    LogUnhandled("write", addr, data.size());
    return false;
  }
  device->Write(addr - base, data);
  return true;
}

void Bus::LogUnhandled(const char* what, uint64_t addr, size_t size) {
  {
    std::lock_guard lock(logged_mu_);
    if (logged_.size() > 4096 || !logged_.insert(addr).second) return;
  }
  // Once per address, and a guest sweeping thousands of addresses gets a few lines, not one
  // each.
  CROSVM_LOG_RATE_LIMITED(unhandled_log_, INFO)
      << name_ << ": unhandled " << what << " of " << size << " bytes at " << Hex(addr)
      << " (reads return all-ones; logged once per address)";
}

}  // namespace crosvm::devices
