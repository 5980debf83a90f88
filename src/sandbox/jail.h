// Jail: runs a device's main function in a child process confined by namespaces, a tmpfs root
// holding only chosen bind mounts, a closed fd table, rlimits and no capabilities.
//
// Process tree: the caller forks a relay process, which unshares the namespaces and forks the
// device as PID 1 of the new PID namespace. The relay only waits for the device and ends the same
// way; each dies if the other does (PR_SET_PDEATHSIG). Set-up failures in the children come back
// as Spawn's error.
#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/fd.h"

namespace crosvm::sandbox {

struct BindMount {
  std::string host_path;  // absolute; symlinks are resolved on the host's view
  std::string jail_path;  // absolute, inside the jail; missing directories are created
  bool writable = false;  // read-only unless set
};

struct JailConfig {
  // The device's name: hostname in its UTS namespace, and "crosvm:<name>" (cut to 15 chars) as
  // its comm, so that ps shows which device a process is.
  std::string name;
  // Descriptors the device keeps, under the same numbers; every other one is closed.
  std::vector<int> keep_fds;
  std::vector<BindMount> binds;
  // Keep fds 0, 1 and 2 (stderr is how a device logs).
  bool keep_stdio = true;
};

// How the device ended: exited with exit_code (signal == 0) or was killed by signal.
struct ExitInfo {
  int exit_code = 0;
  int signal = 0;
  bool exited() const { return signal == 0; }
  std::string ToString() const;  // "exited 7", "killed by signal 9"
};

class Jail {
 public:
  // Runs in the device after every confinement step; the integrator loads seccomp here. A failure
  // is written to the device's fd 2 and the device exits 126 (Spawn has already returned).
  using Hook = std::function<base::Status()>;
  // The device's body; its return value is the device's exit code.
  using Main = std::function<int()>;

  // Exit code of a device whose set-up or hook failed.
  static constexpr int kSetupFailedExitCode = 126;

  // Forks the jailed device and returns once it is confined and about to run `before_main`, or
  // with the error of the step that failed. Call from a thread that outlives the jail: the relay
  // gets SIGKILL when the thread that forked it exits (PR_SET_PDEATHSIG follows the thread).
  static base::Result<Jail> Spawn(const JailConfig& config, Hook before_main, Main main);

  Jail(Jail&& other) noexcept;
  Jail& operator=(Jail&& other) noexcept;
  Jail(const Jail&) = delete;
  Jail& operator=(const Jail&) = delete;
  // Kills the device if it still runs and reaps the relay: no process is left behind.
  ~Jail();

  // The device's PID as the caller's PID namespace sees it (it is 1 inside the jail).
  pid_t pid() const { return device_pid_; }
  // A pidfd of the relay: readable (POLLIN) once the device has ended and the relay has exited.
  int exit_fd() const { return relay_pidfd_.get(); }
  // Blocks until the device has ended; later calls return the same answer.
  base::Result<ExitInfo> Wait();
  // SIGKILL to the device (race-free: through a pidfd). No-op once it has ended.
  void Kill();

 private:
  Jail(pid_t relay_pid, base::ScopedFd relay_pidfd);
  // Reads the children's set-up messages and answers them; see jail.cpp. `ended_early`: the
  // children went without saying why (Spawn then adds how the relay ended).
  base::Status FinishSpawn(const JailConfig& config, base::ScopedFd report, base::ScopedFd go,
                           bool* ended_early);
  void Release();

  pid_t relay_pid_ = -1;
  pid_t device_pid_ = -1;
  base::ScopedFd relay_pidfd_;
  base::ScopedFd device_pidfd_;
  std::optional<ExitInfo> exit_;
};

// Whether this host can run jails: forks a probe that unshares every namespace a jail uses and
// checks seccomp. The error is one line naming what is missing and how to run without a sandbox.
base::Status CheckSandboxSupport();

}  // namespace crosvm::sandbox
