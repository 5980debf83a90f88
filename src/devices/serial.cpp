#include "devices/serial.h"

#include <poll.h>
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include "base/logging.h"

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
    : name_(std::move(name)), out_fd_(out_fd), interrupt_(std::move(interrupt)) {
  if (out_fd_ >= 0) writer_ = std::thread([this] { WriterLoop(); });
}

Serial::~Serial() {
  if (writer_.joinable()) {
    bool flushed = Flush(kFlushTimeout);
    {
      std::lock_guard lock(out_mu_);
      stopping_ = true;
      give_up_ = !flushed;
    }
    out_cv_.notify_all();
    writer_.join();
  }
  std::lock_guard lock(out_mu_);
  dropped_out_ += out_.size();
  out_.clear();
  if (dropped_out_ > 0) {
    CROSVM_LOG(WARNING) << name_ << ": " << dropped_out_
                        << " bytes of guest output were dropped (the output did not keep up)";
  }
}

bool Serial::Flush(std::chrono::milliseconds timeout) {
  std::unique_lock lock(out_mu_);
  return flushed_cv_.wait_for(lock, timeout, [&] { return out_.empty() || fd_failed_; }) &&
         out_.empty();
}

uint64_t Serial::dropped_output() const {
  std::lock_guard lock(out_mu_);
  return dropped_out_;
}

void Serial::WriterLoop() {
  pthread_setname_np(pthread_self(), (name_ + " out").substr(0, 15).c_str());
  std::vector<uint8_t> chunk;
  std::unique_lock lock(out_mu_);
  while (true) {
    out_cv_.wait(lock, [&] { return stopping_ || !out_.empty(); });
    if (out_.empty() || give_up_) return;
    // At most a pipe buffer page at a time: after POLLOUT, such a write does not block.
    size_t n = std::min<size_t>(out_.size(), 4096);
    chunk.assign(out_.begin(), out_.begin() + static_cast<long>(n));
    lock.unlock();
    size_t done = WriteOut(chunk.data(), n);
    lock.lock();
    // The bytes leave the buffer only once written: what is buffered and in flight together
    // never exceeds kMaxBufferedOutput, and what is kept stays in order.
    out_.erase(out_.begin(), out_.begin() + static_cast<long>(n));
    dropped_out_ += n - done;
    if (fd_failed_) {
      dropped_out_ += out_.size();
      out_.clear();
    }
    if (dropped_out_ > dropped_out_logged_) {
      auto now = std::chrono::steady_clock::now();
      if (last_drop_log_ == std::chrono::steady_clock::time_point{} ||
          now - last_drop_log_ >= std::chrono::seconds(30)) {
        // Logged from this thread, never from the vCPU's: stderr may block as well.
        uint64_t total = dropped_out_;
        last_drop_log_ = now;
        dropped_out_logged_ = total;
        lock.unlock();
        CROSVM_LOG(WARNING) << name_ << ": the output does not keep up with the guest; " << total
                            << " bytes dropped so far";
        lock.lock();
      }
    }
    if (out_.empty() || fd_failed_) flushed_cv_.notify_all();
  }
}

size_t Serial::WriteOut(const uint8_t* data, size_t len) {
  size_t done = 0;
  while (done < len) {
    pollfd p{out_fd_, POLLOUT, 0};
    int r = poll(&p, 1, 50);
    if (r < 0 && errno != EINTR) break;
    if (r <= 0 || !(p.revents & (POLLOUT | POLLERR | POLLHUP))) {
      std::lock_guard lock(out_mu_);
      if (give_up_) break;
      continue;
    }
    ssize_t n = ::write(out_fd_, data + done, len - done);
    if (n > 0) {
      done += static_cast<size_t>(n);
    } else if (n < 0 && errno != EINTR && errno != EAGAIN) {
      std::lock_guard lock(out_mu_);
      fd_failed_ = true;
      break;
    }
  }
  return done;
}

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
  // On the vCPU thread: never wait for the fd. A full buffer (or a failed fd) drops the byte.
  {
    std::lock_guard lock(out_mu_);
    if (out_.size() >= kMaxBufferedOutput || fd_failed_ || stopping_) {
      ++dropped_out_;
      return;
    }
    out_.push_back(byte);
    if (out_.size() > 1) return;  // the writer is awake already
  }
  out_cv_.notify_one();
}

}  // namespace crosvm::devices
