#include "cli/args.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <functional>
#include <set>
#include <sstream>

#include "base/logging.h"
#include "net/tap.h"

namespace crosvm::cli {
namespace {

using base::Error;
using base::Ok;
using base::Result;
using base::Status;

constexpr uint32_t kMaxCpus = 64;                   // MP table APIC ids stay below the IOAPIC's
constexpr uint64_t kMinMemMib = 2;                  // the boot structures need the first MiB
constexpr uint64_t kMaxMemMib = uint64_t{1} << 20;  // 1 TiB

struct Option {
  const char* name;   // long name, without "--"
  char short_name;    // 0: none
  const char* value;  // value name for --help; nullptr: a flag without a value
  const char* help;
  // Applies the option; nullptr marks an option whose feature is not built yet.
  std::function<Status(Config&, const std::string&)> apply;
  const char* not_yet = nullptr;  // for such options: what is missing
};

Result<uint64_t> ParseNumber(const std::string& flag, const std::string& text, uint64_t min,
                             uint64_t max) {
  uint64_t v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size()) {
    return Error("--" + flag + ": '" + text + "' is not a number");
  }
  if (v < min || v > max) {
    return Error("--" + flag + ": " + text + " is out of range (" + std::to_string(min) + " to " +
                 std::to_string(max) + ")");
  }
  return v;
}

// The most disks a VM can have: PCI slots 1-31, one of them for virtio-rng.
constexpr size_t kMaxDisks = 30;

Status CheckIpv4(const std::string& flag, const std::string& text) {
  in_addr a{};
  if (inet_pton(AF_INET, text.c_str(), &a) != 1) {
    return Error(flag + ": '" + text + "' is not a dotted IPv4 address such as 192.168.10.1");
  }
  return Ok();
}

Status CheckNetmask(const std::string& text) {
  CROSVM_RETURN_IF_ERROR(CheckIpv4("--netmask", text));
  in_addr a{};
  inet_pton(AF_INET, text.c_str(), &a);
  uint32_t m = ntohl(a.s_addr);
  if ((~m & (~m + 1)) != 0) {
    return Error("--netmask: '" + text +
                 "' is not a netmask (its one bits must come first, as "
                 "in 255.255.255.0)");
  }
  return Ok();
}

// Cross-flag checks of the network options, once every flag is parsed.
Status CheckNet(const Config& c) {
  const bool given[] = {c.host_ip.has_value(), c.netmask.has_value(), c.mac.has_value()};
  const char* names[] = {"--host_ip", "--netmask", "--mac"};
  std::string missing;
  int count = 0;
  for (int i = 0; i < 3; ++i) {
    if (given[i]) {
      ++count;
    } else {
      missing += std::string(missing.empty() ? "" : " and ") + names[i];
    }
  }
  if (count != 0 && count != 3) {
    return Error(
        "--host_ip, --netmask and --mac go together (one network card on a TAP crosvm "
        "creates): " +
        missing + " missing");
  }
  size_t nets = (count == 3 ? 1 : 0) + c.tap_fds.size();
  if (c.disks.size() + nets > kMaxDisks) {
    return Error(std::to_string(c.disks.size()) + " disks and " + std::to_string(nets) +
                 " network cards are more than the " + std::to_string(kMaxDisks) +
                 " PCI slots left next to virtio-rng");
  }
  return Ok();
}

// PATH[,format=raw|qcow2][,backing=DIR]. `forced` is the format a deprecated alias implies.
Status AddDisk(Config& c, const char* flag, const std::string& value, bool writable, bool root,
               std::optional<disk::ImageFormat> forced = std::nullopt) {
  const std::string f = std::string("--") + flag;
  DiskOption d;
  d.writable = writable;
  d.root = root;
  size_t comma = value.find(',');
  d.path = value.substr(0, comma);
  if (d.path.empty()) return Error(f + ": the path is empty");
  while (comma != std::string::npos) {
    size_t next = value.find(',', comma + 1);
    std::string item = value.substr(comma + 1, next == std::string::npos ? next : next - comma - 1);
    comma = next;
    size_t eq = item.find('=');
    std::string key = item.substr(0, eq);
    std::string val = eq == std::string::npos ? "" : item.substr(eq + 1);
    if (eq == std::string::npos || (key != "format" && key != "backing")) {
      return Error(f + ": unknown disk option '" + item +
                   "' (expected PATH[,format=raw|qcow2][,backing=DIR]; a path cannot contain ',')");
    }
    if (key == "format") {
      if (d.format) return Error(f + ": format= given twice");
      if (val == "raw") {
        d.format = disk::ImageFormat::kRaw;
      } else if (val == "qcow2") {
        d.format = disk::ImageFormat::kQcow2;
      } else {
        return Error(f + ": unknown format '" + val + "' (raw or qcow2)");
      }
    } else {
      if (d.backing_dir) return Error(f + ": backing= given twice");
      if (val.empty()) return Error(f + ": backing= needs a directory");
      d.backing_dir = val;
    }
  }
  if (forced) {
    if (d.format && *d.format != *forced) {
      return Error(f + " means format=" + disk::ImageFormatName(*forced) + "; use --" +
                   (writable ? "rwdisk" : "disk") + " for other formats");
    }
    d.format = forced;
  }
  if (d.backing_dir && d.format != disk::ImageFormat::kQcow2) {
    return Error(f +
                 ": backing=DIR needs format=qcow2 (a probed image never follows a backing "
                 "file)");
  }
  if (root) {
    for (const auto& other : c.disks) {
      if (other.root) return Error("--root can be given only once");
    }
  }
  if (c.disks.size() >= kMaxDisks) {
    return Error(f + ": at most " + std::to_string(kMaxDisks) + " disks are supported");
  }
  c.disks.push_back(std::move(d));
  return Ok();
}

const std::vector<Option>& Options() {
  static const std::vector<Option> options = {
      {"params", 'p', "PARAMS", "Extra kernel command line arguments. Can be given more than once.",
       [](Config& c, const std::string& v) {
         c.params.push_back(v);
         return Ok();
       }},
      {"cpus", 'c', "N", "Number of vCPUs. (default: 1)",
       [](Config& c, const std::string& v) -> Status {
         CROSVM_ASSIGN_OR_RETURN(c.cpus, ParseNumber("cpus", v, 1, kMaxCpus));
         return Ok();
       }},
      {"cpu-affinity", 0, "CPUSET",
       "Comma-separated list of host CPUs or CPU ranges to run vCPUs on (e.g. 0,1-3,5). "
       "(default: no mask)",
       [](Config& c, const std::string& v) -> Status {
         CROSVM_ASSIGN_OR_RETURN(c.cpu_affinity, ParseCpuSet(v));
         return Ok();
       }},
      {"mem", 'm', "N", "Amount of guest memory in MiB. (default: 256)",
       [](Config& c, const std::string& v) -> Status {
         CROSVM_ASSIGN_OR_RETURN(c.mem_mib, ParseNumber("mem", v, kMinMemMib, kMaxMemMib));
         return Ok();
       }},
      {"initrd", 'i', "PATH", "Initial ramdisk to load.",
       [](Config& c, const std::string& v) -> Status {
         if (c.initrd) return Error("--initrd can be given only once");
         if (v.empty()) return Error("--initrd: the path is empty");
         c.initrd = v;
         return Ok();
       }},
      {"root", 'r', "PATH[,format=raw|qcow2][,backing=DIR]",
       "Path to a root disk image (read-only). Like --disk but also adds root=/dev/vdX ro to "
       "the kernel command line. At most once.",
       [](Config& c, const std::string& v) { return AddDisk(c, "root", v, false, true); }},
      {"disk", 'd', "PATH[,format=raw|qcow2][,backing=DIR]",
       "Path to a read-only disk image. Can be given more than once; disks appear as /dev/vda, "
       "/dev/vdb, ... in order. Without format= the format is probed from the image (raw or "
       "qcow2) and the image may not name a backing file. format=qcow2 follows backing files "
       "(read-only, as the format the image names for them, else raw) that are regular files in "
       "the image's directory, or in DIR with backing=DIR. format=raw takes the bytes as they "
       "are.",
       [](Config& c, const std::string& v) { return AddDisk(c, "disk", v, false, false); }},
      {"qcow", 0, "PATH[,backing=DIR]", "Deprecated alias of --disk PATH,format=qcow2.",
       [](Config& c, const std::string& v) {
         CROSVM_LOG(WARNING) << "--qcow is deprecated: use --disk PATH,format=qcow2";
         return AddDisk(c, "qcow", v, false, false, disk::ImageFormat::kQcow2);
       }},
      {"rwdisk", 0, "PATH[,format=raw|qcow2][,backing=DIR]",
       "Path to a writable disk image (formats as for --disk). Can be given more than once. A "
       "probed raw image refuses guest writes that would make its first sector look like another "
       "image format; with format=raw the guest may write anything.",
       [](Config& c, const std::string& v) { return AddDisk(c, "rwdisk", v, true, false); }},
      {"rwqcow", 0, "PATH[,backing=DIR]", "Deprecated alias of --rwdisk PATH,format=qcow2.",
       [](Config& c, const std::string& v) {
         CROSVM_LOG(WARNING) << "--rwqcow is deprecated: use --rwdisk PATH,format=qcow2";
         return AddDisk(c, "rwqcow", v, true, false, disk::ImageFormat::kQcow2);
       }},
      {"rw-pmem-device", 0, "PATH", "Path to a writable disk image exposed as pmem.", nullptr,
       "virtio-pmem"},
      {"pmem-device", 0, "PATH", "Path to a read-only disk image exposed as pmem.", nullptr,
       "virtio-pmem"},
      {"host_ip", 0, "IP",
       "IP address to assign to the host's TAP interface (with --netmask and --mac: crosvm "
       "creates the TAP, which needs CAP_NET_ADMIN).",
       [](Config& c, const std::string& v) -> Status {
         if (c.host_ip) return Error("--host_ip can be given only once");
         CROSVM_RETURN_IF_ERROR(CheckIpv4("--host_ip", v));
         c.host_ip = v;
         return Ok();
       }},
      {"netmask", 0, "NETMASK", "Netmask for the VM's subnet.",
       [](Config& c, const std::string& v) -> Status {
         if (c.netmask) return Error("--netmask can be given only once");
         CROSVM_RETURN_IF_ERROR(CheckNetmask(v));
         c.netmask = v;
         return Ok();
       }},
      {"mac", 0, "MAC", "MAC address of the VM's network card (e.g. 02:00:00:12:34:56).",
       [](Config& c, const std::string& v) -> Status {
         if (c.mac) return Error("--mac can be given only once");
         auto mac = net::ParseMac(v);
         if (!mac.ok()) return Error("--mac: " + mac.error().message());
         c.mac = *mac;
         return Ok();
       }},
      {"tap-fd", 0, "FD",
       "File descriptor of a configured TAP device (IFF_TAP|IFF_NO_PI|IFF_VNET_HDR). Each one "
       "adds a network card. Can be given more than once.",
       [](Config& c, const std::string& v) -> Status {
         CROSVM_ASSIGN_OR_RETURN(uint64_t fd, ParseNumber("tap-fd", v, 3, INT32_MAX));
         for (int other : c.tap_fds) {
           if (other == static_cast<int>(fd)) return Error("--tap-fd " + v + " is given twice");
         }
         c.tap_fds.push_back(static_cast<int>(fd));
         return Ok();
       }},
      {"vhost-net", 0, nullptr, "Use vhost for networking.", nullptr, "vhost-net"},
      {"cid", 0, "CID", "Context ID for virtual sockets.", nullptr, "virtio-vsock"},
      {"shared-dir", 0, "PATH:TAG",
       "Directory to share with the VM as a source:tag pair. Can be given more than once.", nullptr,
       "virtio-9p (shared directories)"},
      {"wayland-sock", 0, "PATH", "Path to the Wayland socket to use.", nullptr, "virtio-wayland"},
      {"wayland-group", 0, "GROUP", "Group with access to the Wayland socket.", nullptr,
       "virtio-wayland"},
      {"no-wl", 0, nullptr,
       "Disable virtio-wayland (it is never enabled yet, so this changes nothing).",
       [](Config&, const std::string&) { return Ok(); }},
      {"x-display", 0, "DISPLAY", "X11 display name to use.", nullptr, "virtio-gpu display"},
      {"gpu", 0, nullptr, "(EXPERIMENTAL) Enable the virtio-gpu device.", nullptr, "virtio-gpu"},
      {"software-tpm", 0, nullptr, "Enable a software-emulated TPM device.", nullptr, "virtio-tpm"},
      {"evdev", 0, "PATH", "Pass an event device through to the guest.", nullptr, "virtio-input"},
      {"single-touch", 0, "PATH:WIDTH:HEIGHT", "Socket to read single-touch events from.", nullptr,
       "virtio-input"},
      {"trackpad", 0, "PATH:WIDTH:HEIGHT", "Socket to read trackpad events from.", nullptr,
       "virtio-input"},
      {"mouse", 0, "PATH", "Socket to read mouse events from.", nullptr, "virtio-input"},
      {"keyboard", 0, "PATH", "Socket to read keyboard events from.", nullptr, "virtio-input"},
      {"socket", 's', "PATH",
       "Path of the control socket. If PATH is a directory, a name is generated from the PID.",
       [](Config& c, const std::string& v) -> Status {
         if (v.empty()) return Error("--socket: the path is empty");
         c.socket_path = v;
         return Ok();
       }},
      {"multiprocess", 'u', nullptr,
       "Run each device in its own sandboxed process (the default; see the note below).",
       [](Config& c, const std::string&) {
         c.sandbox = true;
         return Ok();
       }},
      {"disable-sandbox", 0, nullptr,
       "Run all devices in the main crosvm process, without a sandbox (for debugging).",
       [](Config& c, const std::string&) {
         c.sandbox = false;
         return Ok();
       }},
      {"seccomp-policy-dir", 0, "PATH",
       "Directory of the devices' seccomp .policy files (default: the installed ones, else the "
       "source tree's when crosvm runs from its build directory).",
       [](Config& c, const std::string& v) {
         c.seccomp_policy_dir = v;
         return Ok();
       }},
      {"plugin", 0, "PATH", "Absolute path to a plugin process to run under crosvm.", nullptr,
       "the plugin API"},
      {"plugin-root", 0, "PATH", "Directory that becomes the plugin's root file system.", nullptr,
       "the plugin API"},
      {"plugin-mount", 0, "PATH:PATH:BOOL", "Path to mount into the plugin's root.", nullptr,
       "the plugin API"},
      {"plugin-gid-map", 0, "GID:GID:INT", "Supplemental GIDs to map in the plugin jail.", nullptr,
       "the plugin API"},
      {"split-irqchip", 0, nullptr, "(EXPERIMENTAL) Emulate the PIC/IOAPIC in user space.", nullptr,
       "the split irqchip"},
      {"syslog-tag", 0, "TAG", "Also log to syslog, with this tag.",
       [](Config& c, const std::string& v) -> Status {
         if (v.empty()) return Error("--syslog-tag: the tag is empty");
         c.syslog_tag = v;
         return Ok();
       }},
      {"serial", 0, "type=TYPE,[num=NUM,path=PATH,console]",
       "Serial port: TYPE is stdout, sink or file (with path=); NUM is 1-4 (COM1-COM4); "
       "console makes it the kernel console. (default: COM1 on stdout, the console)",
       [](Config& c, const std::string& v) -> Status {
         CROSVM_ASSIGN_OR_RETURN(SerialOption s, ParseSerial(v));
         for (const auto& other : c.serials) {
           if (other.num == s.num) {
             return Error("--serial: COM" + std::to_string(s.num) + " is configured twice");
           }
           if (other.console && s.console) return Error("--serial: more than one console");
         }
         c.serials.push_back(s);
         return Ok();
       }},
  };
  return options;
}

const Option* FindLong(const std::string& name) {
  for (const auto& o : Options()) {
    if (name == o.name) return &o;
  }
  return nullptr;
}

const Option* FindShort(char c) {
  for (const auto& o : Options()) {
    if (o.short_name == c) return &o;
  }
  return nullptr;
}

Status Apply(const Option& o, Config& c, const std::string& value) {
  if (!o.apply) {
    return Error(std::string("--") + o.name + " is not supported yet: " + o.not_yet +
                 " is not built in this version of crosvm");
  }
  return o.apply(c, value);
}

}  // namespace

std::string VirtioDiskName(size_t index) {
  // Linux names virtio disks vda..vdz, then vdaa, vdab, ...
  std::string suffix;
  long n = static_cast<long>(index);
  do {
    suffix.insert(suffix.begin(), static_cast<char>('a' + n % 26));
    n = n / 26 - 1;
  } while (n >= 0);
  return "vd" + suffix;
}

Result<std::vector<int>> ParseCpuSet(const std::string& text) {
  std::set<int> cpus;
  std::stringstream ss(text);
  std::string part;
  if (text.empty()) return Error("--cpu-affinity: empty CPU list");
  while (std::getline(ss, part, ',')) {
    size_t dash = part.find('-');
    std::string lo = part.substr(0, dash);
    std::string hi = dash == std::string::npos ? lo : part.substr(dash + 1);
    auto a = ParseNumber("cpu-affinity", lo, 0, CPU_SETSIZE - 1);
    auto b = ParseNumber("cpu-affinity", hi, 0, CPU_SETSIZE - 1);
    if (!a.ok()) return a.error();
    if (!b.ok()) return b.error();
    if (*a > *b) return Error("--cpu-affinity: range " + part + " runs backwards");
    for (uint64_t i = *a; i <= *b; ++i) cpus.insert(static_cast<int>(i));
  }
  if (text.back() == ',') return Error("--cpu-affinity: trailing comma in '" + text + "'");
  return std::vector<int>(cpus.begin(), cpus.end());
}

Result<SerialOption> ParseSerial(const std::string& text) {
  SerialOption s;
  bool have_type = false;
  std::stringstream ss(text);
  std::string kv;
  while (std::getline(ss, kv, ',')) {
    size_t eq = kv.find('=');
    std::string key = kv.substr(0, eq);
    std::string value = eq == std::string::npos ? "" : kv.substr(eq + 1);
    if (key == "type") {
      have_type = true;
      if (value == "stdout") {
        s.type = SerialOption::Type::kStdout;
      } else if (value == "sink") {
        s.type = SerialOption::Type::kSink;
      } else if (value == "file") {
        s.type = SerialOption::Type::kFile;
      } else if (value == "syslog") {
        return Error("--serial: type=syslog is not supported yet; use stdout, sink or file");
      } else {
        return Error("--serial: unknown type '" + value + "' (stdout, sink or file)");
      }
    } else if (key == "num") {
      CROSVM_ASSIGN_OR_RETURN(uint64_t n, ParseNumber("serial num", value, 1, 4));
      s.num = static_cast<int>(n);
    } else if (key == "path") {
      if (value.empty()) return Error("--serial: path= is empty");
      s.path = value;
    } else if (key == "console") {
      if (!value.empty() && value != "true" && value != "false") {
        return Error("--serial: console takes no value, true or false");
      }
      s.console = value != "false";
    } else {
      return Error("--serial: unknown key '" + key + "' (type, num, path, console)");
    }
  }
  if (!have_type) return Error("--serial: type= is required");
  if (s.type == SerialOption::Type::kFile && s.path.empty()) {
    return Error("--serial: type=file needs path=");
  }
  if (s.type != SerialOption::Type::kFile && !s.path.empty()) {
    return Error("--serial: path= is only for type=file");
  }
  return s;
}

bool WantsHelp(const std::vector<std::string>& args) {
  for (const auto& a : args) {
    if (a == "--") break;
    if (a == "-h" || a == "--help") return true;
  }
  return false;
}

Result<Config> ParseRunArgs(const std::vector<std::string>& args) {
  Config c;
  std::vector<std::string> positional;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--") {
      positional.insert(positional.end(), args.begin() + i + 1, args.end());
      break;
    }
    const Option* opt = nullptr;
    std::optional<std::string> inline_value;
    std::string shown;
    if (a.rfind("--", 0) == 0) {
      std::string name = a.substr(2);
      size_t eq = name.find('=');
      if (eq != std::string::npos) {
        inline_value = name.substr(eq + 1);
        name = name.substr(0, eq);
      }
      opt = FindLong(name);
      shown = "--" + name;
      if (!opt) return Error("unknown option " + shown);
    } else if (a.size() >= 2 && a[0] == '-') {
      opt = FindShort(a[1]);
      shown = a.substr(0, 2);
      if (!opt) return Error("unknown option " + shown);
      if (a.size() > 2) inline_value = a.substr(2);
    } else {
      positional.push_back(a);
      continue;
    }
    std::string value;
    if (opt->value) {
      if (inline_value) {
        value = *inline_value;
      } else if (i + 1 < args.size()) {
        value = args[++i];
      } else {
        return Error(shown + " needs a value (" + opt->value + ")");
      }
    } else if (inline_value) {
      return Error(shown + " takes no value");
    }
    Status s = Apply(*opt, c, value);
    if (!s.ok()) {
      const std::string& m = s.error().message();
      return m.rfind("--", 0) == 0 ? s.error() : Error(shown + ": " + m);
    }
  }
  if (positional.empty()) return Error("no kernel given: crosvm run [OPTIONS] KERNEL");
  if (positional.size() > 1) {
    return Error("more than one kernel given ('" + positional[0] + "' and '" + positional[1] +
                 "'); options go before the kernel path");
  }
  c.kernel = positional[0];
  CROSVM_RETURN_IF_ERROR(CheckNet(c));
  return c;
}

std::string RunUsage() {
  std::ostringstream out;
  out << "Usage: crosvm run [OPTIONS] KERNEL\n\n"
         "Boots KERNEL (an ELF vmlinux or a bzImage) in a KVM virtual machine with its serial\n"
         "console on stdin/stdout. crosvm exits when the guest powers off, resets or halts.\n\n"
         "Options:\n";
  for (const auto& o : Options()) {
    std::string names = o.short_name ? std::string("-") + o.short_name + ", " : "    ";
    names += std::string("--") + o.name;
    if (o.value) names += std::string(" ") + o.value;
    out << "  " << names << "\n      " << o.help;
    if (!o.apply) out << " [not supported yet: no " << o.not_yet << "]";
    out << "\n";
  }
  out << "\nSandbox: each virtio device runs in its own process, in new user, PID, mount, IPC,\n"
         "UTS and network namespaces, on an empty root, with no capabilities and a seccomp\n"
         "policy; a device process that breaks its policy or dies ends the VM (exit status 4).\n";
  return out.str();
}

bool ParseSize(const std::string& text, uint64_t* out) {
  if (text.empty()) return false;
  uint64_t value = 0;
  size_t i = 0;
  for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
    uint64_t digit = static_cast<uint64_t>(text[i] - '0');
    if (value > (UINT64_MAX - digit) / 10) return false;
    value = value * 10 + digit;
  }
  if (i == 0) return false;
  int shift = 0;
  if (i < text.size()) {
    if (i + 1 != text.size()) return false;
    switch (text[i]) {
      case 'K':
      case 'k':
        shift = 10;
        break;
      case 'M':
      case 'm':
        shift = 20;
        break;
      case 'G':
      case 'g':
        shift = 30;
        break;
      default:
        return false;
    }
  }
  if (shift > 0 && value > (UINT64_MAX >> shift)) return false;
  *out = value << shift;
  return true;
}

}  // namespace crosvm::cli
