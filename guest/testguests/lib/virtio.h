/* virtio.h: a minimal virtio 1.x PCI ("modern") driver: one device, split
 * virtqueues, polling only (no interrupts, no MSI-X). */
#ifndef TESTGUEST_VIRTIO_H
#define TESTGUEST_VIRTIO_H

#include "pci.h"

#define VIRTIO_PCI_VENDOR 0x1af4
#define VIRTIO_ID_NET 1
#define VIRTIO_ID_BLOCK 2
#define VIRTIO_ID_CONSOLE 3
#define VIRTIO_ID_RNG 4

/* device_status bits */
#define VIRTIO_STATUS_ACKNOWLEDGE 1
#define VIRTIO_STATUS_DRIVER 2
#define VIRTIO_STATUS_DRIVER_OK 4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_FAILED 0x80

#define VIRTIO_F_VERSION_1 32

/* split virtqueue layout (virtio 1.x, 2.7) */
#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2

struct virtq_desc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};

#define VIRTQ_MAX_SIZE 16

struct virtq_avail {
  uint16_t flags;
  uint16_t idx;
  uint16_t ring[VIRTQ_MAX_SIZE];
  uint16_t used_event;
};

struct virtq_used_elem {
  uint32_t id;
  uint32_t len;
};

struct virtq_used {
  uint16_t flags;
  uint16_t idx;
  struct virtq_used_elem ring[VIRTQ_MAX_SIZE];
  uint16_t avail_event;
};

/* The driver's memory for one queue; must stay put while the device runs. */
struct virtq_mem {
  struct virtq_desc desc[VIRTQ_MAX_SIZE] __attribute__((aligned(16)));
  struct virtq_avail avail __attribute__((aligned(2)));
  struct virtq_used used __attribute__((aligned(4)));
} __attribute__((aligned(4096)));

struct virtq {
  struct virtq_mem* mem;
  uint16_t index;
  uint16_t size;
  uint16_t next_avail;  /* our copy of avail.idx */
  uint16_t last_used;   /* used.idx seen so far */
  uint64_t notify_addr; /* where to write the queue index to notify */
};

struct virtio_dev {
  struct pci_addr pci;
  uint16_t device_id;
  uint64_t common;      /* struct virtio_pci_common_cfg */
  uint64_t notify;      /* notification area base */
  uint32_t notify_mult; /* notify_off_multiplier */
  uint64_t isr;
  uint64_t device_cfg; /* device-specific configuration (0 if none) */
};

/* Finds the first virtio-pci device of this virtio device type (modern id
 * 0x1040 + type, or the transitional id), locates its vendor capabilities,
 * makes its BARs usable (assigning an address below 4 GiB where the firmware
 * left one unassigned or above 4 GiB) and enables memory decoding and bus
 * mastering. Prints what it found. Returns 0 on success. */
int virtio_pci_find(uint16_t virtio_type, struct virtio_dev* dev);

/* Reset, ACKNOWLEDGE|DRIVER, feature negotiation (VIRTIO_F_VERSION_1 plus
 * `features` & offered), FEATURES_OK. Returns 0 on success. */
int virtio_init(struct virtio_dev* dev, uint64_t features);

/* Sets up queue `index` with min(device max, VIRTQ_MAX_SIZE) entries. */
int virtq_setup(struct virtio_dev* dev, struct virtq* vq, uint16_t index, struct virtq_mem* mem);

/* Sets DRIVER_OK. */
void virtio_driver_ok(struct virtio_dev* dev);

/* Resets the device (status 0). */
void virtio_reset(struct virtio_dev* dev);

/* One buffer of a descriptor chain. */
struct virtq_buf {
  void* addr;
  uint32_t len;
  int device_writes; /* 1: device-writable (VIRTQ_DESC_F_WRITE) */
};

/* Places a chain made of `n` buffers (descriptors 0..n-1; one request at a
 * time), publishes it in the available ring and notifies the device. */
int virtq_submit(struct virtq* vq, const struct virtq_buf* bufs, int n);

/* Polls the used ring up to `max_polls` times; returns 0 and the length the
 * device wrote when an element arrived, -1 on time-out. */
int virtq_poll(struct virtq* vq, uint32_t* len, uint64_t max_polls);

#endif /* TESTGUEST_VIRTIO_H */
