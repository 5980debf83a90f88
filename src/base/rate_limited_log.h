// A log line a guest can trigger (a bad register write, a malformed request) goes through a
// RateLimitedLog: at most `burst` lines per `period`, and the number suppressed is reported with
// the next line that gets through. A guest can otherwise fill the host's disk or drown the
// useful lines, one MMIO write at a time. Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

#include "base/logging.h"

namespace crosvm::base {

class RateLimitedLog {
 public:
  explicit RateLimitedLog(int burst = 10, std::chrono::seconds period = std::chrono::seconds(10))
      : burst_(burst), period_(period) {}
  RateLimitedLog(const RateLimitedLog& other) : burst_(other.burst_), period_(other.period_) {}
  RateLimitedLog& operator=(const RateLimitedLog&) = delete;

  void Log(LogLevel level, const char* file, int line, const std::string& message);
  // Whether a line may go out now. On true, `*suppressed` is the number dropped since the
  // last line that went out (to be mentioned in this one). Lets a caller skip building an
  // expensive message.
  bool Admit(uint64_t* suppressed);

  // Lines dropped in all (tests, exit summaries).
  uint64_t total_suppressed() const;

  // A warning, attributed to the caller's line. (__builtin_FILE/LINE rather than
  // std::source_location: Debian 12's clang 14 lacks the builtin libstdc++'s version needs.)
  void Warn(const std::string& message, const char* file = __builtin_FILE(),
            int line = __builtin_LINE()) {
    Log(LogLevel::kWarning, file, line, message);
  }

 private:
  const int burst_;
  const std::chrono::seconds period_;
  mutable std::mutex mu_;
  std::chrono::steady_clock::time_point window_start_{};
  bool started_ = false;
  int in_window_ = 0;
  uint64_t suppressed_ = 0;
  uint64_t total_suppressed_ = 0;
};

}  // namespace crosvm::base

namespace crosvm::base {

// One admitted line; appends the suppressed count when there is one.
class RateLimitedLogLine {
 public:
  RateLimitedLogLine(LogLevel level, const char* file, int line, uint64_t suppressed)
      : msg_(level, file, line), suppressed_(suppressed) {}
  ~RateLimitedLogLine() {
    if (suppressed_ > 0) msg_.stream() << " (" << suppressed_ << " similar messages suppressed)";
  }
  std::ostream& stream() { return msg_.stream(); }

 private:
  LogMessage msg_;
  uint64_t suppressed_;
};

}  // namespace crosvm::base

// CROSVM_LOG_RATE_LIMITED(limiter, WARNING) << "guest did " << x;
// The message is only built when the line goes out.
#define CROSVM_LOG_RATE_LIMITED(limiter, level)                                                \
  for (uint64_t crosvm_rl_suppressed_ = 0,                                                     \
                crosvm_rl_once_ = CROSVM_LOG_LEVEL_##level >= ::crosvm::base::GetLogLevel() && \
                                  (limiter).Admit(&crosvm_rl_suppressed_);                     \
       crosvm_rl_once_; crosvm_rl_once_ = 0)                                                   \
  ::crosvm::base::RateLimitedLogLine(CROSVM_LOG_LEVEL_##level, __FILE__, __LINE__,             \
                                     crosvm_rl_suppressed_)                                    \
      .stream()
