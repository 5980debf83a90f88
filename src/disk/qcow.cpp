#include "disk/qcow.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <utility>

#include "base/logging.h"
#include "base/strings.h"
#include "disk/raw_file.h"

namespace crosvm::disk {

using base::Ok;
using base::ScopedFd;

namespace {

// L1 and L2 entries.
constexpr uint64_t kOffsetMask = 0x00fffffffffffe00ULL;  // bits 9..55
constexpr uint64_t kCopied = 1ULL << 63;
constexpr uint64_t kCompressed = 1ULL << 62;
constexpr uint64_t kZeroFlag = 1;
constexpr uint64_t kL1Reserved = 0x7f000000000001ffULL;  // bits 0..8 and 56..62
constexpr uint64_t kL2Reserved = 0x3f000000000001feULL;  // bits 1..8 and 56..61
// Refcount table entries.
constexpr uint64_t kRefTableReserved = 0x1ff;

// Incompatible feature bits.
constexpr uint64_t kIncDirty = 1 << 0;
constexpr uint64_t kIncCorrupt = 1 << 1;
constexpr uint64_t kIncExternalData = 1 << 2;
constexpr uint64_t kIncCompressionType = 1 << 3;
constexpr uint64_t kIncExtendedL2 = 1 << 4;
constexpr uint64_t kIncKnown = 0x1f;

// Header extensions.
constexpr uint32_t kExtEnd = 0;
constexpr uint32_t kExtBackingFormat = 0xe2792aca;

// Header field offsets, for in-place updates.
constexpr uint64_t kHeaderSizeOffset = 24;      // size, crypt_method, l1_size, l1_table_offset
constexpr uint64_t kHeaderRefTableOffset = 48;  // refcount_table_offset, refcount_table_clusters
constexpr uint64_t kHeaderIncompatibleOffset = 72;  // incompatible_features
constexpr uint64_t kHeaderAutoclearOffset = 88;     // autoclear_features

constexpr uint32_t kV2HeaderLength = 72;
constexpr uint32_t kV3HeaderLength = 104;
constexpr uint32_t kMinClusterBits = 9;
constexpr uint32_t kMaxClusterBits = 21;
// Bounds on in-memory tables (the same as QEMU's, so that every QEMU image opens).
constexpr uint64_t kMaxL1Entries = (32 << 20) / 8;
constexpr uint64_t kMaxRefTableBytes = 8 << 20;
constexpr uint32_t kMaxSnapshots = 65536;
constexpr uint32_t kMaxBackingNameLength = 1023;
// Largest host offset an L2 entry can hold.
constexpr uint64_t kMaxHostOffset = 1ULL << 56;
// Pending refcount decrements kept before they are committed by a metadata flush.
constexpr size_t kMaxPendingDecrements = 1 << 16;
// Larger dirty images are not repaired here (the reference counts are built in memory: 4 bytes
// per cluster, and every L1 entry of the image and its snapshots is visited).
constexpr uint64_t kMaxRepairClusters = 1ULL << 24;
constexpr uint64_t kMaxRepairL1Entries = 1ULL << 24;

uint64_t LoadBe(const uint8_t* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | p[i];
  return v;
}

void StoreBe(uint8_t* p, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) {
    p[i] = static_cast<uint8_t>(v);
    v >>= 8;
  }
}

using base::Hex;

uint64_t DivRoundUp(uint64_t a, uint64_t b) {
  return a / b + (a % b != 0);
}

// L1 entries needed to map `size` bytes when each entry maps 2^`shift` bytes.
uint64_t L1EntriesFor(uint64_t size, uint32_t shift) {
  return (size >> shift) + ((size & ((1ULL << shift) - 1)) != 0);
}

// Checks the header values that do not need the file's contents.
Status ValidateHeader(const QcowHeader& h, uint64_t file_size, bool writable) {
  if (h.cluster_bits < kMinClusterBits || h.cluster_bits > kMaxClusterBits) {
    return Error("cluster_bits " + std::to_string(h.cluster_bits) + " is outside 9..21", EINVAL);
  }
  const uint64_t cluster_size = 1ULL << h.cluster_bits;
  if (h.version == 3) {
    if (h.header_length < kV3HeaderLength || h.header_length > cluster_size) {
      return Error("invalid header length " + std::to_string(h.header_length), EINVAL);
    }
  }
  if (h.crypt_method != 0) {
    return Error(
        "encrypted images are not supported (crypt_method " + std::to_string(h.crypt_method) + ")",
        ENOTSUP);
  }
  if (uint64_t unknown = h.incompatible_features & ~kIncKnown) {
    return Error("unknown incompatible features " + Hex(unknown) +
                     " (the image needs a newer qcow2 implementation)",
                 ENOTSUP);
  }
  if (h.incompatible_features & kIncExternalData) {
    return Error("external data files are not supported", ENOTSUP);
  }
  if (h.incompatible_features & kIncExtendedL2) {
    return Error("extended L2 entries (subclusters) are not supported", ENOTSUP);
  }
  if (h.incompatible_features & kIncCompressionType) {
    if (h.header_length <= kV3HeaderLength || h.compression_type == 0) {
      return Error("compression type feature bit set without a compression type", EINVAL);
    }
  }
  if (h.compression_type != 0) {
    if (!(h.incompatible_features & kIncCompressionType)) {
      return Error("compression type set without its incompatible feature bit", EINVAL);
    }
    return Error("compression type " + std::to_string(h.compression_type) +
                     (h.compression_type == 1 ? " (zstd)" : "") + " is not supported; only zlib is",
                 ENOTSUP);
  }
  if ((h.incompatible_features & kIncCorrupt) && writable) {
    return Error(
        "image is marked corrupt; open it read-only or repair it with 'qemu-img check -r all'",
        EIO);
  }
  if (h.refcount_order > 6) {
    return Error("invalid refcount_order " + std::to_string(h.refcount_order), EINVAL);
  }
  if (h.refcount_order < 3) {
    return Error(std::to_string(1u << h.refcount_order) + "-bit refcounts (refcount_order " +
                     std::to_string(h.refcount_order) +
                     ") are not supported; only 8, 16, 32 and 64-bit refcounts are",
                 ENOTSUP);
  }

  const uint32_t l1_shift = 2 * h.cluster_bits - 3;
  const uint64_t l1_needed = L1EntriesFor(h.size, l1_shift);
  if (l1_needed > kMaxL1Entries) {
    return Error("virtual size " + std::to_string(h.size) + " is too large", EINVAL);
  }
  if (h.l1_size > kMaxL1Entries) {
    return Error("L1 table too large (" + std::to_string(h.l1_size) + " entries)", EINVAL);
  }
  if (h.l1_size < l1_needed) {
    return Error("L1 table has " + std::to_string(h.l1_size) +
                     " entries, too few for the virtual size " + std::to_string(h.size) +
                     " (needs " + std::to_string(l1_needed) + ")",
                 EINVAL);
  }
  if (h.l1_size > 0) {
    if (h.l1_table_offset % cluster_size != 0) {
      return Error("L1 table offset " + Hex(h.l1_table_offset) + " is not cluster aligned", EINVAL);
    }
    if (h.l1_table_offset == 0) return Error("L1 table overlaps the header", EINVAL);
    if (!RangeFits(h.l1_table_offset, uint64_t{h.l1_size} * 8, file_size)) {
      return Error("L1 table (offset " + Hex(h.l1_table_offset) + ", " + std::to_string(h.l1_size) +
                       " entries) extends beyond the end of the file",
                   EINVAL);
    }
  }

  if (h.refcount_table_clusters == 0) return Error("refcount table is empty", EINVAL);
  const uint64_t reftable_bytes = uint64_t{h.refcount_table_clusters} << h.cluster_bits;
  if (reftable_bytes > kMaxRefTableBytes) {
    return Error(
        "refcount table too large (" + std::to_string(h.refcount_table_clusters) + " clusters)",
        EINVAL);
  }
  if (h.refcount_table_offset % cluster_size != 0) {
    return Error(
        "refcount table offset " + Hex(h.refcount_table_offset) + " is not cluster aligned",
        EINVAL);
  }
  if (h.refcount_table_offset == 0) return Error("refcount table overlaps the header", EINVAL);
  if (!RangeFits(h.refcount_table_offset, reftable_bytes, file_size)) {
    return Error("refcount table (offset " + Hex(h.refcount_table_offset) + ", " +
                     std::to_string(h.refcount_table_clusters) +
                     " clusters) extends beyond the end of the file",
                 EINVAL);
  }
  if (h.l1_size > 0) {
    uint64_t l1_end = h.l1_table_offset + uint64_t{h.l1_size} * 8;
    uint64_t rt_end = h.refcount_table_offset + reftable_bytes;
    if (h.l1_table_offset < rt_end && h.refcount_table_offset < l1_end) {
      return Error("L1 table overlaps the refcount table", EINVAL);
    }
  }

  if (h.nb_snapshots > kMaxSnapshots) {
    return Error("too many snapshots (" + std::to_string(h.nb_snapshots) + ")", EINVAL);
  }
  if (h.nb_snapshots > 0 && (h.snapshots_offset % cluster_size != 0 || h.snapshots_offset == 0 ||
                             h.snapshots_offset >= file_size)) {
    return Error("snapshot table offset " + Hex(h.snapshots_offset) + " is invalid", EINVAL);
  }

  if (h.backing_file_offset != 0) {
    if (h.backing_file_size > kMaxBackingNameLength) {
      return Error("backing file name too long (" + std::to_string(h.backing_file_size) + " bytes)",
                   EINVAL);
    }
    if (!RangeFits(h.backing_file_offset, h.backing_file_size, std::min(cluster_size, file_size))) {
      return Error("backing file name lies outside the header cluster", EINVAL);
    }
  }
  return Ok();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Header

Result<QcowHeader> QcowHeader::Parse(std::span<const uint8_t> b) {
  if (b.size() < 8 || LoadBe(b.data(), 4) != kQcowMagic) {
    return Error("not a qcow2 image (bad magic)", EINVAL);
  }
  QcowHeader h;
  h.magic = kQcowMagic;
  h.version = static_cast<uint32_t>(LoadBe(&b[4], 4));
  if (h.version != 2 && h.version != 3) {
    return Error("unsupported qcow version " + std::to_string(h.version) +
                     " (only qcow2 versions 2 and 3 are supported)",
                 ENOTSUP);
  }
  if (b.size() < kV2HeaderLength || (h.version == 3 && b.size() < kV3HeaderLength)) {
    return Error("file is too short for a qcow2 header", EINVAL);
  }
  h.backing_file_offset = LoadBe(&b[8], 8);
  h.backing_file_size = static_cast<uint32_t>(LoadBe(&b[16], 4));
  h.cluster_bits = static_cast<uint32_t>(LoadBe(&b[20], 4));
  h.size = LoadBe(&b[24], 8);
  h.crypt_method = static_cast<uint32_t>(LoadBe(&b[32], 4));
  h.l1_size = static_cast<uint32_t>(LoadBe(&b[36], 4));
  h.l1_table_offset = LoadBe(&b[40], 8);
  h.refcount_table_offset = LoadBe(&b[48], 8);
  h.refcount_table_clusters = static_cast<uint32_t>(LoadBe(&b[56], 4));
  h.nb_snapshots = static_cast<uint32_t>(LoadBe(&b[60], 4));
  h.snapshots_offset = LoadBe(&b[64], 8);
  if (h.version == 2) {
    h.incompatible_features = h.compatible_features = h.autoclear_features = 0;
    h.refcount_order = 4;
    h.header_length = kV2HeaderLength;
    h.compression_type = 0;
    return h;
  }
  h.incompatible_features = LoadBe(&b[72], 8);
  h.compatible_features = LoadBe(&b[80], 8);
  h.autoclear_features = LoadBe(&b[88], 8);
  h.refcount_order = static_cast<uint32_t>(LoadBe(&b[96], 4));
  h.header_length = static_cast<uint32_t>(LoadBe(&b[100], 4));
  h.compression_type = 0;
  if (h.header_length > kV3HeaderLength) {
    if (b.size() <= kV3HeaderLength) return Error("file is too short for its qcow2 header", EINVAL);
    h.compression_type = b[104];
  }
  return h;
}

std::vector<uint8_t> QcowHeader::Encode() const {
  size_t length = version == 2 ? kV2HeaderLength : std::max(header_length, kV3HeaderLength);
  std::vector<uint8_t> b(length, 0);
  StoreBe(&b[0], magic, 4);
  StoreBe(&b[4], version, 4);
  StoreBe(&b[8], backing_file_offset, 8);
  StoreBe(&b[16], backing_file_size, 4);
  StoreBe(&b[20], cluster_bits, 4);
  StoreBe(&b[24], size, 8);
  StoreBe(&b[32], crypt_method, 4);
  StoreBe(&b[36], l1_size, 4);
  StoreBe(&b[40], l1_table_offset, 8);
  StoreBe(&b[48], refcount_table_offset, 8);
  StoreBe(&b[56], refcount_table_clusters, 4);
  StoreBe(&b[60], nb_snapshots, 4);
  StoreBe(&b[64], snapshots_offset, 8);
  if (version == 2) return b;
  StoreBe(&b[72], incompatible_features, 8);
  StoreBe(&b[80], compatible_features, 8);
  StoreBe(&b[88], autoclear_features, 8);
  StoreBe(&b[96], refcount_order, 4);
  StoreBe(&b[100], static_cast<uint32_t>(length), 4);
  if (length > kV3HeaderLength) b[104] = compression_type;
  return b;
}

// ---------------------------------------------------------------------------------------------
// LRU cache

template <typename Table>
typename QcowFile::LruCache<Table>::Slot* QcowFile::LruCache<Table>::Find(uint64_t key) {
  auto it = index_.find(key);
  if (it == index_.end()) return nullptr;
  slots_.splice(slots_.begin(), slots_, it->second);
  return &*it->second;
}

template <typename Table>
typename QcowFile::LruCache<Table>::Slot* QcowFile::LruCache<Table>::Insert(uint64_t key,
                                                                            Table table,
                                                                            bool dirty) {
  slots_.push_front(Slot{key, std::move(table), dirty});
  index_[key] = slots_.begin();
  return &slots_.front();
}

template <typename Table>
void QcowFile::LruCache<Table>::Erase(uint64_t key) {
  auto it = index_.find(key);
  if (it == index_.end()) return;
  slots_.erase(it->second);
  index_.erase(it);
}

// ---------------------------------------------------------------------------------------------
// Opening

QcowFile::QcowFile(PrivateTag, std::unique_ptr<FileIo> io, std::string name, bool writable,
                   const QcowHeader& header, uint64_t file_size, const QcowOptions& options)
    : io_(std::move(io)),
      name_(std::move(name)),
      writable_(writable),
      header_(header),
      cluster_bits_(header.cluster_bits),
      cluster_size_(1ULL << header.cluster_bits),
      l2_bits_(header.cluster_bits - 3),
      refblock_bits_(header.cluster_bits + 3 - header.refcount_order),
      refcount_bytes_(1u << (header.refcount_order - 3)),
      refcount_max_(header.refcount_order == 6 ? ~0ULL
                                               : (1ULL << (1u << header.refcount_order)) - 1),
      file_size_(file_size),
      physical_size_(file_size),
      l2_cache_(std::clamp<size_t>(options.l2_cache_bytes >> header.cluster_bits, 4, 4096)),
      refblock_cache_(
          std::clamp<size_t>(options.refblock_cache_bytes >> header.cluster_bits, 4, 4096)) {}

Result<std::unique_ptr<QcowFile>> QcowFile::Open(ScopedFd fd, std::string name, bool writable,
                                                 QcowOptions options) {
  return Open(std::make_unique<FdFileIo>(std::move(fd)), std::move(name), writable,
              std::move(options));
}

Result<std::unique_ptr<QcowFile>> QcowFile::Open(std::unique_ptr<FileIo> io, std::string name,
                                                 bool writable, QcowOptions options) {
  auto file_size = io->Size();
  if (!file_size.ok()) return file_size.error().Wrap(name);
  uint8_t head[kV3HeaderLength + 8] = {};
  auto n = io->Pread(0, head);
  if (!n.ok()) return n.error().Wrap(name);
  auto header = QcowHeader::Parse(std::span<const uint8_t>(head, *n));
  if (!header.ok()) return header.error().Wrap(name);
  auto valid = ValidateHeader(*header, *file_size, writable);
  if (!valid.ok()) return valid.error().Wrap(name);
  auto file = std::make_unique<QcowFile>(PrivateTag{}, std::move(io), std::move(name), writable,
                                         *header, *file_size, options);
  CROSVM_RETURN_IF_ERROR(file->Init(options));
  return file;
}

Error QcowFile::Corrupt(const std::string& what) const {
  return Error(name_ + ": corrupt image: " + what, EIO);
}

Status QcowFile::Init(const QcowOptions& options) {
  cluster_buf_.resize(cluster_size_);

  std::optional<ImageFormat> backing_format;
  CROSVM_RETURN_IF_ERROR(ParseExtensions(&backing_format));

  // L1 table (bounded by kMaxL1Entries and by the file size, checked in ValidateHeader).
  {
    std::vector<uint8_t> raw(uint64_t{header_.l1_size} * 8);
    auto n = io_->Pread(header_.l1_table_offset, raw);
    if (!n.ok()) return n.error().Wrap(name_ + ": reading the L1 table");
    if (*n != raw.size()) return Corrupt("L1 table is truncated");
    l1_table_.resize(header_.l1_size);
    for (size_t i = 0; i < l1_table_.size(); ++i) l1_table_[i] = LoadBe(&raw[i * 8], 8);
    l1_dirty_.assign(l1_table_.size(), false);
  }
  // Refcount table (bounded by kMaxRefTableBytes and the file size).
  {
    std::vector<uint8_t> raw(uint64_t{header_.refcount_table_clusters} << cluster_bits_);
    auto n = io_->Pread(header_.refcount_table_offset, raw);
    if (!n.ok()) return n.error().Wrap(name_ + ": reading the refcount table");
    if (*n != raw.size()) return Corrupt("refcount table is truncated");
    reftable_.resize(raw.size() / 8);
    for (size_t i = 0; i < reftable_.size(); ++i) reftable_[i] = LoadBe(&raw[i * 8], 8);
  }

  if (header_.backing_file_offset != 0 && header_.backing_file_size != 0) {
    CROSVM_RETURN_IF_ERROR(OpenBacking(options, backing_format));
  }

  if (!writable_) return Ok();
  if (header_.version >= 3 && header_.autoclear_features != 0) {
    // Auto-clear features we do not maintain must be cleared before the image is modified.
    header_.autoclear_features = 0;
    uint8_t zero[8] = {};
    CROSVM_RETURN_IF_ERROR(WriteHeaderBytes(kHeaderAutoclearOffset, zero));
    CROSVM_RETURN_IF_ERROR(Sync());
  }
  if (header_.incompatible_features & kIncDirty) {
    // Lazy refcounts were in use and the image was not closed cleanly: the refcounts may be too
    // low. Rebuild them from the L1/L2 tables before anything is allocated.
    CROSVM_RETURN_IF_ERROR(RepairRefcounts());
  }
  return Ok();
}

Status QcowFile::ParseExtensions(std::optional<ImageFormat>* backing_format) {
  uint64_t limit = std::min(cluster_size_, file_size_);
  if (header_.backing_file_offset != 0 && header_.backing_file_size != 0) {
    limit = std::min(limit, header_.backing_file_offset);
  }
  uint64_t pos = header_.version == 2 ? kV2HeaderLength : header_.header_length;
  if (pos >= limit) return Ok();
  std::vector<uint8_t> area(limit - pos);
  auto n = io_->Pread(pos, area);
  if (!n.ok()) return n.error().Wrap(name_ + ": reading header extensions");
  area.resize(*n);
  size_t at = 0;
  while (area.size() - at >= 8) {
    uint32_t type = static_cast<uint32_t>(LoadBe(&area[at], 4));
    uint64_t length = LoadBe(&area[at + 4], 4);
    at += 8;
    if (type == kExtEnd) break;
    if (length > area.size() - at) return Corrupt("header extension " + Hex(type) + " is too long");
    if (type == kExtBackingFormat) {
      std::string format(reinterpret_cast<const char*>(&area[at]), length);
      if (format == "raw") {
        *backing_format = ImageFormat::kRaw;
      } else if (format == "qcow2") {
        *backing_format = ImageFormat::kQcow2;
      } else {
        return Error(name_ + ": backing file format '" + format + "' is not supported", ENOTSUP);
      }
    }
    // Other extensions (feature names, bitmaps, ...) are not needed to read or write the image.
    at += (length + 7) & ~uint64_t{7};
    if (at > area.size()) break;
  }
  return Ok();
}

Status QcowFile::OpenBacking(const QcowOptions& options,
                             std::optional<ImageFormat> backing_format) {
  std::string backing_name(header_.backing_file_size, '\0');
  auto n = io_->Pread(
      header_.backing_file_offset,
      std::span<uint8_t>(reinterpret_cast<uint8_t*>(backing_name.data()), backing_name.size()));
  if (!n.ok()) return n.error().Wrap(name_ + ": reading the backing file name");
  if (*n != backing_name.size()) return Corrupt("backing file name is truncated");
  if (backing_name.find('\0') != std::string::npos) {
    return Corrupt("backing file name contains a NUL byte");
  }
  if (!options.allow_backing || !options.open_backing) {
    return Error(
        name_ + ": backing file '" + backing_name + "' refused: backing files are not allowed here",
        EPERM);
  }
  if (options.backing_depth_left <= 0) {
    return Error(name_ + ": backing file chain is too deep (more than " +
                     std::to_string(kMaxBackingDepth) + " levels)",
                 ELOOP);
  }
  Result<std::unique_ptr<DiskFile>> backing =
      options.open_backing(backing_name, backing_format, options.backing_depth_left - 1);
  if (!backing.ok()) return backing.error().Wrap(name_ + ": backing file");
  backing_ = std::move(*backing);
  return Ok();
}

QcowFile::~QcowFile() {
  if (!writable_) return;
  std::lock_guard lock(mu_);
  auto st = FlushMetadata();
  if (st.ok()) st = Sync();
  if (!st.ok()) CROSVM_LOG(ERROR) << "closing qcow2 image: " << st.error().ToString();
}

// ---------------------------------------------------------------------------------------------
// Checks

Status QcowFile::CheckWritable(const char* what) const {
  if (!writable_) return Error(name_ + ": " + what + " refused: disk is read-only", EROFS);
  return Ok();
}

Status QcowFile::CheckRange(uint64_t offset, uint64_t length, const char* what) const {
  if (!RangeFits(offset, length, header_.size)) {
    return Error(name_ + ": " + what + " of " + std::to_string(length) + " bytes at offset " +
                     std::to_string(offset) + " is beyond the disk size " +
                     std::to_string(header_.size),
                 EINVAL);
  }
  return Ok();
}

bool QcowFile::IsReserved(uint64_t cluster) const {
  if (cluster == 0) return true;
  if (header_.l1_size > 0) {
    uint64_t first = header_.l1_table_offset >> cluster_bits_;
    uint64_t end =
        DivRoundUp(header_.l1_table_offset + uint64_t{header_.l1_size} * 8, cluster_size_);
    if (cluster >= first && cluster < end) return true;
  }
  uint64_t first = header_.refcount_table_offset >> cluster_bits_;
  return cluster >= first && cluster < first + header_.refcount_table_clusters;
}

Status QcowFile::WriteHeaderBytes(uint64_t offset, std::span<const uint8_t> bytes) {
  auto st = WriteHost(offset, bytes);
  if (!st.ok()) return st.error().Wrap(name_ + ": updating the header");
  return Ok();
}

Status QcowFile::WriteHost(uint64_t offset, std::span<const uint8_t> bytes) {
  CROSVM_RETURN_IF_ERROR(io_->Pwrite(offset, bytes));
  physical_size_ = std::max(physical_size_, offset + bytes.size());
  return Ok();
}

Status QcowFile::Sync() {
  auto st = io_->Sync();
  if (!st.ok()) return st.error().Wrap(name_);
  return Ok();
}

// ---------------------------------------------------------------------------------------------
// L2 tables

Status QcowFile::ValidateL1Entry(uint64_t entry, uint64_t l1_index) const {
  uint64_t offset = entry & kOffsetMask;
  if (entry & kL1Reserved) {
    return Corrupt("L1 entry " + std::to_string(l1_index) + " (" + Hex(entry) +
                   ") has reserved bits set");
  }
  if (offset % cluster_size_ != 0) {
    return Corrupt("L2 table offset " + Hex(offset) + " is not cluster aligned");
  }
  if (!RangeFits(offset, cluster_size_, file_size_)) {
    return Corrupt("L2 table offset " + Hex(offset) + " is beyond the end of the file");
  }
  if (IsReserved(offset >> cluster_bits_)) {
    return Corrupt("L2 table at " + Hex(offset) +
                   " overlaps the header, the L1 table or the refcount table");
  }
  return Ok();
}

Status QcowFile::WriteL2Raw(L2Cache::Slot* slot) {
  std::vector<uint8_t> raw(cluster_size_);
  for (size_t i = 0; i < slot->table.size(); ++i) StoreBe(&raw[i * 8], slot->table[i], 8);
  auto st = WriteHost(slot->key, raw);
  if (!st.ok()) return st.error().Wrap(name_ + ": writing an L2 table");
  slot->dirty = false;
  return Ok();
}

Status QcowFile::EvictL2IfFull() {
  while (l2_cache_.Full()) {
    L2Cache::Slot* old = l2_cache_.Oldest();
    if (old->dirty) {
      // Data and refcount increments first, then the table that points at them.
      CROSVM_RETURN_IF_ERROR(WriteDirtyRefblocks());
      CROSVM_RETURN_IF_ERROR(Sync());
      CROSVM_RETURN_IF_ERROR(WriteL2Raw(old));
    }
    l2_cache_.Erase(old->key);
  }
  return Ok();
}

Result<QcowFile::L2Cache::Slot*> QcowFile::LoadL2(uint64_t l2_offset) {
  if (L2Cache::Slot* slot = l2_cache_.Find(l2_offset)) return slot;
  CROSVM_RETURN_IF_ERROR(EvictL2IfFull());
  std::vector<uint8_t> raw(cluster_size_);
  CROSVM_RETURN_IF_ERROR(ReadHost(l2_offset, raw));
  std::vector<uint64_t> table(size_t{1} << l2_bits_);
  for (size_t i = 0; i < table.size(); ++i) table[i] = LoadBe(&raw[i * 8], 8);
  return l2_cache_.Insert(l2_offset, std::move(table), false);
}

Result<QcowFile::L2Cache::Slot*> QcowFile::GetL2ForRead(uint64_t l1_index) {
  if (l1_index >= l1_table_.size()) return Corrupt("L1 index out of range");
  uint64_t entry = l1_table_[l1_index];
  if ((entry & kOffsetMask) == 0 && !(entry & kL1Reserved)) return nullptr;
  CROSVM_RETURN_IF_ERROR(ValidateL1Entry(entry, l1_index));
  return LoadL2(entry & kOffsetMask);
}

void QcowFile::SetL1(uint64_t l1_index, uint64_t entry) {
  l1_table_[l1_index] = entry;
  l1_dirty_[l1_index] = true;
  l1_any_dirty_ = true;
}

Result<QcowFile::L2Cache::Slot*> QcowFile::GetL2ForWrite(uint64_t l1_index) {
  if (l1_index >= l1_table_.size()) return Corrupt("L1 index out of range");
  uint64_t entry = l1_table_[l1_index];
  uint64_t offset = entry & kOffsetMask;
  if (offset != 0 || (entry & kL1Reserved)) {
    CROSVM_RETURN_IF_ERROR(ValidateL1Entry(entry, l1_index));
    CROSVM_ASSIGN_OR_RETURN(uint64_t refcount, EffectiveRefcount(offset >> cluster_bits_));
    if (refcount == 0) return Corrupt("L2 table at " + Hex(offset) + " has refcount 0");
    CROSVM_ASSIGN_OR_RETURN(L2Cache::Slot * slot, LoadL2(offset));
    if (refcount == 1) {
      if (!(entry & kCopied)) SetL1(l1_index, offset | kCopied);
      return slot;
    }
    // Shared with a snapshot: the active image gets its own copy.
    std::vector<uint64_t> copy = slot->table;
    CROSVM_ASSIGN_OR_RETURN(uint64_t new_offset, AllocateClusters(1));
    CROSVM_RETURN_IF_ERROR(EvictL2IfFull());
    L2Cache::Slot* new_slot = l2_cache_.Insert(new_offset, std::move(copy), true);
    SetL1(l1_index, new_offset | kCopied);
    CROSVM_RETURN_IF_ERROR(ScheduleDecrement(offset >> cluster_bits_));
    return new_slot;
  }
  CROSVM_ASSIGN_OR_RETURN(uint64_t new_offset, AllocateClusters(1));
  CROSVM_RETURN_IF_ERROR(EvictL2IfFull());
  L2Cache::Slot* slot =
      l2_cache_.Insert(new_offset, std::vector<uint64_t>(size_t{1} << l2_bits_, 0), true);
  SetL1(l1_index, new_offset | kCopied);
  return slot;
}

Result<QcowFile::Mapping> QcowFile::Decode(uint64_t entry, uint64_t guest_offset) const {
  Mapping m;
  if (entry & kCompressed) {
    if (entry & kCopied) {
      return Corrupt("compressed cluster entry " + Hex(entry) + " for guest offset " +
                     Hex(guest_offset) + " has the COPIED flag set");
    }
    const uint32_t x = 62 - (cluster_bits_ - 8);
    m.kind = Mapping::kCompressed;
    m.host = entry & ((1ULL << x) - 1);
    m.sectors = ((entry >> x) & ((1ULL << (cluster_bits_ - 8)) - 1)) + 1;
    m.first_sector = m.host & ~uint64_t{511};
    m.compressed_size = m.sectors * 512 - (m.host & 511);
    if (m.host >= file_size_) {
      return Corrupt("compressed data for guest offset " + Hex(guest_offset) + " at " +
                     Hex(m.host) + " is beyond the end of the file");
    }
    return m;
  }
  if (entry & kL2Reserved) {
    return Corrupt("L2 entry " + Hex(entry) + " for guest offset " + Hex(guest_offset) +
                   " has reserved bits set");
  }
  m.host = entry & kOffsetMask;
  if (entry & kZeroFlag) {
    if (header_.version < 3) {
      return Corrupt("zero cluster flag in a version 2 image (guest offset " + Hex(guest_offset) +
                     ")");
    }
    m.kind = Mapping::kZero;
  } else if (m.host == 0) {
    if (entry & kCopied) {
      return Corrupt("L2 entry " + Hex(entry) + " for guest offset " + Hex(guest_offset) +
                     " has the COPIED flag but no offset");
    }
    m.kind = Mapping::kUnallocated;
    return m;
  } else {
    m.kind = Mapping::kNormal;
  }
  if (m.host == 0) return m;  // zero cluster without preallocation
  if (m.host % cluster_size_ != 0) {
    return Corrupt("data cluster offset " + Hex(m.host) + " for guest offset " + Hex(guest_offset) +
                   " is not cluster aligned");
  }
  if (m.host >= file_size_) {
    return Corrupt("data cluster offset " + Hex(m.host) + " for guest offset " + Hex(guest_offset) +
                   " is beyond the end of the file");
  }
  return m;
}

// ---------------------------------------------------------------------------------------------
// Refcounts

Status QcowFile::EvictRefblockIfFull() {
  while (refblock_cache_.Full()) {
    RefblockCache::Slot* old = refblock_cache_.Oldest();
    if (old->dirty) {
      // Refcount blocks only ever hold increments that are not yet referenced, or decrements
      // whose references are gone from the disk: always safe to write.
      auto st = WriteHost(old->key, old->table);
      if (!st.ok()) return st.error().Wrap(name_ + ": writing a refcount block");
    }
    refblock_cache_.Erase(old->key);
  }
  return Ok();
}

Result<QcowFile::RefblockCache::Slot*> QcowFile::LoadRefblock(uint64_t block_offset) {
  if (RefblockCache::Slot* slot = refblock_cache_.Find(block_offset)) return slot;
  if (block_offset % cluster_size_ != 0) {
    return Corrupt("refcount block offset " + Hex(block_offset) + " is not cluster aligned");
  }
  if (!RangeFits(block_offset, cluster_size_, file_size_)) {
    return Corrupt("refcount block offset " + Hex(block_offset) + " is beyond the end of the file");
  }
  if (IsReserved(block_offset >> cluster_bits_)) {
    return Corrupt("refcount block at " + Hex(block_offset) +
                   " overlaps the header, the L1 table or the refcount table");
  }
  CROSVM_RETURN_IF_ERROR(EvictRefblockIfFull());
  std::vector<uint8_t> block(cluster_size_);
  CROSVM_RETURN_IF_ERROR(ReadHost(block_offset, block));
  return refblock_cache_.Insert(block_offset, std::move(block), false);
}

Result<uint64_t> QcowFile::RefblockOffset(uint64_t block_index) const {
  if (block_index >= reftable_.size()) return uint64_t{0};
  uint64_t entry = reftable_[block_index];
  if (entry & kRefTableReserved) {
    return Corrupt("refcount table entry " + std::to_string(block_index) + " (" + Hex(entry) +
                   ") has reserved bits set");
  }
  return entry;
}

Result<uint64_t> QcowFile::GetRefcount(uint64_t cluster) {
  CROSVM_ASSIGN_OR_RETURN(uint64_t block, RefblockOffset(cluster >> refblock_bits_));
  if (block == 0) return uint64_t{0};
  CROSVM_ASSIGN_OR_RETURN(RefblockCache::Slot * slot, LoadRefblock(block));
  size_t index = cluster & ((1ULL << refblock_bits_) - 1);
  return LoadBe(&slot->table[index * refcount_bytes_], static_cast<int>(refcount_bytes_));
}

Result<uint64_t> QcowFile::EffectiveRefcount(uint64_t cluster) {
  CROSVM_ASSIGN_OR_RETURN(uint64_t refcount, GetRefcount(cluster));
  auto it = pending_decrements_.find(cluster);
  if (it == pending_decrements_.end()) return refcount;
  if (it->second > refcount) {
    return Corrupt("cluster " + Hex(cluster << cluster_bits_) +
                   " is freed more often than it is referenced");
  }
  return refcount - it->second;
}

Status QcowFile::SetRefcount(uint64_t cluster, uint64_t value) {
  if (value > refcount_max_) {
    return Error(name_ + ": refcount overflow for cluster " + Hex(cluster << cluster_bits_), EIO);
  }
  CROSVM_ASSIGN_OR_RETURN(uint64_t block, RefblockOffset(cluster >> refblock_bits_));
  if (block == 0) return Corrupt("no refcount block for cluster " + Hex(cluster << cluster_bits_));
  CROSVM_ASSIGN_OR_RETURN(RefblockCache::Slot * slot, LoadRefblock(block));
  size_t index = cluster & ((1ULL << refblock_bits_) - 1);
  StoreBe(&slot->table[index * refcount_bytes_], value, static_cast<int>(refcount_bytes_));
  slot->dirty = true;
  return Ok();
}

Status QcowFile::WriteDirtyRefblocks() {
  for (auto& slot : refblock_cache_.slots()) {
    if (!slot.dirty) continue;
    auto st = WriteHost(slot.key, slot.table);
    if (!st.ok()) return st.error().Wrap(name_ + ": writing a refcount block");
    slot.dirty = false;
  }
  return Ok();
}

Result<uint64_t> QcowFile::FindFreeRun(uint64_t count) {
  const uint64_t end = EndCluster();
  uint64_t run = 0;
  uint64_t run_start = free_hint_;
  for (uint64_t c = free_hint_; c < end; ++c) {
    bool free = !IsReserved(c);
    if (free) {
      CROSVM_ASSIGN_OR_RETURN(uint64_t refcount, GetRefcount(c));
      free = refcount == 0;
    }
    if (!free) {
      if (c == free_hint_) free_hint_ = c + 1;
      run = 0;
      continue;
    }
    if (run == 0) run_start = c;
    if (++run == count) return run_start;
  }
  // Everything from the end of the file on is free.
  return run > 0 ? run_start : std::max(end, free_hint_);
}

Result<uint64_t> QcowFile::AllocateClusters(uint64_t count) {
  for (int attempt = 0; attempt < 64; ++attempt) {
    CROSVM_ASSIGN_OR_RETURN(uint64_t start, FindFreeRun(count));
    if (start + count > (kMaxHostOffset >> cluster_bits_)) {
      return Error(name_ + ": image file would grow beyond the qcow2 limit", EFBIG);
    }
    bool changed = false;
    for (uint64_t b = start >> refblock_bits_; b <= (start + count - 1) >> refblock_bits_; ++b) {
      if (b >= reftable_.size()) {
        CROSVM_RETURN_IF_ERROR(GrowRefTable(b + 1));
        changed = true;
        break;
      }
      CROSVM_ASSIGN_OR_RETURN(uint64_t block, RefblockOffset(b));
      if (block == 0) {
        CROSVM_RETURN_IF_ERROR(CreateRefblock(b));
        changed = true;
        break;
      }
    }
    if (changed) continue;  // the new metadata may have taken the clusters we found
    for (uint64_t c = start; c < start + count; ++c) CROSVM_RETURN_IF_ERROR(SetRefcount(c, 1));
    file_size_ = std::max(file_size_, (start + count) << cluster_bits_);
    return start << cluster_bits_;
  }
  return Error(name_ + ": cluster allocation does not converge", EIO);
}

Status QcowFile::CreateRefblock(uint64_t block_index) {
  const uint64_t range_start = block_index << refblock_bits_;
  const uint64_t range_end = (block_index + 1) << refblock_bits_;
  const uint64_t end = EndCluster();
  uint64_t cluster = 0;
  bool self_described = false;
  if (range_end > end) {
    // Place the block at the first cluster past the end of the file in its own range.
    cluster = std::max(range_start, end);
    self_described = true;
  } else if (!repairing_) {
    // The range has no refcount block, so all of its clusters are free.
    for (uint64_t c = range_start; c < range_end && !self_described; ++c) {
      if (!IsReserved(c)) {
        cluster = c;
        self_described = true;
      }
    }
  }
  if (!self_described) {
    // While repairing, clusters without refcounts may be in use: take one past the file end.
    CROSVM_ASSIGN_OR_RETURN(uint64_t offset, AllocateClusters(1));
    cluster = offset >> cluster_bits_;
  }
  std::vector<uint8_t> block(cluster_size_, 0);
  if (self_described) {
    StoreBe(&block[(cluster - range_start) * refcount_bytes_], 1,
            static_cast<int>(refcount_bytes_));
  }
  const uint64_t offset = cluster << cluster_bits_;
  auto st = WriteHost(offset, block);
  if (!st.ok()) return st.error().Wrap(name_ + ": writing a refcount block");
  file_size_ = std::max(file_size_, offset + cluster_size_);
  // The block (and its own refcount) must be on disk before the table points at it.
  CROSVM_RETURN_IF_ERROR(WriteDirtyRefblocks());
  CROSVM_RETURN_IF_ERROR(Sync());
  uint8_t raw[8];
  StoreBe(raw, offset, 8);
  st = WriteHost(header_.refcount_table_offset + block_index * 8, raw);
  if (!st.ok()) return st.error().Wrap(name_ + ": updating the refcount table");
  reftable_[block_index] = offset;
  CROSVM_RETURN_IF_ERROR(EvictRefblockIfFull());
  refblock_cache_.Insert(offset, std::move(block), false);
  return Ok();
}

Status QcowFile::GrowRefTable(uint64_t min_entries) {
  const uint64_t per_cluster = cluster_size_ / 8;
  const uint64_t old_entries = reftable_.size();
  uint64_t new_entries =
      DivRoundUp(std::max(old_entries * 2, min_entries), per_cluster) * per_cluster;
  uint64_t start = 0;
  uint64_t table_clusters = 0;
  std::vector<uint64_t> missing;  // block indices that need new refcount blocks
  for (;;) {
    if (new_entries * 8 > kMaxRefTableBytes) {
      return Error(name_ + ": refcount table would exceed " +
                       std::to_string(kMaxRefTableBytes >> 20) + " MiB",
                   EFBIG);
    }
    table_clusters = new_entries / per_cluster;
    start = EndCluster();
    // The table and the blocks describing it go past the end of the file; find how many blocks
    // that takes (the blocks themselves need describing too).
    uint64_t extra = 0;
    for (;;) {
      missing.clear();
      uint64_t last = start + table_clusters + extra - 1;
      for (uint64_t b = start >> refblock_bits_; b <= last >> refblock_bits_; ++b) {
        CROSVM_ASSIGN_OR_RETURN(uint64_t block, RefblockOffset(b));
        if (block == 0) missing.push_back(b);
      }
      if (missing.size() <= extra) break;
      extra = missing.size();
    }
    // `extra` clusters are reserved for blocks; surplus ones stay unused (refcount 1: a leak of
    // at most one cluster, only in pathological layouts).
    if (missing.empty() || missing.back() < new_entries) {
      const uint64_t total = table_clusters + extra;
      std::vector<uint64_t> table(new_entries, 0);
      std::copy(reftable_.begin(), reftable_.end(), table.begin());
      std::vector<std::vector<uint8_t>> blocks(missing.size(),
                                               std::vector<uint8_t>(cluster_size_, 0));
      for (size_t i = 0; i < missing.size(); ++i) {
        table[missing[i]] = (start + table_clusters + i) << cluster_bits_;
      }
      for (uint64_t c = start; c < start + total; ++c) {
        uint64_t b = c >> refblock_bits_;
        auto it = std::find(missing.begin(), missing.end(), b);
        if (it != missing.end()) {
          size_t index = c & ((1ULL << refblock_bits_) - 1);
          StoreBe(&blocks[it - missing.begin()][index * refcount_bytes_], 1,
                  static_cast<int>(refcount_bytes_));
        } else {
          CROSVM_RETURN_IF_ERROR(SetRefcount(c, 1));
        }
      }
      // Blocks and refcounts, then the table, then the header that points at it.
      for (size_t i = 0; i < missing.size(); ++i) {
        auto st = WriteHost(table[missing[i]], blocks[i]);
        if (!st.ok()) return st.error().Wrap(name_ + ": writing a refcount block");
      }
      CROSVM_RETURN_IF_ERROR(WriteDirtyRefblocks());
      std::vector<uint8_t> raw(new_entries * 8);
      for (size_t i = 0; i < table.size(); ++i) StoreBe(&raw[i * 8], table[i], 8);
      auto st = WriteHost(start << cluster_bits_, raw);
      if (!st.ok()) return st.error().Wrap(name_ + ": writing the refcount table");
      file_size_ = std::max(file_size_, (start + total) << cluster_bits_);
      CROSVM_RETURN_IF_ERROR(Sync());
      uint8_t field[12];
      StoreBe(field, start << cluster_bits_, 8);
      StoreBe(field + 4 + 4, table_clusters, 4);
      CROSVM_RETURN_IF_ERROR(WriteHeaderBytes(kHeaderRefTableOffset, field));
      CROSVM_RETURN_IF_ERROR(Sync());

      const uint64_t old_first = header_.refcount_table_offset >> cluster_bits_;
      const uint64_t old_clusters = header_.refcount_table_clusters;
      header_.refcount_table_offset = start << cluster_bits_;
      header_.refcount_table_clusters = static_cast<uint32_t>(table_clusters);
      reftable_ = std::move(table);
      for (uint64_t c = old_first; c < old_first + old_clusters; ++c) {
        CROSVM_RETURN_IF_ERROR(ScheduleDecrement(c));
      }
      return Ok();
    }
    new_entries = DivRoundUp(missing.back() + 1, per_cluster) * per_cluster;
  }
}

Status QcowFile::ScheduleDecrement(uint64_t cluster) {
  CROSVM_ASSIGN_OR_RETURN(uint64_t refcount, EffectiveRefcount(cluster));
  if (refcount == 0) {
    return Corrupt("cluster " + Hex(cluster << cluster_bits_) +
                   " is referenced but has refcount 0");
  }
  ++pending_decrements_[cluster];
  return Ok();
}

Result<std::vector<uint64_t>> QcowFile::ClustersToFree(const Mapping& m) {
  std::vector<uint64_t> clusters;
  switch (m.kind) {
    case Mapping::kUnallocated:
      break;
    case Mapping::kZero:
    case Mapping::kNormal:
      if (m.host != 0) clusters.push_back(m.host >> cluster_bits_);
      break;
    case Mapping::kCompressed: {
      uint64_t first = m.first_sector >> cluster_bits_;
      uint64_t last = (m.first_sector + m.sectors * 512 - 1) >> cluster_bits_;
      for (uint64_t c = first; c <= last; ++c) clusters.push_back(c);
      break;
    }
  }
  // Validate all of them before anything changes, so that a corrupt entry fails the request
  // instead of leaving it half done.
  for (uint64_t c : clusters) {
    CROSVM_ASSIGN_OR_RETURN(uint64_t refcount, EffectiveRefcount(c));
    if (refcount == 0) {
      return Corrupt("cluster " + Hex(c << cluster_bits_) + " is referenced but has refcount 0");
    }
  }
  return clusters;
}

void QcowFile::ScheduleFree(const std::vector<uint64_t>& clusters) {
  for (uint64_t c : clusters) ++pending_decrements_[c];
}

Status QcowFile::ApplyDecrements() {
  if (pending_decrements_.empty()) return Ok();
  std::vector<uint64_t> freed;
  // Move the map out first so that errors do not leave it half-applied and re-applied later.
  auto pending = std::move(pending_decrements_);
  pending_decrements_.clear();
  for (const auto& [cluster, count] : pending) {
    CROSVM_ASSIGN_OR_RETURN(uint64_t refcount, GetRefcount(cluster));
    if (refcount < count) {
      return Corrupt("refcount underflow for cluster " + Hex(cluster << cluster_bits_));
    }
    CROSVM_RETURN_IF_ERROR(SetRefcount(cluster, refcount - count));
    if (refcount == count) freed.push_back(cluster);
  }
  if (freed.empty()) return Ok();
  decompressed_entry_ = 0;
  std::sort(freed.begin(), freed.end());
  free_hint_ = std::min(free_hint_, freed.front());
  for (size_t i = 0; i < freed.size();) {
    size_t j = i + 1;
    while (j < freed.size() && freed[j] == freed[j - 1] + 1) ++j;
    for (size_t k = i; k < j; ++k) l2_cache_.Erase(freed[k] << cluster_bits_);
    // Give the space back to the host file system; failure only costs space.
    (void)io_->PunchHole(freed[i] << cluster_bits_, (j - i) << cluster_bits_);
    i = j;
  }
  return Ok();
}

Status QcowFile::FlushMetadata() {
  bool refblocks_dirty = false;
  for (const auto& slot : refblock_cache_.slots()) refblocks_dirty |= slot.dirty;
  bool l2_dirty = false;
  for (const auto& slot : l2_cache_.slots()) l2_dirty |= slot.dirty;
  if (!refblocks_dirty && !l2_dirty && !l1_any_dirty_ && pending_decrements_.empty()) {
    return Ok();
  }
  // 1. Data and refcount increments.
  CROSVM_RETURN_IF_ERROR(WriteDirtyRefblocks());
  CROSVM_RETURN_IF_ERROR(Sync());
  // 2. L2 tables, which point at data clusters.
  if (l2_dirty) {
    for (auto& slot : l2_cache_.slots()) {
      if (slot.dirty) CROSVM_RETURN_IF_ERROR(WriteL2Raw(&slot));
    }
    CROSVM_RETURN_IF_ERROR(Sync());
  }
  // 3. The L1 table, which points at L2 tables.
  if (l1_any_dirty_) {
    for (size_t i = 0; i < l1_table_.size();) {
      if (!l1_dirty_[i]) {
        ++i;
        continue;
      }
      size_t j = i;
      while (j < l1_table_.size() && l1_dirty_[j]) ++j;
      std::vector<uint8_t> raw((j - i) * 8);
      for (size_t k = i; k < j; ++k) {
        StoreBe(&raw[(k - i) * 8], l1_table_[k], 8);
        l1_dirty_[k] = false;
      }
      auto st = WriteHost(header_.l1_table_offset + i * 8, raw);
      if (!st.ok()) return st.error().Wrap(name_ + ": writing the L1 table");
      i = j;
    }
    l1_any_dirty_ = false;
    CROSVM_RETURN_IF_ERROR(Sync());
  }
  // 4. Nothing on disk points at the clusters freed since the last flush any more.
  CROSVM_RETURN_IF_ERROR(ApplyDecrements());
  return WriteDirtyRefblocks();
}

Status QcowFile::MaybeCommitDecrements() {
  if (pending_decrements_.size() < kMaxPendingDecrements) return Ok();
  return FlushMetadata();
}

// Rebuilds refcounts after an unclean shutdown with lazy refcounts: every cluster referenced by
// the metadata gets at least as many references as it has. Excess refcounts (leaks) are kept.
Status QcowFile::RepairRefcounts() {
  const uint64_t clusters = EndCluster();
  if (clusters > kMaxRepairClusters) {
    return Error(
        name_ + ": image is dirty and too large to repair here; run 'qemu-img check -r all'",
        EFBIG);
  }
  // References per cluster (saturating: anything above refcount_max_ is an error below).
  std::vector<uint32_t> refs(clusters, 0);
  auto add = [&](uint64_t offset, uint64_t length, uint64_t times, const char* what) -> Status {
    if (length == 0) return Ok();
    if (!RangeFits(offset, length, clusters << cluster_bits_)) {
      return Corrupt(std::string(what) + " at " + Hex(offset) + " is beyond the end of the file");
    }
    for (uint64_t c = offset >> cluster_bits_; c <= (offset + length - 1) >> cluster_bits_; ++c) {
      refs[c] = static_cast<uint32_t>(std::min<uint64_t>(refs[c] + times, UINT32_MAX));
    }
    return Ok();
  };
  CROSVM_RETURN_IF_ERROR(add(0, cluster_size_, 1, "header"));
  CROSVM_RETURN_IF_ERROR(add(header_.refcount_table_offset,
                             uint64_t{header_.refcount_table_clusters} << cluster_bits_, 1,
                             "refcount table"));
  for (uint64_t b = 0; b < reftable_.size(); ++b) {
    CROSVM_ASSIGN_OR_RETURN(uint64_t block, RefblockOffset(b));
    if (block == 0) continue;
    if (block % cluster_size_ != 0) return Corrupt("unaligned refcount block");
    CROSVM_RETURN_IF_ERROR(add(block, cluster_size_, 1, "refcount block"));
  }

  // The active L1 table and those of internal snapshots (identical ones are walked once and
  // counted as often as they occur), then every distinct L2 table they reach.
  std::map<std::pair<uint64_t, uint64_t>, uint64_t> l1_tables;  // (offset, entries) -> count
  if (header_.l1_size > 0) ++l1_tables[{header_.l1_table_offset, header_.l1_size}];
  uint64_t pos = header_.snapshots_offset;
  for (uint32_t i = 0; i < header_.nb_snapshots; ++i) {
    uint8_t fixed[40];
    if (!RangeFits(pos, sizeof(fixed), file_size_)) return Corrupt("snapshot table is truncated");
    CROSVM_RETURN_IF_ERROR(ReadHost(pos, fixed));
    uint64_t l1_offset = LoadBe(&fixed[0], 8);
    uint64_t l1_size = LoadBe(&fixed[8], 4);
    uint64_t length = 40 + LoadBe(&fixed[36], 4) + LoadBe(&fixed[12], 2) + LoadBe(&fixed[14], 2);
    pos += (length + 7) & ~uint64_t{7};
    if (l1_size > kMaxL1Entries || l1_offset % cluster_size_ != 0 ||
        !RangeFits(l1_offset, l1_size * 8, file_size_)) {
      return Corrupt("snapshot " + std::to_string(i) + " has an invalid L1 table");
    }
    if (l1_size > 0) ++l1_tables[{l1_offset, l1_size}];
  }
  if (header_.nb_snapshots > 0) {
    CROSVM_RETURN_IF_ERROR(
        add(header_.snapshots_offset, pos - header_.snapshots_offset, 1, "snapshot table"));
  }
  uint64_t l1_entries = 0;
  for (const auto& [table, count] : l1_tables) l1_entries += table.second;
  if (l1_entries > kMaxRepairL1Entries) {
    return Error(
        name_ + ": image is dirty and too large to repair here; run 'qemu-img check -r all'",
        EFBIG);
  }
  std::map<uint64_t, uint64_t> l2_tables;  // offset -> references
  for (const auto& [table, count] : l1_tables) {
    const auto [l1_offset, l1_size] = table;
    CROSVM_RETURN_IF_ERROR(add(l1_offset, l1_size * 8, count, "L1 table"));
    std::vector<uint8_t> raw(l1_size * 8);
    CROSVM_RETURN_IF_ERROR(ReadHost(l1_offset, raw));
    for (uint64_t i = 0; i < l1_size; ++i) {
      const uint64_t entry = LoadBe(&raw[i * 8], 8);
      if ((entry & kOffsetMask) == 0 && !(entry & kL1Reserved)) continue;
      CROSVM_RETURN_IF_ERROR(ValidateL1Entry(entry, i));
      l2_tables[entry & kOffsetMask] += count;
    }
  }
  std::vector<uint8_t> l2_raw(cluster_size_);
  for (const auto& [l2_offset, count] : l2_tables) {
    CROSVM_RETURN_IF_ERROR(add(l2_offset, cluster_size_, count, "L2 table"));
    CROSVM_RETURN_IF_ERROR(ReadHost(l2_offset, l2_raw));
    for (uint64_t j = 0; j < (1ULL << l2_bits_); ++j) {
      CROSVM_ASSIGN_OR_RETURN(Mapping m, Decode(LoadBe(&l2_raw[j * 8], 8), 0));
      if (m.kind == Mapping::kCompressed) {
        CROSVM_RETURN_IF_ERROR(add(m.first_sector, m.sectors * 512, count, "compressed cluster"));
      } else if (m.host != 0) {
        CROSVM_RETURN_IF_ERROR(add(m.host, cluster_size_, count, "data cluster"));
      }
    }
  }

  repairing_ = true;
  free_hint_ = clusters;
  for (uint64_t c = 0; c < clusters; ++c) {
    if (refs[c] == 0) continue;
    if (refs[c] > refcount_max_) {
      repairing_ = false;
      return Corrupt("cluster " + Hex(c << cluster_bits_) +
                     " has more references than refcounts can count");
    }
    CROSVM_ASSIGN_OR_RETURN(uint64_t refcount, GetRefcount(c));
    if (refcount >= refs[c]) continue;
    const uint64_t b = c >> refblock_bits_;
    Status st = Ok();
    if (b >= reftable_.size()) st = GrowRefTable(b + 1);
    if (st.ok() && reftable_[b] == 0) st = CreateRefblock(b);
    if (st.ok()) st = SetRefcount(c, refs[c]);
    if (!st.ok()) {
      repairing_ = false;
      return st;
    }
  }
  repairing_ = false;
  free_hint_ = 0;
  CROSVM_RETURN_IF_ERROR(FlushMetadata());
  CROSVM_RETURN_IF_ERROR(Sync());
  header_.incompatible_features &= ~kIncDirty;
  uint8_t field[8];
  StoreBe(field, header_.incompatible_features, 8);
  CROSVM_RETURN_IF_ERROR(WriteHeaderBytes(kHeaderIncompatibleOffset, field));
  return Sync();
}

// ---------------------------------------------------------------------------------------------
// Data

Status QcowFile::ReadHost(uint64_t host_offset, std::span<uint8_t> out) {
  auto n = io_->Pread(host_offset, out);
  if (!n.ok()) return n.error().Wrap(name_);
  std::fill(out.begin() + static_cast<ptrdiff_t>(*n), out.end(), 0);
  return Ok();
}

Status QcowFile::ReadBacking(uint64_t guest_offset, std::span<uint8_t> out) {
  size_t n = 0;
  if (backing_) {
    uint64_t backing_size = backing_->VirtualSize();
    if (guest_offset < backing_size)
      n = std::min<uint64_t>(out.size(), backing_size - guest_offset);
    if (n > 0) {
      auto r = backing_->ReadAt(guest_offset, out.first(n));
      if (!r.ok()) return r.error().Wrap(name_ + ": reading the backing file");
    }
  }
  std::fill(out.begin() + static_cast<ptrdiff_t>(n), out.end(), 0);
  return Ok();
}

Result<const std::vector<uint8_t>*> QcowFile::Decompress(const Mapping& m, uint64_t entry) {
  if (decompressed_entry_ == entry && entry != 0) return &decompressed_;
  decompressed_entry_ = 0;
  std::vector<uint8_t> in(std::min(m.compressed_size, file_size_ - m.host));
  CROSVM_RETURN_IF_ERROR(ReadHost(m.host, in));
  decompressed_.resize(cluster_size_);
  z_stream zs{};
  if (inflateInit2(&zs, -15) != Z_OK) return Error(name_ + ": zlib initialization failed", ENOMEM);
  zs.next_in = in.data();
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = decompressed_.data();
  zs.avail_out = static_cast<uInt>(decompressed_.size());
  int ret = inflate(&zs, Z_FINISH);
  inflateEnd(&zs);
  // The stream must fill the cluster; trailing bytes after it are padding.
  if ((ret != Z_STREAM_END && ret != Z_BUF_ERROR && ret != Z_OK) || zs.avail_out != 0) {
    return Corrupt("compressed cluster at " + Hex(m.host) + " does not decompress to a cluster");
  }
  decompressed_entry_ = entry;
  return &decompressed_;
}

Status QcowFile::ReadCluster(uint64_t guest_offset, std::span<uint8_t> out) {
  const uint64_t in_cluster = guest_offset & (cluster_size_ - 1);
  CROSVM_ASSIGN_OR_RETURN(L2Cache::Slot * slot,
                          GetL2ForRead(guest_offset >> (cluster_bits_ + l2_bits_)));
  if (slot == nullptr) return ReadBacking(guest_offset, out);
  const uint64_t entry = slot->table[(guest_offset >> cluster_bits_) & ((1ULL << l2_bits_) - 1)];
  CROSVM_ASSIGN_OR_RETURN(Mapping m, Decode(entry, guest_offset));
  switch (m.kind) {
    case Mapping::kUnallocated:
      return ReadBacking(guest_offset, out);
    case Mapping::kZero:
      std::fill(out.begin(), out.end(), 0);
      return Ok();
    case Mapping::kNormal:
      return ReadHost(m.host + in_cluster, out);
    case Mapping::kCompressed: {
      CROSVM_ASSIGN_OR_RETURN(const std::vector<uint8_t>* data, Decompress(m, entry));
      std::copy_n(data->begin() + static_cast<ptrdiff_t>(in_cluster), out.size(), out.begin());
      return Ok();
    }
  }
  return Ok();
}

Status QcowFile::WriteCluster(uint64_t guest_offset, std::span<const uint8_t> data) {
  const uint64_t in_cluster = guest_offset & (cluster_size_ - 1);
  const uint64_t cluster_start = guest_offset - in_cluster;
  const size_t l2_index = (guest_offset >> cluster_bits_) & ((1ULL << l2_bits_) - 1);
  CROSVM_ASSIGN_OR_RETURN(L2Cache::Slot * slot,
                          GetL2ForWrite(guest_offset >> (cluster_bits_ + l2_bits_)));
  const uint64_t entry = slot->table[l2_index];
  CROSVM_ASSIGN_OR_RETURN(Mapping m, Decode(entry, guest_offset));

  if ((m.kind == Mapping::kNormal || m.kind == Mapping::kZero) && m.host != 0) {
    if (IsReserved(m.host >> cluster_bits_)) {
      return Corrupt("data cluster for guest offset " + Hex(guest_offset) +
                     " overlaps the header, the L1 table or the refcount table");
    }
    CROSVM_ASSIGN_OR_RETURN(uint64_t refcount, EffectiveRefcount(m.host >> cluster_bits_));
    if (refcount == 0) {
      return Corrupt("data cluster at " + Hex(m.host) + " is in use but has refcount 0");
    }
    if (refcount == 1) {
      // Ours alone: write in place.
      if (m.kind == Mapping::kNormal) {
        auto st = WriteHost(m.host + in_cluster, data);
        if (!st.ok()) return st.error().Wrap(name_);
      } else {
        std::fill(cluster_buf_.begin(), cluster_buf_.end(), 0);
        std::copy(data.begin(), data.end(), cluster_buf_.begin() + in_cluster);
        auto st = WriteHost(m.host, cluster_buf_);
        if (!st.ok()) return st.error().Wrap(name_);
      }
      if (slot->table[l2_index] != (m.host | kCopied)) {
        slot->table[l2_index] = m.host | kCopied;
        slot->dirty = true;
      }
      return Ok();
    }
  }

  // Copy-on-write into a new cluster.
  CROSVM_ASSIGN_OR_RETURN(std::vector<uint64_t> to_free, ClustersToFree(m));
  CROSVM_ASSIGN_OR_RETURN(uint64_t host, AllocateClusters(1));
  const bool zero_base =
      m.kind == Mapping::kZero || (m.kind == Mapping::kUnallocated && backing_ == nullptr);
  Status written = Ok();
  if (data.size() == cluster_size_) {
    written = WriteHost(host, data);
  } else if (zero_base && host >= physical_size_) {
    // Past the end of the file everything reads as zeros already: write only the new bytes.
    written = WriteHost(host + in_cluster, data);
  } else {
    std::span<uint8_t> buf(cluster_buf_);
    switch (m.kind) {
      case Mapping::kUnallocated:
        CROSVM_RETURN_IF_ERROR(ReadBacking(cluster_start, buf));
        break;
      case Mapping::kZero:
        std::fill(buf.begin(), buf.end(), 0);
        break;
      case Mapping::kNormal:
        CROSVM_RETURN_IF_ERROR(ReadHost(m.host, buf));
        break;
      case Mapping::kCompressed: {
        CROSVM_ASSIGN_OR_RETURN(const std::vector<uint8_t>* plain, Decompress(m, entry));
        std::copy(plain->begin(), plain->end(), buf.begin());
        break;
      }
    }
    std::copy(data.begin(), data.end(), buf.begin() + static_cast<ptrdiff_t>(in_cluster));
    written = WriteHost(host, buf);
  }
  if (!written.ok()) return written.error().Wrap(name_);
  slot->table[l2_index] = host | kCopied;
  slot->dirty = true;
  ScheduleFree(to_free);
  return Ok();
}

Status QcowFile::ZeroCluster(uint64_t guest_offset, uint64_t length) {
  const uint64_t in_cluster = guest_offset & (cluster_size_ - 1);
  const uint64_t l1_index = guest_offset >> (cluster_bits_ + l2_bits_);
  const size_t l2_index = (guest_offset >> cluster_bits_) & ((1ULL << l2_bits_) - 1);
  {
    CROSVM_ASSIGN_OR_RETURN(L2Cache::Slot * slot, GetL2ForRead(l1_index));
    Mapping current;
    if (slot != nullptr) {
      CROSVM_ASSIGN_OR_RETURN(current, Decode(slot->table[l2_index], guest_offset));
    }
    if (current.kind == Mapping::kZero ||
        (current.kind == Mapping::kUnallocated && backing_ == nullptr)) {
      return Ok();  // already reads as zeros
    }
  }
  // The tail of the last cluster past the virtual size does not matter.
  const bool whole =
      in_cluster == 0 && (length == cluster_size_ || guest_offset + length >= header_.size);
  if (!whole || (backing_ != nullptr && header_.version < 3)) {
    if (zero_buf_.size() != cluster_size_) zero_buf_.assign(cluster_size_, 0);
    return WriteCluster(guest_offset, std::span<const uint8_t>(zero_buf_).first(length));
  }
  // Zero flag where a backing file would show through, else simply unallocated.
  CROSVM_ASSIGN_OR_RETURN(L2Cache::Slot * slot, GetL2ForWrite(l1_index));
  const uint64_t entry = slot->table[l2_index];
  CROSVM_ASSIGN_OR_RETURN(Mapping m, Decode(entry, guest_offset));
  CROSVM_ASSIGN_OR_RETURN(std::vector<uint64_t> to_free, ClustersToFree(m));
  slot->table[l2_index] = backing_ != nullptr ? kZeroFlag : 0;
  slot->dirty = true;
  ScheduleFree(to_free);
  return Ok();
}

// ---------------------------------------------------------------------------------------------
// DiskFile

Result<size_t> QcowFile::ReadAt(uint64_t offset, std::span<uint8_t> buf) {
  std::lock_guard lock(mu_);
  CROSVM_RETURN_IF_ERROR(CheckRange(offset, buf.size(), "read"));
  size_t done = 0;
  while (done < buf.size()) {
    uint64_t pos = offset + done;
    size_t n = std::min<uint64_t>(buf.size() - done, cluster_size_ - (pos & (cluster_size_ - 1)));
    CROSVM_RETURN_IF_ERROR(ReadCluster(pos, buf.subspan(done, n)));
    done += n;
  }
  return buf.size();
}

Result<size_t> QcowFile::WriteAt(uint64_t offset, std::span<const uint8_t> buf) {
  std::lock_guard lock(mu_);
  CROSVM_RETURN_IF_ERROR(CheckWritable("write"));
  CROSVM_RETURN_IF_ERROR(CheckRange(offset, buf.size(), "write"));
  size_t done = 0;
  while (done < buf.size()) {
    uint64_t pos = offset + done;
    size_t n = std::min<uint64_t>(buf.size() - done, cluster_size_ - (pos & (cluster_size_ - 1)));
    CROSVM_RETURN_IF_ERROR(WriteCluster(pos, buf.subspan(done, n)));
    done += n;
  }
  CROSVM_RETURN_IF_ERROR(MaybeCommitDecrements());
  return buf.size();
}

Status QcowFile::ZeroRange(uint64_t offset, uint64_t length, const char* what) {
  std::lock_guard lock(mu_);
  CROSVM_RETURN_IF_ERROR(CheckWritable(what));
  CROSVM_RETURN_IF_ERROR(CheckRange(offset, length, what));
  return ZeroRangeLocked(offset, length);
}

Status QcowFile::ZeroRangeLocked(uint64_t offset, uint64_t length) {
  const uint64_t l2_span = 1ULL << (cluster_bits_ + l2_bits_);
  uint64_t pos = offset;
  const uint64_t end = offset + length;
  while (pos < end) {
    // Skip whole unallocated L2 ranges when they already read as zeros.
    uint64_t l1_entry = l1_table_[pos >> (cluster_bits_ + l2_bits_)];
    if (backing_ == nullptr && l1_entry == 0) {
      uint64_t next = (pos | (l2_span - 1));
      pos = next >= end - 1 ? end : next + 1;
      continue;
    }
    uint64_t n = std::min<uint64_t>(end - pos, cluster_size_ - (pos & (cluster_size_ - 1)));
    CROSVM_RETURN_IF_ERROR(ZeroCluster(pos, n));
    pos += n;
  }
  return MaybeCommitDecrements();
}

Status QcowFile::Discard(uint64_t offset, uint64_t length) {
  return ZeroRange(offset, length, "discard");
}

Status QcowFile::WriteZeroes(uint64_t offset, uint64_t length) {
  return ZeroRange(offset, length, "write zeroes");
}

Status QcowFile::Flush() {
  std::lock_guard lock(mu_);
  if (!writable_) return Ok();
  CROSVM_RETURN_IF_ERROR(FlushMetadata());
  return Sync();
}

uint64_t QcowFile::VirtualSize() const {
  std::lock_guard lock(mu_);
  return header_.size;
}

Status QcowFile::Resize(uint64_t new_size) {
  std::lock_guard lock(mu_);
  CROSVM_RETURN_IF_ERROR(CheckWritable("resize"));
  if (new_size < header_.size) {
    return Error(name_ + ": shrinking a qcow2 image is not supported", ENOTSUP);
  }
  if (new_size == header_.size) return Ok();
  const uint64_t needed = L1EntriesFor(new_size, cluster_bits_ + l2_bits_);
  if (needed > kMaxL1Entries) {
    return Error(name_ + ": size " + std::to_string(new_size) + " is too large", EFBIG);
  }
  // Everything the new header will point at must be on disk first.
  CROSVM_RETURN_IF_ERROR(FlushMetadata());
  CROSVM_RETURN_IF_ERROR(Sync());
  const uint64_t old_size = header_.size;
  // The new area must read as zeros: the tail of the old last cluster may hold bytes past the old
  // size, and a larger backing file would show through unallocated clusters.
  uint64_t zero_end = std::min(new_size, DivRoundUp(old_size, cluster_size_) * cluster_size_);
  if (backing_) zero_end = std::max(zero_end, std::min(new_size, backing_->VirtualSize()));
  uint8_t field[24];
  if (needed <= l1_table_.size()) {
    StoreBe(field, new_size, 8);
    CROSVM_RETURN_IF_ERROR(WriteHeaderBytes(kHeaderSizeOffset, std::span(field, 8)));
    CROSVM_RETURN_IF_ERROR(Sync());
    header_.size = new_size;
    if (zero_end > old_size) CROSVM_RETURN_IF_ERROR(ZeroRangeLocked(old_size, zero_end - old_size));
    CROSVM_RETURN_IF_ERROR(FlushMetadata());
    return Sync();
  }
  const uint64_t l1_clusters = DivRoundUp(needed * 8, cluster_size_);
  CROSVM_ASSIGN_OR_RETURN(uint64_t new_offset, AllocateClusters(l1_clusters));
  std::vector<uint8_t> raw(l1_clusters << cluster_bits_, 0);
  for (size_t i = 0; i < l1_table_.size(); ++i) StoreBe(&raw[i * 8], l1_table_[i], 8);
  auto st = WriteHost(new_offset, raw);
  if (!st.ok()) return st.error().Wrap(name_ + ": writing the L1 table");
  CROSVM_RETURN_IF_ERROR(WriteDirtyRefblocks());
  CROSVM_RETURN_IF_ERROR(Sync());
  StoreBe(field, new_size, 8);
  StoreBe(field + 8, header_.crypt_method, 4);
  StoreBe(field + 12, needed, 4);
  StoreBe(field + 16, new_offset, 8);
  CROSVM_RETURN_IF_ERROR(WriteHeaderBytes(kHeaderSizeOffset, field));
  CROSVM_RETURN_IF_ERROR(Sync());
  const uint64_t old_first = header_.l1_table_offset >> cluster_bits_;
  const uint64_t old_end =
      DivRoundUp(header_.l1_table_offset + uint64_t{header_.l1_size} * 8, cluster_size_);
  const bool had_l1 = header_.l1_size > 0;
  header_.size = new_size;
  header_.l1_size = static_cast<uint32_t>(needed);
  header_.l1_table_offset = new_offset;
  l1_table_.resize(needed, 0);
  l1_dirty_.assign(needed, false);
  if (had_l1) {
    for (uint64_t c = old_first; c < old_end; ++c) CROSVM_RETURN_IF_ERROR(ScheduleDecrement(c));
  }
  if (zero_end > old_size) CROSVM_RETURN_IF_ERROR(ZeroRangeLocked(old_size, zero_end - old_size));
  CROSVM_RETURN_IF_ERROR(FlushMetadata());
  return Sync();
}

// ---------------------------------------------------------------------------------------------
// Creation

Status CreateQcow2(const std::string& path, uint64_t virtual_size) {
  constexpr uint32_t kClusterBits = 16;
  constexpr uint64_t kClusterSize = 1ULL << kClusterBits;
  const uint64_t l1_entries = L1EntriesFor(virtual_size, 2 * kClusterBits - 3);
  if (l1_entries > kMaxL1Entries) {
    return Error(path + ": size " + std::to_string(virtual_size) + " is too large for qcow2",
                 EFBIG);
  }
  const uint64_t l1_clusters = DivRoundUp(l1_entries * 8, kClusterSize);
  // Cluster 0: header; 1: refcount table; 2: refcount block; 3...: L1 table.
  const uint64_t total_clusters = 3 + l1_clusters;
  const uint64_t refblock_entries = kClusterSize / 2;
  if (total_clusters > refblock_entries) {
    return Error(path + ": size " + std::to_string(virtual_size) + " is too large", EFBIG);
  }

  QcowHeader h;
  h.version = 3;
  h.cluster_bits = kClusterBits;
  h.size = virtual_size;
  h.l1_size = static_cast<uint32_t>(l1_entries);
  h.l1_table_offset = 3 * kClusterSize;
  h.refcount_table_offset = kClusterSize;
  h.refcount_table_clusters = 1;
  h.refcount_order = 4;
  h.header_length = 112;  // includes the compression type byte (zlib) and padding
  std::vector<uint8_t> image(3 * kClusterSize, 0);
  std::vector<uint8_t> header = h.Encode();
  std::copy(header.begin(), header.end(), image.begin());
  StoreBe(&image[kClusterSize], 2 * kClusterSize, 8);  // refcount table entry 0
  for (uint64_t c = 0; c < total_clusters; ++c) StoreBe(&image[2 * kClusterSize + c * 2], 1, 2);

  ScopedFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (!fd.valid()) return Error::FromErrno("cannot create " + path);
  auto fail = [&](const Error& e) -> Status {
    fd.reset();
    ::unlink(path.c_str());
    return e.Wrap(path);
  };
  if (auto st = PwriteFull(fd.get(), 0, image); !st.ok()) return fail(st.error());
  // The L1 table is all zeros: extend the file over it without writing.
  if (::ftruncate(fd.get(), static_cast<off_t>(total_clusters * kClusterSize)) != 0) {
    return fail(Error::FromErrno("ftruncate"));
  }
  if (::fsync(fd.get()) != 0) return fail(Error::FromErrno("fsync"));
  return Ok();
}

}  // namespace crosvm::disk
