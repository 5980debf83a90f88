// Interoperability with QEMU's qemu-img and qemu-io (Debian's qemu-utils, a declared dependency:
// these tests fail when the tools are missing).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <random>

#include "disk/disk.h"
#include "disk/qcow.h"
#include "disk/tests/test_util.h"

namespace crosvm::disk {
namespace {

using testing::HaveQemuTools;
using testing::PatchBe;
using testing::Pattern;
using testing::QemuCheck;
using testing::ReadBe;
using testing::ReadFileBytes;
using testing::RunCommand;
using testing::TempDir;
using testing::WriteFileBytes;

class InteropTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(HaveQemuTools()) << "qemu-img/qemu-io not found: install qemu-utils "
                                    "(scripts/deps.sh)";
  }

  void Sh(const std::string& command) {
    auto r = RunCommand(command);
    ASSERT_EQ(r.exit_code, 0) << command << "\n" << r.output;
  }

  // As a user opens a trusted qcow2 image: format=qcow2.
  std::unique_ptr<DiskFile> Open(const std::string& path, bool writable = true) {
    auto disk = OpenDisk(path, OpenOptions{writable, ImageFormat::kQcow2, std::nullopt});
    EXPECT_TRUE(disk.ok()) << disk.error().ToString();
    if (!disk.ok()) return nullptr;
    return std::move(*disk);
  }

  // qemu-img compare of `image` against the raw bytes `expected`.
  void ExpectSameAs(const std::string& image, const std::vector<uint8_t>& expected) {
    std::string raw = dir_.File("expected.raw");
    WriteFileBytes(raw, expected);
    auto r = RunCommand("qemu-img compare -f raw -F qcow2 '" + raw + "' '" + image + "'");
    EXPECT_EQ(r.exit_code, 0) << r.output;
    unlink(raw.c_str());
  }

  TempDir dir_;
};

// Writes to both a DiskFile and an in-memory copy of what it should hold.
class Mirror {
 public:
  Mirror(DiskFile* disk, std::vector<uint8_t> initial) : disk_(disk), bytes_(std::move(initial)) {}
  void set_disk(DiskFile* disk) { disk_ = disk; }
  const std::vector<uint8_t>& bytes() const { return bytes_; }

  void Write(uint64_t offset, const std::vector<uint8_t>& data) {
    auto r = disk_->WriteAt(offset, data);
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    std::copy(data.begin(), data.end(), bytes_.begin() + static_cast<ptrdiff_t>(offset));
  }
  void Zero(uint64_t offset, uint64_t length, bool discard) {
    auto st = discard ? disk_->Discard(offset, length) : disk_->WriteZeroes(offset, length);
    ASSERT_TRUE(st.ok()) << st.error().ToString();
    std::fill_n(bytes_.begin() + static_cast<ptrdiff_t>(offset), length, 0);
  }
  void Check(uint64_t offset, uint64_t length) {
    std::vector<uint8_t> buf(length);
    auto r = disk_->ReadAt(offset, buf);
    ASSERT_TRUE(r.ok()) << r.error().ToString();
    ASSERT_TRUE(std::equal(buf.begin(), buf.end(), bytes_.begin() + static_cast<ptrdiff_t>(offset)))
        << "mismatch in [" << offset << ", " << offset + length << ")";
  }
  void CheckAll() { Check(0, bytes_.size()); }

 private:
  DiskFile* disk_;
  std::vector<uint8_t> bytes_;
};

// A seeded random sequence of writes, discards, zeroings, flushes and reopens.
void RandomOps(const std::string& path, Mirror& mirror, std::unique_ptr<DiskFile>& disk,
               uint64_t seed, int ops, uint64_t max_length) {
  std::mt19937_64 rng(seed);
  const uint64_t size = mirror.bytes().size();
  for (int i = 0; i < ops; ++i) {
    const uint64_t length = 1 + rng() % max_length;
    // Bias towards a few hot regions so that overwrites, re-discards and reuse happen.
    uint64_t offset =
        rng() % 4 == 0 ? rng() % size : (rng() % 8) * (size / 8) + rng() % (size / 16);
    offset = std::min(offset, size - std::min(length, size));
    const uint64_t n = std::min(length, size - offset);
    switch (rng() % 10) {
      case 0:
      case 1:
      case 2:
      case 3:
        mirror.Write(offset, Pattern(n, rng()));
        break;
      case 4:
        mirror.Write(offset & ~uint64_t{511}, Pattern(std::min<uint64_t>(n, 4096), rng()));
        break;
      case 5:
      case 6:
        mirror.Zero(offset, n, /*discard=*/true);
        break;
      case 7:
        mirror.Zero(offset, n, /*discard=*/false);
        break;
      case 8: {
        if (rng() % 3 != 0) break;  // flushes cost fdatasyncs: keep them rarer
        auto st = disk->Flush();
        ASSERT_TRUE(st.ok()) << st.error().ToString();
        break;
      }
      case 9:
        if (rng() % 8 == 0) {
          disk.reset();
          auto reopened = OpenDisk(path, OpenOptions{true, ImageFormat::kQcow2, std::nullopt});
          ASSERT_TRUE(reopened.ok()) << reopened.error().ToString();
          disk = std::move(*reopened);
          mirror.set_disk(disk.get());
        }
        break;
    }
    if (::testing::Test::HasFatalFailure()) return;
    mirror.Check(offset, n);
    if (::testing::Test::HasFatalFailure()) return;
  }
  mirror.CheckAll();
}

TEST_F(InteropTest, QemuCreatedImageReadAndWritten) {
  const std::string path = dir_.File("q.qcow2");
  Sh("qemu-img create -f qcow2 '" + path + "' 64M");
  auto disk = Open(path);
  ASSERT_TRUE(disk);
  ASSERT_EQ(disk->VirtualSize(), uint64_t{64} << 20);
  Mirror m(disk.get(), std::vector<uint8_t>(64 << 20, 0));
  m.CheckAll();
  m.Write(0, Pattern(1 << 20, 1));
  m.Write(65536 - 100, Pattern(200, 2));
  m.Write((32 << 20) + 12345, Pattern(3 << 20, 3));
  m.Write((64 << 20) - 4096, Pattern(4096, 4));
  m.Zero(1000, 200000, true);
  m.Zero(33 << 20, 65536 * 3, false);
  m.CheckAll();
  ASSERT_TRUE(disk->Flush().ok());
  disk.reset();
  EXPECT_EQ(QemuCheck(path), "");
  ExpectSameAs(path, m.bytes());
}

TEST_F(InteropTest, CreatedImagePassesQemuChecks) {
  const std::string path = dir_.File("c.qcow2");
  ASSERT_TRUE(CreateQcow2(path, 64 << 20).ok());
  EXPECT_EQ(QemuCheck(path), "");
  auto info = RunCommand("qemu-img info '" + path + "'");
  ASSERT_EQ(info.exit_code, 0) << info.output;
  EXPECT_NE(info.output.find("file format: qcow2"), std::string::npos) << info.output;
  EXPECT_NE(info.output.find("virtual size: 64 MiB"), std::string::npos) << info.output;
  EXPECT_NE(info.output.find("cluster_size: 65536"), std::string::npos) << info.output;
  EXPECT_NE(info.output.find("compat: 1.1"), std::string::npos) << info.output;
  EXPECT_NE(info.output.find("refcount bits: 16"), std::string::npos) << info.output;

  auto disk = Open(path);
  ASSERT_TRUE(disk);
  Mirror m(disk.get(), std::vector<uint8_t>(64 << 20, 0));
  m.Write(0, Pattern(5 << 20, 10));
  m.Write(40 << 20, Pattern(70000, 11));
  m.Zero(2 << 20, 1 << 20, true);
  m.Zero(40 << 20, 1000, false);
  disk.reset();
  EXPECT_EQ(QemuCheck(path), "");
  ExpectSameAs(path, m.bytes());
  // And qemu can keep writing where we left off.
  Sh("qemu-io -f qcow2 -c 'write -P 0x33 50M 1M' '" + path + "'");
  auto expected = m.bytes();
  std::fill_n(expected.begin() + (50 << 20), 1 << 20, 0x33);
  disk = Open(path, false);
  Mirror check(disk.get(), expected);
  check.CheckAll();
}

TEST_F(InteropTest, QemuIoWrittenImageReadsBack) {
  const std::string path = dir_.File("w.qcow2");
  Sh("qemu-img create -f qcow2 '" + path + "' 64M");
  Sh("qemu-io -f qcow2 -c 'write -P 0x5a 0 1M' -c 'write -P 0xa5 1536k 100k' "
     "-c 'write -z 512k 64k' -c 'discard 1600k 64k' '" +
     path + "'");
  std::vector<uint8_t> expected(64 << 20, 0);
  std::fill_n(expected.begin(), 1 << 20, 0x5a);
  std::fill_n(expected.begin() + (1536 << 10), 100 << 10, 0xa5);
  std::fill_n(expected.begin() + (512 << 10), 64 << 10, 0);
  std::fill_n(expected.begin() + (1600 << 10), 64 << 10, 0);
  auto disk = Open(path, false);
  ASSERT_TRUE(disk);
  Mirror m(disk.get(), expected);
  m.CheckAll();
}

TEST_F(InteropTest, CompressedClusters) {
  // Compressible contents: runs of repeated bytes with some noise.
  std::vector<uint8_t> raw(8 << 20);
  for (size_t i = 0; i < raw.size(); ++i)
    raw[i] = static_cast<uint8_t>((i / 1000) * 7 + (i % 13 == 0));
  auto noise = Pattern(200000, 20);
  std::copy(noise.begin(), noise.end(), raw.begin() + (3 << 20));
  WriteFileBytes(dir_.File("src.raw"), raw);
  const std::string path = dir_.File("z.qcow2");
  Sh("qemu-img convert -c -f raw -O qcow2 '" + dir_.File("src.raw") + "' '" + path + "'");
  auto check = RunCommand("qemu-img check '" + path + "'");
  ASSERT_NE(check.output.find("% compressed clusters"), std::string::npos) << check.output;
  ASSERT_EQ(check.output.find(" 0.00% compressed clusters"), std::string::npos) << check.output;

  auto disk = Open(path);
  ASSERT_TRUE(disk);
  Mirror m(disk.get(), raw);
  m.CheckAll();
  // Partial writes into compressed clusters copy them uncompressed; discards free them.
  m.Write(100, Pattern(1000, 21));
  m.Write((1 << 20) + 65000, Pattern(100000, 22));
  m.Zero(5 << 20, 300000, true);
  m.Zero((6 << 20) + 5, 10, false);
  m.CheckAll();
  disk.reset();
  EXPECT_EQ(QemuCheck(path), "");
  ExpectSameAs(path, m.bytes());
}

TEST_F(InteropTest, Version2Image) {
  const std::string path = dir_.File("v2.qcow2");
  Sh("qemu-img create -f qcow2 -o compat=0.10 '" + path + "' 32M");
  Sh("qemu-io -f qcow2 -c 'write -P 0x11 0 2M' '" + path + "'");
  auto disk = Open(path);
  ASSERT_TRUE(disk);
  std::vector<uint8_t> initial(32 << 20, 0);
  std::fill_n(initial.begin(), 2 << 20, 0x11);
  Mirror m(disk.get(), initial);
  RandomOps(path, m, disk, 7, 300, 200000);
  if (HasFatalFailure()) return;
  disk.reset();
  EXPECT_EQ(QemuCheck(path), "");
  ExpectSameAs(path, m.bytes());
}

TEST_F(InteropTest, ClusterSizesAndRefcountWidths) {
  struct Variant {
    const char* options;
    int ops;
  };
  for (Variant v : {Variant{"cluster_size=512", 300}, Variant{"cluster_size=2M", 100},
                    Variant{"refcount_bits=8", 150}, Variant{"refcount_bits=32", 150},
                    Variant{"refcount_bits=64,cluster_size=4096", 200}}) {
    SCOPED_TRACE(v.options);
    const std::string path = dir_.File("v.qcow2");
    unlink(path.c_str());
    Sh(std::string("qemu-img create -f qcow2 -o ") + v.options + " '" + path + "' 16M");
    auto disk = Open(path);
    ASSERT_TRUE(disk);
    Mirror m(disk.get(), std::vector<uint8_t>(16 << 20, 0));
    RandomOps(path, m, disk, 11, v.ops, 150000);
    if (HasFatalFailure()) return;
    disk.reset();
    EXPECT_EQ(QemuCheck(path), "");
    ExpectSameAs(path, m.bytes());
  }
}

TEST_F(InteropTest, NarrowRefcountsRefused) {
  const std::string path = dir_.File("r1.qcow2");
  Sh("qemu-img create -f qcow2 -o refcount_bits=1 '" + path + "' 16M");
  auto r = OpenDisk(path, false);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("1-bit refcounts"), std::string::npos) << r.error().message();
}

TEST_F(InteropTest, RefcountTableGrowth) {
  // 512-byte clusters: each refcount block covers 128 KiB and the table one cluster of blocks,
  // so a few MiB of writes grow the refcount table several times.
  const std::string path = dir_.File("g.qcow2");
  Sh("qemu-img create -f qcow2 -o cluster_size=512 '" + path + "' 64M");
  auto disk = Open(path);
  ASSERT_TRUE(disk);
  Mirror m(disk.get(), std::vector<uint8_t>(64 << 20, 0));
  for (int i = 0; i < 24; ++i) m.Write(uint64_t(i) * (2 << 20) + 1000, Pattern(300000, 30 + i));
  m.CheckAll();
  disk.reset();
  EXPECT_EQ(QemuCheck(path), "");
  ExpectSameAs(path, m.bytes());
}

TEST_F(InteropTest, InternalSnapshotKeptIntact) {
  const std::string path = dir_.File("s.qcow2");
  Sh("qemu-img create -f qcow2 '" + path + "' 16M");
  Sh("qemu-io -f qcow2 -c 'write -P 0x77 0 4M' '" + path + "'");
  Sh("qemu-img snapshot -c snap1 '" + path + "'");
  auto disk = Open(path);
  ASSERT_TRUE(disk);
  std::vector<uint8_t> original(16 << 20, 0);
  std::fill_n(original.begin(), 4 << 20, 0x77);
  Mirror m(disk.get(), original);
  m.Write(1000, Pattern(100000, 40));    // shared clusters: copy on write
  m.Zero(2 << 20, 1 << 20, true);        // shared clusters: dropped from the active image only
  m.Write(8 << 20, Pattern(65536, 41));  // fresh clusters
  m.CheckAll();
  disk.reset();
  EXPECT_EQ(QemuCheck(path), "");
  ExpectSameAs(path, m.bytes());
  Sh("qemu-img convert -f qcow2 -l snapshot.name=snap1 -O raw '" + path + "' '" +
     dir_.File("snap.raw") + "'");
  EXPECT_EQ(ReadFileBytes(dir_.File("snap.raw")), original);
}

TEST_F(InteropTest, QemuMadeOverlay) {
  const std::string base = dir_.File("base.qcow2");
  const std::string top = dir_.File("top.qcow2");
  Sh("qemu-img create -f qcow2 '" + base + "' 8M");
  Sh("qemu-io -f qcow2 -c 'write -P 0x42 0 8M' '" + base + "'");
  Sh("qemu-img create -f qcow2 -b base.qcow2 -F qcow2 '" + top + "'");
  auto disk = Open(top);
  ASSERT_TRUE(disk);
  Mirror m(disk.get(), std::vector<uint8_t>(8 << 20, 0x42));
  m.CheckAll();
  RandomOps(top, m, disk, 99, 200, 100000);
  if (HasFatalFailure()) return;
  disk.reset();
  EXPECT_EQ(QemuCheck(top), "");
  ExpectSameAs(top, m.bytes());
  EXPECT_EQ(QemuCheck(base), "");
  auto b = Open(base, false);
  Mirror untouched(b.get(), std::vector<uint8_t>(8 << 20, 0x42));
  untouched.CheckAll();
}

TEST_F(InteropTest, DirtyImageRefcountsRepaired) {
  const std::string path = dir_.File("d.qcow2");
  Sh("qemu-img create -f qcow2 -o lazy_refcounts=on '" + path + "' 16M");
  Sh("qemu-io -f qcow2 -c 'write -P 0x65 0 3M' '" + path + "'");
  Sh("qemu-img snapshot -c snap1 '" + path + "'");  // shared clusters count twice
  Sh("qemu-io -f qcow2 -c 'write -P 0x66 0 2M' -c 'write -P 0x66 2M 1M' '" + path + "'");
  // Simulate a crash with lazy refcounts: dirty bit set, refcounts never written.
  const uint64_t reftable = ReadBe(path, 48, 8);
  const uint64_t block = ReadBe(path, reftable, 8);
  ASSERT_NE(block, 0u);
  auto bytes = ReadFileBytes(path);
  std::fill_n(bytes.begin() + static_cast<ptrdiff_t>(block), 65536, 0);
  WriteFileBytes(path, bytes);
  PatchBe(path, 72, ReadBe(path, 72, 8) | 1, 8);
  EXPECT_NE(QemuCheck(path), "");  // really broken

  {
    auto ro = Open(path, false);  // reading needs no refcounts
    ASSERT_TRUE(ro);
  }
  EXPECT_EQ(ReadBe(path, 72, 8) & 1, 1u);
  auto disk = Open(path);
  ASSERT_TRUE(disk);
  EXPECT_EQ(ReadBe(path, 72, 8) & 1, 0u);  // repaired, dirty bit cleared
  std::vector<uint8_t> expected(16 << 20, 0);
  std::fill_n(expected.begin(), 3 << 20, 0x66);
  Mirror m(disk.get(), expected);
  m.Write(5 << 20, Pattern(1 << 20, 50));
  m.CheckAll();
  disk.reset();
  EXPECT_EQ(QemuCheck(path), "");
  ExpectSameAs(path, m.bytes());
  Sh("qemu-img convert -f qcow2 -l snapshot.name=snap1 -O raw '" + path + "' '" +
     dir_.File("snap.raw") + "'");
  std::vector<uint8_t> snap(16 << 20, 0);
  std::fill_n(snap.begin(), 3 << 20, 0x65);
  EXPECT_EQ(ReadFileBytes(dir_.File("snap.raw")), snap);
}

TEST_F(InteropTest, GrownImage) {
  const std::string path = dir_.File("grow.qcow2");
  Sh("qemu-img create -f qcow2 -o cluster_size=4096 '" + path + "' 1M");
  Sh("qemu-io -f qcow2 -c 'write -P 0x21 0 1M' '" + path + "'");
  auto disk = Open(path);
  ASSERT_TRUE(disk);
  ASSERT_TRUE(disk->Resize(40 << 20).ok());  // 4 KiB clusters: the L1 table moves
  std::vector<uint8_t> expected(40 << 20, 0);
  std::fill_n(expected.begin(), 1 << 20, 0x21);
  Mirror m(disk.get(), expected);
  m.Write((40 << 20) - 5000, Pattern(5000, 60));
  m.Write(20 << 20, Pattern(100000, 61));
  disk.reset();
  EXPECT_EQ(QemuCheck(path), "");
  auto info = RunCommand("qemu-img info '" + path + "'");
  EXPECT_NE(info.output.find("virtual size: 40 MiB"), std::string::npos) << info.output;
  ExpectSameAs(path, m.bytes());
}

// A process killed at any point (no destructor, no final flush) leaves an image that qemu-img
// check finds consistent, at worst with leaked clusters; everything flushed before is intact.
TEST_F(InteropTest, CrashLeavesConsistentImage) {
  for (int crash_after : {7, 40, 90, 150}) {
    SCOPED_TRACE(crash_after);
    const std::string path = dir_.File("crash.qcow2");
    unlink(path.c_str());
    Sh("qemu-img create -f qcow2 -o cluster_size=4096 '" + path + "' 16M");
    Sh("qemu-io -f qcow2 -c 'write -P 0x31 0 2M' '" + path + "'");
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      base::ScopedFd fd(open(path.c_str(), O_RDWR | O_CLOEXEC));
      QcowOptions options;
      options.l2_cache_bytes = 0;  // 4 tables: evictions write metadata between flushes
      options.refblock_cache_bytes = 0;
      auto disk = QcowFile::Open(std::move(fd), path, true, options);
      if (!disk.ok()) _exit(2);
      std::mt19937_64 rng(crash_after);
      for (int i = 0; i < crash_after; ++i) {
        uint64_t off = rng() % (16 << 20);
        uint64_t len = std::min<uint64_t>(1 + rng() % 100000, (16 << 20) - off);
        bool ok = true;
        switch (rng() % 4) {
          case 0:
          case 1:
            ok = (*disk)->WriteAt(off, Pattern(len, rng())).ok();
            break;
          case 2:
            ok = (*disk)->Discard(off, len).ok();
            break;
          case 3:
            if (i % 3 == 0) ok = (*disk)->Flush().ok();
            break;
        }
        if (!ok) _exit(3);
      }
      _exit(0);  // "crash": no destructor, cached metadata is lost
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0);
    auto check = RunCommand("qemu-img check -f qcow2 '" + path + "'");
    EXPECT_TRUE(check.exit_code == 0 || check.exit_code == 3) << check.output;  // 3: leaks only
    EXPECT_EQ(check.output.find("ERROR"), std::string::npos) << check.output;
    auto disk = Open(path);
    ASSERT_TRUE(disk);
    std::vector<uint8_t> buf(1 << 20);
    EXPECT_TRUE(disk->ReadAt(0, buf).ok());
  }
}

TEST_F(InteropTest, LongRandomSequence) {
  const std::string path = dir_.File("rand.qcow2");
  Sh("qemu-img create -f qcow2 '" + path + "' 64M");
  auto disk = Open(path);
  ASSERT_TRUE(disk);
  Mirror m(disk.get(), std::vector<uint8_t>(64 << 20, 0));
  RandomOps(path, m, disk, 20240601, 3000, 256 << 10);
  if (HasFatalFailure()) return;
  disk.reset();
  EXPECT_EQ(QemuCheck(path), "");
  ExpectSameAs(path, m.bytes());
}

TEST_F(InteropTest, LongRandomSequenceSmallClusters) {
  const std::string path = dir_.File("rand4k.qcow2");
  Sh("qemu-img create -f qcow2 -o cluster_size=4096 '" + path + "' 32M");
  auto disk = Open(path);
  ASSERT_TRUE(disk);
  Mirror m(disk.get(), std::vector<uint8_t>(32 << 20, 0));
  RandomOps(path, m, disk, 4242, 1500, 64 << 10);
  if (HasFatalFailure()) return;
  disk.reset();
  EXPECT_EQ(QemuCheck(path), "");
  ExpectSameAs(path, m.bytes());
}

}  // namespace
}  // namespace crosvm::disk
