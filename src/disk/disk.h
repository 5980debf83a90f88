// Disk images: the block-device backend of virtio-block. A DiskFile is a random-access store of
// VirtualSize() bytes, backed by a raw file (or block device) or a qcow2 image.
//
// Every request is all-or-nothing: ReadAt/WriteAt transfer the whole span or return an error.
// Offsets and lengths are checked against VirtualSize() with overflow-safe arithmetic.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "base/error.h"
#include "base/range.h"

namespace crosvm::disk {

using base::Error;
using base::Result;
using base::Status;

enum class ImageFormat { kRaw, kQcow2 };

// Longest chain of backing files below an image.
inline constexpr int kMaxBackingDepth = 16;

const char* ImageFormatName(ImageFormat format);

class DiskFile {
 public:
  virtual ~DiskFile() = default;
  DiskFile() = default;
  DiskFile(const DiskFile&) = delete;
  DiskFile& operator=(const DiskFile&) = delete;

  // Reads buf.size() bytes at `offset`. Areas that hold no data read as zeros. Returns buf.size().
  virtual Result<size_t> ReadAt(uint64_t offset, std::span<uint8_t> buf) = 0;
  // Writes all of buf at `offset`. Returns buf.size().
  virtual Result<size_t> WriteAt(uint64_t offset, std::span<const uint8_t> buf) = 0;
  // Makes every completed write durable (fdatasync, after writing back cached metadata).
  virtual Status Flush() = 0;
  // The guest no longer needs [offset, offset+length): the range reads as zeros afterwards and its
  // storage is released where the format allows it.
  virtual Status Discard(uint64_t offset, uint64_t length) = 0;
  // [offset, offset+length) reads as zeros afterwards; storage may or may not be released.
  virtual Status WriteZeroes(uint64_t offset, uint64_t length) = 0;
  // Changes the virtual size. Raw files grow or shrink; qcow2 images only grow.
  virtual Status Resize(uint64_t new_size) = 0;

  virtual uint64_t VirtualSize() const = 0;
  virtual bool ReadOnly() const = 0;
  virtual ImageFormat Format() const = 0;
};

using base::RangeFits;

// Detects the format of the open file `fd` from its header magic. Files that do not start with the
// qcow magic are raw. Reads with pread; the file offset is not moved.
Result<ImageFormat> DetectFormat(int fd);

// Opens `path` (raw or qcow2, detected from the header), read-write when `writable`.
// Errors name the path: "cannot open disk.img: Permission denied", "disk.img: ...".
Result<std::unique_ptr<DiskFile>> OpenDisk(const std::string& path, bool writable);

struct OpenOptions {
  bool writable = false;
  // The format, when known (e.g. named by a qcow2 image for its backing file); else detected.
  std::optional<ImageFormat> format;
  // How many more backing files may be chained below the opened image.
  int backing_depth_left = kMaxBackingDepth;
};
Result<std::unique_ptr<DiskFile>> OpenDisk(const std::string& path, const OpenOptions& options);

// Creates a new, empty qcow2 image (version 3, 64 KiB clusters, 16-bit refcounts) of
// `virtual_size` bytes. Refuses to overwrite an existing file.
Status CreateQcow2(const std::string& path, uint64_t virtual_size);

}  // namespace crosvm::disk
