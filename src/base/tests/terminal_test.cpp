#include "base/terminal.h"

#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <optional>

#include "base/fd.h"

namespace crosvm::base {
namespace {

struct Pty {
  ScopedFd master, slave;
};

Pty OpenPty() {
  int m = -1, s = -1;
  EXPECT_EQ(openpty(&m, &s, nullptr, nullptr, nullptr), 0);
  return {ScopedFd(m), ScopedFd(s)};
}

bool Canonical(int fd) {
  termios t{};
  EXPECT_EQ(tcgetattr(fd, &t), 0);
  return (t.c_lflag & ICANON) && (t.c_lflag & ECHO);
}

TEST(RawTerminalTest, NotATerminalIsANoOp) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  ScopedFd r(fds[0]), w(fds[1]);
  auto raw = RawTerminal::Enter(r.get());
  ASSERT_TRUE(raw.ok());
  EXPECT_FALSE(raw->active());
}

TEST(RawTerminalTest, RawWhileHeldRestoredAfter) {
  Pty pty = OpenPty();
  ASSERT_TRUE(Canonical(pty.slave.get()));
  {
    auto raw = RawTerminal::Enter(pty.slave.get());
    ASSERT_TRUE(raw.ok());
    EXPECT_TRUE(raw->active());
    EXPECT_FALSE(Canonical(pty.slave.get()));
  }
  EXPECT_TRUE(Canonical(pty.slave.get()));
}

// A crash while the VM runs must not leave the user's terminal raw.
TEST(RawTerminalTest, RestoredWhenTheProcessDiesOfAFatalSignal) {
  Pty pty = OpenPty();
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto raw = RawTerminal::Enter(pty.slave.get());
    if (!raw.ok() || Canonical(pty.slave.get())) _exit(10);
    raise(SIGSEGV);
    _exit(11);  // not reached
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status)) << "child exited with " << WEXITSTATUS(status);
  EXPECT_EQ(WTERMSIG(status), SIGSEGV);  // re-raised: the exit status still tells the truth
  EXPECT_TRUE(Canonical(pty.slave.get()));
}

TEST(RawTerminalTest, RestoredOnExit) {
  Pty pty = OpenPty();
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    static std::optional<Result<RawTerminal>> raw;  // never destroyed: exit() must restore
    raw.emplace(RawTerminal::Enter(pty.slave.get()));
    if (!raw->ok() || Canonical(pty.slave.get())) _exit(10);
    exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_TRUE(Canonical(pty.slave.get()));
}

}  // namespace
}  // namespace crosvm::base
