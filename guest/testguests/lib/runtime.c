/* runtime.c: C entry, boot information, exit, IDT and exception reporting, timing. */
#include "testguest.h"

void testguest_start(uint32_t path, uint64_t info) __attribute__((noreturn, used));
struct exception_frame;
void exception_handler(struct exception_frame* f) __attribute__((used));

static enum boot_path g_boot_path;
static uint64_t g_boot_info;

enum boot_path boot_path(void) {
  return g_boot_path;
}
const char* boot_path_name(void) {
  switch (g_boot_path) {
    case BOOT_PATH_PVH:
      return "pvh";
    case BOOT_PATH_ELF64:
      return "elf64";
  }
  return "unknown";
}
uint64_t boot_info_addr(void) {
  return g_boot_info;
}

void testguest_start(uint32_t path, uint64_t info) {
  g_boot_path = (enum boot_path)path;
  g_boot_info = info;
  serial_init();
  idt_init();
  guest_exit(test_main());
}

/* ---- boot information --------------------------------------------------- */

#define HVM_START_MAGIC 0x336ec578u
#define FOUR_GIB 0x100000000ull

/* Is [addr, addr+len) inside the identity-mapped first 4 GiB (and not page 0)? */
static int addr_ok(uint64_t addr, uint64_t len) {
  return addr != 0 && addr < FOUR_GIB && len <= FOUR_GIB - addr;
}

static void print_cmdline(uint64_t addr) {
  if (!addr_ok(addr, 1)) {
    printf("  cmdline: (none)\n");
    return;
  }
  const char* s = (const char*)addr;
  printf("  cmdline: \"");
  for (int i = 0; i < 256 && s[i]; i++) serial_putc(s[i] >= 32 && s[i] < 127 ? s[i] : '?');
  printf("\"\n");
}

static const char* e820_type_name(uint32_t t) {
  switch (t) {
    case 1:
      return "ram";
    case 2:
      return "reserved";
    case 3:
      return "acpi";
    case 4:
      return "nvs";
    case 5:
      return "unusable";
  }
  return "?";
}

static void print_mem_entry(unsigned i, uint64_t addr, uint64_t size, uint32_t type) {
  if (size == 0) {
    printf("  mem[%u] (empty)\n", i);
    return;
  }
  printf("  mem[%u] 0x%016lx-0x%016lx %s\n", i, addr, addr + size - 1, e820_type_name(type));
}

void boot_info_print(void) {
  uint64_t a = g_boot_info;
  if (g_boot_path == BOOT_PATH_PVH) {
    printf("boot: pvh, hvm_start_info at 0x%lx\n", a);
    if (!addr_ok(a, 0x38)) return;
    uint32_t magic = mmio_read32(a + 0x00), version = mmio_read32(a + 0x04);
    printf("  magic 0x%x%s version %u flags 0x%x modules %u rsdp 0x%lx\n", magic,
           magic == HVM_START_MAGIC ? " (ok)" : " (BAD)", version, mmio_read32(a + 0x08),
           mmio_read32(a + 0x0c), mmio_read64(a + 0x20));
    if (magic != HVM_START_MAGIC) return;
    print_cmdline(mmio_read64(a + 0x18));
    if (version >= 1) {
      uint64_t map = mmio_read64(a + 0x28);
      uint32_t n = mmio_read32(a + 0x30);
      if (n > 64) n = 64;
      if (!addr_ok(map, (uint64_t)n * 24)) return;
      for (uint32_t i = 0; i < n; i++)
        print_mem_entry(i, mmio_read64(map + i * 24), mmio_read64(map + i * 24 + 8),
                        mmio_read32(map + i * 24 + 16));
    }
  } else {
    printf("boot: elf64, zero page at 0x%lx\n", a);
    if (!addr_ok(a, 0x1000)) return;
    uint32_t hdr_magic = mmio_read32(a + 0x202);
    printf("  setup header magic 0x%x%s\n", hdr_magic, hdr_magic == 0x53726448 ? " (HdrS)" : "");
    uint64_t cmd = mmio_read32(a + 0x228) | ((uint64_t)mmio_read32(a + 0x0c8) << 32);
    print_cmdline(cmd);
    uint32_t n = mmio_read8(a + 0x1e8);
    if (n > 128) n = 128;
    for (uint32_t i = 0; i < n; i++) {
      uint64_t e = a + 0x2d0 + i * 20;
      print_mem_entry(i, mmio_read64(e), mmio_read64(e + 8), mmio_read32(e + 16));
    }
  }
}

/* ---- exit --------------------------------------------------------------- */

void guest_exit(int code) {
  printf("TESTGUEST EXIT %d\n", code);
  serial_flush();
  /* i8042 "pulse reset line": the project's VMM and QEMU -no-reboot end here. */
  outb(0x64, 0xfe);
  busy_wait(1000);
  /* No i8042 (QEMU microvm): triple fault. An empty IDT makes the #GP from
   * the non-canonical access below unreportable -> #DF -> shutdown. */
  static const struct __attribute__((packed)) {
    uint16_t limit;
    uint64_t base;
  } no_idt = {0, 0};
  __asm__ volatile("lidt %0" : : "m"(no_idt));
  (void)*(volatile uint64_t*)0x8000000000000000ull;
  for (;;) __asm__ volatile("cli; hlt");
}

/* ---- IDT and exceptions ------------------------------------------------- */

struct idt_entry {
  uint16_t offset_lo;
  uint16_t selector;
  uint8_t ist;
  uint8_t type_attr;
  uint16_t offset_mid;
  uint32_t offset_hi;
  uint32_t zero;
} __attribute__((packed));

struct exception_frame {
  uint64_t r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
  uint64_t vector, error;
  uint64_t rip, cs, rflags, rsp, ss; /* pushed by the CPU */
};

extern const uint64_t isr_table[32];
static struct idt_entry idt[32] __attribute__((aligned(16)));

void idt_init(void) {
  for (int i = 0; i < 32; i++) {
    uint64_t h = isr_table[i];
    idt[i].offset_lo = (uint16_t)h;
    idt[i].selector = 0x10;
    idt[i].ist = 0;
    idt[i].type_attr = 0x8e; /* present, DPL 0, 64-bit interrupt gate */
    idt[i].offset_mid = (uint16_t)(h >> 16);
    idt[i].offset_hi = (uint32_t)(h >> 32);
    idt[i].zero = 0;
  }
  struct __attribute__((packed)) {
    uint16_t limit;
    uint64_t base;
  } idtr = {sizeof(idt) - 1, (uint64_t)idt};
  __asm__ volatile("lidt %0" : : "m"(idtr));
}

static const char* const exception_names[32] = {"#DE divide error",
                                                "#DB debug",
                                                "NMI",
                                                "#BP breakpoint",
                                                "#OF overflow",
                                                "#BR bound range",
                                                "#UD invalid opcode",
                                                "#NM device not available",
                                                "#DF double fault",
                                                "coprocessor overrun",
                                                "#TS invalid TSS",
                                                "#NP segment not present",
                                                "#SS stack fault",
                                                "#GP general protection",
                                                "#PF page fault",
                                                "reserved 15",
                                                "#MF x87 error",
                                                "#AC alignment check",
                                                "#MC machine check",
                                                "#XM SIMD error",
                                                "#VE virtualization",
                                                "#CP control protection",
                                                "reserved 22",
                                                "reserved 23",
                                                "reserved 24",
                                                "reserved 25",
                                                "reserved 26",
                                                "reserved 27",
                                                "#HV hypervisor injection",
                                                "#VC VMM communication",
                                                "#SX security",
                                                "reserved 31"};

static int in_exception;

void exception_handler(struct exception_frame* f) {
  if (in_exception++) {
    /* An exception while reporting one: do not recurse, just end the VM. */
    outb(0x64, 0xfe);
    for (;;) __asm__ volatile("cli; hlt");
  }
  printf("TESTGUEST EXCEPTION vector=%lu (%s) error=0x%lx rip=0x%lx\n", f->vector,
         f->vector < 32 ? exception_names[f->vector] : "?", f->error, f->rip);
  printf("  cs=0x%lx rflags=0x%lx rsp=0x%lx ss=0x%lx cr2=0x%lx cr3=0x%lx\n", f->cs, f->rflags,
         f->rsp, f->ss, read_cr2(), read_cr3());
  printf("  rax=%016lx rbx=%016lx rcx=%016lx rdx=%016lx\n", f->rax, f->rbx, f->rcx, f->rdx);
  printf("  rsi=%016lx rdi=%016lx rbp=%016lx r8 =%016lx\n", f->rsi, f->rdi, f->rbp, f->r8);
  printf("  r9 =%016lx r10=%016lx r11=%016lx r12=%016lx\n", f->r9, f->r10, f->r11, f->r12);
  printf("  r13=%016lx r14=%016lx r15=%016lx\n", f->r13, f->r14, f->r15);
  guest_exit(EXIT_EXCEPTION_BASE + (int)f->vector);
}

/* ---- timing ------------------------------------------------------------- */

void busy_wait(uint64_t iterations) {
  for (uint64_t i = 0; i < iterations; i++) barrier();
}

/* The TSC is measured against PIT channel 0, read back with latch commands.
 * Channel 0 is used because its gate is always on: channel 2's gate hangs off
 * port 0x61, which QEMU's microvm does not have (QEMU creates the in-kernel
 * PIT with a dummy speaker port). Interrupts stay disabled, so the IRQ0 that
 * channel 0 raises is never taken; it is left in one-shot mode afterwards. */
#define PIT_HZ 1193182ull
#define CAL_TICKS 23864u /* ~20 ms */

static uint16_t pit0_read(void) {
  outb(0x43, 0x00); /* latch channel 0 */
  uint8_t lo = inb(0x40);
  uint8_t hi = inb(0x40);
  return (uint16_t)(lo | (hi << 8));
}

static uint64_t g_tsc_khz;
static int g_tsc_khz_done;

uint64_t tsc_khz(void) {
  if (g_tsc_khz_done) return g_tsc_khz;
  g_tsc_khz_done = 1;
  outb(0x43, 0x34); /* channel 0, lo/hi byte, mode 2 (rate generator), binary */
  outb(0x40, 0);    /* count 65536 */
  outb(0x40, 0);
  uint16_t prev = pit0_read();
  uint64_t t0 = rdtsc(), t1 = t0;
  uint32_t elapsed = 0;
  for (uint32_t i = 0; i < 200000 && elapsed < CAL_TICKS; i++) {
    uint16_t cur = pit0_read();
    elapsed += (uint16_t)(prev - cur);
    prev = cur;
    t1 = rdtsc();
    if (i == 1000 && elapsed == 0) break; /* the counter does not move: no PIT */
  }
  outb(0x43, 0x30); /* channel 0 back to mode 0 (one-shot) */
  outb(0x40, 0xff);
  outb(0x40, 0xff);
  if (elapsed < CAL_TICKS) return 0;
  g_tsc_khz = (t1 - t0) * PIT_HZ / elapsed / 1000;
  return g_tsc_khz;
}

uint64_t tsc_to_ns(uint64_t ticks) {
  uint64_t khz = tsc_khz();
  if (!khz) return 0;
  if (ticks < (1ull << 44)) return ticks * 1000000 / khz;
  return ticks / khz * 1000000;
}
