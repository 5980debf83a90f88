// The host side of the VM's network cards, set up in the VMM before any device is jailed: the
// TAP crosvm creates for --host_ip/--netmask/--mac (needs CAP_NET_ADMIN), and the TAPs the
// caller passed with --tap-fd. The jailed virtio-net device then only reads and writes its TAP.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "base/error.h"
#include "cli/config.h"
#include "net/tap.h"

namespace crosvm::cli {

// One network card's backend.
struct NetBackend {
  std::unique_ptr<net::Tap> tap;
  net::MacAddress mac;  // what the guest sees
  std::string origin;   // for logs: "--host_ip 10.0.2.1/255.255.255.0" or "--tap-fd 5"
};

// The name pattern of the TAPs crosvm creates (the kernel fills in %d).
inline constexpr const char* kTapNamePattern = "crosvm_tap%d";

// The cards in guest PCI order: the created TAP first (if any), then one per --tap-fd in the
// order given. Each error is one line naming the flag. `tun_path` is for tests.
base::Result<std::vector<NetBackend>> OpenNetBackends(
    const Config& config, const std::string& tun_path = net::Tap::kTunPath);

// A random locally administered unicast MAC (02:xx:...), for --tap-fd cards, which have no --mac.
net::MacAddress RandomLocalMac();

}  // namespace crosvm::cli
