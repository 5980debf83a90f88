// libFuzzer target: the split-virtqueue chain parser. The input is a header (queue size,
// negotiated ring features) followed by the guest's memory, which holds the descriptor table,
// the available and used rings and the buffers at fixed places: everything the driver controls
// comes from the input. Chains are popped, their buffers read and written, and used elements
// published, as a device would. Bad chains and broken rings are fine; crashes, sanitizer
// reports, accesses outside guest memory and hangs are not.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>

#include "base/logging.h"
#include "devices/virtio/queue.h"
#include "devices/virtio/virtio.h"
#include "memory/guest_memory.h"

namespace {

using crosvm::devices::virtio::Bit;
using crosvm::devices::virtio::ChainReader;
using crosvm::devices::virtio::ChainWriter;
using crosvm::devices::virtio::DescriptorChain;
using crosvm::devices::virtio::Queue;

// Two RAM regions with a hole between them, so buffers that straddle the hole are exercised.
constexpr uint64_t kLowSize = 64 << 10;
constexpr uint64_t kHighBase = 0x20000;
constexpr uint64_t kHighSize = 4 << 10;
constexpr uint64_t kDesc = 0x0, kAvail = 0x1000, kUsed = 0x2000;
constexpr size_t kHeader = 4;

crosvm::memory::GuestMemory& Memory() {
  static auto* mem = new crosvm::memory::GuestMemory(std::move(
      crosvm::memory::GuestMemory::Create({{0, kLowSize}, {kHighBase, kHighSize}}).value()));
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
  // Guest memory: the input after the header, zero-filled beyond it.
  const uint8_t* body = data + kHeader;
  size_t body_size = size - kHeader;
  uint8_t* low = mem.HostAddress(0, kLowSize);
  uint8_t* high = mem.HostAddress(kHighBase, kHighSize);
  size_t n = std::min<size_t>(body_size, kLowSize);
  std::memcpy(low, body, n);
  std::memset(low + n, 0, kLowSize - n);
  size_t m = body_size > kLowSize ? std::min<size_t>(body_size - kLowSize, kHighSize) : 0;
  std::memcpy(high, body + n, m);
  std::memset(high + m, 0, kHighSize - m);

  const uint16_t max_size = 256;
  Queue q(max_size);
  q.size = static_cast<uint16_t>(1u << (data[0] % 10));  // 1..512: 512 is refused
  q.desc_table = kDesc;
  q.avail_ring = kAvail;
  q.used_ring = kUsed;
  uint64_t features = 0;
  if (data[1] & 1) features |= Bit(crosvm::devices::virtio::kFeatureRingIndirectDesc);
  if (data[1] & 2) features |= Bit(crosvm::devices::virtio::kFeatureRingEventIdx);
  if (!q.Activate(&mem, features).ok()) return 0;

  DescriptorChain chain;
  std::string error;
  const uint8_t fill = data[2];
  // Buffers the device writes may overlap the rings, so a chain can change what comes next;
  // bound the work per input.
  for (int i = 0; i < 4 * max_size; ++i) {
    auto r = q.Pop(&chain, &error);
    if (r == Queue::PopResult::kEmpty) {
      if (!q.EnableNotification()) break;
      continue;
    }
    if (r == Queue::PopResult::kBroken) break;
    uint32_t len = 0;
    if (r == Queue::PopResult::kChain) {
      ChainReader reader(mem, chain);
      uint8_t sum = 0;
      reader.Consume(reader.remaining(), [&](const uint8_t* p, size_t len) {
        for (size_t j = 0; j < len; j += 512) sum = static_cast<uint8_t>(sum + p[j]);
        return true;
      });
      ChainWriter writer(mem, chain, chain.writable_bytes > 0 ? chain.writable_bytes - 1 : 0);
      writer.Produce(writer.remaining() / 2, [&](uint8_t* p, size_t len) {
        std::memset(p, fill ^ sum, len);
        return true;
      });
      uint8_t tail[3] = {1, 2, 3};
      writer.Write(tail);
      len = static_cast<uint32_t>(writer.written());
    }
    q.AddUsed(chain.head, len);
    if (data[3] & 1) (void)q.NeedsInterrupt();
  }
  (void)q.NeedsInterrupt();
  return 0;
}
