// Hostile and corrupt qcow2 images: refused at open with a clear error, or answered with an I/O
// error on the request. Never a crash or an unbounded allocation.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <random>

#include "disk/disk.h"
#include "disk/qcow.h"
#include "disk/tests/test_util.h"

namespace crosvm::disk {
namespace {

using testing::PatchBe;
using testing::Pattern;
using testing::ReadBe;
using testing::ReadFileBytes;
using testing::TempDir;
using testing::WriteFileBytes;

constexpr uint64_t kCluster = 64 << 10;
constexpr uint64_t kCopied = 1ULL << 63;
// Layout of a fresh CreateQcow2 image: header, refcount table, refcount block, L1 table.
constexpr uint64_t kRefTable = kCluster;
constexpr uint64_t kRefBlock = 2 * kCluster;
constexpr uint64_t kL1 = 3 * kCluster;

class HostileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.File("h.qcow2");
    ASSERT_TRUE(CreateQcow2(path_, 16 << 20).ok());
  }

  Result<std::unique_ptr<QcowFile>> OpenQcow(bool writable) {
    base::ScopedFd fd(open(path_.c_str(), (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC));
    QcowOptions options;
    options.allow_backing = false;
    return QcowFile::Open(std::move(fd), path_, writable, options);
  }

  // Opening fails (read-only and writable) with a message containing `what`.
  void ExpectRefused(const std::string& what) {
    for (bool writable : {false, true}) {
      auto r = OpenQcow(writable);
      ASSERT_FALSE(r.ok()) << what;
      EXPECT_NE(r.error().message().find(what), std::string::npos)
          << "expected '" << what << "' in: " << r.error().message();
      EXPECT_EQ(r.error().message().rfind(path_, 0), 0u) << r.error().message();
    }
  }

  // Writes one cluster of data at guest offset 0 and returns the L2 table offset and the data
  // cluster offset.
  std::pair<uint64_t, uint64_t> WriteFirstCluster() {
    {
      auto disk = OpenQcow(true);
      EXPECT_TRUE(disk.ok());
      EXPECT_TRUE((*disk)->WriteAt(0, Pattern(kCluster, 1)).ok());
    }
    uint64_t l2 = ReadBe(path_, kL1, 8) & 0x00fffffffffffe00ULL;
    uint64_t data = ReadBe(path_, l2, 8) & 0x00fffffffffffe00ULL;
    EXPECT_NE(l2, 0u);
    EXPECT_NE(data, 0u);
    return {l2, data};
  }

  // Both a read and a write of guest offset 0 fail with EIO and `what` in the message.
  void ExpectRequestFails(const std::string& what) {
    for (bool writable : {false, true}) {
      auto disk = OpenQcow(writable);
      ASSERT_TRUE(disk.ok()) << disk.error().ToString();
      std::vector<uint8_t> buf(4096);
      auto r = (*disk)->ReadAt(0, buf);
      ASSERT_FALSE(r.ok());
      EXPECT_EQ(r.error().errnum(), EIO);
      EXPECT_NE(r.error().message().find(what), std::string::npos) << r.error().message();
      if (writable) {
        auto w = (*disk)->WriteAt(0, buf);
        ASSERT_FALSE(w.ok());
        EXPECT_EQ(w.error().errnum(), EIO);
      }
    }
  }

  TempDir dir_;
  std::string path_;
};

TEST_F(HostileTest, BadMagic) {
  PatchBe(path_, 0, 0x12345678, 4);
  ExpectRefused("not a qcow2 image");
}

TEST_F(HostileTest, UnsupportedVersions) {
  PatchBe(path_, 4, 1, 4);
  ExpectRefused("unsupported qcow version 1");
  PatchBe(path_, 4, 4, 4);
  ExpectRefused("unsupported qcow version 4");
}

TEST_F(HostileTest, TruncatedHeader) {
  auto bytes = ReadFileBytes(path_);
  bytes.resize(90);
  WriteFileBytes(path_, bytes);
  ExpectRefused("too short");
}

TEST_F(HostileTest, ClusterBits) {
  PatchBe(path_, 20, 8, 4);
  ExpectRefused("cluster_bits 8");
  PatchBe(path_, 20, 22, 4);
  ExpectRefused("cluster_bits 22");
  PatchBe(path_, 20, 0xffffffff, 4);
  ExpectRefused("cluster_bits");
}

TEST_F(HostileTest, AbsurdVirtualSize) {
  PatchBe(path_, 24, ~0ULL, 8);
  ExpectRefused("virtual size");
  PatchBe(path_, 24, 1ULL << 62, 8);
  ExpectRefused("too large");
}

TEST_F(HostileTest, L1TooSmallForSize) {
  PatchBe(path_, 24, 1ULL << 40, 8);  // needs 2048 L1 entries, has 1
  ExpectRefused("too few");
}

TEST_F(HostileTest, L1SizeAbsurd) {
  PatchBe(path_, 36, 0xffffffff, 4);
  ExpectRefused("L1 table too large");
  PatchBe(path_, 36, 100000, 4);  // larger than the size needs and than the file
  ExpectRefused("beyond the end of the file");
}

TEST_F(HostileTest, L1Offset) {
  PatchBe(path_, 40, kL1 + 8, 8);
  ExpectRefused("not cluster aligned");
  PatchBe(path_, 40, 0, 8);
  ExpectRefused("overlaps the header");
  PatchBe(path_, 40, 1ULL << 40, 8);
  ExpectRefused("beyond the end of the file");
  PatchBe(path_, 40, ~0ULL & ~(kCluster - 1), 8);  // offset + size overflows
  ExpectRefused("beyond the end of the file");
  PatchBe(path_, 40, kRefTable, 8);
  ExpectRefused("overlaps the refcount table");
}

TEST_F(HostileTest, RefcountTable) {
  PatchBe(path_, 48, kRefTable + 512, 8);
  ExpectRefused("refcount table offset");
  PatchBe(path_, 48, 1ULL << 50, 8);
  ExpectRefused("beyond the end of the file");
  PatchBe(path_, 48, kRefTable, 8);
  PatchBe(path_, 56, 0, 4);
  ExpectRefused("refcount table is empty");
  PatchBe(path_, 56, 0xffffffff, 4);
  ExpectRefused("refcount table too large");
  PatchBe(path_, 56, 10, 4);
  ExpectRefused("beyond the end of the file");
}

TEST_F(HostileTest, Encryption) {
  PatchBe(path_, 32, 1, 4);
  ExpectRefused("encrypted images are not supported");
}

TEST_F(HostileTest, UnknownIncompatibleFeature) {
  PatchBe(path_, 72, 1ULL << 5, 8);
  ExpectRefused("unknown incompatible features 0x20");
  PatchBe(path_, 72, 1ULL << 63, 8);
  ExpectRefused("unknown incompatible features");
}

TEST_F(HostileTest, ExternalDataFile) {
  PatchBe(path_, 72, 1 << 2, 8);
  ExpectRefused("external data files are not supported");
}

TEST_F(HostileTest, ExtendedL2) {
  PatchBe(path_, 72, 1 << 4, 8);
  ExpectRefused("extended L2 entries");
}

TEST_F(HostileTest, CompressionType) {
  PatchBe(path_, 72, 1 << 3, 8);
  PatchBe(path_, 104, 1, 1);
  ExpectRefused("compression type 1 (zstd) is not supported");
  PatchBe(path_, 72, 0, 8);
  ExpectRefused("without its incompatible feature bit");
  PatchBe(path_, 104, 0, 1);
  PatchBe(path_, 72, 1 << 3, 8);
  ExpectRefused("without a compression type");
}

TEST_F(HostileTest, CorruptBitRefusesWrites) {
  PatchBe(path_, 72, 1 << 1, 8);
  EXPECT_TRUE(OpenQcow(false).ok());
  auto r = OpenQcow(true);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("marked corrupt"), std::string::npos);
}

TEST_F(HostileTest, RefcountOrder) {
  PatchBe(path_, 96, 0, 4);
  ExpectRefused("1-bit refcounts (refcount_order 0) are not supported");
  PatchBe(path_, 96, 7, 4);
  ExpectRefused("invalid refcount_order 7");
}

TEST_F(HostileTest, HeaderLength) {
  PatchBe(path_, 100, 50, 4);
  ExpectRefused("invalid header length");
  PatchBe(path_, 100, 1 << 20, 4);
  ExpectRefused("invalid header length");
}

TEST_F(HostileTest, HeaderExtensionTooLong) {
  PatchBe(path_, 112, 0x12345678, 4);
  PatchBe(path_, 116, 0xffffffff, 4);
  ExpectRefused("header extension");
}

TEST_F(HostileTest, BackingFileName) {
  PatchBe(path_, 8, 1024, 8);
  PatchBe(path_, 16, 5000, 4);
  ExpectRefused("backing file name too long");
  PatchBe(path_, 8, kCluster - 10, 8);
  PatchBe(path_, 16, 100, 4);
  ExpectRefused("outside the header cluster");
  PatchBe(path_, 8, ~0ULL - 5, 8);
  ExpectRefused("outside the header cluster");
}

TEST_F(HostileTest, Snapshots) {
  PatchBe(path_, 60, 0xffffffff, 4);
  ExpectRefused("too many snapshots");
  PatchBe(path_, 60, 1, 4);
  PatchBe(path_, 64, 1ULL << 45, 8);
  ExpectRefused("snapshot table offset");
}

TEST_F(HostileTest, AutoclearBitsClearedOnWritableOpen) {
  PatchBe(path_, 88, 0x3, 8);
  { ASSERT_TRUE(OpenQcow(false).ok()); }
  EXPECT_EQ(ReadBe(path_, 88, 8), 3u);
  { ASSERT_TRUE(OpenQcow(true).ok()); }
  EXPECT_EQ(ReadBe(path_, 88, 8), 0u);
}

TEST_F(HostileTest, L1EntryBeyondFileEnd) {
  PatchBe(path_, kL1, (1ULL << 40) | kCopied, 8);
  ExpectRequestFails("beyond the end of the file");
}

TEST_F(HostileTest, L1EntryUnaligned) {
  PatchBe(path_, kL1, (4 * kCluster + 512) | kCopied, 8);
  ExpectRequestFails("not cluster aligned");
}

TEST_F(HostileTest, L1EntryReservedBits) {
  PatchBe(path_, kL1, 1, 8);
  ExpectRequestFails("reserved bits");
}

TEST_F(HostileTest, L1EntryPointsAtMetadata) {
  PatchBe(path_, kL1, kRefTable | kCopied, 8);
  ExpectRequestFails("overlaps");
}

TEST_F(HostileTest, L2EntryBeyondFileEnd) {
  auto [l2, data] = WriteFirstCluster();
  PatchBe(path_, l2, (1ULL << 40) | kCopied, 8);
  ExpectRequestFails("beyond the end of the file");
  // Other clusters still work.
  auto disk = OpenQcow(true);
  ASSERT_TRUE(disk.ok());
  std::vector<uint8_t> buf(100, 9);
  EXPECT_TRUE((*disk)->WriteAt(kCluster, buf).ok());
  EXPECT_TRUE((*disk)->ReadAt(kCluster, buf).ok());
}

TEST_F(HostileTest, L2EntryUnaligned) {
  auto [l2, data] = WriteFirstCluster();
  PatchBe(path_, l2, (data + 4096) | kCopied, 8);
  ExpectRequestFails("not cluster aligned");
}

TEST_F(HostileTest, L2EntryReservedBits) {
  auto [l2, data] = WriteFirstCluster();
  PatchBe(path_, l2, data | kCopied | 2, 8);
  ExpectRequestFails("reserved bits");
}

TEST_F(HostileTest, L2EntryIntoHeader) {
  auto [l2, data] = WriteFirstCluster();
  PatchBe(path_, l2, kL1 | kCopied, 8);  // data "cluster" = the L1 table
  auto disk = OpenQcow(true);
  ASSERT_TRUE(disk.ok());
  auto w = (*disk)->WriteAt(0, std::vector<uint8_t>(512, 0xee));
  ASSERT_FALSE(w.ok());
  EXPECT_NE(w.error().message().find("overlaps"), std::string::npos) << w.error().message();
}

TEST_F(HostileTest, CompressedGarbage) {
  auto [l2, data] = WriteFirstCluster();
  // Compressed descriptor: offset = data cluster, 1 extra sector; the bytes are not deflate.
  const uint64_t x = 62 - (16 - 8);
  PatchBe(path_, l2, (1ULL << 62) | (1ULL << x) | data, 8);
  ExpectRequestFails("decompress");
  PatchBe(path_, l2, (1ULL << 62) | (1ULL << 40), 8);
  ExpectRequestFails("beyond the end of the file");
  PatchBe(path_, l2, (1ULL << 62) | kCopied | data, 8);
  ExpectRequestFails("COPIED");
}

TEST_F(HostileTest, ZeroFlagInVersion2) {
  auto [l2, data] = WriteFirstCluster();
  PatchBe(path_, 4, 2, 4);
  PatchBe(path_, l2, 1, 8);
  ExpectRequestFails("version 2");
}

TEST_F(HostileTest, SaturatedRefcountCopiesOnWrite) {
  auto [l2, data] = WriteFirstCluster();
  PatchBe(path_, kRefBlock + (data / kCluster) * 2, 0xffff, 2);
  auto disk = OpenQcow(true);
  ASSERT_TRUE(disk.ok());
  auto patch = Pattern(100, 5);
  ASSERT_TRUE((*disk)->WriteAt(10, patch).ok());
  auto expected = Pattern(kCluster, 1);
  std::copy(patch.begin(), patch.end(), expected.begin() + 10);
  std::vector<uint8_t> back(kCluster);
  ASSERT_TRUE((*disk)->ReadAt(0, back).ok());
  EXPECT_EQ(back, expected);
  ASSERT_TRUE((*disk)->Flush().ok());
  disk->reset();
  EXPECT_EQ(ReadBe(path_, kRefBlock + (data / kCluster) * 2, 2), 0xfffeu);
  EXPECT_NE(ReadBe(path_, l2, 8) & 0x00fffffffffffe00ULL, data);
}

TEST_F(HostileTest, ZeroRefcountOnUsedCluster) {
  auto [l2, data] = WriteFirstCluster();
  PatchBe(path_, kRefBlock + (data / kCluster) * 2, 0, 2);
  auto disk = OpenQcow(true);
  ASSERT_TRUE(disk.ok());
  auto w = (*disk)->WriteAt(0, std::vector<uint8_t>(512, 1));
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.error().errnum(), EIO);
  EXPECT_NE(w.error().message().find("refcount 0"), std::string::npos) << w.error().message();
}

TEST_F(HostileTest, RefcountBlockBeyondFileEnd) {
  PatchBe(path_, kRefTable, 1ULL << 44, 8);
  auto disk = OpenQcow(true);
  ASSERT_TRUE(disk.ok());
  std::vector<uint8_t> buf(512, 1);
  EXPECT_TRUE((*disk)->ReadAt(0, buf).ok());  // reads need no refcounts
  auto w = (*disk)->WriteAt(0, buf);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.error().errnum(), EIO);
}

// Random corruption of an image with data: every request may fail, none may crash. The
// corrupted copies live in memory files (no fdatasync cost).
TEST_F(HostileTest, RandomCorruptionNeverCrashes) {
  {
    auto disk = OpenQcow(true);
    ASSERT_TRUE(disk.ok());
    ASSERT_TRUE((*disk)->WriteAt(0, Pattern(300000, 7)).ok());
    ASSERT_TRUE((*disk)->WriteAt(10 << 20, Pattern(100000, 8)).ok());
  }
  const auto pristine = ReadFileBytes(path_);
  std::mt19937_64 rng(1234);
  int opened = 0;
  for (int iter = 0; iter < 400; ++iter) {
    auto bytes = pristine;
    int flips = 1 + static_cast<int>(rng() % 8);
    for (int i = 0; i < flips; ++i) {
      // Mostly metadata: the header, the tables and the first clusters after them.
      uint64_t span = (rng() % 2) ? 512 : std::min<uint64_t>(bytes.size(), 8 * kCluster);
      bytes[rng() % span] ^= static_cast<uint8_t>(1u << (rng() % 8));
    }
    base::ScopedFd fd(memfd_create("corrupt", MFD_CLOEXEC));
    ASSERT_TRUE(fd.valid());
    ASSERT_EQ(write(fd.get(), bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
    QcowOptions options;
    options.allow_backing = false;
    auto disk = QcowFile::Open(std::move(fd), "corrupt.qcow2", iter % 2 == 0, options);
    if (!disk.ok()) continue;
    ++opened;
    std::vector<uint8_t> buf(70000);
    const uint64_t size = (*disk)->VirtualSize();
    for (uint64_t off : {uint64_t{0}, uint64_t{65000}, uint64_t{10} << 20}) {
      if (off + buf.size() > size) continue;
      (void)(*disk)->ReadAt(off, buf);
      if (!(*disk)->ReadOnly()) {
        (void)(*disk)->WriteAt(off, buf);
        (void)(*disk)->Discard(off, 65536);
      }
    }
    (void)(*disk)->Flush();
  }
  EXPECT_GT(opened, 10);
}

}  // namespace
}  // namespace crosvm::disk
