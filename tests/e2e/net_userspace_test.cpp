// Tier 4 (label nested): virtio-net with guest user space on hardware KVM, inside the nested host
// L1 (tests/nested/run-in-l1). The test process moves into a network namespace of its own first;
// the guest's busybox pings the host end, fetches a file with wget from an HTTP server in this
// test, and sends a file back with nc; each side checks the other's SHA-256. Once on a TAP
// crosvm creates (--host_ip/--netmask/--mac) and once on a TAP this test opened (--tap-fd),
// sandboxed (the default), with the net device process's fds checked while it runs.
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "harness.h"
#include "net_helpers.h"

namespace crosvm::e2e {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const char* const kTestInitrd = CROSVM_BUILD_DIR "/guest/userspace/initramfs-test.cpio";
constexpr size_t kBulkMiB = 24;
constexpr int kHttpPort = 8080;
constexpr int kSinkPort = 5001;

std::string Sha256(const std::string& path) {
  RunResult r = RunProcess({"sha256sum", path}, 60);
  return r.output.substr(0, 64);
}

int Listen(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || listen(fd, 4) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Accepts one connection within `limit`; -1 otherwise.
int AcceptOne(int listener, std::chrono::seconds limit) {
  pollfd p{listener, POLLIN, 0};
  if (poll(&p, 1, static_cast<int>(limit.count() * 1000)) <= 0) return -1;
  return accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
}

struct Transfer {
  std::atomic<bool> done{false};
  size_t bytes = 0;
  double seconds = 0;
  std::string error;
};

// An HTTP/1.0 server for one GET: answers with the file `path`.
void ServeHttpOnce(int listener, const std::string& path, Transfer* t) {
  int c = AcceptOne(listener, 300s);
  if (c < 0) {
    t->error = "no HTTP connection";
    t->done = true;
    return;
  }
  std::string req;
  char buf[65536];
  while (req.find("\r\n\r\n") == std::string::npos && req.size() < 8192) {
    pollfd p{c, POLLIN, 0};
    if (poll(&p, 1, 30000) <= 0) break;
    ssize_t n = read(c, buf, sizeof(buf));
    if (n <= 0) break;
    req.append(buf, static_cast<size_t>(n));
  }
  std::ifstream in(path, std::ios::binary);
  std::string body((std::istreambuf_iterator<char>(in)), {});
  std::string head =
      "HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n";
  auto start = std::chrono::steady_clock::now();
  std::string all = head + body;
  size_t off = 0;
  while (off < all.size()) {
    ssize_t n = write(c, all.data() + off, all.size() - off);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  shutdown(c, SHUT_WR);
  // Wait for the guest to close, so that the time covers delivery, not only queueing.
  pollfd p{c, POLLIN, 0};
  while (poll(&p, 1, 60000) > 0 && read(c, buf, sizeof(buf)) > 0) {
  }
  t->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  t->bytes = off >= head.size() ? off - head.size() : 0;
  if (req.rfind("GET /blob ", 0) != 0) t->error = "unexpected request: " + req.substr(0, 80);
  close(c);
  t->done = true;
}

// Receives one connection's bytes into `path`.
void SinkOnce(int listener, const std::string& path, Transfer* t) {
  int c = AcceptOne(listener, 300s);
  if (c < 0) {
    t->error = "no connection to the sink";
    t->done = true;
    return;
  }
  std::ofstream out(path, std::ios::binary);
  char buf[65536];
  auto start = std::chrono::steady_clock::now();
  for (;;) {
    pollfd p{c, POLLIN, 0};
    if (poll(&p, 1, 60000) <= 0) {
      t->error = "the sink timed out";
      break;
    }
    ssize_t n = read(c, buf, sizeof(buf));
    if (n <= 0) break;
    out.write(buf, n);
    t->bytes += static_cast<size_t>(n);
  }
  t->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  close(c);
  t->done = true;
}

// A TAP opened and configured here, as a privileged helper would for an unprivileged crosvm.
// The fd is inheritable (no O_CLOEXEC) so that crosvm gets it.
int OpenConfiguredTap(const std::string& name, std::string* error) {
  int fd = open("/dev/net/tun", O_RDWR);
  if (fd < 0) return *error = "open /dev/net/tun: " + std::string(strerror(errno)), -1;
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
  if (ioctl(fd, TUNSETIFF, &ifr) != 0) return *error = "TUNSETIFF failed", -1;
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  auto set_addr = [&](unsigned long req, const char* ip) {
    ifreq r{};
    std::strncpy(r.ifr_name, name.c_str(), IFNAMSIZ - 1);
    auto* sin = reinterpret_cast<sockaddr_in*>(&r.ifr_addr);
    sin->sin_family = AF_INET;
    inet_pton(AF_INET, ip, &sin->sin_addr);
    return ioctl(s, req, &r) == 0;
  };
  ifreq up{};
  std::strncpy(up.ifr_name, name.c_str(), IFNAMSIZ - 1);
  bool ok = set_addr(SIOCSIFADDR, "10.0.2.1") && set_addr(SIOCSIFNETMASK, "255.255.255.0") &&
            ioctl(s, SIOCGIFFLAGS, &up) == 0;
  up.ifr_flags |= IFF_UP;
  ok = ok && ioctl(s, SIOCSIFFLAGS, &up) == 0;
  close(s);
  if (!ok) return *error = "configuring " + name + ": " + strerror(errno), -1;
  return fd;
}

struct NetRun {
  std::map<std::string, std::string> results;
  int status = -1;
  std::string output;
};

// Boots the user-space test guest with `net_args`, serves the transfers, checks the device
// process while the guest runs, and returns what the guest reported.
void RunNetGuest(const std::vector<std::string>& net_args) {
  std::string kind = HostKvmKind();
  if (kind != "hardware") {
    GTEST_SKIP() << "host KVM is '" << kind
                 << "': guest user space cannot run on it; make test runs this inside L1";
  }
  auto kernel = GuestVar("CROSVM_GUEST_KERNEL");
  ASSERT_TRUE(kernel) << "CROSVM_GUEST_KERNEL is not set (make test sets it)";
  ASSERT_TRUE(fs::exists(kTestInitrd)) << kTestInitrd << " is missing: build the project";
  TempDir dir("e2e-net-us");
  ASSERT_TRUE(dir.ok());

  // The file the guest fetches, random.
  std::string blob = dir.File("blob");
  ASSERT_EQ(RunProcess({"dd", "if=/dev/urandom", "of=" + blob, "bs=1M",
                        "count=" + std::to_string(kBulkMiB), "status=none"},
                       60)
                .exit_code,
            0);
  std::string blob_sha = Sha256(blob);
  int http = Listen(kHttpPort), sink = Listen(kSinkPort);
  ASSERT_GE(http, 0);
  ASSERT_GE(sink, 0);
  Transfer down, up;
  std::thread t_http(ServeHttpOnce, http, blob, &down);
  std::thread t_sink(SinkOnce, sink, dir.File("from-guest"), &up);

  const std::string script =
      "ping -c 3 -W 5 10.0.2.1 > /tmp/ping 2>&1; result ping_status $?\n"
      "result ping \"$(tail -n 1 /tmp/ping)\"\n"
      "wget -q -O /tmp/in http://10.0.2.1:" +
      std::to_string(kHttpPort) +
      "/blob; result wget $?\n"
      "result in_sha $(sha256sum /tmp/in | cut -d' ' -f1)\n"
      "rm -f /tmp/in\n"
      "dd if=/dev/urandom of=/tmp/out bs=1M count=" +
      std::to_string(kBulkMiB) +
      " 2>/dev/null\n"
      "result out_sha $(sha256sum /tmp/out | cut -d' ' -f1)\n"
      "nc 10.0.2.1 " +
      std::to_string(kSinkPort) +
      " < /tmp/out > /dev/null; result nc $?\n"
      "result mac $(cat /sys/class/net/eth0/address)\n"
      "result driver $(basename $(readlink /sys/class/net/eth0/device/driver))\n";
  std::vector<std::string> args = {"run",
                                   "-m",
                                   "256",
                                   "-i",
                                   kTestInitrd,
                                   "-p",
                                   "crosvm_test_b64=" + Base64(script),
                                   "-p",
                                   "ip=10.0.2.2::10.0.2.1:255.255.255.0::eth0:off"};
  args.insert(args.end(), net_args.begin(), net_args.end());
  args.push_back(*kernel);
  BackgroundVmm vmm(args, dir.File("crosvm.log"));
  ASSERT_GT(vmm.pid(), 0);

  auto devices = vmm.WaitForDevices(2);
  ASSERT_TRUE(devices.count("net0")) << Tail(vmm.output());
  pid_t net0 = devices["net0"];
  EXPECT_NE(NsLink(net0, "net"), NsLink(vmm.pid(), "net"));
  auto unexpected = UnexpectedDeviceFds(net0, dir.File("crosvm.log"));
  EXPECT_TRUE(unexpected.empty()) << ::testing::PrintToString(unexpected);
  EXPECT_EQ(CountFds(net0, "/dev/net/tun"), 1);

  int code = vmm.Wait(300s);
  std::string out = vmm.output();
  // Unblock the servers if the guest never connected.
  shutdown(http, SHUT_RDWR);
  shutdown(sink, SHUT_RDWR);
  t_http.join();
  t_sink.join();
  close(http);
  close(sink);
  EXPECT_EQ(code, 0) << Tail(out);

  std::map<std::string, std::string> res;
  int status = -1;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.rfind("CROSVM-TEST: ", 0) == 0) {
      std::string kv = line.substr(13);
      size_t eq = kv.find('=');
      if (eq != std::string::npos) res[kv.substr(0, eq)] = kv.substr(eq + 1);
    } else if (line.rfind("CROSVM-TEST-END status=", 0) == 0) {
      status = std::atoi(line.c_str() + 23);
    }
  }
  EXPECT_EQ(status, 0) << Tail(out);
  EXPECT_EQ(res["ping_status"], "0") << res["ping"];
  EXPECT_NE(res["ping"].find("round-trip"), std::string::npos) << res["ping"];
  EXPECT_EQ(res["wget"], "0") << Tail(out);
  EXPECT_EQ(res["in_sha"], blob_sha) << "the guest got other bytes than the host served";
  EXPECT_EQ(res["nc"], "0");
  EXPECT_EQ(up.bytes, kBulkMiB << 20) << up.error;
  EXPECT_EQ(Sha256(dir.File("from-guest")), res["out_sha"]) << "the host got other bytes";
  EXPECT_EQ(res["driver"], "virtio_net");
  EXPECT_TRUE(down.error.empty()) << down.error;
  std::printf("[ net] guest ping: %s\n", res["ping"].c_str());
  if (down.seconds > 0 && up.seconds > 0) {
    std::printf("[ net] host->guest (wget) %.1f MB/s, guest->host (nc) %.1f MB/s, %zu MiB each\n",
                down.bytes / down.seconds / 1e6, up.bytes / up.seconds / 1e6, kBulkMiB);
  }
  // The guest's card has the MAC crosvm logged for it (given, or chosen for a --tap-fd card).
  EXPECT_NE(out.find("guest MAC " + res["mac"]), std::string::npos) << res["mac"];
  std::printf("[ net] guest MAC %s\n", res["mac"].c_str());
}

class NetUserSpace : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(unshare(CLONE_NEWNET), 0) << "unshare(CLONE_NEWNET): " << strerror(errno);
  }
};

TEST_F(NetUserSpace, PingWgetAndBulkBothWaysOnACreatedTap) {
  RunNetGuest(
      {"--host_ip", "10.0.2.1", "--netmask", "255.255.255.0", "--mac", "02:00:00:12:34:56"});
}

TEST_F(NetUserSpace, PingWgetAndBulkBothWaysOnAGivenTapFd) {
  std::string error;
  int fd = OpenConfiguredTap("given0", &error);
  ASSERT_GE(fd, 0) << error;
  RunNetGuest({"--tap-fd", std::to_string(fd)});
  close(fd);
}

}  // namespace
}  // namespace crosvm::e2e
