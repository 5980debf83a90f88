// blkcheck: a user-space client of a block device for the crosvm tests.
//
//   blkcheck write DEV OFFSET LENGTH SEED   writes a pattern with O_DIRECT, fsyncs, reads it back
//   blkcheck verify DEV OFFSET LENGTH SEED  reads with O_DIRECT and compares
//   blkcheck rdonly DEV                     expects writing to DEV to fail
// OFFSET and LENGTH are bytes, multiples of 4096. Prints one "CROSVM-TEST: blkcheck=..." line
// and exits 0 on success, 1 on a mismatch or an error.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t next(uint64_t* s) {  // xorshift64*: the host side computes the same stream
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * 2685821657736338717ull;
}

static void fill(uint8_t* buf, size_t len, uint64_t seed, uint64_t offset) {
  for (size_t i = 0; i < len; i += 8) {
    uint64_t s = seed ^ ((offset + i) / 8 + 1);
    uint64_t v = next(&s);
    memcpy(buf + i, &v, 8);
  }
}

static int fail(const char* what, const char* dev) {
  printf("CROSVM-TEST: blkcheck=error %s %s: %s\n", what, dev, strerror(errno));
  return 1;
}

int main(int argc, char** argv) {
  if (argc == 3 && strcmp(argv[1], "rdonly") == 0) {
    // Linux lets a read-only disk be opened for writing; the write itself must fail.
    int fd = open(argv[2], O_WRONLY | O_DIRECT);
    if (fd < 0) {
      printf("CROSVM-TEST: blkcheck=rdonly %s open errno=%d (%s)\n", argv[2], errno,
             strerror(errno));
      return 0;
    }
    void* block;
    if (posix_memalign(&block, 4096, 4096)) return fail("alloc", argv[2]);
    memset(block, 0xa5, 4096);
    if (pwrite(fd, block, 4096, 0) == 4096) {
      printf("CROSVM-TEST: blkcheck=writable %s\n", argv[2]);
      return 1;
    }
    printf("CROSVM-TEST: blkcheck=rdonly %s write errno=%d (%s)\n", argv[2], errno,
           strerror(errno));
    return 0;
  }
  if (argc != 6) {
    fprintf(stderr, "usage: blkcheck write|verify DEV OFFSET LENGTH SEED | rdonly DEV\n");
    return 2;
  }
  const char* dev = argv[2];
  uint64_t off = strtoull(argv[3], NULL, 0), len = strtoull(argv[4], NULL, 0);
  uint64_t seed = strtoull(argv[5], NULL, 0);
  if (off % 4096 || len % 4096 || len == 0) {
    fprintf(stderr, "blkcheck: OFFSET and LENGTH must be multiples of 4096\n");
    return 2;
  }
  int writing = strcmp(argv[1], "write") == 0;
  int fd = open(dev, (writing ? O_RDWR : O_RDONLY) | O_DIRECT);
  if (fd < 0) return fail("open", dev);
  uint8_t *want, *got;
  if (posix_memalign((void**)&want, 4096, len) || posix_memalign((void**)&got, 4096, len)) {
    return fail("alloc", dev);
  }
  fill(want, len, seed, off);
  if (writing) {
    if (pwrite(fd, want, len, off) != (ssize_t)len) return fail("pwrite", dev);
    if (fsync(fd) != 0) return fail("fsync", dev);
  }
  if (pread(fd, got, len, off) != (ssize_t)len) return fail("pread", dev);
  if (memcmp(want, got, len) != 0) {
    size_t i = 0;
    while (want[i] == got[i]) ++i;
    printf("CROSVM-TEST: blkcheck=mismatch %s at byte %llu\n", dev, (unsigned long long)(off + i));
    return 1;
  }
  printf("CROSVM-TEST: blkcheck=ok %s %s %llu bytes at %llu\n", argv[1], dev,
         (unsigned long long)len, (unsigned long long)off);
  close(fd);
  return 0;
}
