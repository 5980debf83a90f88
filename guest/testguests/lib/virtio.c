/* virtio.c: virtio 1.x over PCI (modern interface), split virtqueues, polling. */
#include "virtio.h"

/* struct virtio_pci_common_cfg offsets */
#define CC_DEVICE_FEATURE_SELECT 0x00
#define CC_DEVICE_FEATURE 0x04
#define CC_DRIVER_FEATURE_SELECT 0x08
#define CC_DRIVER_FEATURE 0x0c
#define CC_MSIX_CONFIG 0x10
#define CC_NUM_QUEUES 0x12
#define CC_DEVICE_STATUS 0x14
#define CC_CONFIG_GENERATION 0x15
#define CC_QUEUE_SELECT 0x16
#define CC_QUEUE_SIZE 0x18
#define CC_QUEUE_MSIX_VECTOR 0x1a
#define CC_QUEUE_ENABLE 0x1c
#define CC_QUEUE_NOTIFY_OFF 0x1e
#define CC_QUEUE_DESC 0x20
#define CC_QUEUE_DRIVER 0x28
#define CC_QUEUE_DEVICE 0x30

/* struct virtio_pci_cap: cap_vndr, cap_next, cap_len, cfg_type, bar, id, pad[2], offset, length */
#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define VIRTIO_PCI_CAP_ISR_CFG 3
#define VIRTIO_PCI_CAP_DEVICE_CFG 4
#define VIRTIO_PCI_CAP_PCI_CFG 5

#define VIRTIO_MSI_NO_VECTOR 0xffff

/* Where BARs go when the firmware left them unassigned or above 4 GiB (our
 * page tables map only the first 4 GiB). Inside the 32-bit PCI hole, away
 * from QEMU's and the VMM's usual allocations; see README.md. */
#define BAR_SCRATCH_BASE 0xe8000000ull
#define BAR_SCRATCH_END 0xf0000000ull
static uint64_t bar_scratch_next = BAR_SCRATCH_BASE;

static const char* cap_type_name(uint8_t t) {
  switch (t) {
    case VIRTIO_PCI_CAP_COMMON_CFG:
      return "common";
    case VIRTIO_PCI_CAP_NOTIFY_CFG:
      return "notify";
    case VIRTIO_PCI_CAP_ISR_CFG:
      return "isr";
    case VIRTIO_PCI_CAP_DEVICE_CFG:
      return "device";
    case VIRTIO_PCI_CAP_PCI_CFG:
      return "pci-cfg";
  }
  return "?";
}

/* Returns the usable (below 4 GiB, decoded) address of memory BAR `index`, or 0. */
static uint64_t bar_address(struct pci_addr a, int index) {
  struct pci_bar bar;
  pci_bar_probe(a, index, &bar);
  if (bar.is_io || bar.size == 0) return 0;
  if (bar.addr == 0 || bar.addr + bar.size > 0x100000000ull) {
    uint64_t addr = (bar_scratch_next + bar.size - 1) & ~(bar.size - 1);
    if (addr + bar.size > BAR_SCRATCH_END) return 0;
    printf("virtio: BAR%d at 0x%lx (size 0x%lx) is not usable; moving it to 0x%lx\n", index,
           bar.addr, bar.size, addr);
    pci_bar_set(a, index, &bar, addr);
    bar_scratch_next = addr + bar.size;
    bar.addr = addr;
  }
  return bar.addr;
}

int virtio_pci_find(uint16_t virtio_type, struct virtio_dev* dev) {
  memset(dev, 0, sizeof(*dev));
  uint16_t ids[3] = {(uint16_t)(0x1040 + virtio_type), 0, 0};
  /* transitional device ids (virtio 1.x, 4.1.2.1) */
  static const uint16_t transitional[] = {0, 0x1000, 0x1001, 0x1003, 0x1005};
  if (virtio_type < sizeof(transitional) / sizeof(transitional[0]))
    ids[1] = transitional[virtio_type];
  if (!pci_find(VIRTIO_PCI_VENDOR, ids, &dev->pci)) {
    printf("virtio: no virtio-pci device of type %u\n", virtio_type);
    return -1;
  }
  struct pci_addr a = dev->pci;
  dev->device_id = pci_read16(a, PCI_DEVICE_ID);
  printf("virtio: type %u device %04x at %02x:%02x.%x\n", virtio_type, dev->device_id, a.bus, a.dev,
         a.fn);

  uint64_t bar_addr[6] = {0};
  int bar_checked[6] = {0};
  for (uint8_t cap = pci_find_cap(a, PCI_CAP_ID_VNDR, 0); cap;
       cap = pci_find_cap(a, PCI_CAP_ID_VNDR, cap)) {
    uint8_t type = pci_read8(a, (uint8_t)(cap + 3));
    uint8_t bar = pci_read8(a, (uint8_t)(cap + 4));
    uint32_t off = pci_read32(a, (uint8_t)(cap + 8));
    uint32_t len = pci_read32(a, (uint8_t)(cap + 12));
    printf("virtio:   cap at 0x%02x %-7s bar %u offset 0x%x len 0x%x\n", cap, cap_type_name(type),
           bar, off, len);
    if (type < VIRTIO_PCI_CAP_COMMON_CFG || type > VIRTIO_PCI_CAP_DEVICE_CFG || bar > 5) continue;
    if (!bar_checked[bar]) {
      bar_checked[bar] = 1;
      bar_addr[bar] = bar_address(a, bar);
    }
    if (!bar_addr[bar]) continue;
    uint64_t where = bar_addr[bar] + off;
    switch (type) {
      case VIRTIO_PCI_CAP_COMMON_CFG:
        if (!dev->common) dev->common = where;
        break;
      case VIRTIO_PCI_CAP_NOTIFY_CFG:
        if (!dev->notify) {
          dev->notify = where;
          dev->notify_mult = pci_read32(a, (uint8_t)(cap + 16));
        }
        break;
      case VIRTIO_PCI_CAP_ISR_CFG:
        if (!dev->isr) dev->isr = where;
        break;
      case VIRTIO_PCI_CAP_DEVICE_CFG:
        if (!dev->device_cfg) dev->device_cfg = where;
        break;
    }
  }
  if (!dev->common || !dev->notify) {
    printf("virtio: common or notify capability missing or unmapped\n");
    return -1;
  }
  uint16_t cmd = pci_read16(a, PCI_COMMAND);
  pci_write16(a, PCI_COMMAND, cmd | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
  printf("virtio:   common 0x%lx notify 0x%lx (x%u) isr 0x%lx device 0x%lx\n", dev->common,
         dev->notify, dev->notify_mult, dev->isr, dev->device_cfg);
  return 0;
}

static uint8_t status_read(struct virtio_dev* d) {
  return mmio_read8(d->common + CC_DEVICE_STATUS);
}
static void status_write(struct virtio_dev* d, uint8_t s) {
  mmio_write8(d->common + CC_DEVICE_STATUS, s);
}

void virtio_reset(struct virtio_dev* d) {
  status_write(d, 0);
  for (int i = 0; i < 100000 && status_read(d) != 0; i++) {
  }
}

int virtio_init(struct virtio_dev* d, uint64_t features) {
  virtio_reset(d);
  if (status_read(d) != 0) {
    printf("virtio: device did not reset\n");
    return -1;
  }
  status_write(d, VIRTIO_STATUS_ACKNOWLEDGE);
  status_write(d, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);

  mmio_write32(d->common + CC_DEVICE_FEATURE_SELECT, 0);
  uint64_t offered = mmio_read32(d->common + CC_DEVICE_FEATURE);
  mmio_write32(d->common + CC_DEVICE_FEATURE_SELECT, 1);
  offered |= (uint64_t)mmio_read32(d->common + CC_DEVICE_FEATURE) << 32;
  if (!(offered & (1ull << VIRTIO_F_VERSION_1))) {
    printf("virtio: device does not offer VIRTIO_F_VERSION_1 (features 0x%lx)\n", offered);
    status_write(d, VIRTIO_STATUS_FAILED);
    return -1;
  }
  uint64_t accepted = (features | (1ull << VIRTIO_F_VERSION_1)) & offered;
  mmio_write32(d->common + CC_DRIVER_FEATURE_SELECT, 0);
  mmio_write32(d->common + CC_DRIVER_FEATURE, (uint32_t)accepted);
  mmio_write32(d->common + CC_DRIVER_FEATURE_SELECT, 1);
  mmio_write32(d->common + CC_DRIVER_FEATURE, (uint32_t)(accepted >> 32));
  status_write(d, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
  if (!(status_read(d) & VIRTIO_STATUS_FEATURES_OK)) {
    printf("virtio: device rejected features 0x%lx\n", accepted);
    status_write(d, VIRTIO_STATUS_FAILED);
    return -1;
  }
  printf("virtio: features offered 0x%lx accepted 0x%lx, %u queue(s)\n", offered, accepted,
         mmio_read16(d->common + CC_NUM_QUEUES));
  return 0;
}

int virtq_setup(struct virtio_dev* d, struct virtq* vq, uint16_t index, struct virtq_mem* mem) {
  mmio_write16(d->common + CC_QUEUE_SELECT, index);
  uint16_t max = mmio_read16(d->common + CC_QUEUE_SIZE);
  if (max == 0) {
    printf("virtio: queue %u not available\n", index);
    return -1;
  }
  uint16_t size = VIRTQ_MAX_SIZE;
  while (size > max) size >>= 1;
  memset(mem, 0, sizeof(*mem));
  vq->mem = mem;
  vq->index = index;
  vq->size = size;
  vq->next_avail = 0;
  vq->last_used = 0;

  mmio_write16(d->common + CC_QUEUE_SIZE, size);
  mmio_write16(d->common + CC_QUEUE_MSIX_VECTOR, VIRTIO_MSI_NO_VECTOR);
  uint64_t desc = (uint64_t)(uintptr_t)mem->desc, avail = (uint64_t)(uintptr_t)&mem->avail,
           used = (uint64_t)(uintptr_t)&mem->used;
  /* 64-bit fields written as two 32-bit halves, low first */
  mmio_write32(d->common + CC_QUEUE_DESC, (uint32_t)desc);
  mmio_write32(d->common + CC_QUEUE_DESC + 4, (uint32_t)(desc >> 32));
  mmio_write32(d->common + CC_QUEUE_DRIVER, (uint32_t)avail);
  mmio_write32(d->common + CC_QUEUE_DRIVER + 4, (uint32_t)(avail >> 32));
  mmio_write32(d->common + CC_QUEUE_DEVICE, (uint32_t)used);
  mmio_write32(d->common + CC_QUEUE_DEVICE + 4, (uint32_t)(used >> 32));
  uint16_t notify_off = mmio_read16(d->common + CC_QUEUE_NOTIFY_OFF);
  vq->notify_addr = d->notify + (uint64_t)notify_off * d->notify_mult;
  mmio_write16(d->common + CC_QUEUE_ENABLE, 1);
  printf("virtio: queue %u size %u (max %u) desc 0x%lx avail 0x%lx used 0x%lx notify 0x%lx\n",
         index, size, max, desc, avail, used, vq->notify_addr);
  return 0;
}

void virtio_driver_ok(struct virtio_dev* d) {
  status_write(d, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
                      VIRTIO_STATUS_DRIVER_OK);
}

int virtq_submit(struct virtq* vq, const struct virtq_buf* bufs, int n) {
  if (n < 1 || n > vq->size) return -1;
  struct virtq_mem* m = vq->mem;
  for (int i = 0; i < n; i++) {
    m->desc[i].addr = (uint64_t)(uintptr_t)bufs[i].addr;
    m->desc[i].len = bufs[i].len;
    m->desc[i].flags = (uint16_t)((bufs[i].device_writes ? VIRTQ_DESC_F_WRITE : 0) |
                                  (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0));
    m->desc[i].next = (uint16_t)(i + 1 < n ? i + 1 : 0);
  }
  *(volatile uint16_t*)&m->avail.ring[vq->next_avail % vq->size] = 0; /* head descriptor */
  barrier(); /* descriptors and ring entry before the index (x86: stores stay in order) */
  vq->next_avail++;
  *(volatile uint16_t*)&m->avail.idx = vq->next_avail;
  barrier();
  mmio_write16(vq->notify_addr, vq->index);
  return 0;
}

int virtq_poll(struct virtq* vq, uint32_t* len, uint64_t max_polls) {
  volatile struct virtq_used* u = &vq->mem->used;
  for (uint64_t i = 0; i < max_polls; i++) {
    if (u->idx != vq->last_used) {
      barrier();
      uint32_t l = u->ring[vq->last_used % vq->size].len;
      vq->last_used++;
      if (len) *len = l;
      return 0;
    }
  }
  return -1;
}
