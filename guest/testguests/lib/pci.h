/* pci.h: PCI configuration space through mechanism #1 (ports 0xcf8/0xcfc). */
#ifndef TESTGUEST_PCI_H
#define TESTGUEST_PCI_H

#include "testguest.h"

struct pci_addr {
  uint8_t bus, dev, fn;
};

#define PCI_VENDOR_ID 0x00
#define PCI_DEVICE_ID 0x02
#define PCI_COMMAND 0x04
#define PCI_STATUS 0x06
#define PCI_CLASS_REVISION 0x08
#define PCI_HEADER_TYPE 0x0e
#define PCI_BAR0 0x10
#define PCI_SECONDARY_BUS 0x19
#define PCI_CAPABILITY_LIST 0x34

#define PCI_COMMAND_IO 0x1
#define PCI_COMMAND_MEMORY 0x2
#define PCI_COMMAND_MASTER 0x4
#define PCI_STATUS_CAP_LIST 0x10

#define PCI_CAP_ID_MSI 0x05
#define PCI_CAP_ID_VNDR 0x09
#define PCI_CAP_ID_EXP 0x10
#define PCI_CAP_ID_MSIX 0x11

uint32_t pci_read32(struct pci_addr a, uint8_t off);
uint16_t pci_read16(struct pci_addr a, uint8_t off);
uint8_t pci_read8(struct pci_addr a, uint8_t off);
void pci_write32(struct pci_addr a, uint8_t off, uint32_t v);
void pci_write16(struct pci_addr a, uint8_t off, uint16_t v);
void pci_write8(struct pci_addr a, uint8_t off, uint8_t v);

/* 1 if writing 0x80000000 to 0xcf8 reads back (a mechanism #1 host bridge is there). */
int pci_mech1_present(void);

/* Calls fn for every function found on bus 0 and on the buses behind PCI-PCI
 * bridges (secondary bus numbers as programmed). Returns the number found. */
typedef void (*pci_visit_fn)(struct pci_addr a, void* ctx);
int pci_enumerate(pci_visit_fn fn, void* ctx);

/* Finds the first function with this vendor and one of the device ids
 * (list ends at 0). Returns 1 if found. */
int pci_find(uint16_t vendor, const uint16_t* devices, struct pci_addr* out);

struct pci_bar {
  uint64_t addr; /* as programmed (memory: low 4 bits cleared; I/O: low 2 bits cleared) */
  uint64_t size; /* 0: not implemented */
  int is_io, is_64, prefetch;
};
/* Reads and sizes BAR `index` (writes all-ones with decoding disabled, then
 * restores). Returns the number of BAR slots it uses (2 for a 64-bit BAR). */
int pci_bar_probe(struct pci_addr a, int index, struct pci_bar* bar);
/* Programs a memory BAR's address (both halves for a 64-bit BAR). */
void pci_bar_set(struct pci_addr a, int index, const struct pci_bar* bar, uint64_t addr);

/* Offset of the first capability with this id after `start` (0 = from the
 * list head); 0 if none. */
uint8_t pci_find_cap(struct pci_addr a, uint8_t id, uint8_t start);

const char* pci_class_name(uint8_t base_class);

#endif /* TESTGUEST_PCI_H */
