#include "harness.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>

extern char** environ;

namespace crosvm::e2e {

RunResult RunProcess(const std::vector<std::string>& argv, int timeout_s) {
  return RunInteractive(argv, timeout_s, {});
}

RunResult RunInteractive(const std::vector<std::string>& argv, int timeout_s,
                         const std::vector<Interaction>& script) {
  signal(SIGPIPE, SIG_IGN);  // a child that exits early must not kill the test with SIGPIPE
  RunResult result;
  char path[] = "/tmp/crosvm-e2e-XXXXXX";
  int out = mkstemp(path);
  if (out < 0) return result;
  unlink(path);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  int in_pipe[2] = {-1, -1};
  if (script.empty()) {
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  } else {
    if (pipe2(in_pipe, O_CLOEXEC) != 0) {
      close(out);
      return result;
    }
    posix_spawn_file_actions_adddup2(&actions, in_pipe[0], 0);
  }
  posix_spawn_file_actions_adddup2(&actions, out, 1);
  posix_spawn_file_actions_adddup2(&actions, out, 2);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  auto start = std::chrono::steady_clock::now();
  pid_t pid;
  int err = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (in_pipe[0] >= 0) close(in_pipe[0]);
  if (err != 0) {
    if (in_pipe[1] >= 0) close(in_pipe[1]);
    close(out);
    result.output = "cannot start " + argv[0];
    return result;
  }
  int status = 0;
  size_t next = 0;  // the next interaction of `script`
  std::string seen;
  for (;;) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (next < script.size()) {
      char buf[65536];
      ssize_t n;
      while ((n = pread(out, buf, sizeof(buf), static_cast<off_t>(seen.size()))) > 0) {
        seen.append(buf, static_cast<size_t>(n));
      }
      while (next < script.size() && seen.find(script[next].when) != std::string::npos) {
        const std::string& send = script[next++].send;
        if (write(in_pipe[1], send.data(), send.size()) != static_cast<ssize_t>(send.size())) {
          break;
        }
      }
      if (next == script.size()) {
        close(in_pipe[1]);  // end of input
        in_pipe[1] = -1;
      }
    }
    if (std::chrono::steady_clock::now() - start > std::chrono::seconds(timeout_s)) {
      kill(pid, SIGKILL);
      result.timed_out = true;
      // A process stuck in the kernel (uninterruptible sleep in KVM_RUN, say) does not die at
      // once: wait a bounded time, so that a wedged host fails this test instead of hanging it.
      auto killed = std::chrono::steady_clock::now();
      while (waitpid(pid, &status, WNOHANG) != pid) {
        if (std::chrono::steady_clock::now() - killed > std::chrono::seconds(20)) {
          result.stuck = true;
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (in_pipe[1] >= 0) close(in_pipe[1]);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!result.timed_out && WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  lseek(out, 0, SEEK_SET);
  char buf[65536];
  ssize_t n;
  while ((n = read(out, buf, sizeof(buf))) > 0) result.output.append(buf, n);
  close(out);
  return result;
}

RunResult RunCrosvm(const std::vector<std::string>& args, int timeout_s) {
  std::vector<std::string> argv = {CROSVM_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProcess(argv, timeout_s);
}

std::optional<std::string> GuestVar(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return std::nullopt;
  return std::string(v);
}

std::string HostKvmKind() {
  RunResult r = RunProcess({"bash", CROSVM_SOURCE_DIR "/guest/host-kvm-kind.sh"}, 30);
  std::string kind = r.output;
  while (!kind.empty() && (kind.back() == '\n' || kind.back() == ' ')) kind.pop_back();
  return kind;
}

TempDir::TempDir(const std::string& prefix) {
  std::string tmpl = std::string(CROSVM_BUILD_DIR) + "/" + prefix + ".XXXXXX";
  if (mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  if (!path_.empty()) std::filesystem::remove_all(path_, ec);
}

std::string FindLine(const std::string& output, const std::string& needle) {
  size_t pos = output.rfind(needle);
  if (pos == std::string::npos) return "";
  size_t b = output.rfind('\n', pos);
  b = b == std::string::npos ? 0 : b + 1;
  size_t e = output.find('\n', pos);
  std::string line = output.substr(b, e == std::string::npos ? std::string::npos : e - b);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

std::string Tail(const std::string& output) {
  return output.size() > 3000 ? output.substr(output.size() - 3000) : output;
}

std::string Base64(const std::string& in) {
  static const char* const kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    for (int s : {18, 12, 6, 0}) out += kAlphabet[(v >> s) & 63];
  }
  if (i + 1 == in.size()) {
    uint32_t v = uint8_t(in[i]) << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    for (int s : {18, 12, 6}) out += kAlphabet[(v >> s) & 63];
    out += '=';
  }
  return out;
}

}  // namespace crosvm::e2e
