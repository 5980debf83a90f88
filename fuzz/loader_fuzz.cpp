// libFuzzer target: the kernel loader. The input is the kernel image (ELF vmlinux or bzImage,
// detected from its bytes as `crosvm run` does), loaded into a small guest memory with a hole,
// followed by an initrd and the zero page. Errors are fine; crashes, sanitizer reports, writes
// outside guest memory, and a loaded kernel whose entry point or end lie outside what was loaded,
// are not.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "arch/x86_64/boot.h"
#include "arch/x86_64/layout.h"
#include "loader/kernel_loader.h"
#include "memory/guest_memory.h"

#include "fuzz_check.h"

namespace {

using crosvm::loader::KernelFormat;
using crosvm::loader::LoadedKernel;

// 8 MiB of low RAM, a hole, 1 MiB more: large enough for small test kernels, small enough that
// header sizes (init_size, p_memsz) routinely exceed it.
constexpr uint64_t kLowSize = 8 << 20;
constexpr uint64_t kHighBase = 16 << 20;
constexpr uint64_t kHighSize = 1 << 20;

crosvm::memory::GuestMemory& Memory() {
  static auto* mem = new crosvm::memory::GuestMemory(std::move(
      crosvm::memory::GuestMemory::Create({{0, kLowSize}, {kHighBase, kHighSize}}).value()));
  return *mem;
}

bool InRam(uint64_t addr) {
  return addr < kLowSize || (addr >= kHighBase && addr < kHighBase + kHighSize);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > (9 << 20)) return 0;
  auto& mem = Memory();
  const uint64_t lowest = crosvm::arch::kHighMemStart;
  auto kernel = crosvm::loader::LoadKernel(mem, {data, size}, lowest);
  if (!kernel.ok()) return 0;
  const LoadedKernel& k = *kernel;
  // What the vCPU is started at must be inside what the loader placed in RAM.
  FUZZ_CHECK(InRam(k.entry) && k.entry >= lowest && k.entry < k.end);
  FUZZ_CHECK(k.end <= mem.end_addr());
  FUZZ_CHECK(k.cmdline_max > 0 && k.cmdline_max <= 2048);
  FUZZ_CHECK((k.format == KernelFormat::kBzImage) == k.bzimage_header.has_value());

  // An initrd after it, sized from the input so that it sometimes does not fit.
  std::vector<uint8_t> initrd(1 + (size % 3) * (size & 0x3ffff), 0xa5);
  auto addr = crosvm::loader::LoadInitrd(mem, k, initrd);
  std::optional<crosvm::arch::InitrdPlacement> placement;
  if (addr.ok()) {
    FUZZ_CHECK(*addr >= k.end && *addr % 4096 == 0);
    FUZZ_CHECK(mem.IsValidRange(*addr, initrd.size()));
    FUZZ_CHECK(*addr + initrd.size() - 1 <= k.initrd_addr_max);
    placement = crosvm::arch::InitrdPlacement{*addr, initrd.size()};
  }
  (void)crosvm::arch::WriteZeroPage(mem, k.bzimage_header, crosvm::arch::kCmdlineAddr,
                                    std::min<uint64_t>(k.cmdline_max, 64), placement);
  return 0;
}
