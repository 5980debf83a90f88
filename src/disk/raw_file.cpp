#include "disk/raw_file.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <vector>

namespace crosvm::disk {

using base::Error;
using base::Ok;

Result<size_t> PreadFull(int fd, uint64_t offset, std::span<uint8_t> buf) {
  size_t done = 0;
  while (done < buf.size()) {
    if (offset + done > static_cast<uint64_t>(std::numeric_limits<off_t>::max())) {
      return Error("read offset out of range", EINVAL);
    }
    ssize_t n =
        ::pread(fd, buf.data() + done, buf.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::FromErrno("read at offset " + std::to_string(offset + done));
    }
    if (n == 0) break;  // end of file
    done += static_cast<size_t>(n);
  }
  return done;
}

Status PwriteFull(int fd, uint64_t offset, std::span<const uint8_t> buf) {
  size_t done = 0;
  while (done < buf.size()) {
    if (offset + done > static_cast<uint64_t>(std::numeric_limits<off_t>::max())) {
      return Error("write offset out of range", EINVAL);
    }
    ssize_t n =
        ::pwrite(fd, buf.data() + done, buf.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::FromErrno("write at offset " + std::to_string(offset + done));
    }
    if (n == 0)
      return Error("write at offset " + std::to_string(offset + done) + " made no progress", EIO);
    done += static_cast<size_t>(n);
  }
  return Ok();
}

Result<std::unique_ptr<RawFile>> RawFile::Open(base::ScopedFd fd, std::string name, bool writable) {
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return Error::FromErrno(name + ": fstat");
  uint64_t size = 0;
  bool block_device = S_ISBLK(st.st_mode);
  if (block_device) {
    if (::ioctl(fd.get(), BLKGETSIZE64, &size) != 0) {
      return Error::FromErrno(name + ": BLKGETSIZE64");
    }
  } else if (S_ISREG(st.st_mode)) {
    size = static_cast<uint64_t>(st.st_size);
  } else {
    return Error(name + ": not a regular file or block device");
  }
  return std::make_unique<RawFile>(PrivateTag{}, std::move(fd), std::move(name), writable,
                                   block_device, size);
}

Result<size_t> RawFile::ReadAt(uint64_t offset, std::span<uint8_t> buf) {
  if (!RangeFits(offset, buf.size(), size_)) {
    return Error(name_ + ": read of " + std::to_string(buf.size()) + " bytes at offset " +
                     std::to_string(offset) + " is beyond the disk size " + std::to_string(size_),
                 EINVAL);
  }
  auto n = PreadFull(fd_.get(), offset, buf);
  if (!n.ok()) return n.error().Wrap(name_);
  // The file may be shorter than the virtual size (truncated behind our back): zeros.
  std::fill(buf.begin() + static_cast<ptrdiff_t>(*n), buf.end(), 0);
  return buf.size();
}

Status RawFile::CheckWrite(uint64_t offset, uint64_t length, const char* what) const {
  if (!writable_) return Error(name_ + ": " + what + " refused: disk is read-only", EROFS);
  if (!RangeFits(offset, length, size_)) {
    return Error(name_ + ": " + what + " of " + std::to_string(length) + " bytes at offset " +
                     std::to_string(offset) + " is beyond the disk size " + std::to_string(size_),
                 EINVAL);
  }
  return Ok();
}

Result<size_t> RawFile::WriteAt(uint64_t offset, std::span<const uint8_t> buf) {
  CROSVM_RETURN_IF_ERROR(CheckWrite(offset, buf.size(), "write"));
  auto st = PwriteFull(fd_.get(), offset, buf);
  if (!st.ok()) return st.error().Wrap(name_);
  return buf.size();
}

Status RawFile::Flush() {
  if (::fdatasync(fd_.get()) != 0) {
    // Read-only descriptors of some file systems refuse fdatasync; nothing to flush there.
    if (!writable_ && (errno == EBADF || errno == EINVAL)) return Ok();
    return Error::FromErrno(name_ + ": fdatasync");
  }
  return Ok();
}

Status RawFile::WriteZeroBytes(uint64_t offset, uint64_t length) {
  constexpr uint64_t kChunk = 1 << 20;
  std::vector<uint8_t> zeros(static_cast<size_t>(std::min(length, kChunk)), 0);
  while (length > 0) {
    uint64_t n = std::min<uint64_t>(length, zeros.size());
    auto st = PwriteFull(fd_.get(), offset, std::span<const uint8_t>(zeros.data(), n));
    if (!st.ok()) return st.error().Wrap(name_);
    offset += n;
    length -= n;
  }
  return Ok();
}

Status RawFile::Discard(uint64_t offset, uint64_t length) {
  CROSVM_RETURN_IF_ERROR(CheckWrite(offset, length, "discard"));
  if (length == 0) return Ok();
  if (::fallocate(fd_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                  static_cast<off_t>(length)) == 0) {
    return Ok();
  }
  if (errno != EOPNOTSUPP && errno != ENOSYS && errno != EINVAL) {
    return Error::FromErrno(name_ + ": punching a hole at offset " + std::to_string(offset));
  }
  // No hole punching here: the range must still read as zeros.
  return WriteZeroBytes(offset, length);
}

Status RawFile::WriteZeroes(uint64_t offset, uint64_t length) {
  CROSVM_RETURN_IF_ERROR(CheckWrite(offset, length, "write zeroes"));
  if (length == 0) return Ok();
  for (int mode :
       {FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE}) {
    if (::fallocate(fd_.get(), mode, static_cast<off_t>(offset), static_cast<off_t>(length)) == 0) {
      return Ok();
    }
    if (errno != EOPNOTSUPP && errno != ENOSYS && errno != EINVAL) {
      return Error::FromErrno(name_ + ": zeroing at offset " + std::to_string(offset));
    }
  }
  return WriteZeroBytes(offset, length);
}

Status RawFile::Resize(uint64_t new_size) {
  if (!writable_) return Error(name_ + ": resize refused: disk is read-only", EROFS);
  if (block_device_) return Error(name_ + ": cannot resize a block device", ENOTSUP);
  if (new_size > static_cast<uint64_t>(std::numeric_limits<off_t>::max())) {
    return Error(name_ + ": size " + std::to_string(new_size) + " is too large", EINVAL);
  }
  if (::ftruncate(fd_.get(), static_cast<off_t>(new_size)) != 0) {
    return Error::FromErrno(name_ + ": ftruncate");
  }
  size_ = new_size;
  return Ok();
}

}  // namespace crosvm::disk
