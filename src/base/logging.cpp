#include "base/logging.h"

#include <syslog.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace crosvm::base {
namespace {

LogLevel InitialLevel() {
  const char* env = std::getenv("CROSVM_LOG");
  if (env != nullptr && std::strcmp(env, "debug") == 0) return LogLevel::kDebug;
  return LogLevel::kInfo;
}

std::atomic<LogLevel> g_level{InitialLevel()};
std::atomic<bool> g_syslog{false};
std::string* g_syslog_tag = nullptr;  // openlog keeps the pointer: must outlive logging.
std::mutex g_syslog_mu;

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "DEBUG";
    case LogLevel::kInfo:
      return "INFO";
    case LogLevel::kWarning:
      return "WARNING";
    case LogLevel::kError:
      return "ERROR";
  }
  return "?";
}

int SyslogPriority(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return LOG_DEBUG;
    case LogLevel::kInfo:
      return LOG_INFO;
    case LogLevel::kWarning:
      return LOG_WARNING;
    case LogLevel::kError:
      return LOG_ERR;
  }
  return LOG_INFO;
}

}  // namespace

void SetLogLevel(LogLevel level) {
  g_level = level;
}
LogLevel GetLogLevel() {
  return g_level;
}

void EnableSyslog(const std::string& tag) {
  std::lock_guard lock(g_syslog_mu);
  if (g_syslog_tag == nullptr) g_syslog_tag = new std::string(tag);
  openlog(g_syslog_tag->c_str(), LOG_PID, LOG_USER);
  g_syslog = true;
}

bool StderrIsTerminal() {
  static const bool tty = isatty(STDERR_FILENO) == 1;
  return tty;
}

void DisableSyslog() {
  std::lock_guard lock(g_syslog_mu);
  g_syslog = false;
}

void LogLine(LogLevel level, const char* file, int line, const std::string& message) {
  const char* base = std::strrchr(file, '/');
  base = base ? base + 1 : file;
  std::string text = std::string("[crosvm ") + LevelName(level) + " " + base + ":" +
                     std::to_string(line) + "] " + message + "\n";
  // One write per line so lines from different threads never interleave. If stdout is a
  // terminal in raw mode, a bare "\n" would not return the carriage; "\r\n" always does.
  if (StderrIsTerminal()) text.insert(text.size() - 1, "\r");
  ssize_t unused = ::write(STDERR_FILENO, text.data(), text.size());
  (void)unused;
  if (g_syslog) syslog(SyslogPriority(level), "%s", message.c_str());
}

}  // namespace crosvm::base
