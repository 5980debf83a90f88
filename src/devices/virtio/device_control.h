// The typed requests the VMM sends a virtio device outside the bus (PciDevice::DeviceControl):
// an op number and a little-endian payload, the same whether the device runs in the VMM or in
// its own process (where they travel as the proxy's DeviceControl request). Decoding checks
// the exact payload size.
//
//   op                     payload                 reply
//   1 BalloonSetTarget     u64 target bytes        u64 target bytes, u64 actual bytes
//   2 BalloonQuery         none                    u64 target bytes, u64 actual bytes
//   3 BalloonStats         none                    u64 target, u64 actual, u32 count,
//                                                  count x (u16 tag, u64 value)
//   4 DiskResize           u64 new size in bytes   u64 new size in bytes
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/error.h"

namespace crosvm::devices::virtio {

enum class ControlOp : uint32_t {
  kBalloonSetTarget = 1,
  kBalloonQuery = 2,
  kBalloonStats = 3,
  kDiskResize = 4,
};

// The most stats entries a BalloonStats reply carries.
inline constexpr uint32_t kMaxControlStats = 64;

struct BalloonControlState {
  uint64_t target_bytes = 0;
  uint64_t actual_bytes = 0;
};
struct BalloonControlStat {
  uint16_t tag = 0;
  uint64_t value = 0;
};

std::vector<uint8_t> EncodeU64(uint64_t v);
// Exactly 8 bytes, or an EINVAL error naming `what`.
base::Result<uint64_t> DecodeU64(std::span<const uint8_t> payload, const char* what);
// No payload at all, or EINVAL.
base::Status DecodeEmpty(std::span<const uint8_t> payload, const char* what);

std::vector<uint8_t> EncodeBalloonState(const BalloonControlState& s);
base::Result<BalloonControlState> DecodeBalloonState(std::span<const uint8_t> payload);

std::vector<uint8_t> EncodeBalloonStats(const BalloonControlState& s,
                                        std::span<const BalloonControlStat> stats);
base::Result<BalloonControlState> DecodeBalloonStats(std::span<const uint8_t> payload,
                                                     std::vector<BalloonControlStat>* stats);

}  // namespace crosvm::devices::virtio
