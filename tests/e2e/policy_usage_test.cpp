// Policies stay minimal. While a user-space guest uses every device path the tests know (disk
// reads, writes, flushes and discards on a raw and a qcow2 image, the hwrng, a balloon inflate,
// the shutdown), strace is attached to every device process; afterwards each rule of each device
// policy must have been used by a device process of that policy, after its filter went in. A rule
// no test reaches may stay only if the comment block above it says "unused in tests" and why.
// Tier 4 (label nested): on an emulating host guest user space cannot run.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "background.h"
#include "harness.h"
#include "sandbox/seccomp_policy.h"

namespace crosvm::e2e {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const char* const kTestInitrd = CROSVM_BUILD_DIR "/guest/userspace/initramfs-test.cpio";

// `strace -f -qq -p PID -o LOG` in the background.
pid_t AttachStrace(pid_t pid, const std::string& log) {
  return SpawnInBackground({"strace", "-f", "-qq", "-p", std::to_string(pid), "-o", log},
                           log + ".out");
}

// The system calls in a strace log of one device process (its threads included), from its
// seccomp filter on: if the log shows the filter going in, what came before is the jail's set-up.
std::set<std::string> CallsAfterFilter(const std::string& log) {
  std::set<std::string> calls;
  std::istringstream in(log);
  for (std::string line; std::getline(in, line);) {
    // "PID name(args...) = ret" or "PID name(args... <unfinished ...>"; "PID <... name
    // resumed>" lines repeat a call already counted.
    size_t i = line.find_first_not_of("0123456789");
    if (i == std::string::npos) continue;
    i = line.find_first_not_of(' ', i);
    if (i == std::string::npos || line.compare(i, 4, "<...") == 0) continue;
    size_t paren = line.find('(', i);
    if (paren == std::string::npos) continue;
    std::string name = line.substr(i, paren - i);
    if (name.empty() ||
        name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") != std::string::npos) {
      continue;
    }
    if (name == "seccomp" && line.compare(paren + 1, 23, "SECCOMP_SET_MODE_FILTER") == 0) {
      calls.clear();  // the filter goes in now; the jail's set-up does not count
      continue;
    }
    calls.insert(name);
  }
  return calls;
}

// Whether the comment block right above line `line` of `path` says the rule is unused in tests.
bool JustifiedUnused(const std::string& path, int line) {
  std::istringstream in(ReadTextFile(path));
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  for (int i = line - 2; i >= 0 && i < static_cast<int>(lines.size()); --i) {
    if (lines[i].rfind("#", 0) != 0) break;
    if (lines[i].find("unused in tests") != std::string::npos) return true;
  }
  return false;
}

std::string PolicyOf(const std::string& device) {
  for (const auto& [prefix, policy] :
       std::vector<std::pair<std::string, std::string>>{{"blk", "block_device"},
                                                        {"rng", "rng_device"},
                                                        {"balloon", "balloon_device"},
                                                        {"net", "net_device"}}) {
    if (device.rfind(prefix, 0) == 0) return policy;
  }
  return "";
}

TEST(PolicyUsage, EveryRuleOfEveryDevicePolicyIsUsed) {
  if (HostKvmKind() != "hardware") {
    GTEST_SKIP() << "host KVM is '" << HostKvmKind()
                 << "': guest user space cannot run on it; make test runs this inside the nested "
                    "host (tests/nested/run-in-l1)";
  }
  auto kernel = GuestVar("CROSVM_GUEST_KERNEL");
  ASSERT_TRUE(kernel) << "CROSVM_GUEST_KERNEL is not set (make test sets it)";
  ASSERT_TRUE(fs::exists(kTestInitrd)) << kTestInitrd << " is missing: build the project";
  ASSERT_EQ(std::system("strace -V >/dev/null 2>&1"), 0) << "strace is missing (scripts/deps.sh)";

  TempDir dir("e2e-policy");
  const std::string raw = dir.File("raw.img"), qcow = dir.File("disk.qcow2");
  std::ofstream(raw).close();
  fs::resize_file(raw, 32 << 20);
  RunResult made = RunProcess({CROSVM_BINARY, "create_qcow2", qcow, "32M"}, 30);
  ASSERT_EQ(made.exit_code, 0) << made.output;
  const std::string script =
      "result ready yes\n"
      "sleep 5\n"  // the host inflates the balloon and grows the disks meanwhile
      "blkcheck write /dev/vda 0 1048576 7\n"
      "blkcheck verify /dev/vda 0 1048576 7\n"
      "blkdiscard -o 2097152 -l 1048576 /dev/vda\n"
      "blkcheck write /dev/vdb 4194304 1048576 9\n"
      "blkcheck verify /dev/vdb 4194304 1048576 9\n"
      "blkdiscard -o 4194304 -l 65536 /dev/vdb\n"
      "sync\n"
      "dd if=/dev/hwrng of=/tmp/r bs=512 count=4 2>/dev/null\n"
      "result rng $(wc -c < /tmp/r)\n";
  std::map<std::string, pid_t> devices;
  // Inside L1 a boot that triple-faults before user space (TCG's nested SVM; see
  // userspace_test.cpp) is run once more, and the retry reported.
  for (int attempt = 0; attempt < 2; ++attempt) {
    BackgroundVmm vmm(
        {"run", "-m", "256", "-i", kTestInitrd, "-s", dir.path(), "--rwdisk", raw + ",format=raw",
         "--rwdisk", qcow + ",format=qcow2", "-p", "crosvm_test_b64=" + Base64(script), "-p",
         "crosvm_test_exit=reboot", *kernel},
        dir.File("crosvm.log"));
    devices = vmm.WaitForDevices(4);
    ASSERT_EQ(devices.size(), 4u) << Tail(vmm.output());
    std::map<std::string, pid_t> tracers;
    for (const auto& [name, pid] : devices) {
      tracers[name] = AttachStrace(pid, dir.File("strace-" + name + ".log"));
      ASSERT_GT(tracers[name], 0) << "cannot start strace";
    }
    auto reap_tracers = [&] {
      for (auto& [name, tracer] : tracers) {
        int status;
        for (int i = 0; i < 200 && waitpid(tracer, &status, WNOHANG) != tracer; ++i) {
          std::this_thread::sleep_for(50ms);
        }
        kill(tracer, SIGKILL);
        waitpid(tracer, &status, 0);
      }
    };
    if (!vmm.WaitForOutput("CROSVM-TEST: ready=yes", 180s)) {
      const std::string out = vmm.output();
      if (attempt == 0 && std::getenv("CROSVM_IN_L1") &&
          out.find("triple fault (KVM_EXIT_SHUTDOWN)") != std::string::npos &&
          out.find("CROSVM-TEST") == std::string::npos) {
        std::printf("[ policy] RETRIED: the guest triple-faulted during its kernel boot in L1\n");
        vmm.Wait(30s);
        reap_tracers();
        continue;
      }
      FAIL() << "the guest's user space did not start\n" << Tail(out);
    }
    const std::string sock = dir.path() + "/crosvm-" + std::to_string(vmm.pid()) + ".sock";
    RunResult balloon = RunProcess({CROSVM_BINARY, "balloon", "64M", sock}, 60);
    EXPECT_EQ(balloon.exit_code, 0) << balloon.output;
    // Growing both disks: ftruncate in the device processes.
    for (const char* disk : {"0", "1"}) {
      RunResult resized = RunProcess({CROSVM_BINARY, "disk", "resize", disk, "48M", sock}, 60);
      EXPECT_EQ(resized.exit_code, 0) << resized.output;
    }
    EXPECT_EQ(vmm.Wait(300s), 0) << Tail(vmm.output());
    const std::string out = vmm.output();
    EXPECT_NE(out.find("CROSVM-TEST: rng=2048"), std::string::npos) << Tail(out);
    reap_tracers();
    break;
  }

  std::map<std::string, std::set<std::string>> used_by_policy;
  std::set<std::string> used_by_any;
  std::string seen;
  for (const auto& [name, pid] : devices) {
    auto calls = CallsAfterFilter(ReadTextFile(dir.File("strace-" + name + ".log")));
    EXPECT_FALSE(calls.empty()) << "no system calls traced for " << name;
    used_by_policy[PolicyOf(name)].insert(calls.begin(), calls.end());
    used_by_any.insert(calls.begin(), calls.end());
    seen += "  " + name + ":";
    for (const auto& c : calls) seen += " " + c;
    seen += "\n";
  }
  std::printf("[ policy] system calls the device processes made:\n%s", seen.c_str());

  for (const std::string policy : {"block_device", "rng_device", "balloon_device"}) {
    SCOPED_TRACE(policy);
    auto parsed = sandbox::SeccompPolicy::ParseFile(CROSVM_SOURCE_DIR "/seccomp/x86_64/" + policy +
                                                    ".policy");
    ASSERT_TRUE(parsed.ok()) << parsed.error().ToString();
    std::string unused;
    for (const auto& rule : parsed->rules()) {
      const std::string file = rule.location.substr(0, rule.location.rfind(':'));
      const int line = std::atoi(rule.location.substr(file.size() + 1).c_str());
      // A rule of the common policy counts when any device used it.
      const bool common = file.find("common_device.policy") != std::string::npos;
      const bool used = common ? used_by_any.count(rule.syscall) > 0
                               : used_by_policy[policy].count(rule.syscall) > 0;
      if (!used && !JustifiedUnused(file, line)) {
        unused += "  " + rule.syscall + " (" + rule.location + ")\n";
      }
    }
    EXPECT_EQ(unused, "") << "rules that no device used and no comment justifies (remove them, "
                             "or say \"unused in tests: why\" above them):\n"
                          << unused;
  }
}

}  // namespace
}  // namespace crosvm::e2e
