#include "devices/pci/address_allocator.h"

#include <algorithm>
#include <bit>

#include "arch/x86_64/layout.h"
#include "base/strings.h"

namespace crosvm::devices::pci {
namespace {

using base::Hex;

}  // namespace

AddressAllocator::AddressAllocator(std::string name, uint64_t base, uint64_t size)
    : name_(std::move(name)), base_(base), end_(base + size < base ? UINT64_MAX : base + size) {
  if (end_ > base_) free_[base_] = end_;
}

void AddressAllocator::TakeOut(uint64_t start, uint64_t end) {
  // Split every free range that intersects [start, end).
  auto it = free_.upper_bound(start);
  if (it != free_.begin()) --it;
  while (it != free_.end() && it->first < end) {
    uint64_t fs = it->first, fe = it->second;
    if (fe <= start) {
      ++it;
      continue;
    }
    it = free_.erase(it);
    if (fs < start) free_[fs] = start;
    if (fe > end) free_[end] = fe;
  }
}

base::Status AddressAllocator::Reserve(uint64_t base, uint64_t size) {
  if (size == 0 || base + size < base) {
    return base::Error(name_ + ": bad reservation " + Hex(base) + "+" + Hex(size));
  }
  uint64_t start = std::max(base, base_);
  uint64_t end = std::min(base + size, end_);
  if (start < end) TakeOut(start, end);
  return base::Ok();
}

base::Result<uint64_t> AddressAllocator::Allocate(uint64_t size, uint64_t align) {
  if (size == 0) return base::Error(name_ + ": zero-sized allocation");
  if (align == 0) align = 1;
  if (!std::has_single_bit(align)) {
    return base::Error(name_ + ": alignment " + Hex(align) + " is not a power of two");
  }
  for (const auto& [fs, fe] : free_) {
    uint64_t start = (fs + align - 1) & ~(align - 1);
    if (start < fs) continue;  // wrapped
    if (start >= fe || fe - start < size) continue;
    TakeOut(start, start + size);
    allocated_[start] = start + size;
    return start;
  }
  return base::Error(name_ + ": no room for " + Hex(size) + " bytes aligned to " + Hex(align));
}

base::Status AddressAllocator::Release(uint64_t addr) {
  auto it = allocated_.find(addr);
  if (it == allocated_.end()) return base::Error(name_ + ": nothing allocated at " + Hex(addr));
  uint64_t start = it->first, end = it->second;
  allocated_.erase(it);
  // Merge with the neighbours.
  auto next = free_.lower_bound(start);
  if (next != free_.end() && next->first == end) {
    end = next->second;
    free_.erase(next);
  }
  auto prev = free_.lower_bound(start);
  if (prev != free_.begin()) {
    --prev;
    if (prev->second == start) {
      start = prev->first;
      free_.erase(prev);
    }
  }
  free_[start] = end;
  return base::Ok();
}

base::Result<SystemAllocator> CreateX86SystemAllocator(uint64_t ram_end) {
  constexpr uint64_t kIoStart = 0x1000, kIoEnd = 0x10000;
  constexpr uint64_t kMmio32End = arch::kIoapicAddr;
  constexpr uint64_t kGiB = uint64_t{1} << 30;
  uint64_t high = std::max(ram_end, arch::kMmioGapEnd);
  high = (high + kGiB - 1) & ~(kGiB - 1);
  SystemAllocator a{
      AddressAllocator("PCI I/O window", kIoStart, kIoEnd - kIoStart),
      AddressAllocator("PCI 32-bit MMIO window", arch::kMmioGapStart,
                       kMmio32End - arch::kMmioGapStart),
      AddressAllocator("PCI 64-bit MMIO window", high, 64 * kGiB),
  };
  // The test guests' no-op exit addresses (guest/testguests/README.md) must stay unclaimed.
  CROSVM_RETURN_IF_ERROR(a.io.Reserve(0x5e0, 1));
  CROSVM_RETURN_IF_ERROR(a.mmio32.Reserve(0xd8000000, 0x1000000));
  return a;
}

}  // namespace crosvm::devices::pci
