#include "disk/file_io.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "disk/raw_file.h"

namespace crosvm::disk {

using base::Error;
using base::Ok;

base::Result<size_t> FdFileIo::Pread(uint64_t offset, std::span<uint8_t> buf) {
  return PreadFull(fd_.get(), offset, buf);
}

base::Status FdFileIo::Pwrite(uint64_t offset, std::span<const uint8_t> buf) {
  return PwriteFull(fd_.get(), offset, buf);
}

base::Status FdFileIo::Sync() {
  if (::fdatasync(fd_.get()) != 0) return Error::FromErrno("fdatasync");
  return Ok();
}

base::Status FdFileIo::PunchHole(uint64_t offset, uint64_t length) {
  if (::fallocate(fd_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                  static_cast<off_t>(length)) != 0) {
    return Error::FromErrno("fallocate");
  }
  return Ok();
}

base::Result<uint64_t> FdFileIo::Size() {
  struct stat st;
  if (::fstat(fd_.get(), &st) != 0) return Error::FromErrno("fstat");
  if (S_ISBLK(st.st_mode)) {
    uint64_t size = 0;
    if (::ioctl(fd_.get(), BLKGETSIZE64, &size) != 0) return Error::FromErrno("BLKGETSIZE64");
    return size;
  }
  if (!S_ISREG(st.st_mode)) return Error("not a regular file or block device", EINVAL);
  return static_cast<uint64_t>(st.st_size);
}

}  // namespace crosvm::disk
