// TAP creation and configuration. Everything that touches a network interface runs in a forked
// child inside a network namespace of its own, so the build machine's namespace never changes.
#include "net/tap.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <functional>

namespace crosvm::net {
namespace {

// Runs `body` in a forked child in a new network namespace; returns what it reported ("" means
// every check passed) or why it could not run.
std::string InNetns(const std::function<std::string()>& body) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return "pipe failed";
  pid_t pid = fork();
  if (pid < 0) return "fork failed";
  if (pid == 0) {
    close(p[0]);
    std::string msg;
    if (unshare(CLONE_NEWNET) != 0) {
      msg = std::string("unshare(CLONE_NEWNET): ") + strerror(errno);
    } else {
      msg = body();
    }
    if (msg.empty()) msg = "ok";
    (void)!write(p[1], msg.data(), msg.size());
    _exit(0);
  }
  close(p[1]);
  std::string out;
  char buf[512];
  ssize_t n;
  while ((n = read(p[0], buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  close(p[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return "child died: " + out;
  return out == "ok" ? "" : out;
}

TEST(TapTest, CreateConfigureAndReadBackInANamespace) {
  EXPECT_EQ(InNetns([]() -> std::string {
              auto tap = Tap::Create("crosvm_t%d");
              if (!tap.ok()) return "Create: " + tap.error().ToString();
              if (tap->name() != "crosvm_t0") return "unexpected name " + tap->name();
              if (!(fcntl(tap->fd(), F_GETFL) & O_NONBLOCK)) return "fd is blocking";
              auto mac = ParseMac("02:ab:cd:00:00:01");
              if (!mac.ok()) return mac.error().ToString();
              if (auto s = tap->SetIpAddress("10.99.0.1", "255.255.255.0"); !s.ok())
                return "SetIpAddress: " + s.error().ToString();
              if (auto s = tap->SetMac(*mac); !s.ok()) return "SetMac: " + s.error().ToString();
              if (auto s = tap->Up(); !s.ok()) return "Up: " + s.error().ToString();

              // Read everything back through the kernel.
              int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
              ifreq ifr{};
              std::strncpy(ifr.ifr_name, tap->name().c_str(), IFNAMSIZ - 1);
              if (ioctl(sock, SIOCGIFADDR, &ifr) != 0) return "SIOCGIFADDR failed";
              char ip[32];
              inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&ifr.ifr_addr)->sin_addr, ip,
                        sizeof(ip));
              if (std::string(ip) != "10.99.0.1") return std::string("address ") + ip;
              if (ioctl(sock, SIOCGIFNETMASK, &ifr) != 0) return "SIOCGIFNETMASK failed";
              inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&ifr.ifr_netmask)->sin_addr, ip,
                        sizeof(ip));
              if (std::string(ip) != "255.255.255.0") return std::string("netmask ") + ip;
              if (ioctl(sock, SIOCGIFHWADDR, &ifr) != 0) return "SIOCGIFHWADDR failed";
              if (std::memcmp(ifr.ifr_hwaddr.sa_data, mac->data(), 6) != 0) return "MAC differs";
              if (ioctl(sock, SIOCGIFFLAGS, &ifr) != 0) return "SIOCGIFFLAGS failed";
              if (!(ifr.ifr_flags & IFF_UP)) return "not up";
              close(sock);

              // The device's own calls: header size and offloads, accepted and refused.
              if (auto s = tap->SetVnetHdrSize(12); !s.ok()) return s.error().ToString();
              auto all = tap->SetOffload(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN);
              if (!all.ok() || !*all) return "offloads refused";
              auto bogus = tap->SetOffload(0x80000000u);
              if (!bogus.ok()) return "bogus offload: " + bogus.error().ToString();
              if (*bogus) return "a flag the kernel does not know was accepted";

              // FromFd accepts a real TAP and keeps its name.
              int dup_fd = fcntl(tap->fd(), F_DUPFD_CLOEXEC, 0);
              auto again = Tap::FromFd(base::ScopedFd(dup_fd));
              if (!again.ok()) return "FromFd on a TAP: " + again.error().ToString();
              if (again->name() != tap->name()) return "FromFd name " + again->name();
              return "";
            }),
            "");
  // Nothing leaked into this (the build machine's) namespace.
  EXPECT_EQ(if_nametoindex("crosvm_t0"), 0u);
}

TEST(TapTest, FromFdRefusesWhatIsNotATap) {
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  close(p[1]);
  auto r = Tap::FromFd(base::ScopedFd(p[0]));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("is not a TAP device"), std::string::npos)
      << r.error().ToString();
  auto n = Tap::FromFd(base::ScopedFd(open("/dev/null", O_RDWR | O_CLOEXEC)));
  ASSERT_FALSE(n.ok());
  EXPECT_NE(n.error().message().find("is not a TAP device"), std::string::npos);
  auto closed = Tap::FromFd(base::ScopedFd(1000));
  ASSERT_FALSE(closed.ok());
  EXPECT_NE(closed.error().message().find("not an open fd"), std::string::npos);
}

TEST(TapTest, FromFdRefusesATunAndATapWithoutVnetHeaders) {
  EXPECT_EQ(InNetns([]() -> std::string {
              for (int flags : {IFF_TUN | IFF_NO_PI | IFF_VNET_HDR, IFF_TAP | IFF_NO_PI}) {
                int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
                if (fd < 0) return "open /dev/net/tun failed";
                ifreq ifr{};
                ifr.ifr_flags = static_cast<short>(flags);
                if (ioctl(fd, TUNSETIFF, &ifr) != 0) return "TUNSETIFF failed";
                auto r = Tap::FromFd(base::ScopedFd(fd));
                if (r.ok()) return "accepted flags " + std::to_string(flags);
                const std::string& m = r.error().message();
                if (m.find(flags & IFF_TUN ? "not a TAP (Ethernet)" : "IFF_VNET_HDR") ==
                    std::string::npos)
                  return "unclear error: " + m;
              }
              // Opened but never attached.
              int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
              auto r = Tap::FromFd(base::ScopedFd(fd));
              if (r.ok() || r.error().message().find("is not a TAP device") == std::string::npos)
                return "an unattached tun fd was not refused clearly";
              return "";
            }),
            "");
}

TEST(TapTest, MissingTunNodeSaysWhatToDo) {
  auto r = Tap::Create("", "/nonexistent/dev/net/tun");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("is missing: load the tun module"), std::string::npos)
      << r.error().ToString();
}

TEST(TapTest, MissingCapNetAdminSaysWhatToDo) {
  EXPECT_EQ(InNetns([]() -> std::string {
              // Drop CAP_NET_ADMIN from the effective set (root keeps its file permissions, so
              // /dev/net/tun still opens and TUNSETIFF is what fails).
              __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
              __user_cap_data_struct data[2]{};
              if (syscall(SYS_capget, &hdr, data) != 0) return "capget failed";
              data[CAP_NET_ADMIN / 32].effective &= ~(1u << (CAP_NET_ADMIN % 32));
              if (syscall(SYS_capset, &hdr, data) != 0) return "capset failed";
              auto r = Tap::Create("crosvm_t%d");
              if (r.ok()) return "created a TAP without CAP_NET_ADMIN";
              if (r.error().message().find("needs CAP_NET_ADMIN") == std::string::npos)
                return "unclear error: " + r.error().ToString();
              return "";
            }),
            "");
}

TEST(TapTest, BadAddressesAndNamesAreRefusedClearly) {
  EXPECT_EQ(InNetns([]() -> std::string {
              auto tap = Tap::Create("");
              if (!tap.ok()) return tap.error().ToString();
              auto s = tap->SetIpAddress("10.0.0.300", "255.255.255.0");
              if (s.ok() ||
                  s.error().message().find("bad host IP address '10.0.0.300'") == std::string::npos)
                return "bad IP not refused clearly";
              s = tap->SetIpAddress("10.0.0.1", "255.0.255.0");
              if (s.ok() || s.error().message().find("bad netmask") == std::string::npos)
                return "non-contiguous netmask not refused";
              s = tap->SetIpAddress("10.0.0.1", "mask");
              if (s.ok() || s.error().message().find("bad netmask 'mask'") == std::string::npos)
                return "bad netmask not refused clearly";
              return "";
            }),
            "");
  EXPECT_FALSE(Tap::Create("a_name_longer_than_15").ok());
}

TEST(TapTest, ParseMac) {
  auto m = ParseMac("02:AB:cd:00:10:ff");
  ASSERT_TRUE(m.ok()) << m.error().ToString();
  EXPECT_EQ(*m, (MacAddress{0x02, 0xab, 0xcd, 0x00, 0x10, 0xff}));
  EXPECT_EQ(FormatMac(*m), "02:ab:cd:00:10:ff");
  for (const char* bad : {"", "02:ab:cd:00:10", "02:ab:cd:00:10:ff:00", "02-ab-cd-00-10-ff",
                          "0g:ab:cd:00:10:ff", "01:00:5e:00:00:01"}) {
    auto r = ParseMac(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_NE(r.error().message().find("bad MAC address"), std::string::npos);
    }
  }
}

}  // namespace
}  // namespace crosvm::net
