// End to end: virtio-net on a TAP crosvm creates, with the guest kernel alone (tier 3, label e2e:
// no guest user space is needed). The test process first moves into a network namespace of its
// own, so the TAP, its address and every packet exist only there, never in the build machine's.
// The guest kernel configures eth0 itself (ip=), answers the host's pings (ICMP echo is handled
// by the kernel), and sends its log to a UDP listener here (netconsole=). The root device never
// appears (root=/dev/vdz rootwait), so the kernel keeps waiting with interrupts on and never
// reaches user space, which cannot run on an emulating KVM.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"
#include "net_helpers.h"

extern char** environ;

namespace crosvm::e2e {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr const char* kGuestMac = "02:00:00:12:34:56";
constexpr const char* kHostIp = "10.0.2.1";
constexpr const char* kGuestIp = "10.0.2.2";
constexpr int kNetconsolePort = 6666;

// The guest kernel's own network set-up: static address, log to the host's UDP port, and no root
// device, so that it waits (rootwait) instead of running an init.
std::vector<std::string> GuestNetParams() {
  return {"-p",
          std::string("ip=") + kGuestIp + "::" + kHostIp + ":255.255.255.0::eth0:off",
          "-p",
          std::string("netconsole=6665@") + kGuestIp + "/eth0," + std::to_string(kNetconsolePort) +
              "@" + kHostIp + "/",
          "-p",
          "root=/dev/vdz rootwait"};
}

class NetKernel : public ::testing::Test {
 protected:
  void SetUp() override {
    // This process (and crosvm, its child) get a network namespace of their own.
    ASSERT_EQ(unshare(CLONE_NEWNET), 0) << "unshare(CLONE_NEWNET): " << strerror(errno);
  }
};

TEST_F(NetKernel, GuestKernelAnswersPingAndLogsOverNetconsole) {
  auto kernel = GuestVar("CROSVM_GUEST_KERNEL");
  auto params = GuestVar("CROSVM_GUEST_PARAMS");
  ASSERT_TRUE(kernel && params) << "CROSVM_GUEST_KERNEL/PARAMS are not set: run with `make test`";
  TempDir dir("e2e-net");
  ASSERT_TRUE(dir.ok());

  // The netconsole listener exists before the guest does.
  UdpListener netconsole(kNetconsolePort);
  ASSERT_TRUE(netconsole.ok());

  std::vector<std::string> args = {"run", "-m", "128", "-p", *params};
  for (const auto& a : GuestNetParams()) args.push_back(a);
  for (const char* a : {"--host_ip", kHostIp, "--netmask", "255.255.255.0", "--mac", kGuestMac}) {
    args.push_back(a);
  }
  args.push_back(*kernel);
  BackgroundVmm vmm(args, dir.File("crosvm.log"));
  ASSERT_GT(vmm.pid(), 0);

  // crosvm says which TAP and MAC it set up, once.
  ASSERT_TRUE(vmm.WaitForOutput("guest MAC", 60s)) << Tail(vmm.output());
  EXPECT_NE(vmm.output().find("net net0: TAP crosvm_tap0 (--host_ip 10.0.2.1/255.255.255.0), "
                              "guest MAC 02:00:00:12:34:56"),
            std::string::npos)
      << Tail(vmm.output());

  // The device process holds its TAP and lives in an empty network namespace of its own.
  auto devices = vmm.WaitForDevices(2);
  ASSERT_TRUE(devices.count("net0")) << Tail(vmm.output());
  pid_t net0 = devices["net0"];
  EXPECT_NE(NsLink(net0, "net"), NsLink(vmm.pid(), "net"));
  std::vector<std::string> unexpected = UnexpectedDeviceFds(net0, dir.File("crosvm.log"));
  EXPECT_TRUE(unexpected.empty()) << ::testing::PrintToString(unexpected);
  EXPECT_EQ(CountFds(net0, "/dev/net/tun"), 1) << "the device keeps exactly its TAP";

  // The guest kernel configured eth0 from ip= with the MAC crosvm offered. Slow here: every
  // guest instruction is emulated, so the boot to the network takes a minute or more.
  ASSERT_TRUE(vmm.WaitForOutput("gw=10.0.2.1", 420s)) << Tail(vmm.output());
  std::string out = vmm.output();
  EXPECT_NE(out.find("device=eth0, hwaddr=02:00:00:12:34:56, ipaddr=10.0.2.2, mask=255.255.255.0"),
            std::string::npos)
      << Tail(out);

  // Host to guest: ping until the first answer (ARP and a slow guest), then three in a row.
  Pinger ping(kGuestIp);
  ASSERT_TRUE(ping.ok());
  bool first = false;
  for (int i = 0; i < 60 && !first; ++i) first = ping.Once(2000).has_value();
  ASSERT_TRUE(first) << "the guest never answered a ping\n" << Tail(vmm.output());
  std::vector<double> rtts;
  for (int i = 0; i < 3; ++i) {
    auto rtt = ping.Once(5000);
    EXPECT_TRUE(rtt.has_value()) << "echo " << i << " lost";
    if (rtt) rtts.push_back(*rtt);
  }
  double sum = 0;
  for (double r : rtts) sum += r;
  if (!rtts.empty()) {
    std::printf("[ net] ping %s: %zu/3 answered, average RTT %.2f ms\n", kGuestIp, rtts.size(),
                sum / rtts.size());
  }

  // Guest to host: the kernel's log arrived over UDP, from the guest's address.
  // netconsole replays the boot log first: one datagram a line, hundreds of them.
  std::string log;
  auto until = std::chrono::steady_clock::now() + 60s;
  while (log.find("gw=10.0.2.1") == std::string::npos && std::chrono::steady_clock::now() < until) {
    log += netconsole.Receive(200);
  }
  EXPECT_NE(log.find("IP-Config: Complete"), std::string::npos) << "netconsole got: " << Tail(log);
  EXPECT_NE(log.find("hwaddr=02:00:00:12:34:56"), std::string::npos) << Tail(log);
  EXPECT_EQ(netconsole.last_sender(), kGuestIp);

  ASSERT_EQ(kill(vmm.pid(), SIGTERM), 0);
  EXPECT_EQ(vmm.Wait(60s), 128 + SIGTERM) << Tail(vmm.output());
  EXPECT_FALSE(fs::exists("/proc/" + std::to_string(net0))) << "net0 is still there";
  std::string end = vmm.output();
  EXPECT_NE(end.find("virtio-net net0 (crosvm_tap0)"), std::string::npos) << Tail(end);
}

// Errors before the VM starts are one line each.
TEST_F(NetKernel, BadTapFdIsOneClearLine) {
  auto kernel = GuestVar("CROSVM_GUEST_KERNEL");
  ASSERT_TRUE(kernel) << "CROSVM_GUEST_KERNEL is not set: run with `make test`";
  int fd = open("/dev/null", O_RDWR);  // no O_CLOEXEC: crosvm inherits it, and it is no TAP
  ASSERT_GE(fd, 3);
  RunResult r = RunCrosvm({"run", "--tap-fd", std::to_string(fd), *kernel}, 60);
  close(fd);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("--tap-fd " + std::to_string(fd) + " is not a TAP device"),
            std::string::npos)
      << r.output;
  RunResult missing = RunCrosvm({"run", "--host_ip", "10.0.2.1", *kernel}, 60);
  EXPECT_EQ(missing.exit_code, 2) << missing.output;
  EXPECT_NE(missing.output.find("--netmask and --mac missing"), std::string::npos)
      << missing.output;
}

}  // namespace
}  // namespace crosvm::e2e
