// Everything `crosvm run` was asked to do, parsed and validated, before anything is created.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "disk/disk.h"
#include "net/tap.h"

namespace crosvm::cli {

// One virtio-blk disk; disks appear to the guest in the order given (vda, vdb, ...).
// PATH[,format=raw|qcow2][,backing=DIR]; see disk::OpenOptions for what the format changes.
struct DiskOption {
  std::string path;
  bool writable = false;
  bool root = false;                        // -r: also adds root=/dev/vdX ro to the command line
  std::optional<disk::ImageFormat> format;  // unset: probed (never follows backing files)
  std::optional<std::string> backing_dir;   // backing=DIR (format=qcow2 only)
};

struct SerialOption {
  enum class Type { kStdout, kSink, kFile, kSyslog };
  int num = 1;  // 1..4 = COM1..COM4
  Type type = Type::kSink;
  std::string path;  // for kFile
  bool console = false;
};

struct Config {
  std::string kernel;
  std::optional<std::string> initrd;
  std::vector<std::string> params;
  uint32_t cpus = 1;
  std::vector<int> cpu_affinity;  // empty: no pinning
  uint64_t mem_mib = 256;
  std::vector<DiskOption> disks;
  bool sandbox = true;  // the seed's default: multiprocess mode
  std::optional<std::string> syslog_tag;
  std::vector<SerialOption> serials;  // as given with --serial; defaults filled in by the VM
  std::optional<std::string> socket_path;
  std::optional<std::string> seccomp_policy_dir;
  // Networking (virtio-net). --host_ip/--netmask/--mac, all three or none: crosvm creates a TAP,
  // gives its host side host_ip/netmask and offers the guest a card with `mac`.
  std::optional<std::string> host_ip;
  std::optional<std::string> netmask;
  std::optional<net::MacAddress> mac;
  // --tap-fd: TAPs the caller opened and configured; one more card per fd, in order.
  std::vector<int> tap_fds;
};

}  // namespace crosvm::cli
