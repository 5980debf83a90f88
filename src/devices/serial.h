// A 16550A UART: the guest's console. Output goes to an fd (stdout); input is queued by the
// main loop from stdin. Interrupts are raised through a callback (an irqfd write).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>

#include "devices/bus.h"

namespace crosvm::devices {

class Serial : public BusDevice {
 public:
  // Register offsets from the base port.
  static constexpr uint64_t kData = 0;  // RBR/THR, or DLL when LCR.DLAB
  static constexpr uint64_t kIer = 1;   // or DLM when LCR.DLAB
  static constexpr uint64_t kIir = 2;   // read: IIR, write: FCR
  static constexpr uint64_t kLcr = 3;
  static constexpr uint64_t kMcr = 4;
  static constexpr uint64_t kLsr = 5;
  static constexpr uint64_t kMsr = 6;
  static constexpr uint64_t kScr = 7;
  static constexpr size_t kRegisterCount = 8;
  // Input bytes beyond this many are dropped (and counted) rather than grow without bound.
  static constexpr size_t kMaxQueuedInput = 64 * 1024;

  // `out_fd` < 0: output is discarded (an unconnected port). `interrupt` is called on each
  // new interrupt condition.
  Serial(std::string name, int out_fd, std::function<void()> interrupt);

  std::string DebugName() const override { return name_; }
  void Read(uint64_t offset, std::span<uint8_t> data) override;
  void Write(uint64_t offset, std::span<const uint8_t> data) override;

  // Bytes from the host for the guest to read.
  void QueueInput(std::span<const uint8_t> bytes);
  size_t dropped_input() const;

 private:
  uint8_t ReadRegister(uint64_t offset);
  void WriteRegister(uint64_t offset, uint8_t value);
  uint8_t Iir() const;
  bool InterruptPending() const { return (Iir() & 0x01) == 0; }
  bool Loopback() const { return mcr_ & 0x10; }
  void Transmit(uint8_t byte);

  const std::string name_;
  const int out_fd_;
  const std::function<void()> interrupt_;

  mutable std::mutex mu_;
  std::deque<uint8_t> rx_;
  size_t dropped_ = 0;
  bool thr_interrupt_ = false;  // THR-empty interrupt pending (cleared by an IIR read)
  uint8_t ier_ = 0;
  uint8_t lcr_ = 0x03;  // 8N1
  uint8_t mcr_ = 0x08;  // OUT2
  uint8_t fcr_ = 0;
  uint8_t scr_ = 0;
  uint8_t dll_ = 0x0c;  // 9600 baud
  uint8_t dlm_ = 0;
};

}  // namespace crosvm::devices
