/* mmio_exits: MMIO_EXIT_COUNT 32-bit writes to a guest-physical address with
 * no memory and no device behind it, timed with RDTSC.
 *
 * MMIO_EXIT_ADDR 0xd8000000 lies in the 32-bit PCI hole (3.25-4 GiB), clear
 * of RAM (which ends at 0xd0000000 at most in a crosvm-style layout), of
 * q35's MMCONFIG (0xb0000000-0xbfffffff), of SeaBIOS's BARs (packed below
 * 0xfec00000), of microvm's virtio-mmio (0xfeb00000), and 128 MiB above the
 * bottom of a bottom-up BAR allocator starting at 0xd0000000. Each write is
 * one KVM_EXIT_MMIO that the VMM ignores. See README.md. */
#include "exits_common.h"

#ifndef MMIO_EXIT_COUNT
#define MMIO_EXIT_COUNT 100000
#endif
#ifndef MMIO_EXIT_ADDR
#define MMIO_EXIT_ADDR 0xd8000000ull
#endif

int test_main(void) {
  const uint64_t n = MMIO_EXIT_COUNT;
  const uint64_t addr = MMIO_EXIT_ADDR;
  printf("TESTGUEST mmio_exits boot=%s addr=0x%lx count=%lu\n", boot_path_name(), addr, n);

  uint64_t b0 = rdtsc();
  for (uint64_t i = 0; i < n; i++) barrier();
  uint64_t b1 = rdtsc();

  uint64_t t0 = rdtsc();
  for (uint64_t i = 0; i < n; i++) mmio_write32(addr, (uint32_t)i);
  uint64_t t1 = rdtsc();

  report_exits("mmio_exits", n, t1 - t0, b1 - b0);
  return 0;
}
