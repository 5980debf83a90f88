// libFuzzer target: the virtio-blk request parser. The input is a header (queue size, ring
// features, disk size and read-only flag) followed by the guest's memory with the rings,
// requests and buffers. Each chain the queue hands out goes to BlockRequestHandler, backed by
// an in-memory disk. Error statuses are fine; crashes, sanitizer reports, accesses outside
// guest memory or the disk, and hangs are not.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "base/logging.h"
#include "devices/virtio/block.h"
#include "devices/virtio/queue.h"
#include "devices/virtio/virtio.h"
#include "disk/disk.h"
#include "memory/guest_memory.h"

namespace {

using crosvm::base::Error;
using crosvm::base::Result;
using crosvm::base::Status;
using crosvm::devices::virtio::Bit;
using crosvm::devices::virtio::BlockRequestHandler;
using crosvm::devices::virtio::DescriptorChain;
using crosvm::devices::virtio::Queue;

// A disk in memory that checks every access against its size (the DiskFile contract).
class MemDisk : public crosvm::disk::DiskFile {
 public:
  MemDisk(uint64_t size, bool read_only) : bytes_(size, 0x5a), read_only_(read_only) {}
  Result<size_t> ReadAt(uint64_t offset, std::span<uint8_t> buf) override {
    if (!crosvm::disk::RangeFits(offset, buf.size(), bytes_.size())) return Error("range");
    std::memcpy(buf.data(), bytes_.data() + offset, buf.size());
    return buf.size();
  }
  Result<size_t> WriteAt(uint64_t offset, std::span<const uint8_t> buf) override {
    if (read_only_) __builtin_trap();  // the handler must never write a read-only disk
    if (!crosvm::disk::RangeFits(offset, buf.size(), bytes_.size())) return Error("range");
    std::memcpy(bytes_.data() + offset, buf.data(), buf.size());
    return buf.size();
  }
  Status Flush() override { return crosvm::base::Ok(); }
  Status Discard(uint64_t offset, uint64_t length) override { return WriteZeroes(offset, length); }
  Status WriteZeroes(uint64_t offset, uint64_t length) override {
    if (read_only_) __builtin_trap();
    if (!crosvm::disk::RangeFits(offset, length, bytes_.size())) return Error("range");
    std::memset(bytes_.data() + offset, 0, length);
    return crosvm::base::Ok();
  }
  Status Resize(uint64_t) override { return Error("no"); }
  uint64_t VirtualSize() const override { return bytes_.size(); }
  bool ReadOnly() const override { return read_only_; }
  crosvm::disk::ImageFormat Format() const override { return crosvm::disk::ImageFormat::kRaw; }
  void AppendKeptFds(std::vector<int>&) const override {}  // memory only, no fds

 private:
  std::vector<uint8_t> bytes_;
  bool read_only_;
};

constexpr uint64_t kMemSize = 64 << 10;
constexpr uint64_t kDesc = 0x0, kAvail = 0x1000, kUsed = 0x2000;
constexpr size_t kHeader = 4;

crosvm::memory::GuestMemory& Memory() {
  static auto* mem = new crosvm::memory::GuestMemory(
      std::move(crosvm::memory::GuestMemory::Create({{0, kMemSize}}).value()));
  return *mem;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Bad chains are logged (rate-limited) by design; keep the fuzzer's output readable.
  crosvm::base::SetLogLevel(crosvm::base::LogLevel::kError);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < kHeader) return 0;
  auto& mem = Memory();
  uint8_t* host = mem.HostAddress(0, kMemSize);
  size_t n = std::min<size_t>(size - kHeader, kMemSize);
  std::memcpy(host, data + kHeader, n);
  std::memset(host + n, 0, kMemSize - n);

  Queue q(256);
  q.size = static_cast<uint16_t>(1u << (data[0] % 9));
  q.desc_table = kDesc;
  q.avail_ring = kAvail;
  q.used_ring = kUsed;
  uint64_t features = 0;
  if (data[1] & 1) features |= Bit(crosvm::devices::virtio::kFeatureRingIndirectDesc);
  if (data[1] & 2) features |= Bit(crosvm::devices::virtio::kFeatureRingEventIdx);
  if (!q.Activate(&mem, features).ok()) return 0;

  // Disk sizes around a few sectors, not always a whole number of them.
  uint64_t disk_size = static_cast<uint64_t>(data[2]) * 97;
  MemDisk disk(disk_size, data[3] & 1);
  BlockRequestHandler handler(&disk, "fuzz-serial");
  DescriptorChain chain;
  std::string error;
  for (int i = 0; i < 1024; ++i) {
    auto r = q.Pop(&chain, &error);
    if (r == Queue::PopResult::kEmpty || r == Queue::PopResult::kBroken) break;
    uint32_t len = r == Queue::PopResult::kChain ? handler.Handle(mem, chain) : 0;
    if (len > chain.writable_bytes) __builtin_trap();  // never claims more than it could write
    q.AddUsed(chain.head, len);
  }
  (void)q.NeedsInterrupt();
  return 0;
}
