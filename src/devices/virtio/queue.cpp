#include "devices/virtio/queue.h"

#include <bit>
#include <cstring>

#include "base/logging.h"
#include "base/strings.h"
#include "devices/virtio/virtio.h"

namespace crosvm::devices::virtio {
namespace {

using base::Hex;

// Ring layouts (2.6.6, 2.6.8): flags, idx, ring[size], then used_event / avail_event.
constexpr uint64_t kRingHeader = 4;
constexpr uint64_t kAvailElem = 2;
constexpr uint64_t kUsedElem = 8;

uint64_t AvailBytes(uint16_t size) {
  return kRingHeader + kAvailElem * size + 2;
}
uint64_t UsedBytes(uint16_t size) {
  return kRingHeader + kUsedElem * size + 2;
}

uint16_t LoadU16(uint8_t* p, std::memory_order order) {
  return std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(p)).load(order);
}
void StoreU16(uint8_t* p, uint16_t v, std::memory_order order) {
  std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(p)).store(v, order);
}

}  // namespace

Queue::Queue(uint16_t max_size) : max_size_(max_size) {
  Reset();
}

void Queue::Reset() {
  size = max_size_;
  ready = false;
  desc_table = avail_ring = used_ring = 0;
  msix_vector = kNoVector;
  mem_ = nullptr;
  avail_host_ = used_host_ = nullptr;
  event_idx_ = indirect_ = broken_ = false;
  next_avail_ = next_used_ = signalled_used_ = 0;
  signalled_valid_ = false;
  used_since_signal_ = 0;
}

base::Status Queue::Validate(const memory::GuestMemory& mem) const {
  if (size == 0 || size > max_size_ || !std::has_single_bit(size)) {
    return base::Error("queue size " + std::to_string(size) + " is not a power of two in 1.." +
                       std::to_string(max_size_));
  }
  if (desc_table % 16 || avail_ring % 2 || used_ring % 4) {
    return base::Error("queue rings are misaligned (descriptors " + Hex(desc_table) +
                       ", driver area " + Hex(avail_ring) + ", device area " + Hex(used_ring) +
                       ")");
  }
  if (!mem.IsValidRange(desc_table, uint64_t{16} * size)) {
    return base::Error("descriptor table at " + Hex(desc_table) + " is outside guest RAM");
  }
  if (!mem.IsValidRange(avail_ring, AvailBytes(size))) {
    return base::Error("driver area at " + Hex(avail_ring) + " is outside guest RAM");
  }
  if (!mem.IsValidRange(used_ring, UsedBytes(size))) {
    return base::Error("device area at " + Hex(used_ring) + " is outside guest RAM");
  }
  return base::Ok();
}

base::Status Queue::Activate(memory::GuestMemory* mem, uint64_t features) {
  CROSVM_RETURN_IF_ERROR(Validate(*mem));
  mem_ = mem;
  avail_host_ = mem->HostAddress(avail_ring, AvailBytes(size));
  used_host_ = mem->HostAddress(used_ring, UsedBytes(size));
  event_idx_ = features & Bit(kFeatureRingEventIdx);
  indirect_ = features & Bit(kFeatureRingIndirectDesc);
  broken_ = false;
  next_avail_ = next_used_ = signalled_used_ = 0;
  signalled_valid_ = false;
  used_since_signal_ = 0;
  // The used ring starts empty as far as the device is concerned.
  StoreU16(used_host_ + 2, 0, std::memory_order_release);
  return base::Ok();
}

uint16_t Queue::LoadAvailIdx() const {
  // Acquire: the ring entries and descriptors the driver wrote before publishing the index
  // are visible once we see it.
  return LoadU16(avail_host_ + 2, std::memory_order_acquire);
}

Queue::PopResult Queue::Pop(DescriptorChain* chain, std::string* error) {
  if (mem_ == nullptr || broken_) {
    *error = "queue is not active";
    return PopResult::kBroken;
  }
  uint16_t avail_idx = LoadAvailIdx();
  if (avail_idx == next_avail_) return PopResult::kEmpty;
  uint16_t pending = static_cast<uint16_t>(avail_idx - next_avail_);
  if (pending > size) {
    broken_ = true;
    *error = "avail->idx jumped to " + std::to_string(avail_idx) + ", " + std::to_string(pending) +
             " entries ahead of the device in a queue of " + std::to_string(size);
    return PopResult::kBroken;
  }
  uint16_t head = LoadU16(avail_host_ + kRingHeader + kAvailElem * (next_avail_ % size),
                          std::memory_order_relaxed);
  if (head >= size) {
    broken_ = true;
    *error = "avail ring entry " + std::to_string(next_avail_) + " names descriptor " +
             std::to_string(head) + " in a queue of " + std::to_string(size);
    return PopResult::kBroken;
  }
  ++next_avail_;
  return Walk(head, chain, error);
}

Queue::PopResult Queue::Walk(uint16_t head, DescriptorChain* chain, std::string* error) {
  chain->head = head;
  chain->descriptors.clear();
  chain->readable_count = 0;
  chain->readable_bytes = chain->writable_bytes = 0;

  uint64_t table = desc_table;
  uint32_t table_entries = size;
  bool in_indirect = false;
  uint32_t index = head;
  // A chain visits at most `size` descriptors of the queue's table (more means a loop), and
  // in all at most max_size_ descriptors including those of an indirect table.
  uint32_t direct_seen = 0;
  uint32_t total_seen = 0;
  const uint32_t total_limit = std::max<uint32_t>(size, max_size_);
  bool seen_writable = false;
  auto bad = [&](const std::string& why) {
    *error = "descriptor chain at head " + std::to_string(head) + ": " + why;
    return PopResult::kBadChain;
  };

  while (true) {
    if (!in_indirect && ++direct_seen > size) {
      return bad("longer than the queue size " + std::to_string(size) + " (a loop?)");
    }
    auto desc_or = mem_->ReadObj<VirtqDesc>(table + uint64_t{16} * index);
    if (!desc_or.ok()) return bad("descriptor table outside guest RAM");
    VirtqDesc d = *desc_or;
    // The descriptor that points to an indirect table is not a buffer of the chain: a request
    // with a full table of `size` buffers is valid (Linux's virtio-blk sends seg_max + 2).
    if (!(d.flags & kDescFIndirect) && ++total_seen > total_limit) {
      return bad("more than " + std::to_string(total_limit) + " descriptors (a loop?)");
    }

    if (d.flags & kDescFIndirect) {
      if (!indirect_) return bad("indirect descriptor without VIRTIO_F_INDIRECT_DESC");
      if (in_indirect) return bad("indirect descriptor inside an indirect table");
      if (d.flags & kDescFNext) return bad("indirect descriptor with the NEXT flag");
      if (d.len == 0 || d.len % 16 != 0) {
        return bad("indirect table length " + std::to_string(d.len) +
                   " is not a non-zero multiple of 16");
      }
      if (!mem_->IsValidRange(d.addr, d.len)) {
        return bad("indirect table at " + Hex(d.addr) + "+" + Hex(d.len) + " is outside guest RAM");
      }
      table = d.addr;
      table_entries = d.len / 16;
      in_indirect = true;
      index = 0;
      continue;
    }

    bool writable = d.flags & kDescFWrite;
    if (!writable && seen_writable) {
      return bad("device-readable descriptor after a device-writable one");
    }
    if (d.len > 0 && !mem_->IsValidRange(d.addr, d.len)) {
      return bad("buffer " + Hex(d.addr) + "+" + Hex(d.len) + " is outside guest RAM");
    }
    if (d.len > 0) {
      chain->descriptors.push_back(Descriptor{d.addr, d.len, writable});
      if (writable) {
        chain->writable_bytes += d.len;
      } else {
        ++chain->readable_count;
        chain->readable_bytes += d.len;
      }
    }
    seen_writable |= writable;
    if (!(d.flags & kDescFNext)) break;
    if (d.next >= table_entries) {
      return bad("next index " + std::to_string(d.next) + " is beyond the table of " +
                 std::to_string(table_entries));
    }
    index = d.next;
  }
  return PopResult::kChain;
}

void Queue::AddUsed(uint16_t head, uint32_t len) {
  if (mem_ == nullptr) return;
  uint8_t* elem = used_host_ + kRingHeader + kUsedElem * (next_used_ % size);
  uint32_t id = head;
  // Plain stores for the element; the release store of the index orders them (and the
  // buffer contents written before) ahead of it.
  std::atomic_ref<uint32_t>(*reinterpret_cast<uint32_t*>(elem))
      .store(id, std::memory_order_relaxed);
  std::atomic_ref<uint32_t>(*reinterpret_cast<uint32_t*>(elem + 4))
      .store(len, std::memory_order_relaxed);
  ++next_used_;
  ++used_since_signal_;
  std::atomic_thread_fence(std::memory_order_release);
  StoreU16(used_host_ + 2, next_used_, std::memory_order_release);
}

bool Queue::NeedsInterrupt() {
  if (mem_ == nullptr || used_since_signal_ == 0) return false;
  used_since_signal_ = 0;
  // The used->idx store must be visible before we read the driver's suppression state, or
  // we might miss the driver re-enabling interrupts (2.6.7.2).
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (!event_idx_) {
    uint16_t flags = LoadU16(avail_host_, std::memory_order_relaxed);
    return !(flags & kAvailFNoInterrupt);
  }
  uint16_t used_event =
      LoadU16(avail_host_ + kRingHeader + kAvailElem * size, std::memory_order_relaxed);
  uint16_t old_idx = signalled_used_;
  uint16_t new_idx = next_used_;
  bool valid = signalled_valid_;
  signalled_used_ = new_idx;
  signalled_valid_ = true;
  if (!valid) return true;
  // vring_need_event: interrupt when used_event lies in [old_idx, new_idx).
  return static_cast<uint16_t>(new_idx - used_event - 1) < static_cast<uint16_t>(new_idx - old_idx);
}

bool Queue::EnableNotification() {
  if (mem_ == nullptr || broken_) return false;
  if (event_idx_) {
    StoreU16(used_host_ + kRingHeader + kUsedElem * size, next_avail_, std::memory_order_relaxed);
  }
  // The avail_event store must be visible before we look at avail->idx again.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  return LoadAvailIdx() != next_avail_;
}

ChainReader::ChainReader(const memory::GuestMemory& mem, const DescriptorChain& chain)
    : mem_(mem),
      segs_(chain.descriptors.begin(),
            chain.descriptors.begin() + static_cast<long>(chain.readable_count)),
      remaining_(chain.readable_bytes) {}

bool ChainReader::Consume(uint64_t n, const std::function<bool(const uint8_t*, size_t)>& fn) {
  if (n > remaining_) return false;
  while (n > 0) {
    const Descriptor& d = segs_[seg_];
    uint64_t take = std::min<uint64_t>(n, d.len - off_);
    const uint8_t* p = mem_.HostAddress(d.addr + off_, take);
    if (p == nullptr || !fn(p, take)) return false;
    n -= take;
    remaining_ -= take;
    off_ += take;
    if (off_ == d.len) {
      ++seg_;
      off_ = 0;
    }
  }
  return true;
}

bool ChainReader::Read(std::span<uint8_t> out) {
  if (out.size() > remaining_) return false;
  size_t done = 0;
  return Consume(out.size(), [&](const uint8_t* p, size_t len) {
    std::memcpy(out.data() + done, p, len);
    done += len;
    return true;
  });
}

ChainWriter::ChainWriter(const memory::GuestMemory& mem, const DescriptorChain& chain,
                         uint64_t limit)
    : mem_(mem),
      segs_(chain.descriptors.begin() + static_cast<long>(chain.readable_count),
            chain.descriptors.end()),
      remaining_(std::min(limit, chain.writable_bytes)) {}

bool ChainWriter::Produce(uint64_t n, const std::function<bool(uint8_t*, size_t)>& fn) {
  if (n > remaining_) return false;
  while (n > 0) {
    const Descriptor& d = segs_[seg_];
    uint64_t take = std::min<uint64_t>(n, d.len - off_);
    uint8_t* p = mem_.HostAddress(d.addr + off_, take);
    if (p == nullptr || !fn(p, take)) return false;
    n -= take;
    remaining_ -= take;
    written_ += take;
    off_ += take;
    if (off_ == d.len) {
      ++seg_;
      off_ = 0;
    }
  }
  return true;
}

bool ChainWriter::Write(std::span<const uint8_t> data) {
  if (data.size() > remaining_) return false;
  size_t done = 0;
  return Produce(data.size(), [&](uint8_t* p, size_t len) {
    std::memcpy(p, data.data() + done, len);
    done += len;
    return true;
  });
}

}  // namespace crosvm::devices::virtio
