#include "arch/x86_64/boot.h"

#include <algorithm>
#include <cstring>

#include "arch/x86_64/layout.h"
#include "base/logging.h"
#include "base/strings.h"

namespace crosvm::arch {
namespace {

using base::Error;
using base::Ok;
using base::Status;

constexpr uint32_t kE820Ram = 1;
constexpr uint16_t kBootCs = 0x10;
constexpr uint16_t kBootDs = 0x18;
constexpr uint16_t kBootTss = 0x20;

constexpr uint64_t kCr0Pe = 1ull << 0;
constexpr uint64_t kCr0Et = 1ull << 4;
constexpr uint64_t kCr0Pg = 1ull << 31;
constexpr uint64_t kCr4Pae = 1ull << 5;
constexpr uint64_t kEferLme = 1ull << 8;
constexpr uint64_t kEferLma = 1ull << 10;

constexpr uint32_t kLapicLvtLint0 = 0x350;
constexpr uint32_t kLapicLvtLint1 = 0x360;
constexpr uint32_t kApicModeExtInt = 7;
constexpr uint32_t kApicModeNmi = 4;

}  // namespace

uint64_t GdtEntry(uint16_t flags, uint32_t base, uint32_t limit) {
  return (uint64_t{base & 0xff000000} << 32) | (static_cast<uint64_t>(flags & 0xf0ff) << 40) |
         (uint64_t{limit & 0x000f0000} << 32) | (uint64_t{base & 0x00ffffff} << 16) |
         uint64_t{limit & 0x0000ffff};
}

kvm_segment SegmentFromGdt(uint64_t entry, uint16_t selector) {
  kvm_segment s{};
  s.base = ((entry >> 16) & 0xffffff) | (((entry >> 56) & 0xff) << 24);
  uint32_t limit = static_cast<uint32_t>((entry & 0xffff) | (((entry >> 48) & 0xf) << 16));
  s.g = (entry >> 55) & 1;
  s.limit = s.g ? (limit << 12) | 0xfff : limit;
  s.selector = selector;
  s.type = (entry >> 40) & 0xf;
  s.s = (entry >> 44) & 1;
  s.dpl = (entry >> 45) & 3;
  s.present = (entry >> 47) & 1;
  s.avl = (entry >> 52) & 1;
  s.l = (entry >> 53) & 1;
  s.db = (entry >> 54) & 1;
  s.unusable = s.present ? 0 : 1;
  return s;
}

namespace {

// The boot GDT: indices 2, 3 and 4 are the selectors 0x10, 0x18 and 0x20 the 64-bit boot
// protocol asks for.
constexpr uint64_t kGdt[] = {
    0,
    0,
    // code: present, DPL 0, execute/read, accessed; 64-bit (L), 4 KiB granularity
    (uint64_t{0xa09b} << 40) | (uint64_t{0xf} << 48) | 0xffff,
    // data: present, DPL 0, read/write, accessed; 32-bit default size, 4 KiB granularity
    (uint64_t{0xc093} << 40) | (uint64_t{0xf} << 48) | 0xffff,
    // TSS: present, busy 64-bit TSS
    (uint64_t{0x808b} << 40) | (uint64_t{0xf} << 48) | 0xffff,
};

static_assert(sizeof(kGdt) <= kGdtMaxSize, "the GDT would run into the IDT");

}  // namespace

std::vector<E820Entry> BuildE820(const memory::GuestMemory& mem) {
  std::vector<E820Entry> map;
  for (const auto& r : mem.regions()) {
    if (r.guest_addr == 0) {
      map.push_back({0, std::min<uint64_t>(r.size, kEbdaStart), kE820Ram});
      if (r.size > kHighMemStart) map.push_back({kHighMemStart, r.size - kHighMemStart, kE820Ram});
    } else {
      map.push_back({r.guest_addr, r.size, kE820Ram});
    }
  }
  return map;
}

Status WriteZeroPage(memory::GuestMemory& mem, const std::optional<setup_header>& hdr,
                     uint64_t cmdline_addr, uint64_t cmdline_size,
                     std::optional<InitrdPlacement> initrd) {
  boot_params params{};
  if (hdr) params.hdr = *hdr;
  params.hdr.type_of_loader = 0xff;  // "undefined" boot loader
  params.hdr.boot_flag = 0xaa55;
  params.hdr.header = 0x53726448;  // "HdrS"
  params.hdr.cmd_line_ptr = static_cast<uint32_t>(cmdline_addr);
  params.ext_cmd_line_ptr = static_cast<uint32_t>(cmdline_addr >> 32);
  params.hdr.cmdline_size = static_cast<uint32_t>(cmdline_size);
  params.hdr.loadflags |= LOADED_HIGH;
  if (!hdr) params.hdr.kernel_alignment = 0x1000000;
  if (initrd) {
    params.hdr.ramdisk_image = static_cast<uint32_t>(initrd->addr);
    params.ext_ramdisk_image = static_cast<uint32_t>(initrd->addr >> 32);
    params.hdr.ramdisk_size = static_cast<uint32_t>(initrd->size);
    params.ext_ramdisk_size = static_cast<uint32_t>(initrd->size >> 32);
  }
  // Where the RSDP is, so that neither entry path (ELF vmlinux, bzImage) has to scan for it.
  params.acpi_rsdp_addr = kAcpiTablesAddr;
  std::vector<E820Entry> e820 = BuildE820(mem);
  if (e820.size() > E820_MAX_ENTRIES_ZEROPAGE) return Error("too many e820 entries");
  for (size_t i = 0; i < e820.size(); ++i) {
    params.e820_table[i].addr = e820[i].addr;
    params.e820_table[i].size = e820[i].size;
    params.e820_table[i].type = e820[i].type;
  }
  params.e820_entries = static_cast<uint8_t>(e820.size());
  return mem.WriteObj(kZeroPageAddr, params);
}

Status WriteLongModeTables(memory::GuestMemory& mem) {
  for (size_t i = 0; i < std::size(kGdt); ++i) {
    CROSVM_RETURN_IF_ERROR(mem.WriteObj<uint64_t>(kGdtAddr + i * 8, kGdt[i]));
  }
  CROSVM_RETURN_IF_ERROR(mem.WriteObj<uint64_t>(kIdtAddr, 0));
  // PML4[0] -> PDPT; PDPT[0..3] -> four page directories of 2 MiB pages covering 4 GiB.
  constexpr uint64_t kPresentWritable = 0x3;
  constexpr uint64_t kPageSize2M = 0x80;
  CROSVM_RETURN_IF_ERROR(mem.WriteObj<uint64_t>(kPml4Addr, kPdptAddr | kPresentWritable));
  for (uint64_t i = 0; i < 4; ++i) {
    CROSVM_RETURN_IF_ERROR(
        mem.WriteObj<uint64_t>(kPdptAddr + i * 8, (kPdAddr + i * 0x1000) | kPresentWritable));
  }
  std::vector<uint64_t> pd(2048);
  for (uint64_t i = 0; i < pd.size(); ++i) pd[i] = (i << 21) | kPageSize2M | kPresentWritable;
  return mem.Write(kPdAddr, {reinterpret_cast<const uint8_t*>(pd.data()), pd.size() * 8});
}

Status SetupLongModeRegisters(kvm::Vcpu& vcpu, uint64_t entry) {
  CROSVM_ASSIGN_OR_RETURN(kvm_sregs sregs, vcpu.GetSregs());
  kvm_segment code = SegmentFromGdt(kGdt[2], kBootCs);
  kvm_segment data = SegmentFromGdt(kGdt[3], kBootDs);
  kvm_segment tss = SegmentFromGdt(kGdt[4], kBootTss);
  sregs.cs = code;
  sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
  sregs.tr = tss;
  sregs.gdt.base = kGdtAddr;
  sregs.gdt.limit = sizeof(kGdt) - 1;
  sregs.idt.base = kIdtAddr;
  sregs.idt.limit = 7;
  sregs.cr0 |= kCr0Pe | kCr0Et | kCr0Pg;
  sregs.cr3 = kPml4Addr;
  sregs.cr4 |= kCr4Pae;
  sregs.efer |= kEferLme | kEferLma;
  CROSVM_RETURN_IF_ERROR(vcpu.SetSregs(sregs));

  kvm_regs regs{};
  regs.rflags = 0x2;  // bit 1 is reserved and always set
  regs.rip = entry;
  regs.rsp = regs.rbp = kBootStackTop;
  regs.rsi = kZeroPageAddr;
  return vcpu.SetRegs(regs);
}

std::vector<kvm_cpuid_entry2> AdjustCpuid(std::vector<kvm_cpuid_entry2> entries, uint32_t apic_id,
                                          uint32_t cpu_count, CpuidQuirks quirks) {
  constexpr uint32_t kKvmFeaturePvSendIpi = 11;
  uint32_t core_bits = 0;
  while ((1u << core_bits) < cpu_count) ++core_bits;
  for (auto& e : entries) {
    switch (e.function) {
      case 1:
        // APIC id, logical processor count, HTT when there is more than one, hypervisor bit.
        e.ebx = (e.ebx & 0x0000ffff) | (apic_id << 24) | ((cpu_count & 0xff) << 16);
        if (cpu_count > 1) {
          e.edx |= 1u << 28;
        } else {
          e.edx &= ~(1u << 28);
        }
        e.ecx |= 1u << 31;
        break;
      case 4:
        // Deterministic cache parameters: cores per package - 1 in EAX[31:26]; no SMT.
        e.eax = (e.eax & 0x03ffffff) | (((cpu_count - 1) & 0x3f) << 26);
        e.eax &= ~(0xfffu << 14);
        break;
      case 0xb:
        // Extended topology: level 0 is SMT (one thread per core), level 1 is the core level.
        e.edx = apic_id;
        if (e.index == 0) {
          e.eax = 0;
          e.ebx = 1;
          e.ecx = (1u << 8) | 0;
        } else if (e.index == 1) {
          e.eax = core_bits;
          e.ebx = cpu_count;
          e.ecx = (2u << 8) | 1;
        } else {
          e.eax = e.ebx = 0;
          e.ecx = e.index;
        }
        break;
      case 0x40000001:
        if (quirks.hide_pv_send_ipi) e.eax &= ~(1u << kKvmFeaturePvSendIpi);
        break;
      default:
        break;
    }
  }
  return entries;
}

Status SetupCpuid(kvm::Vcpu& vcpu, std::vector<kvm_cpuid_entry2> supported, uint32_t cpu_count,
                  CpuidQuirks quirks) {
  return vcpu.SetCpuid(AdjustCpuid(std::move(supported), vcpu.id(), cpu_count, quirks));
}

Status SetupMsrs(kvm::Vcpu& vcpu, const std::vector<uint32_t>& supported_msrs) {
  constexpr uint32_t kMsrIa32MiscEnable = 0x1a0;
  constexpr uint64_t kMiscEnableFastString = 1;
  constexpr uint32_t kMsrAmdHwcr = 0xc0010015;
  constexpr uint64_t kHwcrTscFreqSel = 1ull << 24;
  const std::pair<uint32_t, uint64_t> wanted[] = {
      {0x174, 0},       // IA32_SYSENTER_CS
      {0x175, 0},       // IA32_SYSENTER_ESP
      {0x176, 0},       // IA32_SYSENTER_EIP
      {0xc0000081, 0},  // STAR
      {0xc0000082, 0},  // LSTAR
      {0xc0000083, 0},  // CSTAR
      {0xc0000084, 0},  // SYSCALL_MASK
      {0xc0000102, 0},  // KERNEL_GS_BASE
      {kMsrIa32MiscEnable, kMiscEnableFastString},
      // AMD HWCR.TscFreqSel: the TSC counts at the P0 frequency, as firmware reports on every
      // AMD CPU since family 10h (Linux warns "[Firmware Bug]: TSC doesn't count with P0
      // frequency" otherwise). KVM lets userspace set this read-only bit.
      {kMsrAmdHwcr, kHwcrTscFreqSel},
  };
  // IA32_TSC is deliberately left alone: KVM starts every vCPU's TSC in step, and writing it
  // per vCPU at different moments desynchronizes them (the guest then hangs bringing up APs).
  std::vector<kvm_msr_entry> msrs;
  for (auto [index, value] : wanted) {
    // Only MSRs this KVM saves and restores are set; others keep KVM's reset values.
    if (std::find(supported_msrs.begin(), supported_msrs.end(), index) == supported_msrs.end()) {
      continue;
    }
    kvm_msr_entry e{};
    e.index = index;
    e.data = value;
    msrs.push_back(e);
  }
  // Every value here is a firmware nicety on top of KVM's reset state, so a value this KVM
  // refuses is skipped, not fatal: kvm_amd in Linux 6.1 refuses HWCR.TscFreqSel, for one.
  CROSVM_ASSIGN_OR_RETURN(auto skipped,
                          SetMsrsSkippingRefused(msrs, [&](std::span<const kvm_msr_entry> part) {
                            return vcpu.SetMsrsPrefix(part);
                          }));
  for (const auto& e : skipped) {
    CROSVM_LOG(DEBUG) << "vcpu " << vcpu.id() << ": this KVM refused MSR " << base::Hex(e.index)
                      << " = " << base::Hex(e.data) << "; left at KVM's reset value";
  }
  return Ok();
}

base::Result<std::vector<kvm_msr_entry>> SetMsrsSkippingRefused(
    std::span<const kvm_msr_entry> msrs,
    const std::function<base::Result<size_t>(std::span<const kvm_msr_entry>)>& set_prefix) {
  std::vector<kvm_msr_entry> skipped;
  size_t done = 0;
  while (done < msrs.size()) {
    CROSVM_ASSIGN_OR_RETURN(size_t n, set_prefix(msrs.subspan(done)));
    if (n > msrs.size() - done) return Error("KVM_SET_MSRS reported more MSRs than it was given");
    done += n;
    if (done < msrs.size()) skipped.push_back(msrs[done++]);  // the one KVM stopped at
  }
  return skipped;
}

Status SetupFpu(kvm::Vcpu& vcpu) {
  kvm_fpu fpu{};
  fpu.fcw = 0x37f;     // x87 default control word
  fpu.mxcsr = 0x1f80;  // SSE: all exceptions masked
  return vcpu.SetFpu(fpu);
}

Status SetupLapic(kvm::Vcpu& vcpu) {
  CROSVM_ASSIGN_OR_RETURN(kvm_lapic_state lapic, vcpu.GetLapic());
  auto set_mode = [&](uint32_t reg, uint32_t mode) {
    uint32_t v;
    std::memcpy(&v, lapic.regs + reg, 4);
    v = (v & ~0x700u) | (mode << 8);
    std::memcpy(lapic.regs + reg, &v, 4);
  };
  set_mode(kLapicLvtLint0, kApicModeExtInt);
  set_mode(kLapicLvtLint1, kApicModeNmi);
  return vcpu.SetLapic(lapic);
}

}  // namespace crosvm::arch
