// Small formatting helpers for messages.
#pragma once

#include <cstdint>
#include <string>

namespace crosvm::base {

// "0x1f": addresses and register values in errors and logs.
std::string Hex(uint64_t value);

}  // namespace crosvm::base
