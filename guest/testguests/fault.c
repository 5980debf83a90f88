/* fault: takes an exception on purpose to show the exception path: the IDT
 * handler prints the vector, error code and RIP, then exits with
 * EXIT_EXCEPTION_BASE + vector (134 for #UD). Reaching the end is a failure.
 *
 * FAULT_KIND selects the exception: 0 = #UD (ud2, default), 1 = #PF (read
 * above the 4 GiB identity map), 2 = #GP (non-canonical address), 3 = #DE
 * (divide by zero). */
#include "testguest.h"

#ifndef FAULT_KIND
#define FAULT_KIND 0
#endif

int test_main(void) {
  printf("TESTGUEST fault boot=%s kind=%d\n", boot_path_name(), FAULT_KIND);
#if FAULT_KIND == 0
  printf("TESTGUEST fault: executing ud2, expect vector 6 (#UD)\n");
  __asm__ volatile("ud2");
#elif FAULT_KIND == 1
  printf("TESTGUEST fault: reading 0x10000000000, expect vector 14 (#PF)\n");
  (void)*(volatile uint64_t*)0x10000000000ull;
#elif FAULT_KIND == 2
  printf("TESTGUEST fault: reading a non-canonical address, expect vector 13 (#GP)\n");
  (void)*(volatile uint64_t*)0x8000000000000000ull;
#elif FAULT_KIND == 3
  printf("TESTGUEST fault: dividing by zero, expect vector 0 (#DE)\n");
  volatile uint32_t zero = 0;
  uint32_t lo = 1, hi = 0, divisor = zero;
  __asm__ volatile("divl %2" : "+a"(lo), "+d"(hi) : "r"(divisor));
#else
#error unknown FAULT_KIND
#endif
  printf("TESTGUEST fault: no exception was taken\n");
  return 1;
}
