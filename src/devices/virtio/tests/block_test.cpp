// virtio-blk request handling on a raw file and on a qcow2 image (disk::CreateQcow2): every
// request type, read-only disks, out-of-range sectors, short and misordered chains; plus the
// device's configuration space and one request through the PCI transport and worker thread.
#include "devices/virtio/block.h"

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

#include "devices/pci/tests/fake_vm_control.h"
#include "devices/virtio/tests/test_driver.h"
#include "devices/virtio/virtio.h"
#include "devices/virtio/virtio_pci.h"

namespace crosvm::devices::virtio {
namespace {

using testing::Buf;
using testing::MakeTestMemory;
using testing::TestQueue;

constexpr uint64_t kDiskSize = 1 << 20;  // 2048 sectors
constexpr uint64_t kRings = 0x1000;
constexpr uint64_t kHdr = 0x100000;
constexpr uint64_t kData = 0x200000;
constexpr uint64_t kStatus = 0x1ff000;
constexpr uint64_t kFeatures = Bit(kFeatureRingIndirectDesc);

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/crosvm_blk_test.XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

uint8_t Pattern(uint64_t offset) {
  return static_cast<uint8_t>((offset / kSectorSize) * 7 + offset % 251);
}

enum class Format { kRaw, kQcow2 };

// Makes a disk of kDiskSize bytes holding Pattern() and opens it.
std::unique_ptr<disk::DiskFile> MakeDisk(const TempDir& dir, Format format, bool writable) {
  static int serial = 0;
  std::string path =
      dir.File(std::to_string(++serial) + (format == Format::kRaw ? ".raw" : ".qcow2"));
  std::vector<uint8_t> bytes(kDiskSize);
  for (uint64_t i = 0; i < kDiskSize; ++i) bytes[i] = Pattern(i);
  if (format == Format::kRaw) {
    int fd = open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
    close(fd);
  } else {
    auto s = disk::CreateQcow2(path, kDiskSize);
    EXPECT_TRUE(s.ok()) << s.error().ToString();
    auto d = disk::OpenDisk(path, true);
    EXPECT_TRUE(d.ok()) << d.error().ToString();
    EXPECT_TRUE((*d)->WriteAt(0, bytes).ok());
    EXPECT_TRUE((*d)->Flush().ok());
  }
  auto d = disk::OpenDisk(path, writable);
  EXPECT_TRUE(d.ok()) << d.error().ToString();
  return std::move(d).value();
}

struct Reply {
  uint32_t used_len;
  uint8_t status;
};

class BlockTest : public ::testing::TestWithParam<Format> {
 protected:
  void Open(bool writable) {
    handler_.reset();
    disk_.reset();
    disk_ = MakeDisk(dir_, GetParam(), writable);
    handler_ = std::make_unique<BlockRequestHandler>(disk_.get(), "serial-1234");
  }
  void SetUp() override { Open(true); }

  void PutHeader(uint32_t type, uint64_t sector, uint64_t at = kHdr) {
    BlkRequestHeader h{type, 0, sector};
    ASSERT_TRUE(mem_.WriteObj(at, h).ok());
  }
  // Runs one chain made of `bufs`; the status byte is read from `status_at`.
  Reply Run(const std::vector<Buf>& bufs, uint64_t status_at = kStatus) {
    EnsureQueue();
    (void)mem_.WriteObj<uint8_t>(status_at, 0xee);
    tq_.WriteChain(0, bufs);
    tq_.Publish(0);
    DescriptorChain chain;
    std::string error;
    auto r = queue_.Pop(&chain, &error);
    EXPECT_EQ(r, Queue::PopResult::kChain) << error;
    if (r != Queue::PopResult::kChain) return {0xffffffff, 0xff};
    uint32_t len = handler_->Handle(mem_, chain);
    queue_.AddUsed(chain.head, len);
    return {len, *mem_.ReadObj<uint8_t>(status_at)};
  }
  void EnsureQueue() {
    if (!queue_ready_) {
      queue_ = tq_.MakeDeviceQueue(kFeatures);
      queue_ready_ = true;
    }
  }
  // A request of `type` with a 16-byte header, data buffers, and a 1-byte status.
  Reply Simple(uint32_t type, uint64_t sector, std::vector<Buf> data) {
    PutHeader(type, sector);
    std::vector<Buf> bufs = {{kHdr, 16, false}};
    bufs.insert(bufs.end(), data.begin(), data.end());
    bufs.push_back({kStatus, 1, true});
    return Run(bufs);
  }
  std::vector<uint8_t> DiskBytes(uint64_t offset, size_t len) {
    std::vector<uint8_t> out(len);
    EXPECT_TRUE(disk_->ReadAt(offset, out).ok());
    return out;
  }
  std::vector<uint8_t> Mem(uint64_t gpa, size_t len) {
    std::vector<uint8_t> out(len);
    EXPECT_TRUE(mem_.Read(gpa, out).ok());
    return out;
  }

  TempDir dir_;
  memory::GuestMemory mem_ = MakeTestMemory();
  TestQueue tq_{mem_, kRings, 64};
  Queue queue_{64};
  bool queue_ready_ = false;
  std::unique_ptr<disk::DiskFile> disk_;
  std::unique_ptr<BlockRequestHandler> handler_;
};

TEST_P(BlockTest, ReadSectors) {
  Reply r = Simple(kBlkTIn, 2, {{kData, 1024, true}});
  EXPECT_EQ(r.status, kBlkSOk);
  EXPECT_EQ(r.used_len, 1025u);
  EXPECT_EQ(Mem(kData, 1024), DiskBytes(1024, 1024));
  EXPECT_EQ(Mem(kData, 1)[0], Pattern(1024));
}

TEST_P(BlockTest, ReadIntoScatteredBuffers) {
  Reply r = Simple(kBlkTIn, 10,
                   {{kData, 100, true}, {kData + 0x1000, 412, true}, {kData + 0x2000, 512, true}});
  EXPECT_EQ(r.status, kBlkSOk);
  EXPECT_EQ(r.used_len, 1025u);
  auto want = DiskBytes(10 * 512, 1024);
  EXPECT_EQ(Mem(kData, 100), std::vector<uint8_t>(want.begin(), want.begin() + 100));
  EXPECT_EQ(Mem(kData + 0x1000, 412), std::vector<uint8_t>(want.begin() + 100, want.begin() + 512));
  EXPECT_EQ(Mem(kData + 0x2000, 512), std::vector<uint8_t>(want.begin() + 512, want.end()));
}

TEST_P(BlockTest, StatusIsTheLastByteOfTheLastDescriptor) {
  // Data and status share one writable descriptor of 513 bytes.
  PutHeader(kBlkTIn, 0);
  Reply r = Run({{kHdr, 16, false}, {kData, 513, true}}, kData + 512);
  EXPECT_EQ(r.status, kBlkSOk);
  EXPECT_EQ(r.used_len, 513u);
  EXPECT_EQ(Mem(kData, 512), DiskBytes(0, 512));
}

TEST_P(BlockTest, WriteSectors) {
  std::vector<uint8_t> data(1024);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 3 + 1);
  ASSERT_TRUE(mem_.Write(kData, data).ok());
  Reply r = Simple(kBlkTOut, 5, {{kData, 1024, false}});
  EXPECT_EQ(r.status, kBlkSOk);
  EXPECT_EQ(r.used_len, 1u);
  EXPECT_EQ(DiskBytes(5 * 512, 1024), data);
  EXPECT_EQ(DiskBytes(4 * 512, 512)[0], Pattern(4 * 512)) << "neighbours untouched";
  EXPECT_EQ(DiskBytes(7 * 512, 512)[0], Pattern(7 * 512));
}

TEST_P(BlockTest, HeaderSplitAcrossDescriptors) {
  std::vector<uint8_t> data(512, 0x5a);
  ASSERT_TRUE(mem_.Write(kData, data).ok());
  PutHeader(kBlkTOut, 9);
  Reply r = Run({{kHdr, 5, false}, {kHdr + 5, 11, false}, {kData, 512, false}, {kStatus, 1, true}});
  EXPECT_EQ(r.status, kBlkSOk);
  EXPECT_EQ(DiskBytes(9 * 512, 512), data);
}

TEST_P(BlockTest, Flush) {
  Reply r = Simple(kBlkTFlush, 0, {});
  EXPECT_EQ(r.status, kBlkSOk);
  EXPECT_EQ(r.used_len, 1u);
}

// Forwards to a real disk and counts the flushes that reach it.
class CountingDisk : public disk::DiskFile {
 public:
  explicit CountingDisk(disk::DiskFile* inner) : inner_(inner) {}
  base::Result<size_t> ReadAt(uint64_t o, std::span<uint8_t> b) override {
    return inner_->ReadAt(o, b);
  }
  base::Result<size_t> WriteAt(uint64_t o, std::span<const uint8_t> b) override {
    return inner_->WriteAt(o, b);
  }
  base::Status Flush() override {
    ++flushes;
    return inner_->Flush();
  }
  base::Status Discard(uint64_t o, uint64_t l) override { return inner_->Discard(o, l); }
  base::Status WriteZeroes(uint64_t o, uint64_t l) override { return inner_->WriteZeroes(o, l); }
  base::Status Resize(uint64_t s) override { return inner_->Resize(s); }
  uint64_t VirtualSize() const override { return inner_->VirtualSize(); }
  bool ReadOnly() const override { return inner_->ReadOnly(); }
  disk::ImageFormat Format() const override { return inner_->Format(); }
  void AppendKeptFds(std::vector<int>& fds) const override { inner_->AppendKeptFds(fds); }
  int flushes = 0;

 private:
  disk::DiskFile* inner_;
};

// Without VIRTIO_BLK_F_FLUSH the driver cannot ask for durability, so each completed write
// must already be on stable storage; with it, only FLUSH requests sync.
TEST_P(BlockTest, WritesAreWriteThroughUnlessTheDriverNegotiatedFlush) {
  for (bool write_through : {false, true}) {
    CountingDisk counting(disk_.get());
    handler_ = std::make_unique<BlockRequestHandler>(&counting, "serial-1234", write_through);
    EXPECT_EQ(Simple(kBlkTOut, 0, {{kData, 512, false}}).status, kBlkSOk);
    EXPECT_EQ(Simple(kBlkTIn, 0, {{kData, 512, true}}).status, kBlkSOk);
    EXPECT_EQ(counting.flushes, write_through ? 1 : 0) << "write_through=" << write_through;
    EXPECT_EQ(Simple(kBlkTFlush, 0, {}).status, kBlkSOk);
    EXPECT_EQ(counting.flushes, write_through ? 2 : 1);
    handler_.reset();
  }
}

TEST_P(BlockTest, GetId) {
  Reply r = Simple(kBlkTGetId, 0, {{kData, 20, true}});
  EXPECT_EQ(r.status, kBlkSOk);
  EXPECT_EQ(r.used_len, 21u);
  auto id = Mem(kData, 20);
  EXPECT_EQ(std::string(id.begin(), id.begin() + 11), "serial-1234");
  EXPECT_EQ(id[11], 0);
  // A shorter buffer gets what fits.
  r = Simple(kBlkTGetId, 0, {{kData + 0x100, 6, true}});
  EXPECT_EQ(r.status, kBlkSOk);
  EXPECT_EQ(r.used_len, 7u);
  auto part = Mem(kData + 0x100, 6);
  EXPECT_EQ(std::string(part.begin(), part.end()), "serial");
}

TEST_P(BlockTest, DiscardAndWriteZeroes) {
  BlkDiscardWriteZeroes segs[2] = {{8, 8, 0}, {100, 3, 0}};
  ASSERT_TRUE(mem_.WriteObj(kData, segs).ok());
  Reply r = Simple(kBlkTDiscard, 0, {{kData, 32, false}});
  EXPECT_EQ(r.status, kBlkSOk);
  EXPECT_EQ(DiskBytes(8 * 512, 8 * 512), std::vector<uint8_t>(8 * 512, 0));
  EXPECT_EQ(DiskBytes(100 * 512, 3 * 512), std::vector<uint8_t>(3 * 512, 0));
  EXPECT_EQ(DiskBytes(16 * 512, 1)[0], Pattern(16 * 512));

  BlkDiscardWriteZeroes wz{200, 2, kBlkDiscardFlagUnmap};  // unmap is allowed here
  ASSERT_TRUE(mem_.WriteObj(kData, wz).ok());
  r = Simple(kBlkTWriteZeroes, 0, {{kData, 16, false}});
  EXPECT_EQ(r.status, kBlkSOk);
  EXPECT_EQ(DiskBytes(200 * 512, 1024), std::vector<uint8_t>(1024, 0));
  EXPECT_EQ(DiskBytes(202 * 512, 1)[0], Pattern(202 * 512));
}

TEST_P(BlockTest, DiscardSegmentChecks) {
  auto discard = [&](std::vector<BlkDiscardWriteZeroes> segs, uint32_t type = kBlkTDiscard,
                     uint32_t len = 0) {
    if (!segs.empty()) {
      EXPECT_TRUE(
          mem_.Write(kData, {reinterpret_cast<uint8_t*>(segs.data()), 16 * segs.size()}).ok());
    }
    if (len == 0) len = static_cast<uint32_t>(16 * segs.size());
    std::vector<Buf> data;
    if (len) data.push_back({kData, len, false});
    return Simple(type, 0, data).status;
  };
  EXPECT_EQ(discard({{8, 8, kBlkDiscardFlagUnmap}}), kBlkSUnsupp) << "unmap flag on discard";
  EXPECT_EQ(discard({{8, 8, 2}}), kBlkSUnsupp) << "unknown flag";
  EXPECT_EQ(discard({{8, 8, 2}}, kBlkTWriteZeroes), kBlkSUnsupp) << "unknown flag";
  EXPECT_EQ(discard({}), kBlkSIoErr) << "no segment";
  EXPECT_EQ(discard({{8, 8, 0}}, kBlkTDiscard, 20), kBlkSIoErr) << "not a multiple of 16";
  EXPECT_EQ(discard({{2047, 2, 0}}), kBlkSIoErr) << "past the end";
  EXPECT_EQ(discard({{2040, 8, 0}}), kBlkSOk) << "up to the end";
  EXPECT_EQ(discard({{UINT64_MAX / 256, 1, 0}}), kBlkSIoErr) << "sector * 512 overflows";
  std::vector<BlkDiscardWriteZeroes> many(BlkLimits::kMaxDiscardSeg + 1, {0, 1, 0});
  EXPECT_EQ(discard(many), kBlkSIoErr) << "more than max_discard_seg";
  // A bad segment after a good one: nothing is executed.
  EXPECT_EQ(discard({{300, 1, 0}, {5000, 1, 0}}, kBlkTWriteZeroes), kBlkSIoErr);
  EXPECT_EQ(DiskBytes(300 * 512, 1)[0], Pattern(300 * 512));
}

TEST_P(BlockTest, UnsupportedTypes) {
  for (uint32_t type : {2u, 10u, 14u, 99u, 0xffffffffu}) {
    Reply r = Simple(type, 0, {{kData, 512, true}});
    EXPECT_EQ(r.status, kBlkSUnsupp) << type;
    EXPECT_EQ(r.used_len, 1u);
  }
}

TEST_P(BlockTest, OutOfRangeSectors) {
  EXPECT_EQ(Simple(kBlkTIn, 2047, {{kData, 1024, true}}).status, kBlkSIoErr);
  EXPECT_EQ(Simple(kBlkTIn, 2048, {{kData, 512, true}}).status, kBlkSIoErr);
  EXPECT_EQ(Simple(kBlkTIn, 2047, {{kData, 512, true}}).status, kBlkSOk) << "the last sector";
  EXPECT_EQ(Simple(kBlkTIn, UINT64_MAX / 512 + 1, {{kData, 512, true}}).status, kBlkSIoErr);
  EXPECT_EQ(Simple(kBlkTIn, UINT64_MAX, {{kData, 512, true}}).status, kBlkSIoErr);
  EXPECT_EQ(Simple(kBlkTOut, 2048, {{kData, 512, false}}).status, kBlkSIoErr);
  EXPECT_EQ(Simple(kBlkTOut, UINT64_MAX / 512, {{kData, 512, false}}).status, kBlkSIoErr);
}

TEST_P(BlockTest, PartialSectorsAreRefused) {
  EXPECT_EQ(Simple(kBlkTIn, 0, {{kData, 100, true}}).status, kBlkSIoErr);
  EXPECT_EQ(Simple(kBlkTOut, 0, {{kData, 513, false}}).status, kBlkSIoErr);
  EXPECT_EQ(DiskBytes(0, 1)[0], Pattern(0));
}

TEST_P(BlockTest, ShortHeaderAnswersIoErr) {
  PutHeader(kBlkTIn, 0);
  Reply r = Run({{kHdr, 8, false}, {kData, 512, true}, {kStatus, 1, true}});
  EXPECT_EQ(r.status, kBlkSIoErr);
  EXPECT_EQ(r.used_len, 1u);
}

TEST_P(BlockTest, NoStatusByteMeansNoAnswer) {
  PutHeader(kBlkTOut, 0);
  Reply r = Run({{kHdr, 16, false}, {kData, 512, false}});
  EXPECT_EQ(r.used_len, 0u);
  EXPECT_EQ(DiskBytes(0, 1)[0], Pattern(0)) << "nothing written";
}

TEST_P(BlockTest, MisorderedChainIsRefusedByTheQueue) {
  EnsureQueue();
  PutHeader(kBlkTIn, 0);
  tq_.WriteChain(0, {{kStatus, 1, true}, {kHdr, 16, false}});
  tq_.Publish(0);
  DescriptorChain chain;
  std::string error;
  EXPECT_EQ(queue_.Pop(&chain, &error), Queue::PopResult::kBadChain);
}

TEST_P(BlockTest, ReadOnlyDiskRefusesModifications) {
  Open(false);
  ASSERT_TRUE(disk_->ReadOnly());
  std::vector<uint8_t> data(512, 0x77);
  ASSERT_TRUE(mem_.Write(kData, data).ok());
  EXPECT_EQ(Simple(kBlkTOut, 0, {{kData, 512, false}}).status, kBlkSIoErr);
  BlkDiscardWriteZeroes seg{0, 1, 0};
  ASSERT_TRUE(mem_.WriteObj(kData + 0x1000, seg).ok());
  EXPECT_EQ(Simple(kBlkTDiscard, 0, {{kData + 0x1000, 16, false}}).status, kBlkSIoErr);
  EXPECT_EQ(Simple(kBlkTWriteZeroes, 0, {{kData + 0x1000, 16, false}}).status, kBlkSIoErr);
  EXPECT_EQ(DiskBytes(0, 1)[0], Pattern(0));
  EXPECT_EQ(Simple(kBlkTIn, 0, {{kData, 512, true}}).status, kBlkSOk);
  EXPECT_EQ(Simple(kBlkTFlush, 0, {}).status, kBlkSOk);
}

// The device advertises size_max and seg_max; a request beyond them is refused without
// touching the disk, so no request costs more than seg_max * size_max bytes of I/O.
TEST_P(BlockTest, SegmentLargerThanSizeMaxIsRefusedAndCounted) {
  PutHeader(kBlkTGetId, 0);
  Reply r = Run({{kHdr, 16, false}, {kData, BlkLimits::kSizeMax + 512, true}, {kStatus, 1, true}});
  EXPECT_EQ(r.status, kBlkSIoErr);
  EXPECT_EQ(r.used_len, 1u);
  EXPECT_EQ(handler_->over_limit_requests(), 1u);
  // Exactly size_max is fine.
  r = Simple(kBlkTGetId, 0, {{kData, BlkLimits::kSizeMax, true}});
  EXPECT_EQ(r.status, kBlkSOk);
  EXPECT_EQ(handler_->over_limit_requests(), 1u);
}

TEST_P(BlockTest, MoreSegmentsThanSegMaxAreRefused) {
  // Built by hand: a queue of 256 cannot even carry such a chain, but the handler must not
  // rely on that.
  PutHeader(kBlkTIn, 0);
  DescriptorChain chain;
  chain.descriptors.push_back({kHdr, 16, false});
  chain.readable_count = 1;
  chain.readable_bytes = 16;
  for (uint32_t i = 0; i < BlkLimits::kSegMax + 1; ++i) {
    chain.descriptors.push_back({kData + 512u * i, 512, true});
    chain.writable_bytes += 512;
  }
  chain.descriptors.push_back({kStatus, 1, true});
  chain.writable_bytes += 1;
  (void)mem_.WriteObj<uint8_t>(kStatus, 0xee);
  EXPECT_EQ(handler_->Handle(mem_, chain), 1u);
  EXPECT_EQ(*mem_.ReadObj<uint8_t>(kStatus), kBlkSIoErr);
  EXPECT_EQ(handler_->over_limit_requests(), 1u);
  EXPECT_EQ(Mem(kData, 512), std::vector<uint8_t>(512, 0)) << "nothing was read";
  // seg_max segments exactly: served.
  chain.descriptors.erase(chain.descriptors.end() - 2);
  chain.writable_bytes -= 512;
  EXPECT_EQ(handler_->Handle(mem_, chain), BlkLimits::kSegMax * 512 + 1);
  EXPECT_EQ(*mem_.ReadObj<uint8_t>(kStatus), kBlkSOk);
}

INSTANTIATE_TEST_SUITE_P(Formats, BlockTest, ::testing::Values(Format::kRaw, Format::kQcow2),
                         [](const ::testing::TestParamInfo<Format>& info) {
                           return info.param == Format::kRaw ? "Raw" : "Qcow2";
                         });

TEST(BlockDeviceTest, ConfigurationAndFeatures) {
  TempDir dir;
  BlockDevice rw(MakeDisk(dir, Format::kRaw, true), "virtio-blk vda", "id");
  auto u32 = [](const VirtioDevice& d, uint64_t off) {
    uint8_t b[4];
    d.ReadConfig(off, b);
    uint32_t v;
    std::memcpy(&v, b, 4);
    return v;
  };
  uint8_t cap[8];
  rw.ReadConfig(0, cap);
  uint64_t capacity;
  std::memcpy(&capacity, cap, 8);
  EXPECT_EQ(capacity, kDiskSize / 512);
  EXPECT_EQ(u32(rw, 8), BlkLimits::kSizeMax);
  EXPECT_EQ(u32(rw, 12), BlkLimits::kSegMax);
  EXPECT_EQ(u32(rw, 20), 512u);
  EXPECT_EQ(u32(rw, 40), BlkLimits::kMaxDiscardSeg);
  EXPECT_EQ(u32(rw, 52), BlkLimits::kMaxWriteZeroesSeg);
  EXPECT_EQ(u32(rw, 0x100), 0u) << "past the structure";
  uint64_t f = rw.Features();
  EXPECT_TRUE(f & Bit(kBlkFFlush));
  EXPECT_TRUE(f & Bit(kBlkFSegMax));
  EXPECT_TRUE(f & Bit(kBlkFSizeMax));
  EXPECT_TRUE(f & Bit(kBlkFBlkSize));
  EXPECT_TRUE(f & Bit(kBlkFDiscard));
  EXPECT_TRUE(f & Bit(kBlkFWriteZeroes));
  EXPECT_FALSE(f & Bit(kBlkFRo));

  TempDir dir2;
  BlockDevice ro(MakeDisk(dir2, Format::kQcow2, false), "virtio-blk vdb", "id");
  f = ro.Features();
  EXPECT_TRUE(f & Bit(kBlkFRo));
  EXPECT_FALSE(f & Bit(kBlkFDiscard));
  EXPECT_EQ(ro.DeviceType(), kTypeBlock);
}

TEST(BlockDeviceTest, DiskSerialFromDeviceAndInode) {
  TempDir dir;
  std::string path = dir.File("x");
  close(open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
  std::string s = DiskSerial(path);
  EXPECT_FALSE(s.empty());
  EXPECT_LE(s.size(), kBlkIdBytes);
  EXPECT_EQ(DiskSerial(dir.File("missing")), "");
}

// One request end to end: transport, activation, notification, worker thread, used ring.
TEST(BlockDeviceTest, ReadThroughTheTransport) {
  TempDir dir;
  auto mem = MakeTestMemory();
  pci::FakeVmControl vm;
  auto dev = VirtioPciDevice::Create(
      std::make_unique<BlockDevice>(MakeDisk(dir, Format::kQcow2, false), "vda", "id"), &mem, &vm,
      nullptr, false);
  ASSERT_TRUE(dev.ok()) << dev.error().ToString();
  auto& d = **dev;
  auto w = [&](uint64_t off, size_t size, uint64_t v) {
    d.WriteBar(0, off, {reinterpret_cast<uint8_t*>(&v), size});
  };
  TestQueue tq(mem, kRings, 64);
  uint16_t cmd = pci::kCommandMemory | pci::kCommandMaster;  // the driver enables DMA
  d.WriteConfigRegister(pci::kCommand / 4, 0, {reinterpret_cast<uint8_t*>(&cmd), 2});
  w(kDeviceStatus, 1, kStatusAcknowledge | kStatusDriver);
  w(kDriverFeatureSelect, 4, 1);
  w(kDriverFeature, 4, 1);  // VIRTIO_F_VERSION_1
  w(kDeviceStatus, 1, kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk);
  w(kQueueSelect, 2, 0);
  w(kQueueSize, 2, 64);
  w(kQueueDesc, 8, tq.desc_addr());
  w(kQueueDriver, 8, tq.avail_addr());
  w(kQueueDevice, 8, tq.used_addr());
  w(kQueueEnable, 2, 1);
  w(kDeviceStatus, 1, kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk | kStatusDriverOk);
  ASSERT_TRUE(d.active());

  BlkRequestHeader h{kBlkTIn, 0, 3};
  ASSERT_TRUE(mem.WriteObj(kHdr, h).ok());
  tq.WriteChain(0, {{kHdr, 16, false}, {kData, 512, true}, {kStatus, 1, true}});
  tq.Publish(0);
  w(kNotifyOffset, 2, 0);
  for (int i = 0; i < 2000 && tq.UsedIdx() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_EQ(tq.UsedIdx(), 1);
  EXPECT_EQ(tq.UsedElem(0), std::make_pair(0u, 513u));
  EXPECT_EQ(*mem.ReadObj<uint8_t>(kStatus), kBlkSOk);
  EXPECT_EQ(*mem.ReadObj<uint8_t>(kData), Pattern(3 * 512));
  w(kDeviceStatus, 1, 0);
  EXPECT_FALSE(d.active());
}

}  // namespace
}  // namespace crosvm::devices::virtio
