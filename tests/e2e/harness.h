// Helpers for end-to-end tests: run crosvm (or QEMU) as a child process with a time limit and
// capture everything it prints.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace crosvm::e2e {

struct RunResult {
  int exit_code = -1;  // -1: killed by a signal or by the time limit
  bool timed_out = false;
  bool stuck = false;  // timed out and still not gone 20 s after SIGKILL (stuck in the kernel)
  double seconds = 0;
  std::string output;  // stdout and stderr, interleaved
};

// Runs argv[0] with stdin from /dev/null; kills it after `timeout_s`.
RunResult RunProcess(const std::vector<std::string>& argv, int timeout_s);
// Runs argv[0] with stdin from a pipe: whenever the output first contains `when`, `send` is
// written to its stdin, in order; stdin is closed after the last one.
struct Interaction {
  std::string when;
  std::string send;
};
RunResult RunInteractive(const std::vector<std::string>& argv, int timeout_s,
                         const std::vector<Interaction>& script);
// Runs build/crosvm with these arguments.
RunResult RunCrosvm(const std::vector<std::string>& args, int timeout_s);

// An environment variable the e2e tests need (set by `make test`); empty optional if unset.
std::optional<std::string> GuestVar(const char* name);
// "emulated" or "hardware", from guest/host-kvm-kind.sh.
std::string HostKvmKind();

// A fresh directory under the build tree for one test's files, removed with everything in it
// when the object goes away.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "e2e");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string File(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }
  bool ok() const { return !path_.empty(); }

 private:
  std::string path_;
};

// The last line of `output` that contains `needle`, or "".
std::string FindLine(const std::string& output, const std::string& needle);
// The last 3000 characters, for failure messages.
std::string Tail(const std::string& output);

// Standard base64 (RFC 4648, with padding): how the user-space tests hand a script to the guest's
// test init on the kernel command line.
std::string Base64(const std::string& in);

}  // namespace crosvm::e2e
