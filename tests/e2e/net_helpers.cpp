#include "net_helpers.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

namespace crosvm::e2e {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

uint16_t Checksum(const uint8_t* data, size_t len) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < len; i += 2) sum += (data[i] << 8) | data[i + 1];
  if (len & 1) sum += data[len - 1] << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return htons(static_cast<uint16_t>(~sum));
}

}  // namespace

std::vector<std::string> UnexpectedDeviceFds(pid_t pid, const std::string& stderr_path) {
  const std::set<std::string> kinds = {"anon_inode:[eventfd]", "anon_inode:[eventpoll]",
                                       "/dev/null", "/dev/net/tun"};
  std::vector<std::string> bad;
  int sockets = 0, pipes = 0;
  for (const auto& [fd, target] : OpenFds(pid)) {
    if (target.rfind("socket:", 0) == 0) {
      if (++sockets > 1) bad.push_back(fd + " -> " + target + " (a second socket)");
    } else if (target.rfind("pipe:", 0) == 0) {
      if (++pipes > 1) bad.push_back(fd + " -> " + target + " (a second pipe)");
    } else if (fd == "2") {
      if (target != stderr_path) bad.push_back(fd + " -> " + target);
    } else if (!kinds.count(target)) {
      bad.push_back(fd + " -> " + target);
    }
  }
  if (sockets != 1) bad.push_back(std::to_string(sockets) + " sockets (expected 1 channel)");
  return bad;
}

int CountFds(pid_t pid, const std::string& target) {
  int n = 0;
  for (const auto& [fd, t] : OpenFds(pid)) n += t == target;
  return n;
}

Pinger::Pinger(const std::string& ip) : ip_(ip), id_(static_cast<uint16_t>(getpid())) {
  fd_ = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);
}

Pinger::~Pinger() {
  if (fd_ >= 0) close(fd_);
}

std::optional<double> Pinger::Once(int timeout_ms) {
  sockaddr_in to{};
  to.sin_family = AF_INET;
  if (inet_pton(AF_INET, ip_.c_str(), &to.sin_addr) != 1) return std::nullopt;
  uint8_t packet[64] = {};
  icmphdr* h = reinterpret_cast<icmphdr*>(packet);
  h->type = ICMP_ECHO;
  h->un.echo.id = htons(id_);
  h->un.echo.sequence = htons(++seq_);
  for (size_t i = sizeof(icmphdr); i < sizeof(packet); ++i) packet[i] = static_cast<uint8_t>(i);
  h->checksum = Checksum(packet, sizeof(packet));
  auto start = std::chrono::steady_clock::now();
  if (sendto(fd_, packet, sizeof(packet), 0, reinterpret_cast<sockaddr*>(&to), sizeof(to)) < 0) {
    // EHOSTUNREACH while ARP has no answer yet: wait as for a lost reply.
    std::this_thread::sleep_for(std::chrono::milliseconds(timeout_ms));
    return std::nullopt;
  }
  auto end = start + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    end - std::chrono::steady_clock::now())
                    .count();
    if (left <= 0) return std::nullopt;
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    uint8_t buf[1500];
    sockaddr_in from{};
    socklen_t len = sizeof(from);
    ssize_t n = recvfrom(fd_, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &len);
    if (n < static_cast<ssize_t>(sizeof(iphdr))) continue;
    size_t ihl = (buf[0] & 0xf) * 4u;
    if (n < static_cast<ssize_t>(ihl + sizeof(icmphdr))) continue;
    const icmphdr* r = reinterpret_cast<const icmphdr*>(buf + ihl);
    if (from.sin_addr.s_addr != to.sin_addr.s_addr || r->type != ICMP_ECHOREPLY ||
        ntohs(r->un.echo.id) != id_ || ntohs(r->un.echo.sequence) != seq_) {
      continue;  // our own request (raw sockets see it on some paths), or an old reply
    }
    // The payload must come back unchanged.
    if (static_cast<size_t>(n) - ihl != sizeof(packet) ||
        std::memcmp(buf + ihl + sizeof(icmphdr), packet + sizeof(icmphdr),
                    sizeof(packet) - sizeof(icmphdr)) != 0) {
      continue;
    }
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
        .count();
  }
}

UdpListener::UdpListener(int port) {
  fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  if (bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd_);
    fd_ = -1;
  }
}

UdpListener::~UdpListener() {
  if (fd_ >= 0) close(fd_);
}

std::string UdpListener::Receive(int timeout_ms) {
  pollfd p{fd_, POLLIN, 0};
  if (poll(&p, 1, timeout_ms) <= 0) return "";
  char buf[2048];
  sockaddr_in from{};
  socklen_t len = sizeof(from);
  ssize_t n = recvfrom(fd_, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &len);
  if (n <= 0) return "";
  char ip[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &from.sin_addr, ip, sizeof(ip));
  last_sender_ = ip;
  return std::string(buf, static_cast<size_t>(n));
}

}  // namespace crosvm::e2e
