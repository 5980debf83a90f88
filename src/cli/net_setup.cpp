#include "cli/net_setup.h"

#include <sys/random.h>

#include "base/fd.h"

namespace crosvm::cli {

net::MacAddress RandomLocalMac() {
  net::MacAddress mac{};
  if (getrandom(mac.data(), mac.size(), 0) != static_cast<ssize_t>(mac.size())) {
    mac = {0, 0, 0, 0, 0, 1};  // getrandom does not fail for 6 bytes once the pool is ready
  }
  mac[0] = static_cast<uint8_t>((mac[0] & 0xfc) | 0x02);  // unicast, locally administered
  return mac;
}

base::Result<std::vector<NetBackend>> OpenNetBackends(const Config& config,
                                                      const std::string& tun_path) {
  std::vector<NetBackend> out;
  if (config.host_ip && config.netmask && config.mac) {
    const std::string origin = "--host_ip " + *config.host_ip + "/" + *config.netmask;
    auto tap = net::Tap::Create(kTapNamePattern, tun_path);
    if (!tap.ok()) return tap.error().Wrap(origin);
    // The host end keeps the MAC the kernel gave it: the guest's MAC on both ends of one link
    // would confuse a bridge and the host's neighbour table.
    auto status = tap->SetIpAddress(*config.host_ip, *config.netmask);
    if (status.ok()) status = tap->Up();
    if (!status.ok()) return status.error().Wrap(origin);
    out.push_back({std::make_unique<net::Tap>(std::move(*tap)), *config.mac, origin});
  }
  for (int fd : config.tap_fds) {
    auto tap = net::Tap::FromFd(base::ScopedFd(fd));
    if (!tap.ok()) return tap.error();  // the message names --tap-fd N already
    out.push_back({std::make_unique<net::Tap>(std::move(*tap)), RandomLocalMac(),
                   "--tap-fd " + std::to_string(fd)});
  }
  return out;
}

}  // namespace crosvm::cli
