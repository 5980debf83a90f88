#include "net/tap.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_arp.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace crosvm::net {
namespace {

constexpr const char* kCapHint =
    "needs CAP_NET_ADMIN: run crosvm as root, or create and configure the TAP beforehand and "
    "pass it with --tap-fd";

base::Error IoctlError(const std::string& what, int err) {
  if (err == EPERM || err == EACCES) {
    return base::Error(what + " " + kCapHint, err);
  }
  return base::Error::FromErrno(what, err);
}

base::Result<in_addr> ParseIpv4(const std::string& text, const char* what) {
  in_addr a{};
  if (inet_pton(AF_INET, text.c_str(), &a) != 1) {
    return base::Error(std::string("bad ") + what + " '" + text +
                       "': expected a dotted IPv4 address such as 192.168.10.1");
  }
  return a;
}

void CopyName(ifreq* ifr, const std::string& name) {
  std::memset(ifr, 0, sizeof(*ifr));
  std::strncpy(ifr->ifr_name, name.c_str(), IFNAMSIZ - 1);
}

}  // namespace

base::Result<MacAddress> ParseMac(std::string_view text) {
  MacAddress mac{};
  auto bad = [&] {
    return base::Error("bad MAC address '" + std::string(text) +
                       "': expected six hex bytes such as 02:00:00:12:34:56");
  };
  if (text.size() != 17) return bad();
  for (size_t i = 0; i < 6; ++i) {
    if (i > 0 && text[3 * i - 1] != ':') return bad();
    unsigned v = 0;
    for (size_t j = 0; j < 2; ++j) {
      char c = text[3 * i + j];
      unsigned d;
      if (c >= '0' && c <= '9') {
        d = c - '0';
      } else if (c >= 'a' && c <= 'f') {
        d = c - 'a' + 10;
      } else if (c >= 'A' && c <= 'F') {
        d = c - 'A' + 10;
      } else {
        return bad();
      }
      v = v * 16 + d;
    }
    mac[i] = static_cast<uint8_t>(v);
  }
  // A multicast source address would make every host on the link drop the guest's frames.
  if (mac[0] & 1) {
    return base::Error("bad MAC address '" + std::string(text) +
                       "': the first byte's lowest bit is set (a multicast address); use a "
                       "unicast one such as 02:00:00:12:34:56");
  }
  return mac;
}

std::string FormatMac(const MacAddress& mac) {
  char buf[18];
  std::snprintf(buf, sizeof(buf), "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3],
                mac[4], mac[5]);
  return buf;
}

base::Result<Tap> Tap::Create(const std::string& name_pattern, const std::string& tun_path) {
  if (name_pattern.size() >= IFNAMSIZ) {
    return base::Error("TAP name '" + name_pattern + "' is longer than " +
                       std::to_string(IFNAMSIZ - 1) + " characters");
  }
  int raw = open(tun_path.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (raw < 0) {
    int err = errno;
    if (err == ENOENT || err == ENODEV || err == ENXIO) {
      return base::Error(tun_path +
                             " is missing: load the tun module (modprobe tun) or create the node "
                             "(mknod " +
                             tun_path + " c 10 200)",
                         err);
    }
    if (err == EACCES || err == EPERM) {
      return base::Error(
          "cannot open " + tun_path + ": permission denied; creating a TAP " + kCapHint, err);
    }
    return base::Error::FromErrno("open " + tun_path, err);
  }
  base::ScopedFd fd(raw);
  ifreq ifr;
  CopyName(&ifr, name_pattern);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
  if (ioctl(fd.get(), TUNSETIFF, &ifr) < 0) {
    int err = errno;
    if (err == EBUSY) {
      return base::Error("TAP '" + name_pattern + "' exists and is in use by another process", err);
    }
    return IoctlError("creating a TAP device (TUNSETIFF)", err);
  }
  ifr.ifr_name[IFNAMSIZ - 1] = '\0';
  return Tap(std::move(fd), ifr.ifr_name);
}

base::Result<Tap> Tap::FromFd(base::ScopedFd fd) {
  const std::string which = "--tap-fd " + std::to_string(fd.get());
  ifreq ifr{};
  if (ioctl(fd.get(), TUNGETIFF, &ifr) < 0) {
    int err = errno;
    if (err == EBADF) return base::Error(which + " is not an open fd", err);
    return base::Error(which +
                           " is not a TAP device (TUNGETIFF failed); pass an fd of /dev/net/tun "
                           "attached with TUNSETIFF IFF_TAP|IFF_NO_PI|IFF_VNET_HDR",
                       err);
  }
  const int flags = ifr.ifr_flags;
  if ((flags & IFF_TAP) == 0) {
    return base::Error(which +
                       " is a TUN (IP) device, not a TAP (Ethernet) device; attach it "
                       "with IFF_TAP");
  }
  if ((flags & IFF_NO_PI) == 0 || (flags & IFF_VNET_HDR) == 0) {
    return base::Error(which + " must be attached with IFF_NO_PI and IFF_VNET_HDR");
  }
  // The device's worker waits with epoll and must never block in a read.
  int fl = fcntl(fd.get(), F_GETFL);
  if (fl < 0 || fcntl(fd.get(), F_SETFL, fl | O_NONBLOCK) < 0) {
    return base::Error::FromErrno(which + ": making it non-blocking");
  }
  ifr.ifr_name[IFNAMSIZ - 1] = '\0';
  return Tap(std::move(fd), ifr.ifr_name);
}

base::Status Tap::InterfaceIoctl(unsigned long request, void* ifr, const char* what) const {
  int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) return base::Error::FromErrno("socket(AF_INET) for configuring " + name_);
  base::ScopedFd s(sock);
  if (ioctl(s.get(), request, ifr) < 0) {
    return IoctlError(std::string(what) + " of TAP " + name_, errno);
  }
  return base::Ok();
}

base::Status Tap::SetIpAddress(const std::string& ip, const std::string& netmask) {
  CROSVM_ASSIGN_OR_RETURN(in_addr addr, ParseIpv4(ip, "host IP address"));
  CROSVM_ASSIGN_OR_RETURN(in_addr mask, ParseIpv4(netmask, "netmask"));
  // A netmask is ones then zeroes; anything else is a typo the kernel would take as given.
  uint32_t m = ntohl(mask.s_addr);
  if ((~m & (~m + 1)) != 0) {
    return base::Error("bad netmask '" + netmask +
                       "': its one bits must be contiguous, such as 255.255.255.0");
  }
  ifreq ifr;
  CopyName(&ifr, name_);
  auto* sin = reinterpret_cast<sockaddr_in*>(&ifr.ifr_addr);
  sin->sin_family = AF_INET;
  sin->sin_addr = addr;
  CROSVM_RETURN_IF_ERROR(InterfaceIoctl(SIOCSIFADDR, &ifr, "setting the IP address"));
  CopyName(&ifr, name_);
  sin = reinterpret_cast<sockaddr_in*>(&ifr.ifr_netmask);
  sin->sin_family = AF_INET;
  sin->sin_addr = mask;
  return InterfaceIoctl(SIOCSIFNETMASK, &ifr, "setting the netmask");
}

base::Status Tap::SetMac(const MacAddress& mac) {
  ifreq ifr;
  CopyName(&ifr, name_);
  ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
  std::memcpy(ifr.ifr_hwaddr.sa_data, mac.data(), mac.size());
  return InterfaceIoctl(SIOCSIFHWADDR, &ifr, "setting the MAC address");
}

base::Status Tap::Up() {
  ifreq ifr;
  CopyName(&ifr, name_);
  CROSVM_RETURN_IF_ERROR(InterfaceIoctl(SIOCGIFFLAGS, &ifr, "reading the flags"));
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  return InterfaceIoctl(SIOCSIFFLAGS, &ifr, "bringing up");
}

ssize_t Tap::ReadFrame(std::span<const iovec> iov) {
  // The tun driver returns the frame's whole length even when it copied less.
  return readv(fd_.get(), iov.data(), static_cast<int>(iov.size()));
}

ssize_t Tap::WriteFrame(std::span<const iovec> iov) {
  return writev(fd_.get(), iov.data(), static_cast<int>(iov.size()));
}

base::Result<bool> Tap::SetOffload(uint32_t tun_flags) {
  if (ioctl(fd_.get(), TUNSETOFFLOAD, static_cast<unsigned long>(tun_flags)) < 0) {
    if (errno == EINVAL) return false;
    return base::Error::FromErrno("TUNSETOFFLOAD on TAP " + name_);
  }
  return true;
}

base::Status Tap::SetVnetHdrSize(int size) {
  if (ioctl(fd_.get(), TUNSETVNETHDRSZ, &size) < 0) {
    return base::Error::FromErrno("TUNSETVNETHDRSZ " + std::to_string(size) + " on TAP " + name_);
  }
  return base::Ok();
}

}  // namespace crosvm::net
