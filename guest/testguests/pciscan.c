/* pciscan: lists every PCI function reachable through configuration mechanism
 * #1 (0xcf8/0xcfc): bus:dev.fn, vendor:device, class, header type, BARs
 * (sized by writing all-ones) and capability ids. Without a PCI host (all
 * reads return all-ones) it reports "no PCI devices". */
#include "pci.h"

static void print_function(struct pci_addr a, void* ctx) {
  (void)ctx;
  uint32_t id = pci_read32(a, PCI_VENDOR_ID);
  uint32_t cr = pci_read32(a, PCI_CLASS_REVISION);
  uint8_t hdr = pci_read8(a, PCI_HEADER_TYPE);
  uint8_t base = (uint8_t)(cr >> 24);
  printf("pci %02x:%02x.%x %04x:%04x class %02x.%02x.%02x rev %02x hdr %02x (%s)\n", a.bus, a.dev,
         a.fn, id & 0xffff, id >> 16, base, (cr >> 16) & 0xff, (cr >> 8) & 0xff, cr & 0xff, hdr,
         pci_class_name(base));
  int nbars = (hdr & 0x7f) == 0 ? 6 : (hdr & 0x7f) == 1 ? 2 : 0;
  for (int i = 0; i < nbars;) {
    struct pci_bar bar;
    int used = pci_bar_probe(a, i, &bar);
    if (bar.size) {
      printf("    BAR%d %s%s addr 0x%lx size 0x%lx\n", i,
             bar.is_io   ? "io"
             : bar.is_64 ? "mem64"
                         : "mem32",
             bar.prefetch ? " prefetch" : "", bar.addr, bar.size);
    }
    i += used;
  }
  if ((hdr & 0x7f) == 1) {
    printf("    bridge: primary %u secondary %u subordinate %u\n", pci_read8(a, 0x18),
           pci_read8(a, 0x19), pci_read8(a, 0x1a));
  }
  if (pci_read16(a, PCI_STATUS) & PCI_STATUS_CAP_LIST) {
    printf("    caps:");
    uint8_t p = pci_read8(a, PCI_CAPABILITY_LIST);
    for (int guard = 0; p >= 0x40 && guard < 48; guard++) {
      p &= 0xfc;
      printf(" %02x@%02x", pci_read8(a, p), p);
      p = pci_read8(a, (uint8_t)(p + 1));
    }
    printf("\n");
  }
}

int test_main(void) {
  printf("TESTGUEST pciscan boot=%s\n", boot_path_name());
  int mech = pci_mech1_present();
  printf("pci: config mechanism #1 at 0xcf8: %s\n", mech ? "present" : "not answering");
  int n = pci_enumerate(print_function, 0);
  if (n == 0)
    printf("TESTGUEST pciscan: no PCI devices\n");
  else
    printf("TESTGUEST pciscan: %d PCI function(s)\n", n);
  return 0;
}
