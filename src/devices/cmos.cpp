#include "devices/cmos.h"

namespace crosvm::devices {
namespace {

constexpr uint8_t kSeconds = 0x00, kMinutes = 0x02, kHours = 0x04, kWeekday = 0x06,
                  kDayOfMonth = 0x07, kMonth = 0x08, kYear = 0x09, kRegA = 0x0a, kRegB = 0x0b,
                  kRegC = 0x0c, kRegD = 0x0d, kCentury = 0x32;
constexpr uint8_t kSecondsAlarm = 0x01, kMinutesAlarm = 0x03, kHoursAlarm = 0x05;
constexpr uint8_t kRegB24Hour = 0x02;
constexpr uint8_t kRegBBinary = 0x04;
constexpr uint8_t kRegDValidRam = 0x80;

uint8_t ToBcd(int v) {
  return static_cast<uint8_t>(((v / 10) << 4) | (v % 10));
}

}  // namespace

Cmos::Cmos(uint64_t mem_below_4g, uint64_t mem_above_4g, Clock clock)
    : clock_(clock ? std::move(clock) : Clock([] { return time(nullptr); })) {
  ram_[kRegA] = 0x26;  // 32.768 kHz time base, 1024 Hz periodic rate; UIP clear
  ram_[kRegB] = kRegB24Hour;
  ram_[kRegD] = kRegDValidRam;
  // Extended memory above 16 MiB, in 64 KiB units (saturating), and above 4 GiB.
  constexpr uint64_t k16M = 16 << 20;
  uint64_t ext = mem_below_4g > k16M ? (mem_below_4g - k16M) >> 16 : 0;
  if (ext > 0xffff) ext = 0xffff;
  ram_[0x34] = ext & 0xff;
  ram_[0x35] = ext >> 8;
  uint64_t high = mem_above_4g >> 16;
  ram_[0x5b] = high & 0xff;
  ram_[0x5c] = (high >> 8) & 0xff;
  ram_[0x5d] = (high >> 16) & 0xff;
}

uint8_t Cmos::EncodeTimeField(int value, uint8_t reg_b, bool is_hours) {
  bool pm = false;
  if (is_hours && !(reg_b & kRegB24Hour)) {
    pm = value >= 12;
    value %= 12;
    if (value == 0) value = 12;
  }
  uint8_t encoded = (reg_b & kRegBBinary) ? static_cast<uint8_t>(value) : ToBcd(value);
  return pm ? (encoded | 0x80) : encoded;
}

uint8_t Cmos::ReadData() {
  uint8_t b = ram_[kRegB];
  auto time_field = [&](int v, bool hours = false) { return EncodeTimeField(v, b, hours); };
  if (index_ <= kYear || index_ == kCentury) {
    time_t now = clock_();
    tm t{};
    gmtime_r(&now, &t);
    int year = t.tm_year + 1900;
    switch (index_) {
      case kSeconds:
        return time_field(t.tm_sec);
      case kMinutes:
        return time_field(t.tm_min);
      case kHours:
        return time_field(t.tm_hour, true);
      case kWeekday:
        return time_field(t.tm_wday + 1);
      case kDayOfMonth:
        return time_field(t.tm_mday);
      case kMonth:
        return time_field(t.tm_mon + 1);
      case kYear:
        return time_field(year % 100);
      case kCentury:
        return time_field(year / 100);
      default:  // alarm registers
        return ram_[index_];
    }
  }
  if (index_ == kRegC) {
    uint8_t c = ram_[kRegC];
    ram_[kRegC] = 0;  // reading C acknowledges pending RTC interrupts
    return c;
  }
  return ram_[index_];
}

void Cmos::Read(uint64_t offset, std::span<uint8_t> data) {
  std::lock_guard lock(mu_);
  for (size_t i = 0; i < data.size(); ++i) {
    // Port 0x70 (index) is write-only; reads of it answer 0xff like an unconnected port.
    data[i] = (offset + i == 1) ? ReadData() : 0xff;
  }
}

void Cmos::Write(uint64_t offset, std::span<const uint8_t> data) {
  std::lock_guard lock(mu_);
  for (size_t i = 0; i < data.size(); ++i) {
    if (offset + i == 0) {
      index_ = data[i] & 0x7f;  // bit 7 is the NMI mask
    } else if (offset + i == 1) {
      // The time itself follows the host clock; writes to time registers are ignored. The
      // alarm registers (0x01, 0x03, 0x05) and CMOS RAM keep what the guest writes.
      bool is_time = index_ <= kYear && index_ != kSecondsAlarm && index_ != kMinutesAlarm &&
                     index_ != kHoursAlarm;
      if (!is_time && index_ != kRegC && index_ != kRegD && index_ != kCentury) {
        ram_[index_] = (index_ == kRegA) ? (data[i] & 0x7f) : data[i];
      }
    }
  }
}

}  // namespace crosvm::devices
