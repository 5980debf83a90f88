#include "disk/disk.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>

#include "base/fd.h"
#include "disk/qcow.h"
#include "disk/raw_file.h"

namespace crosvm::disk {

using base::ScopedFd;

const char* ImageFormatName(ImageFormat format) {
  switch (format) {
    case ImageFormat::kRaw:
      return "raw";
    case ImageFormat::kQcow2:
      return "qcow2";
  }
  return "unknown";
}

Result<ImageFormat> DetectFormat(int fd) {
  uint8_t magic[4] = {};
  auto n = PreadFull(fd, 0, magic);
  if (!n.ok()) return n.error();
  if (*n == sizeof(magic) && magic[0] == 'Q' && magic[1] == 'F' && magic[2] == 'I' &&
      magic[3] == 0xfb) {
    return ImageFormat::kQcow2;
  }
  return ImageFormat::kRaw;
}

Result<std::unique_ptr<DiskFile>> OpenDisk(const std::string& path, bool writable) {
  OpenOptions options;
  options.writable = writable;
  return OpenDisk(path, options);
}

Result<std::unique_ptr<DiskFile>> OpenDisk(const std::string& path, const OpenOptions& options) {
  ScopedFd fd(::open(path.c_str(), (options.writable ? O_RDWR : O_RDONLY) | O_CLOEXEC));
  if (!fd.valid()) return Error::FromErrno("cannot open " + path);
  // Advisory lock: one writer, or any number of readers (backing files are shared readers).
  if (::flock(fd.get(), (options.writable ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return Error(path + ": image is in use by another process", EBUSY);
    }
    return Error::FromErrno(path + ": flock");
  }
  ImageFormat format;
  if (options.format) {
    format = *options.format;
  } else {
    auto detected = DetectFormat(fd.get());
    if (!detected.ok()) return detected.error().Wrap(path);
    format = *detected;
  }
  if (format == ImageFormat::kQcow2) {
    QcowOptions qcow_options;
    qcow_options.backing_depth_left = options.backing_depth_left;
    auto qcow = QcowFile::Open(std::move(fd), path, options.writable, std::move(qcow_options));
    if (!qcow.ok()) return qcow.error();
    return std::unique_ptr<DiskFile>(std::move(*qcow));
  }
  auto raw = RawFile::Open(std::move(fd), path, options.writable);
  if (!raw.ok()) return raw.error();
  return std::unique_ptr<DiskFile>(std::move(*raw));
}

}  // namespace crosvm::disk
