// Power cuts and I/O errors, through a FileIo shim under QcowFile:
//  - Crash consistency: every write and barrier (fdatasync) the qcow2 code issues is logged;
//    then each barrier prefix plus random subsets of the writes after it (what a power cut may
//    leave: everything before the last completed barrier, any part of what came after) is
//    replayed onto a copy of the original image. Each result must pass `qemu-img check` (leaks
//    allowed) and hold, in every sector, the data of the last completed guest flush or of a
//    guest write issued after it.
//  - Failed writes: an I/O error injected at each write of a multi-cluster WriteAt leaves every
//    byte of the span old or new, the rest untouched, and an image that qemu-img check accepts
//    and that takes later writes (what disk.h promises after a failure).
#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "disk/file_io.h"
#include "disk/qcow.h"
#include "disk/tests/test_util.h"

namespace crosvm::disk {
namespace {

using testing::HaveQemuTools;
using testing::Pattern;
using testing::ReadFileBytes;
using testing::RunCommand;
using testing::TempDir;
using testing::WriteFileBytes;

constexpr uint64_t kSector = 512;

struct IoLog {
  struct Op {
    bool barrier = false;
    uint64_t offset = 0;
    std::vector<uint8_t> data;
  };
  std::vector<Op> ops;
  size_t barriers = 0;
  size_t writes = 0;
  // Pwrite number `fail_write` (counting from 0) fails with EIO; -1: none.
  long fail_write = -1;
};

// Logs every write and barrier, and can fail a chosen write.
class LoggingFileIo : public FileIo {
 public:
  LoggingFileIo(std::unique_ptr<FileIo> inner, std::shared_ptr<IoLog> log)
      : inner_(std::move(inner)), log_(std::move(log)) {}
  Result<size_t> Pread(uint64_t offset, std::span<uint8_t> buf) override {
    return inner_->Pread(offset, buf);
  }
  Status Pwrite(uint64_t offset, std::span<const uint8_t> buf) override {
    if (static_cast<long>(log_->writes++) == log_->fail_write) {
      return Error("injected write error", EIO);
    }
    log_->ops.push_back({false, offset, std::vector<uint8_t>(buf.begin(), buf.end())});
    return inner_->Pwrite(offset, buf);
  }
  Status Sync() override {
    log_->ops.push_back({true, 0, {}});
    ++log_->barriers;
    return inner_->Sync();
  }
  Status PunchHole(uint64_t offset, uint64_t length) override {
    // After a hole is punched the range reads as zeros: for a replay, a write of zeros.
    log_->ops.push_back({false, offset, std::vector<uint8_t>(length, 0)});
    return inner_->PunchHole(offset, length);
  }
  Result<uint64_t> Size() override { return inner_->Size(); }
  void AppendKeptFds(std::vector<int>& fds) const override { inner_->AppendKeptFds(fds); }

 private:
  std::unique_ptr<FileIo> inner_;
  std::shared_ptr<IoLog> log_;
};

Result<std::unique_ptr<QcowFile>> OpenLogged(const std::string& path, std::shared_ptr<IoLog> log,
                                             bool small_caches) {
  base::ScopedFd fd(open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd.valid()) return Error::FromErrno("open " + path);
  QcowOptions options;
  if (small_caches) {
    options.l2_cache_bytes = 0;  // 4 tables: evictions write metadata between flushes
    options.refblock_cache_bytes = 0;
  }
  return QcowFile::Open(
      std::make_unique<LoggingFileIo>(std::make_unique<FdFileIo>(std::move(fd)), std::move(log)),
      path, true, options);
}

uint64_t Hash(const uint8_t* p, size_t n) {
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ULL;
  return h;
}

void Sh(const std::string& command) {
  auto r = RunCommand(command);
  ASSERT_EQ(r.exit_code, 0) << command << "\n" << r.output;
}

// The guest's view of the image: reads all of it (read-only open, no backing file).
std::vector<uint8_t> ReadAll(const std::string& path, std::string* error) {
  base::ScopedFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  auto disk = QcowFile::Open(std::move(fd), path, false);
  if (!disk.ok()) {
    *error = disk.error().ToString();
    return {};
  }
  std::vector<uint8_t> out((*disk)->VirtualSize());
  auto r = (*disk)->ReadAt(0, out);
  if (!r.ok()) *error = r.error().ToString();
  return out;
}

std::string QemuCheckAllowingLeaks(const std::string& path) {
  auto r = RunCommand("qemu-img check -f qcow2 '" + path + "'");
  if ((r.exit_code == 0 || r.exit_code == 3) && r.output.find("ERROR") == std::string::npos) {
    return "";
  }
  return "qemu-img check exit " + std::to_string(r.exit_code) + ":\n" + r.output;
}

struct GuestOp {
  enum Kind { kWrite, kDiscard, kFlush } kind = kWrite;
  uint64_t offset = 0;
  uint64_t length = 0;
  std::vector<uint8_t> data;
  size_t barriers_at_start = 0;  // barriers in the log when the op began
  size_t barriers_at_end = 0;    // ... and when it returned
};

TEST(QcowCrashTest, PowerCutAtEveryBarrier) {
  ASSERT_TRUE(HaveQemuTools()) << "qemu-img/qemu-io not found: install qemu-utils";
  TempDir dir;
  const std::string path = dir.File("live.qcow2");
  constexpr uint64_t kSize = 8 << 20;
  Sh("qemu-img create -f qcow2 -o cluster_size=4096 '" + path + "' 8M");
  Sh("qemu-io -f qcow2 -c 'write -P 0x31 0 2M' '" + path + "'");
  const std::vector<uint8_t> original = ReadFileBytes(path);
  std::vector<uint8_t> initial(kSize, 0);
  std::fill_n(initial.begin(), 2 << 20, 0x31);

  auto log = std::make_shared<IoLog>();
  std::vector<GuestOp> guest;
  {
    auto disk = OpenLogged(path, log, true);
    ASSERT_TRUE(disk.ok()) << disk.error().ToString();
    std::mt19937_64 rng(7);
    for (int i = 0; i < 70; ++i) {
      GuestOp op;
      const unsigned r = rng() % 10;
      op.kind = r < 6 ? GuestOp::kWrite : r < 8 ? GuestOp::kDiscard : GuestOp::kFlush;
      // Sector-aligned, as virtio-blk requests are; writes cluster on a few areas so that
      // clusters are rewritten, copied and freed.
      const uint64_t sectors = kSize / kSector;
      op.offset = (rng() % 3 == 0 ? rng() % sectors : rng() % 64 * 24) * kSector;
      op.length = std::min<uint64_t>((1 + rng() % 48) * kSector, kSize - op.offset);
      op.barriers_at_start = log->barriers;
      Status st = base::Ok();
      if (op.kind == GuestOp::kWrite) {
        op.data = Pattern(op.length, rng());
        auto w = (*disk)->WriteAt(op.offset, op.data);
        if (!w.ok()) st = w.error();
      } else if (op.kind == GuestOp::kDiscard) {
        st = (*disk)->Discard(op.offset, op.length);
      } else {
        st = (*disk)->Flush();
      }
      ASSERT_TRUE(st.ok()) << st.error().ToString();
      op.barriers_at_end = log->barriers;
      guest.push_back(std::move(op));
    }
    GuestOp flush;
    flush.kind = GuestOp::kFlush;
    flush.barriers_at_start = log->barriers;
    ASSERT_TRUE((*disk)->Flush().ok());
    flush.barriers_at_end = log->barriers;
    guest.push_back(std::move(flush));
  }
  const size_t total_barriers = log->barriers;
  ASSERT_GT(total_barriers, 10u);

  // Epoch e: the writes after barrier e (barrier 0: the start) and before barrier e + 1.
  std::vector<std::vector<size_t>> epochs(total_barriers + 1);
  {
    size_t e = 0;
    for (size_t i = 0; i < log->ops.size(); ++i) {
      if (log->ops[i].barrier) {
        ++e;
      } else {
        epochs[e].push_back(i);
      }
    }
  }

  // At most ~25 crash points, spread over the whole log, two random subsets each: < 30 s.
  std::vector<size_t> points;
  const size_t step = (total_barriers + 24) / 24;
  for (size_t k = 0; k <= total_barriers; k += step) points.push_back(k);
  if (points.back() != total_barriers) points.push_back(total_barriers);

  std::mt19937_64 rng(99);
  int replays = 0;
  const std::string crash = dir.File("crash.qcow2");
  for (size_t k : points) {
    for (int variant = 0; variant < 2; ++variant) {
      SCOPED_TRACE("crash after barrier " + std::to_string(k) + " of " +
                   std::to_string(total_barriers) + ", subset " + std::to_string(variant));
      std::vector<uint8_t> image = original;
      auto apply = [&](const IoLog::Op& op) {
        if (image.size() < op.offset + op.data.size()) image.resize(op.offset + op.data.size(), 0);
        std::copy(op.data.begin(), op.data.end(),
                  image.begin() + static_cast<ptrdiff_t>(op.offset));
      };
      for (size_t e = 0; e < k; ++e) {
        for (size_t i : epochs[e]) apply(log->ops[i]);
      }
      for (size_t i : epochs[k]) {
        if (rng() % 2 == 0) apply(log->ops[i]);
      }
      WriteFileBytes(crash, image);
      ++replays;
      ASSERT_EQ(QemuCheckAllowingLeaks(crash), "");

      // The model: the last guest flush that completed by barrier k makes everything before it
      // durable; ops that may have begun by then may or may not show.
      size_t durable_end = 0;  // guest ops [0, durable_end) are durable
      for (size_t g = 0; g < guest.size(); ++g) {
        if (guest[g].kind == GuestOp::kFlush && guest[g].barriers_at_end <= k) durable_end = g;
      }
      std::vector<uint8_t> durable = initial;
      for (size_t g = 0; g < durable_end; ++g) {
        const GuestOp& op = guest[g];
        if (op.kind == GuestOp::kWrite) {
          std::copy(op.data.begin(), op.data.end(), durable.begin() + op.offset);
        } else if (op.kind == GuestOp::kDiscard) {
          std::fill_n(durable.begin() + op.offset, op.length, 0);
        }
      }
      std::vector<std::vector<uint64_t>> allowed(kSize / kSector);
      for (uint64_t s = 0; s < allowed.size(); ++s) {
        allowed[s].push_back(Hash(&durable[s * kSector], kSector));
      }
      const std::vector<uint8_t> zeros(kSector, 0);
      for (size_t g = durable_end; g < guest.size(); ++g) {
        const GuestOp& op = guest[g];
        if (op.barriers_at_start > k || op.kind == GuestOp::kFlush) continue;
        for (uint64_t s = op.offset / kSector; s < (op.offset + op.length) / kSector; ++s) {
          allowed[s].push_back(op.kind == GuestOp::kWrite
                                   ? Hash(&op.data[s * kSector - op.offset], kSector)
                                   : Hash(zeros.data(), kSector));
        }
      }
      std::string error;
      auto got = ReadAll(crash, &error);
      ASSERT_EQ(error, "");
      ASSERT_EQ(got.size(), kSize);
      int bad = 0;
      for (uint64_t s = 0; s < allowed.size() && bad < 5; ++s) {
        const uint64_t h = Hash(&got[s * kSector], kSector);
        if (std::find(allowed[s].begin(), allowed[s].end(), h) == allowed[s].end()) {
          ADD_FAILURE() << "sector " << s << " holds data that was never written there since "
                        << "the last completed flush (durable ops: " << durable_end << ")";
          ++bad;
        }
      }
      if (bad > 0) return;
    }
  }
  std::printf("replayed %d power cuts over %zu barriers and %zu writes\n", replays, total_barriers,
              log->ops.size() - total_barriers);
}

// A WriteAt across several clusters (in place, then past an L2 boundary into unallocated
// clusters) failing at each of its writes in turn.
TEST(QcowCrashTest, FailedMultiClusterWriteLeavesOldOrNewBytes) {
  ASSERT_TRUE(HaveQemuTools()) << "qemu-img/qemu-io not found: install qemu-utils";
  TempDir dir;
  const std::string pristine = dir.File("pristine.qcow2");
  Sh("qemu-img create -f qcow2 -o cluster_size=4096 '" + pristine + "' 8M");
  Sh("qemu-io -f qcow2 -c 'write -P 0x31 0 2M' '" + pristine + "'");
  const auto pristine_bytes = ReadFileBytes(pristine);
  std::vector<uint8_t> old(8 << 20, 0);
  std::fill_n(old.begin(), 2 << 20, 0x31);
  // 2 MiB is the span of one L2 table with 4 KiB clusters.
  const uint64_t offset = (2 << 20) - 3 * 4096 + 512;
  const auto data = Pattern(7 * 4096, 5);
  auto expected_new = old;
  std::copy(data.begin(), data.end(), expected_new.begin() + offset);

  const std::string path = dir.File("w.qcow2");
  bool saw_partial = false;
  long n = 0;
  for (;; ++n) {
    SCOPED_TRACE("failing write " + std::to_string(n));
    WriteFileBytes(path, pristine_bytes);
    auto log = std::make_shared<IoLog>();
    auto disk = OpenLogged(path, log, false);
    ASSERT_TRUE(disk.ok()) << disk.error().ToString();
    log->fail_write = static_cast<long>(log->writes) + n;
    auto w = (*disk)->WriteAt(offset, data);
    log->fail_write = -1;
    if (w.ok()) break;  // n is past the request's last write
    EXPECT_EQ(w.error().errnum(), EIO);
    std::vector<uint8_t> got(old.size());
    ASSERT_TRUE((*disk)->ReadAt(0, got).ok());
    size_t new_bytes = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      if (got[i] != old[i] && got[i] != expected_new[i]) {
        FAIL() << "byte " << i << " is neither old nor new";
      }
      if (got[i] != old[i]) ++new_bytes;
    }
    if (new_bytes > 0 && got != expected_new) saw_partial = true;
    // The image stays usable: flush, close, check, reopen, same contents, later writes work.
    ASSERT_TRUE((*disk)->Flush().ok());
    disk->reset();
    EXPECT_EQ(QemuCheckAllowingLeaks(path), "");
    std::string error;
    EXPECT_EQ(ReadAll(path, &error), got);
    EXPECT_EQ(error, "");
    auto again = OpenLogged(path, std::make_shared<IoLog>(), false);
    ASSERT_TRUE(again.ok()) << again.error().ToString();
    ASSERT_TRUE((*again)->WriteAt(offset, data).ok());
    std::vector<uint8_t> after(old.size());
    ASSERT_TRUE((*again)->ReadAt(0, after).ok());
    EXPECT_EQ(after, expected_new);
    again->reset();
    EXPECT_EQ(QemuCheckAllowingLeaks(path), "");
  }
  EXPECT_GT(n, 3) << "the request should take several writes";
  // So a failed write is not all-or-nothing; disk.h says so.
  EXPECT_TRUE(saw_partial);
}

}  // namespace
}  // namespace crosvm::disk
