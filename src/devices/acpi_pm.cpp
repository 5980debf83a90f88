#include "devices/acpi_pm.h"

#include <cstring>
#include <string>

#include "base/logging.h"

namespace crosvm::devices {
namespace {

constexpr uint16_t kSleepTypeShift = 10;
constexpr uint16_t kSleepTypeMask = 0x7 << kSleepTypeShift;
// The enable bits that exist (TMR_EN, GBL_EN, PWRBTN_EN, SLPBTN_EN, RTC_EN, PCIEXP_WAKE_DIS).
constexpr uint16_t kEnableMask = 0x0001 | 0x0020 | 0x0100 | 0x0200 | 0x0400 | 0x4000;
// Control bits that read back: SCI_EN, BM_RLD, SLP_TYP (GBL_RLS and SLP_EN are write-only).
constexpr uint16_t kControlMask = 0x0001 | 0x0002 | kSleepTypeMask;
constexpr int kMaxLogs = 10;

}  // namespace

AcpiPm::AcpiPm(uint8_t s5_sleep_type, std::function<void()> power_off)
    : s5_sleep_type_(s5_sleep_type & 7),
      power_off_(std::move(power_off)),
      start_(std::chrono::steady_clock::now()) {}

uint32_t AcpiPm::TimerLocked() const {
  uint64_t ns = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                          std::chrono::steady_clock::now() - start_)
                                          .count());
  // ns * 3579545 / 1e9 without overflowing 64 bits; the counter wraps at 32 bits (TMR_VAL_EXT).
  uint64_t ticks = (ns / 1000000000) * kTimerHz + (ns % 1000000000) * kTimerHz / 1000000000;
  return static_cast<uint32_t>(ticks);
}

void AcpiPm::LogIgnored(const std::string& message) {
  if (logged_ >= kMaxLogs) return;
  ++logged_;
  CROSVM_LOG(WARNING) << "acpi-pm: " << message
                      << (logged_ == kMaxLogs ? " (no more such messages are logged)" : "");
}

void AcpiPm::Read(uint64_t offset, std::span<uint8_t> data) {
  uint8_t regs[kSize] = {};
  {
    std::lock_guard lock(mu_);
    std::memcpy(regs + kPm1Status, &status_, 2);
    std::memcpy(regs + kPm1Enable, &enable_, 2);
    std::memcpy(regs + kPm1Control, &control_, 2);
    uint32_t timer = TimerLocked();
    std::memcpy(regs + kPmTimer, &timer, 4);
  }
  for (size_t i = 0; i < data.size(); ++i) {
    data[i] = offset + i < kSize ? regs[offset + i] : 0xff;
  }
}

void AcpiPm::Write(uint64_t offset, std::span<const uint8_t> data) {
  // Accesses may be of any width at any offset (a guest is free to write PM1 status and enable
  // with one 32-bit write): gather what each register receives, byte by byte.
  uint16_t clear = 0, enable_bytes = 0, enable_mask = 0, control_bytes = 0, control_mask = 0;
  bool ignored = false;
  for (size_t i = 0; i < data.size(); ++i) {
    uint64_t at = offset + i;
    uint16_t b = data[i];
    if (at < kPm1Enable) {
      clear |= static_cast<uint16_t>(b << (8 * (at - kPm1Status)));
    } else if (at < kPm1Control) {
      enable_bytes |= static_cast<uint16_t>(b << (8 * (at - kPm1Enable)));
      enable_mask |= static_cast<uint16_t>(0xff << (8 * (at - kPm1Enable)));
    } else if (at < kPm1Control + 2) {
      control_bytes |= static_cast<uint16_t>(b << (8 * (at - kPm1Control)));
      control_mask |= static_cast<uint16_t>(0xff << (8 * (at - kPm1Control)));
    } else {
      ignored = true;  // the reserved bytes and the read-only timer
    }
  }

  bool power_off = false;
  std::string message;
  {
    std::lock_guard lock(mu_);
    status_ &= static_cast<uint16_t>(~clear);
    enable_ = static_cast<uint16_t>((enable_ & ~enable_mask) | (enable_bytes & enable_mask)) &
              kEnableMask;
    if (control_mask) {
      uint16_t value =
          static_cast<uint16_t>((control_ & ~control_mask) | (control_bytes & control_mask));
      // SCI_EN stays set: there is no legacy (SMM) mode to go back to.
      control_ = static_cast<uint16_t>((value & kControlMask) | kSciEnable);
      if ((control_mask & kSleepEnable) && (value & kSleepEnable)) {
        uint8_t type = static_cast<uint8_t>((value & kSleepTypeMask) >> kSleepTypeShift);
        if (type == s5_sleep_type_) {
          if (!powered_off_) power_off = true;
          powered_off_ = true;
        } else {
          // Only \_S5 exists in the DSDT. Wake up at once rather than leave the guest waiting.
          status_ |= kWakeStatus;
          message = "sleep type " + std::to_string(type) + " is not supported; ignored";
        }
      }
    }
    if (ignored) message = "write to read-only register at offset " + std::to_string(offset);
    if (!message.empty()) LogIgnored(message);
  }
  if (power_off && power_off_) power_off_();
}

}  // namespace crosvm::devices
