/* exits_common.h: shared reporting for the exit-cost guests (pio_exits, mmio_exits). */
#ifndef EXITS_COMMON_H
#define EXITS_COMMON_H

#include "testguest.h"

/* Prints one result line:
 *   TESTGUEST <name> count=N tsc_total=T tsc_per_exit=P [baseline_per_iter=B] [ns_per_exit=X
 * tsc_khz=K] `baseline` is the TSC cost of the same loop without the exiting access. */
static inline void report_exits(const char* name, uint64_t count, uint64_t tsc_total,
                                uint64_t baseline_total) {
  uint64_t per = count ? tsc_total / count : 0;
  uint64_t base = count ? baseline_total / count : 0;
  uint64_t khz = tsc_khz();
  printf("TESTGUEST %s count=%lu tsc_total=%lu tsc_per_exit=%lu baseline_tsc_per_iter=%lu", name,
         count, tsc_total, per, base);
  if (khz) {
    printf(" ns_per_exit=%lu total_ms=%lu tsc_khz=%lu", tsc_to_ns(per),
           tsc_to_ns(tsc_total) / 1000000, khz);
  } else {
    printf(" tsc_khz=unknown");
  }
  printf("\n");
}

#endif /* EXITS_COMMON_H */
