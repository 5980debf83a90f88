// Allocation of guest address space for device BARs: an I/O port window, a 32-bit MMIO window
// in the gap below 4 GiB and a 64-bit MMIO window above RAM. Ranges can be reserved (kept
// free for good) before anything is allocated.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "base/error.h"

namespace crosvm::devices::pci {

// First-fit allocator over one window [base, base + size), with alignment. Not thread-safe:
// used while the VM is built.
class AddressAllocator {
 public:
  AddressAllocator(std::string name, uint64_t base, uint64_t size);

  // Takes [base, base + size) out of the free space (the parts that lie inside the window).
  base::Status Reserve(uint64_t base, uint64_t size);
  // `size` > 0; `align` a power of two (0 or 1: none). Returns the lowest fitting address.
  base::Result<uint64_t> Allocate(uint64_t size, uint64_t align);
  // Gives back a range returned by Allocate.
  base::Status Release(uint64_t addr);

  uint64_t base() const { return base_; }
  uint64_t end() const { return end_; }  // exclusive
  const std::string& name() const { return name_; }

 private:
  void TakeOut(uint64_t start, uint64_t end);

  std::string name_;
  uint64_t base_;
  uint64_t end_;
  std::map<uint64_t, uint64_t> free_;       // start -> end (exclusive)
  std::map<uint64_t, uint64_t> allocated_;  // start -> end (exclusive)
};

// The three windows a PCI root allocates BARs from.
struct SystemAllocator {
  AddressAllocator io;
  AddressAllocator mmio32;
  AddressAllocator mmio64;
};

// The x86_64 layout: I/O ports 0x1000-0xffff; MMIO from arch::kMmioGapStart up to the IOAPIC
// (0xfec00000) minus 0xd8000000-0xd8ffffff (the benchmark guests' no-op MMIO address); 64 GiB
// starting at the first 1 GiB boundary at or above max(4 GiB, ram_end). I/O port 0x5e0 (the
// benchmark guests' no-op port) lies below the I/O window and is reserved as well.
base::Result<SystemAllocator> CreateX86SystemAllocator(uint64_t ram_end);

}  // namespace crosvm::devices::pci
