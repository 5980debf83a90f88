#include "arch/x86_64/acpi.h"

#include <cstring>
#include <string>

#include "arch/x86_64/layout.h"
#include "arch/x86_64/mptable.h"

namespace crosvm::arch {
namespace aml {
namespace {

constexpr uint8_t kZeroOp = 0x00, kOneOp = 0x01, kOnesOp = 0xff;
constexpr uint8_t kBytePrefix = 0x0a, kWordPrefix = 0x0b, kDWordPrefix = 0x0c, kQWordPrefix = 0x0e;
constexpr uint8_t kNameOp = 0x08, kScopeOp = 0x10, kBufferOp = 0x11, kPackageOp = 0x12;
constexpr uint8_t kExtOpPrefix = 0x5b, kDeviceOp = 0x82;
constexpr uint8_t kRootChar = '\\', kDualNamePrefix = 0x2e, kMultiNamePrefix = 0x2f;

void Append(Bytes& out, const Bytes& in) {
  out.insert(out.end(), in.begin(), in.end());
}

void AppendLe(Bytes& out, uint64_t v, size_t n) {
  for (size_t i = 0; i < n; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

// op [ext] PkgLength body, or empty when any part is malformed.
Bytes WithPkgLength(std::initializer_list<uint8_t> ops, const Bytes& body) {
  Bytes len = PkgLength(body.size());
  if (len.empty()) return {};
  Bytes out(ops);
  Append(out, len);
  Append(out, body);
  return out;
}

bool IsLeadChar(char c) {
  return (c >= 'A' && c <= 'Z') || c == '_';
}
bool IsNameChar(char c) {
  return IsLeadChar(c) || (c >= '0' && c <= '9');
}

// Address-space descriptor header: large item `tag`, its length, resource type, general flags
// (producer, MinFixed, MaxFixed, PosDecode) and type-specific flags.
Bytes AddressSpace(uint8_t tag, uint8_t resource_type, uint8_t type_flags, size_t field_size,
                   uint64_t min, uint64_t max) {
  constexpr uint8_t kMinFixedMaxFixed = 0x0c;
  Bytes out{tag};
  AppendLe(out, 3 + 5 * field_size, 2);  // bytes after the length field
  out.push_back(resource_type);
  out.push_back(kMinFixedMaxFixed);
  out.push_back(type_flags);
  AppendLe(out, 0, field_size);  // granularity
  AppendLe(out, min, field_size);
  AppendLe(out, max, field_size);
  AppendLe(out, 0, field_size);              // translation offset
  AppendLe(out, max - min + 1, field_size);  // length
  return out;
}

}  // namespace

Bytes PkgLength(size_t payload) {
  // The value includes the PkgLength bytes: with one byte it is 6 bits (up to 63); with 2-4 it
  // is 4 bits in the lead byte plus 8 bits per following byte (12, 20, 28 bits).
  if (payload + 1 <= 0x3f) return {static_cast<uint8_t>(payload + 1)};
  for (size_t extra = 1; extra <= 3; ++extra) {
    uint64_t total = payload + 1 + extra;
    if (total >= (uint64_t{1} << (4 + 8 * extra))) continue;
    Bytes out{static_cast<uint8_t>((extra << 6) | (total & 0xf))};
    AppendLe(out, total >> 4, extra);
    return out;
  }
  return {};
}

Bytes Integer(uint64_t value) {
  if (value == 0) return {kZeroOp};
  if (value == 1) return {kOneOp};
  if (value == UINT64_MAX) return {kOnesOp};
  Bytes out;
  if (value <= 0xff) {
    out.push_back(kBytePrefix);
    AppendLe(out, value, 1);
  } else if (value <= 0xffff) {
    out.push_back(kWordPrefix);
    AppendLe(out, value, 2);
  } else if (value <= 0xffffffff) {
    out.push_back(kDWordPrefix);
    AppendLe(out, value, 4);
  } else {
    out.push_back(kQWordPrefix);
    AppendLe(out, value, 8);
  }
  return out;
}

Bytes DWord(uint32_t value) {
  Bytes out{kDWordPrefix};
  AppendLe(out, value, 4);
  return out;
}

Bytes NameString(std::string_view name) {
  Bytes out;
  if (!name.empty() && name[0] == '\\') {
    out.push_back(kRootChar);
    name.remove_prefix(1);
  }
  std::vector<std::string> segs;
  while (true) {
    size_t dot = name.find('.');
    std::string_view seg = name.substr(0, dot);
    if (seg.empty() || seg.size() > 4 || !IsLeadChar(seg[0])) return {};
    for (char c : seg) {
      if (!IsNameChar(c)) return {};
    }
    std::string s(seg);
    s.resize(4, '_');
    segs.push_back(s);
    if (dot == std::string_view::npos) break;
    name.remove_prefix(dot + 1);
  }
  if (segs.size() > 255) return {};
  if (segs.size() == 2) out.push_back(kDualNamePrefix);
  if (segs.size() > 2) {
    out.push_back(kMultiNamePrefix);
    out.push_back(static_cast<uint8_t>(segs.size()));
  }
  for (const auto& s : segs) out.insert(out.end(), s.begin(), s.end());
  return out;
}

bool EisaIdValue(std::string_view id, uint32_t* value) {
  if (id.size() != 7) return false;
  uint32_t v = 0;
  for (int i = 0; i < 3; ++i) {
    if (id[i] < 'A' || id[i] > 'Z') return false;
    v = (v << 5) | static_cast<uint32_t>(id[i] - 'A' + 1);
  }
  for (int i = 3; i < 7; ++i) {
    char c = id[i];
    uint32_t d;
    if (c >= '0' && c <= '9') {
      d = static_cast<uint32_t>(c - '0');
    } else if (c >= 'A' && c <= 'F') {
      d = static_cast<uint32_t>(c - 'A' + 10);
    } else {
      return false;
    }
    v = (v << 4) | d;
  }
  // The 32 bits are stored most significant byte first (the id reads in memory order).
  *value = ((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >> 8) & 0xff00) | (v >> 24);
  return true;
}

Bytes EisaId(std::string_view id) {
  uint32_t v;
  if (!EisaIdValue(id, &v)) return {};
  return DWord(v);
}

Bytes Name(std::string_view name, const Bytes& object) {
  Bytes n = NameString(name);
  if (n.empty() || object.empty()) return {};
  Bytes out{kNameOp};
  Append(out, n);
  Append(out, object);
  return out;
}

Bytes Package(const std::vector<Bytes>& elements) {
  if (elements.size() > 255) return {};
  Bytes body{static_cast<uint8_t>(elements.size())};
  for (const auto& e : elements) {
    if (e.empty()) return {};
    Append(body, e);
  }
  return WithPkgLength({kPackageOp}, body);
}

Bytes Buffer(const Bytes& data) {
  Bytes body = Integer(data.size());
  Append(body, data);
  return WithPkgLength({kBufferOp}, body);
}

Bytes Device(std::string_view name, const Bytes& body) {
  Bytes n = NameString(name);
  if (n.empty()) return {};
  Append(n, body);
  return WithPkgLength({kExtOpPrefix, kDeviceOp}, n);
}

Bytes Scope(std::string_view name, const Bytes& body) {
  Bytes n = NameString(name);
  if (n.empty()) return {};
  Append(n, body);
  return WithPkgLength({kScopeOp}, n);
}

Bytes IoPort(uint16_t min, uint16_t max, uint8_t align, uint8_t len) {
  constexpr uint8_t kIoTag = 0x47, kDecode16 = 0x01;
  Bytes out{kIoTag, kDecode16};
  AppendLe(out, min, 2);
  AppendLe(out, max, 2);
  out.push_back(align);
  out.push_back(len);
  return out;
}

Bytes WordBusNumber(uint16_t min, uint16_t max) {
  return AddressSpace(0x88, /*bus number range*/ 2, 0, 2, min, max);
}

Bytes WordIo(uint16_t min, uint16_t max) {
  return AddressSpace(0x88, /*I/O range*/ 1, /*ISA and non-ISA ranges*/ 3, 2, min, max);
}

// Memory windows are read-write and non-cacheable: Linux claims no non-prefetchable BAR in a
// prefetchable window, and crosvm's allocator puts any BAR in either.
Bytes DWordMemory(uint32_t min, uint32_t max) {
  return AddressSpace(0x87, /*memory range*/ 0, /*read-write*/ 1, 4, min, max);
}

Bytes QWordMemory(uint64_t min, uint64_t max) {
  return AddressSpace(0x8a, /*memory range*/ 0, /*read-write*/ 1, 8, min, max);
}

Bytes ResourceTemplate(const std::vector<Bytes>& descriptors) {
  Bytes data;
  for (const auto& d : descriptors) Append(data, d);
  data.push_back(0x79);  // end tag
  data.push_back(0x00);  // checksum 0: "the checksum is correct"
  return Buffer(data);
}

}  // namespace aml

namespace {

using aml::Append;
using aml::AppendLe;

constexpr char kOemId[] = "CROSVM";
constexpr char kOemTableId[] = "CROSVM  ";
constexpr uint32_t kOemRevision = 1;
constexpr char kCreatorId[] = "CVMC";
constexpr uint32_t kCreatorRevision = 1;

// Generic Address Structure (ACPI 6.5 section 5.2.3.2) for an I/O port register.
void AppendIoGas(Bytes& out, uint16_t port, uint8_t bit_width) {
  constexpr uint8_t kSystemIo = 1, kByteAccess = 1;
  out.push_back(kSystemIo);
  out.push_back(bit_width);
  out.push_back(0);  // bit offset
  out.push_back(kByteAccess);
  AppendLe(out, port, 8);
}

void Put(Bytes& out, size_t offset, uint64_t v, size_t n) {
  for (size_t i = 0; i < n; ++i) out.at(offset + i) = static_cast<uint8_t>(v >> (8 * i));
}

void Align(Bytes& out, size_t align) {
  while (out.size() % align) out.push_back(0);
}

}  // namespace

Bytes AcpiTable(const char signature[4], uint8_t revision, const Bytes& body) {
  Bytes t(signature, signature + 4);
  AppendLe(t, kAcpiHeaderSize + body.size(), 4);
  t.push_back(revision);
  t.push_back(0);  // checksum, below
  t.insert(t.end(), kOemId, kOemId + 6);
  t.insert(t.end(), kOemTableId, kOemTableId + 8);
  AppendLe(t, kOemRevision, 4);
  t.insert(t.end(), kCreatorId, kCreatorId + 4);
  AppendLe(t, kCreatorRevision, 4);
  Append(t, body);
  t[9] = static_cast<uint8_t>(-ByteSum(t.data(), t.size()));
  return t;
}

Bytes BuildDsdt(const AcpiConfig& config) {
  using namespace aml;
  // \_S5: SLP_TYPa, SLP_TYPb (no PM1b block), two reserved.
  Bytes s5 = Name("_S5", Package({Integer(config.pm.s5_sleep_type),
                                  Integer(config.pm.s5_sleep_type), Integer(0), Integer(0)}));

  std::vector<Bytes> crs;
  crs.push_back(WordBusNumber(0, 0));  // crosvm's PCI root has bus 0 only
  // The configuration ports are the bridge's own (Linux drops them from the windows).
  crs.push_back(IoPort(0xcf8, 0xcf8, 1, 8));
  if (config.pci_io.end > config.pci_io.base && config.pci_io.end <= 0x10000) {
    crs.push_back(WordIo(static_cast<uint16_t>(config.pci_io.base),
                         static_cast<uint16_t>(config.pci_io.end - 1)));
  }
  if (config.pci_mmio32.end > config.pci_mmio32.base &&
      config.pci_mmio32.end <= (uint64_t{1} << 32)) {
    crs.push_back(DWordMemory(static_cast<uint32_t>(config.pci_mmio32.base),
                              static_cast<uint32_t>(config.pci_mmio32.end - 1)));
  }
  if (config.pci_mmio64.end > config.pci_mmio64.base) {
    crs.push_back(QWordMemory(config.pci_mmio64.base, config.pci_mmio64.end - 1));
  }

  // _PRT: one entry per routed INTx pin; address = device << 16 | 0xffff (any function),
  // source 0 = the pin is wired to the GSI given as the source index.
  std::vector<Bytes> prt;
  for (const AcpiPciIrq& irq : config.pci_irqs) {
    prt.push_back(Package({Integer((uint64_t{irq.slot} << 16) | 0xffff), Integer(irq.pin & 3),
                           Integer(0), Integer(irq.gsi)}));
  }

  // Every builder returns an empty vector for something malformed; one empty part fails all.
  bool ok = true;
  auto add = [&ok](Bytes& to, const Bytes& part) {
    if (part.empty()) ok = false;
    Append(to, part);
  };
  Bytes pci0;
  add(pci0, Name("_HID", EisaId("PNP0A03")));
  add(pci0, Name("_CID", EisaId("PNP0A03")));
  add(pci0, Name("_UID", Integer(0)));
  add(pci0, Name("_SEG", Integer(0)));
  add(pci0, Name("_BBN", Integer(0)));
  add(pci0, Name("_CRS", ResourceTemplate(crs)));
  add(pci0, Name("_PRT", Package(prt)));

  Bytes body;
  add(body, s5);
  add(body, Scope("\\_SB", Device("PCI0", pci0)));
  if (!ok) return {};
  // DSDT revision 2: integers are 64 bits wide (the 64-bit window needs them).
  return AcpiTable("DSDT", 2, body);
}

Bytes BuildMadt(const AcpiConfig& config) {
  constexpr uint8_t kTypeLapic = 0, kTypeIoapic = 1, kTypeIso = 2, kTypeLapicNmi = 4;
  constexpr uint32_t kPcatCompat = 1;  // the 8259 PICs are there too (KVM's in-kernel PIC)
  constexpr uint32_t kLapicEnabled = 1;
  // Interrupt source override flags: polarity bits 0-1 (1 = active high), trigger 2-3 (3 = level)
  constexpr uint16_t kActiveHighLevel = 0x1 | (0x3 << 2);
  Bytes b;
  AppendLe(b, kLapicAddr, 4);
  AppendLe(b, kPcatCompat, 4);
  for (uint32_t cpu = 0; cpu < config.cpu_count; ++cpu) {
    b.push_back(kTypeLapic);
    b.push_back(8);
    b.push_back(static_cast<uint8_t>(cpu));  // ACPI processor UID
    b.push_back(static_cast<uint8_t>(cpu));  // local APIC id
    AppendLe(b, kLapicEnabled, 4);
  }
  b.push_back(kTypeIoapic);
  b.push_back(12);
  b.push_back(static_cast<uint8_t>(config.cpu_count));  // IOAPIC id: after the CPUs
  b.push_back(0);
  AppendLe(b, kIoapicAddr, 4);
  AppendLe(b, 0, 4);  // GSI base
  // ISA IRQ n is GSI n, IRQ 0 included: crosvm keeps KVM's default routing, where the in-kernel
  // PIT raises GSI 0 and GSI 0 is IOAPIC pin 0 (the MP table says the same). An IRQ0->GSI2
  // override, as on PC chipsets, would point Linux at a pin the PIT never drives. The SCI is
  // level-triggered and active high, as ACPI requires for a shared SCI on an ISA IRQ.
  b.push_back(kTypeIso);
  b.push_back(10);
  b.push_back(0);  // bus: ISA
  b.push_back(kAcpiSciIrq);
  AppendLe(b, kAcpiSciIrq, 4);
  AppendLe(b, kActiveHighLevel, 2);
  // NMI on LINT1 of every local APIC (processor UID 0xff).
  b.push_back(kTypeLapicNmi);
  b.push_back(6);
  b.push_back(0xff);
  AppendLe(b, 0, 2);  // flags: conforms to the bus
  b.push_back(1);     // LINT1
  return AcpiTable("APIC", 5, b);
}

Bytes BuildFacs() {
  Bytes f(kFacsSize, 0);
  std::memcpy(f.data(), "FACS", 4);
  Put(f, 4, kFacsSize, 4);
  f[32] = 2;  // version
  return f;
}

Bytes BuildFadt(const AcpiConfig& config, uint64_t facs_addr, uint64_t dsdt_addr) {
  // Offsets of ACPI 6.5 table 5.9, minus the 36-byte header.
  Bytes b(kFadtSize - kAcpiHeaderSize, 0);
  auto at = [](size_t fadt_offset) { return fadt_offset - kAcpiHeaderSize; };
  Put(b, at(46), kAcpiSciIrq, 2);  // SCI_INT; SMI_CMD 0: always in ACPI mode, no SMM
  Put(b, at(56), config.pm.pm1a_evt, 4);
  Put(b, at(64), config.pm.pm1a_cnt, 4);
  Put(b, at(76), config.pm.pm_tmr, 4);
  b[at(88)] = 4;            // PM1_EVT_LEN
  b[at(89)] = 2;            // PM1_CNT_LEN
  b[at(91)] = 4;            // PM_TMR_LEN
  Put(b, at(96), 101, 2);   // P_LVL2_LAT > 100: no C2
  Put(b, at(98), 1001, 2);  // P_LVL3_LAT > 1000: no C3
  b[at(108)] = 0x32;        // CENTURY: the CMOS century register
  // IAPC_BOOT_ARCH: LEGACY_DEVICES (serial ports, RTC), 8042 (the reset path), VGA not present.
  // MSI stays allowed (the MSI-not-supported bit is clear), ASPM and CMOS bits clear.
  constexpr uint16_t kLegacyDevices = 1 << 0, k8042 = 1 << 1, kVgaNotPresent = 1 << 2;
  Put(b, at(109), kLegacyDevices | k8042 | kVgaNotPresent, 2);
  // Flags: WBINVD works, C1 (HLT) on every CPU, power and sleep buttons are not fixed
  // features, 32-bit PM timer, a reset register.
  constexpr uint32_t kWbinvd = 1 << 0, kProcC1 = 1 << 2, kPwrButton = 1 << 4, kSlpButton = 1 << 5,
                     kTmrValExt = 1 << 8, kResetRegSup = 1 << 10;
  Put(b, at(112), kWbinvd | kProcC1 | kPwrButton | kSlpButton | kTmrValExt | kResetRegSup, 4);
  // RESET_REG: the i8042's command port and its reset command, the path crosvm always had.
  Bytes reset;
  AppendIoGas(reset, 0x64, 8);
  std::memcpy(&b[at(116)], reset.data(), reset.size());
  b[at(128)] = 0xfe;              // RESET_VALUE
  b[at(131)] = 5;                 // FADT minor version: ACPI 6.5
  Put(b, at(132), facs_addr, 8);  // X_FIRMWARE_CTRL (FIRMWARE_CTRL must then be 0)
  Put(b, at(140), dsdt_addr, 8);  // X_DSDT (DSDT must then be 0)
  // The X_ PM block fields stay 0: OSPM then uses the 32-bit block addresses and lengths.
  return AcpiTable("FACP", 6, b);
}

Bytes BuildXsdt(const std::vector<uint64_t>& tables) {
  Bytes b;
  for (uint64_t t : tables) AppendLe(b, t, 8);
  return AcpiTable("XSDT", 1, b);
}

Bytes BuildRsdp(uint64_t xsdt_addr) {
  Bytes r(kRsdpSize, 0);
  std::memcpy(r.data(), "RSD PTR ", 8);
  std::memcpy(r.data() + 9, kOemId, 6);
  r[15] = 2;  // revision: ACPI 2.0+ (XSDT); RsdtAddress (16) stays 0: no RSDT
  Put(r, 20, kRsdpSize, 4);
  Put(r, 24, xsdt_addr, 8);
  // The checksum of the first 20 bytes (8), then the extended one of all 36 (32).
  r[8] = static_cast<uint8_t>(-ByteSum(r.data(), 20));
  r[32] = static_cast<uint8_t>(-ByteSum(r.data(), r.size()));
  return r;
}

base::Result<Bytes> BuildAcpiTables(uint64_t addr, const AcpiConfig& config, size_t max_size) {
  if (config.cpu_count == 0 || config.cpu_count > 254) {
    return base::Error("ACPI: " + std::to_string(config.cpu_count) +
                       " CPUs cannot be described (local APIC ids 0-253, the IOAPIC after them)");
  }
  if (addr % 16) return base::Error("ACPI: the RSDP must be 16-byte aligned");
  Bytes dsdt = BuildDsdt(config);
  if (dsdt.empty()) return base::Error("ACPI: the DSDT could not be encoded");
  Bytes madt = BuildMadt(config);

  // RSDP, then the XSDT, the FACS (64-byte aligned), FADT, MADT and DSDT, 16-byte aligned.
  constexpr size_t kXsdtOffset = 0x40;
  const size_t xsdt_size = kAcpiHeaderSize + 2 * 8;
  size_t facs = (kXsdtOffset + xsdt_size + 63) & ~size_t{63};
  size_t fadt = facs + kFacsSize;
  size_t madt_off = (fadt + kFadtSize + 15) & ~size_t{15};
  size_t dsdt_off = (madt_off + madt.size() + 15) & ~size_t{15};

  Bytes out = BuildRsdp(addr + kXsdtOffset);
  Align(out, kXsdtOffset);
  Append(out, BuildXsdt({addr + fadt, addr + madt_off}));
  Align(out, 64);
  Append(out, BuildFacs());
  Append(out, BuildFadt(config, addr + facs, addr + dsdt_off));
  Align(out, 16);
  Append(out, madt);
  Align(out, 16);
  if (out.size() != dsdt_off) return base::Error("ACPI: table layout mismatch");
  Append(out, dsdt);
  if (out.size() > max_size) {
    return base::Error("ACPI: the tables need " + std::to_string(out.size()) +
                       " bytes, more than the " + std::to_string(max_size) + " reserved");
  }
  return out;
}

base::Status WriteAcpiTables(memory::GuestMemory& mem, const AcpiConfig& config) {
  CROSVM_ASSIGN_OR_RETURN(
      Bytes tables, BuildAcpiTables(kAcpiTablesAddr, config, kAcpiTablesEnd - kAcpiTablesAddr));
  return mem.Write(kAcpiTablesAddr, tables);
}

}  // namespace crosvm::arch
