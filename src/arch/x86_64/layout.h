// The x86_64 guest physical memory map crosvm builds. Every fixed address lives here.
#pragma once

#include <cstdint>
#include <vector>

#include "memory/guest_memory.h"

namespace crosvm::arch {

inline constexpr uint64_t kGdtAddr = 0x500;
inline constexpr uint64_t kGdtMaxSize = 0x40;  // room for 8 descriptors
inline constexpr uint64_t kIdtAddr = kGdtAddr + kGdtMaxSize;
inline constexpr uint64_t kZeroPageAddr = 0x7000;
inline constexpr uint64_t kBootStackTop = 0x8ff0;
inline constexpr uint64_t kPml4Addr = 0x9000;
inline constexpr uint64_t kPdptAddr = 0xa000;
inline constexpr uint64_t kPdAddr = 0xb000;  // four page directories: identity map of 4 GiB
inline constexpr uint64_t kCmdlineAddr = 0x20000;
inline constexpr uint64_t kCmdlineMaxSize = 2048;  // COMMAND_LINE_SIZE of x86 Linux
inline constexpr uint64_t kEbdaStart = 0x9fc00;    // RAM below 640 KiB stops here
// ACPI tables (RSDP first) in 0xe0000-0xeffff: outside the e820 RAM map like the rest of the
// BIOS area, and inside the 0xe0000-0xfffff range Linux scans for the RSDP (crosvm also hands
// its address over in the zero page).
inline constexpr uint64_t kAcpiTablesAddr = 0xe0000;
inline constexpr uint64_t kAcpiTablesEnd = 0xf0000;
// The ACPI power-management registers (PM1a event and control blocks, PM timer) on I/O ports:
// below the PCI I/O window (0x1000-0xffff), clear of every ISA device.
inline constexpr uint16_t kAcpiPmIoBase = 0x600;
// The guest scans 0xf0000-0xfffff for the SMBIOS and MP floating pointer structures; the area
// is outside the e820 RAM map, so the guest never reuses it.
inline constexpr uint64_t kBiosStart = 0xf0000;
inline constexpr uint64_t kSmbiosAddr = kBiosStart;
inline constexpr uint64_t kMpTableAddr = kBiosStart + 0x1000;
inline constexpr uint64_t kBiosEnd = 0x100000;
inline constexpr uint64_t kHighMemStart = 0x100000;    // 1 MiB: where bzImage kernels load
inline constexpr uint64_t kMmioGapStart = 0xd0000000;  // RAM stops here below 4 GiB ...
inline constexpr uint64_t kMmioGapEnd = 0x100000000;   // ... and resumes at 4 GiB
inline constexpr uint64_t kIoapicAddr = 0xfec00000;
inline constexpr uint64_t kLapicAddr = 0xfee00000;
inline constexpr uint64_t kIdentityMapAddr = 0xfffbc000;  // KVM's private pages (VMX only)
inline constexpr uint64_t kTssAddr = 0xfffbd000;

// RAM ranges for a guest of `mem_bytes`: below the MMIO gap, then above 4 GiB.
std::vector<memory::MemoryRange> MemoryRanges(uint64_t mem_bytes);

}  // namespace crosvm::arch
