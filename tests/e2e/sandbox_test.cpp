// End to end: the device sandbox as the host sees it. crosvm boots the project's guest kernel
// with a disk; while the VM runs, the test inspects every device process from the host
// (/proc/PID/status, /proc/PID/ns, /proc/PID/fd), then kills one, breaks a policy, and checks
// that the processes are gone after crosvm exits. Runs on any KVM (label e2e, and again inside
// the nested host, label nested): the guest only has to get as far as probing its devices.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
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

namespace crosvm::e2e {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

struct Guest {
  std::string kernel, initrd, params;
};

std::optional<Guest> LoadGuest() {
  auto kernel = GuestVar("CROSVM_GUEST_KERNEL");
  auto initrd = GuestVar("CROSVM_GUEST_INITRD");
  auto params = GuestVar("CROSVM_GUEST_PARAMS");
  if (!kernel || !initrd || !params) {
    ADD_FAILURE() << "CROSVM_GUEST_KERNEL/INITRD/PARAMS are not set: run the tests with `make "
                     "test` (see tests/e2e/boot_test.cpp)";
    return std::nullopt;
  }
  return Guest{*kernel, *initrd, *params};
}

std::vector<std::string> RunArgs(const Guest& g, const std::string& disk,
                                 std::vector<std::string> extra = {}) {
  std::vector<std::string> a = {"run", "-m",     "128",      "-i", g.initrd,
                                "-p",  g.params, "--rwdisk", disk};
  a.insert(a.end(), extra.begin(), extra.end());
  a.push_back(g.kernel);
  return a;
}

std::string MakeDisk(const TempDir& dir) {
  std::string path = dir.File("disk.img");
  std::ofstream(path).close();
  fs::resize_file(path, 16 << 20);
  return path;
}

TEST(Sandbox, EveryDeviceProcessIsConfined) {
  auto g = LoadGuest();
  ASSERT_TRUE(g);
  TempDir dir("e2e-sandbox");
  std::string disk = MakeDisk(dir);
  BackgroundVmm vmm(RunArgs(*g, disk), dir.File("crosvm.log"));
  ASSERT_GT(vmm.pid(), 0);
  auto devices = vmm.WaitForDevices(3);
  ASSERT_EQ(devices.size(), 3u) << "expected device processes blk0, rng0 and balloon0\n"
                                << Tail(vmm.output());
  ASSERT_TRUE(devices.count("blk0") && devices.count("rng0") && devices.count("balloon0"))
      << Tail(vmm.output());

  const std::set<std::string> kinds = {"anon_inode:[eventfd]", "anon_inode:[eventpoll]",
                                       "/dev/null"};
  for (const auto& [name, pid] : devices) {
    SCOPED_TRACE(name + " (pid " + std::to_string(pid) + ")");
    EXPECT_EQ(StatusField(pid, "Seccomp"), "2");
    EXPECT_EQ(StatusField(pid, "NoNewPrivs"), "1");
    for (const char* caps : {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"}) {
      EXPECT_EQ(StatusField(pid, caps), "0000000000000000") << caps;
    }
    if (geteuid() == 0) {
      EXPECT_EQ(StatusField(pid, "Uid").substr(0, 5), "65534");
    }
    for (const char* ns : {"user", "mnt", "pid", "net", "ipc", "uts"}) {
      EXPECT_NE(NsLink(pid, ns), NsLink(vmm.pid(), ns)) << ns << " namespace shared with crosvm";
      EXPECT_NE(NsLink(pid, ns), "<unreadable>") << ns;
    }
    // Only what the device needs: its eventfds, its channel (a socket), its seccomp report
    // pipe, /dev/null (stdin, stdout), crosvm's stderr and, for the disk, the image; for the
    // balloon, guest memory's memfd.
    int sockets = 0, pipes = 0;
    for (const auto& [num, target] : OpenFds(pid)) {
      const std::string fd = num + " -> " + target;
      if (target.rfind("socket:", 0) == 0) {
        ++sockets;
      } else if (target.rfind("pipe:", 0) == 0) {
        ++pipes;
      } else if (fd.rfind("2 -> ", 0) == 0) {
        EXPECT_EQ(target, dir.File("crosvm.log"));
      } else if (name == "blk0" && target == disk) {
        continue;
      } else if (name == "balloon0" && target.rfind("/memfd:", 0) == 0) {
        continue;  // the balloon gives inflated guest pages back: it needs the RAM's memfd
      } else {
        EXPECT_TRUE(kinds.count(target)) << "unexpected open file " << fd;
      }
      EXPECT_EQ(target.find("kvm"), std::string::npos) << fd;
    }
    EXPECT_EQ(sockets, 1) << "one channel to crosvm";
    EXPECT_EQ(pipes, 1) << "one seccomp report pipe";
    EXPECT_EQ(fs::read_symlink("/proc/" + std::to_string(pid) + "/root").string(), "/")
        << "(a pivot_root'ed process shows its own root as /)";
  }
  // An orderly stop ends every device process.
  ASSERT_EQ(kill(vmm.pid(), SIGTERM), 0);
  int code = vmm.Wait(60s);
  EXPECT_EQ(code, 128 + SIGTERM) << Tail(vmm.output());
  for (const auto& [name, pid] : devices) {
    EXPECT_FALSE(fs::exists("/proc/" + std::to_string(pid))) << name << " is still there";
  }
}

TEST(Sandbox, KilledDeviceProcessEndsTheVmWithAClearMessage) {
  auto g = LoadGuest();
  ASSERT_TRUE(g);
  TempDir dir("e2e-sandbox");
  BackgroundVmm vmm(RunArgs(*g, MakeDisk(dir)), dir.File("crosvm.log"));
  auto devices = vmm.WaitForDevices(2);
  ASSERT_TRUE(devices.count("blk0")) << Tail(vmm.output());
  pid_t blk = devices["blk0"];
  ASSERT_EQ(kill(blk, SIGKILL), 0);
  int code = vmm.Wait(60s);
  std::string out = vmm.output();
  EXPECT_EQ(code, 4) << Tail(out);
  EXPECT_NE(out.find("virtio-blk vda (pid " + std::to_string(blk) +
                     "): the device process killed by signal 9"),
            std::string::npos)
      << Tail(out);
  EXPECT_TRUE(DeviceProcesses(vmm.pid()).empty());
}

// A device that makes a call its policy does not allow is stopped by seccomp, and crosvm says
// which device and which call. The test's policy directory is the real one with getrandom taken
// out of the virtio-rng policy: the guest kernel reads the hwrng as soon as it probes it.
TEST(Sandbox, PolicyViolationNamesTheDeviceAndTheSystemCall) {
  auto g = LoadGuest();
  ASSERT_TRUE(g);
  TempDir dir("e2e-sandbox");
  std::string policies = dir.File("policies");
  fs::create_directories(policies);
  for (const auto& e : fs::directory_iterator(CROSVM_SOURCE_DIR "/seccomp/x86_64")) {
    fs::copy_file(e.path(), policies + "/" + e.path().filename().string());
  }
  std::string rng = ReadTextFile(policies + "/rng_device.policy");
  size_t at = rng.find("\ngetrandom:");
  ASSERT_NE(at, std::string::npos) << rng;
  rng.erase(at + 1, rng.find('\n', at + 1) - at);
  std::ofstream(policies + "/rng_device.policy") << rng;

  BackgroundVmm vmm(RunArgs(*g, MakeDisk(dir), {"--seccomp-policy-dir", policies}),
                    dir.File("crosvm.log"));
  int code = vmm.Wait(300s);
  std::string out = vmm.output();
  EXPECT_EQ(code, 4) << Tail(out);
  EXPECT_NE(out.find("its seccomp policy does not allow system call getrandom (318)"),
            std::string::npos)
      << Tail(out);
  EXPECT_NE(FindLine(out, "does not allow system call getrandom").find("virtio-rng (pid "),
            std::string::npos)
      << Tail(out);
}

TEST(Sandbox, DisableSandboxKeepsDevicesInTheVmm) {
  auto g = LoadGuest();
  ASSERT_TRUE(g);
  TempDir dir("e2e-sandbox");
  BackgroundVmm vmm(RunArgs(*g, MakeDisk(dir), {"--disable-sandbox"}), dir.File("crosvm.log"));
  // The boot gets far enough to probe the devices (their MSI-X is enabled by the guest).
  for (int i = 0;
       i < 1200 && vmm.output().find("virtio-rng: the driver enabled MSI-X") == std::string::npos;
       ++i) {
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_NE(vmm.output().find("virtio-rng: the driver enabled MSI-X"), std::string::npos)
      << Tail(vmm.output());
  EXPECT_TRUE(DeviceProcesses(vmm.pid()).empty());
  kill(vmm.pid(), SIGTERM);
  EXPECT_EQ(vmm.Wait(60s), 128 + SIGTERM) << Tail(vmm.output());
}

TEST(Sandbox, MissingPolicyIsAClearErrorAtStart) {
  auto g = LoadGuest();
  ASSERT_TRUE(g);
  TempDir dir("e2e-sandbox");
  RunResult r = RunCrosvm(RunArgs(*g, MakeDisk(dir), {"--seccomp-policy-dir", dir.path()}), 60);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("block_device.policy"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(dir.path()), std::string::npos) << r.output;
}

}  // namespace
}  // namespace crosvm::e2e
