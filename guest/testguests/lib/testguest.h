/* testguest.h: the whole framework API for the freestanding ring-0 test guests.
 *
 * A test guest is one C file that defines `int test_main(void)`. The framework
 * (boot.S) brings both boot paths (PVH 32-bit entry and the 64-bit ELF entry)
 * to the same state: long mode, own GDT (code 0x10, data 0x18), own identity
 * page tables for the first 4 GiB (2 MiB pages), own stack, zeroed .bss,
 * interrupts disabled, an IDT that reports every exception and exits. Then
 * serial is initialised and test_main() is called; its return value is handed
 * to guest_exit().
 *
 * Everything is compiled with -mgeneral-regs-only: no SSE, x87, POPCNT or INT3
 * may appear (the nested KVM's instruction emulator cannot execute them).
 */
#ifndef TESTGUEST_H
#define TESTGUEST_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* ---- what every test guest provides ------------------------------------ */
int test_main(void);

/* ---- boot ------------------------------------------------------------- */
enum boot_path {
  BOOT_PATH_PVH = 1,   /* 32-bit PVH entry (XEN_ELFNOTE_PHYS32_ENTRY), EBX = hvm_start_info */
  BOOT_PATH_ELF64 = 2, /* 64-bit ELF e_entry, RSI = Linux zero page (boot_params) */
};
enum boot_path boot_path(void);
const char* boot_path_name(void); /* "pvh" or "elf64" */
uint64_t boot_info_addr(void);    /* hvm_start_info (pvh) or boot_params (elf64) */
/* Prints what the loader handed over (start_info / zero page, memory map, command line). */
void boot_info_print(void);

/* ---- exit ------------------------------------------------------------- */
/* Prints "TESTGUEST EXIT <code>", then resets through the i8042 (port 0x64 <- 0xfe);
 * falls back to a triple fault where there is no i8042 (QEMU microvm). */
__attribute__((noreturn)) void guest_exit(int code);
/* Exit code used when an exception is taken: EXIT_EXCEPTION_BASE + vector. */
#define EXIT_EXCEPTION_BASE 128

/* ---- console ---------------------------------------------------------- */
void serial_init(void);
void serial_putc(char c);
void serial_flush(void); /* waits (bounded) until the transmitter is empty */
void puts_nonl(const char* s);
int printf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
int vprintf(const char* fmt, va_list ap);
int snprintf(char* buf, size_t size, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
int vsnprintf(char* buf, size_t size, const char* fmt, va_list ap);
void hexdump(const void* data, size_t len);

/* ---- string (the compiler may also emit calls to these) ---------------- */
void* memset(void* dst, int c, size_t n);
void* memcpy(void* dst, const void* src, size_t n);
void* memmove(void* dst, const void* src, size_t n);
int memcmp(const void* a, const void* b, size_t n);
size_t strlen(const char* s);

/* ---- port I/O ---------------------------------------------------------- */
static inline void outb(uint16_t port, uint8_t v) {
  __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}
static inline void outw(uint16_t port, uint16_t v) {
  __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port));
}
static inline void outl(uint16_t port, uint32_t v) {
  __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}
static inline uint8_t inb(uint16_t port) {
  uint8_t v;
  __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}
static inline uint16_t inw(uint16_t port) {
  uint16_t v;
  __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}
static inline uint32_t inl(uint16_t port) {
  uint32_t v;
  __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}

/* ---- MMIO (identity mapped below 4 GiB; 3-4 GiB is mapped uncached) ---- */
static inline void mmio_write8(uint64_t a, uint8_t v) {
  *(volatile uint8_t*)a = v;
}
static inline void mmio_write16(uint64_t a, uint16_t v) {
  *(volatile uint16_t*)a = v;
}
static inline void mmio_write32(uint64_t a, uint32_t v) {
  *(volatile uint32_t*)a = v;
}
static inline void mmio_write64(uint64_t a, uint64_t v) {
  *(volatile uint64_t*)a = v;
}
static inline uint8_t mmio_read8(uint64_t a) {
  return *(volatile uint8_t*)a;
}
static inline uint16_t mmio_read16(uint64_t a) {
  return *(volatile uint16_t*)a;
}
static inline uint32_t mmio_read32(uint64_t a) {
  return *(volatile uint32_t*)a;
}
static inline uint64_t mmio_read64(uint64_t a) {
  return *(volatile uint64_t*)a;
}

/* ---- CPU --------------------------------------------------------------- */
/* Compiler-only barrier: x86 is TSO, and nothing here needs LFENCE/MFENCE
 * (which the nested KVM's emulator may not execute). */
#define barrier() __asm__ volatile("" : : : "memory")

static inline uint64_t rdtsc(void) {
  uint32_t lo, hi;
  __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi) : : "memory");
  return ((uint64_t)hi << 32) | lo;
}
static inline void cpuid(uint32_t leaf, uint32_t sub, uint32_t* a, uint32_t* b, uint32_t* c,
                         uint32_t* d) {
  __asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(sub));
}
static inline uint64_t read_cr2(void) {
  uint64_t v;
  __asm__ volatile("mov %%cr2, %0" : "=r"(v));
  return v;
}
static inline uint64_t read_cr0(void) {
  uint64_t v;
  __asm__ volatile("mov %%cr0, %0" : "=r"(v));
  return v;
}
static inline uint64_t read_cr3(void) {
  uint64_t v;
  __asm__ volatile("mov %%cr3, %0" : "=r"(v));
  return v;
}
static inline uint64_t read_cr4(void) {
  uint64_t v;
  __asm__ volatile("mov %%cr4, %0" : "=r"(v));
  return v;
}

/* Busy-waits roughly `iterations` loop turns (no timer; under the nested KVM's
 * emulator one turn is ~1 us, on hardware ~1 ns). */
void busy_wait(uint64_t iterations);

/* TSC frequency in kHz measured against PIT channel 2 (ports 0x42/0x43/0x61);
 * 0 when the PIT does not answer. Measured once, then cached. */
uint64_t tsc_khz(void);
/* Converts TSC ticks to nanoseconds with tsc_khz(); 0 when unknown. */
uint64_t tsc_to_ns(uint64_t ticks);

/* ---- exceptions -------------------------------------------------------- */
void idt_init(void);

#endif /* TESTGUEST_H */
