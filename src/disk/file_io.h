// The file operations a disk image format needs, behind an interface so that tests can log,
// reorder or fail them (crash-consistency and fault-injection tests). FdFileIo is the real one.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/error.h"
#include "base/fd.h"

namespace crosvm::disk {

class FileIo {
 public:
  virtual ~FileIo() = default;
  FileIo() = default;
  FileIo(const FileIo&) = delete;
  FileIo& operator=(const FileIo&) = delete;

  // Reads up to buf.size() bytes at `offset`, stopping at end of file; returns the bytes read.
  virtual base::Result<size_t> Pread(uint64_t offset, std::span<uint8_t> buf) = 0;
  // Writes all of `buf` at `offset` (or fails; then any part of it may have been written).
  virtual base::Status Pwrite(uint64_t offset, std::span<const uint8_t> buf) = 0;
  // Write barrier: every completed Pwrite is durable when this returns successfully.
  virtual base::Status Sync() = 0;
  // [offset, offset+length) may read as zeros afterwards; the file size does not change.
  // Best effort: the caller ignores failures (it only costs space).
  virtual base::Status PunchHole(uint64_t offset, uint64_t length) = 0;
  // Current size in bytes (a block device's capacity).
  virtual base::Result<uint64_t> Size() = 0;
  // Appends the file descriptors this object uses: a jailed device process keeps exactly these.
  virtual void AppendKeptFds(std::vector<int>& fds) const = 0;
};

// FileIo on a file descriptor (regular file or block device): pread/pwrite, fdatasync,
// fallocate(PUNCH_HOLE).
class FdFileIo : public FileIo {
 public:
  explicit FdFileIo(base::ScopedFd fd) : fd_(std::move(fd)) {}
  base::Result<size_t> Pread(uint64_t offset, std::span<uint8_t> buf) override;
  base::Status Pwrite(uint64_t offset, std::span<const uint8_t> buf) override;
  base::Status Sync() override;
  base::Status PunchHole(uint64_t offset, uint64_t length) override;
  base::Result<uint64_t> Size() override;
  void AppendKeptFds(std::vector<int>& fds) const override { fds.push_back(fd_.get()); }
  int fd() const { return fd_.get(); }

 private:
  base::ScopedFd fd_;
};

}  // namespace crosvm::disk
