/* virtio_blk_hostile: a hostile virtio-blk driver. It offers the device broken requests, each
 * followed by a valid read that must still complete with the right data:
 *
 *   loop             a descriptor chain whose NEXT links form a cycle (1 -> 2 -> 1)
 *   past_ram         a chain whose data buffer runs past the end of guest RAM
 *   far_addr         a chain whose data buffer lies far above any RAM (1 TiB)
 *   nested_indirect  an indirect table whose descriptor is itself INDIRECT
 *   indirect_len     an indirect table whose length is not a multiple of 16
 *   indirect_empty   an indirect table of length 0
 *   head_range       an available-ring entry naming a descriptor past the queue size
 *   reset_in_flight  three reads submitted, then a device reset (status 0) before any
 *                    completion; the device must not write the old buffers after the reset
 *                    reads back as done
 *
 * Only outcomes the virtio 1.x spec allows are accepted: the broken request is returned with
 * used length 0, or its status byte holds an error, or the device sets DEVICE_NEEDS_RESET (then
 * the driver resets and reinitializes it, as the spec says). One line per case:
 *
 *   TESTGUEST hostile case=loop outcome=used len=0 status=255 reinit=0 hostile_ok=1 valid=ok
 *
 * then `TESTGUEST hostile summary cases=8 failures=0`. The disk must hold, in sector K, the
 * text "HOSTILE SECTOR K\n" followed by bytes (K * 7 + 1) & 0xff up to 512 (the e2e test writes
 * it). Needs -m 64 (RAM ends at 64 MiB). */
#include "virtio.h"

#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_S_OK 0
#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_STATUS_NEEDS_RESET 0x40
#define VIRTQ_DESC_F_INDIRECT 4

#define RAM_END (64ull << 20)
#define POLLS 3000000ull
#define VALID_HEAD 12 /* descriptors 12..14 carry the valid reads */

struct blk_hdr {
  uint32_t type;
  uint32_t reserved;
  uint64_t sector;
};

static struct virtq_mem rq_mem;
static struct virtio_dev dev;
static struct virtq vq;
static int indirect_ok;

static struct blk_hdr hdrs[4] __attribute__((aligned(16)));
static uint8_t data[4][512] __attribute__((aligned(512)));
static volatile uint8_t statuses[4];
static struct virtq_desc table1[4] __attribute__((aligned(16)));
static struct virtq_desc table2[4] __attribute__((aligned(16)));

static uint8_t device_status(void) {
  return mmio_read8(dev.common + 0x14);
}

static void set_desc(uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
  rq_mem.desc[i].addr = addr;
  rq_mem.desc[i].len = len;
  rq_mem.desc[i].flags = flags;
  rq_mem.desc[i].next = next;
}

static void post(uint16_t head) {
  *(volatile uint16_t*)&rq_mem.avail.ring[vq.next_avail % vq.size] = head;
  barrier();
  vq.next_avail++;
  *(volatile uint16_t*)&rq_mem.avail.idx = vq.next_avail;
  barrier();
}

static void notify(void) {
  mmio_write16(vq.notify_addr, vq.index);
}

/* 1: a used element arrived (id, len); 2: DEVICE_NEEDS_RESET; 0: neither in POLLS polls. */
static int wait_used(uint32_t* id, uint32_t* len) {
  volatile struct virtq_used* u = &rq_mem.used;
  for (uint64_t i = 0; i < POLLS; i++) {
    if (u->idx != vq.last_used) {
      barrier();
      *id = u->ring[vq.last_used % vq.size].id;
      *len = u->ring[vq.last_used % vq.size].len;
      vq.last_used++;
      return 1;
    }
    if ((i & 1023) == 1023 && (device_status() & VIRTIO_STATUS_NEEDS_RESET)) return 2;
  }
  return 0;
}

static int bring_up(void) {
  if (virtio_init(&dev, 1ull << VIRTIO_F_INDIRECT_DESC) || virtq_setup(&dev, &vq, 0, &rq_mem))
    return -1;
  mmio_write32(dev.common + 0x00, 0); /* device_feature_select */
  indirect_ok = (mmio_read32(dev.common + 0x04) >> VIRTIO_F_INDIRECT_DESC) & 1;
  virtio_driver_ok(&dev);
  return 0;
}

/* Fills a header/data/status triple for a read of `sector` into slot `s`. */
static void prepare_read(int s, uint64_t sector) {
  hdrs[s].type = VIRTIO_BLK_T_IN;
  hdrs[s].reserved = 0;
  hdrs[s].sector = sector;
  memset(data[s], 0xee, sizeof(data[s]));
  statuses[s] = 0xff;
}

static int sector_ok(const uint8_t* buf, uint32_t sector) {
  char text[32];
  int n = snprintf(text, sizeof(text), "HOSTILE SECTOR %u\n", sector);
  if (memcmp(buf, text, (size_t)n) != 0) return 0;
  for (int i = n; i < 512; i++)
    if (buf[i] != (uint8_t)(sector * 7 + 1)) return 0;
  return 1;
}

/* A valid read of `sector` through descriptors VALID_HEAD..+2; 1 when it completed with the
 * right length, status and data. */
static int valid_read(uint32_t sector) {
  prepare_read(3, sector);
  set_desc(VALID_HEAD, (uint64_t)(uintptr_t)&hdrs[3], sizeof(hdrs[3]), VIRTQ_DESC_F_NEXT,
           VALID_HEAD + 1);
  set_desc(VALID_HEAD + 1, (uint64_t)(uintptr_t)data[3], 512,
           VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, VALID_HEAD + 2);
  set_desc(VALID_HEAD + 2, (uint64_t)(uintptr_t)&statuses[3], 1, VIRTQ_DESC_F_WRITE, 0);
  post(VALID_HEAD);
  notify();
  uint32_t id = 0, len = 0;
  if (wait_used(&id, &len) != 1) return 0;
  return id == VALID_HEAD && len == 513 && statuses[3] == VIRTIO_BLK_S_OK &&
         sector_ok(data[3], sector);
}

static int failures;
static int cases;

/* Posts `head` (already set up in the descriptor table; slot 0's buffers), waits for the
 * outcome, checks it is one the spec allows, recovers with a reset if the device asked for
 * one, then does a valid read of `sector`. */
static void run_case(const char* name, uint16_t head, uint32_t sector) {
  cases++;
  post(head);
  notify();
  uint32_t id = 0, len = 0;
  int r = wait_used(&id, &len);
  uint8_t st = statuses[0];
  int hostile_ok;
  int reinit = 0;
  const char* outcome = r == 1 ? "used" : r == 2 ? "needs_reset" : "none";
  if (r == 1) {
    /* Returned: with length 0, or with an error in the status byte (and never more than the
     * writable bytes the chain could have had). */
    hostile_ok = id == head && (len == 0 || (st != VIRTIO_BLK_S_OK && st != 0xff && len <= 513));
  } else {
    hostile_ok = r == 2;
  }
  if (r == 2 || (device_status() & VIRTIO_STATUS_NEEDS_RESET)) {
    reinit = 1;
    if (bring_up()) hostile_ok = 0;
  }
  int valid = valid_read(sector);
  printf("TESTGUEST hostile case=%s outcome=%s len=%u status=%u reinit=%d hostile_ok=%d valid=%s\n",
         name, outcome, len, st, reinit, hostile_ok, valid ? "ok" : "FAIL");
  if (!hostile_ok || !valid) failures++;
}

static void read_chain(uint16_t first, uint64_t data_addr, uint32_t data_len) {
  prepare_read(0, 5);
  set_desc(first, (uint64_t)(uintptr_t)&hdrs[0], sizeof(hdrs[0]), VIRTQ_DESC_F_NEXT, first + 1);
  set_desc(first + 1, data_addr, data_len, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, first + 2);
  set_desc(first + 2, (uint64_t)(uintptr_t)&statuses[0], 1, VIRTQ_DESC_F_WRITE, 0);
}

static void reset_in_flight(void) {
  cases++;
  for (int s = 0; s < 3; s++) {
    prepare_read(s, (uint64_t)(20 + s));
    uint16_t d = (uint16_t)(3 * s);
    set_desc(d, (uint64_t)(uintptr_t)&hdrs[s], sizeof(hdrs[s]), VIRTQ_DESC_F_NEXT, d + 1);
    set_desc(d + 1, (uint64_t)(uintptr_t)data[s], 512, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT,
             d + 2);
    set_desc(d + 2, (uint64_t)(uintptr_t)&statuses[s], 1, VIRTQ_DESC_F_WRITE, 0);
    post(d);
  }
  notify();
  virtio_reset(&dev); /* at once: the reads may or may not have been served */
  int reset_done = device_status() == 0;
  /* From here on the device must leave the old buffers and rings alone. */
  for (int s = 0; s < 3; s++) {
    memset(data[s], 0x5c, sizeof(data[s]));
    statuses[s] = 0x5c;
  }
  uint16_t used_idx = rq_mem.used.idx;
  busy_wait(200000);
  int late = 0;
  for (int s = 0; s < 3; s++) {
    for (int i = 0; i < 512; i++) late += data[s][i] != 0x5c;
    late += statuses[s] != 0x5c;
  }
  late += rq_mem.used.idx != used_idx;
  int up = bring_up() == 0;
  int valid = up && valid_read(30);
  printf(
      "TESTGUEST hostile case=reset_in_flight reset_done=%d late_writes=%d hostile_ok=%d "
      "valid=%s\n",
      reset_done, late, reset_done && late == 0, valid ? "ok" : "FAIL");
  if (!reset_done || late || !valid) failures++;
}

int test_main(void) {
  printf("TESTGUEST virtio_blk_hostile boot=%s\n", boot_path_name());
  if (virtio_pci_find(VIRTIO_ID_BLOCK, &dev) || bring_up()) return 1;
  printf("TESTGUEST hostile indirect_desc=%d\n", indirect_ok);
  if (!valid_read(1)) {
    printf("TESTGUEST hostile: the first valid read failed\n");
    return 1;
  }

  /* A cycle among the device-writable descriptors: 0 (header) -> 1 (data) -> 2 (status) -> 1,
   * so only loop detection (or a chain-length limit) can end it. */
  prepare_read(0, 5);
  set_desc(0, (uint64_t)(uintptr_t)&hdrs[0], sizeof(hdrs[0]), VIRTQ_DESC_F_NEXT, 1);
  set_desc(1, (uint64_t)(uintptr_t)data[0], 512, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2);
  set_desc(2, (uint64_t)(uintptr_t)&statuses[0], 1, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
  run_case("loop", 0, 2);

  read_chain(0, RAM_END - 256, 512);
  run_case("past_ram", 0, 3);
  read_chain(0, 1ull << 40, 512);
  run_case("far_addr", 0, 4);

  /* Indirect tables; if the device did not offer them, the flag is a driver error anyway. */
  prepare_read(0, 5);
  table2[0].addr = (uint64_t)(uintptr_t)&hdrs[0];
  table2[0].len = sizeof(hdrs[0]);
  table2[0].flags = 0;
  table1[0].addr = (uint64_t)(uintptr_t)table2;
  table1[0].len = 16;
  table1[0].flags = VIRTQ_DESC_F_INDIRECT;
  table1[0].next = 0;
  set_desc(0, (uint64_t)(uintptr_t)table1, 16, VIRTQ_DESC_F_INDIRECT, 0);
  run_case("nested_indirect", 0, 6);

  prepare_read(0, 5);
  table1[0].addr = (uint64_t)(uintptr_t)&hdrs[0];
  table1[0].len = sizeof(hdrs[0]);
  table1[0].flags = VIRTQ_DESC_F_NEXT;
  table1[0].next = 1;
  table1[1].addr = (uint64_t)(uintptr_t)data[0];
  table1[1].len = 512;
  table1[1].flags = VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT;
  table1[1].next = 2;
  table1[2].addr = (uint64_t)(uintptr_t)&statuses[0];
  table1[2].len = 1;
  table1[2].flags = VIRTQ_DESC_F_WRITE;
  table1[2].next = 0;
  set_desc(0, (uint64_t)(uintptr_t)table1, 3 * 16 - 4, VIRTQ_DESC_F_INDIRECT, 0);
  run_case("indirect_len", 0, 7);
  prepare_read(0, 5);
  set_desc(0, (uint64_t)(uintptr_t)table1, 0, VIRTQ_DESC_F_INDIRECT, 0);
  run_case("indirect_empty", 0, 8);

  /* Whatever the descriptor holds, head 200 is outside a 16-entry table. */
  prepare_read(0, 5);
  run_case("head_range", 200, 9);

  reset_in_flight();

  printf("TESTGUEST hostile summary cases=%d failures=%d\n", cases, failures);
  virtio_reset(&dev);
  return failures ? 1 : 0;
}
