// crosvm running in the background, and its processes as /proc shows them: what the sandbox,
// control-socket and network end-to-end tests look at while a VM runs.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace crosvm::e2e {

// The whole file, or "" if it cannot be read.
std::string ReadTextFile(const std::string& path);
// Starts argv[0] (searched in PATH) with stdin from /dev/null and stdout and stderr into
// `out_path`; returns its pid, or -1.
pid_t SpawnInBackground(const std::vector<std::string>& argv, const std::string& out_path);

// build/crosvm running in the background with stdin /dev/null and its output in `log`; killed
// when the object goes away.
class BackgroundVmm {
 public:
  BackgroundVmm(const std::vector<std::string>& args, const std::string& log);
  ~BackgroundVmm();
  BackgroundVmm(const BackgroundVmm&) = delete;
  BackgroundVmm& operator=(const BackgroundVmm&) = delete;
  pid_t pid() const { return pid_; }
  std::string output() const { return ReadTextFile(log_); }
  // True once the output contains `needle`; false when crosvm ended or time ran out first.
  bool WaitForOutput(const std::string& needle, std::chrono::seconds limit);
  // The exit status, or -1 (still running after `limit`, or killed by a signal).
  int Wait(std::chrono::seconds limit);
  // crosvm's device processes, once there are at least `n` (or crosvm ended, or 120 s passed).
  std::map<std::string, pid_t> WaitForDevices(size_t n);

 private:
  bool Reaped();  // collects crosvm's status if it has ended

  std::string log_;
  pid_t pid_ = -1;
  std::optional<int> status_;  // waitpid's, once reaped
};

// The device processes of crosvm `vmm` by name: "crosvm:<name>", children of a relay that is a
// child of crosvm.
std::map<std::string, pid_t> DeviceProcesses(pid_t vmm);
// The value of "Key:" in /proc/PID/status, trimmed ("<no Key>" if absent).
std::string StatusField(pid_t pid, const std::string& key);
// /proc/PID/ns/<ns>'s target ("<unreadable>" if it cannot be read).
std::string NsLink(pid_t pid, const char* ns);
// /proc/PID/fd: (fd number, target) pairs.
std::vector<std::pair<std::string, std::string>> OpenFds(pid_t pid);

}  // namespace crosvm::e2e
