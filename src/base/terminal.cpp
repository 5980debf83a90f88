#include "base/terminal.h"

#include <signal.h>
#include <termios.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>

namespace crosvm::base {
namespace {

termios g_saved;
int g_saved_fd = -1;
std::atomic<bool> g_saved_valid{false};

void FatalSignalHandler(int sig) {
  RestoreTerminal();
  // Re-raise with the default action so the exit status still tells what happened.
  signal(sig, SIG_DFL);
  raise(sig);
}

void InstallFatalHandlers() {
  for (int sig : {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL, SIGQUIT}) {
    struct sigaction sa {};
    sa.sa_handler = FatalSignalHandler;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, nullptr);
  }
}

}  // namespace

void RestoreTerminal() {
  if (g_saved_valid.exchange(false)) tcsetattr(g_saved_fd, TCSANOW, &g_saved);
}

Result<RawTerminal> RawTerminal::Enter(int fd) {
  if (!isatty(fd)) return RawTerminal(false);
  termios t;
  if (tcgetattr(fd, &t) < 0) return Error::FromErrno("tcgetattr");
  g_saved = t;
  g_saved_fd = fd;
  g_saved_valid = true;
  InstallFatalHandlers();
  std::atexit(RestoreTerminal);
  cfmakeraw(&t);
  t.c_oflag |= OPOST | ONLCR;  // keep output processing so host log lines stay readable
  if (tcsetattr(fd, TCSANOW, &t) < 0) {
    g_saved_valid = false;
    return Error::FromErrno("tcsetattr raw");
  }
  return RawTerminal(true);
}

RawTerminal::RawTerminal(RawTerminal&& other) noexcept : active_(other.active_) {
  other.active_ = false;
}

RawTerminal::~RawTerminal() {
  if (active_) RestoreTerminal();
}

}  // namespace crosvm::base
