#include "arch/x86_64/mptable.h"

#include <cstring>

#include "arch/x86_64/layout.h"

namespace crosvm::arch {
namespace {

constexpr uint8_t kEntryProcessor = 0, kEntryBus = 1, kEntryIoapic = 2, kEntryIoInt = 3,
                  kEntryLocalInt = 4;
constexpr uint8_t kIntTypeInt = 0, kIntTypeNmi = 1, kIntTypeExtInt = 3;
constexpr uint8_t kCpuEnabled = 1, kCpuBootProcessor = 2;
constexpr uint8_t kLapicVersion = 0x14;
constexpr uint8_t kIoapicVersion = 0x11;
constexpr uint8_t kIsaIrqs = 16;
// PCI interrupts are level-triggered and active-low (MP spec "irqflag": polarity bits 0-1 = 3,
// trigger bits 2-3 = 3).
constexpr uint16_t kIrqFlagLevelLow = 0xf;

class Writer {
 public:
  void U8(uint8_t v) { bytes.push_back(v); }
  void U16(uint16_t v) { Raw(&v, 2); }
  void U32(uint32_t v) { Raw(&v, 4); }
  void Str(const char* s, size_t n) {
    size_t len = std::strlen(s);
    for (size_t i = 0; i < n; ++i) U8(i < len ? static_cast<uint8_t>(s[i]) : ' ');
  }
  void Raw(const void* p, size_t n) {
    auto b = static_cast<const uint8_t*>(p);
    bytes.insert(bytes.end(), b, b + n);
  }
  std::vector<uint8_t> bytes;
};

}  // namespace

uint8_t ByteSum(const uint8_t* data, size_t len) {
  uint8_t sum = 0;
  for (size_t i = 0; i < len; ++i) sum += data[i];
  return sum;
}

std::vector<uint8_t> BuildMpTable(uint64_t addr, uint32_t cpu_count,
                                  const std::vector<MpPciIrq>& pci_irqs) {
  const bool has_pci = !pci_irqs.empty();
  const uint8_t ioapic_id = static_cast<uint8_t>(cpu_count);
  const uint8_t pci_bus = 0;
  const uint8_t isa_bus = has_pci ? 1 : 0;

  // Entries first, so the header can carry their count and length.
  Writer entries;
  uint16_t count = 0;
  for (uint32_t cpu = 0; cpu < cpu_count; ++cpu, ++count) {
    entries.U8(kEntryProcessor);
    entries.U8(static_cast<uint8_t>(cpu));  // local APIC id
    entries.U8(kLapicVersion);
    entries.U8(kCpuEnabled | (cpu == 0 ? kCpuBootProcessor : 0));
    entries.U32(0x600);  // CPU signature: family 6
    entries.U32(0x201);  // feature flags: FPU, APIC
    entries.U32(0);
    entries.U32(0);
  }
  if (has_pci) {
    entries.U8(kEntryBus);
    entries.U8(pci_bus);
    entries.Str("PCI", 6);
    ++count;
  }
  entries.U8(kEntryBus);
  entries.U8(isa_bus);
  entries.Str("ISA", 6);
  ++count;
  entries.U8(kEntryIoapic);
  entries.U8(ioapic_id);
  entries.U8(kIoapicVersion);
  entries.U8(1);  // enabled
  entries.U32(static_cast<uint32_t>(kIoapicAddr));
  ++count;
  // ISA IRQ n is IOAPIC pin n (KVM's default GSI routing), edge-triggered as the bus says.
  for (uint8_t irq = 0; irq < kIsaIrqs; ++irq, ++count) {
    entries.U8(kEntryIoInt);
    entries.U8(kIntTypeInt);
    entries.U16(0);  // conforms to the bus
    entries.U8(isa_bus);
    entries.U8(irq);
    entries.U8(ioapic_id);
    entries.U8(irq);
  }
  for (const MpPciIrq& p : pci_irqs) {
    entries.U8(kEntryIoInt);
    entries.U8(kIntTypeInt);
    entries.U16(kIrqFlagLevelLow);
    entries.U8(pci_bus);
    entries.U8(static_cast<uint8_t>((p.device << 2) | (p.pin & 3)));
    entries.U8(ioapic_id);
    entries.U8(p.ioapic_pin);
    ++count;
  }
  // LINT0 is ExtINT (the 8259 PIC), LINT1 is NMI, on every local APIC (0xff).
  for (auto [type, lint] : {std::pair{kIntTypeExtInt, 0}, std::pair{kIntTypeNmi, 1}}) {
    entries.U8(kEntryLocalInt);
    entries.U8(type);
    entries.U16(0);
    entries.U8(isa_bus);
    entries.U8(0);
    entries.U8(0xff);
    entries.U8(static_cast<uint8_t>(lint));
    ++count;
  }

  constexpr size_t kFloatingSize = 16;
  constexpr size_t kHeaderSize = 44;
  const uint32_t table_addr = static_cast<uint32_t>(addr + kFloatingSize);

  Writer header;
  header.Str("PCMP", 4);
  header.U16(static_cast<uint16_t>(kHeaderSize + entries.bytes.size()));
  header.U8(4);  // spec revision 1.4
  header.U8(0);  // checksum, below
  header.Str("CROSVM", 8);
  header.Str("0.1", 12);
  header.U32(0);  // no OEM table
  header.U16(0);
  header.U16(count);
  header.U32(static_cast<uint32_t>(kLapicAddr));
  header.U32(0);  // extended table length and checksum, reserved
  std::vector<uint8_t> table = header.bytes;
  table.insert(table.end(), entries.bytes.begin(), entries.bytes.end());
  table[7] = static_cast<uint8_t>(-ByteSum(table.data(), table.size()));

  Writer floating;
  floating.Str("_MP_", 4);
  floating.U32(table_addr);
  floating.U8(1);  // length in 16-byte units
  floating.U8(4);  // spec revision 1.4
  floating.U8(0);  // checksum, below
  floating.U8(0);  // feature 1: a configuration table is present
  floating.U32(0);
  std::vector<uint8_t> out = floating.bytes;
  out[10] = static_cast<uint8_t>(-ByteSum(out.data(), out.size()));
  out.insert(out.end(), table.begin(), table.end());
  return out;
}

base::Status WriteMpTable(memory::GuestMemory& mem, uint32_t cpu_count,
                          const std::vector<MpPciIrq>& pci_irqs) {
  std::vector<uint8_t> bytes = BuildMpTable(kMpTableAddr, cpu_count, pci_irqs);
  if (kMpTableAddr + bytes.size() > kBiosEnd) {
    return base::Error("MP table for " + std::to_string(cpu_count) + " CPUs is too large");
  }
  return mem.Write(kMpTableAddr, bytes);
}

}  // namespace crosvm::arch
