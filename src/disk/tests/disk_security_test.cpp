// How images are opened when their bytes may have been written by a guest: probed images never
// follow backing files, probed writable raw images keep sector 0 from turning into another
// format's header, and backing files of trusted (format=qcow2) images stay regular files inside
// the allowed directory, opened as the format their naming image gives.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "disk/disk.h"
#include "disk/qcow.h"
#include "disk/tests/test_util.h"

namespace crosvm::disk {
namespace {

using testing::PatchBe;
using testing::Pattern;
using testing::QcowAttackSector;
using testing::ReadFileBytes;
using testing::RunCommand;
using testing::TempDir;
using testing::WriteFileBytes;

constexpr uint64_t kMiB = 1 << 20;

OpenOptions Qcow2(bool writable = false, std::optional<std::string> backing_dir = std::nullopt) {
  return OpenOptions{writable, ImageFormat::kQcow2, std::move(backing_dir)};
}

std::vector<uint8_t> Read(DiskFile& disk, uint64_t offset, size_t size) {
  std::vector<uint8_t> out(size);
  auto r = disk.ReadAt(offset, out);
  EXPECT_TRUE(r.ok()) << r.error().ToString();
  return out;
}

// A qcow2 image that names `backing` (as written) with an optional backing format extension.
void MakeOverlay(const std::string& path, uint64_t size, const std::string& backing,
                 const std::string& format) {
  unlink(path.c_str());
  ASSERT_TRUE(CreateQcow2(path, size).ok());
  auto bytes = ReadFileBytes(path);
  std::copy(backing.begin(), backing.end(), bytes.begin() + 1024);
  if (!format.empty()) {
    uint8_t ext[8] = {0xe2, 0x79, 0x2a, 0xca, 0, 0, 0, static_cast<uint8_t>(format.size())};
    std::copy(ext, ext + 8, bytes.begin() + 112);
    std::copy(format.begin(), format.end(), bytes.begin() + 120);
    std::fill_n(bytes.begin() + 120 + static_cast<ptrdiff_t>((format.size() + 7) & ~size_t{7}), 8,
                0);
  }
  WriteFileBytes(path, bytes);
  PatchBe(path, 8, 1024, 8);
  PatchBe(path, 16, backing.size(), 4);
}

std::string ErrorOf(const Result<std::unique_ptr<DiskFile>>& r) {
  return r.ok() ? std::string("(opened)") : r.error().ToString();
}

#define EXPECT_REFUSED(result, text)                                                  \
  do {                                                                                \
    auto&& r_ = (result);                                                             \
    EXPECT_FALSE(r_.ok());                                                            \
    EXPECT_NE(ErrorOf(r_).find(text), std::string::npos) << "error: " << ErrorOf(r_); \
  } while (0)

// ---------------------------------------------------------------------------------------------
// The attack and the probing rules

// A guest with a writable raw disk writes a qcow2 header naming a host file into sector 0.
TEST(DiskSecurityTest, GuestCannotTurnRawIntoQcowThroughSectorZero) {
  TempDir dir;
  const std::string path = dir.File("raw.img");
  WriteFileBytes(path, std::vector<uint8_t>(kMiB, 0));
  {
    auto disk = OpenDisk(path, true);
    ASSERT_TRUE(disk.ok()) << disk.error().ToString();
    auto w = (*disk)->WriteAt(0, QcowAttackSector("/etc/shadow", kMiB));
    ASSERT_FALSE(w.ok());
    EXPECT_EQ(w.error().errnum(), EPERM);
    EXPECT_NE(w.error().message().find("look like qcow2"), std::string::npos)
        << w.error().message();
    // Built from two writes that are harmless one by one: refused too.
    auto sector = QcowAttackSector("/etc/shadow", kMiB);
    std::vector<uint8_t> first(sector.begin(), sector.begin() + 2);
    std::vector<uint8_t> rest(sector.begin() + 2, sector.end());
    EXPECT_TRUE((*disk)->WriteAt(0, first).ok());
    EXPECT_FALSE((*disk)->WriteAt(2, rest).ok());
    // Anything else goes through, sector 0 included.
    EXPECT_TRUE((*disk)->WriteAt(0, Pattern(4096, 1)).ok());
    EXPECT_TRUE((*disk)->WriteAt(512, sector).ok());
    EXPECT_TRUE((*disk)->WriteZeroes(0, 512).ok());
  }
  auto again = OpenDisk(path, false);
  ASSERT_TRUE(again.ok()) << again.error().ToString();
  EXPECT_EQ((*again)->Format(), ImageFormat::kRaw);
}

TEST(DiskSecurityTest, ZeroingCannotCompleteAHeader) {
  TempDir dir;
  const std::string path = dir.File("raw.img");
  WriteFileBytes(path, std::vector<uint8_t>(kMiB, 0));
  auto disk = OpenDisk(path, true);
  ASSERT_TRUE(disk.ok()) << disk.error().ToString();
  const std::vector<uint8_t> almost = {'Q', 'E', 'D', 'x'};  // "QED\0" is the QED magic
  ASSERT_TRUE((*disk)->WriteAt(0, almost).ok());
  EXPECT_FALSE((*disk)->WriteZeroes(3, 1).ok());
  EXPECT_FALSE((*disk)->Discard(3, 100).ok());
  EXPECT_EQ(Read(**disk, 0, 4), almost);
  EXPECT_TRUE((*disk)->WriteZeroes(0, 512).ok());  // the whole sector: zeros are no header
  EXPECT_TRUE((*disk)->Discard(512, 4096).ok());
}

TEST(DiskSecurityTest, GuardKnowsOtherFormats) {
  std::vector<uint8_t> s(512, 0);
  EXPECT_EQ(ProbedImageFormat(s), nullptr);
  std::copy_n("KDMV", 4, s.begin());
  EXPECT_STREQ(ProbedImageFormat(s), "vmdk");
  std::fill(s.begin(), s.end(), 0);
  s[0x40] = 0x7f, s[0x41] = 0x10, s[0x42] = 0xda, s[0x43] = 0xbe;
  EXPECT_STREQ(ProbedImageFormat(s), "vdi");
  std::fill(s.begin(), s.end(), 0);
  std::copy_n("conectix", 8, s.begin());
  EXPECT_STREQ(ProbedImageFormat(s), "vpc");
  EXPECT_EQ(ProbedImageFormat(std::span<const uint8_t>(s).first(4)), nullptr);  // too short
}

TEST(DiskSecurityTest, ExplicitRawAcceptsAnyWrite) {
  TempDir dir;
  const std::string path = dir.File("raw.img");
  WriteFileBytes(path, std::vector<uint8_t>(kMiB, 0));
  auto disk = OpenDisk(path, OpenOptions{true, ImageFormat::kRaw, std::nullopt});
  ASSERT_TRUE(disk.ok()) << disk.error().ToString();
  const auto sector = QcowAttackSector("/etc/shadow", kMiB);
  ASSERT_TRUE((*disk)->WriteAt(0, sector).ok());
  EXPECT_EQ(Read(**disk, 0, 512), sector);
  disk->reset();
  // Opened as raw again, it is still just bytes.
  auto raw = OpenDisk(path, OpenOptions{false, ImageFormat::kRaw, std::nullopt});
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ((*raw)->Format(), ImageFormat::kRaw);
  EXPECT_EQ(Read(**raw, 0, 512), sector);
}

// The second line of defence: a raw image that holds such a header (written while it was opened
// with format=raw, or by another program) is refused when probed, with the option that allows it.
TEST(DiskSecurityTest, ProbedQcowWithBackingFileIsRefused) {
  TempDir dir;
  const std::string path = dir.File("b.img");
  auto bytes = std::vector<uint8_t>(kMiB, 0);
  auto sector = QcowAttackSector("/etc/shadow", kMiB);
  std::copy(sector.begin(), sector.end(), bytes.begin());
  WriteFileBytes(path, bytes);
  for (bool writable : {false, true}) {
    auto r = OpenDisk(path, writable);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().ToString(),
              path +
                  ": probed as qcow2 with backing file /etc/shadow; a probed image never follows a "
                  "backing file: pass format=qcow2 (and backing=DIR) if you trust this image");
  }
  // format=qcow2 does not help here: /etc is not the image's directory.
  EXPECT_REFUSED(OpenDisk(path, Qcow2()), "outside the directory allowed for backing files");
  // Non-printable bytes in the name do not reach the one-line message.
  auto evil = QcowAttackSector("/etc/x\n\x1b[2J", kMiB);
  std::copy(evil.begin(), evil.end(), bytes.begin());
  WriteFileBytes(path, bytes);
  EXPECT_REFUSED(OpenDisk(path, false), "backing file /etc/x??[2J;");
}

TEST(DiskSecurityTest, ProbedQcowWithoutBackingFileOpens) {
  TempDir dir;
  ASSERT_TRUE(CreateQcow2(dir.File("a.qcow2"), kMiB).ok());
  auto r = OpenDisk(dir.File("a.qcow2"), true);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ((*r)->Format(), ImageFormat::kQcow2);
}

TEST(DiskSecurityTest, BackingDirNeedsQcow2) {
  TempDir dir;
  WriteFileBytes(dir.File("raw.img"), std::vector<uint8_t>(4096, 0));
  EXPECT_REFUSED(OpenDisk(dir.File("raw.img"), OpenOptions{false, std::nullopt, dir.path()}),
                 "backing=DIR needs format=qcow2");
  EXPECT_REFUSED(OpenDisk(dir.File("raw.img"), OpenOptions{false, ImageFormat::kRaw, dir.path()}),
                 "backing=DIR needs format=qcow2");
}

TEST(DiskSecurityTest, Qcow2FormatOnRawFileFails) {
  TempDir dir;
  WriteFileBytes(dir.File("raw.img"), std::vector<uint8_t>(4096, 0));
  EXPECT_REFUSED(OpenDisk(dir.File("raw.img"), Qcow2()), "not a qcow2 image");
}

// ---------------------------------------------------------------------------------------------
// Backing files of trusted images

TEST(DiskSecurityTest, ChainRawQcowQcow) {
  TempDir dir;
  const auto base = Pattern(2 * kMiB, 10);
  WriteFileBytes(dir.File("base.raw"), base);
  MakeOverlay(dir.File("mid.qcow2"), 2 * kMiB, "base.raw", "raw");
  {
    auto mid = OpenDisk(dir.File("mid.qcow2"), Qcow2(true));
    ASSERT_TRUE(mid.ok()) << mid.error().ToString();
    ASSERT_TRUE((*mid)->WriteAt(100000, Pattern(5000, 11)).ok());
  }
  MakeOverlay(dir.File("top.qcow2"), 2 * kMiB, dir.File("mid.qcow2"), "qcow2");  // absolute
  auto top = OpenDisk(dir.File("top.qcow2"), Qcow2(true));
  ASSERT_TRUE(top.ok()) << top.error().ToString();
  auto expected = base;
  auto patch = Pattern(5000, 11);
  std::copy(patch.begin(), patch.end(), expected.begin() + 100000);
  EXPECT_EQ(Read(**top, 0, expected.size()), expected);
  // Probed, the same top image is refused.
  top->reset();
  EXPECT_REFUSED(OpenDisk(dir.File("top.qcow2"), true), "never follows a backing file");
}

TEST(DiskSecurityTest, BackingFormatComesFromTheExtension) {
  TempDir dir;
  ASSERT_TRUE(CreateQcow2(dir.File("base.qcow2"), kMiB).ok());
  {
    auto b = OpenDisk(dir.File("base.qcow2"), true);
    ASSERT_TRUE(b.ok());
    ASSERT_TRUE((*b)->WriteAt(0, std::vector<uint8_t>(4096, 0x5a)).ok());
  }
  const auto base_bytes = ReadFileBytes(dir.File("base.qcow2"));
  // Extension "qcow2": the data.
  MakeOverlay(dir.File("q.qcow2"), kMiB, "base.qcow2", "qcow2");
  auto q = OpenDisk(dir.File("q.qcow2"), Qcow2());
  ASSERT_TRUE(q.ok()) << q.error().ToString();
  EXPECT_EQ(Read(**q, 0, 4096), std::vector<uint8_t>(4096, 0x5a));
  // Extension "raw": the file's bytes, qcow2 header and all.
  MakeOverlay(dir.File("r.qcow2"), kMiB, "base.qcow2", "raw");
  auto r = OpenDisk(dir.File("r.qcow2"), Qcow2());
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(Read(**r, 0, 4096),
            std::vector<uint8_t>(base_bytes.begin(), base_bytes.begin() + 4096));
  // No extension: raw as well, never probed.
  MakeOverlay(dir.File("n.qcow2"), kMiB, "base.qcow2", "");
  auto n = OpenDisk(dir.File("n.qcow2"), Qcow2());
  ASSERT_TRUE(n.ok()) << n.error().ToString();
  EXPECT_EQ(Read(**n, 0, 4096),
            std::vector<uint8_t>(base_bytes.begin(), base_bytes.begin() + 4096));
  // Unknown formats are refused.
  MakeOverlay(dir.File("v.qcow2"), kMiB, "base.qcow2", "vmdk");
  EXPECT_REFUSED(OpenDisk(dir.File("v.qcow2"), Qcow2()), "backing file format 'vmdk'");
}

TEST(DiskSecurityTest, BackingPathsInsideAndOutsideTheAllowedDirectory) {
  TempDir dir;
  TempDir other;
  WriteFileBytes(dir.File("base.raw"), Pattern(kMiB, 20));
  ASSERT_EQ(mkdir(dir.File("sub").c_str(), 0755), 0);
  WriteFileBytes(dir.File("sub/base.raw"), Pattern(kMiB, 21));
  WriteFileBytes(other.File("base.raw"), Pattern(kMiB, 22));

  struct Case {
    std::string name;
    bool allowed;
    uint64_t seed;
  };
  const std::vector<Case> cases = {
      {"base.raw", true, 20},
      {"./sub/base.raw", true, 21},
      {"sub/../base.raw", true, 20},
      {dir.File("base.raw"), true, 20},      // absolute, inside
      {dir.File("sub/base.raw"), true, 21},  // absolute, in a subdirectory
      {other.File("base.raw"), false, 0},    // absolute, outside
      {"../" + other.path().substr(other.path().rfind('/') + 1) + "/base.raw", false, 0},
      {"../../../../../../../../etc/passwd", false, 0},
      {"/etc/passwd", false, 0},
      {".", false, 0},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    MakeOverlay(dir.File("o.qcow2"), kMiB, c.name, "raw");
    auto r = OpenDisk(dir.File("o.qcow2"), Qcow2());
    if (c.allowed) {
      ASSERT_TRUE(r.ok()) << r.error().ToString();
      EXPECT_EQ(Read(**r, 0, kMiB), Pattern(kMiB, c.seed));
    } else {
      EXPECT_FALSE(r.ok());
    }
  }
  // backing=DIR allows exactly that directory.
  MakeOverlay(dir.File("o.qcow2"), kMiB, other.File("base.raw"), "raw");
  EXPECT_REFUSED(OpenDisk(dir.File("o.qcow2"), Qcow2()),
                 "is outside the directory allowed for backing files (pass backing=DIR");
  auto r = OpenDisk(dir.File("o.qcow2"), Qcow2(false, other.path()));
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(Read(**r, 0, kMiB), Pattern(kMiB, 22));
  // With backing=other, the image's own directory is no longer allowed.
  MakeOverlay(dir.File("o.qcow2"), kMiB, "base.raw", "raw");
  EXPECT_REFUSED(OpenDisk(dir.File("o.qcow2"), Qcow2(false, other.path())),
                 "outside the directory allowed");
}

TEST(DiskSecurityTest, EveryLinkObeysTheRules) {
  TempDir dir;
  WriteFileBytes(dir.File("base.raw"), Pattern(kMiB, 30));
  // mid (inside) names /etc/passwd: the chain is refused at that link.
  MakeOverlay(dir.File("mid.qcow2"), kMiB, "/etc/passwd", "raw");
  MakeOverlay(dir.File("top.qcow2"), kMiB, "mid.qcow2", "qcow2");
  EXPECT_REFUSED(OpenDisk(dir.File("top.qcow2"), Qcow2()), "/etc/passwd is outside");
  // A subdirectory's image resolves its relative names against its own directory.
  ASSERT_EQ(mkdir(dir.File("sub").c_str(), 0755), 0);
  WriteFileBytes(dir.File("sub/base.raw"), Pattern(kMiB, 31));
  MakeOverlay(dir.File("sub/mid.qcow2"), kMiB, "base.raw", "raw");
  MakeOverlay(dir.File("top.qcow2"), kMiB, "sub/mid.qcow2", "qcow2");
  auto r = OpenDisk(dir.File("top.qcow2"), Qcow2());
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(Read(**r, 0, kMiB), Pattern(kMiB, 31));
  // And may not climb out through "..".
  MakeOverlay(dir.File("sub/mid.qcow2"), kMiB, "../../x.raw", "raw");
  EXPECT_REFUSED(OpenDisk(dir.File("top.qcow2"), Qcow2()), "outside the directory allowed");
  // Depth is bounded.
  MakeOverlay(dir.File("loop.qcow2"), kMiB, "loop.qcow2", "qcow2");
  EXPECT_REFUSED(OpenDisk(dir.File("loop.qcow2"), Qcow2()), "too deep");
}

TEST(DiskSecurityTest, SymlinksMayNotEscape) {
  TempDir dir;
  TempDir other;
  WriteFileBytes(other.File("secret.raw"), Pattern(kMiB, 40));
  WriteFileBytes(dir.File("base.raw"), Pattern(kMiB, 41));
  ASSERT_EQ(symlink(other.File("secret.raw").c_str(), dir.File("abs-link.raw").c_str()), 0);
  const std::string up = "../" + other.path().substr(other.path().rfind('/') + 1) + "/secret.raw";
  ASSERT_EQ(symlink(up.c_str(), dir.File("rel-link.raw").c_str()), 0);
  ASSERT_EQ(symlink("/etc", dir.File("etc").c_str()), 0);
  ASSERT_EQ(symlink("base.raw", dir.File("inside-link.raw").c_str()), 0);
  for (const std::string name : {"abs-link.raw", "rel-link.raw", "etc/passwd"}) {
    SCOPED_TRACE(name);
    MakeOverlay(dir.File("o.qcow2"), kMiB, name, "raw");
    EXPECT_REFUSED(OpenDisk(dir.File("o.qcow2"), Qcow2()), "a symbolic link leads outside");
  }
  // A link that stays inside is fine.
  MakeOverlay(dir.File("o.qcow2"), kMiB, "inside-link.raw", "raw");
  auto r = OpenDisk(dir.File("o.qcow2"), Qcow2());
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(Read(**r, 0, kMiB), Pattern(kMiB, 41));
}

TEST(DiskSecurityTest, BackingFileMustBeARegularFile) {
  TempDir dir;
  // A character device and a directory inside the allowed directory (backing=/dev).
  MakeOverlay(dir.File("o.qcow2"), kMiB, "/dev/zero", "raw");
  EXPECT_REFUSED(OpenDisk(dir.File("o.qcow2"), Qcow2(false, "/dev")),
                 "must be a regular file (this is a character device)");
  ASSERT_EQ(mkdir(dir.File("d").c_str(), 0755), 0);
  MakeOverlay(dir.File("o.qcow2"), kMiB, "d", "raw");
  EXPECT_REFUSED(OpenDisk(dir.File("o.qcow2"), Qcow2()), "must be a regular file");
  // A FIFO does not block the open.
  ASSERT_EQ(mkfifo(dir.File("fifo").c_str(), 0644), 0);
  MakeOverlay(dir.File("o.qcow2"), kMiB, "fifo", "raw");
  EXPECT_REFUSED(OpenDisk(dir.File("o.qcow2"), Qcow2()), "must be a regular file");

  // A block device: the first one under /dev.
  std::string block;
  if (DIR* d = opendir("/dev")) {
    while (dirent* e = readdir(d)) {
      struct stat st;
      std::string p = std::string("/dev/") + e->d_name;
      if (stat(p.c_str(), &st) == 0 && S_ISBLK(st.st_mode)) {
        block = p;
        break;
      }
    }
    closedir(d);
  }
  if (block.empty()) GTEST_SKIP() << "no block device under /dev: block-device case not run";
  SCOPED_TRACE(block);
  MakeOverlay(dir.File("o.qcow2"), kMiB, block, "raw");
  auto r = OpenDisk(dir.File("o.qcow2"), Qcow2(false, "/dev"));
  ASSERT_FALSE(r.ok());
  const std::string e = r.error().ToString();
  // Opening may fail first where the device is not readable; either way it is never used.
  EXPECT_TRUE(e.find("must be a regular file (this is a block device)") != std::string::npos ||
              e.find("cannot open " + block) != std::string::npos)
      << e;
}

// qemu-img's own overlays (with -F, which writes the backing format extension).
TEST(DiskSecurityTest, QemuImgOverlaysWithBackingFormat) {
  ASSERT_TRUE(testing::HaveQemuTools()) << "qemu-img not found: install qemu-utils";
  TempDir dir;
  WriteFileBytes(dir.File("base.raw"), Pattern(2 * kMiB, 50));
  auto sh = [](const std::string& c) {
    auto r = RunCommand(c);
    ASSERT_EQ(r.exit_code, 0) << c << "\n" << r.output;
  };
  sh("cd '" + dir.path() + "' && qemu-img create -f qcow2 -b base.raw -F raw mid.qcow2 2M");
  sh("qemu-io -f qcow2 -c 'write -P 0x61 64k 64k' '" + dir.File("mid.qcow2") + "'");
  sh("cd '" + dir.path() + "' && qemu-img create -f qcow2 -b '" + dir.File("mid.qcow2") +
     "' -F qcow2 top.qcow2 2M");
  auto expected = Pattern(2 * kMiB, 50);
  std::fill_n(expected.begin() + 65536, 65536, 0x61);
  {
    auto top = OpenDisk(dir.File("top.qcow2"), Qcow2(true));
    ASSERT_TRUE(top.ok()) << top.error().ToString();
    EXPECT_EQ(Read(**top, 0, expected.size()), expected);
    ASSERT_TRUE((*top)->WriteAt(0, std::vector<uint8_t>(512, 0x62)).ok());
  }
  std::fill_n(expected.begin(), 512, 0x62);
  EXPECT_EQ(testing::QemuCheck(dir.File("top.qcow2")), "");
  auto top = OpenDisk(dir.File("top.qcow2"), Qcow2());
  ASSERT_TRUE(top.ok());
  EXPECT_EQ(Read(**top, 0, expected.size()), expected);
  // Probed, qemu-img's overlay is refused like any other image with a backing file.
  EXPECT_REFUSED(OpenDisk(dir.File("top.qcow2"), false), "probed as qcow2 with backing file");
}

}  // namespace
}  // namespace crosvm::disk
