#include "base/strings.h"

#include <cinttypes>
#include <cstdio>

namespace crosvm::base {

std::string Hex(uint64_t value) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "0x%" PRIx64, value);
  return buf;
}

}  // namespace crosvm::base
