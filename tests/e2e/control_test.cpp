// The control socket on this host's KVM, kernel only: crosvm run -s in a temporary directory,
// then the command-line clients against it (stop, suspend/resume, disk resize, balloon).
// The guest waits for a root device that never comes (root=/dev/vdz rootwait), so it stays up
// until stopped.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
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
  std::string kernel, params;
};

std::optional<Guest> LoadGuest() {
  auto kernel = GuestVar("CROSVM_GUEST_KERNEL");
  auto params = GuestVar("CROSVM_GUEST_PARAMS");
  if (!kernel || !params) {
    ADD_FAILURE() << "CROSVM_GUEST_KERNEL/PARAMS are not set: run the tests with `make test`";
    return std::nullopt;
  }
  return Guest{*kernel, *params};
}

std::string SocketIn(const std::string& dir, pid_t pid) {
  return dir + "/crosvm-" + std::to_string(pid) + ".sock";
}

bool WaitForFile(const std::string& path, std::chrono::seconds limit) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (fs::exists(path)) return true;
    std::this_thread::sleep_for(50ms);
  }
  return false;
}

std::vector<std::string> Args(const Guest& g, const std::string& disk, const std::string& sock) {
  return {"run",      "-m", "128", "-p", g.params + " root=/dev/vdz rootwait",
          "--rwdisk", disk, "-s",  sock, g.kernel};
}

std::string MakeDisk(const TempDir& dir, const std::string& name) {
  std::string path = dir.File(name);
  std::ofstream(path).close();
  fs::resize_file(path, 16 << 20);
  return path;
}

TEST(Control, SuspendResumeDiskResizeBalloonAndStop) {
  auto g = LoadGuest();
  ASSERT_TRUE(g);
  TempDir dir("e2e-control");
  std::string disk = MakeDisk(dir, "disk.img");
  BackgroundVmm vm(Args(*g, disk, dir.path()), dir.File("crosvm.log"));
  ASSERT_GT(vm.pid(), 0);
  const std::string sock = SocketIn(dir.path(), vm.pid());
  ASSERT_TRUE(WaitForFile(sock, 30s)) << Tail(vm.output());
  EXPECT_EQ(fs::status(sock).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  // The guest's virtio-blk driver is up once it announced vda's size.
  ASSERT_TRUE(vm.WaitForOutput("[vda]", 180s)) << Tail(vm.output());

  auto r = RunCrosvm({"suspend", sock}, 30);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // While suspended the console does not advance (the guest prints as its timers fire).
  size_t frozen = vm.output().size();
  std::this_thread::sleep_for(3s);
  EXPECT_EQ(vm.output().size(), frozen) << Tail(vm.output());
  r = RunCrosvm({"suspend", sock}, 30);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("already suspended"), std::string::npos) << r.output;
  r = RunCrosvm({"resume", sock}, 30);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = RunCrosvm({"resume", sock}, 30);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("not suspended"), std::string::npos) << r.output;

  // The guest sees the new capacity: virtio_blk logs "new size".
  r = RunCrosvm({"disk", "resize", "0", "32M", sock}, 30);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(fs::file_size(disk), 32u << 20);
  EXPECT_TRUE(vm.WaitForOutput("new size", 60s)) << Tail(vm.output());
  r = RunCrosvm({"disk", "resize", "0", "8M", sock}, 30);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("shrinking"), std::string::npos) << r.output;
  r = RunCrosvm({"disk", "resize", "5", "64M", sock}, 30);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("no disk 5"), std::string::npos) << r.output;

  r = RunCrosvm({"balloon", "16M", sock}, 30);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("balloon target 16777216 bytes"), std::string::npos) << r.output;

  r = RunCrosvm({"stop", sock}, 30);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(vm.Wait(30s), 0) << Tail(vm.output());
  EXPECT_FALSE(fs::exists(sock));
}

TEST(Control, TwoVmsInOneDirectoryAndAMissingSocket) {
  auto g = LoadGuest();
  ASSERT_TRUE(g);
  TempDir dir("e2e-control2");
  std::string d1 = MakeDisk(dir, "a.img"), d2 = MakeDisk(dir, "b.img");
  BackgroundVmm a(Args(*g, d1, dir.path()), dir.File("a.log"));
  BackgroundVmm b(Args(*g, d2, dir.path()), dir.File("b.log"));
  const std::string sa = SocketIn(dir.path(), a.pid()), sb = SocketIn(dir.path(), b.pid());
  ASSERT_TRUE(WaitForFile(sa, 30s)) << Tail(a.output());
  ASSERT_TRUE(WaitForFile(sb, 30s)) << Tail(b.output());
  auto r = RunCrosvm({"stop", sa, sb}, 30);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(a.Wait(30s), 0) << Tail(a.output());
  EXPECT_EQ(b.Wait(30s), 0) << Tail(b.output());
  EXPECT_FALSE(fs::exists(sa));
  EXPECT_FALSE(fs::exists(sb));

  r = RunCrosvm({"stop", sa}, 30);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("no control socket at " + sa), std::string::npos) << r.output;
}

TEST(Control, SigtermRemovesTheSocket) {
  auto g = LoadGuest();
  ASSERT_TRUE(g);
  TempDir dir("e2e-control3");
  std::string disk = MakeDisk(dir, "disk.img");
  const std::string sock = dir.File("vm.sock");
  BackgroundVmm vm(Args(*g, disk, sock), dir.File("crosvm.log"));
  ASSERT_TRUE(WaitForFile(sock, 30s)) << Tail(vm.output());
  kill(vm.pid(), SIGTERM);
  vm.Wait(30s);
  EXPECT_FALSE(fs::exists(sock));
}

}  // namespace
}  // namespace crosvm::e2e
