/* acpi_poweroff: powers the machine off the way an ACPI OS does, without an AML interpreter:
 * the RSDP from the zero page (boot_params.acpi_rsdp_addr at 0x70), the XSDT, the FADT's PM1a
 * control block and X_DSDT, the SLP_TYP of the DSDT's \_S5 package, then SLP_TYP | SLP_EN.
 * A VMM that implements it ends the VM there; a guest still running 2 s later exits with 1.
 * Every table it follows must carry a valid checksum (exit 3 otherwise). */
#include "testguest.h"

static uint8_t sum(const uint8_t* p, uint32_t n) {
  uint8_t s = 0;
  for (uint32_t i = 0; i < n; ++i) s = (uint8_t)(s + p[i]);
  return s;
}

static uint64_t rd(const uint8_t* p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

static const uint8_t* table(uint64_t addr, const char* sig) {
  const uint8_t* t = (const uint8_t*)addr;
  if (!addr || memcmp(t, sig, 4) != 0) return 0;
  uint32_t len = (uint32_t)rd(t + 4, 4);
  if (len < 36 || sum(t, len) != 0) return 0;
  return t;
}

int test_main(void) {
  if (boot_path() != BOOT_PATH_ELF64) {
    printf("TESTGUEST acpi_poweroff: needs the elf64 entry (the zero page)\n");
    return 2;
  }
  const uint8_t* zp = (const uint8_t*)boot_info_addr();
  const uint8_t* rsdp = (const uint8_t*)rd(zp + 0x70, 8);
  if (!rsdp || memcmp(rsdp, "RSD PTR ", 8) != 0 || sum(rsdp, 20) != 0 || rsdp[15] < 2 ||
      sum(rsdp, 36) != 0) {
    printf("TESTGUEST acpi_poweroff: no valid RSDP at %p\n", (const void*)rsdp);
    return 3;
  }
  const uint8_t* xsdt = table(rd(rsdp + 24, 8), "XSDT");
  if (!xsdt) return 3;
  const uint8_t* fadt = 0;
  uint32_t n = ((uint32_t)rd(xsdt + 4, 4) - 36) / 8;
  for (uint32_t i = 0; i < n && !fadt; ++i) fadt = table(rd(xsdt + 36 + 8 * i, 8), "FACP");
  if (!fadt) return 3;
  uint16_t pm1a_cnt = (uint16_t)rd(fadt + 64, 4);
  const uint8_t* dsdt = table(rd(fadt + 140, 8), "DSDT");
  if (!dsdt) return 3;
  /* Name (_S5, Package (n) {SLP_TYPa, ...}): "_S5_", PackageOp, a 1-byte PkgLength, n. */
  uint32_t len = (uint32_t)rd(dsdt + 4, 4);
  int slp_typ = -1;
  for (uint32_t i = 36; i + 8 <= len && slp_typ < 0; ++i) {
    const uint8_t* p = dsdt + i;
    if (memcmp(p, "_S5_", 4) != 0 || p[4] != 0x12 || (p[5] >> 6) != 0) continue;
    if (p[7] == 0x0a)
      slp_typ = p[8]; /* BytePrefix */
    else if (p[7] == 0x00 || p[7] == 0x01)
      slp_typ = p[7]; /* ZeroOp, OneOp */
  }
  if (slp_typ < 0 || slp_typ > 7) {
    printf("TESTGUEST acpi_poweroff: no \\_S5 in the DSDT\n");
    return 4;
  }
  printf("TESTGUEST acpi_poweroff: PM1a_CNT 0x%x SLP_TYP %d\n", pm1a_cnt, slp_typ);
  uint16_t pm_tmr = (uint16_t)rd(fadt + 76, 4);
  outw(pm1a_cnt, (uint16_t)((slp_typ << 10) | (1 << 13)));
  /* As an OS does, wait for the machine to go away: the VMM stops the vCPUs shortly after the
   * write, not at it. Two seconds by the PM timer (bounded, for a VMM without one). */
  uint32_t start = inl(pm_tmr);
  for (uint32_t i = 0; i < 100000000u && (uint32_t)(inl(pm_tmr) - start) < 2 * 3579545u; ++i) {
  }
  printf("TESTGUEST acpi_poweroff: still running after SLP_EN\n");
  return 1;
}
