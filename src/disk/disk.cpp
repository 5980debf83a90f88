#include "disk/disk.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

#include "base/fd.h"
#include "base/logging.h"
#include "disk/qcow.h"
#include "disk/raw_file.h"

namespace crosvm::disk {

using base::Ok;
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

// ---------------------------------------------------------------------------------------------
// Probed raw images: sector 0 may not become another format's header.

namespace {

constexpr size_t kSectorSize = 512;

struct Magic {
  size_t offset;
  const char* bytes;
  size_t length;
  const char* format;
};

// Header magics of the formats QEMU (and crosvm) probe, at the offsets where they look for them.
constexpr Magic kMagics[] = {
    {0, "QFI\xfb", 4, "qcow2"},  // qcow2, and qcow version 1
    {0, "QED\0", 4, "qed"},
    {0, "KDMV", 4, "vmdk"},
    {0, "# Disk DescriptorFile", 21, "vmdk"},
    {0, "vhdxfile", 8, "vhdx"},
    {0, "conectix", 8, "vpc"},
    {0, "WithoutFreeSpace", 16, "parallels"},
    {0, "WithouFreSpacExt", 16, "parallels"},
    {0, "LUKS\xba\xbe", 6, "luks"},
    {0, "Bochs Virtual HD Image", 22, "bochs"},
    {0, "#!/bin/sh\n#V2.0 Format\nmodprobe cloop", 37, "cloop"},
    {0x40, "\x7f\x10\xda\xbe", 4, "vdi"},  // 0xbeda107f, little-endian
};

class ProbedRawGuardFile : public DiskFile {
 public:
  ProbedRawGuardFile(std::unique_ptr<DiskFile> inner, std::string name)
      : inner_(std::move(inner)), name_(std::move(name)) {}

  Result<size_t> ReadAt(uint64_t offset, std::span<uint8_t> buf) override {
    return inner_->ReadAt(offset, buf);
  }
  Result<size_t> WriteAt(uint64_t offset, std::span<const uint8_t> buf) override {
    if (offset >= kSectorSize || buf.empty()) return inner_->WriteAt(offset, buf);
    // Writes to sector 0 are checked against what the sector would hold afterwards (a header can
    // be assembled from several small writes), under a lock so that two writes cannot race past
    // the check together.
    std::lock_guard lock(sector0_mu_);
    const uint64_t sector_bytes = std::min<uint64_t>(kSectorSize, inner_->VirtualSize());
    std::vector<uint8_t> sector(sector_bytes, 0);
    if (!RangeFits(offset, buf.size(), inner_->VirtualSize())) {
      return inner_->WriteAt(offset, buf);  // the inner disk reports the range error
    }
    if (offset + buf.size() < sector_bytes || offset > 0) {
      auto r = inner_->ReadAt(0, sector);
      if (!r.ok()) return r.error();
    }
    const size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), sector_bytes - offset));
    std::copy_n(buf.begin(), n, sector.begin() + static_cast<ptrdiff_t>(offset));
    CROSVM_RETURN_IF_ERROR(CheckSector0(sector));
    return inner_->WriteAt(offset, buf);
  }
  Status Flush() override { return inner_->Flush(); }
  // Zeroing part of sector 0 could complete a header too (a magic that ends in a zero byte).
  Status Discard(uint64_t offset, uint64_t length) override {
    std::unique_lock<std::mutex> lock;
    CROSVM_RETURN_IF_ERROR(CheckZeroing(offset, length, &lock));
    return inner_->Discard(offset, length);
  }
  Status WriteZeroes(uint64_t offset, uint64_t length) override {
    std::unique_lock<std::mutex> lock;
    CROSVM_RETURN_IF_ERROR(CheckZeroing(offset, length, &lock));
    return inner_->WriteZeroes(offset, length);
  }
  Status Resize(uint64_t new_size) override { return inner_->Resize(new_size); }
  uint64_t VirtualSize() const override { return inner_->VirtualSize(); }
  bool ReadOnly() const override { return inner_->ReadOnly(); }
  ImageFormat Format() const override { return inner_->Format(); }
  void AppendKeptFds(std::vector<int>& fds) const override { inner_->AppendKeptFds(fds); }

 private:
  // At most one log line per second, whatever the guest does.
  class LogLimit {
   public:
    bool Allow() {
      std::lock_guard lock(mu_);
      struct timespec now;
      clock_gettime(CLOCK_MONOTONIC, &now);
      if (now.tv_sec == last_ && logged_) return false;
      last_ = now.tv_sec;
      logged_ = true;
      return true;
    }

   private:
    std::mutex mu_;
    time_t last_ = 0;
    bool logged_ = false;
  };

  Status CheckSector0(std::span<const uint8_t> sector) {
    const char* format = ProbedImageFormat(sector);
    if (format == nullptr) return Ok();
    if (log_.Allow()) {
      CROSVM_LOG(WARNING) << name_ << ": refused a guest write to sector 0 that would make the "
                          << "image look like " << format
                          << " (it was probed as raw; pass format=raw to allow such writes)";
    }
    return Error(name_ +
                     ": write to sector 0 refused: the image was probed as raw and the data "
                     "would make it look like " +
                     format + " (pass format=raw to allow it)",
                 EPERM);
  }

  // For a zeroing request that covers part of sector 0: what the sector would hold afterwards.
  // Leaves `lock` holding the sector-0 lock when the request touches sector 0.
  Status CheckZeroing(uint64_t offset, uint64_t length, std::unique_lock<std::mutex>* lock) {
    const uint64_t sector_bytes = std::min<uint64_t>(kSectorSize, inner_->VirtualSize());
    if (offset >= sector_bytes || length == 0 ||
        !RangeFits(offset, length, inner_->VirtualSize())) {
      return Ok();  // the inner disk reports range errors
    }
    *lock = std::unique_lock<std::mutex>(sector0_mu_);
    std::vector<uint8_t> sector(sector_bytes, 0);
    auto r = inner_->ReadAt(0, sector);
    if (!r.ok()) return r.error();
    const uint64_t end = std::min<uint64_t>(sector_bytes, offset + length);
    std::fill(sector.begin() + static_cast<ptrdiff_t>(offset),
              sector.begin() + static_cast<ptrdiff_t>(end), 0);
    return CheckSector0(sector);
  }

  std::unique_ptr<DiskFile> inner_;
  std::string name_;
  std::mutex sector0_mu_;
  LogLimit log_;
};

}  // namespace

const char* ProbedImageFormat(std::span<const uint8_t> sector0) {
  for (const Magic& m : kMagics) {
    if (sector0.size() >= m.offset + m.length &&
        std::memcmp(sector0.data() + m.offset, m.bytes, m.length) == 0) {
      return m.format;
    }
  }
  return nullptr;
}

std::unique_ptr<DiskFile> ProbedRawGuard(std::unique_ptr<DiskFile> raw, std::string name) {
  return std::make_unique<ProbedRawGuardFile>(std::move(raw), std::move(name));
}

// ---------------------------------------------------------------------------------------------
// Backing files

namespace {

// Collapses "", "." and ".." components of an absolute path ("/.." is "/").
std::string NormalizeAbsolute(const std::string& path) {
  std::vector<std::string> parts;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t slash = path.find('/', pos);
    if (slash == std::string::npos) slash = path.size();
    std::string part = path.substr(pos, slash - pos);
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
    } else if (!part.empty() && part != ".") {
      parts.push_back(std::move(part));
    }
    pos = slash + 1;
  }
  std::string out;
  for (const auto& p : parts) out += "/" + p;
  return out.empty() ? "/" : out;
}

std::string DirName(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

Result<std::string> RealPath(const std::string& path) {
  char* resolved = ::realpath(path.c_str(), nullptr);
  if (resolved == nullptr) return Error::FromErrno("cannot resolve " + path);
  std::string out(resolved);
  std::free(resolved);
  return out;
}

// The directory backing files must stay in, shared by every link of a chain.
struct BackingRoot {
  std::string path;  // absolute, no symbolic links
  ScopedFd fd;       // O_PATH | O_DIRECTORY
};

Result<ScopedFd> OpenBeneath(const BackingRoot& root, const std::string& relative) {
  struct open_how how;
  std::memset(&how, 0, sizeof(how));
  how.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  for (;;) {
    long fd = ::syscall(SYS_openat2, root.fd.get(), relative.c_str(), &how, sizeof(how));
    if (fd >= 0) return ScopedFd(static_cast<int>(fd));
    if (errno != EINTR && errno != EAGAIN) break;
  }
  return Error::FromErrno("openat2");
}

BackingOpener MakeBackingOpener(std::shared_ptr<const BackingRoot> root, std::string image_dir);

Result<std::unique_ptr<DiskFile>> OpenBackingFile(const std::shared_ptr<const BackingRoot>& root,
                                                  const std::string& image_dir,
                                                  const std::string& name,
                                                  std::optional<ImageFormat> named_format,
                                                  int depth_left) {
  if (name.empty()) return Error("empty backing file name", EINVAL);
  const std::string path = NormalizeAbsolute(name[0] == '/' ? name : image_dir + "/" + name);
  const std::string allowed_hint =
      " (pass backing=DIR to allow another directory; now backing files must be in " + root->path +
      ")";
  std::string relative;
  if (root->path == "/") {
    relative = path.substr(1);
  } else if (path.size() > root->path.size() &&
             path.compare(0, root->path.size(), root->path) == 0 &&
             path[root->path.size()] == '/') {
    relative = path.substr(root->path.size() + 1);
  }
  if (relative.empty()) {
    return Error(path + " is outside the directory allowed for backing files" + allowed_hint, 0);
  }
  auto fd = OpenBeneath(*root, relative);
  if (!fd.ok()) {
    if (fd.error().errnum() == EXDEV || fd.error().errnum() == ELOOP) {
      return Error(path +
                       ": a symbolic link leads outside the directory allowed for backing files" +
                       allowed_hint,
                   0);
    }
    if (fd.error().errnum() == ENOSYS) {
      return Error(path + ": backing files need openat2 (Linux 5.6 or newer)", ENOSYS);
    }
    return Error::FromErrno("cannot open " + path, fd.error().errnum());
  }
  struct stat st;
  if (::fstat(fd->get(), &st) != 0) return Error::FromErrno(path + ": fstat");
  if (!S_ISREG(st.st_mode)) {
    return Error(path + ": a backing file must be a regular file (this is " +
                     (S_ISBLK(st.st_mode)   ? "a block device"
                      : S_ISCHR(st.st_mode) ? "a character device"
                      : S_ISDIR(st.st_mode) ? "a directory"
                                            : "not a regular file") +
                     ")",
                 0);
  }
  int flags = ::fcntl(fd->get(), F_GETFL);
  if (flags < 0 || ::fcntl(fd->get(), F_SETFL, flags & ~O_NONBLOCK) != 0) {
    return Error::FromErrno(path + ": fcntl");
  }
  if (::flock(fd->get(), LOCK_SH | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) return Error(path + ": image is in use by another process", EBUSY);
    return Error::FromErrno(path + ": flock");
  }
  // The format is the one the naming image gives; without a backing format extension, raw.
  const ImageFormat format = named_format.value_or(ImageFormat::kRaw);
  if (format == ImageFormat::kRaw) {
    auto raw = RawFile::Open(std::move(*fd), path, false);
    if (!raw.ok()) return raw.error();
    return std::unique_ptr<DiskFile>(std::move(*raw));
  }
  QcowOptions options;
  options.backing_depth_left = depth_left;
  options.open_backing = MakeBackingOpener(root, DirName(path));
  auto qcow = QcowFile::Open(std::move(*fd), path, false, std::move(options));
  if (!qcow.ok()) return qcow.error();
  return std::unique_ptr<DiskFile>(std::move(*qcow));
}

BackingOpener MakeBackingOpener(std::shared_ptr<const BackingRoot> root, std::string image_dir) {
  return [root = std::move(root), image_dir = std::move(image_dir)](
             const std::string& name, std::optional<ImageFormat> format, int depth_left) {
    return OpenBackingFile(root, image_dir, name, format, depth_left);
  };
}

// The backing file name of a qcow2 image, "" if it names none. Only the header fields needed for
// that are trusted, and only as far as QcowHeader::Parse and the bounds below check them.
Result<std::string> QcowBackingName(int fd) {
  uint8_t head[112] = {};
  auto n = PreadFull(fd, 0, head);
  if (!n.ok()) return n.error();
  auto header = QcowHeader::Parse(std::span<const uint8_t>(head, *n));
  if (!header.ok()) return header.error();
  if (header->backing_file_offset == 0 || header->backing_file_size == 0) return std::string();
  std::string name(std::min<uint32_t>(header->backing_file_size, 1023), '\0');
  auto r = PreadFull(fd, header->backing_file_offset,
                     std::span<uint8_t>(reinterpret_cast<uint8_t*>(name.data()), name.size()));
  if (!r.ok()) return r.error();
  name.resize(*r);
  // Printable in one line whatever the image holds.
  for (char& c : name) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
  }
  return name.empty() ? std::string("?") : name;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Opening

Result<std::unique_ptr<DiskFile>> OpenDisk(const std::string& path, bool writable) {
  OpenOptions options;
  options.writable = writable;
  return OpenDisk(path, options);
}

Result<std::unique_ptr<DiskFile>> OpenDisk(const std::string& path, const OpenOptions& options) {
  if (options.backing_dir && options.format != ImageFormat::kQcow2) {
    return Error(path + ": backing=DIR needs format=qcow2 (only qcow2 images have backing files)",
                 EINVAL);
  }
  ScopedFd fd(::open(path.c_str(), (options.writable ? O_RDWR : O_RDONLY) | O_CLOEXEC));
  if (!fd.valid()) return Error::FromErrno("cannot open " + path);
  // Advisory lock: one writer, or any number of readers (backing files are shared readers).
  if (::flock(fd.get(), (options.writable ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return Error(path + ": image is in use by another process", EBUSY);
    }
    return Error::FromErrno(path + ": flock");
  }
  const bool probed = !options.format.has_value();
  ImageFormat format;
  if (!probed) {
    format = *options.format;
  } else {
    auto detected = DetectFormat(fd.get());
    if (!detected.ok()) return detected.error().Wrap(path);
    format = *detected;
  }

  if (format == ImageFormat::kRaw) {
    auto raw = RawFile::Open(std::move(fd), path, options.writable);
    if (!raw.ok()) return raw.error();
    std::unique_ptr<DiskFile> disk = std::move(*raw);
    if (probed && options.writable) disk = ProbedRawGuard(std::move(disk), path);
    return disk;
  }

  QcowOptions qcow_options;
  if (probed) {
    // A probed image never follows a backing file: its header may have been written by a guest.
    auto backing = QcowBackingName(fd.get());
    if (!backing.ok()) return backing.error().Wrap(path);
    if (!backing->empty()) {
      return Error(path + ": probed as qcow2 with backing file " + *backing +
                       "; a probed image never follows a backing file: pass format=qcow2 (and "
                       "backing=DIR) if you trust this image",
                   0);
    }
    qcow_options.allow_backing = false;
  } else {
    auto image_dir = RealPath(DirName(path));
    if (!image_dir.ok()) return image_dir.error().Wrap(path);
    auto root = std::make_shared<BackingRoot>();
    if (options.backing_dir) {
      auto dir = RealPath(*options.backing_dir);
      if (!dir.ok()) return dir.error().Wrap(path + ": backing=" + *options.backing_dir);
      root->path = *dir;
    } else {
      root->path = *image_dir;
    }
    root->fd = ScopedFd(::open(root->path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!root->fd.valid()) return Error::FromErrno(path + ": cannot open " + root->path);
    qcow_options.open_backing = MakeBackingOpener(std::move(root), *image_dir);
  }
  auto qcow = QcowFile::Open(std::move(fd), path, options.writable, std::move(qcow_options));
  if (!qcow.ok()) return qcow.error();
  return std::unique_ptr<DiskFile>(std::move(*qcow));
}

}  // namespace crosvm::disk
