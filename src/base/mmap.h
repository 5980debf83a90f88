// MemoryMapping: an owned mmap(2) region, unmapped on destruction.
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/error.h"

namespace crosvm::base {

class MemoryMapping {
 public:
  // Maps `size` bytes of `fd` at `offset`, shared, with `prot` (PROT_READ|PROT_WRITE default).
  static Result<MemoryMapping> FromFd(int fd, size_t size, off_t offset = 0, int prot = 3);
  // Private anonymous memory.
  static Result<MemoryMapping> Anonymous(size_t size);

  MemoryMapping() = default;
  MemoryMapping(MemoryMapping&& other) noexcept;
  MemoryMapping& operator=(MemoryMapping&& other) noexcept;
  MemoryMapping(const MemoryMapping&) = delete;
  MemoryMapping& operator=(const MemoryMapping&) = delete;
  ~MemoryMapping();

  uint8_t* data() const { return addr_; }
  size_t size() const { return size_; }

 private:
  MemoryMapping(uint8_t* addr, size_t size) : addr_(addr), size_(size) {}
  uint8_t* addr_ = nullptr;
  size_t size_ = 0;
};

}  // namespace crosvm::base
