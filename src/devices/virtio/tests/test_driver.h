// A minimal virtio "driver" for tests: lays out a split virtqueue in a GuestMemory built by
// the test and writes descriptors and ring entries the way a guest would (or, for the hostile
// cases, the way a broken or malicious guest would).
#pragma once

#include <cstdint>
#include <vector>

#include "devices/virtio/queue.h"
#include "memory/guest_memory.h"

namespace crosvm::devices::virtio::testing {

inline constexpr uint64_t kTestMemSize = 4 << 20;

// Guest memory of kTestMemSize bytes at guest address 0.
memory::GuestMemory MakeTestMemory();

struct Buf {
  uint64_t addr;
  uint32_t len;
  bool writable;
};

class TestQueue {
 public:
  // Rings at `base` (descriptors), then the driver and device areas; `size` entries.
  TestQueue(memory::GuestMemory& mem, uint64_t base, uint16_t size);

  uint64_t desc_addr() const { return desc_; }
  uint64_t avail_addr() const { return avail_; }
  uint64_t used_addr() const { return used_; }
  uint16_t size() const { return size_; }

  // A device-side Queue configured with this layout and activated with `features`.
  Queue MakeDeviceQueue(uint64_t features) const;

  void SetDesc(uint16_t index, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next);
  // Writes `bufs` as a chain in descriptors [first, first + n) and returns `first`.
  uint16_t WriteChain(uint16_t first, const std::vector<Buf>& bufs);
  // Writes an indirect table at `table` holding `bufs`, and a descriptor at `index` pointing
  // to it.
  void WriteIndirect(uint16_t index, uint64_t table, const std::vector<Buf>& bufs);
  // Makes `head` available (ring entry, then idx with release semantics).
  void Publish(uint16_t head);
  void SetAvailIdx(uint16_t idx);
  void SetAvailFlags(uint16_t flags);
  void SetUsedEvent(uint16_t v);
  // Zeroes the rings and the driver's avail index (a driver starting over after a reset).
  void Clear();

  uint16_t UsedIdx() const;
  std::pair<uint32_t, uint32_t> UsedElem(uint16_t i) const;  // (id, len)
  uint16_t AvailEvent() const;

 private:
  memory::GuestMemory& mem_;
  uint64_t desc_, avail_, used_;
  uint16_t size_;
  uint16_t avail_idx_ = 0;
};

}  // namespace crosvm::devices::virtio::testing
