// qcow2 images (versions 2 and 3), following the format description in QEMU's
// docs/interop/qcow2.txt.
//
// Supported: L1/L2 tables, refcounts of 8/16/32/64 bits (refcount_order 3..6), cluster sizes of
// 512 B .. 2 MiB, allocation (reusing free clusters or appending), copy-on-write of shared or
// compressed clusters, zlib-compressed clusters (read; rewritten uncompressed on write), v3 zero
// clusters, internal snapshots (their clusters are left intact; the active image copies on write),
// read-only backing files (raw or qcow2), growing the virtual size, repairing refcounts of images
// left dirty by lazy refcounts.
// Refused: encryption, external data files, extended L2 entries, compression types other than
// zlib, refcount widths below 8 bits, unknown incompatible feature bits, writing to an image marked
// corrupt.
//
// Crash safety: data and metadata caches are written back in dependency order with fdatasync
// barriers in between (data and refcount increments, then L2 tables, then the L1 table), and
// refcount decrements are applied only once nothing on disk points to the freed cluster. A crash
// at any point leaves a consistent image or one with leaked clusters (tests/qcow_crash_test.cpp
// replays the logged writes and barriers as power cuts). All file I/O goes through a FileIo.
//
// A failed WriteAt/Discard/WriteZeroes is not undone: clusters before the failure keep their new
// data (see disk.h for what a caller may assume).
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/fd.h"
#include "disk/disk.h"
#include "disk/file_io.h"

namespace crosvm::disk {

inline constexpr uint32_t kQcowMagic = 0x514649fb;  // "QFI\xfb"

// The fields of a qcow2 header, decoded from big-endian.
struct QcowHeader {
  uint32_t magic = kQcowMagic;
  uint32_t version = 3;
  uint64_t backing_file_offset = 0;
  uint32_t backing_file_size = 0;
  uint32_t cluster_bits = 16;
  uint64_t size = 0;
  uint32_t crypt_method = 0;
  uint32_t l1_size = 0;
  uint64_t l1_table_offset = 0;
  uint64_t refcount_table_offset = 0;
  uint32_t refcount_table_clusters = 0;
  uint32_t nb_snapshots = 0;
  uint64_t snapshots_offset = 0;
  // Version 3 only (version 2 images read as 0 / 4 / 72).
  uint64_t incompatible_features = 0;
  uint64_t compatible_features = 0;
  uint64_t autoclear_features = 0;
  uint32_t refcount_order = 4;
  uint32_t header_length = 104;
  uint8_t compression_type = 0;  // present when header_length > 104

  // Parses the first bytes of an image (at least 72; 104 or more for version 3). Checks only
  // that the structure can be decoded; QcowFile::Open validates the values.
  static Result<QcowHeader> Parse(std::span<const uint8_t> bytes);
  // Encodes header_length bytes (at least 72 for v2, 104 for v3).
  std::vector<uint8_t> Encode() const;
};

// Opens a backing file given its name exactly as the image's header spells it (absolute or
// relative to the image's directory: resolving it is the opener's job), the format named by the
// image's backing format extension (none: the extension is absent), and how many more backing
// files may be chained below the one it opens.
using BackingOpener = std::function<Result<std::unique_ptr<DiskFile>>(
    const std::string& name, std::optional<ImageFormat> format, int depth_left)>;

struct QcowOptions {
  // How many more backing files may be chained below this image.
  int backing_depth_left = kMaxBackingDepth;
  // When false, images that name a backing file are refused.
  bool allow_backing = true;
  // Opens backing files. There is no default: without an opener, images that name a backing
  // file are refused (disk::OpenDisk supplies one that enforces its rules, see disk.h).
  BackingOpener open_backing;
  // Bounds of the metadata caches, in bytes (at least 4 tables each are kept).
  size_t l2_cache_bytes = 8 << 20;
  size_t refblock_cache_bytes = 2 << 20;
};

class QcowFile : public DiskFile {
  struct PrivateTag {};  // lets Open() use make_unique with the constructor below

 public:
  // Takes ownership of `fd` (O_RDWR when `writable`). `name` is used in error messages and to
  // resolve relative backing file names.
  static Result<std::unique_ptr<QcowFile>> Open(base::ScopedFd fd, std::string name, bool writable,
                                                QcowOptions options = {});
  // The same on any FileIo (tests substitute one that logs or fails operations).
  static Result<std::unique_ptr<QcowFile>> Open(std::unique_ptr<FileIo> io, std::string name,
                                                bool writable, QcowOptions options = {});
  // Use Open().
  QcowFile(PrivateTag, std::unique_ptr<FileIo> io, std::string name, bool writable,
           const QcowHeader& header, uint64_t file_size, const QcowOptions& options);
  ~QcowFile() override;

  Result<size_t> ReadAt(uint64_t offset, std::span<uint8_t> buf) override;
  Result<size_t> WriteAt(uint64_t offset, std::span<const uint8_t> buf) override;
  Status Flush() override;
  Status Discard(uint64_t offset, uint64_t length) override;
  Status WriteZeroes(uint64_t offset, uint64_t length) override;
  Status Resize(uint64_t new_size) override;

  uint64_t VirtualSize() const override;
  bool ReadOnly() const override { return !writable_; }
  ImageFormat Format() const override { return ImageFormat::kQcow2; }
  void AppendKeptFds(std::vector<int>& fds) const override {
    io_->AppendKeptFds(fds);
    if (backing_) backing_->AppendKeptFds(fds);
  }

  uint64_t cluster_size() const { return cluster_size_; }
  const DiskFile* backing_file() const { return backing_.get(); }

 private:
  template <typename Table>
  class LruCache {
   public:
    struct Slot {
      uint64_t key;
      Table table;
      bool dirty = false;
    };
    explicit LruCache(size_t capacity) : capacity_(capacity) {}
    Slot* Find(uint64_t key);
    bool Full() const { return slots_.size() >= capacity_; }
    Slot* Oldest() { return slots_.empty() ? nullptr : &slots_.back(); }
    Slot* Insert(uint64_t key, Table table, bool dirty);
    void Erase(uint64_t key);
    std::list<Slot>& slots() { return slots_; }

   private:
    size_t capacity_;
    std::list<Slot> slots_;  // most recently used first
    std::unordered_map<uint64_t, typename std::list<Slot>::iterator> index_;
  };
  using L2Cache = LruCache<std::vector<uint64_t>>;
  using RefblockCache = LruCache<std::vector<uint8_t>>;

  // A decoded L2 entry.
  struct Mapping {
    enum Kind { kUnallocated, kZero, kNormal, kCompressed } kind = kUnallocated;
    uint64_t host = 0;  // cluster offset (kNormal, kZero with preallocation) or byte offset
    uint64_t compressed_size = 0;  // kCompressed: bytes to read from `host`
    uint64_t first_sector = 0;     // kCompressed: start of the sectors holding the data
    uint64_t sectors = 0;          // kCompressed: number of 512-byte sectors
  };

  Status Init(const QcowOptions& options);
  Status OpenBacking(const QcowOptions& options, std::optional<ImageFormat> backing_format);
  Status ParseExtensions(std::optional<ImageFormat>* backing_format);

  Error Corrupt(const std::string& what) const;
  Status CheckWritable(const char* what) const;
  Status CheckRange(uint64_t offset, uint64_t length, const char* what) const;
  Status WriteHeaderBytes(uint64_t offset, std::span<const uint8_t> bytes);
  // pwrite into the image file, tracking its size.
  Status WriteHost(uint64_t offset, std::span<const uint8_t> bytes);

  // Metadata.
  bool IsReserved(uint64_t cluster) const;
  Result<L2Cache::Slot*> LoadL2(uint64_t l2_offset);
  Result<L2Cache::Slot*> GetL2ForRead(uint64_t l1_index);
  Result<L2Cache::Slot*> GetL2ForWrite(uint64_t l1_index);
  Status ValidateL1Entry(uint64_t entry, uint64_t l1_index) const;
  Result<Mapping> Decode(uint64_t entry, uint64_t guest_offset) const;
  Status WriteL2Raw(L2Cache::Slot* slot);
  Status EvictL2IfFull();
  void SetL1(uint64_t l1_index, uint64_t entry);

  Result<RefblockCache::Slot*> LoadRefblock(uint64_t block_offset);
  Status EvictRefblockIfFull();
  Result<uint64_t> RefblockOffset(uint64_t block_index) const;
  Result<uint64_t> GetRefcount(uint64_t cluster);
  Result<uint64_t> EffectiveRefcount(uint64_t cluster);
  Status SetRefcount(uint64_t cluster, uint64_t value);
  Result<uint64_t> AllocateClusters(uint64_t count);
  Result<uint64_t> FindFreeRun(uint64_t count);
  Status CreateRefblock(uint64_t block_index);
  Status GrowRefTable(uint64_t min_entries);
  Status ScheduleDecrement(uint64_t cluster);
  Result<std::vector<uint64_t>> ClustersToFree(const Mapping& mapping);
  void ScheduleFree(const std::vector<uint64_t>& clusters);
  Status WriteDirtyRefblocks();
  Status Sync();
  Status FlushMetadata();
  Status ApplyDecrements();
  Status MaybeCommitDecrements();
  Status RepairRefcounts();

  // Data.
  Status ReadCluster(uint64_t guest_offset, std::span<uint8_t> out);
  Status ReadBacking(uint64_t guest_offset, std::span<uint8_t> out);
  Status ReadHost(uint64_t host_offset, std::span<uint8_t> out);
  Result<const std::vector<uint8_t>*> Decompress(const Mapping& mapping, uint64_t entry);
  Status WriteCluster(uint64_t guest_offset, std::span<const uint8_t> data);
  Status ZeroCluster(uint64_t guest_offset, uint64_t length);
  Status ZeroRange(uint64_t offset, uint64_t length, const char* what);
  Status ZeroRangeLocked(uint64_t offset, uint64_t length);

  uint64_t ClusterOf(uint64_t byte_offset) const { return byte_offset >> cluster_bits_; }
  uint64_t EndCluster() const { return (file_size_ + cluster_size_ - 1) >> cluster_bits_; }

  mutable std::mutex mu_;
  std::unique_ptr<FileIo> io_;
  std::string name_;
  bool writable_;
  QcowHeader header_;
  uint32_t cluster_bits_;
  uint64_t cluster_size_;
  uint32_t l2_bits_;         // log2(entries per L2 table)
  uint32_t refblock_bits_;   // log2(entries per refcount block)
  uint32_t refcount_bytes_;  // bytes per refcount entry
  uint64_t refcount_max_;
  uint64_t file_size_;      // bytes, including clusters allocated but not yet written
  uint64_t physical_size_;  // bytes actually in the file: everything past it reads as zeros

  std::vector<uint64_t> l1_table_;
  std::vector<bool> l1_dirty_;
  bool l1_any_dirty_ = false;
  std::vector<uint64_t> reftable_;
  L2Cache l2_cache_;
  RefblockCache refblock_cache_;
  // Refcount decrements waiting until no on-disk metadata references their clusters.
  std::unordered_map<uint64_t, uint64_t> pending_decrements_;
  uint64_t free_hint_ = 0;  // no free cluster below this index
  bool repairing_ = false;

  std::unique_ptr<DiskFile> backing_;
  std::vector<uint8_t> cluster_buf_;
  std::vector<uint8_t> zero_buf_;
  uint64_t decompressed_entry_ = 0;  // L2 entry whose data decompressed_ holds (0: none)
  std::vector<uint8_t> decompressed_;
};

}  // namespace crosvm::disk
