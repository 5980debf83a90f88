// Leveled logging to stderr and, when enabled, syslog.
//   CROSVM_LOG(INFO) << "booting " << path;
#pragma once

#include <sstream>
#include <string>

namespace crosvm::base {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Messages below `level` are dropped. Default: kInfo (kDebug with CROSVM_LOG=debug in the env).
void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
// Also send messages to syslog(3) with this identifier (the seed's --syslog-tag).
void EnableSyslog(const std::string& tag);
// Stops copying log lines to syslog (a jailed device process cannot reach /dev/log).
void DisableSyslog();
// Whether stderr is a terminal, asked once per process (the first call decides; a process that
// forks a sandboxed child asks before, so the child never needs the ioctl).
bool StderrIsTerminal();
// Writes one finished line (thread-safe: one write(2) per line).
void LogLine(LogLevel level, const char* file, int line, const std::string& message);

class LogMessage {
 public:
  LogMessage(LogLevel level, const char* file, int line)
      : level_(level), file_(file), line_(line) {}
  ~LogMessage() { LogLine(level_, file_, line_, stream_.str()); }
  std::ostream& stream() { return stream_; }

 private:
  LogLevel level_;
  const char* file_;
  int line_;
  std::ostringstream stream_;
};

// Turns the streamed expression into void so CROSVM_LOG is one ?: expression.
struct LogVoidify {
  void operator&(std::ostream&) {}
};

}  // namespace crosvm::base

#define CROSVM_LOG_LEVEL_DEBUG ::crosvm::base::LogLevel::kDebug
#define CROSVM_LOG_LEVEL_INFO ::crosvm::base::LogLevel::kInfo
#define CROSVM_LOG_LEVEL_WARNING ::crosvm::base::LogLevel::kWarning
#define CROSVM_LOG_LEVEL_ERROR ::crosvm::base::LogLevel::kError

// Safe in an unbraced if/else: the macro is one expression.
#define CROSVM_LOG(level)                                    \
  (CROSVM_LOG_LEVEL_##level < ::crosvm::base::GetLogLevel()) \
      ? (void)0                                              \
      : ::crosvm::base::LogVoidify() &                       \
            ::crosvm::base::LogMessage(CROSVM_LOG_LEVEL_##level, __FILE__, __LINE__).stream()
