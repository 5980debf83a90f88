// GuestMemory: the guest's physical RAM as memfd-backed regions (so jailed device processes can
// map the same pages later), with bounds-checked access by guest physical address (GPA).
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "base/mmap.h"

namespace crosvm::memory {

struct MemoryRange {
  uint64_t guest_addr;
  uint64_t size;
};

struct MemoryRegion {
  uint64_t guest_addr;
  uint64_t size;
  uint64_t memfd_offset;  // where this region's bytes live in the backing memfd
  base::MemoryMapping mapping;

  uint64_t end() const { return guest_addr + size; }
};

class GuestMemory {
 public:
  // Ranges must be page aligned, non-empty, sorted and non-overlapping.
  static base::Result<GuestMemory> Create(const std::vector<MemoryRange>& ranges);

  GuestMemory(GuestMemory&&) = default;
  GuestMemory& operator=(GuestMemory&&) = default;

  int memfd() const { return memfd_.get(); }
  const std::vector<MemoryRegion>& regions() const { return regions_; }
  uint64_t total_size() const;
  // One past the highest guest address backed by RAM.
  uint64_t end_addr() const { return regions_.empty() ? 0 : regions_.back().end(); }

  // True when [gpa, gpa + len) lies entirely in one region (len 0 counts if gpa is inside).
  bool IsValidRange(uint64_t gpa, uint64_t len) const { return HostAddress(gpa, len) != nullptr; }
  // The host address of [gpa, gpa + len) if it lies in one region, else nullptr.
  uint8_t* HostAddress(uint64_t gpa, uint64_t len) const;

  base::Status Read(uint64_t gpa, std::span<uint8_t> out) const;
  base::Status Write(uint64_t gpa, std::span<const uint8_t> data);

  template <typename T>
  base::Result<T> ReadObj(uint64_t gpa) const {
    static_assert(std::is_trivially_copyable_v<T>);
    T value;
    CROSVM_RETURN_IF_ERROR(Read(gpa, {reinterpret_cast<uint8_t*>(&value), sizeof(T)}));
    return value;
  }
  template <typename T>
  base::Status WriteObj(uint64_t gpa, const T& value) {
    static_assert(std::is_trivially_copyable_v<T>);
    return Write(gpa, {reinterpret_cast<const uint8_t*>(&value), sizeof(T)});
  }

 private:
  GuestMemory(base::ScopedFd memfd, std::vector<MemoryRegion> regions)
      : memfd_(std::move(memfd)), regions_(std::move(regions)) {}
  const MemoryRegion* FindRegion(uint64_t gpa) const;

  base::ScopedFd memfd_;
  std::vector<MemoryRegion> regions_;
};

}  // namespace crosvm::memory
