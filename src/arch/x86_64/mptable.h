// The Intel MultiProcessor Specification 1.4 table: how the guest learns its CPUs, its IOAPIC
// and how ISA (and later PCI) interrupts are wired, without ACPI.
#pragma once

#include <cstdint>
#include <vector>

#include "base/error.h"
#include "memory/guest_memory.h"

namespace crosvm::arch {

struct MpPciIrq {
  uint8_t device;  // PCI device number on bus 0
  uint8_t pin;     // 0 = INTA# .. 3 = INTD#
  uint8_t ioapic_pin;
};

// Builds the floating pointer and configuration table as they appear at `addr`.
std::vector<uint8_t> BuildMpTable(uint64_t addr, uint32_t cpu_count,
                                  const std::vector<MpPciIrq>& pci_irqs = {});
base::Status WriteMpTable(memory::GuestMemory& mem, uint32_t cpu_count,
                          const std::vector<MpPciIrq>& pci_irqs = {});

// Sum of the bytes, mod 256 (MP and SMBIOS structures must sum to zero).
uint8_t ByteSum(const uint8_t* data, size_t len);

}  // namespace crosvm::arch
