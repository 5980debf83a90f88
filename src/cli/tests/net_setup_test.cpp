// The host side of --host_ip/--netmask/--mac and --tap-fd. Everything that creates an interface
// runs in a forked child in a network namespace of its own; the build machine's is never touched.
#include "cli/net_setup.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <functional>

#include "cli/args.h"

namespace crosvm::cli {
namespace {

// Runs `body` in a forked child in a new network namespace; "" means every check passed.
std::string InNetns(const std::function<std::string()>& body) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return "pipe failed";
  pid_t pid = fork();
  if (pid < 0) return "fork failed";
  if (pid == 0) {
    close(p[0]);
    std::string msg = unshare(CLONE_NEWNET) != 0
                          ? std::string("unshare(CLONE_NEWNET): ") + strerror(errno)
                          : body();
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

Config NetConfig() {
  auto c = ParseRunArgs(
      {"--host_ip", "10.77.0.1", "--netmask", "255.255.255.0", "--mac", "02:00:00:aa:bb:cc", "k"});
  EXPECT_TRUE(c.ok()) << c.error().message();
  return c.ok() ? *c : Config{};
}

TEST(NetSetupTest, NoNetworkFlagsNoCards) {
  auto r = OpenNetBackends(Config{});
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_TRUE(r->empty());
}

TEST(NetSetupTest, CreatesConfiguresAndBringsUpTheTap) {
  Config c = NetConfig();
  EXPECT_EQ(InNetns([&]() -> std::string {
              auto r = OpenNetBackends(c);
              if (!r.ok()) return r.error().ToString();
              if (r->size() != 1) return "cards: " + std::to_string(r->size());
              const NetBackend& n = (*r)[0];
              if (n.tap->name() != "crosvm_tap0") return "name " + n.tap->name();
              if (net::FormatMac(n.mac) != "02:00:00:aa:bb:cc")
                return "mac " + net::FormatMac(n.mac);
              int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
              ifreq ifr{};
              std::strncpy(ifr.ifr_name, n.tap->name().c_str(), IFNAMSIZ - 1);
              if (ioctl(sock, SIOCGIFADDR, &ifr) != 0) return "SIOCGIFADDR failed";
              char ip[32];
              inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&ifr.ifr_addr)->sin_addr, ip,
                        sizeof(ip));
              if (std::string(ip) != "10.77.0.1") return std::string("address ") + ip;
              if (ioctl(sock, SIOCGIFNETMASK, &ifr) != 0) return "SIOCGIFNETMASK failed";
              inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&ifr.ifr_netmask)->sin_addr, ip,
                        sizeof(ip));
              if (std::string(ip) != "255.255.255.0") return std::string("netmask ") + ip;
              if (ioctl(sock, SIOCGIFFLAGS, &ifr) != 0) return "SIOCGIFFLAGS failed";
              if (!(ifr.ifr_flags & IFF_UP)) return "not up";
              // The host end does not take the guest's MAC.
              if (ioctl(sock, SIOCGIFHWADDR, &ifr) != 0) return "SIOCGIFHWADDR failed";
              if (std::memcmp(ifr.ifr_hwaddr.sa_data, n.mac.data(), 6) == 0)
                return "host end has the guest's MAC";
              close(sock);
              if (n.origin.find("--host_ip 10.77.0.1/255.255.255.0") == std::string::npos)
                return "origin " + n.origin;
              return "";
            }),
            "");
}

TEST(NetSetupTest, TapFdCardsFollowTheCreatedOneInOrder) {
  EXPECT_EQ(InNetns([]() -> std::string {
              // Two TAPs opened "by the caller", as an unprivileged user's helper would.
              int fds[2];
              for (int i = 0; i < 2; ++i) {
                fds[i] = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
                if (fds[i] < 0) return "open /dev/net/tun failed";
                ifreq ifr{};
                std::snprintf(ifr.ifr_name, IFNAMSIZ, "given%d", i);
                ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
                if (ioctl(fds[i], TUNSETIFF, &ifr) != 0) return "TUNSETIFF failed";
              }
              Config c = NetConfig();
              c.tap_fds = {fds[1], fds[0]};
              auto r = OpenNetBackends(c);
              if (!r.ok()) return r.error().ToString();
              if (r->size() != 3) return "cards: " + std::to_string(r->size());
              const char* names[] = {"crosvm_tap0", "given1", "given0"};
              for (int i = 0; i < 3; ++i) {
                if ((*r)[i].tap->name() != names[i])
                  return "card " + std::to_string(i) + " is " + (*r)[i].tap->name();
              }
              if ((*r)[1].origin != "--tap-fd " + std::to_string(fds[1]))
                return "origin " + (*r)[1].origin;
              // --tap-fd cards get distinct locally administered unicast MACs.
              for (int i = 1; i < 3; ++i) {
                if (((*r)[i].mac[0] & 3) != 2) return "MAC " + net::FormatMac((*r)[i].mac);
              }
              if ((*r)[1].mac == (*r)[2].mac) return "same MAC twice";
              return "";
            }),
            "");
}

TEST(NetSetupTest, ErrorsAreOneLineNamingTheFlag) {
  // A --tap-fd that is a pipe.
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  close(p[1]);
  Config c;
  c.tap_fds = {p[0]};
  auto r = OpenNetBackends(c);
  ASSERT_FALSE(r.ok());
  std::string m = r.error().ToString();
  EXPECT_NE(m.find("--tap-fd " + std::to_string(p[0]) + " is not a TAP device"), std::string::npos)
      << m;
  EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  // No /dev/net/tun.
  auto missing = OpenNetBackends(NetConfig(), "/nonexistent/tun");
  ASSERT_FALSE(missing.ok());
  m = missing.error().ToString();
  EXPECT_NE(m.find("--host_ip 10.77.0.1/255.255.255.0: /nonexistent/tun is missing"),
            std::string::npos)
      << m;
  EXPECT_EQ(m.find('\n'), std::string::npos) << m;
}

TEST(NetSetupTest, RandomLocalMacIsUnicastAndLocal) {
  for (int i = 0; i < 64; ++i) {
    net::MacAddress m = RandomLocalMac();
    EXPECT_EQ(m[0] & 1, 0) << net::FormatMac(m);
    EXPECT_EQ(m[0] & 2, 2) << net::FormatMac(m);
  }
}

}  // namespace
}  // namespace crosvm::cli
