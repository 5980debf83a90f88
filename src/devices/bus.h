// The I/O-port and MMIO buses that vCPU exits are dispatched on. A BusDevice answers reads and
// writes at an offset from the base of the range it was inserted at.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <span>
#include <string>

#include "base/error.h"
#include "base/rate_limited_log.h"

namespace crosvm::devices {

class BusDevice {
 public:
  virtual ~BusDevice() = default;
  virtual std::string DebugName() const = 0;
  // `data.size()` is the access width (1, 2, 4 or 8). Devices do their own locking: buses call
  // them from every vCPU thread.
  virtual void Read(uint64_t offset, std::span<uint8_t> data) = 0;
  virtual void Write(uint64_t offset, std::span<const uint8_t> data) = 0;
};

class Bus {
 public:
  explicit Bus(std::string name) : name_(std::move(name)) {}

  // Fails if [base, base + len) is empty, wraps, or overlaps a range already on the bus.
  base::Status Insert(std::shared_ptr<BusDevice> device, uint64_t base, uint64_t len);
  base::Status Remove(uint64_t base);

  // Dispatches an access. Returns false when no device covers [addr, addr + size): reads are
  // then answered with all-ones and the address is logged the first time it is seen.
  bool Read(uint64_t addr, std::span<uint8_t> data);
  bool Write(uint64_t addr, std::span<const uint8_t> data);

  // The device whose range contains addr, and its base (for tests and debugging).
  std::shared_ptr<BusDevice> DeviceAt(uint64_t addr, uint64_t* base = nullptr) const;

 private:
  struct Entry {
    uint64_t len;
    std::shared_ptr<BusDevice> device;
  };
  // Finds the entry covering the whole access; holds no lock (callers do).
  const Entry* Find(uint64_t addr, uint64_t size, uint64_t* base) const;
  void LogUnhandled(const char* what, uint64_t addr, size_t size);

  std::string name_;
  mutable std::shared_mutex mu_;
  std::map<uint64_t, Entry> entries_;  // keyed by base
  std::mutex logged_mu_;
  std::set<uint64_t> logged_;
  base::RateLimitedLog unhandled_log_;
};

}  // namespace crosvm::devices
