// Just enough of the i8042 keyboard controller for a guest to reset the machine (command 0xfe
// to port 0x64), which ends crosvm. No keyboard is attached.
#pragma once

#include <functional>

#include "devices/bus.h"

namespace crosvm::devices {

class I8042 : public BusDevice {
 public:
  // Inserted at port 0x64 (command/status), length 1. Port 0x60 (data) is left unhandled:
  // there is no keyboard, and port 0x61 between them belongs to the in-kernel PIT.
  explicit I8042(std::function<void()> reset) : reset_(std::move(reset)) {}

  std::string DebugName() const override { return "i8042"; }
  void Read(uint64_t offset, std::span<uint8_t> data) override;
  void Write(uint64_t offset, std::span<const uint8_t> data) override;

 private:
  std::function<void()> reset_;
};

}  // namespace crosvm::devices
