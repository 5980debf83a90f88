// SMBIOS 3.0 tables (BIOS and system information) so the guest's DMI scan identifies crosvm.
#pragma once

#include <cstdint>
#include <vector>

#include "base/error.h"
#include "memory/guest_memory.h"

namespace crosvm::arch {

// The 64-bit entry point followed by the structure table, as they appear at `addr`.
std::vector<uint8_t> BuildSmbios(uint64_t addr);
base::Status WriteSmbios(memory::GuestMemory& mem);

}  // namespace crosvm::arch
