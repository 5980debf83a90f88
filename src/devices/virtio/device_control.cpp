#include "devices/virtio/device_control.h"

#include <algorithm>
#include <cerrno>
#include <string>

namespace crosvm::devices::virtio {
namespace {

void PutLe(std::vector<uint8_t>& out, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

uint64_t GetLe(std::span<const uint8_t> in, size_t pos, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v |= static_cast<uint64_t>(in[pos + i]) << (8 * i);
  return v;
}

base::Error SizeError(const char* what, size_t got, const std::string& want) {
  return base::Error(
      std::string(what) + ": payload of " + std::to_string(got) + " bytes, expected " + want,
      EINVAL);
}

}  // namespace

std::vector<uint8_t> EncodeU64(uint64_t v) {
  std::vector<uint8_t> out;
  PutLe(out, v, 8);
  return out;
}

base::Result<uint64_t> DecodeU64(std::span<const uint8_t> payload, const char* what) {
  if (payload.size() != 8) return SizeError(what, payload.size(), "8");
  return GetLe(payload, 0, 8);
}

base::Status DecodeEmpty(std::span<const uint8_t> payload, const char* what) {
  if (!payload.empty()) return SizeError(what, payload.size(), "0");
  return base::Ok();
}

std::vector<uint8_t> EncodeBalloonState(const BalloonControlState& s) {
  std::vector<uint8_t> out;
  PutLe(out, s.target_bytes, 8);
  PutLe(out, s.actual_bytes, 8);
  return out;
}

base::Result<BalloonControlState> DecodeBalloonState(std::span<const uint8_t> payload) {
  if (payload.size() != 16) return SizeError("balloon state", payload.size(), "16");
  return BalloonControlState{GetLe(payload, 0, 8), GetLe(payload, 8, 8)};
}

std::vector<uint8_t> EncodeBalloonStats(const BalloonControlState& s,
                                        std::span<const BalloonControlStat> stats) {
  auto out = EncodeBalloonState(s);
  const size_t n = std::min<size_t>(stats.size(), kMaxControlStats);
  PutLe(out, n, 4);
  for (size_t i = 0; i < n; ++i) {
    PutLe(out, stats[i].tag, 2);
    PutLe(out, stats[i].value, 8);
  }
  return out;
}

base::Result<BalloonControlState> DecodeBalloonStats(std::span<const uint8_t> payload,
                                                     std::vector<BalloonControlStat>* stats) {
  if (payload.size() < 20) return SizeError("balloon stats", payload.size(), "at least 20");
  const uint64_t count = GetLe(payload, 16, 4);
  if (count > kMaxControlStats) {
    return base::Error("balloon stats: " + std::to_string(count) + " entries", EINVAL);
  }
  if (payload.size() != 20 + count * 10) {
    return SizeError("balloon stats", payload.size(), std::to_string(20 + count * 10));
  }
  stats->clear();
  for (size_t i = 0; i < count; ++i) {
    size_t pos = 20 + i * 10;
    stats->push_back({static_cast<uint16_t>(GetLe(payload, pos, 2)), GetLe(payload, pos + 2, 8)});
  }
  return BalloonControlState{GetLe(payload, 0, 8), GetLe(payload, 8, 8)};
}

}  // namespace crosvm::devices::virtio
