#include "base/rate_limited_log.h"

namespace crosvm::base {

bool RateLimitedLog::Admit(uint64_t* suppressed) {
  std::lock_guard lock(mu_);
  auto now = std::chrono::steady_clock::now();
  if (!started_ || now - window_start_ >= period_) {
    started_ = true;
    window_start_ = now;
    in_window_ = 0;
  }
  if (in_window_ >= burst_) {
    ++suppressed_;
    ++total_suppressed_;
    return false;
  }
  ++in_window_;
  *suppressed = suppressed_;
  suppressed_ = 0;
  return true;
}

void RateLimitedLog::Log(LogLevel level, const char* file, int line, const std::string& message) {
  if (level < GetLogLevel()) return;
  uint64_t suppressed = 0;
  if (!Admit(&suppressed)) return;
  if (suppressed > 0) {
    LogLine(level, file, line,
            message + " (" + std::to_string(suppressed) + " similar messages suppressed)");
  } else {
    LogLine(level, file, line, message);
  }
}

uint64_t RateLimitedLog::total_suppressed() const {
  std::lock_guard lock(mu_);
  return total_suppressed_;
}

}  // namespace crosvm::base
