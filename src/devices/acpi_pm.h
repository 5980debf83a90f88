// The ACPI power-management registers the FADT points at (a legacy, fixed-hardware ACPI
// platform): the PM1a event block (status, enable), the PM1a control block and the PM timer,
// on 12 consecutive I/O ports. A guest entering the sleep state \_S5 (SLP_TYP = the \_S5 value,
// SLP_EN set) has powered off, and the callback ends the VM. Every other sleep request is
// ignored: WAK_STS is set at once, so a guest waiting to wake up goes on.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>

#include "devices/bus.h"

namespace crosvm::devices {

class AcpiPm : public BusDevice {
 public:
  // Offsets from the base port (the FADT's PM1a_EVT_BLK, PM1a_CNT_BLK and PM_TMR_BLK).
  static constexpr uint64_t kPm1Status = 0;   // 2 bytes, write 1 to clear
  static constexpr uint64_t kPm1Enable = 2;   // 2 bytes
  static constexpr uint64_t kPm1Control = 4;  // 2 bytes
  static constexpr uint64_t kPmTimer = 8;     // 4 bytes, read-only
  static constexpr uint64_t kSize = 12;

  static constexpr uint16_t kWakeStatus = 1 << 15;   // PM1 status WAK_STS
  static constexpr uint16_t kSciEnable = 1 << 0;     // PM1 control SCI_EN
  static constexpr uint16_t kSleepEnable = 1 << 13;  // PM1 control SLP_EN (write-only)
  static constexpr uint32_t kTimerHz = 3579545;

  // `s5_sleep_type`: the SLP_TYP value of \_S5 in the DSDT (0-7).
  AcpiPm(uint8_t s5_sleep_type, std::function<void()> power_off);

  std::string DebugName() const override { return "acpi-pm"; }
  void Read(uint64_t offset, std::span<uint8_t> data) override;
  void Write(uint64_t offset, std::span<const uint8_t> data) override;

 private:
  uint32_t TimerLocked() const;
  void LogIgnored(const std::string& message);

  const uint8_t s5_sleep_type_;
  std::function<void()> power_off_;
  const std::chrono::steady_clock::time_point start_;
  std::mutex mu_;
  uint16_t status_ = 0;
  uint16_t enable_ = 0;
  uint16_t control_ = kSciEnable;  // always in ACPI mode: there is no SMI_CMD
  bool powered_off_ = false;
  int logged_ = 0;  // guest-triggered messages logged so far (at most kMaxLogs)
};

}  // namespace crosvm::devices
