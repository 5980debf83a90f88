/* virtio_blk_bench: virtio-blk throughput from inside the guest, timed with RDTSC.
 *
 * Four phases on the first virtio-blk PCI disk (queue 0, polling, no interrupts):
 *   seq_read_1m     1 MiB reads, sequential from sector 0 over the first BENCH_SEQ_MIB MiB,
 *                   BENCH_SEQ_PASSES times
 *   seq_write_1m    1 MiB writes, the same (overwrites the disk's start)
 *   rand_read_4k_qd1   4 KiB reads, one in flight; block b -> (b + 1013) mod blocks
 *   rand_read_4k_qd32  the same stream with 32 requests in flight: 32 chains submitted,
 *                      one notify, then each completion is refilled at once and the
 *                      device notified once per poll round that refilled something
 * Each phase also stops after BENCH_PHASE_MS of TSC time (this host emulates guest
 * instructions, so a phase can be slow). One line per phase:
 *   TESTGUEST blk PHASE mbps=X.Y kiops=X.Y reqs=N bytes=B tsc=T tsc_per_req=P ns_per_req=Q
 * tsc_khz=K (integer arithmetic only; mbps = 10^6 bytes/s). Data buffers live at a fixed
 * guest-physical address (BENCH_BUF, identity mapped, physically contiguous, not part of the
 * image). QEMU: -M q35 -drive file=disk.img,format=raw,if=none,id=d0 -device
 * virtio-blk-pci,drive=d0,disable-legacy=on */
#include "virtio.h"

#ifndef BENCH_SEQ_MIB
#define BENCH_SEQ_MIB 128
#endif
#ifndef BENCH_SEQ_PASSES
#define BENCH_SEQ_PASSES 4
#endif
#ifndef BENCH_PHASE_MS
#define BENCH_PHASE_MS 1000
#endif
#ifndef BENCH_QD1_MAX
#define BENCH_QD1_MAX 20000
#endif
#ifndef BENCH_QD32_MAX
#define BENCH_QD32_MAX 50000
#endif
#define BENCH_BUF 0x1000000ull /* 16 MiB: 1 MiB sequential buffer, then 32 x 4 KiB */
#define REQ_BIG (1u << 20)
#define REQ_SMALL 4096u
#define DEPTH 32
#define RAND_STEP_BLOCKS 1013 /* same stream as bench/run_bench.py's RANDOM_STEP */

#define VIRTIO_BLK_F_SIZE_MAX 1
#define VIRTIO_BLK_F_SEG_MAX 2
#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1

/* struct virtio_pci_common_cfg offsets used here (see lib/virtio.c) */
#define CC_QUEUE_SELECT 0x16
#define CC_QUEUE_SIZE 0x18
#define CC_QUEUE_MSIX_VECTOR 0x1a
#define CC_QUEUE_ENABLE 0x1c
#define CC_QUEUE_NOTIFY_OFF 0x1e
#define CC_QUEUE_DESC 0x20
#define CC_QUEUE_DRIVER 0x28
#define CC_QUEUE_DEVICE 0x30

#define QMAX 256

struct blk_hdr {
  uint32_t type;
  uint32_t reserved;
  uint64_t sector;
};

/* A larger queue than lib/virtio.h's (which keeps 16 entries). */
static struct {
  struct virtq_desc desc[QMAX] __attribute__((aligned(16)));
  struct {
    uint16_t flags;
    uint16_t idx;
    uint16_t ring[QMAX];
    uint16_t used_event;
  } avail __attribute__((aligned(2)));
  struct {
    uint16_t flags;
    uint16_t idx;
    struct virtq_used_elem ring[QMAX];
    uint16_t avail_event;
  } used __attribute__((aligned(4096)));
} q __attribute__((aligned(4096)));

static struct blk_hdr hdrs[DEPTH] __attribute__((aligned(64)));
static volatile uint8_t stat[DEPTH];
static uint16_t qsize;
static uint64_t notify_addr;
static uint16_t avail_idx; /* our copy of avail.idx */
static uint16_t used_seen; /* used.idx consumed so far */

static int queue_setup(struct virtio_dev* d) {
  mmio_write16(d->common + CC_QUEUE_SELECT, 0);
  uint16_t max = mmio_read16(d->common + CC_QUEUE_SIZE);
  if (max == 0) {
    printf("TESTGUEST blk: queue 0 not available\n");
    return -1;
  }
  uint16_t size = QMAX;
  while (size > max) size >>= 1;
  qsize = size;
  mmio_write16(d->common + CC_QUEUE_SIZE, size);
  mmio_write16(d->common + CC_QUEUE_MSIX_VECTOR, 0xffff);
  uint64_t desc = (uint64_t)(uintptr_t)q.desc, avail = (uint64_t)(uintptr_t)&q.avail,
           used = (uint64_t)(uintptr_t)&q.used;
  mmio_write32(d->common + CC_QUEUE_DESC, (uint32_t)desc);
  mmio_write32(d->common + CC_QUEUE_DESC + 4, (uint32_t)(desc >> 32));
  mmio_write32(d->common + CC_QUEUE_DRIVER, (uint32_t)avail);
  mmio_write32(d->common + CC_QUEUE_DRIVER + 4, (uint32_t)(avail >> 32));
  mmio_write32(d->common + CC_QUEUE_DEVICE, (uint32_t)used);
  mmio_write32(d->common + CC_QUEUE_DEVICE + 4, (uint32_t)(used >> 32));
  notify_addr = d->notify + (uint64_t)mmio_read16(d->common + CC_QUEUE_NOTIFY_OFF) * d->notify_mult;
  mmio_write16(d->common + CC_QUEUE_ENABLE, 1);
  printf("TESTGUEST blk: queue 0 size %u (max %u) notify 0x%lx\n", size, max, notify_addr);
  return 0;
}

static void set_desc(uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
  q.desc[i].addr = addr;
  q.desc[i].len = len;
  q.desc[i].flags = flags;
  q.desc[i].next = next;
}

/* Chain for slot s at descriptors base..base+nseg+1: header, nseg data pieces, status. */
static void build_chain(int s, uint16_t base, uint64_t buf, uint32_t bytes, uint32_t seg,
                        int device_writes) {
  uint16_t i = base;
  set_desc(i, (uint64_t)(uintptr_t)&hdrs[s], sizeof(struct blk_hdr), VIRTQ_DESC_F_NEXT,
           (uint16_t)(i + 1));
  i++;
  for (uint32_t off = 0; off < bytes; off += seg, i++) {
    uint32_t len = bytes - off < seg ? bytes - off : seg;
    set_desc(i, buf + off, len,
             (uint16_t)(VIRTQ_DESC_F_NEXT | (device_writes ? VIRTQ_DESC_F_WRITE : 0)),
             (uint16_t)(i + 1));
  }
  set_desc(i, (uint64_t)(uintptr_t)&stat[s], 1, VIRTQ_DESC_F_WRITE, 0);
  hdrs[s].type = device_writes ? VIRTIO_BLK_T_IN : VIRTIO_BLK_T_OUT;
  hdrs[s].reserved = 0;
}

static inline void publish(uint16_t head) {
  *(volatile uint16_t*)&q.avail.ring[avail_idx & (qsize - 1)] = head;
  barrier();
  avail_idx++;
  *(volatile uint16_t*)&q.avail.idx = avail_idx;
  barrier();
}

static inline void notify(void) {
  mmio_write16(notify_addr, 0);
}

static int failed;

static void report(const char* name, uint64_t reqs, uint64_t bytes, uint64_t ticks) {
  uint64_t khz = tsc_khz();
  uint64_t mbps10 = 0, kiops10 = 0, ns_per_req = 0;
  if (ticks && khz) {
    /* ticks / khz = ms; bytes per ms / 1000 = MB/s; requests per ms = kIOPS; one decimal */
    mbps10 = bytes / 100 * khz / ticks;
    kiops10 = reqs * khz * 10 / ticks;
    ns_per_req = reqs ? ticks * 1000 / khz * 1000 / reqs : 0;
  }
  printf(
      "TESTGUEST blk %s mbps=%lu.%lu kiops=%lu.%lu reqs=%lu bytes=%lu tsc=%lu tsc_per_req=%lu "
      "ns_per_req=%lu tsc_khz=%lu\n",
      name, mbps10 / 10, mbps10 % 10, kiops10 / 10, kiops10 % 10, reqs, bytes, ticks,
      reqs ? ticks / reqs : 0, ns_per_req, khz);
}

/* Waits for the next used element; returns its id, or -1 after too many polls. */
static inline int wait_used(void) {
  volatile uint16_t* uidx = &q.used.idx;
  uint32_t polls = 0;
  while (*uidx == used_seen) {
    if (++polls == 200000000u) return -1;
  }
  barrier();
  int id = (int)q.used.ring[used_seen & (qsize - 1)].id;
  used_seen++;
  return id;
}

/* Sequential 1 MiB requests over [0, total) bytes, one in flight. */
static void seq_phase(const char* name, int write, uint64_t total, uint32_t seg,
                      uint64_t deadline_ticks) {
  build_chain(0, 0, BENCH_BUF, REQ_BIG, seg, !write);
  uint64_t reqs = 0, sector = 0, end_sector = total / 512;
  uint64_t max_reqs = total / REQ_BIG * BENCH_SEQ_PASSES;
  uint64_t t0 = rdtsc(), t = t0;
  while (reqs < max_reqs) {
    if (sector >= end_sector) sector = 0;
    hdrs[0].sector = sector;
    stat[0] = 0xff;
    publish(0);
    notify();
    if (wait_used() < 0 || stat[0] != 0) {
      printf("TESTGUEST blk %s: request at sector %lu failed (status %u)\n", name, sector, stat[0]);
      failed = 1;
      break;
    }
    reqs++;
    sector += REQ_BIG / 512;
    t = rdtsc();
    if (t - t0 > deadline_ticks) break;
  }
  report(name, reqs, reqs * REQ_BIG, t - t0);
}

static void rand_phase(const char* name, int depth, uint64_t max_reqs, uint64_t blocks,
                       uint64_t deadline_ticks) {
  for (int s = 0; s < depth; s++)
    build_chain(s, (uint16_t)(3 * s), BENCH_BUF + REQ_BIG + (uint64_t)s * REQ_SMALL, REQ_SMALL,
                REQ_SMALL, 1);
  uint64_t block = 0, submitted = 0, done = 0;
  uint64_t t0 = rdtsc(), t = t0;
  int stop = 0;
  for (int s = 0; s < depth && submitted < max_reqs; s++) {
    hdrs[s].sector = block * 8;
    stat[s] = 0xff;
    block += RAND_STEP_BLOCKS;
    if (block >= blocks) block -= blocks;
    publish((uint16_t)(3 * s));
    submitted++;
  }
  notify();
  volatile uint16_t* uidx = &q.used.idx;
  while (done < submitted) {
    int id = wait_used();
    if (id < 0 || id % 3 != 0 || id / 3 >= depth || stat[id / 3] != 0) {
      printf("TESTGUEST blk %s: request failed (id %d)\n", name, id);
      failed = 1;
      break;
    }
    done++;
    int refilled = 0;
    for (;;) {
      int s = id / 3;
      if (!stop && submitted < max_reqs) {
        hdrs[s].sector = block * 8;
        stat[s] = 0xff;
        block += RAND_STEP_BLOCKS;
        if (block >= blocks) block -= blocks;
        publish((uint16_t)id);
        submitted++;
        refilled = 1;
      }
      if (*uidx == used_seen) break;
      id = wait_used();
      if (id % 3 != 0 || id / 3 >= depth || stat[id / 3] != 0) {
        printf("TESTGUEST blk %s: request failed (id %d)\n", name, id);
        failed = 1;
        stop = 1;
        break;
      }
      done++;
    }
    if (failed) break;
    if (refilled) notify();
    t = rdtsc();
    if (t - t0 > deadline_ticks) stop = 1;
  }
  t = rdtsc();
  report(name, done, done * REQ_SMALL, t - t0);
}

int test_main(void) {
  printf("TESTGUEST virtio_blk_bench boot=%s\n", boot_path_name());
  struct virtio_dev dev;
  if (virtio_pci_find(VIRTIO_ID_BLOCK, &dev) ||
      virtio_init(&dev, (1ull << VIRTIO_BLK_F_SIZE_MAX) | (1ull << VIRTIO_BLK_F_SEG_MAX)))
    return 1;
  if (!dev.device_cfg) {
    printf("TESTGUEST blk: no device configuration\n");
    return 1;
  }
  /* Accepted = asked for & offered (virtio_init): read the offered low word again. */
  mmio_write32(dev.common + 0x00, 0);
  uint32_t acc = mmio_read32(dev.common + 0x04);
  uint64_t cap = mmio_read32(dev.device_cfg) | ((uint64_t)mmio_read32(dev.device_cfg + 4) << 32);
  uint32_t size_max = (acc & (1u << VIRTIO_BLK_F_SIZE_MAX)) ? mmio_read32(dev.device_cfg + 8) : 0;
  uint32_t seg_max = (acc & (1u << VIRTIO_BLK_F_SEG_MAX)) ? mmio_read32(dev.device_cfg + 12) : 0;
  if (queue_setup(&dev)) return 1;
  virtio_driver_ok(&dev);

  /* 1 MiB in pieces of at most size_max (4 KiB multiples), at most seg_max of them, and the
   * whole chain (+ header and status) within the queue. */
  uint32_t seg = REQ_BIG;
  if (size_max && size_max < seg) seg = size_max & ~4095u;
  uint32_t nseg = seg ? (REQ_BIG + seg - 1) / seg : 0;
  printf(
      "TESTGUEST blk: capacity %lu sectors (%lu MiB), size_max %u seg_max %u -> 1 MiB = %u "
      "segment(s) of %u\n",
      cap, cap >> 11, size_max, seg_max, nseg, seg);
  if (!seg || (seg_max && nseg > seg_max) || nseg + 2 > qsize || 3 * DEPTH > qsize) {
    printf("TESTGUEST blk: the device's limits do not allow 1 MiB requests or QD%d here\n", DEPTH);
    virtio_reset(&dev);
    return 1;
  }
  uint64_t seq_bytes = (uint64_t)BENCH_SEQ_MIB << 20;
  if (seq_bytes > (cap << 9)) seq_bytes = (cap << 9) & ~(uint64_t)(REQ_BIG - 1);
  uint64_t blocks = cap / 8;
  if (seq_bytes == 0 || blocks < DEPTH) {
    printf("TESTGUEST blk: disk too small\n");
    virtio_reset(&dev);
    return 1;
  }
  uint64_t khz = tsc_khz();
  uint64_t deadline = (khz ? khz : 3000000) * BENCH_PHASE_MS;

  seq_phase("seq_read_1m", 0, seq_bytes, seg, deadline);
  if (!failed) seq_phase("seq_write_1m", 1, seq_bytes, seg, deadline);
  if (!failed) rand_phase("rand_read_4k_qd1", 1, BENCH_QD1_MAX, blocks, deadline);
  if (!failed) rand_phase("rand_read_4k_qd32", DEPTH, BENCH_QD32_MAX, blocks, deadline);
  virtio_reset(&dev);
  return failed;
}
