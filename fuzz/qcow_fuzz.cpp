// libFuzzer target: the input is a qcow2 image. It is opened read-only and read-write, and a few
// ranges are read, written, discarded and zeroed. Errors are fine; crashes, sanitizer reports,
// leaks and hangs are not.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "base/fd.h"
#include "disk/qcow.h"
#include "disk/raw_file.h"

namespace {

using crosvm::base::ScopedFd;
using crosvm::disk::DiskFile;
using crosvm::disk::ImageFormat;
using crosvm::disk::QcowFile;
using crosvm::disk::QcowOptions;
using crosvm::disk::RawFile;

ScopedFd MemFile(const uint8_t* data, size_t size) {
  ScopedFd fd(memfd_create("qcow_fuzz", MFD_CLOEXEC));
  if (!fd.valid()) return fd;
  size_t done = 0;
  while (done < size) {
    ssize_t n = write(fd.get(), data + done, size - done);
    if (n <= 0) return ScopedFd();
    done += static_cast<size_t>(n);
  }
  return fd;
}

// Backing files are in-memory raw files: no file system access from fuzz inputs.
crosvm::base::Result<std::unique_ptr<DiskFile>> OpenBacking(const std::string&,
                                                            std::optional<ImageFormat>, int) {
  // Smaller than most virtual sizes, so reads past its end are exercised too.
  static const std::vector<uint8_t> contents = [] {
    std::vector<uint8_t> v(256 << 10);
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<uint8_t>(i * 131 + 7);
    return v;
  }();
  auto raw = RawFile::Open(MemFile(contents.data(), contents.size()), "backing", false);
  if (!raw.ok()) return raw.error();
  return std::unique_ptr<DiskFile>(std::move(*raw));
}

void Exercise(DiskFile& disk, const uint8_t* data, size_t size) {
  const uint64_t vsize = disk.VirtualSize();
  std::vector<uint8_t> buf(70000);
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<uint8_t>(i);
  // Offsets: fixed interesting ones plus a few taken from the input's tail.
  std::vector<uint64_t> offsets = {0,       3584,      65536 - 100,
                                   1 << 20, vsize / 2, vsize > 4096 ? vsize - 4096 : 0};
  for (size_t i = 0; i + 8 <= size && i < 24; i += 8) {
    uint64_t v = 0;
    for (int j = 0; j < 8; ++j) v = (v << 8) | data[size - 1 - i - j];
    offsets.push_back(vsize ? v % vsize : 0);
  }
  for (size_t i = 0; i < offsets.size(); ++i) {
    // One large request (crossing clusters and L2 tables), the rest small.
    const uint64_t off = offsets[i];
    const uint64_t want = i == 2 ? buf.size() : 4096 + 512 * i;
    const uint64_t n = std::min<uint64_t>(want, vsize - std::min(off, vsize));
    std::span<uint8_t> span(buf.data(), n);
    (void)disk.ReadAt(off, span);
    if (disk.ReadOnly()) continue;
    (void)disk.WriteAt(off, span);
    (void)disk.ReadAt(off, span);
    (void)disk.Discard(off, std::min<uint64_t>(n, 200000));
    (void)disk.WriteZeroes(off + n / 2, n / 4);
  }
  if (!disk.ReadOnly()) {
    (void)disk.Flush();
    if (vsize < (1ULL << 30)) (void)disk.Resize(vsize + (64 << 20));
    (void)disk.WriteAt(disk.VirtualSize() - std::min<uint64_t>(disk.VirtualSize(), 512),
                       std::span<uint8_t>(buf.data(), std::min<uint64_t>(disk.VirtualSize(), 512)));
    (void)disk.Flush();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > (4 << 20)) return 0;
  for (bool writable : {false, true}) {
    ScopedFd fd = MemFile(data, size);
    if (!fd.valid()) return 0;
    QcowOptions options;
    options.open_backing = OpenBacking;
    options.l2_cache_bytes = 1 << 20;
    auto disk = QcowFile::Open(std::move(fd), "fuzz.qcow2", writable, options);
    if (!disk.ok()) continue;
    Exercise(**disk, data, size);
  }
  return 0;
}
