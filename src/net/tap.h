// A TAP network device (Linux tun driver, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR): every read
// returns one Ethernet frame and every write sends one, each preceded by a virtio-net header.
//
// Creation and configuration (Create/FromFd, SetIpAddress, SetMac, Up) happen in the VMM before
// the device process is jailed; the jailed virtio-net device only reads, writes, and programs
// the vnet header size and offloads (TapInterface).
#pragma once

#include <sys/uio.h>

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "base/error.h"
#include "base/fd.h"

namespace crosvm::net {

using MacAddress = std::array<uint8_t, 6>;

// "02:00:00:12:34:56" (case-insensitive hex, colon-separated) or a clear error.
base::Result<MacAddress> ParseMac(std::string_view text);
std::string FormatMac(const MacAddress& mac);

// What the virtio-net device needs from its TAP; tests substitute a socketpair.
class TapInterface {
 public:
  virtual ~TapInterface() = default;
  // The fd to wait on (EPOLLIN): non-blocking.
  virtual int fd() const = 0;
  // Reads one frame (vnet header first) into `iov`. Returns the frame's full length, which is
  // larger than the iovecs' total when the frame did not fit (the rest is lost), or -1 with
  // errno set (EAGAIN: nothing queued).
  virtual ssize_t ReadFrame(std::span<const iovec> iov) = 0;
  // Sends one frame (vnet header first). Returns the bytes written or -1 with errno set.
  virtual ssize_t WriteFrame(std::span<const iovec> iov) = 0;
  // TUNSETOFFLOAD: which offloaded frames (TUN_F_*) the TAP may hand us. False when the TAP
  // refused the set (an older kernel, a flag it does not know).
  virtual base::Result<bool> SetOffload(uint32_t tun_flags) = 0;
  // TUNSETVNETHDRSZ.
  virtual base::Status SetVnetHdrSize(int size) = 0;
};

class Tap : public TapInterface {
 public:
  static constexpr const char* kTunPath = "/dev/net/tun";

  // Opens `tun_path` and creates a TAP named after `name_pattern` ("crosvm_tap%d"; empty lets
  // the kernel choose "tapN"). The fd is non-blocking and close-on-exec.
  static base::Result<Tap> Create(const std::string& name_pattern,
                                  const std::string& tun_path = kTunPath);
  // Adopts an fd the caller opened and attached (--tap-fd): it must be a TAP with IFF_NO_PI and
  // IFF_VNET_HDR. Makes it non-blocking.
  static base::Result<Tap> FromFd(base::ScopedFd fd);

  Tap(Tap&&) = default;
  Tap& operator=(Tap&&) = default;

  const std::string& name() const { return name_; }

  // Host-side configuration through an AF_INET ioctl socket (needs CAP_NET_ADMIN in the TAP's
  // network namespace). `ip` and `netmask` are dotted IPv4 addresses.
  base::Status SetIpAddress(const std::string& ip, const std::string& netmask);
  base::Status SetMac(const MacAddress& mac);
  base::Status Up();

  // TapInterface.
  int fd() const override { return fd_.get(); }
  ssize_t ReadFrame(std::span<const iovec> iov) override;
  ssize_t WriteFrame(std::span<const iovec> iov) override;
  base::Result<bool> SetOffload(uint32_t tun_flags) override;
  base::Status SetVnetHdrSize(int size) override;

 private:
  Tap(base::ScopedFd fd, std::string name) : fd_(std::move(fd)), name_(std::move(name)) {}
  base::Status InterfaceIoctl(unsigned long request, void* ifr, const char* what) const;

  base::ScopedFd fd_;
  std::string name_;
};

}  // namespace crosvm::net
