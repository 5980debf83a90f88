#include "arch/x86_64/layout.h"

namespace crosvm::arch {

std::vector<memory::MemoryRange> MemoryRanges(uint64_t mem_bytes) {
  if (mem_bytes <= kMmioGapStart) return {{0, mem_bytes}};
  return {{0, kMmioGapStart}, {kMmioGapEnd, mem_bytes - kMmioGapStart}};
}

}  // namespace crosvm::arch
