#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>

#include "base/fd.h"
#include "disk/disk.h"
#include "disk/raw_file.h"
#include "disk/tests/test_util.h"

namespace crosvm::disk {
namespace {

using testing::Pattern;
using testing::ReadFileBytes;
using testing::TempDir;
using testing::WriteFileBytes;

constexpr uint64_t kSize = 4 << 20;

std::unique_ptr<DiskFile> MakeRaw(const TempDir& dir, bool writable = true,
                                  const std::string& name = "disk.img") {
  WriteFileBytes(dir.File(name), std::vector<uint8_t>(kSize, 0));
  auto disk = OpenDisk(dir.File(name), writable);
  EXPECT_TRUE(disk.ok()) << disk.error().ToString();
  return std::move(*disk);
}

TEST(RawFileTest, DetectsRaw) {
  TempDir dir;
  auto disk = MakeRaw(dir);
  EXPECT_EQ(disk->Format(), ImageFormat::kRaw);
  EXPECT_EQ(disk->VirtualSize(), kSize);
  EXPECT_FALSE(disk->ReadOnly());
}

TEST(RawFileTest, WriteReadFlush) {
  TempDir dir;
  auto disk = MakeRaw(dir);
  auto data = Pattern(100000, 1);
  auto w = disk->WriteAt(12345, data);
  ASSERT_TRUE(w.ok()) << w.error().ToString();
  EXPECT_EQ(*w, data.size());
  std::vector<uint8_t> back(data.size());
  auto r = disk->ReadAt(12345, back);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(back, data);
  ASSERT_TRUE(disk->Flush().ok());
  auto file = ReadFileBytes(dir.File("disk.img"));
  EXPECT_TRUE(std::equal(data.begin(), data.end(), file.begin() + 12345));
}

TEST(RawFileTest, OutOfRangeAndOverflow) {
  TempDir dir;
  auto disk = MakeRaw(dir);
  std::vector<uint8_t> buf(16);
  EXPECT_FALSE(disk->ReadAt(kSize - 8, buf).ok());
  EXPECT_FALSE(disk->ReadAt(std::numeric_limits<uint64_t>::max() - 4, buf).ok());
  EXPECT_FALSE(disk->WriteAt(kSize, buf).ok());
  EXPECT_FALSE(disk->Discard(std::numeric_limits<uint64_t>::max(), 2).ok());
  EXPECT_FALSE(disk->WriteZeroes(8, std::numeric_limits<uint64_t>::max()).ok());
  EXPECT_TRUE(disk->ReadAt(kSize - 16, buf).ok());
  EXPECT_TRUE(disk->ReadAt(kSize, std::span<uint8_t>()).ok());
}

TEST(RawFileTest, ReadPastEndOfFileWithinSizeReadsZeros) {
  TempDir dir;
  auto disk = MakeRaw(dir);
  ASSERT_TRUE(disk->WriteAt(0, Pattern(kSize, 2)).ok());
  ASSERT_EQ(truncate(dir.File("disk.img").c_str(), kSize / 2), 0);
  std::vector<uint8_t> buf(8192, 0xaa);
  ASSERT_TRUE(disk->ReadAt(kSize / 2 - 4096, buf).ok());
  auto expected = Pattern(kSize, 2);
  EXPECT_TRUE(std::equal(buf.begin(), buf.begin() + 4096, expected.begin() + kSize / 2 - 4096));
  EXPECT_TRUE(std::all_of(buf.begin() + 4096, buf.end(), [](uint8_t b) { return b == 0; }));
}

TEST(RawFileTest, DiscardAndWriteZeroes) {
  TempDir dir;
  auto disk = MakeRaw(dir);
  ASSERT_TRUE(disk->WriteAt(0, Pattern(kSize, 3)).ok());
  ASSERT_TRUE(disk->Discard(1 << 20, 1 << 20).ok());
  ASSERT_TRUE(disk->WriteZeroes(3 << 20, 12345).ok());
  ASSERT_TRUE(disk->Discard(100, 1).ok());  // unaligned
  auto expected = Pattern(kSize, 3);
  std::fill(expected.begin() + (1 << 20), expected.begin() + (2 << 20), 0);
  std::fill(expected.begin() + (3 << 20), expected.begin() + (3 << 20) + 12345, 0);
  expected[100] = 0;
  std::vector<uint8_t> back(kSize);
  ASSERT_TRUE(disk->ReadAt(0, back).ok());
  EXPECT_EQ(back, expected);
  EXPECT_EQ(disk->VirtualSize(), kSize);
  struct stat st;
  ASSERT_EQ(stat(dir.File("disk.img").c_str(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), kSize);
}

TEST(RawFileTest, ReadOnlyRefusesWrites) {
  TempDir dir;
  MakeRaw(dir);
  auto disk = OpenDisk(dir.File("disk.img"), false);
  ASSERT_TRUE(disk.ok()) << disk.error().ToString();
  EXPECT_TRUE((*disk)->ReadOnly());
  std::vector<uint8_t> buf(512, 1);
  auto w = (*disk)->WriteAt(0, buf);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.error().errnum(), EROFS);
  EXPECT_NE(w.error().message().find("read-only"), std::string::npos) << w.error().message();
  EXPECT_NE(w.error().message().find("disk.img"), std::string::npos);
  EXPECT_FALSE((*disk)->Discard(0, 512).ok());
  EXPECT_FALSE((*disk)->WriteZeroes(0, 512).ok());
  EXPECT_FALSE((*disk)->Resize(0).ok());
  EXPECT_TRUE((*disk)->ReadAt(0, buf).ok());
  EXPECT_TRUE((*disk)->Flush().ok());
}

TEST(RawFileTest, Resize) {
  TempDir dir;
  auto disk = MakeRaw(dir);
  ASSERT_TRUE(disk->Resize(2 * kSize).ok());
  EXPECT_EQ(disk->VirtualSize(), 2 * kSize);
  std::vector<uint8_t> data(4096, 7);
  EXPECT_TRUE(disk->WriteAt(2 * kSize - 4096, data).ok());
}

TEST(OpenDiskTest, ErrorsNameThePath) {
  TempDir dir;
  auto missing = OpenDisk(dir.File("missing.img"), false);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().ToString(),
            "cannot open " + dir.File("missing.img") + ": No such file or directory");

  std::string denied;
  if (geteuid() != 0) {
    denied = dir.File("denied.img");
    WriteFileBytes(denied, std::vector<uint8_t>(512));
    chmod(denied.c_str(), 0);
  } else if (access("/sys/kernel/uevent_seqnum", F_OK) == 0) {
    denied = "/sys/kernel/uevent_seqnum";  // root bypasses modes; sysfs still says no
  }
  if (!denied.empty()) {
    auto r = OpenDisk(denied, true);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().ToString(), "cannot open " + denied + ": Permission denied");
  }
}

TEST(OpenDiskTest, WritableImageIsLocked) {
  TempDir dir;
  auto first = MakeRaw(dir);
  auto second = OpenDisk(dir.File("disk.img"), true);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.error().message().find("in use"), std::string::npos);
  auto reader = OpenDisk(dir.File("disk.img"), false);
  EXPECT_FALSE(reader.ok());
  first.reset();
  EXPECT_TRUE(OpenDisk(dir.File("disk.img"), false).ok());
}

TEST(DetectFormatTest, Magic) {
  TempDir dir;
  WriteFileBytes(dir.File("q"), {'Q', 'F', 'I', 0xfb, 0, 0, 0, 3});
  WriteFileBytes(dir.File("r"), {'Q', 'F', 'I'});
  WriteFileBytes(dir.File("e"), {});
  for (auto [name, format] :
       {std::pair{"q", ImageFormat::kQcow2}, std::pair{"r", ImageFormat::kRaw},
        std::pair{"e", ImageFormat::kRaw}}) {
    base::ScopedFd fd(open(dir.File(name).c_str(), O_RDONLY | O_CLOEXEC));
    auto f = DetectFormat(fd.get());
    ASSERT_TRUE(f.ok());
    EXPECT_EQ(*f, format) << name;
  }
}

}  // namespace
}  // namespace crosvm::disk
