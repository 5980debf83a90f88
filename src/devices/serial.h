// A 16550A UART: the guest's console. Output goes to an fd (stdout) through a bounded buffer
// drained by the port's own writer thread, so a guest writing the THR never waits for the fd: a
// stdout nobody reads costs dropped bytes (counted, logged now and then and at exit), never a
// stalled vCPU. Input is queued by the main loop from stdin. Interrupts are raised through a
// callback (an irqfd write).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

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
  // Output bytes waiting for the fd; beyond this many they are dropped (and counted).
  static constexpr size_t kMaxBufferedOutput = 64 * 1024;
  // How long destruction waits for buffered output to reach the fd.
  static constexpr std::chrono::milliseconds kFlushTimeout{2000};

  // `out_fd` < 0: output is discarded (an unconnected port). `interrupt` is called on each
  // new interrupt condition.
  Serial(std::string name, int out_fd, std::function<void()> interrupt);
  // Flushes what is buffered (at most kFlushTimeout) and reports dropped output.
  ~Serial() override;

  std::string DebugName() const override { return name_; }
  void Read(uint64_t offset, std::span<uint8_t> data) override;
  void Write(uint64_t offset, std::span<const uint8_t> data) override;

  // Bytes from the host for the guest to read.
  void QueueInput(std::span<const uint8_t> bytes);
  size_t dropped_input() const;
  // Waits until everything buffered so far reached the fd, or `timeout` passed; true if it did.
  bool Flush(std::chrono::milliseconds timeout = kFlushTimeout);
  // Output bytes dropped because the fd did not keep up (or failed).
  uint64_t dropped_output() const;

 private:
  uint8_t ReadRegister(uint64_t offset);
  void WriteRegister(uint64_t offset, uint8_t value);
  uint8_t Iir() const;
  bool InterruptPending() const { return (Iir() & 0x01) == 0; }
  bool Loopback() const { return mcr_ & 0x10; }
  void Transmit(uint8_t byte);
  void WriterLoop();
  // Writes [data, data + len) to out_fd_; returns the bytes that went out (fewer when the fd
  // fails, or when it blocks and the writer is told to give up).
  size_t WriteOut(const uint8_t* data, size_t len);

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

  // The output side, shared with the writer thread. Lock order: mu_, then out_mu_.
  mutable std::mutex out_mu_;
  std::condition_variable out_cv_;      // the writer: bytes to write, or stop
  std::condition_variable flushed_cv_;  // Flush(): the buffer became empty
  std::deque<uint8_t> out_;             // bytes not yet written (the front one in flight)
  uint64_t dropped_out_ = 0;
  uint64_t dropped_out_logged_ = 0;
  std::chrono::steady_clock::time_point last_drop_log_{};
  bool stopping_ = false;
  bool give_up_ = false;    // the fd blocks past the flush timeout: drop the rest
  bool fd_failed_ = false;  // a write error: everything from then on is dropped
  std::thread writer_;
};

}  // namespace crosvm::devices
