// What the guest finds at entry: the zero page (boot_params) with the e820 map, command line
// and initrd; the identity page tables and GDT of 64-bit long mode; and each vCPU's registers,
// CPUID, MSRs, FPU and LAPIC.
#pragma once

#include <asm/bootparam.h>
#include <linux/kvm.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/error.h"
#include "kvm/kvm.h"
#include "memory/guest_memory.h"

namespace crosvm::arch {

struct E820Entry {
  uint64_t addr;
  uint64_t size;
  uint32_t type;  // E820_TYPE_RAM = 1, E820_TYPE_RESERVED = 2
};

// The e820 map for guest memory `mem`: RAM below the EBDA, RAM from 1 MiB to the gap, RAM
// above 4 GiB.
std::vector<E820Entry> BuildE820(const memory::GuestMemory& mem);

struct InitrdPlacement {
  uint64_t addr;
  uint64_t size;
};

// Fills in the zero page: `setup_header` is the bzImage's own header when booting a bzImage
// (it is copied in first), else the loader's defaults are used. acpi_rsdp_addr is always
// kAcpiTablesAddr (WriteAcpiTables puts the RSDP there).
base::Status WriteZeroPage(memory::GuestMemory& mem, const std::optional<setup_header>& hdr,
                           uint64_t cmdline_addr, uint64_t cmdline_size,
                           std::optional<InitrdPlacement> initrd);

// Writes the GDT at kGdtAddr, an empty IDT, and page tables identity-mapping the first 4 GiB.
base::Status WriteLongModeTables(memory::GuestMemory& mem);

// Boot CPU registers for a 64-bit entry at `entry` with RSI = zero page.
base::Status SetupLongModeRegisters(kvm::Vcpu& vcpu, uint64_t entry);

// Host-specific CPUID changes.
struct CpuidQuirks {
  // Hide KVM_FEATURE_PV_SEND_IPI. Under the nested kvm_pvm module, whose instruction emulator
  // runs ordinary guests, an IPI sent with the KVM_HC_SEND_IPI hypercall never arrives and an
  // SMP guest hangs bringing up its second CPU (QEMU hangs the same way); IPIs through the
  // emulated LAPIC work.
  bool hide_pv_send_ipi = false;
};

// Per-vCPU state every vCPU needs before its first KVM_RUN.
base::Status SetupCpuid(kvm::Vcpu& vcpu, std::vector<kvm_cpuid_entry2> supported,
                        uint32_t cpu_count, CpuidQuirks quirks = {});
std::vector<kvm_cpuid_entry2> AdjustCpuid(std::vector<kvm_cpuid_entry2> entries, uint32_t apic_id,
                                          uint32_t cpu_count, CpuidQuirks quirks = {});
// Sets the boot MSR values this KVM supports; a value KVM refuses is skipped (debug log).
base::Status SetupMsrs(kvm::Vcpu& vcpu, const std::vector<uint32_t>& supported_msrs);
// Sets `msrs` through `set_prefix` (KVM_SET_MSRS semantics: sets in order, stops at the first
// refused entry, returns how many it set), skipping each refused entry and going on with the
// rest. Returns the skipped entries.
base::Result<std::vector<kvm_msr_entry>> SetMsrsSkippingRefused(
    std::span<const kvm_msr_entry> msrs,
    const std::function<base::Result<size_t>(std::span<const kvm_msr_entry>)>& set_prefix);
base::Status SetupFpu(kvm::Vcpu& vcpu);
// LINT0 as ExtINT (the PIC), LINT1 as NMI, as a BIOS would leave them.
base::Status SetupLapic(kvm::Vcpu& vcpu);

// The GDT entries crosvm uses: null, null, code (0x10), data (0x18), TSS (0x20).
uint64_t GdtEntry(uint16_t flags, uint32_t base, uint32_t limit);
kvm_segment SegmentFromGdt(uint64_t entry, uint16_t selector);

}  // namespace crosvm::arch
