/* virtio_blk_read: reads sector 0 of a virtio-blk PCI disk through queue 0
 * (one request: header, 512-byte data buffer, status byte) and prints its
 * first 64 bytes and the capacity.
 * QEMU: -drive file=disk.img,format=raw,if=none,id=d0 -device
 * virtio-blk-pci,drive=d0,disable-legacy=on */
#include "virtio.h"

#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_S_OK 0

struct virtio_blk_req_hdr {
  uint32_t type;
  uint32_t reserved;
  uint64_t sector;
};

static struct virtq_mem rq_mem;
static struct virtio_blk_req_hdr hdr __attribute__((aligned(16)));
static uint8_t sector[512] __attribute__((aligned(512)));
static volatile uint8_t status;

int test_main(void) {
  printf("TESTGUEST virtio_blk_read boot=%s\n", boot_path_name());
  struct virtio_dev dev;
  struct virtq vq;
  if (virtio_pci_find(VIRTIO_ID_BLOCK, &dev) || virtio_init(&dev, 0) ||
      virtq_setup(&dev, &vq, 0, &rq_mem))
    return 1;
  if (dev.device_cfg) {
    uint64_t cap = mmio_read32(dev.device_cfg) | ((uint64_t)mmio_read32(dev.device_cfg + 4) << 32);
    printf("TESTGUEST virtio_blk_read: capacity %lu sectors\n", cap);
  }
  virtio_driver_ok(&dev);

  hdr.type = VIRTIO_BLK_T_IN;
  hdr.reserved = 0;
  hdr.sector = 0;
  status = 0xff;
  memset(sector, 0, sizeof(sector));
  struct virtq_buf bufs[3] = {
      {&hdr, sizeof(hdr), 0},
      {sector, sizeof(sector), 1},
      {(void*)&status, 1, 1},
  };
  uint32_t len = 0;
  if (virtq_submit(&vq, bufs, 3) || virtq_poll(&vq, &len, 10000000)) {
    printf("TESTGUEST virtio_blk_read: no answer from the device\n");
    virtio_reset(&dev);
    return 1;
  }
  virtio_reset(&dev);
  printf("TESTGUEST virtio_blk_read: used len %u status %u, sector 0 starts:\n", len, status);
  hexdump(sector, 64);
  return status == VIRTIO_BLK_S_OK ? 0 : 1;
}
