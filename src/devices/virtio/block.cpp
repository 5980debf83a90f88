#include "devices/virtio/block.h"

#include <sys/stat.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "base/logging.h"
#include "devices/pci/pci_config.h"
#include "devices/virtio/device_control.h"
#include "devices/virtio/virtio.h"

namespace crosvm::devices::virtio {
namespace {

template <typename T>
void Put(std::array<uint8_t, 60>& config, size_t offset, T value) {
  std::memcpy(config.data() + offset, &value, sizeof(T));
}

}  // namespace

BlockRequestHandler::BlockRequestHandler(disk::DiskFile* disk, std::string serial,
                                         bool write_through)
    : disk_(disk),
      read_only_(disk->ReadOnly()),
      write_through_(write_through && !disk->ReadOnly()),
      capacity_bytes_(disk->VirtualSize() / kSectorSize * kSectorSize) {
  std::memcpy(serial_.data(), serial.data(), std::min(serial.size(), serial_.size()));
}

uint32_t BlockRequestHandler::Handle(const memory::GuestMemory& mem, const DescriptorChain& chain) {
  // The status byte is the last byte of the last (device-writable) descriptor.
  if (chain.writable_bytes == 0 || chain.descriptors.empty() ||
      !chain.descriptors.back().writable) {
    log_.Warn("virtio-blk: request without room for a status byte; dropped");
    return 0;
  }
  const Descriptor& last = chain.descriptors.back();
  uint8_t* status_ptr = mem.HostAddress(last.addr + last.len - 1, 1);
  if (status_ptr == nullptr) return 0;
  const uint64_t data_writable = chain.writable_bytes - 1;
  // seg_max counts data segments: the header and the status descriptor come on top. A driver
  // that negotiated SIZE_MAX / SEG_MAX never exceeds them; one that did not is held to them all
  // the same (the spec lets the device refuse what it cannot do), so no request costs more
  // than kSegMax * kSizeMax bytes of I/O.
  bool over_limit = chain.descriptors.size() > BlkLimits::kSegMax + 2;
  for (const Descriptor& d : chain.descriptors) over_limit |= d.len > BlkLimits::kSizeMax;
  if (over_limit) {
    over_limit_.fetch_add(1);
    log_.Warn("virtio-blk: request of " + std::to_string(chain.descriptors.size()) +
              " segments beyond seg_max " + std::to_string(BlkLimits::kSegMax) + " or size_max " +
              std::to_string(BlkLimits::kSizeMax) + "; refused");
    *status_ptr = kBlkSIoErr;
    return 1;
  }

  ChainReader reader(mem, chain);
  ChainWriter writer(mem, chain, data_writable);
  BlkRequestHeader hdr{};
  uint8_t status = kBlkSOk;
  if (!reader.ReadObj(&hdr)) {
    log_.Warn("virtio-blk: request shorter than its 16-byte header");
    status = kBlkSIoErr;
  } else {
    switch (hdr.type) {
      case kBlkTIn: {
        uint64_t len = data_writable;
        uint64_t offset = hdr.sector * kSectorSize;
        if (len % kSectorSize != 0 || hdr.sector > UINT64_MAX / kSectorSize ||
            !disk::RangeFits(offset, len, capacity_bytes_)) {
          status = kBlkSIoErr;
          break;
        }
        bool ok = writer.Produce(len, [&](uint8_t* p, size_t n) {
          auto r = disk_->ReadAt(offset, {p, n});
          if (!r.ok()) {
            log_.Warn("virtio-blk: read failed: " + r.error().ToString());
            return false;
          }
          offset += n;
          return true;
        });
        if (!ok) status = kBlkSIoErr;
        break;
      }
      case kBlkTOut: {
        uint64_t len = reader.remaining();
        uint64_t offset = hdr.sector * kSectorSize;
        if (read_only_ || len % kSectorSize != 0 || hdr.sector > UINT64_MAX / kSectorSize ||
            !disk::RangeFits(offset, len, capacity_bytes_)) {
          status = kBlkSIoErr;
          break;
        }
        bool ok = reader.Consume(len, [&](const uint8_t* p, size_t n) {
          auto r = disk_->WriteAt(offset, {p, n});
          if (!r.ok()) {
            log_.Warn("virtio-blk: write failed: " + r.error().ToString());
            return false;
          }
          offset += n;
          return true;
        });
        if (!ok) status = kBlkSIoErr;
        break;
      }
      case kBlkTFlush:
        if (!read_only_) {
          auto r = disk_->Flush();
          if (!r.ok()) {
            log_.Warn("virtio-blk: flush failed: " + r.error().ToString());
            status = kBlkSIoErr;
          }
        }
        break;
      case kBlkTGetId: {
        uint64_t n = std::min<uint64_t>(kBlkIdBytes, data_writable);
        writer.Write({serial_.data(), n});
        break;
      }
      case kBlkTDiscard:
      case kBlkTWriteZeroes:
        status = read_only_ ? kBlkSIoErr : DoDiscardOrWriteZeroes(hdr.type, reader);
        break;
      default:
        status = kBlkSUnsupp;
        break;
    }
  }
  const bool modifies =
      hdr.type == kBlkTOut || hdr.type == kBlkTDiscard || hdr.type == kBlkTWriteZeroes;
  if (status == kBlkSOk && write_through_ && modifies) {
    auto r = disk_->Flush();
    if (!r.ok()) {
      log_.Warn("virtio-blk: write-through flush failed: " + r.error().ToString());
      status = kBlkSIoErr;
    }
  }
  *status_ptr = status;
  uint64_t used = writer.written() + 1;
  return static_cast<uint32_t>(std::min<uint64_t>(used, UINT32_MAX));
}

uint8_t BlockRequestHandler::DoDiscardOrWriteZeroes(uint32_t type, ChainReader& reader) {
  const bool discard = type == kBlkTDiscard;
  const uint32_t max_seg = discard ? BlkLimits::kMaxDiscardSeg : BlkLimits::kMaxWriteZeroesSeg;
  const uint32_t max_sectors =
      discard ? BlkLimits::kMaxDiscardSectors : BlkLimits::kMaxWriteZeroesSectors;
  uint64_t len = reader.remaining();
  if (len == 0 || len % sizeof(BlkDiscardWriteZeroes) != 0 ||
      len / sizeof(BlkDiscardWriteZeroes) > max_seg) {
    return kBlkSIoErr;
  }
  // Every segment is checked before any is executed.
  std::vector<BlkDiscardWriteZeroes> segs(len / sizeof(BlkDiscardWriteZeroes));
  for (auto& s : segs) {
    if (!reader.ReadObj(&s)) return kBlkSIoErr;
    if (s.flags & ~kBlkDiscardFlagUnmap) return kBlkSUnsupp;
    if (discard && (s.flags & kBlkDiscardFlagUnmap)) return kBlkSUnsupp;
    if (s.num_sectors > max_sectors || s.sector > UINT64_MAX / kSectorSize ||
        !disk::RangeFits(s.sector * kSectorSize, uint64_t{s.num_sectors} * kSectorSize,
                         capacity_bytes_)) {
      return kBlkSIoErr;
    }
  }
  for (const auto& s : segs) {
    if (s.num_sectors == 0) continue;
    uint64_t offset = s.sector * kSectorSize;
    uint64_t bytes = uint64_t{s.num_sectors} * kSectorSize;
    auto r = discard ? disk_->Discard(offset, bytes) : disk_->WriteZeroes(offset, bytes);
    if (!r.ok()) {
      log_.Warn(std::string("virtio-blk: ") + (discard ? "discard" : "write zeroes") +
                " failed: " + r.error().ToString());
      return kBlkSIoErr;
    }
  }
  return kBlkSOk;
}

BlockDevice::BlockDevice(std::unique_ptr<disk::DiskFile> disk, std::string name, std::string serial)
    : disk_(std::move(disk)), name_(std::move(name)), serial_(std::move(serial)) {
  // struct virtio_blk_config (5.2.4).
  Put<uint64_t>(config_, 0, capacity_sectors());
  Put<uint32_t>(config_, 8, BlkLimits::kSizeMax);
  Put<uint32_t>(config_, 12, BlkLimits::kSegMax);
  Put<uint32_t>(config_, 20, static_cast<uint32_t>(kSectorSize));  // blk_size
  Put<uint16_t>(config_, 34, 1);                                   // num_queues
  Put<uint32_t>(config_, 36, BlkLimits::kMaxDiscardSectors);
  Put<uint32_t>(config_, 40, BlkLimits::kMaxDiscardSeg);
  Put<uint32_t>(config_, 44, BlkLimits::kDiscardSectorAlignment);
  Put<uint32_t>(config_, 48, BlkLimits::kMaxWriteZeroesSectors);
  Put<uint32_t>(config_, 52, BlkLimits::kMaxWriteZeroesSeg);
  Put<uint8_t>(config_, 56, 0);  // write_zeroes_may_unmap
}

BlockDevice::~BlockDevice() {
  Reset();
}

uint32_t BlockDevice::PciClassCode() const {
  return pci::kClassStorageOther;
}

uint64_t BlockDevice::capacity_sectors() const {
  return disk_->VirtualSize() / kSectorSize;
}

uint64_t BlockDevice::Features() const {
  uint64_t f = Bit(kBlkFSizeMax) | Bit(kBlkFSegMax) | Bit(kBlkFBlkSize) | Bit(kBlkFFlush) |
               Bit(kFeatureRingIndirectDesc) | Bit(kFeatureRingEventIdx);
  if (disk_->ReadOnly()) {
    f |= Bit(kBlkFRo);
  } else {
    f |= Bit(kBlkFDiscard) | Bit(kBlkFWriteZeroes);
  }
  return f;
}

void BlockDevice::ReadConfig(uint64_t offset, std::span<uint8_t> data) const {
  std::lock_guard lock(config_mu_);
  for (size_t i = 0; i < data.size(); ++i) {
    data[i] = offset + i < config_.size() ? config_[offset + i] : 0;
  }
}

base::Status BlockDevice::Activate(ActivateContext ctx) {
  Reset();
  // A driver that did not accept VIRTIO_BLK_F_FLUSH gets a write-through device.
  const bool write_through = !(ctx.features & Bit(kBlkFFlush));
  if (write_through && !disk_->ReadOnly()) {
    // The driver can reset and activate the device as often as it likes: rate-limited.
    CROSVM_LOG_RATE_LIMITED(activation_log_, INFO)
        << name_ << ": the driver did not negotiate FLUSH: writes are write-through";
  }
  auto handler = std::make_shared<BlockRequestHandler>(disk_.get(), serial_, write_through);
  Interrupt* interrupt = ctx.interrupt;
  auto disk_mu = disk_mu_;
  CROSVM_ASSIGN_OR_RETURN(worker_,
                          StartSingleQueueWorker(name_, std::move(ctx),
                                                 [handler, disk_mu](const memory::GuestMemory& mem,
                                                                    const DescriptorChain& chain) {
                                                   std::shared_lock lock(*disk_mu);
                                                   return handler->Handle(mem, chain);
                                                 }));
  std::lock_guard lock(active_mu_);
  handler_ = std::move(handler);
  interrupt_ = interrupt;
  return base::Ok();
}

void BlockDevice::Reset() {
  {
    std::lock_guard lock(active_mu_);
    handler_.reset();
    interrupt_ = nullptr;
  }
  worker_.reset();
}

base::Result<std::vector<uint8_t>> BlockDevice::Control(uint32_t op,
                                                        std::span<const uint8_t> payload) {
  if (static_cast<ControlOp>(op) != ControlOp::kDiskResize)
    return VirtioDevice::Control(op, payload);
  CROSVM_ASSIGN_OR_RETURN(uint64_t size, DecodeU64(payload, "disk resize"));
  CROSVM_RETURN_IF_ERROR(Resize(size));
  return EncodeU64(disk_->VirtualSize());
}

base::Status BlockDevice::Resize(uint64_t new_size) {
  if (disk_->ReadOnly()) return base::Error(name_ + ": the disk is read-only", EROFS);
  if (new_size == 0 || new_size % kSectorSize != 0) {
    return base::Error(name_ + ": the new size must be a positive multiple of 512 bytes", EINVAL);
  }
  {
    std::unique_lock disk_lock(*disk_mu_);
    const uint64_t old_size = disk_->VirtualSize();
    if (new_size < old_size) {
      return base::Error(name_ + ": shrinking from " + std::to_string(old_size) + " to " +
                             std::to_string(new_size) +
                             " bytes is refused: the guest may keep data there",
                         ENOTSUP);
    }
    if (new_size == old_size) return base::Ok();
    auto resized = disk_->Resize(new_size);
    if (!resized.ok()) return resized.error().Wrap(name_ + ": resize");
  }
  std::lock_guard lock(active_mu_);
  if (handler_) handler_->SetCapacity(disk_->VirtualSize());
  {
    std::lock_guard cfg(config_mu_);
    Put<uint64_t>(config_, 0, capacity_sectors());
  }
  generation_.fetch_add(1);
  if (interrupt_ != nullptr) interrupt_->SignalConfigChanged();
  return base::Ok();
}

std::string DiskSerial(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return "";
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%lx%lx", static_cast<unsigned long>(st.st_dev),
                static_cast<unsigned long>(st.st_ino));
  return std::string(buf).substr(0, kBlkIdBytes);
}

}  // namespace crosvm::devices::virtio
