/* pio_exits: PIO_EXIT_COUNT byte writes to an I/O port nobody handles, timed with RDTSC.
 *
 * PIO_EXIT_PORT 0x5e0 is free in QEMU's pc/q35/microvm machines (0x510-0x51b,
 * the obvious neighbour, is fw_cfg) and in the project's VMM; each write is
 * one KVM_EXIT_IO that the VMM ignores. */
#include "exits_common.h"

#ifndef PIO_EXIT_COUNT
#define PIO_EXIT_COUNT 100000
#endif
#ifndef PIO_EXIT_PORT
#define PIO_EXIT_PORT 0x5e0
#endif

int test_main(void) {
  const uint64_t n = PIO_EXIT_COUNT;
  printf("TESTGUEST pio_exits boot=%s port=0x%x count=%lu\n", boot_path_name(), PIO_EXIT_PORT, n);

  uint64_t b0 = rdtsc();
  for (uint64_t i = 0; i < n; i++) barrier(); /* same loop, no exit */
  uint64_t b1 = rdtsc();

  uint64_t t0 = rdtsc();
  for (uint64_t i = 0; i < n; i++) outb(PIO_EXIT_PORT, (uint8_t)i);
  uint64_t t1 = rdtsc();

  report_exits("pio_exits", n, t1 - t0, b1 - b0);
  return 0;
}
