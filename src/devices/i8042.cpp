#include "devices/i8042.h"

#include <cstring>

namespace crosvm::devices {

namespace {
constexpr uint8_t kCmdResetCpu = 0xfe;
}  // namespace

void I8042::Read(uint64_t offset, std::span<uint8_t> data) {
  // Status: output buffer empty, input buffer empty, so a guest waiting to send a command
  // never spins.
  (void)offset;
  std::memset(data.data(), 0, data.size());
}

void I8042::Write(uint64_t offset, std::span<const uint8_t> data) {
  if (offset == 0 && data.size() == 1 && data[0] == kCmdResetCpu && reset_) reset_();
}

}  // namespace crosvm::devices
