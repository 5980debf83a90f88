#include <asm/bootparam.h>
#include <linux/kvm.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "arch/x86_64/boot.h"
#include "arch/x86_64/layout.h"
#include "arch/x86_64/mptable.h"
#include "arch/x86_64/smbios.h"
#include "memory/guest_memory.h"

namespace crosvm::arch {
namespace {

using ::testing::ElementsAre;

constexpr uint64_t kMiB = 1 << 20;
constexpr uint64_t kGiB = uint64_t{1} << 30;
constexpr uint64_t k4GiB = uint64_t{1} << 32;

memory::GuestMemory MakeMemory(const std::vector<memory::MemoryRange>& ranges = {{0, 64 * kMiB}}) {
  auto m = memory::GuestMemory::Create(ranges);
  if (!m.ok()) {
    ADD_FAILURE() << m.error().message();
    std::abort();
  }
  return std::move(*m);
}

template <typename T>
T Get(const std::vector<uint8_t>& bytes, size_t offset) {
  T v{};
  EXPECT_LE(offset + sizeof(T), bytes.size());
  if (offset + sizeof(T) <= bytes.size()) std::memcpy(&v, bytes.data() + offset, sizeof(T));
  return v;
}

uint8_t Sum(const std::vector<uint8_t>& bytes, size_t offset, size_t len) {
  uint8_t s = 0;
  for (size_t i = 0; i < len; ++i) s = static_cast<uint8_t>(s + bytes.at(offset + i));
  return s;
}

// ---------------------------------------------------------------------------------------------
// Layout.

TEST(MemoryRangesTest, BelowTheGapIsOneRange) {
  auto r = MemoryRanges(256 * kMiB);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].guest_addr, 0u);
  EXPECT_EQ(r[0].size, 256 * kMiB);

  r = MemoryRanges(0xd0000000);  // exactly up to the gap
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].size, 0xd0000000u);
}

TEST(MemoryRangesTest, AboveTheGapContinuesAt4GiB) {
  auto r = MemoryRanges(0xd0000000 + 4096);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].guest_addr, 0u);
  EXPECT_EQ(r[0].size, 0xd0000000u);
  EXPECT_EQ(r[1].guest_addr, k4GiB);
  EXPECT_EQ(r[1].size, 4096u);

  r = MemoryRanges(8 * kGiB);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].size, 0xd0000000u);
  EXPECT_EQ(r[1].guest_addr, k4GiB);
  EXPECT_EQ(r[0].size + r[1].size, 8 * kGiB);
  // No RAM in the MMIO gap: the IOAPIC and LAPIC pages are outside every range.
  for (const auto& range : r) {
    EXPECT_FALSE(range.guest_addr <= kIoapicAddr && kIoapicAddr < range.guest_addr + range.size);
    EXPECT_FALSE(range.guest_addr <= kLapicAddr && kLapicAddr < range.guest_addr + range.size);
  }
}

// ---------------------------------------------------------------------------------------------
// E820 and the zero page.

TEST(BuildE820Test, LowMemorySkipsTheEbdaAndBiosArea) {
  auto mem = MakeMemory({{0, 64 * kMiB}});
  auto e = BuildE820(mem);
  ASSERT_EQ(e.size(), 2u);
  EXPECT_EQ(e[0].addr, 0u);
  EXPECT_EQ(e[0].size, 0x9fc00u);
  EXPECT_EQ(e[0].type, 1u);
  EXPECT_EQ(e[1].addr, 0x100000u);
  EXPECT_EQ(e[1].size, 63 * kMiB);
  EXPECT_EQ(e[1].type, 1u);
}

TEST(BuildE820Test, HighRegionAbove4GiB) {
  auto mem = MakeMemory({{0, 64 * kMiB}, {k4GiB, 32 * kMiB}});
  auto e = BuildE820(mem);
  ASSERT_EQ(e.size(), 3u);
  EXPECT_EQ(e[0].addr, 0u);
  EXPECT_EQ(e[0].size, 0x9fc00u);
  EXPECT_EQ(e[1].addr, 0x100000u);
  EXPECT_EQ(e[1].addr + e[1].size, 64 * kMiB);
  EXPECT_EQ(e[2].addr, k4GiB);
  EXPECT_EQ(e[2].size, 32 * kMiB);
  EXPECT_EQ(e[2].type, 1u);
}

TEST(BuildE820Test, TinyMemoryHasNoHighEntry) {
  auto mem = MakeMemory({{0, 0x9f000}});
  auto e = BuildE820(mem);
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].addr, 0u);
  EXPECT_EQ(e[0].size, 0x9f000u);
}

boot_params ReadZeroPage(const memory::GuestMemory& mem) {
  auto p = mem.ReadObj<boot_params>(kZeroPageAddr);
  if (!p.ok()) {
    ADD_FAILURE() << p.error().message();
    return boot_params{};
  }
  return *p;
}

TEST(WriteZeroPageTest, Fields) {
  auto mem = MakeMemory({{0, 64 * kMiB}, {k4GiB, 32 * kMiB}});
  ASSERT_TRUE(
      WriteZeroPage(mem, std::nullopt, kCmdlineAddr, 42, InitrdPlacement{0x3f00000, 0x12345}).ok());
  boot_params p = ReadZeroPage(mem);
  EXPECT_EQ(uint16_t{p.hdr.boot_flag}, 0xaa55);
  EXPECT_EQ(uint32_t{p.hdr.header}, 0x53726448u);  // "HdrS"
  EXPECT_EQ(uint8_t{p.hdr.type_of_loader}, 0xff);
  EXPECT_TRUE(p.hdr.loadflags & LOADED_HIGH);
  EXPECT_EQ(uint32_t{p.hdr.cmd_line_ptr}, 0x20000u);
  EXPECT_EQ(uint32_t{p.ext_cmd_line_ptr}, 0u);
  EXPECT_EQ(uint32_t{p.hdr.cmdline_size}, 42u);
  EXPECT_EQ(uint32_t{p.hdr.kernel_alignment}, 0x1000000u);
  EXPECT_EQ(uint32_t{p.hdr.ramdisk_image}, 0x3f00000u);
  EXPECT_EQ(uint32_t{p.hdr.ramdisk_size}, 0x12345u);
  EXPECT_EQ(uint32_t{p.ext_ramdisk_image}, 0u);
  EXPECT_EQ(uint32_t{p.ext_ramdisk_size}, 0u);

  ASSERT_EQ(p.e820_entries, 3);
  EXPECT_EQ(uint64_t{p.e820_table[0].addr}, 0u);
  EXPECT_EQ(uint64_t{p.e820_table[0].size}, 0x9fc00u);
  EXPECT_EQ(uint32_t{p.e820_table[0].type}, 1u);
  EXPECT_EQ(uint64_t{p.e820_table[1].addr}, 0x100000u);
  EXPECT_EQ(uint64_t{p.e820_table[1].size}, 63 * kMiB);
  EXPECT_EQ(uint32_t{p.e820_table[1].type}, 1u);
  EXPECT_EQ(uint64_t{p.e820_table[2].addr}, k4GiB);
  EXPECT_EQ(uint64_t{p.e820_table[2].size}, 32 * kMiB);
  EXPECT_EQ(uint32_t{p.e820_table[2].type}, 1u);
}

TEST(WriteZeroPageTest, NoInitrdLeavesRamdiskFieldsZero) {
  auto mem = MakeMemory();
  ASSERT_TRUE(WriteZeroPage(mem, std::nullopt, kCmdlineAddr, 10, std::nullopt).ok());
  boot_params p = ReadZeroPage(mem);
  EXPECT_EQ(uint32_t{p.hdr.ramdisk_image}, 0u);
  EXPECT_EQ(uint32_t{p.hdr.ramdisk_size}, 0u);
  EXPECT_EQ(p.e820_entries, 2);
}

TEST(WriteZeroPageTest, AddressesAbove4GiBUseTheExtFields) {
  auto mem = MakeMemory();
  ASSERT_TRUE(WriteZeroPage(mem, std::nullopt, 0x123456789, 10,
                            InitrdPlacement{0x2'0000'1000, 0x1'0000'0002})
                  .ok());
  boot_params p = ReadZeroPage(mem);
  EXPECT_EQ(uint32_t{p.hdr.cmd_line_ptr}, 0x23456789u);
  EXPECT_EQ(uint32_t{p.ext_cmd_line_ptr}, 0x1u);
  EXPECT_EQ(uint32_t{p.hdr.ramdisk_image}, 0x1000u);
  EXPECT_EQ(uint32_t{p.ext_ramdisk_image}, 0x2u);
  EXPECT_EQ(uint32_t{p.hdr.ramdisk_size}, 0x2u);
  EXPECT_EQ(uint32_t{p.ext_ramdisk_size}, 0x1u);
}

TEST(WriteZeroPageTest, BzImageHeaderIsCopiedThenCompleted) {
  auto mem = MakeMemory();
  setup_header h{};
  h.setup_sects = 27;
  h.version = 0x020f;
  h.init_size = 0x1234000;
  h.kernel_alignment = 0x200000;
  h.xloadflags = XLF_KERNEL_64;
  h.type_of_loader = 0;
  h.cmdline_size = 2047;
  ASSERT_TRUE(WriteZeroPage(mem, h, kCmdlineAddr, 100, std::nullopt).ok());
  boot_params p = ReadZeroPage(mem);
  // The kernel's own fields survive ...
  EXPECT_EQ(uint8_t{p.hdr.setup_sects}, 27);
  EXPECT_EQ(uint16_t{p.hdr.version}, 0x020f);
  EXPECT_EQ(uint32_t{p.hdr.init_size}, 0x1234000u);
  EXPECT_EQ(uint32_t{p.hdr.kernel_alignment}, 0x200000u);
  EXPECT_EQ(uint16_t{p.hdr.xloadflags}, XLF_KERNEL_64);
  // ... and the boot loader's are filled in.
  EXPECT_EQ(uint8_t{p.hdr.type_of_loader}, 0xff);
  EXPECT_EQ(uint16_t{p.hdr.boot_flag}, 0xaa55);
  EXPECT_EQ(uint32_t{p.hdr.header}, 0x53726448u);
  EXPECT_EQ(uint32_t{p.hdr.cmd_line_ptr}, 0x20000u);
  EXPECT_EQ(uint32_t{p.hdr.cmdline_size}, 100u);
  EXPECT_TRUE(p.hdr.loadflags & LOADED_HIGH);
}

// ---------------------------------------------------------------------------------------------
// Long mode tables and GDT entries.

uint64_t ReadU64(const memory::GuestMemory& mem, uint64_t gpa) {
  auto v = mem.ReadObj<uint64_t>(gpa);
  EXPECT_TRUE(v.ok());
  return v.ok() ? *v : 0;
}

TEST(WriteLongModeTablesTest, IdentityMapsFirst4GiBWith2MiBPages) {
  auto mem = MakeMemory();
  // Garbage first, so every entry checked below must have been written.
  ASSERT_TRUE(mem.Write(0, std::vector<uint8_t>(0x10000, 0xcc)).ok());
  ASSERT_TRUE(WriteLongModeTables(mem).ok());

  // PML4[0] -> PDPT, present and writable.
  EXPECT_EQ(ReadU64(mem, kPml4Addr), kPdptAddr | 0x3);
  EXPECT_EQ(ReadU64(mem, kPml4Addr) & ~0xfffull, 0xa000u);
  // PDPT[0..3] -> four page directories.
  for (uint64_t i = 0; i < 4; ++i) {
    EXPECT_EQ(ReadU64(mem, kPdptAddr + i * 8), (0xb000 + i * 0x1000) | 0x3) << i;
  }
  // Each PD entry maps the 2 MiB page with its own address: present, writable, PS.
  for (uint64_t i = 0; i < 2048; ++i) {
    uint64_t e = ReadU64(mem, kPdAddr + i * 8);
    ASSERT_EQ(e & 0x1, 1u) << i;
    ASSERT_EQ(e & 0x2, 2u) << i;
    ASSERT_EQ(e & 0x80, 0x80u) << i;
    ASSERT_EQ(e & ~0x1fffffull, i * 2 * kMiB) << i;
  }
  // The last 2 MiB page maps 4 GiB - 2 MiB.
  EXPECT_EQ(ReadU64(mem, kPdAddr + 2047 * 8) & ~0xfffull, k4GiB - 2 * kMiB);
  // IDT is empty.
  EXPECT_EQ(ReadU64(mem, kIdtAddr), 0u);
}

TEST(WriteLongModeTablesTest, Gdt) {
  auto mem = MakeMemory();
  ASSERT_TRUE(mem.Write(0, std::vector<uint8_t>(0x1000, 0xcc)).ok());
  ASSERT_TRUE(WriteLongModeTables(mem).ok());
  EXPECT_EQ(ReadU64(mem, 0x500), 0u);
  EXPECT_EQ(ReadU64(mem, 0x508), 0u);

  uint64_t code = ReadU64(mem, 0x510);  // selector 0x10
  EXPECT_TRUE(code & (1ull << 47)) << "present";
  EXPECT_TRUE(code & (1ull << 53)) << "L (64-bit)";
  EXPECT_FALSE(code & (1ull << 54)) << "D must be clear when L is set";
  EXPECT_TRUE(code & (1ull << 44)) << "code/data descriptor";
  EXPECT_TRUE(code & (1ull << 43)) << "executable";
  EXPECT_EQ((code >> 45) & 3, 0u) << "DPL 0";
  EXPECT_EQ(code, 0x00af9b000000ffffull);

  uint64_t data = ReadU64(mem, 0x518);  // selector 0x18
  EXPECT_TRUE(data & (1ull << 47)) << "present";
  EXPECT_FALSE(data & (1ull << 43)) << "not executable";
  EXPECT_TRUE(data & (1ull << 41)) << "writable";
  EXPECT_FALSE(data & (1ull << 53));
  EXPECT_EQ(data, 0x00cf93000000ffffull);
}

// The boot GDT has five entries (selectors 0x00-0x20), so it spans 0x500-0x527; the TSS
// descriptor (selector 0x20, index 4) must still be there after the IDT is written.
TEST(WriteLongModeTablesTest, GdtTssEntryIsNotOverwrittenByTheIdt) {
  auto mem = MakeMemory();
  ASSERT_TRUE(WriteLongModeTables(mem).ok());
  uint64_t tss = ReadU64(mem, 0x500 + 4 * 8);
  EXPECT_EQ(tss, 0x008f8b000000ffffull) << "present busy 64-bit TSS descriptor";
  kvm_segment s = SegmentFromGdt(tss, 0x20);
  EXPECT_EQ(s.present, 1);
  EXPECT_EQ(s.type, 0xb);
  EXPECT_EQ(s.s, 0);
  EXPECT_TRUE(kIdtAddr >= kGdtAddr + 5 * 8 || kIdtAddr + 8 <= kGdtAddr)
      << "IDT at 0x" << std::hex << kIdtAddr << " overlaps the GDT";
}

TEST(GdtEntryTest, KnownDescriptors) {
  EXPECT_EQ(GdtEntry(0xa09b, 0, 0xfffff), 0x00af9b000000ffffull);
  EXPECT_EQ(GdtEntry(0xc093, 0, 0xfffff), 0x00cf93000000ffffull);
  EXPECT_EQ(GdtEntry(0x808b, 0, 0xfffff), 0x008f8b000000ffffull);
  // Base and limit bits go to their split places.
  EXPECT_EQ(GdtEntry(0x50f2, 0x12345678, 0xabcde), 0x125af2345678bcdeull);
  EXPECT_EQ(GdtEntry(0, 0, 0), 0u);
}

TEST(SegmentFromGdtTest, Decodes64BitCode) {
  kvm_segment s = SegmentFromGdt(0x00af9b000000ffffull, 0x10);
  EXPECT_EQ(s.base, 0u);
  EXPECT_EQ(s.limit, 0xffffffffu);  // G: 4 KiB units
  EXPECT_EQ(s.selector, 0x10);
  EXPECT_EQ(s.type, 0xb);
  EXPECT_EQ(s.s, 1);
  EXPECT_EQ(s.dpl, 0);
  EXPECT_EQ(s.present, 1);
  EXPECT_EQ(s.avl, 0);
  EXPECT_EQ(s.l, 1);
  EXPECT_EQ(s.db, 0);
  EXPECT_EQ(s.g, 1);
  EXPECT_EQ(s.unusable, 0);
}

TEST(SegmentFromGdtTest, DecodesData) {
  kvm_segment s = SegmentFromGdt(0x00cf93000000ffffull, 0x18);
  EXPECT_EQ(s.type, 0x3);
  EXPECT_EQ(s.l, 0);
  EXPECT_EQ(s.db, 1);
  EXPECT_EQ(s.g, 1);
  EXPECT_EQ(s.limit, 0xffffffffu);
  EXPECT_EQ(s.selector, 0x18);
}

TEST(SegmentFromGdtTest, DecodesEveryField) {
  // base 0x12345678, limit 0xabcde (byte granular), P=1 DPL=3 S=1 type 2, AVL=1, D/B=1.
  kvm_segment s = SegmentFromGdt(0x125af2345678bcdeull, 0x2b);
  EXPECT_EQ(s.base, 0x12345678u);
  EXPECT_EQ(s.limit, 0xabcdeu);
  EXPECT_EQ(s.selector, 0x2b);
  EXPECT_EQ(s.type, 0x2);
  EXPECT_EQ(s.s, 1);
  EXPECT_EQ(s.dpl, 3);
  EXPECT_EQ(s.present, 1);
  EXPECT_EQ(s.avl, 1);
  EXPECT_EQ(s.l, 0);
  EXPECT_EQ(s.db, 1);
  EXPECT_EQ(s.g, 0);
  EXPECT_EQ(s.unusable, 0);
}

TEST(SegmentFromGdtTest, NotPresentIsUnusable) {
  kvm_segment s = SegmentFromGdt(0, 0);
  EXPECT_EQ(s.present, 0);
  EXPECT_EQ(s.unusable, 1);
  s = SegmentFromGdt(0x002f1b000000ffffull, 0x10);  // the code segment with P clear
  EXPECT_EQ(s.present, 0);
  EXPECT_EQ(s.unusable, 1);
}

TEST(GdtEntryTest, RoundTripsThroughSegmentFromGdt) {
  const uint32_t bases[] = {0, 1, 0xff, 0x00ffffff, 0x01000000, 0xdeadbeef, 0xffffffff};
  const uint32_t limits[] = {0, 1, 0xffff, 0x10000, 0xabcde, 0xfffff};
  const uint16_t flags[] = {0x0093, 0x409b, 0x209b, 0x1093, 0x00f3, 0x0089};
  for (uint32_t base : bases) {
    for (uint32_t limit : limits) {
      for (uint16_t f : flags) {
        kvm_segment s = SegmentFromGdt(GdtEntry(f, base, limit), 0x08);
        EXPECT_EQ(s.base, base);
        EXPECT_EQ(s.limit, limit);  // G clear: byte granular
        EXPECT_EQ(s.type, f & 0xf);
        EXPECT_EQ(s.s, (f >> 4) & 1);
        EXPECT_EQ(s.dpl, (f >> 5) & 3);
        EXPECT_EQ(s.present, (f >> 7) & 1);
        EXPECT_EQ(s.avl, (f >> 12) & 1);
        EXPECT_EQ(s.l, (f >> 13) & 1);
        EXPECT_EQ(s.db, (f >> 14) & 1);
        EXPECT_EQ(s.g, 0);
      }
    }
  }
  // With G set the limit is scaled to 4 KiB pages.
  kvm_segment s = SegmentFromGdt(GdtEntry(0x8093, 0, 0x12), 0x08);
  EXPECT_EQ(s.g, 1);
  EXPECT_EQ(s.limit, 0x12fffu);
}

// ---------------------------------------------------------------------------------------------
// CPUID.

kvm_cpuid_entry2 Leaf(uint32_t function, uint32_t index, uint32_t eax, uint32_t ebx, uint32_t ecx,
                      uint32_t edx) {
  kvm_cpuid_entry2 e{};
  e.function = function;
  e.index = index;
  e.eax = eax;
  e.ebx = ebx;
  e.ecx = ecx;
  e.edx = edx;
  return e;
}

std::vector<kvm_cpuid_entry2> HostCpuid() {
  return {
      Leaf(0, 0, 0xd, 0x756e6547, 0x6c65746e, 0x49656e69),
      // Leaf 1: CLFLUSH line size 8 in EBX[15:8], brand index 0x12; HTT clear (as KVM reports).
      Leaf(1, 0, 0x000906ea, 0x00000812, 0x7ffafbff, 0x0fabfbff),
      // Leaf 4, L1d: EAX[31:26] = 7 (8 cores), EAX[25:14] = 1 (2 threads share), type 1 level 1.
      Leaf(4, 0, (7u << 26) | (1u << 14) | 0x121, 0x01c0003f, 0x3f, 0),
      Leaf(0xb, 0, 1, 2, 0x100, 0xaa),
      Leaf(0xb, 1, 4, 16, 0x201, 0xaa),
      Leaf(0xb, 2, 0, 0, 2, 0xaa),
      Leaf(0x80000001, 0, 0, 0, 0x121, 0x2c100800),
  };
}

const kvm_cpuid_entry2& Find(const std::vector<kvm_cpuid_entry2>& v, uint32_t function,
                             uint32_t index = 0) {
  for (const auto& e : v) {
    if (e.function == function && e.index == index) return e;
  }
  ADD_FAILURE() << "no leaf " << function << "." << index;
  static kvm_cpuid_entry2 none{};
  return none;
}

TEST(AdjustCpuidTest, Leaf1ApicIdCountHypervisorAndHtt) {
  auto out = AdjustCpuid(HostCpuid(), 3, 4);
  const auto& l1 = Find(out, 1);
  EXPECT_EQ(l1.ebx >> 24, 3u) << "initial APIC id";
  EXPECT_EQ((l1.ebx >> 16) & 0xff, 4u) << "logical processor count";
  EXPECT_EQ(l1.ebx & 0xffff, 0x0812u) << "CLFLUSH size and brand index kept";
  EXPECT_TRUE(l1.ecx & (1u << 31)) << "hypervisor";
  EXPECT_EQ(l1.ecx & 0x7fffffff, 0x7ffafbffu) << "other feature bits kept";
  EXPECT_TRUE(l1.edx & (1u << 28)) << "HTT with more than one CPU";
  EXPECT_EQ(l1.edx & ~(1u << 28), 0x0fabfbffu);
  EXPECT_EQ(l1.eax, 0x000906eau);
}

TEST(AdjustCpuidTest, Leaf1SingleCpuHasNoHtt) {
  auto out = AdjustCpuid(HostCpuid(), 0, 1);
  const auto& l1 = Find(out, 1);
  EXPECT_EQ(l1.ebx >> 24, 0u);
  EXPECT_EQ((l1.ebx >> 16) & 0xff, 1u);
  EXPECT_FALSE(l1.edx & (1u << 28));
  EXPECT_TRUE(l1.ecx & (1u << 31));
}

TEST(AdjustCpuidTest, Leaf1ReplacesTheHostsIdAndCount) {
  auto in = HostCpuid();
  in[1].ebx = 0xff7f0812;  // host APIC id 0xff, 127 logical processors
  auto out = AdjustCpuid(in, 5, 8);
  EXPECT_EQ(Find(out, 1).ebx, 0x05080812u);
}

TEST(AdjustCpuidTest, Leaf4CoresField) {
  auto out = AdjustCpuid(HostCpuid(), 0, 4);
  const auto& l4 = Find(out, 4);
  EXPECT_EQ(l4.eax >> 26, 3u) << "cores per package - 1";
  EXPECT_EQ((l4.eax >> 14) & 0xfff, 0u) << "one thread per cache: no SMT";
  EXPECT_EQ(l4.eax & 0x3fff, 0x121u) << "cache type and level kept";
  EXPECT_EQ(l4.ebx, 0x01c0003fu);
  EXPECT_EQ(l4.ecx, 0x3fu);

  EXPECT_EQ(Find(AdjustCpuid(HostCpuid(), 0, 1), 4).eax >> 26, 0u);
  EXPECT_EQ(Find(AdjustCpuid(HostCpuid(), 0, 64), 4).eax >> 26, 63u);
}

TEST(AdjustCpuidTest, Leaf0bTopology) {
  auto out = AdjustCpuid(HostCpuid(), 2, 4);
  const auto& smt = Find(out, 0xb, 0);
  EXPECT_EQ(smt.eax, 0u) << "one thread per core: no SMT bits";
  EXPECT_EQ(smt.ebx, 1u);
  EXPECT_EQ(smt.ecx, 0x100u) << "level 0, type SMT";
  EXPECT_EQ(smt.edx, 2u) << "x2APIC id";
  const auto& core = Find(out, 0xb, 1);
  EXPECT_EQ(core.eax, 2u) << "log2(4) bits of core id";
  EXPECT_EQ(core.ebx, 4u);
  EXPECT_EQ(core.ecx, 0x201u) << "level 1, type core";
  EXPECT_EQ(core.edx, 2u);
  const auto& invalid = Find(out, 0xb, 2);
  EXPECT_EQ(invalid.eax, 0u);
  EXPECT_EQ(invalid.ebx, 0u);
  EXPECT_EQ(invalid.ecx, 2u) << "level 2, type invalid";
  EXPECT_EQ(invalid.edx, 2u);
}

TEST(AdjustCpuidTest, Leaf0bShiftRoundsUp) {
  EXPECT_EQ(Find(AdjustCpuid(HostCpuid(), 0, 1), 0xb, 1).eax, 0u);
  EXPECT_EQ(Find(AdjustCpuid(HostCpuid(), 0, 2), 0xb, 1).eax, 1u);
  EXPECT_EQ(Find(AdjustCpuid(HostCpuid(), 0, 3), 0xb, 1).eax, 2u);
  EXPECT_EQ(Find(AdjustCpuid(HostCpuid(), 0, 5), 0xb, 1).eax, 3u);
  EXPECT_EQ(Find(AdjustCpuid(HostCpuid(), 0, 64), 0xb, 1).eax, 6u);
  EXPECT_EQ(Find(AdjustCpuid(HostCpuid(), 0, 64), 0xb, 1).ebx, 64u);
}

TEST(AdjustCpuidTest, OtherLeavesUnchanged) {
  auto in = HostCpuid();
  auto out = AdjustCpuid(in, 1, 2);
  ASSERT_EQ(out.size(), in.size());
  for (uint32_t f : {0u, 0x80000001u}) {
    const auto& a = Find(in, f);
    const auto& b = Find(out, f);
    EXPECT_EQ(std::memcmp(&a, &b, sizeof(a)), 0) << f;
  }
}

// ---------------------------------------------------------------------------------------------
// MP table.

struct MpProcessor {
  uint8_t apic_id, version, flags;
};
struct MpBus {
  uint8_t id;
  std::string type;
};
struct MpIoapic {
  uint8_t id, version, flags;
  uint32_t addr;
};
struct MpInt {
  uint8_t entry_type, int_type;
  uint16_t flags;
  uint8_t bus, irq, dest_id, dest_pin;
};

struct ParsedMp {
  uint32_t physptr = 0;
  uint16_t length = 0;
  uint16_t count = 0;
  uint32_t lapic = 0;
  size_t parsed_entries = 0;
  std::vector<MpProcessor> cpus;
  std::vector<MpBus> buses;
  std::vector<MpIoapic> ioapics;
  std::vector<MpInt> io_ints;
  std::vector<MpInt> local_ints;
};

// Checks the floating pointer and header at `addr` and walks the entries.
ParsedMp ParseMp(const std::vector<uint8_t>& b, uint64_t addr) {
  ParsedMp mp;
  EXPECT_GE(b.size(), 16u + 44u);
  if (b.size() < 60) return mp;
  EXPECT_EQ(std::string(b.begin(), b.begin() + 4), "_MP_");
  mp.physptr = Get<uint32_t>(b, 4);
  EXPECT_EQ(mp.physptr, addr + 16) << "config table right after the floating pointer";
  EXPECT_EQ(b[8], 1) << "floating pointer length in 16-byte units";
  EXPECT_EQ(b[9], 4) << "MP spec 1.4";
  EXPECT_EQ(Sum(b, 0, 16), 0) << "floating pointer checksum";
  EXPECT_EQ(b[11], 0) << "feature 1: config table present";

  const size_t t = mp.physptr - addr;
  EXPECT_EQ(std::string(b.begin() + t, b.begin() + t + 4), "PCMP");
  mp.length = Get<uint16_t>(b, t + 4);
  EXPECT_EQ(t + mp.length, b.size()) << "base table length";
  EXPECT_EQ(b[t + 6], 4) << "spec revision";
  if (t + mp.length > b.size()) return mp;
  EXPECT_EQ(Sum(b, t, mp.length), 0) << "config table checksum";
  mp.count = Get<uint16_t>(b, t + 34);
  mp.lapic = Get<uint32_t>(b, t + 36);

  size_t off = t + 44;
  while (off < t + mp.length) {
    uint8_t type = b[off];
    size_t len = type == 0 ? 20 : 8;
    if (off + len > t + mp.length) {
      ADD_FAILURE() << "entry at " << off << " runs past the table";
      break;
    }
    switch (type) {
      case 0:
        mp.cpus.push_back({b[off + 1], b[off + 2], b[off + 3]});
        break;
      case 1:
        mp.buses.push_back({b[off + 1], std::string(b.begin() + off + 2, b.begin() + off + 8)});
        break;
      case 2:
        mp.ioapics.push_back({b[off + 1], b[off + 2], b[off + 3], Get<uint32_t>(b, off + 4)});
        break;
      case 3:
      case 4: {
        MpInt i{type,       b[off + 1], Get<uint16_t>(b, off + 2), b[off + 4], b[off + 5],
                b[off + 6], b[off + 7]};
        (type == 3 ? mp.io_ints : mp.local_ints).push_back(i);
        break;
      }
      default:
        ADD_FAILURE() << "unknown entry type " << int{type};
        return mp;
    }
    ++mp.parsed_entries;
    off += len;
  }
  EXPECT_EQ(off, t + mp.length);
  return mp;
}

TEST(MpTableTest, HeaderAndChecksums) {
  auto b = BuildMpTable(kMpTableAddr, 2);
  ParsedMp mp = ParseMp(b, kMpTableAddr);
  EXPECT_EQ(mp.count, mp.parsed_entries);
  EXPECT_EQ(mp.lapic, 0xfee00000u);
  // 2 CPUs, ISA bus, IOAPIC, 16 ISA interrupts, 2 LINTs.
  EXPECT_EQ(mp.parsed_entries, 2u + 1 + 1 + 16 + 2);
  EXPECT_EQ(b.size(), 16u + 44 + 2 * 20 + (1 + 1 + 16 + 2) * 8);
}

TEST(MpTableTest, PhysptrFollowsTheAddress) {
  auto b = BuildMpTable(0xf0000, 1);
  ParsedMp mp = ParseMp(b, 0xf0000);
  EXPECT_EQ(mp.physptr, 0xf0010u);
}

TEST(MpTableTest, OneProcessorPerCpuBspOnlyOnCpu0) {
  for (uint32_t n : {1u, 2u, 7u, 32u}) {
    SCOPED_TRACE(n);
    ParsedMp mp = ParseMp(BuildMpTable(kMpTableAddr, n), kMpTableAddr);
    EXPECT_EQ(mp.count, mp.parsed_entries);
    ASSERT_EQ(mp.cpus.size(), n);
    for (uint32_t i = 0; i < n; ++i) {
      EXPECT_EQ(mp.cpus[i].apic_id, i);
      EXPECT_TRUE(mp.cpus[i].flags & 1) << "enabled";
      EXPECT_EQ((mp.cpus[i].flags & 2) != 0, i == 0) << "BSP flag on cpu " << i;
      EXPECT_NE(mp.cpus[i].version, 0);
    }
  }
}

TEST(MpTableTest, IoapicAndIsaInterrupts) {
  constexpr uint32_t kCpus = 4;
  ParsedMp mp = ParseMp(BuildMpTable(kMpTableAddr, kCpus), kMpTableAddr);
  ASSERT_EQ(mp.ioapics.size(), 1u);
  EXPECT_EQ(mp.ioapics[0].id, kCpus) << "IOAPIC id follows the CPUs' APIC ids";
  EXPECT_EQ(mp.ioapics[0].addr, 0xfec00000u);
  EXPECT_TRUE(mp.ioapics[0].flags & 1) << "enabled";

  ASSERT_EQ(mp.buses.size(), 1u);
  EXPECT_EQ(mp.buses[0].type, "ISA   ");
  const uint8_t isa = mp.buses[0].id;

  ASSERT_EQ(mp.io_ints.size(), 16u);
  for (uint8_t irq = 0; irq < 16; ++irq) {
    const MpInt& i = mp.io_ints[irq];
    EXPECT_EQ(i.int_type, 0) << "vectored INT";
    EXPECT_EQ(i.flags, 0) << "conforms to the bus";
    EXPECT_EQ(i.bus, isa);
    EXPECT_EQ(i.irq, irq);
    EXPECT_EQ(i.dest_id, kCpus);
    EXPECT_EQ(i.dest_pin, irq);
  }
}

TEST(MpTableTest, LocalInterrupts) {
  ParsedMp mp = ParseMp(BuildMpTable(kMpTableAddr, 2), kMpTableAddr);
  ASSERT_EQ(mp.local_ints.size(), 2u);
  std::map<uint8_t, uint8_t> type_by_lint;
  for (const MpInt& i : mp.local_ints) {
    EXPECT_EQ(i.dest_id, 0xff) << "all local APICs";
    type_by_lint[i.dest_pin] = i.int_type;
  }
  EXPECT_EQ(type_by_lint.at(0), 3) << "LINT0: ExtINT";
  EXPECT_EQ(type_by_lint.at(1), 1) << "LINT1: NMI";
}

TEST(MpTableTest, PciInterrupts) {
  constexpr uint32_t kCpus = 2;
  std::vector<MpPciIrq> pci = {{1, 0, 5}, {2, 1, 6}, {31, 3, 23}};
  auto b = BuildMpTable(kMpTableAddr, kCpus, pci);
  ParsedMp mp = ParseMp(b, kMpTableAddr);
  EXPECT_EQ(mp.count, mp.parsed_entries);
  EXPECT_EQ(mp.parsed_entries, 2u + 2 + 1 + 16 + 3 + 2);

  ASSERT_EQ(mp.buses.size(), 2u);
  int pci_bus = -1, isa_bus = -1;
  for (const MpBus& bus : mp.buses) {
    if (bus.type == "PCI   ") pci_bus = bus.id;
    if (bus.type == "ISA   ") isa_bus = bus.id;
  }
  ASSERT_NE(pci_bus, -1);
  ASSERT_NE(isa_bus, -1);
  EXPECT_NE(pci_bus, isa_bus);

  std::vector<MpInt> isa_ints, pci_ints;
  for (const MpInt& i : mp.io_ints) (i.bus == pci_bus ? pci_ints : isa_ints).push_back(i);
  EXPECT_EQ(isa_ints.size(), 16u);
  ASSERT_EQ(pci_ints.size(), 3u);
  for (size_t k = 0; k < pci.size(); ++k) {
    EXPECT_EQ(pci_ints[k].int_type, 0);
    EXPECT_EQ(pci_ints[k].flags & 0x3, 0x3) << "active low";
    EXPECT_EQ((pci_ints[k].flags >> 2) & 0x3, 0x3) << "level triggered";
    EXPECT_EQ(pci_ints[k].irq, (pci[k].device << 2) | pci[k].pin);
    EXPECT_EQ(pci_ints[k].dest_id, kCpus);
    EXPECT_EQ(pci_ints[k].dest_pin, pci[k].ioapic_pin);
  }
}

// Linux looks for the floating pointer on 16-byte boundaries in 0xf0000-0xfffff (among other
// places); the table must be there, outside the RAM the e820 map gives the guest.
TEST(MpTableTest, WriteMpTablePutsItWhereTheGuestScans) {
  auto mem = MakeMemory();
  ASSERT_TRUE(WriteMpTable(mem, 4).ok());
  EXPECT_GE(kMpTableAddr, 0xf0000u);
  EXPECT_EQ(kMpTableAddr % 16, 0u);
  auto expected = BuildMpTable(kMpTableAddr, 4);
  EXPECT_LE(kMpTableAddr + expected.size(), 0x100000u);
  std::vector<uint8_t> got(expected.size());
  ASSERT_TRUE(mem.Read(kMpTableAddr, got).ok());
  EXPECT_EQ(got, expected);
  for (const auto& e : BuildE820(mem)) {
    if (e.type == 1) {
      EXPECT_FALSE(kMpTableAddr >= e.addr && kMpTableAddr < e.addr + e.size);
    }
  }
}

// `crosvm run` accepts up to 64 vCPUs (-c 64), so the MP table must be writable for all of them.
TEST(MpTableTest, WriteMpTableFitsEveryCpuCountTheCliAccepts) {
  for (uint32_t n : {1u, 16u, 40u, 41u, 48u, 64u}) {
    auto mem = MakeMemory();
    auto s = WriteMpTable(mem, n);
    EXPECT_TRUE(s.ok()) << n << " CPUs: " << s.error().message();
  }
}

TEST(ByteSumTest, SumsModulo256) {
  const uint8_t bytes[] = {0xff, 0x02, 0x10};
  EXPECT_EQ(ByteSum(bytes, 3), 0x11);
  EXPECT_EQ(ByteSum(bytes, 0), 0);
}

// ---------------------------------------------------------------------------------------------
// SMBIOS.

struct SmbiosStructure {
  uint8_t type;
  uint8_t length;
  uint16_t handle;
  std::vector<uint8_t> formatted;
  std::vector<std::string> strings;
  // String number n (1-based) or "" for 0.
  std::string String(uint8_t n) const {
    if (n == 0 || n > strings.size()) return "";
    return strings[n - 1];
  }
};

// Walks the structure table: each structure is its formatted area, then NUL-terminated strings,
// then one more NUL (two NULs when there are no strings).
std::vector<SmbiosStructure> WalkSmbios(const std::vector<uint8_t>& b, size_t start, size_t len) {
  std::vector<SmbiosStructure> out;
  size_t off = start;
  const size_t end = start + len;
  while (off < end) {
    if (off + 4 > end) {
      ADD_FAILURE() << "structure header past the end at " << off;
      break;
    }
    SmbiosStructure s;
    s.type = b[off];
    s.length = b[off + 1];
    s.handle = Get<uint16_t>(b, off + 2);
    if (s.length < 4 || off + s.length > end) {
      ADD_FAILURE() << "bad structure length " << int{s.length};
      break;
    }
    s.formatted.assign(b.begin() + off, b.begin() + off + s.length);
    size_t p = off + s.length;
    if (p + 1 < end && b[p] == 0 && b[p + 1] == 0) {
      p += 2;  // no strings
    } else {
      while (true) {
        size_t nul = p;
        while (nul < end && b[nul] != 0) ++nul;
        if (nul >= end) {
          ADD_FAILURE() << "unterminated string";
          return out;
        }
        s.strings.emplace_back(b.begin() + p, b.begin() + nul);
        p = nul + 1;
        if (p >= end) {
          ADD_FAILURE() << "missing the structure's final NUL";
          return out;
        }
        if (b[p] == 0) {
          ++p;
          break;
        }
      }
    }
    off = p;
    out.push_back(std::move(s));
    if (out.back().type == 127) break;
  }
  EXPECT_EQ(off, end) << "the table ends with the end-of-table structure";
  return out;
}

TEST(SmbiosTest, EntryPoint) {
  constexpr uint64_t kAddr = 0xf0000;
  auto b = BuildSmbios(kAddr);
  ASSERT_GE(b.size(), 0x18u);
  EXPECT_EQ(std::string(b.begin(), b.begin() + 5), "_SM3_");
  EXPECT_EQ(b[6], 0x18) << "entry point length";
  EXPECT_EQ(b[7], 3) << "SMBIOS major version";
  EXPECT_EQ(b[10], 1) << "entry point revision 3.0";
  EXPECT_EQ(Sum(b, 0, 0x18), 0) << "checksum";
  EXPECT_EQ(Get<uint32_t>(b, 12), b.size() - 0x18) << "structure table maximum size";
  EXPECT_EQ(Get<uint64_t>(b, 16), kAddr + 0x18) << "structure table address";

  auto other = BuildSmbios(0x12345000);
  EXPECT_EQ(Get<uint64_t>(other, 16), 0x12345018u);
  EXPECT_EQ(Sum(other, 0, 0x18), 0);
}

TEST(SmbiosTest, Structures) {
  auto b = BuildSmbios(0xf0000);
  auto structs = WalkSmbios(b, 0x18, b.size() - 0x18);
  ASSERT_EQ(structs.size(), 3u);

  const SmbiosStructure& bios = structs[0];
  EXPECT_EQ(bios.type, 0);
  EXPECT_GE(bios.length, 0x12);
  EXPECT_EQ(bios.String(bios.formatted[4]), "crosvm") << "BIOS vendor";
  EXPECT_FALSE(bios.String(bios.formatted[5]).empty()) << "BIOS version";
  EXPECT_FALSE(bios.String(bios.formatted[8]).empty()) << "BIOS release date";

  const SmbiosStructure& sys = structs[1];
  EXPECT_EQ(sys.type, 1);
  EXPECT_GE(sys.length, 0x1b);
  EXPECT_EQ(sys.String(sys.formatted[4]), "crosvm") << "manufacturer";
  EXPECT_EQ(sys.String(sys.formatted[5]), "crosvm") << "product name";

  const SmbiosStructure& eot = structs[2];
  EXPECT_EQ(eot.type, 127);
  EXPECT_EQ(eot.length, 4);
  EXPECT_TRUE(eot.strings.empty());
  // The end-of-table structure is its 4 bytes and a double NUL, and the table ends there.
  ASSERT_GE(b.size(), 6u);
  EXPECT_EQ(b[b.size() - 6], 127);
  EXPECT_EQ(b[b.size() - 2], 0);
  EXPECT_EQ(b[b.size() - 1], 0);

  // Handles are unique.
  EXPECT_NE(bios.handle, sys.handle);
  EXPECT_NE(sys.handle, eot.handle);
  EXPECT_NE(bios.handle, eot.handle);
}

TEST(SmbiosTest, WriteSmbiosPutsItAtTheBiosArea) {
  auto mem = MakeMemory();
  ASSERT_TRUE(WriteSmbios(mem).ok());
  auto expected = BuildSmbios(0xf0000);
  std::vector<uint8_t> got(expected.size());
  ASSERT_TRUE(mem.Read(0xf0000, got).ok());
  EXPECT_EQ(got, expected);
  EXPECT_EQ(Get<uint64_t>(got, 16), 0xf0018u);
}

}  // namespace
}  // namespace crosvm::arch
