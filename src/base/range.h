// Overflow-safe bounds checks for offsets and lengths that come from guests and image files.
#pragma once

#include <cstdint>

namespace crosvm::base {

// True when [offset, offset + length) lies inside [0, size), without overflowing.
inline bool RangeFits(uint64_t offset, uint64_t length, uint64_t size) {
  return length <= size && offset <= size - length;
}

}  // namespace crosvm::base
