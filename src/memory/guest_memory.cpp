#include "memory/guest_memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/strings.h"

namespace crosvm::memory {
namespace {

constexpr uint64_t kPageSize = 4096;

using base::Hex;

}  // namespace

base::Result<GuestMemory> GuestMemory::Create(const std::vector<MemoryRange>& ranges) {
  if (ranges.empty()) return base::Error("guest memory: no memory ranges");
  uint64_t total = 0;
  uint64_t prev_end = 0;
  for (size_t i = 0; i < ranges.size(); ++i) {
    const MemoryRange& r = ranges[i];
    if (r.size == 0 || r.guest_addr % kPageSize || r.size % kPageSize) {
      return base::Error("guest memory: range " + Hex(r.guest_addr) + "+" + Hex(r.size) +
                         " is empty or not page aligned");
    }
    if (r.guest_addr + r.size < r.guest_addr || (i > 0 && r.guest_addr < prev_end)) {
      return base::Error("guest memory: range " + Hex(r.guest_addr) + " overlaps or wraps");
    }
    prev_end = r.guest_addr + r.size;
    total += r.size;
  }

  int fd = memfd_create("crosvm_guest", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return base::Error::FromErrno("memfd_create for guest memory");
  base::ScopedFd memfd(fd);
  if (ftruncate(fd, static_cast<off_t>(total)) < 0) {
    return base::Error::FromErrno("ftruncate guest memory to " + std::to_string(total) + " bytes");
  }
  // The size is fixed from now on: a process sharing the memfd can neither shrink it (which
  // would SIGBUS us) nor grow it.
  if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
    return base::Error::FromErrno("sealing guest memory");
  }

  std::vector<MemoryRegion> regions;
  uint64_t offset = 0;
  for (const MemoryRange& r : ranges) {
    CROSVM_ASSIGN_OR_RETURN(auto mapping,
                            base::MemoryMapping::FromFd(fd, r.size, static_cast<off_t>(offset)));
    regions.push_back({r.guest_addr, r.size, offset, std::move(mapping)});
    offset += r.size;
  }
  return GuestMemory(std::move(memfd), std::move(regions));
}

uint64_t GuestMemory::total_size() const {
  uint64_t total = 0;
  for (const auto& r : regions_) total += r.size;
  return total;
}

const MemoryRegion* GuestMemory::FindRegion(uint64_t gpa) const {
  for (const auto& r : regions_) {
    if (gpa >= r.guest_addr && gpa < r.end()) return &r;
  }
  return nullptr;
}

uint8_t* GuestMemory::HostAddress(uint64_t gpa, uint64_t len) const {
  const MemoryRegion* r = FindRegion(gpa);
  if (r == nullptr) return nullptr;
  uint64_t off = gpa - r->guest_addr;
  if (len > r->size - off) return nullptr;
  return r->mapping.data() + off;
}

base::Status GuestMemory::Read(uint64_t gpa, std::span<uint8_t> out) const {
  uint8_t* src = HostAddress(gpa, out.size());
  if (src == nullptr) {
    return base::Error("guest memory read of " + std::to_string(out.size()) + " bytes at " +
                       Hex(gpa) + " is outside guest RAM");
  }
  std::memcpy(out.data(), src, out.size());
  return base::Ok();
}

base::Status GuestMemory::Write(uint64_t gpa, std::span<const uint8_t> data) {
  uint8_t* dst = HostAddress(gpa, data.size());
  if (dst == nullptr) {
    return base::Error("guest memory write of " + std::to_string(data.size()) + " bytes at " +
                       Hex(gpa) + " is outside guest RAM");
  }
  std::memcpy(dst, data.data(), data.size());
  return base::Ok();
}

}  // namespace crosvm::memory
