// Functional tests of the qcow2 implementation on images it creates itself.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

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
constexpr uint64_t kGiB = 1ULL << 30;

// Opens a qcow2 image the test made, as the user would open a trusted one: format=qcow2.
std::unique_ptr<DiskFile> Open(const std::string& path, bool writable = true) {
  auto disk = OpenDisk(path, OpenOptions{writable, ImageFormat::kQcow2, std::nullopt});
  EXPECT_TRUE(disk.ok()) << disk.error().ToString();
  if (!disk.ok()) return nullptr;
  EXPECT_EQ((*disk)->Format(), ImageFormat::kQcow2);
  return std::move(*disk);
}

std::unique_ptr<DiskFile> CreateAndOpen(const std::string& path, uint64_t size) {
  auto st = CreateQcow2(path, size);
  EXPECT_TRUE(st.ok()) << st.error().ToString();
  return Open(path);
}

std::vector<uint8_t> Read(DiskFile& disk, uint64_t offset, size_t size) {
  std::vector<uint8_t> buf(size, 0xcc);
  auto r = disk.ReadAt(offset, buf);
  EXPECT_TRUE(r.ok()) << r.error().ToString();
  return buf;
}

void Write(DiskFile& disk, uint64_t offset, const std::vector<uint8_t>& data) {
  auto w = disk.WriteAt(offset, data);
  ASSERT_TRUE(w.ok()) << w.error().ToString();
  ASSERT_EQ(*w, data.size());
}

bool AllZero(const std::vector<uint8_t>& v) {
  return std::all_of(v.begin(), v.end(), [](uint8_t b) { return b == 0; });
}

uint64_t FileSize(const std::string& path) {
  struct stat st;
  EXPECT_EQ(stat(path.c_str(), &st), 0);
  return static_cast<uint64_t>(st.st_size);
}

uint64_t AllocatedBytes(const std::string& path) {
  struct stat st;
  EXPECT_EQ(stat(path.c_str(), &st), 0);
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

// Makes a v3 image of `size` that names `backing` (and optionally its format) as backing file.
void MakeOverlay(const std::string& path, uint64_t size, const std::string& backing,
                 const std::string& format = "") {
  ASSERT_TRUE(CreateQcow2(path, size).ok());
  auto bytes = ReadFileBytes(path);
  std::copy(backing.begin(), backing.end(), bytes.begin() + 1024);
  WriteFileBytes(path, bytes);
  PatchBe(path, 8, 1024, 8);
  PatchBe(path, 16, backing.size(), 4);
  if (!format.empty()) {
    // Backing format extension right after the 112-byte header, then the end marker.
    PatchBe(path, 112, 0xe2792aca, 4);
    PatchBe(path, 116, format.size(), 4);
    auto b = ReadFileBytes(path);
    std::copy(format.begin(), format.end(), b.begin() + 120);
    WriteFileBytes(path, b);
    const uint64_t end = 120 + ((format.size() + 7) & ~size_t{7});
    PatchBe(path, end, 0, 8);
  }
}

TEST(QcowTest, CreateOpenReadsZeros) {
  TempDir dir;
  auto disk = CreateAndOpen(dir.File("a.qcow2"), kGiB);
  ASSERT_TRUE(disk);
  EXPECT_EQ(disk->VirtualSize(), kGiB);
  EXPECT_FALSE(disk->ReadOnly());
  EXPECT_TRUE(AllZero(Read(*disk, 0, 1 << 20)));
  EXPECT_TRUE(AllZero(Read(*disk, kGiB - 100000, 100000)));
  std::vector<uint8_t> buf(1);
  EXPECT_FALSE(disk->ReadAt(kGiB, buf).ok());
  EXPECT_EQ(FileSize(dir.File("a.qcow2")), 4 * kCluster);
}

TEST(QcowTest, CreateRefusesToOverwrite) {
  TempDir dir;
  WriteFileBytes(dir.File("x"), {1, 2, 3});
  auto st = CreateQcow2(dir.File("x"), kGiB);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().errnum(), EEXIST);
  EXPECT_NE(st.error().ToString().find(dir.File("x")), std::string::npos);
  EXPECT_EQ(ReadFileBytes(dir.File("x")), (std::vector<uint8_t>{1, 2, 3}));
}

TEST(QcowTest, CreateOddSizes) {
  TempDir dir;
  for (uint64_t size : {uint64_t{0}, uint64_t{1}, uint64_t{512} * 1000 + 1, 5 * kGiB + 7}) {
    std::string path = dir.File("s" + std::to_string(size));
    auto disk = CreateAndOpen(path, size);
    ASSERT_TRUE(disk);
    EXPECT_EQ(disk->VirtualSize(), size);
    if (size > 0) {
      Write(*disk, size - 1, {0x42});
      EXPECT_EQ(Read(*disk, size - 1, 1)[0], 0x42);
    }
  }
}

TEST(QcowTest, WriteReadAcrossClusterAndL2Boundaries) {
  TempDir dir;
  const std::string path = dir.File("a.qcow2");
  auto disk = CreateAndOpen(path, kGiB);
  ASSERT_TRUE(disk);
  const uint64_t l2_span = kCluster * (kCluster / 8);  // 512 MiB per L2 table
  struct Piece {
    uint64_t offset;
    std::vector<uint8_t> data;
  };
  std::vector<Piece> pieces = {
      {kCluster - 1000, Pattern(3 * kCluster, 1)},  // spans 4 clusters
      {l2_span - 100000, Pattern(300000, 2)},       // spans two L2 tables
      {kGiB - 777, Pattern(777, 3)},                // end of the disk
      {5, Pattern(1, 4)},
  };
  for (auto& p : pieces) Write(*disk, p.offset, p.data);
  for (auto& p : pieces) EXPECT_EQ(Read(*disk, p.offset, p.data.size()), p.data);
  // Neighbors of the writes still read as zeros.
  EXPECT_TRUE(AllZero(Read(*disk, 6, kCluster - 1006)));
  EXPECT_TRUE(AllZero(Read(*disk, l2_span + 200000, 1000)));
  ASSERT_TRUE(disk->Flush().ok());
  disk.reset();
  disk = Open(path);
  ASSERT_TRUE(disk);
  for (auto& p : pieces) EXPECT_EQ(Read(*disk, p.offset, p.data.size()), p.data);
}

TEST(QcowTest, OverwriteInPlace) {
  TempDir dir;
  const std::string path = dir.File("a.qcow2");
  auto disk = CreateAndOpen(path, 64 << 20);
  ASSERT_TRUE(disk);
  auto a = Pattern(1 << 20, 10);
  Write(*disk, 0, a);
  ASSERT_TRUE(disk->Flush().ok());
  const uint64_t size = FileSize(path);
  auto b = Pattern(100000, 11);
  Write(*disk, 30000, b);
  std::copy(b.begin(), b.end(), a.begin() + 30000);
  EXPECT_EQ(Read(*disk, 0, a.size()), a);
  ASSERT_TRUE(disk->Flush().ok());
  EXPECT_EQ(FileSize(path), size);  // nothing new allocated
}

TEST(QcowTest, DiscardFreesAndReusesClusters) {
  TempDir dir;
  const std::string path = dir.File("a.qcow2");
  auto disk = CreateAndOpen(path, 64 << 20);
  ASSERT_TRUE(disk);
  auto data = Pattern(8 << 20, 20);
  Write(*disk, 0, data);
  ASSERT_TRUE(disk->Flush().ok());
  const uint64_t size = FileSize(path);
  const uint64_t allocated = AllocatedBytes(path);
  ASSERT_TRUE(disk->Discard(1 << 20, 4 << 20).ok());
  ASSERT_TRUE(disk->Discard(100, 50).ok());  // partial cluster: zeroed in place
  std::fill(data.begin() + (1 << 20), data.begin() + (5 << 20), 0);
  std::fill(data.begin() + 100, data.begin() + 150, 0);
  EXPECT_EQ(Read(*disk, 0, data.size()), data);
  ASSERT_TRUE(disk->Flush().ok());
  EXPECT_LE(AllocatedBytes(path), allocated - (4 << 20) + kCluster);  // holes punched
  // Freed clusters are reused: the file does not grow.
  auto more = Pattern(4 << 20, 21);
  Write(*disk, 40 << 20, more);
  ASSERT_TRUE(disk->Flush().ok());
  EXPECT_EQ(FileSize(path), size);
  EXPECT_EQ(Read(*disk, 40 << 20, more.size()), more);
  EXPECT_EQ(Read(*disk, 0, data.size()), data);
}

TEST(QcowTest, WriteZeroes) {
  TempDir dir;
  const std::string path = dir.File("a.qcow2");
  auto disk = CreateAndOpen(path, 64 << 20);
  ASSERT_TRUE(disk);
  auto data = Pattern(2 << 20, 30);
  Write(*disk, 0, data);
  ASSERT_TRUE(disk->WriteZeroes(12345, 1 << 20).ok());
  ASSERT_TRUE(disk->WriteZeroes(60 << 20, 1 << 20).ok());  // unallocated: no-op
  std::fill(data.begin() + 12345, data.begin() + 12345 + (1 << 20), 0);
  EXPECT_EQ(Read(*disk, 0, data.size()), data);
  EXPECT_TRUE(AllZero(Read(*disk, 60 << 20, 1 << 20)));
  ASSERT_TRUE(disk->Flush().ok());
  disk.reset();
  disk = Open(path);
  EXPECT_EQ(Read(*disk, 0, data.size()), data);
}

TEST(QcowTest, GrowVirtualSize) {
  TempDir dir;
  const std::string path = dir.File("a.qcow2");
  auto disk = CreateAndOpen(path, 1 << 20);
  ASSERT_TRUE(disk);
  auto head = Pattern(70000, 40);
  Write(*disk, 0, head);
  // Within the same L1 table, then beyond it (the L1 table moves).
  ASSERT_TRUE(disk->Resize(100 << 20).ok());
  EXPECT_EQ(disk->VirtualSize(), uint64_t{100} << 20);
  ASSERT_TRUE(disk->Resize(3 * kGiB).ok());
  EXPECT_EQ(disk->VirtualSize(), 3 * kGiB);
  auto tail = Pattern(8192, 41);
  Write(*disk, 3 * kGiB - 8192, tail);
  EXPECT_EQ(Read(*disk, 0, head.size()), head);
  EXPECT_TRUE(AllZero(Read(*disk, 2 * kGiB, 4096)));
  auto shrink = disk->Resize(kGiB);
  EXPECT_FALSE(shrink.ok());
  disk.reset();
  disk = Open(path);
  ASSERT_TRUE(disk);
  EXPECT_EQ(disk->VirtualSize(), 3 * kGiB);
  EXPECT_EQ(Read(*disk, 0, head.size()), head);
  EXPECT_EQ(Read(*disk, 3 * kGiB - 8192, tail.size()), tail);
}

TEST(QcowTest, GrownAreaReadsZeros) {
  TempDir dir;
  // Bytes past the old size inside the last cluster must not reappear.
  const std::string path = dir.File("a.qcow2");
  const uint64_t size = kCluster + 1000;
  {
    auto disk = CreateAndOpen(path, size);
    Write(*disk, kCluster, Pattern(1000, 45));
  }
  const uint64_t l2 = ReadBe(path, 3 * kCluster, 8) & 0x00fffffffffffe00ULL;
  const uint64_t data = ReadBe(path, l2 + 8, 8) & 0x00fffffffffffe00ULL;
  ASSERT_NE(data, 0u);
  PatchBe(path, data + 1000, 0xdeadbeefdeadbeefULL, 8);
  auto disk = Open(path);
  ASSERT_TRUE(disk->Resize(4 * kCluster).ok());
  auto tail = Read(*disk, size, 4 * kCluster - size);
  EXPECT_TRUE(AllZero(tail));
  EXPECT_EQ(Read(*disk, kCluster, 1000), Pattern(1000, 45));

  // A larger backing file must not show through the grown area.
  WriteFileBytes(dir.File("big.raw"), Pattern(4 << 20, 46));
  MakeOverlay(dir.File("small.qcow2"), 1 << 20, "big.raw");
  auto overlay = Open(dir.File("small.qcow2"));
  ASSERT_TRUE(overlay);
  ASSERT_TRUE(overlay->Resize(3 << 20).ok());
  auto expected = Pattern(1 << 20, 46);
  expected.resize(3 << 20, 0);
  EXPECT_EQ(Read(*overlay, 0, 3 << 20), expected);
  overlay.reset();
  overlay = Open(dir.File("small.qcow2"), false);
  EXPECT_EQ(Read(*overlay, 0, 3 << 20), expected);
}

TEST(QcowTest, ReadOnlyRefusesWrites) {
  TempDir dir;
  const std::string path = dir.File("a.qcow2");
  {
    auto disk = CreateAndOpen(path, 1 << 20);
    Write(*disk, 0, Pattern(4096, 50));
  }
  auto before = ReadFileBytes(path);
  auto disk = Open(path, false);
  ASSERT_TRUE(disk);
  EXPECT_TRUE(disk->ReadOnly());
  auto w = disk->WriteAt(0, std::vector<uint8_t>(512, 1));
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.error().errnum(), EROFS);
  EXPECT_NE(w.error().message().find("read-only"), std::string::npos);
  EXPECT_NE(w.error().message().find("a.qcow2"), std::string::npos);
  EXPECT_FALSE(disk->Discard(0, 65536).ok());
  EXPECT_FALSE(disk->WriteZeroes(0, 65536).ok());
  EXPECT_FALSE(disk->Resize(2 << 20).ok());
  EXPECT_TRUE(disk->Flush().ok());
  EXPECT_EQ(Read(*disk, 0, 4096), Pattern(4096, 50));
  disk.reset();
  EXPECT_EQ(ReadFileBytes(path), before);
}

TEST(QcowTest, BackingFileReadsAndCopyOnWrite) {
  TempDir dir;
  const uint64_t backing_size = 3 << 20;
  auto base = Pattern(backing_size, 60);
  WriteFileBytes(dir.File("base.raw"), base);
  // A relative name, resolved against the overlay's directory (not the working directory).
  MakeOverlay(dir.File("overlay.qcow2"), 4 << 20, "base.raw");
  auto disk = Open(dir.File("overlay.qcow2"));
  ASSERT_TRUE(disk);
  EXPECT_EQ(Read(*disk, 0, backing_size), base);
  EXPECT_TRUE(AllZero(Read(*disk, backing_size, 1 << 20)));  // beyond the backing file

  // First write to a cluster copies the rest of it from the backing file.
  auto patch = Pattern(1000, 61);
  Write(*disk, kCluster + 500, patch);
  auto expected = base;
  expected.resize(4 << 20, 0);
  std::copy(patch.begin(), patch.end(), expected.begin() + kCluster + 500);
  EXPECT_EQ(Read(*disk, 0, expected.size()), expected);
  // Discard and zeroing must hide the backing data.
  ASSERT_TRUE(disk->Discard(2 * kCluster, 2 * kCluster).ok());
  ASSERT_TRUE(disk->WriteZeroes(5 * kCluster + 10, 20).ok());
  std::fill(expected.begin() + 2 * kCluster, expected.begin() + 4 * kCluster, 0);
  std::fill(expected.begin() + 5 * kCluster + 10, expected.begin() + 5 * kCluster + 30, 0);
  EXPECT_EQ(Read(*disk, 0, expected.size()), expected);
  disk.reset();
  EXPECT_EQ(ReadFileBytes(dir.File("base.raw")), base);  // never written
  disk = Open(dir.File("overlay.qcow2"), false);
  ASSERT_TRUE(disk);
  EXPECT_EQ(Read(*disk, 0, expected.size()), expected);
}

TEST(QcowTest, QcowBackingChain) {
  TempDir dir;
  auto base = CreateAndOpen(dir.File("base.qcow2"), 2 << 20);
  ASSERT_TRUE(base);
  Write(*base, 0, Pattern(2 << 20, 70));
  base.reset();
  MakeOverlay(dir.File("mid.qcow2"), 2 << 20, dir.File("base.qcow2"), "qcow2");  // absolute
  {
    auto mid = Open(dir.File("mid.qcow2"));
    ASSERT_TRUE(mid);
    Write(*mid, 100000, Pattern(5000, 71));
  }
  MakeOverlay(dir.File("top.qcow2"), 2 << 20, "mid.qcow2", "qcow2");
  auto top = Open(dir.File("top.qcow2"));
  ASSERT_TRUE(top);
  auto expected = Pattern(2 << 20, 70);
  auto mid_patch = Pattern(5000, 71);
  std::copy(mid_patch.begin(), mid_patch.end(), expected.begin() + 100000);
  EXPECT_EQ(Read(*top, 0, expected.size()), expected);
}

TEST(QcowTest, BackingChainDepthIsLimited) {
  TempDir dir;
  MakeOverlay(dir.File("loop.qcow2"), 1 << 20, "loop.qcow2", "qcow2");  // its own backing file
  auto r = OpenDisk(dir.File("loop.qcow2"), OpenOptions{false, ImageFormat::kQcow2, std::nullopt});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("too deep"), std::string::npos) << r.error().message();
}

TEST(QcowTest, MissingBackingFileIsNamed) {
  TempDir dir;
  MakeOverlay(dir.File("o.qcow2"), 1 << 20, "nothere.raw");
  auto r = OpenDisk(dir.File("o.qcow2"), OpenOptions{false, ImageFormat::kQcow2, std::nullopt});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().ToString().find("nothere.raw: No such file or directory"), std::string::npos)
      << r.error().ToString();
}

TEST(QcowTest, BackingFilesCanBeRefused) {
  TempDir dir;
  WriteFileBytes(dir.File("b.raw"), std::vector<uint8_t>(4096));
  MakeOverlay(dir.File("o.qcow2"), 1 << 20, "b.raw");
  base::ScopedFd fd(open(dir.File("o.qcow2").c_str(), O_RDONLY | O_CLOEXEC));
  QcowOptions options;
  options.allow_backing = false;
  auto r = QcowFile::Open(std::move(fd), dir.File("o.qcow2"), false, options);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("not allowed"), std::string::npos);
}

TEST(QcowTest, NotQcowThroughQcowOpen) {
  TempDir dir;
  WriteFileBytes(dir.File("disk.img"), std::vector<uint8_t>(4096, 0));
  base::ScopedFd fd(open(dir.File("disk.img").c_str(), O_RDONLY | O_CLOEXEC));
  auto r = QcowFile::Open(std::move(fd), "disk.img", false);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message().rfind("disk.img: not a qcow2 image", 0), 0u) << r.error().message();
}

TEST(QcowTest, SmallCacheManyTables) {
  // Few cached tables and many L2 tables and refcount blocks: exercises eviction write-back.
  TempDir dir;
  const std::string path = dir.File("a.qcow2");
  ASSERT_TRUE(CreateQcow2(path, 8 * kGiB).ok());
  base::ScopedFd fd(open(path.c_str(), O_RDWR | O_CLOEXEC));
  QcowOptions options;
  options.l2_cache_bytes = 0;  // 4 tables
  options.refblock_cache_bytes = 0;
  auto disk = QcowFile::Open(std::move(fd), path, true, options);
  ASSERT_TRUE(disk.ok()) << disk.error().ToString();
  const uint64_t l2_span = kCluster * (kCluster / 8);
  for (uint64_t i = 0; i < 16; ++i)
    Write(**disk, i * l2_span / 2 + 4096 * i, Pattern(5000, 80 + i));
  for (uint64_t i = 0; i < 16; ++i) {
    EXPECT_EQ(Read(**disk, i * l2_span / 2 + 4096 * i, 5000), Pattern(5000, 80 + i));
  }
  disk->reset();
  auto again = Open(path, false);
  for (uint64_t i = 0; i < 16; ++i) {
    EXPECT_EQ(Read(*again, i * l2_span / 2 + 4096 * i, 5000), Pattern(5000, 80 + i));
  }
}

}  // namespace
}  // namespace crosvm::disk
