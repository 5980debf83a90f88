// A raw disk image: the file's bytes are the disk's bytes. Also serves block devices.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "base/fd.h"
#include "disk/disk.h"

namespace crosvm::disk {

class RawFile : public DiskFile {
  struct PrivateTag {};  // lets Open() use make_unique with the constructor below

 public:
  // Takes ownership of `fd`, opened O_RDWR when `writable` else O_RDONLY. `name` is used in
  // error messages. The virtual size is the file (or block device) size at open.
  static Result<std::unique_ptr<RawFile>> Open(base::ScopedFd fd, std::string name, bool writable);

  Result<size_t> ReadAt(uint64_t offset, std::span<uint8_t> buf) override;
  Result<size_t> WriteAt(uint64_t offset, std::span<const uint8_t> buf) override;
  Status Flush() override;
  Status Discard(uint64_t offset, uint64_t length) override;
  Status WriteZeroes(uint64_t offset, uint64_t length) override;
  Status Resize(uint64_t new_size) override;

  uint64_t VirtualSize() const override { return size_; }
  bool ReadOnly() const override { return !writable_; }
  ImageFormat Format() const override { return ImageFormat::kRaw; }
  void AppendKeptFds(std::vector<int>& fds) const override { fds.push_back(fd_.get()); }

  // Use Open().
  RawFile(PrivateTag, base::ScopedFd fd, std::string name, bool writable, bool block_device,
          uint64_t size)
      : fd_(std::move(fd)),
        name_(std::move(name)),
        writable_(writable),
        block_device_(block_device),
        size_(size) {}

 private:
  Status CheckWrite(uint64_t offset, uint64_t length, const char* what) const;
  Status WriteZeroBytes(uint64_t offset, uint64_t length);

  base::ScopedFd fd_;
  std::string name_;
  bool writable_;
  bool block_device_;
  uint64_t size_;
};

// Helpers shared by the formats: full positional I/O on a file descriptor, retrying on EINTR
// and short transfers. PreadFull stops at end of file and returns the bytes read (<= buf.size()).
Result<size_t> PreadFull(int fd, uint64_t offset, std::span<uint8_t> buf);
Status PwriteFull(int fd, uint64_t offset, std::span<const uint8_t> buf);

}  // namespace crosvm::disk
