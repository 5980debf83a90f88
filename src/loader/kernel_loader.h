// Loads a kernel image into guest memory: an ELF64 vmlinux (entered at its 64-bit entry point)
// or a bzImage (Linux boot protocol 2.12+, 64-bit entry at load address + 0x200), and an initrd.
// Every header field is checked against the file and guest memory before anything is copied.
#pragma once

#include <asm/bootparam.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/error.h"
#include "memory/guest_memory.h"

namespace crosvm::loader {

enum class KernelFormat { kElf, kBzImage };

struct LoadedKernel {
  KernelFormat format;
  uint64_t entry;            // guest physical address of the 64-bit entry point
  uint64_t end;              // first byte after the loaded image (where the initrd may start)
  uint64_t cmdline_max;      // the kernel's command line limit, NUL included
  uint64_t initrd_addr_max;  // highest address the initrd may occupy
  std::optional<setup_header> bzimage_header;  // copied into the zero page for bzImage
};

// Reads a whole file (kernel or initrd), with an error naming the path.
base::Result<std::vector<uint8_t>> ReadFile(const std::string& path);

// Detects the format from the image's bytes and loads it. `lowest_addr` is the first address a
// segment may occupy (below it live crosvm's boot structures).
base::Result<LoadedKernel> LoadKernel(memory::GuestMemory& mem, std::span<const uint8_t> image,
                                      uint64_t lowest_addr);
base::Result<LoadedKernel> LoadElf(memory::GuestMemory& mem, std::span<const uint8_t> image,
                                   uint64_t lowest_addr);
base::Result<LoadedKernel> LoadBzImage(memory::GuestMemory& mem, std::span<const uint8_t> image,
                                       uint64_t load_addr);

// Places the initrd at the highest page-aligned address that is above `kernel.end`, inside one
// RAM region and below `kernel.initrd_addr_max`. Returns its address.
base::Result<uint64_t> LoadInitrd(memory::GuestMemory& mem, const LoadedKernel& kernel,
                                  std::span<const uint8_t> initrd);

}  // namespace crosvm::loader
