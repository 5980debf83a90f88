// virtio-blk (virtio 1.1, 5.2) over a disk::DiskFile (raw or qcow2): one request queue,
// requests IN, OUT, FLUSH, GET_ID, DISCARD and WRITE_ZEROES; everything else answers
// VIRTIO_BLK_S_UNSUPP. Read-only disks offer VIRTIO_BLK_F_RO and answer every modifying
// request with VIRTIO_BLK_S_IOERR.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>

#include "devices/virtio/virtio.h"
#include "devices/virtio/virtio_device.h"
#include "devices/virtio/worker.h"
#include "disk/disk.h"

namespace crosvm::devices::virtio {

// Feature bits (5.2.3).
inline constexpr int kBlkFSizeMax = 1;
inline constexpr int kBlkFSegMax = 2;
inline constexpr int kBlkFRo = 5;
inline constexpr int kBlkFBlkSize = 6;
inline constexpr int kBlkFFlush = 9;
inline constexpr int kBlkFDiscard = 13;
inline constexpr int kBlkFWriteZeroes = 14;

// Request types and status values (5.2.6).
inline constexpr uint32_t kBlkTIn = 0;
inline constexpr uint32_t kBlkTOut = 1;
inline constexpr uint32_t kBlkTFlush = 4;
inline constexpr uint32_t kBlkTGetId = 8;
inline constexpr uint32_t kBlkTDiscard = 11;
inline constexpr uint32_t kBlkTWriteZeroes = 13;
inline constexpr uint8_t kBlkSOk = 0;
inline constexpr uint8_t kBlkSIoErr = 1;
inline constexpr uint8_t kBlkSUnsupp = 2;
inline constexpr uint32_t kBlkDiscardFlagUnmap = 1;
inline constexpr size_t kBlkIdBytes = 20;
inline constexpr uint64_t kSectorSize = 512;

struct BlkRequestHeader {
  uint32_t type;
  uint32_t reserved;
  uint64_t sector;
};
static_assert(sizeof(BlkRequestHeader) == 16);

struct BlkDiscardWriteZeroes {
  uint64_t sector;
  uint32_t num_sectors;
  uint32_t flags;
};
static_assert(sizeof(BlkDiscardWriteZeroes) == 16);

// The limits the device advertises (and enforces) in its configuration space. A request with
// more than kSegMax data segments, or a segment larger than kSizeMax, is answered
// VIRTIO_BLK_S_IOERR without touching the disk: one request moves at most
// kSegMax * kSizeMax bytes.
struct BlkLimits {
  static constexpr uint32_t kQueueSize = 256;
  static constexpr uint32_t kSegMax = kQueueSize - 2;  // header and status take two
  static constexpr uint32_t kSizeMax = 1 << 20;
  static constexpr uint32_t kMaxDiscardSectors = UINT32_MAX >> 9;
  static constexpr uint32_t kMaxDiscardSeg = 32;
  static constexpr uint32_t kDiscardSectorAlignment = 8;  // 4 KiB
  static constexpr uint32_t kMaxWriteZeroesSectors = UINT32_MAX >> 9;
  static constexpr uint32_t kMaxWriteZeroesSeg = 32;
};

// Parses and executes one request chain. Separate from the device for tests and fuzzing.
class BlockRequestHandler {
 public:
  // `disk` must outlive the handler. `serial`: the GET_ID answer (at most 20 bytes used).
  // `write_through`: make every write durable before completing it, for a driver that did not
  // negotiate VIRTIO_BLK_F_FLUSH and so cannot ask for durability itself (virtio 1.x 5.2.6).
  BlockRequestHandler(disk::DiskFile* disk, std::string serial, bool write_through = false);
  // Returns the used length: bytes written into the chain (data and the status byte), or 0
  // when the chain has no room for a status byte.
  uint32_t Handle(const memory::GuestMemory& mem, const DescriptorChain& chain);
  bool read_only() const { return read_only_; }
  // The disk grew (or shrank): requests are checked against the new size from now on.
  void SetCapacity(uint64_t bytes) { capacity_bytes_.store(bytes / kSectorSize * kSectorSize); }
  // Requests refused for breaking the advertised seg_max / size_max limits.
  uint64_t over_limit_requests() const { return over_limit_.load(); }

 private:
  uint8_t DoDiscardOrWriteZeroes(uint32_t type, ChainReader& reader);

  disk::DiskFile* disk_;
  std::array<uint8_t, kBlkIdBytes> serial_{};
  bool read_only_;
  bool write_through_;
  std::atomic<uint64_t> capacity_bytes_;  // the disk size rounded down to whole sectors
  RateLimitedLog log_;
  std::atomic<uint64_t> over_limit_{0};
};

class BlockDevice : public VirtioDevice {
 public:
  // `name` identifies the device in logs ("virtio-blk vda"); `serial` answers GET_ID.
  BlockDevice(std::unique_ptr<disk::DiskFile> disk, std::string name, std::string serial);
  ~BlockDevice() override;

  uint32_t DeviceType() const override { return kTypeBlock; }
  std::string DebugName() const override { return name_; }
  uint32_t PciClassCode() const override;
  std::vector<uint16_t> QueueMaxSizes() const override { return {BlkLimits::kQueueSize}; }
  uint64_t Features() const override;
  void ReadConfig(uint64_t offset, std::span<uint8_t> data) const override;
  base::Status Activate(ActivateContext ctx) override;
  void Reset() override;
  void AppendKeptFds(std::vector<int>& fds) const override { disk_->AppendKeptFds(fds); }
  uint32_t ConfigGeneration() const override { return generation_.load(); }
  // DiskResize (device_control.h).
  base::Result<std::vector<uint8_t>> Control(uint32_t op,
                                             std::span<const uint8_t> payload) override;

  // Grows the disk to `new_size` bytes (a whole number of sectors): the image grows, the
  // capacity in the configuration space follows with a new generation, and the driver gets a
  // configuration-change interrupt. Shrinking is refused (ENOTSUP: the guest may have data
  // there), so is a read-only disk (EROFS). Waits for the request in flight, if any.
  base::Status Resize(uint64_t new_size);

  uint64_t capacity_sectors() const;

 private:
  std::unique_ptr<disk::DiskFile> disk_;
  std::string name_;
  std::string serial_;
  mutable std::mutex config_mu_;      // config_ (read by vCPUs, changed by Resize)
  std::array<uint8_t, 60> config_{};  // struct virtio_blk_config
  std::atomic<uint32_t> generation_{0};
  // Held shared while the worker serves a request, exclusively while the disk is resized.
  std::shared_ptr<std::shared_mutex> disk_mu_ = std::make_shared<std::shared_mutex>();
  std::mutex active_mu_;  // handler_ and interrupt_, against Activate / Reset
  std::shared_ptr<BlockRequestHandler> handler_;
  Interrupt* interrupt_ = nullptr;
  std::unique_ptr<Worker> worker_;
  RateLimitedLog activation_log_{2, std::chrono::seconds(60)};
};

// A GET_ID serial for the file at `path`: its device and inode numbers in hex, 20 characters
// at most; "" when the file cannot be examined.
std::string DiskSerial(const std::string& path);

}  // namespace crosvm::devices::virtio
