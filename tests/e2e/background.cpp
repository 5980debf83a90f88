#include "background.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

namespace crosvm::e2e {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string ReadTextFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

pid_t SpawnInBackground(const std::vector<std::string>& argv, const std::string& out_path) {
  std::vector<std::string> copy = argv;
  std::vector<char*> cargv;
  for (auto& a : copy) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  pid_t pid = -1;
  if (posix_spawnp(&pid, cargv[0], &fa, nullptr, cargv.data(), environ) != 0) pid = -1;
  posix_spawn_file_actions_destroy(&fa);
  return pid;
}

BackgroundVmm::BackgroundVmm(const std::vector<std::string>& args, const std::string& log)
    : log_(log) {
  std::vector<std::string> argv = {CROSVM_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  pid_ = SpawnInBackground(argv, log);
}

BackgroundVmm::~BackgroundVmm() {
  if (pid_ > 0 && !status_) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

bool BackgroundVmm::Reaped() {
  if (status_) return true;
  int status;
  if (pid_ > 0 && waitpid(pid_, &status, WNOHANG) == pid_) status_ = status;
  return status_.has_value();
}

bool BackgroundVmm::WaitForOutput(const std::string& needle, std::chrono::seconds limit) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (output().find(needle) != std::string::npos) return true;
    if (Reaped()) return output().find(needle) != std::string::npos;
    std::this_thread::sleep_for(100ms);
  }
  return false;
}

int BackgroundVmm::Wait(std::chrono::seconds limit) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (!Reaped() && std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(50ms);
  }
  if (!status_) return -1;
  return WIFEXITED(*status_) ? WEXITSTATUS(*status_) : -1;
}

std::map<std::string, pid_t> BackgroundVmm::WaitForDevices(size_t n) {
  std::map<std::string, pid_t> d;
  // Generous: a sanitizer build on a loaded machine takes tens of seconds to start its jails.
  for (int i = 0; i < 2400; ++i) {
    d = DeviceProcesses(pid_);
    if (d.size() >= n || Reaped()) break;
    std::this_thread::sleep_for(50ms);
  }
  return d;
}

std::string StatusField(pid_t pid, const std::string& key) {
  std::istringstream in(ReadTextFile("/proc/" + std::to_string(pid) + "/status"));
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key + ":", 0) == 0) {
      std::string v = line.substr(key.size() + 1);
      v.erase(0, v.find_first_not_of(" \t"));
      return v;
    }
  }
  return "<no " + key + ">";
}

namespace {

pid_t ParentOf(pid_t pid) {
  std::string s = StatusField(pid, "PPid");
  return s.rfind("<no", 0) == 0 ? -1 : std::atoi(s.c_str());
}

}  // namespace

std::map<std::string, pid_t> DeviceProcesses(pid_t vmm) {
  std::map<std::string, pid_t> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    pid_t pid = std::atoi(name.c_str());
    std::string comm = ReadTextFile("/proc/" + name + "/comm");
    if (!comm.empty() && comm.back() == '\n') comm.pop_back();
    if (comm.rfind("crosvm:", 0) != 0) continue;
    pid_t relay = ParentOf(pid);
    if (relay > 0 && ParentOf(relay) == vmm) out[comm.substr(7)] = pid;
  }
  return out;
}

std::string NsLink(pid_t pid, const char* ns) {
  std::error_code ec;
  auto target = fs::read_symlink("/proc/" + std::to_string(pid) + "/ns/" + ns, ec);
  return ec ? "<unreadable>" : target.string();
}

std::vector<std::pair<std::string, std::string>> OpenFds(pid_t pid) {
  std::vector<std::pair<std::string, std::string>> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
    std::error_code ec2;
    out.emplace_back(e.path().filename().string(), fs::read_symlink(e.path(), ec2).string());
  }
  return out;
}

}  // namespace crosvm::e2e
