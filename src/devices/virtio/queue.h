// Split virtqueues (virtio 1.1, 2.6): the device side. Every value read from the rings and
// descriptor tables comes from the guest and is checked before use: ring placement and
// alignment, avail->idx running ahead, head and next indices, chain length (loops), buffers
// outside guest RAM, device-readable after device-writable descriptors, and indirect tables
// (feature negotiated, not nested, not chained, length a non-zero multiple of 16).
//
// A Queue is used by one thread at a time: configured by the transport, then handed to the
// device's worker thread on activation.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/rate_limited_log.h"
#include "memory/guest_memory.h"

namespace crosvm::devices::virtio {

inline constexpr uint16_t kDescFNext = 1;
inline constexpr uint16_t kDescFWrite = 2;
inline constexpr uint16_t kDescFIndirect = 4;
inline constexpr uint16_t kAvailFNoInterrupt = 1;
inline constexpr uint16_t kMaxQueueSize = 32768;

// struct virtq_desc.
struct VirtqDesc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
static_assert(sizeof(VirtqDesc) == 16);

struct Descriptor {
  uint64_t addr;
  uint32_t len;
  bool writable;
};

// One validated chain: every buffer lies in guest RAM, device-readable buffers come first.
struct DescriptorChain {
  uint16_t head = 0;
  std::vector<Descriptor> descriptors;
  size_t readable_count = 0;
  uint64_t readable_bytes = 0;
  uint64_t writable_bytes = 0;
};

class Queue {
 public:
  explicit Queue(uint16_t max_size);

  // --- Configuration, written by the transport before activation ---
  uint16_t max_size() const { return max_size_; }
  uint16_t size = 0;
  bool ready = false;
  uint64_t desc_table = 0;
  uint64_t avail_ring = 0;
  uint64_t used_ring = 0;
  uint16_t msix_vector = 0xffff;
  // Back to the reset state (size = max size, not ready, addresses 0).
  void Reset();
  // Checks the configuration against guest memory: size a power of two in 1..max_size, rings
  // aligned (16/2/4 bytes) and entirely inside guest RAM.
  base::Status Validate(const memory::GuestMemory& mem) const;

  // --- Device side, after activation ---
  // Validates and binds the queue to `mem` with the negotiated features.
  base::Status Activate(memory::GuestMemory* mem, uint64_t features);

  enum class PopResult {
    kEmpty,     // nothing available
    kChain,     // `chain` is a valid chain
    kBadChain,  // chain->head is a real head but the chain is invalid (see error): give it
                // back with AddUsed(head, 0)
    kBroken,    // the ring itself is inconsistent (see error): the device needs a reset
  };
  PopResult Pop(DescriptorChain* chain, std::string* error);
  // Publishes a used element (release ordering: the element and the buffers' contents are
  // visible before the new used->idx).
  void AddUsed(uint16_t head, uint32_t len);
  // Whether the driver wants an interrupt for the elements used since the last call
  // (VIRTQ_AVAIL_F_NO_INTERRUPT, or used_event with VIRTIO_F_EVENT_IDX).
  bool NeedsInterrupt();
  // With VIRTIO_F_EVENT_IDX: asks the driver to notify once it adds past what was popped.
  // Returns true when buffers are already available again (pop them before sleeping).
  bool EnableNotification();

  bool event_idx() const { return event_idx_; }
  bool broken() const { return broken_; }
  uint16_t next_avail() const { return next_avail_; }
  uint16_t next_used() const { return next_used_; }

 private:
  uint16_t LoadAvailIdx() const;
  PopResult Walk(uint16_t head, DescriptorChain* chain, std::string* error);

  uint16_t max_size_;
  memory::GuestMemory* mem_ = nullptr;
  uint8_t* avail_host_ = nullptr;
  uint8_t* used_host_ = nullptr;
  bool event_idx_ = false;
  bool indirect_ = false;
  bool broken_ = false;
  uint16_t next_avail_ = 0;
  uint16_t next_used_ = 0;
  uint16_t signalled_used_ = 0;
  bool signalled_valid_ = false;
  uint32_t used_since_signal_ = 0;
};

// Reads the device-readable part of a chain front to back.
class ChainReader {
 public:
  ChainReader(const memory::GuestMemory& mem, const DescriptorChain& chain);
  uint64_t remaining() const { return remaining_; }
  // Copies exactly out.size() bytes, or returns false (having consumed nothing).
  bool Read(std::span<uint8_t> out);
  template <typename T>
  bool ReadObj(T* out) {
    return Read({reinterpret_cast<uint8_t*>(out), sizeof(T)});
  }
  // Passes the next `n` bytes to `fn` one contiguous host piece at a time; stops at the first
  // false. Returns false if fewer than n bytes remain or fn failed.
  bool Consume(uint64_t n, const std::function<bool(const uint8_t*, size_t)>& fn);

 private:
  const memory::GuestMemory& mem_;
  std::vector<Descriptor> segs_;
  size_t seg_ = 0;
  uint64_t off_ = 0;
  uint64_t remaining_ = 0;
};

// Writes the device-writable part of a chain front to back, up to `limit` bytes.
class ChainWriter {
 public:
  ChainWriter(const memory::GuestMemory& mem, const DescriptorChain& chain,
              uint64_t limit = UINT64_MAX);
  uint64_t remaining() const { return remaining_; }
  uint64_t written() const { return written_; }
  bool Write(std::span<const uint8_t> data);
  // Passes the next `n` writable bytes to `fn` as host pieces (for reading from a file
  // straight into guest memory). Returns false if fewer remain or fn failed.
  bool Produce(uint64_t n, const std::function<bool(uint8_t*, size_t)>& fn);

 private:
  const memory::GuestMemory& mem_;
  std::vector<Descriptor> segs_;
  size_t seg_ = 0;
  uint64_t off_ = 0;
  uint64_t remaining_ = 0;
  uint64_t written_ = 0;
};

// Guest-triggered log lines are rate-limited (base/rate_limited_log.h).
using RateLimitedLog = base::RateLimitedLog;

}  // namespace crosvm::devices::virtio
