// Puts a terminal (stdin) in raw mode for the VM's lifetime and restores it on every exit path:
// normal return (destructor), exit(), and fatal signals (SIGSEGV, SIGABRT, ...).
#pragma once

#include "base/error.h"

namespace crosvm::base {

class RawTerminal {
 public:
  // Does nothing (and succeeds) when `fd` is not a terminal.
  static Result<RawTerminal> Enter(int fd);
  RawTerminal(RawTerminal&& other) noexcept;
  RawTerminal& operator=(RawTerminal&&) = delete;
  RawTerminal(const RawTerminal&) = delete;
  ~RawTerminal();

  bool active() const { return active_; }

 private:
  explicit RawTerminal(bool active) : active_(active) {}
  bool active_;
};

// Restores the saved terminal mode now, if one is saved. Async-signal-safe.
void RestoreTerminal();

}  // namespace crosvm::base
