// ACPI 6.x tables for the guest (RSDP, XSDT, FACS, FADT, MADT, DSDT) and the small AML builder
// the DSDT is written with. With these a guest finds its CPUs, its IOAPIC, its PCI root bridge
// and, above all, the \_S5 sleep state: a power-off becomes a write to the FADT's PM1a control
// block, a port exit crosvm sees on every host (a HLT stays inside KVM's in-kernel irqchip).
//
// The FADT describes a legacy (not hardware-reduced) ACPI platform: PM1a event and control
// blocks and a PM timer on I/O ports, SCI on IRQ 9. Hardware-reduced ACPI would make x86 Linux
// drop the 8259 PIC and skip the PIT (acpi_generic_reduced_hw_init). Without a legacy PIC Linux
// maps no ISA IRQ by itself, so COM1-COM4 and the RTC would have to be described as DSDT devices
// with _CRS and bound through PNP drivers, and the boot on the project's emulating kvm_pvm host
// depends on the PIT path it uses today (timer check, calibration). The legacy form keeps every
// ISA device and the timer exactly as they were without ACPI and costs four I/O registers.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "memory/guest_memory.h"

namespace crosvm::arch {

using Bytes = std::vector<uint8_t>;

// ---------------------------------------------------------------------------------------------
// AML (ACPI 6.5 chapter 20) encodings. Names are NameStrings as ASL writes them: an optional
// root prefix '\', then 1-4 character segments separated by '.', each padded with '_' ("_S5"
// is "_S5_"). A name that is not valid encodes as an empty vector; BuildDsdt checks for that.
namespace aml {

// PkgLength for a package whose contents after the PkgLength are `payload` bytes long (the
// encoded value counts the PkgLength bytes themselves). 1 byte up to 63, then 2, 3 or 4 bytes;
// empty when the package would be 2^28 bytes or longer.
Bytes PkgLength(size_t payload);
// The shortest integer encoding: ZeroOp, OneOp, OnesOp (all bits set), BytePrefix, WordPrefix,
// DWordPrefix or QWordPrefix.
Bytes Integer(uint64_t value);
// A DWordConst, whatever the value (as ASL's DWord constants and EISAID are encoded).
Bytes DWord(uint32_t value);
Bytes NameString(std::string_view name);
// The 32-bit compressed EISA id of a 7-character PNP id such as "PNP0A03" (three letters
// A-Z, four hex digits), as EISAID() in ASL; false when `id` is malformed.
bool EisaIdValue(std::string_view id, uint32_t* value);
Bytes EisaId(std::string_view id);  // a DWordConst, empty when malformed
Bytes Name(std::string_view name, const Bytes& object);
Bytes Package(const std::vector<Bytes>& elements);  // at most 255 elements
Bytes Buffer(const Bytes& data);
Bytes Device(std::string_view name, const Bytes& body);
Bytes Scope(std::string_view name, const Bytes& body);

// Resource descriptors (ACPI 6.5 section 6.4) for a ResourceTemplate.
Bytes IoPort(uint16_t min, uint16_t max, uint8_t align, uint8_t len);  // IO(Decode16, ...)
// Address-space descriptors, as producers of the range [min, max] (MinFixed, MaxFixed,
// PosDecode), no translation.
Bytes WordBusNumber(uint16_t min, uint16_t max);
Bytes WordIo(uint16_t min, uint16_t max);
Bytes DWordMemory(uint32_t min, uint32_t max);
Bytes QWordMemory(uint64_t min, uint64_t max);
// Buffer(){ descriptors..., EndTag } as ASL's ResourceTemplate() builds it.
Bytes ResourceTemplate(const std::vector<Bytes>& descriptors);

}  // namespace aml

// ---------------------------------------------------------------------------------------------
// The tables.

struct AcpiPciIrq {
  uint8_t slot;  // PCI device number on bus 0
  uint8_t pin;   // 0 = INTA# .. 3 = INTD#
  uint32_t gsi;  // IOAPIC input
};

struct AcpiRange {
  uint64_t base;
  uint64_t end;  // exclusive
};

// The power-management registers the FADT points at (I/O ports) and the SLP_TYP value \_S5
// carries, so that the PM device and the tables agree.
struct AcpiPmPorts {
  uint16_t pm1a_evt;  // PM1 status (2 bytes) and enable (2 bytes)
  uint16_t pm1a_cnt;  // PM1 control (2 bytes)
  uint16_t pm_tmr;    // PM timer (4 bytes, 32-bit counter at 3.579545 MHz)
  uint8_t s5_sleep_type;
};

struct AcpiConfig {
  uint32_t cpu_count = 1;  // 1..254: local APIC ids 0..n-1, the IOAPIC's id is n
  std::vector<AcpiPciIrq> pci_irqs;
  // The PCI root's windows (what crosvm's BAR allocator hands out); the root bus is bus 0.
  AcpiRange pci_io{};
  AcpiRange pci_mmio32{};
  AcpiRange pci_mmio64{};
  AcpiPmPorts pm{};
};

inline constexpr uint8_t kAcpiSciIrq = 9;
inline constexpr size_t kAcpiHeaderSize = 36;
inline constexpr size_t kRsdpSize = 36;
inline constexpr size_t kFadtSize = 276;  // FADT revision 6
inline constexpr size_t kFacsSize = 64;

// One table (header + body) with its length and checksum filled in.
Bytes AcpiTable(const char signature[4], uint8_t revision, const Bytes& body);
Bytes BuildDsdt(const AcpiConfig& config);
Bytes BuildMadt(const AcpiConfig& config);
Bytes BuildFadt(const AcpiConfig& config, uint64_t facs_addr, uint64_t dsdt_addr);
Bytes BuildFacs();
Bytes BuildXsdt(const std::vector<uint64_t>& tables);
Bytes BuildRsdp(uint64_t xsdt_addr);

// All tables as they appear from `addr` (the RSDP first, at `addr`), in one block; fails
// when the configuration cannot be described (bad CPU count, a malformed AML name) or the
// block would be larger than `max_size`.
base::Result<Bytes> BuildAcpiTables(uint64_t addr, const AcpiConfig& config, size_t max_size);
// Writes them at kAcpiTablesAddr; the RSDP's address is kAcpiTablesAddr (the zero page's
// acpi_rsdp_addr, and inside the 0xe0000-0xfffff area a guest scans).
base::Status WriteAcpiTables(memory::GuestMemory& mem, const AcpiConfig& config);

}  // namespace crosvm::arch
