// The host-file attack, driven as a guest would drive it: a virtio-blk OUT request (through the
// test virtqueue driver and the block device's request handler) that writes a qcow2 header naming
// /etc/shadow into sector 0 of a writable raw disk; then the image is reopened as `crosvm run`
// reopens it. The write must fail with VIRTIO_BLK_S_IOERR and the reopened image must be raw.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "devices/virtio/block.h"
#include "devices/virtio/tests/test_driver.h"
#include "disk/disk.h"
#include "disk/tests/test_util.h"

namespace crosvm::disk {
namespace {

namespace virtio = devices::virtio;
using testing::Pattern;
using testing::QcowAttackSector;
using testing::ReadFileBytes;
using testing::TempDir;
using testing::WriteFileBytes;
using virtio::testing::Buf;
using virtio::testing::TestQueue;

constexpr uint64_t kDiskSize = 1 << 20;
constexpr uint64_t kRings = 0x1000;
constexpr uint64_t kHdr = 0x100000;
constexpr uint64_t kData = 0x200000;
constexpr uint64_t kStatus = 0x1ff000;

class BlockAttackTest : public ::testing::Test {
 protected:
  // One OUT request writing `data` (split into descriptors of `piece` bytes) at `sector`.
  uint8_t Write(DiskFile* disk, uint64_t sector, const std::vector<uint8_t>& data, size_t piece) {
    virtio::BlockRequestHandler handler(disk, "attack");
    virtio::BlkRequestHeader h{virtio::kBlkTOut, 0, sector};
    EXPECT_TRUE(mem_.WriteObj(kHdr, h).ok());
    EXPECT_TRUE(mem_.Write(kData, data).ok());
    std::vector<Buf> bufs = {{kHdr, 16, false}};
    for (size_t at = 0; at < data.size(); at += piece) {
      bufs.push_back({kData + at, static_cast<uint32_t>(std::min(piece, data.size() - at)), false});
    }
    bufs.push_back({kStatus, 1, true});
    (void)mem_.WriteObj<uint8_t>(kStatus, 0xee);
    TestQueue tq(mem_, kRings, 512);
    virtio::Queue queue = tq.MakeDeviceQueue(0);
    tq.WriteChain(0, bufs);
    tq.Publish(0);
    virtio::DescriptorChain chain;
    std::string error;
    EXPECT_EQ(queue.Pop(&chain, &error), virtio::Queue::PopResult::kChain) << error;
    handler.Handle(mem_, chain);
    return *mem_.ReadObj<uint8_t>(kStatus);
  }

  TempDir dir_;
  memory::GuestMemory mem_ = virtio::testing::MakeTestMemory();
};

TEST_F(BlockAttackTest, GuestWrittenQcowHeaderNeverReachesTheImage) {
  const std::string path = dir_.File("raw.img");
  const auto original = Pattern(kDiskSize, 1);
  WriteFileBytes(path, original);
  const auto attack = QcowAttackSector("/etc/shadow", kDiskSize);
  {
    // As `crosvm run --rwdisk raw.img` opens it: probed.
    auto disk = OpenDisk(path, true);
    ASSERT_TRUE(disk.ok()) << disk.error().ToString();
    ASSERT_EQ((*disk)->Format(), ImageFormat::kRaw);
    EXPECT_EQ(Write(disk->get(), 0, attack, 512), virtio::kBlkSIoErr);
    // The same header in small descriptors (each piece is checked with what is already there).
    EXPECT_EQ(Write(disk->get(), 0, attack, 2), virtio::kBlkSIoErr);
    // In the middle of a larger request.
    std::vector<uint8_t> big = Pattern(8192, 2);
    std::copy(attack.begin(), attack.end(), big.begin());
    EXPECT_EQ(Write(disk->get(), 0, big, 4096), virtio::kBlkSIoErr);
    // Ordinary writes, sector 0 included, still work.
    EXPECT_EQ(Write(disk->get(), 0, Pattern(4096, 3), 4096), virtio::kBlkSOk);
    EXPECT_EQ(Write(disk->get(), 1, attack, 512), virtio::kBlkSOk);  // not at sector 0
    ASSERT_TRUE((*disk)->Flush().ok());
  }
  auto bytes = ReadFileBytes(path);
  EXPECT_NE(bytes[0], 'Q');
  // Reopened as crosvm would: still raw, and it names no host file.
  auto again = OpenDisk(path, true);
  ASSERT_TRUE(again.ok()) << again.error().ToString();
  EXPECT_EQ((*again)->Format(), ImageFormat::kRaw);
}

// Had the header reached the image (an older crosvm, or format=raw), reopening it probed is
// refused instead of reading /etc/shadow.
TEST_F(BlockAttackTest, HeaderWrittenUnderFormatRawIsRefusedWhenProbed) {
  const std::string path = dir_.File("raw.img");
  WriteFileBytes(path, std::vector<uint8_t>(kDiskSize, 0));
  {
    auto disk = OpenDisk(path, OpenOptions{true, ImageFormat::kRaw, std::nullopt});
    ASSERT_TRUE(disk.ok()) << disk.error().ToString();
    EXPECT_EQ(Write(disk->get(), 0, QcowAttackSector("/etc/shadow", kDiskSize), 512),
              virtio::kBlkSOk);
  }
  for (bool writable : {true, false}) {
    auto r = OpenDisk(path, writable);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message().find(
                  "probed as qcow2 with backing file /etc/shadow; a probed image never follows a "
                  "backing file"),
              std::string::npos)
        << r.error().message();
  }
  // The user's explicit format=raw still opens it as the bytes they are.
  auto raw = OpenDisk(path, OpenOptions{false, ImageFormat::kRaw, std::nullopt});
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ((*raw)->Format(), ImageFormat::kRaw);
}

}  // namespace
}  // namespace crosvm::disk
