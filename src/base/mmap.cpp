#include "base/mmap.h"

#include <sys/mman.h>

#include <utility>

namespace crosvm::base {

Result<MemoryMapping> MemoryMapping::FromFd(int fd, size_t size, off_t offset, int prot) {
  void* addr = mmap(nullptr, size, prot, MAP_SHARED | MAP_NORESERVE, fd, offset);
  if (addr == MAP_FAILED) return Error::FromErrno("mmap " + std::to_string(size) + " bytes");
  return MemoryMapping(static_cast<uint8_t*>(addr), size);
}

Result<MemoryMapping> MemoryMapping::Anonymous(size_t size) {
  void* addr = mmap(nullptr, size, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (addr == MAP_FAILED) return Error::FromErrno("mmap anonymous " + std::to_string(size));
  return MemoryMapping(static_cast<uint8_t*>(addr), size);
}

MemoryMapping::MemoryMapping(MemoryMapping&& other) noexcept
    : addr_(std::exchange(other.addr_, nullptr)), size_(std::exchange(other.size_, 0)) {}

MemoryMapping& MemoryMapping::operator=(MemoryMapping&& other) noexcept {
  if (this != &other) {
    if (addr_ != nullptr) munmap(addr_, size_);
    addr_ = std::exchange(other.addr_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

MemoryMapping::~MemoryMapping() {
  if (addr_ != nullptr) munmap(addr_, size_);
}

}  // namespace crosvm::base
