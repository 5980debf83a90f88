#include "arch/x86_64/acpi.h"

#include <asm/bootparam.h>
#include <stdlib.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "arch/x86_64/boot.h"
#include "arch/x86_64/layout.h"
#include "arch/x86_64/mptable.h"
#include "memory/guest_memory.h"

namespace crosvm::arch {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::Not;

template <typename T>
T Get(const Bytes& bytes, size_t offset) {
  T v{};
  EXPECT_LE(offset + sizeof(T), bytes.size());
  if (offset + sizeof(T) <= bytes.size()) std::memcpy(&v, bytes.data() + offset, sizeof(T));
  return v;
}

uint8_t Sum(const Bytes& bytes, size_t offset, size_t len) {
  return ByteSum(bytes.data() + offset, len);
}

Bytes Str(const char* s) {
  return Bytes(s, s + std::strlen(s));
}

bool Contains(const Bytes& hay, const Bytes& needle) {
  return std::search(hay.begin(), hay.end(), needle.begin(), needle.end()) != hay.end();
}

// Decodes a PkgLength (ACPI 6.5 section 20.2.4): returns the value, sets *size to its bytes.
uint64_t DecodePkgLength(const Bytes& b, size_t* size) {
  size_t follow = b.at(0) >> 6;
  *size = follow + 1;
  if (follow == 0) return b[0] & 0x3f;
  uint64_t v = b[0] & 0x0f;
  for (size_t i = 0; i < follow; ++i) v |= uint64_t{b.at(1 + i)} << (4 + 8 * i);
  return v;
}

AcpiConfig TestConfig(uint32_t cpus = 2) {
  AcpiConfig c;
  c.cpu_count = cpus;
  c.pci_irqs = {{0, 0, 16}, {1, 0, 17}, {2, 1, 18}};
  c.pci_io = {0x1000, 0x10000};
  c.pci_mmio32 = {0xd0000000, 0xfec00000};
  c.pci_mmio64 = {0x100000000, 0x1100000000};
  c.pm = {0x600, 0x604, 0x608, 5};
  return c;
}

// ---------------------------------------------------------------------------------------------
// AML encodings.

TEST(AmlTest, PkgLengthOneByteUpTo63) {
  EXPECT_THAT(aml::PkgLength(0), ElementsAre(0x01));
  EXPECT_THAT(aml::PkgLength(62), ElementsAre(63));  // 63 bytes in all: the last 1-byte form
}

TEST(AmlTest, PkgLengthTwoBytesFrom64To4095) {
  // 63 bytes of payload + 2 bytes of PkgLength = 65: lead byte 0x40 | (65 & 0xf), then 65 >> 4.
  EXPECT_THAT(aml::PkgLength(63), ElementsAre(0x41, 0x04));
  // 4093 + 2 = 4095 = 0xfff: the largest 2-byte value.
  EXPECT_THAT(aml::PkgLength(4093), ElementsAre(0x4f, 0xff));
}

TEST(AmlTest, PkgLengthThreeAndFourBytes) {
  // 4094 + 3 = 4097 (4096 does not exist: 4094 + 2 would be 4096, too large for 2 bytes).
  EXPECT_THAT(aml::PkgLength(4094), ElementsAre(0x81, 0x00, 0x01));
  EXPECT_THAT(aml::PkgLength((1 << 20) - 4), ElementsAre(0x8f, 0xff, 0xff));
  EXPECT_THAT(aml::PkgLength((1 << 20) - 3), ElementsAre(0xc1, 0x00, 0x00, 0x01));
  EXPECT_THAT(aml::PkgLength((1 << 28) - 5), ElementsAre(0xcf, 0xff, 0xff, 0xff));
  EXPECT_TRUE(aml::PkgLength((1 << 28) - 4).empty());  // would need 2^28
}

TEST(AmlTest, PkgLengthCountsItselfAtEveryBoundary) {
  for (size_t payload : {0, 1, 61, 62, 63, 64, 4092, 4093, 4094, 4095, 4096, 1048572, 1048573}) {
    Bytes enc = aml::PkgLength(payload);
    ASSERT_FALSE(enc.empty()) << payload;
    size_t size;
    EXPECT_EQ(DecodePkgLength(enc, &size), payload + enc.size()) << payload;
    EXPECT_EQ(size, enc.size()) << payload;
  }
}

TEST(AmlTest, PackagesAroundThePkgLengthBoundaries) {
  // A package of n ZeroOps: PackageOp, PkgLength, NumElements, n bytes.
  for (size_t n : {61, 62, 63, 64}) {
    Bytes p = aml::Package(std::vector<Bytes>(n, aml::Integer(0)));
    ASSERT_FALSE(p.empty());
    EXPECT_EQ(p[0], 0x12);
    size_t size;
    Bytes tail(p.begin() + 1, p.end());
    EXPECT_EQ(DecodePkgLength(tail, &size), p.size() - 1) << n;
    EXPECT_EQ(size, n + 1 < 63 ? 1u : 2u) << n;
  }
  // A buffer whose package is 4096+ bytes long takes 3 PkgLength bytes.
  Bytes big = aml::Buffer(Bytes(4100, 0xaa));
  size_t size;
  EXPECT_EQ(DecodePkgLength(Bytes(big.begin() + 1, big.end()), &size), big.size() - 1);
  EXPECT_EQ(size, 3u);
}

TEST(AmlTest, Integers) {
  EXPECT_THAT(aml::Integer(0), ElementsAre(0x00));
  EXPECT_THAT(aml::Integer(1), ElementsAre(0x01));
  EXPECT_THAT(aml::Integer(UINT64_MAX), ElementsAre(0xff));
  EXPECT_THAT(aml::Integer(5), ElementsAre(0x0a, 0x05));
  EXPECT_THAT(aml::Integer(0xff), ElementsAre(0x0a, 0xff));
  EXPECT_THAT(aml::Integer(0x100), ElementsAre(0x0b, 0x00, 0x01));
  EXPECT_THAT(aml::Integer(0x12345678), ElementsAre(0x0c, 0x78, 0x56, 0x34, 0x12));
  EXPECT_THAT(aml::Integer(0x100000000),
              ElementsAre(0x0e, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00));
  EXPECT_THAT(aml::DWord(1), ElementsAre(0x0c, 0x01, 0x00, 0x00, 0x00));
}

TEST(AmlTest, NameStrings) {
  EXPECT_EQ(aml::NameString("_S5"), Str("_S5_"));
  EXPECT_EQ(aml::NameString("PCI0"), Str("PCI0"));
  EXPECT_EQ(aml::NameString("\\_SB"), Str("\\_SB_"));
  EXPECT_EQ(aml::NameString("\\_SB.PCI0"), Str("\\\x2e_SB_PCI0"));
  EXPECT_EQ(aml::NameString("A.B.C"), Str("\x2f\x03"
                                          "A___B___C___"));
  for (const char* bad : {"", "\\", "1ABC", "ABCDE", "pci0", "A..B", "A.", "A-B"}) {
    EXPECT_TRUE(aml::NameString(bad).empty()) << bad;
  }
}

TEST(AmlTest, EisaIds) {
  uint32_t v = 0;
  ASSERT_TRUE(aml::EisaIdValue("PNP0A03", &v));
  EXPECT_EQ(v, 0x030ad041u);  // what iasl makes of EISAID("PNP0A03")
  ASSERT_TRUE(aml::EisaIdValue("PNP0A08", &v));
  EXPECT_EQ(v, 0x080ad041u);
  ASSERT_TRUE(aml::EisaIdValue("PNP0C0F", &v));
  EXPECT_EQ(v, 0x0f0cd041u);
  EXPECT_THAT(aml::EisaId("PNP0A03"), ElementsAre(0x0c, 0x41, 0xd0, 0x0a, 0x03));
  for (const char* bad : {"", "PNP0A0", "PNP0A033", "pnp0A03", "PNP0a03", "P1P0A03", "PNP0G03"}) {
    EXPECT_FALSE(aml::EisaIdValue(bad, &v)) << bad;
    EXPECT_TRUE(aml::EisaId(bad).empty()) << bad;
  }
}

TEST(AmlTest, NamePackageBufferDeviceScope) {
  // Name (_S5, Package () {5, 5, 0, 0})
  EXPECT_THAT(
      aml::Name("_S5",
                aml::Package({aml::Integer(5), aml::Integer(5), aml::Integer(0), aml::Integer(0)})),
      ElementsAre(0x08, '_', 'S', '5', '_', 0x12, 0x08, 0x04, 0x0a, 0x05, 0x0a, 0x05, 0x00, 0x00));
  EXPECT_THAT(aml::Buffer({1, 2}), ElementsAre(0x11, 0x05, 0x0a, 0x02, 0x01, 0x02));
  EXPECT_THAT(aml::Buffer({}), ElementsAre(0x11, 0x02, 0x00));
  EXPECT_THAT(aml::Device("PCI0", {}), ElementsAre(0x5b, 0x82, 0x05, 'P', 'C', 'I', '0'));
  EXPECT_THAT(aml::Scope("\\_SB", {0x01}), ElementsAre(0x10, 0x07, '\\', '_', 'S', 'B', '_', 0x01));
  EXPECT_TRUE(aml::Name("bad", aml::Integer(0)).empty());
  EXPECT_TRUE(aml::Name("_HID", {}).empty());
  EXPECT_TRUE(aml::Package({aml::Integer(0), {}}).empty());
  EXPECT_TRUE(aml::Package(std::vector<Bytes>(256, aml::Integer(0))).empty());
  EXPECT_TRUE(aml::Device("toolong", {}).empty());
}

TEST(AmlTest, ResourceDescriptors) {
  // IO (Decode16, 0x0CF8, 0x0CF8, 0x01, 0x08)
  EXPECT_THAT(aml::IoPort(0xcf8, 0xcf8, 1, 8),
              ElementsAre(0x47, 0x01, 0xf8, 0x0c, 0xf8, 0x0c, 0x01, 0x08));
  // WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode, 0, 0, 0, 0, 1)
  EXPECT_THAT(aml::WordBusNumber(0, 0),
              ElementsAre(0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                          0x00, 0x00, 0x01, 0x00));
  Bytes io = aml::WordIo(0x1000, 0xffff);
  ASSERT_EQ(io.size(), 16u);
  EXPECT_EQ(io[3], 1);  // I/O range
  EXPECT_EQ(io[5], 3);  // entire range
  EXPECT_EQ(Get<uint16_t>(io, 8), 0x1000);
  EXPECT_EQ(Get<uint16_t>(io, 10), 0xffff);
  EXPECT_EQ(Get<uint16_t>(io, 14), 0xf000);
  Bytes m32 = aml::DWordMemory(0xd0000000, 0xfebfffff);
  ASSERT_EQ(m32.size(), 26u);
  EXPECT_EQ(m32[0], 0x87);
  EXPECT_EQ(Get<uint16_t>(m32, 1), 23);
  EXPECT_EQ(m32[3], 0);     // memory range
  EXPECT_EQ(m32[4], 0x0c);  // producer, MinFixed, MaxFixed, PosDecode
  EXPECT_EQ(m32[5], 0x01);  // read-write, non-cacheable
  EXPECT_EQ(Get<uint32_t>(m32, 10), 0xd0000000u);
  EXPECT_EQ(Get<uint32_t>(m32, 14), 0xfebfffffu);
  EXPECT_EQ(Get<uint32_t>(m32, 22), 0x2ec00000u);
  Bytes m64 = aml::QWordMemory(0x100000000, 0x10ffffffff);
  ASSERT_EQ(m64.size(), 46u);
  EXPECT_EQ(m64[0], 0x8a);
  EXPECT_EQ(Get<uint16_t>(m64, 1), 43);
  EXPECT_EQ(Get<uint64_t>(m64, 14), 0x100000000u);
  EXPECT_EQ(Get<uint64_t>(m64, 22), 0x10ffffffffu);
  EXPECT_EQ(Get<uint64_t>(m64, 38), 0x1000000000u);
  // ResourceTemplate: a Buffer of the descriptors and the end tag.
  EXPECT_THAT(aml::ResourceTemplate({aml::IoPort(0x60, 0x60, 1, 1)}),
              ElementsAre(0x11, 0x0d, 0x0a, 0x0a, 0x47, 0x01, 0x60, 0x00, 0x60, 0x00, 0x01, 0x01,
                          0x79, 0x00));
}

// ---------------------------------------------------------------------------------------------
// Tables.

void CheckTable(const Bytes& t, const char* sig, uint8_t revision) {
  ASSERT_GE(t.size(), kAcpiHeaderSize);
  EXPECT_EQ(std::string(t.begin(), t.begin() + 4), sig);
  EXPECT_EQ(Get<uint32_t>(t, 4), t.size());
  EXPECT_EQ(t[8], revision);
  EXPECT_EQ(Sum(t, 0, t.size()), 0) << sig;
  EXPECT_EQ(std::string(t.begin() + 10, t.begin() + 16), "CROSVM");
}

TEST(AcpiTablesTest, Rsdp) {
  Bytes r = BuildRsdp(0xe0040);
  ASSERT_EQ(r.size(), kRsdpSize);
  EXPECT_EQ(std::string(r.begin(), r.begin() + 8), "RSD PTR ");
  EXPECT_EQ(Sum(r, 0, 20), 0);          // the ACPI 1.0 checksum
  EXPECT_EQ(Sum(r, 0, 36), 0);          // the extended checksum
  EXPECT_EQ(r[15], 2);                  // revision
  EXPECT_EQ(Get<uint32_t>(r, 16), 0u);  // no RSDT
  EXPECT_EQ(Get<uint32_t>(r, 20), 36u);
  EXPECT_EQ(Get<uint64_t>(r, 24), 0xe0040u);
}

TEST(AcpiTablesTest, FadtFields) {
  Bytes f = BuildFadt(TestConfig(), 0xe0080, 0xe0400);
  CheckTable(f, "FACP", 6);
  ASSERT_EQ(f.size(), kFadtSize);
  EXPECT_EQ(Get<uint32_t>(f, 36), 0u);  // FIRMWARE_CTRL: X_FIRMWARE_CTRL is used
  EXPECT_EQ(Get<uint32_t>(f, 40), 0u);  // DSDT: X_DSDT is used
  EXPECT_EQ(Get<uint16_t>(f, 46), 9);   // SCI_INT
  EXPECT_EQ(Get<uint32_t>(f, 48), 0u);  // SMI_CMD: no mode switch
  EXPECT_EQ(Get<uint32_t>(f, 56), 0x600u);
  EXPECT_EQ(Get<uint32_t>(f, 60), 0u);
  EXPECT_EQ(Get<uint32_t>(f, 64), 0x604u);
  EXPECT_EQ(Get<uint32_t>(f, 76), 0x608u);
  EXPECT_EQ(Get<uint32_t>(f, 80), 0u);  // no GPE0 block
  EXPECT_EQ(f[88], 4);                  // PM1_EVT_LEN
  EXPECT_EQ(f[89], 2);                  // PM1_CNT_LEN
  EXPECT_EQ(f[91], 4);                  // PM_TMR_LEN
  EXPECT_EQ(f[92], 0);                  // GPE0_BLK_LEN
  EXPECT_EQ(f[108], 0x32);              // CENTURY
  uint16_t boot_arch = Get<uint16_t>(f, 109);
  EXPECT_TRUE(boot_arch & (1 << 1)) << "8042 present";
  EXPECT_TRUE(boot_arch & (1 << 2)) << "VGA not present";
  EXPECT_FALSE(boot_arch & (1 << 3)) << "MSI must stay enabled";
  EXPECT_FALSE(boot_arch & (1 << 5)) << "there is a CMOS RTC";
  uint32_t flags = Get<uint32_t>(f, 112);
  EXPECT_FALSE(flags & (1 << 20)) << "not hardware-reduced: the PM1 blocks are used";
  EXPECT_TRUE(flags & (1 << 4)) << "no fixed power button";
  EXPECT_TRUE(flags & (1 << 8)) << "32-bit PM timer";
  EXPECT_TRUE(flags & (1 << 10)) << "reset register";
  EXPECT_EQ(f[116], 1);  // RESET_REG: system I/O
  EXPECT_EQ(f[117], 8);
  EXPECT_EQ(Get<uint64_t>(f, 120), 0x64u);
  EXPECT_EQ(f[128], 0xfe);
  EXPECT_EQ(Get<uint64_t>(f, 132), 0xe0080u);  // X_FIRMWARE_CTRL
  EXPECT_EQ(Get<uint64_t>(f, 140), 0xe0400u);  // X_DSDT
  EXPECT_EQ(Get<uint64_t>(f, 244 + 4), 0u);    // no SLEEP_CONTROL_REG
}

TEST(AcpiTablesTest, Facs) {
  Bytes f = BuildFacs();
  ASSERT_EQ(f.size(), 64u);
  EXPECT_EQ(std::string(f.begin(), f.begin() + 4), "FACS");
  EXPECT_EQ(Get<uint32_t>(f, 4), 64u);
  EXPECT_EQ(f[32], 2);
}

struct MadtEntry {
  uint8_t type;
  Bytes data;  // the whole entry
};

std::vector<MadtEntry> MadtEntries(const Bytes& madt) {
  std::vector<MadtEntry> out;
  size_t off = 44;
  while (off + 2 <= madt.size()) {
    uint8_t len = madt[off + 1];
    EXPECT_GE(len, 2);
    EXPECT_LE(off + len, madt.size());
    if (len < 2 || off + len > madt.size()) break;
    out.push_back({madt[off], Bytes(madt.begin() + off, madt.begin() + off + len)});
    off += len;
  }
  EXPECT_EQ(off, madt.size());
  return out;
}

TEST(AcpiTablesTest, MadtDescribesCpusIoapicOverridesAndNmi) {
  Bytes m = BuildMadt(TestConfig(3));
  CheckTable(m, "APIC", 5);
  EXPECT_EQ(Get<uint32_t>(m, 36), 0xfee00000u);
  EXPECT_EQ(Get<uint32_t>(m, 40), 1u);  // PCAT_COMPAT
  auto entries = MadtEntries(m);
  ASSERT_EQ(entries.size(), 3u + 3u);
  for (uint8_t cpu = 0; cpu < 3; ++cpu) {
    const auto& e = entries[cpu];
    EXPECT_EQ(e.type, 0);
    ASSERT_EQ(e.data.size(), 8u);
    EXPECT_EQ(e.data[2], cpu);  // UID
    EXPECT_EQ(e.data[3], cpu);  // APIC id
    EXPECT_EQ(Get<uint32_t>(e.data, 4), 1u);
  }
  const auto& io = entries[3];
  EXPECT_EQ(io.type, 1);
  ASSERT_EQ(io.data.size(), 12u);
  EXPECT_EQ(io.data[2], 3);  // after the CPUs, as in the MP table
  EXPECT_EQ(Get<uint32_t>(io.data, 4), 0xfec00000u);
  EXPECT_EQ(Get<uint32_t>(io.data, 8), 0u);
  const auto& iso = entries[4];
  EXPECT_EQ(iso.type, 2);
  ASSERT_EQ(iso.data.size(), 10u);
  EXPECT_EQ(iso.data[2], 0);  // ISA
  EXPECT_EQ(iso.data[3], 9);  // SCI
  EXPECT_EQ(Get<uint32_t>(iso.data, 4), 9u);
  EXPECT_EQ(Get<uint16_t>(iso.data, 8), 0xd);  // level, active high
  const auto& nmi = entries[5];
  EXPECT_EQ(nmi.type, 4);
  ASSERT_EQ(nmi.data.size(), 6u);
  EXPECT_EQ(nmi.data[2], 0xff);
  EXPECT_EQ(nmi.data[5], 1);  // LINT1
}

TEST(AcpiTablesTest, MadtHasNoTimerOverride) {
  // crosvm's GSI routing is KVM's identity default: the PIT is IOAPIC pin 0.
  for (const auto& e : MadtEntries(BuildMadt(TestConfig(1)))) {
    if (e.type == 2) {
      EXPECT_NE(e.data[3], 0);
    }
  }
}

TEST(AcpiTablesTest, DsdtHasS5AndThePciRoot) {
  Bytes d = BuildDsdt(TestConfig());
  CheckTable(d, "DSDT", 2);
  EXPECT_TRUE(Contains(d, {0x08, '_', 'S', '5', '_', 0x12, 0x08, 0x04, 0x0a, 0x05, 0x0a, 0x05}));
  EXPECT_TRUE(Contains(d, Str("\\_SB_")));
  EXPECT_TRUE(Contains(d, {0x5b, 0x82}));  // DeviceOp
  EXPECT_TRUE(Contains(d, Str("PCI0")));
  EXPECT_TRUE(Contains(d, Str("_CRS")));
  EXPECT_TRUE(Contains(d, Str("_PRT")));
  EXPECT_TRUE(Contains(d, aml::Name("_HID", aml::EisaId("PNP0A03"))));
  // The windows: I/O 0x1000-0xffff, 32-bit and 64-bit memory.
  EXPECT_TRUE(Contains(d, aml::WordIo(0x1000, 0xffff)));
  EXPECT_TRUE(Contains(d, aml::DWordMemory(0xd0000000, 0xfebfffff)));
  EXPECT_TRUE(Contains(d, aml::QWordMemory(0x100000000, 0x10ffffffff)));
  // One _PRT entry per route: device 2 INTB -> GSI 18.
  EXPECT_TRUE(Contains(d, aml::Package({aml::Integer(0x2ffff), aml::Integer(1), aml::Integer(0),
                                        aml::Integer(18)})));
}

TEST(AcpiTablesTest, DsdtWithoutPciDevicesStillHasAnEmptyPrt) {
  AcpiConfig c = TestConfig();
  c.pci_irqs.clear();
  Bytes d = BuildDsdt(c);
  ASSERT_FALSE(d.empty());
  EXPECT_TRUE(Contains(d, {'_', 'P', 'R', 'T', 0x12, 0x02, 0x00}));
}

TEST(AcpiTablesTest, BlockLayoutAndPointers) {
  constexpr uint64_t kBase = 0xe0000;
  auto built = BuildAcpiTables(kBase, TestConfig(4), 0x10000);
  ASSERT_TRUE(built.ok()) << built.error().message();
  const Bytes& b = *built;
  Bytes rsdp(b.begin(), b.begin() + kRsdpSize);
  EXPECT_EQ(Sum(rsdp, 0, 20), 0);
  EXPECT_EQ(Sum(rsdp, 0, 36), 0);
  auto table_at = [&](uint64_t addr) {
    EXPECT_GE(addr, kBase);
    size_t off = addr - kBase;
    uint32_t len = Get<uint32_t>(b, off + 4);
    EXPECT_LE(off + len, b.size());
    return Bytes(b.begin() + off, b.begin() + off + len);
  };
  Bytes xsdt = table_at(Get<uint64_t>(rsdp, 24));
  CheckTable(xsdt, "XSDT", 1);
  ASSERT_EQ(xsdt.size(), kAcpiHeaderSize + 16);
  Bytes fadt = table_at(Get<uint64_t>(xsdt, 36));
  CheckTable(fadt, "FACP", 6);
  CheckTable(table_at(Get<uint64_t>(xsdt, 44)), "APIC", 5);
  uint64_t facs = Get<uint64_t>(fadt, 132);
  EXPECT_EQ(facs % 64, 0u);
  EXPECT_EQ(std::string(b.begin() + (facs - kBase), b.begin() + (facs - kBase) + 4), "FACS");
  Bytes dsdt = table_at(Get<uint64_t>(fadt, 140));
  CheckTable(dsdt, "DSDT", 2);
  EXPECT_EQ(dsdt, BuildDsdt(TestConfig(4)));
}

TEST(AcpiTablesTest, RejectsWhatCannotBeDescribed) {
  EXPECT_FALSE(BuildAcpiTables(0xe0000, TestConfig(0), 0x10000).ok());
  EXPECT_FALSE(BuildAcpiTables(0xe0000, TestConfig(255), 0x10000).ok());
  EXPECT_TRUE(BuildAcpiTables(0xe0000, TestConfig(254), 0x10000).ok());
  EXPECT_FALSE(BuildAcpiTables(0xe0008, TestConfig(), 0x10000).ok());  // unaligned RSDP
  auto small = BuildAcpiTables(0xe0000, TestConfig(), 0x100);
  ASSERT_FALSE(small.ok());
  EXPECT_THAT(small.error().message(), HasSubstr("more than the 256 reserved"));
}

TEST(AcpiTablesTest, WrittenAtTheFixedAddressOutsideRam) {
  auto mem = memory::GuestMemory::Create(MemoryRanges(64 << 20));
  ASSERT_TRUE(mem.ok());
  ASSERT_TRUE(WriteAcpiTables(*mem, TestConfig()).ok());
  Bytes sig(8);
  ASSERT_TRUE(mem->Read(kAcpiTablesAddr, sig).ok());
  EXPECT_EQ(sig, Str("RSD PTR "));
  EXPECT_EQ(kAcpiTablesAddr % 16, 0u);
  EXPECT_LE(kAcpiTablesEnd, kBiosStart);  // below the SMBIOS and MP tables
  for (const auto& e : BuildE820(*mem)) {
    EXPECT_TRUE(e.addr + e.size <= kAcpiTablesAddr || e.addr >= kAcpiTablesEnd)
        << "e820 RAM entry overlaps the ACPI tables";
  }
}

TEST(AcpiTablesTest, ZeroPageCarriesTheRsdpAddressForBothEntryPaths) {
  auto mem = memory::GuestMemory::Create(MemoryRanges(64 << 20));
  ASSERT_TRUE(mem.ok());
  setup_header hdr{};
  hdr.version = 0x20f;
  for (std::optional<setup_header> h : {std::optional<setup_header>(), std::optional(hdr)}) {
    ASSERT_TRUE(WriteZeroPage(*mem, h, kCmdlineAddr, 10, std::nullopt).ok());
    boot_params params{};
    ASSERT_TRUE(
        mem->Read(kZeroPageAddr, {reinterpret_cast<uint8_t*>(&params), sizeof(params)}).ok());
    EXPECT_EQ(params.acpi_rsdp_addr, kAcpiTablesAddr);
  }
}

// ---------------------------------------------------------------------------------------------
// The DSDT through ACPICA's own disassembler.

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(AcpiIaslTest, GeneratedDsdtDisassemblesCleanly) {
  if (system("command -v iasl >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "iasl (Debian package acpica-tools, see scripts/deps.sh) is not installed: "
                    "the generated DSDT is not checked by ACPICA's disassembler";
  }
  char dir[] = "/tmp/crosvm-acpi-test.XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string aml = std::string(dir) + "/dsdt.aml";
  {
    Bytes d = BuildDsdt(TestConfig());
    std::ofstream out(aml, std::ios::binary);
    out.write(reinterpret_cast<const char*>(d.data()), static_cast<std::streamsize>(d.size()));
  }
  const std::string log = std::string(dir) + "/iasl.log";
  int rc = system(("cd " + std::string(dir) + " && iasl -d dsdt.aml >" + log + " 2>&1").c_str());
  std::string out = ReadAll(log);
  std::string dsl = ReadAll(std::string(dir) + "/dsdt.dsl");
  EXPECT_EQ(rc, 0) << out;
  EXPECT_THAT(out, Not(HasSubstr("Error"))) << out;
  EXPECT_THAT(out, Not(HasSubstr("Warning"))) << out;
  EXPECT_THAT(dsl, HasSubstr("Name (_S5, Package"));
  EXPECT_THAT(dsl, HasSubstr("Device (PCI0)"));
  EXPECT_THAT(dsl, HasSubstr("EisaId (\"PNP0A03\")"));
  EXPECT_THAT(dsl, HasSubstr("Name (_CRS, ResourceTemplate"));
  EXPECT_THAT(dsl, HasSubstr("WordBusNumber"));
  EXPECT_THAT(dsl, HasSubstr("QWordMemory"));
  EXPECT_THAT(dsl, HasSubstr("Name (_PRT, Package"));
  // Recompiling the disassembly must work too (iasl checks names and types then).
  rc = system(("cd " + std::string(dir) + " && iasl -p re dsdt.dsl >>" + log + " 2>&1").c_str());
  EXPECT_EQ(rc, 0) << ReadAll(log);
  EXPECT_EQ(system(("rm -rf " + std::string(dir)).c_str()), 0);
}

}  // namespace
}  // namespace crosvm::arch
