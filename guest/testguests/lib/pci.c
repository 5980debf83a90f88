/* pci.c: configuration mechanism #1, enumeration, BAR sizing, capabilities. */
#include "pci.h"

#define PCI_CONFIG_ADDRESS 0xcf8
#define PCI_CONFIG_DATA 0xcfc

static uint32_t cfg_addr(struct pci_addr a, uint8_t off) {
  return 0x80000000u | ((uint32_t)a.bus << 16) | ((uint32_t)(a.dev & 31) << 11) |
         ((uint32_t)(a.fn & 7) << 8) | (off & 0xfc);
}

uint32_t pci_read32(struct pci_addr a, uint8_t off) {
  outl(PCI_CONFIG_ADDRESS, cfg_addr(a, off));
  return inl(PCI_CONFIG_DATA);
}
uint16_t pci_read16(struct pci_addr a, uint8_t off) {
  outl(PCI_CONFIG_ADDRESS, cfg_addr(a, off));
  return inw(PCI_CONFIG_DATA + (off & 2));
}
uint8_t pci_read8(struct pci_addr a, uint8_t off) {
  outl(PCI_CONFIG_ADDRESS, cfg_addr(a, off));
  return inb(PCI_CONFIG_DATA + (off & 3));
}
void pci_write32(struct pci_addr a, uint8_t off, uint32_t v) {
  outl(PCI_CONFIG_ADDRESS, cfg_addr(a, off));
  outl(PCI_CONFIG_DATA, v);
}
void pci_write16(struct pci_addr a, uint8_t off, uint16_t v) {
  outl(PCI_CONFIG_ADDRESS, cfg_addr(a, off));
  outw(PCI_CONFIG_DATA + (off & 2), v);
}
void pci_write8(struct pci_addr a, uint8_t off, uint8_t v) {
  outl(PCI_CONFIG_ADDRESS, cfg_addr(a, off));
  outb(PCI_CONFIG_DATA + (off & 3), v);
}

int pci_mech1_present(void) {
  uint32_t saved = inl(PCI_CONFIG_ADDRESS);
  outl(PCI_CONFIG_ADDRESS, 0x80000000u);
  uint32_t v = inl(PCI_CONFIG_ADDRESS);
  outl(PCI_CONFIG_ADDRESS, saved);
  return v == 0x80000000u;
}

/* Depth-first over buses; `seen` guards against bridges that point back. */
static int enumerate_bus(uint8_t bus, pci_visit_fn fn, void* ctx, uint8_t* seen, int depth) {
  int found = 0;
  if (seen[bus] || depth > 32) return 0;
  seen[bus] = 1;
  for (uint8_t dev = 0; dev < 32; dev++) {
    struct pci_addr a = {bus, dev, 0};
    if (pci_read16(a, PCI_VENDOR_ID) == 0xffff) continue;
    uint8_t nfn = (pci_read8(a, PCI_HEADER_TYPE) & 0x80) ? 8 : 1;
    for (uint8_t f = 0; f < nfn; f++) {
      a.fn = f;
      uint16_t vendor = pci_read16(a, PCI_VENDOR_ID);
      if (vendor == 0xffff || vendor == 0x0000) continue;
      found++;
      if (fn) fn(a, ctx);
      if ((pci_read8(a, PCI_HEADER_TYPE) & 0x7f) == 1) {
        uint8_t sec = pci_read8(a, PCI_SECONDARY_BUS);
        if (sec > bus) found += enumerate_bus(sec, fn, ctx, seen, depth + 1);
      }
    }
  }
  return found;
}

int pci_enumerate(pci_visit_fn fn, void* ctx) {
  static uint8_t seen[256];
  memset(seen, 0, sizeof(seen));
  return enumerate_bus(0, fn, ctx, seen, 0);
}

struct find_ctx {
  uint16_t vendor;
  const uint16_t* devices;
  struct pci_addr* out;
  int found;
};

static void find_visit(struct pci_addr a, void* p) {
  struct find_ctx* c = p;
  if (c->found || pci_read16(a, PCI_VENDOR_ID) != c->vendor) return;
  uint16_t id = pci_read16(a, PCI_DEVICE_ID);
  for (const uint16_t* d = c->devices; *d; d++) {
    if (*d == id) {
      *c->out = a;
      c->found = 1;
      return;
    }
  }
}

int pci_find(uint16_t vendor, const uint16_t* devices, struct pci_addr* out) {
  struct find_ctx c = {vendor, devices, out, 0};
  pci_enumerate(find_visit, &c);
  return c.found;
}

int pci_bar_probe(struct pci_addr a, int index, struct pci_bar* bar) {
  uint8_t off = (uint8_t)(PCI_BAR0 + 4 * index);
  memset(bar, 0, sizeof(*bar));
  uint16_t cmd = pci_read16(a, PCI_COMMAND);
  pci_write16(a, PCI_COMMAND, cmd & ~(PCI_COMMAND_IO | PCI_COMMAND_MEMORY));

  uint32_t lo = pci_read32(a, off);
  pci_write32(a, off, 0xffffffffu);
  uint32_t lo_mask = pci_read32(a, off);
  pci_write32(a, off, lo);
  int slots = 1;

  if (lo & 1) { /* I/O BAR */
    bar->is_io = 1;
    bar->addr = lo & ~3u;
    uint32_t m = lo_mask & ~3u;
    /* Some devices implement only the low 16 bits of an I/O BAR. */
    if (m && !(m & 0xffff0000u)) m |= 0xffff0000u;
    bar->size = m ? (uint32_t)(~m + 1) : 0;
  } else {
    bar->prefetch = (lo >> 3) & 1;
    bar->addr = lo & ~0xfu;
    uint64_t mask = lo_mask & ~0xfu;
    if (((lo >> 1) & 3) == 2 && index < 5) { /* 64-bit */
      bar->is_64 = 1;
      slots = 2;
      uint32_t hi = pci_read32(a, (uint8_t)(off + 4));
      pci_write32(a, (uint8_t)(off + 4), 0xffffffffu);
      uint32_t hi_mask = pci_read32(a, (uint8_t)(off + 4));
      pci_write32(a, (uint8_t)(off + 4), hi);
      bar->addr |= (uint64_t)hi << 32;
      mask |= (uint64_t)hi_mask << 32;
    } else if (mask) {
      mask |= 0xffffffff00000000ull;
    }
    bar->size = mask ? ~mask + 1 : 0;
  }
  pci_write16(a, PCI_COMMAND, cmd);
  return slots;
}

void pci_bar_set(struct pci_addr a, int index, const struct pci_bar* bar, uint64_t addr) {
  uint8_t off = (uint8_t)(PCI_BAR0 + 4 * index);
  uint32_t type_bits = pci_read32(a, off) & 0xf;
  pci_write32(a, off, ((uint32_t)addr & ~0xfu) | type_bits);
  if (bar->is_64) pci_write32(a, (uint8_t)(off + 4), (uint32_t)(addr >> 32));
}

uint8_t pci_find_cap(struct pci_addr a, uint8_t id, uint8_t start) {
  if (!(pci_read16(a, PCI_STATUS) & PCI_STATUS_CAP_LIST)) return 0;
  uint8_t p = start ? pci_read8(a, (uint8_t)(start + 1)) : pci_read8(a, PCI_CAPABILITY_LIST);
  for (int guard = 0; p >= 0x40 && guard < 48; guard++) {
    p &= 0xfc;
    if (pci_read8(a, p) == id) return p;
    p = pci_read8(a, (uint8_t)(p + 1));
  }
  return 0;
}

const char* pci_class_name(uint8_t base_class) {
  static const char* const names[] = {
      "unclassified", "storage",   "network",     "display",          "multimedia",
      "memory",       "bridge",    "comm",        "system",           "input",
      "docking",      "processor", "serial bus",  "wireless",         "intelligent io",
      "satellite",    "crypto",    "signal proc", "processing accel", "instrumentation"};
  if (base_class < sizeof(names) / sizeof(names[0])) return names[base_class];
  return "other";
}
