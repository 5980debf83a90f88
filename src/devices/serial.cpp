#include "devices/serial.h"

#include <unistd.h>

namespace crosvm::devices {
namespace {

constexpr uint8_t kIerRxData = 0x01;
constexpr uint8_t kIerThrEmpty = 0x02;
constexpr uint8_t kIerMask = 0x0f;
constexpr uint8_t kIirNoInterrupt = 0x01;
constexpr uint8_t kIirThrEmpty = 0x02;
constexpr uint8_t kIirRxData = 0x04;
constexpr uint8_t kIirFifoEnabled = 0xc0;
constexpr uint8_t kFcrEnable = 0x01;
constexpr uint8_t kFcrClearRx = 0x02;
constexpr uint8_t kLcrDlab = 0x80;
constexpr uint8_t kLsrDataReady = 0x01;
constexpr uint8_t kLsrThrEmpty = 0x20;
constexpr uint8_t kLsrIdle = 0x40;
constexpr uint8_t kMcrDtr = 0x01, kMcrRts = 0x02, kMcrOut1 = 0x04, kMcrOut2 = 0x08;
constexpr uint8_t kMsrCts = 0x10, kMsrDsr = 0x20, kMsrRi = 0x40, kMsrDcd = 0x80;

}  // namespace

Serial::Serial(std::string name, int out_fd, std::function<void()> interrupt)
    : name_(std::move(name)), out_fd_(out_fd), interrupt_(std::move(interrupt)) {}

void Serial::Read(uint64_t offset, std::span<uint8_t> data) {
  bool raise = false;
  {
    std::lock_guard lock(mu_);
    for (size_t i = 0; i < data.size(); ++i) {
      bool before = InterruptPending();
      data[i] = offset + i < kRegisterCount ? ReadRegister(offset + i) : 0xff;
      raise |= !before && InterruptPending();
    }
  }
  if (raise && interrupt_) interrupt_();
}

void Serial::Write(uint64_t offset, std::span<const uint8_t> data) {
  bool raise = false;
  {
    std::lock_guard lock(mu_);
    for (size_t i = 0; i < data.size(); ++i) {
      if (offset + i >= kRegisterCount) break;
      bool before = InterruptPending();
      WriteRegister(offset + i, data[i]);
      raise |= !before && InterruptPending();
    }
  }
  if (raise && interrupt_) interrupt_();
}

void Serial::QueueInput(std::span<const uint8_t> bytes) {
  bool raise = false;
  {
    std::lock_guard lock(mu_);
    bool before = InterruptPending();
    for (uint8_t b : bytes) {
      if (rx_.size() >= kMaxQueuedInput) {
        ++dropped_;
        continue;
      }
      rx_.push_back(b);
    }
    raise = !before && InterruptPending();
  }
  if (raise && interrupt_) interrupt_();
}

size_t Serial::dropped_input() const {
  std::lock_guard lock(mu_);
  return dropped_;
}

uint8_t Serial::Iir() const {
  uint8_t fifo = (fcr_ & kFcrEnable) ? kIirFifoEnabled : 0;
  if ((ier_ & kIerRxData) && !rx_.empty()) return fifo | kIirRxData;
  if ((ier_ & kIerThrEmpty) && thr_interrupt_) return fifo | kIirThrEmpty;
  return fifo | kIirNoInterrupt;
}

uint8_t Serial::ReadRegister(uint64_t offset) {
  switch (offset) {
    case kData:
      if (lcr_ & kLcrDlab) return dll_;
      if (rx_.empty()) return 0;
      {
        uint8_t b = rx_.front();
        rx_.pop_front();
        return b;
      }
    case kIer:
      return (lcr_ & kLcrDlab) ? dlm_ : ier_;
    case kIir: {
      uint8_t iir = Iir();
      // Reading the IIR while it reports THR-empty acknowledges that interrupt.
      if ((iir & 0x0f) == kIirThrEmpty) thr_interrupt_ = false;
      return iir;
    }
    case kLcr:
      return lcr_;
    case kMcr:
      return mcr_;
    case kLsr:
      // Transmission is immediate: the transmitter is always empty and idle.
      return kLsrThrEmpty | kLsrIdle | (rx_.empty() ? 0 : kLsrDataReady);
    case kMsr:
      if (Loopback()) {
        // In loopback the modem inputs are wired to the modem control outputs.
        uint8_t msr = 0;
        if (mcr_ & kMcrRts) msr |= kMsrCts;
        if (mcr_ & kMcrDtr) msr |= kMsrDsr;
        if (mcr_ & kMcrOut1) msr |= kMsrRi;
        if (mcr_ & kMcrOut2) msr |= kMsrDcd;
        return msr;
      }
      return kMsrDcd | kMsrDsr | kMsrCts;
    case kScr:
      return scr_;
  }
  return 0xff;
}

void Serial::WriteRegister(uint64_t offset, uint8_t value) {
  switch (offset) {
    case kData:
      if (lcr_ & kLcrDlab) {
        dll_ = value;
        return;
      }
      if (Loopback()) {
        if (rx_.size() < kMaxQueuedInput) {
          rx_.push_back(value);
        } else {
          ++dropped_;
        }
      } else {
        Transmit(value);
      }
      thr_interrupt_ = true;
      return;
    case kIer:
      if (lcr_ & kLcrDlab) {
        dlm_ = value;
        return;
      }
      // Enabling the THR-empty interrupt while the THR is empty raises it at once.
      if (!(ier_ & kIerThrEmpty) && (value & kIerThrEmpty)) thr_interrupt_ = true;
      ier_ = value & kIerMask;
      return;
    case kIir:  // FCR
      if (value & kFcrClearRx) rx_.clear();
      fcr_ = value & kFcrEnable;
      return;
    case kLcr:
      lcr_ = value;
      return;
    case kMcr:
      mcr_ = value & 0x1f;
      return;
    case kScr:
      scr_ = value;
      return;
    default:  // LSR and MSR are read-only
      return;
  }
}

void Serial::Transmit(uint8_t byte) {
  if (out_fd_ < 0) return;
  // Console output must not be lost to a signal or a short write.
  while (::write(out_fd_, &byte, 1) < 0 && errno == EINTR) {
  }
}

}  // namespace crosvm::devices
