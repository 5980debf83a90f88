#include "loader/kernel_loader.h"

#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "base/fd.h"
#include "base/range.h"
#include "base/strings.h"

namespace crosvm::loader {
namespace {

using base::Error;
using base::Result;

using base::Hex;

constexpr uint64_t kPageSize = 4096;
constexpr size_t kSetupHeaderOffset = 0x1f1;
constexpr uint16_t kMinBootProtocol = 0x020c;  // 2.12: xloadflags says whether 64-bit entry exists
constexpr uint64_t kDefaultInitrdMax = 0x37ffffff;
constexpr uint64_t k64BitEntryOffset = 0x200;  // from the protected-mode kernel's start

}  // namespace

Result<std::vector<uint8_t>> ReadFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error::FromErrno("cannot open " + path);
  base::ScopedFd owned(fd);
  struct stat st;
  if (fstat(fd, &st) < 0) return Error::FromErrno("cannot stat " + path);
  if (!S_ISREG(st.st_mode)) return Error(path + " is not a regular file");
  std::vector<uint8_t> data(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = read(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::FromErrno("cannot read " + path);
    if (n == 0) return Error(path + " shrank while being read");
    done += static_cast<size_t>(n);
  }
  return data;
}

Result<LoadedKernel> LoadKernel(memory::GuestMemory& mem, std::span<const uint8_t> image,
                                uint64_t lowest_addr) {
  if (image.size() >= SELFMAG && std::memcmp(image.data(), ELFMAG, SELFMAG) == 0) {
    return LoadElf(mem, image, lowest_addr);
  }
  if (image.size() >= 0x206 && std::memcmp(image.data() + 0x202, "HdrS", 4) == 0) {
    return LoadBzImage(mem, image, lowest_addr);
  }
  return Error("not a kernel image: neither an ELF file (vmlinux) nor a bzImage");
}

Result<LoadedKernel> LoadElf(memory::GuestMemory& mem, std::span<const uint8_t> image,
                             uint64_t lowest_addr) {
  if (image.size() < sizeof(Elf64_Ehdr)) {
    return Error("ELF image is truncated: " + std::to_string(image.size()) +
                 " bytes is smaller than the ELF header");
  }
  Elf64_Ehdr eh;
  std::memcpy(&eh, image.data(), sizeof(eh));
  if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) return Error("not an ELF image (bad magic)");
  if (eh.e_ident[EI_CLASS] != ELFCLASS64) return Error("ELF image is not 64-bit (ELFCLASS64)");
  if (eh.e_ident[EI_DATA] != ELFDATA2LSB) return Error("ELF image is not little-endian");
  if (eh.e_machine != EM_X86_64) {
    return Error("ELF image is for machine " + std::to_string(eh.e_machine) + ", not x86_64");
  }
  if (eh.e_phentsize != sizeof(Elf64_Phdr)) {
    return Error("ELF program header size " + std::to_string(eh.e_phentsize) + " is not " +
                 std::to_string(sizeof(Elf64_Phdr)));
  }
  if (eh.e_phnum == 0 ||
      !base::RangeFits(eh.e_phoff, uint64_t{eh.e_phnum} * sizeof(Elf64_Phdr), image.size())) {
    return Error("ELF program headers (" + std::to_string(eh.e_phnum) + " at offset " +
                 Hex(eh.e_phoff) + ") lie outside the " + std::to_string(image.size()) +
                 "-byte file: truncated or corrupt");
  }

  std::vector<Elf64_Phdr> loads;
  for (uint16_t i = 0; i < eh.e_phnum; ++i) {
    Elf64_Phdr ph;
    std::memcpy(&ph, image.data() + eh.e_phoff + i * sizeof(Elf64_Phdr), sizeof(ph));
    if (ph.p_type != PT_LOAD || ph.p_memsz == 0) continue;
    std::string seg =
        "ELF segment " + std::to_string(i) + " (" + Hex(ph.p_paddr) + "+" + Hex(ph.p_memsz) + ")";
    if (!base::RangeFits(ph.p_offset, ph.p_filesz, image.size())) {
      return Error(seg + ": file data at offset " + Hex(ph.p_offset) + "+" + Hex(ph.p_filesz) +
                   " is past the end of the file: truncated image");
    }
    if (ph.p_filesz > ph.p_memsz) return Error(seg + ": file size larger than memory size");
    if (ph.p_paddr < lowest_addr) {
      return Error(seg + " starts below " + Hex(lowest_addr) +
                   ", where crosvm keeps its boot structures");
    }
    if (!mem.IsValidRange(ph.p_paddr, ph.p_memsz)) {
      return Error(seg + " does not fit in guest RAM (ends at " + Hex(mem.end_addr()) +
                   "); the kernel is larger than memory or "
                   "placed outside it: increase -m");
    }
    for (const auto& other : loads) {
      if (ph.p_paddr < other.p_paddr + other.p_memsz && other.p_paddr < ph.p_paddr + ph.p_memsz) {
        return Error(seg + " overlaps the segment at " + Hex(other.p_paddr));
      }
    }
    loads.push_back(ph);
  }
  if (loads.empty()) return Error("ELF image has no loadable segment");

  // The entry point is physical for vmlinux; accept a virtual one by translating it through the
  // segment that contains it.
  std::optional<uint64_t> entry;
  for (const auto& ph : loads) {
    if (eh.e_entry >= ph.p_paddr && eh.e_entry < ph.p_paddr + ph.p_memsz) entry = eh.e_entry;
  }
  if (!entry) {
    for (const auto& ph : loads) {
      if (eh.e_entry >= ph.p_vaddr && eh.e_entry < ph.p_vaddr + ph.p_memsz) {
        entry = eh.e_entry - ph.p_vaddr + ph.p_paddr;
      }
    }
  }
  if (!entry) return Error("ELF entry point " + Hex(eh.e_entry) + " is in no loaded segment");

  uint64_t end = 0;
  for (const auto& ph : loads) {
    uint8_t* dst = mem.HostAddress(ph.p_paddr, ph.p_memsz);
    std::memcpy(dst, image.data() + ph.p_offset, ph.p_filesz);
    std::memset(dst + ph.p_filesz, 0, ph.p_memsz - ph.p_filesz);
    end = std::max(end, ph.p_paddr + ph.p_memsz);
  }
  return LoadedKernel{KernelFormat::kElf, *entry, end, 2048, kDefaultInitrdMax, std::nullopt};
}

Result<LoadedKernel> LoadBzImage(memory::GuestMemory& mem, std::span<const uint8_t> image,
                                 uint64_t load_addr) {
  if (image.size() < 0x202 + 1) return Error("bzImage is truncated before its setup header");
  // The setup header runs from 0x1f1 to 0x202 + the byte at 0x201 (the jump's displacement).
  size_t header_end = 0x202 + image[0x201];
  if (header_end > image.size()) return Error("bzImage is truncated inside its setup header");
  setup_header hdr{};
  size_t copy = std::min(sizeof(hdr), header_end - kSetupHeaderOffset);
  std::memcpy(&hdr, image.data() + kSetupHeaderOffset, copy);
  if (hdr.boot_flag != 0xaa55) return Error("bzImage boot flag is not 0xaa55");
  if (hdr.version < kMinBootProtocol) {
    return Error("bzImage boot protocol " + std::to_string(hdr.version >> 8) + "." +
                 std::to_string(hdr.version & 0xff) + " is too old: 2.12 or newer is needed");
  }
  if (!(hdr.xloadflags & XLF_KERNEL_64)) {
    return Error("bzImage has no 64-bit entry point (XLF_KERNEL_64 not set)");
  }
  if (!(hdr.loadflags & LOADED_HIGH)) return Error("bzImage is not a high-loaded (bz) kernel");
  uint64_t setup_sects = hdr.setup_sects == 0 ? 4 : hdr.setup_sects;
  uint64_t setup_size = (setup_sects + 1) * 512;
  if (setup_size >= image.size()) {
    return Error("bzImage is truncated: its setup (" + std::to_string(setup_size) +
                 " bytes) leaves no kernel in the " + std::to_string(image.size()) + "-byte file");
  }
  uint64_t kernel_size = image.size() - setup_size;
  // The 64-bit entry point lies 0x200 bytes into the protected-mode kernel; a kernel that ends
  // there would start the vCPU in bytes the image never provided.
  if (kernel_size <= k64BitEntryOffset) {
    return Error("bzImage is truncated: its kernel (" + std::to_string(kernel_size) +
                 " bytes) ends before the 64-bit entry point at offset " + Hex(k64BitEntryOffset));
  }
  if (hdr.syssize != 0 && uint64_t{hdr.syssize} * 16 > kernel_size) {
    return Error("bzImage is truncated: the header says " +
                 std::to_string(uint64_t{hdr.syssize} * 16) + " bytes of kernel, the file has " +
                 std::to_string(kernel_size));
  }
  // The kernel decompresses in place: it needs init_size bytes from the load address.
  uint64_t needed = std::max<uint64_t>(kernel_size, hdr.init_size);
  if (!mem.IsValidRange(load_addr, needed)) {
    return Error("bzImage needs " + std::to_string(needed >> 20) + " MiB from " + Hex(load_addr) +
                 ", more than guest RAM holds: increase -m");
  }
  CROSVM_RETURN_IF_ERROR(mem.Write(load_addr, image.subspan(setup_size)));
  uint64_t cmdline_max = hdr.cmdline_size ? uint64_t{hdr.cmdline_size} + 1 : 256;
  uint64_t initrd_max = hdr.initrd_addr_max ? hdr.initrd_addr_max : kDefaultInitrdMax;
  return LoadedKernel{KernelFormat::kBzImage,
                      load_addr + k64BitEntryOffset,
                      load_addr + needed,
                      std::min<uint64_t>(cmdline_max, 2048),
                      initrd_max,
                      hdr};
}

Result<uint64_t> LoadInitrd(memory::GuestMemory& mem, const LoadedKernel& kernel,
                            std::span<const uint8_t> initrd) {
  uint64_t size = initrd.size();
  if (size == 0) return Error("initrd is empty");
  uint64_t aligned = (size + kPageSize - 1) & ~(kPageSize - 1);
  // Try the regions from the top down; the initrd must stay below initrd_addr_max.
  const auto& regions = mem.regions();
  for (auto it = regions.rbegin(); it != regions.rend(); ++it) {
    uint64_t top = std::min(it->end(), kernel.initrd_addr_max + 1);
    uint64_t bottom = std::max(it->guest_addr, (kernel.end + kPageSize - 1) & ~(kPageSize - 1));
    if (top <= bottom || top - bottom < aligned) continue;
    uint64_t addr = (top - aligned) & ~(kPageSize - 1);
    CROSVM_RETURN_IF_ERROR(mem.Write(addr, initrd));
    return addr;
  }
  return Error("initrd (" + std::to_string(size >> 10) +
               " KiB) does not fit in guest RAM "
               "between the kernel's end (" +
               Hex(kernel.end) + ") and " + Hex(kernel.initrd_addr_max) + ": increase -m");
}

}  // namespace crosvm::loader
