// Disk images: the block-device backend of virtio-block. A DiskFile is a random-access store of
// VirtualSize() bytes, backed by a raw file (or block device) or a qcow2 image.
//
// Offsets and lengths are checked against VirtualSize() with overflow-safe arithmetic; a request
// outside the disk fails before anything is read or written.
//
// What a caller may assume after a request fails (there is no all-or-nothing promise: a qcow2
// write spanning several clusters, or a raw write the kernel splits, can fail after part of it
// reached the file):
//  - WriteAt, Discard, WriteZeroes: every byte of the span reads as either its old or its new
//    contents, in any mix (earlier clusters may hold new data, later ones old data); no byte
//    outside the span changes; the image stays consistent (a qcow2 image may leak clusters,
//    never references a half-written one) and later requests work as usual.
//  - ReadAt: the contents of buf are unspecified.
//  - Flush: nothing is promised about durability of the writes since the last successful Flush;
//    the next Flush tries again.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

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
  // Appends the file descriptors the disk uses (its image and any backing files): a jailed
  // device process keeps exactly these open.
  virtual void AppendKeptFds(std::vector<int>& fds) const = 0;
};

using base::RangeFits;

// Detects the format of the open file `fd` from its header magic. Files that do not start with the
// qcow magic are raw. Reads with pread; the file offset is not moved.
Result<ImageFormat> DetectFormat(int fd);

// How an image is opened. Guest-written bytes must never change how an image is opened, so:
//  - format unset (probed from the header): the image never follows a backing file (a probed
//    qcow2 that names one is refused, with an error saying which option allows it), and a
//    writable image probed as raw refuses writes that would make its first sector look like
//    another image format (see ProbedRawGuard);
//  - format=raw: the file's bytes are the disk's bytes, whatever they are; the guest may write
//    anything;
//  - format=qcow2: backing files are followed, read-only, as the format the naming image's
//    backing format extension says (absent: raw; never probed), only if they are regular files
//    inside `backing_dir` (default: the directory holding the image, after resolving symbolic
//    links in it). Relative names resolve against the directory of the image that names them;
//    symbolic links may not lead out of backing_dir. At most kMaxBackingDepth links, each under
//    the same rules.
struct OpenOptions {
  bool writable = false;
  std::optional<ImageFormat> format;
  std::optional<std::string> backing_dir;
};

// Opens `path`. Errors name the path: "cannot open disk.img: Permission denied", "disk.img: ...".
Result<std::unique_ptr<DiskFile>> OpenDisk(const std::string& path, const OpenOptions& options);
// The same with the format probed.
Result<std::unique_ptr<DiskFile>> OpenDisk(const std::string& path, bool writable);

// If `sector0` (the first bytes of a disk, up to 512) starts like a disk image format other than
// raw that QEMU or crosvm would probe, its name ("qcow2", "vmdk", ...); else nullptr.
const char* ProbedImageFormat(std::span<const uint8_t> sector0);

// Wraps a writable raw disk that was probed: writes that would make sector 0 probe as another
// format fail with EPERM (QEMU's rule for probed raw images); everything else passes through.
std::unique_ptr<DiskFile> ProbedRawGuard(std::unique_ptr<DiskFile> raw, std::string name);

// Creates a new, empty qcow2 image (version 3, 64 KiB clusters, 16-bit refcounts) of
// `virtual_size` bytes. Refuses to overwrite an existing file.
Status CreateQcow2(const std::string& path, uint64_t virtual_size);

}  // namespace crosvm::disk
