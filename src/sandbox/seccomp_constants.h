// Named constants that seccomp policy files may use as argument values (O_RDWR, PROT_READ, ...).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace crosvm::sandbox {

// The value of a named constant, taken from the system headers; nullopt when the name is not in
// the table.
std::optional<uint64_t> LookupSeccompConstant(std::string_view name);

}  // namespace crosvm::sandbox
