// The MC146818 CMOS RTC at ports 0x70/0x71: the guest reads the host's current calendar time
// (UTC) and a few bytes of CMOS RAM (memory size below and above 4 GiB).
#pragma once

#include <array>
#include <ctime>
#include <functional>
#include <mutex>

#include "devices/bus.h"

namespace crosvm::devices {

class Cmos : public BusDevice {
 public:
  using Clock = std::function<time_t()>;
  // `mem_below_4g` and `mem_above_4g` are the guest RAM sizes reported in CMOS bytes 0x34/0x35
  // and 0x5b-0x5d. `clock` defaults to time(nullptr); tests pass their own.
  Cmos(uint64_t mem_below_4g, uint64_t mem_above_4g, Clock clock = {});

  std::string DebugName() const override { return "cmos"; }
  void Read(uint64_t offset, std::span<uint8_t> data) override;
  void Write(uint64_t offset, std::span<const uint8_t> data) override;

  // Register B as written by the guest decides BCD vs binary and 12/24-hour encoding.
  static uint8_t EncodeTimeField(int value, uint8_t reg_b, bool is_hours);

 private:
  uint8_t ReadData();
  std::mutex mu_;
  Clock clock_;
  uint8_t index_ = 0;
  std::array<uint8_t, 128> ram_{};
};

}  // namespace crosvm::devices
