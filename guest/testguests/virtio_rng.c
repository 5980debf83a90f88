/* virtio_rng: reads 64 bytes of entropy from a virtio-rng PCI device through
 * its request queue (queue 0) and prints them.
 * QEMU: -device virtio-rng-pci,disable-legacy=on */
#include "virtio.h"

#define WANT 64

static struct virtq_mem rq_mem;
static uint8_t entropy[WANT] __attribute__((aligned(64)));

int test_main(void) {
  printf("TESTGUEST virtio_rng boot=%s\n", boot_path_name());
  struct virtio_dev dev;
  struct virtq vq;
  if (virtio_pci_find(VIRTIO_ID_RNG, &dev) || virtio_init(&dev, 0) ||
      virtq_setup(&dev, &vq, 0, &rq_mem))
    return 1;
  virtio_driver_ok(&dev);

  uint32_t got = 0;
  for (int tries = 0; got < WANT && tries < 16; tries++) {
    struct virtq_buf b = {entropy + got, WANT - got, 1};
    uint32_t len = 0;
    if (virtq_submit(&vq, &b, 1) || virtq_poll(&vq, &len, 10000000)) {
      printf("TESTGUEST virtio_rng: no answer from the device\n");
      virtio_reset(&dev);
      return 1;
    }
    if (len > WANT - got) len = WANT - got;
    got += len;
  }
  virtio_reset(&dev);
  printf("TESTGUEST virtio_rng: %u bytes:\n", got);
  hexdump(entropy, got);
  int nonzero = 0;
  for (uint32_t i = 0; i < got; i++) nonzero |= entropy[i];
  if (got != WANT || !nonzero) {
    printf("TESTGUEST virtio_rng: FAILED (short or all zero)\n");
    return 1;
  }
  return 0;
}
