#include "cli/vm.h"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "arch/x86_64/acpi.h"
#include "arch/x86_64/boot.h"
#include "arch/x86_64/layout.h"
#include "arch/x86_64/mptable.h"
#include "arch/x86_64/smbios.h"
#include "base/event_loop.h"
#include "base/eventfd.h"
#include "base/logging.h"
#include "base/strings.h"
#include "base/terminal.h"
#include "cli/args.h"
#include "cli/net_setup.h"
#include "control/server.h"
#include "devices/acpi_pm.h"
#include "devices/bus.h"
#include "devices/cmos.h"
#include "devices/i8042.h"
#include "devices/pci/address_allocator.h"
#include "devices/pci/gsi_router.h"
#include "devices/pci/pci_root.h"
#include "devices/serial.h"
#include "devices/virtio/balloon.h"
#include "devices/virtio/block.h"
#include "devices/virtio/net.h"
#include "devices/virtio/rng.h"
#include "devices/virtio/virtio_pci.h"
#include "disk/disk.h"
#include "kvm/kvm.h"
#include "loader/cmdline.h"
#include "loader/kernel_loader.h"
#include "memory/guest_memory.h"
#include "vmm/control_handler.h"
#include "vmm/device_host.h"
#include "vmm/kvm_vm_control.h"
#include "vmm/vcpu_run_state.h"

namespace crosvm::cli {
namespace {

using base::Error;
using base::Ok;
using base::Result;
using base::Status;

using base::Hex;

// The first reason the VM should end wins; later ones are ignored.
class ExitRequest {
 public:
  static Result<std::unique_ptr<ExitRequest>> Create() {
    CROSVM_ASSIGN_OR_RETURN(auto evt, base::EventFd::Create(EFD_NONBLOCK));
    return std::unique_ptr<ExitRequest>(new ExitRequest(std::move(evt)));
  }
  void Request(int code, const std::string& reason) {
    {
      std::lock_guard lock(mu_);
      if (code_) return;
      code_ = code;
      reason_ = reason;
    }
    (void)evt_.Write();
  }
  int fd() const { return evt_.fd(); }
  std::pair<int, std::string> Get() {
    std::lock_guard lock(mu_);
    return {code_.value_or(kExitVmError), reason_};
  }

 private:
  explicit ExitRequest(base::EventFd evt) : evt_(std::move(evt)) {}
  base::EventFd evt_;
  std::mutex mu_;
  std::optional<int> code_;
  std::string reason_;
};

struct Buses {
  devices::Bus io{"io"};
  devices::Bus mmio{"mmio"};
};

int KickSignal() {
  return SIGRTMIN;
}

void InstallKickHandler() {
  struct sigaction sa {};
  sa.sa_handler = [](int) {};  // only there to interrupt KVM_RUN with EINTR
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART
  sigaction(KickSignal(), &sa, nullptr);
}

std::string ExitDiagnostics(const kvm::Vcpu& vcpu) {
  auto regs = vcpu.GetRegs();
  if (!regs.ok()) return "";
  return " (rip " + Hex(regs->rip) + ", rsp " + Hex(regs->rsp) + ")";
}

// A parked vCPU tells the guest's kvmclock it was stopped on purpose, so the guest's soft
// lockup watchdog does not fire after a resume (KVM API: KVM_KVMCLOCK_CTRL). EINVAL: the guest
// does not use kvmclock, nothing to tell.
void OnVcpuParked(kvm::Vcpu& vcpu) {
  if (ioctl(vcpu.fd(), KVM_KVMCLOCK_CTRL, 0) != 0 && errno != EINVAL) {
    CROSVM_LOG(WARNING) << "vcpu " << vcpu.id() << ": KVM_KVMCLOCK_CTRL: " << std::strerror(errno);
  }
}

void VcpuLoop(kvm::Vcpu& vcpu, Buses& buses, ExitRequest& exit, vmm::VcpuRunState& state,
              const std::vector<int>& affinity) {
  const std::string name = "vcpu " + std::to_string(vcpu.id());
  if (!affinity.empty()) {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int cpu : affinity) CPU_SET(cpu, &set);
    int err = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
    if (err != 0) {
      exit.Request(kExitVmError, name + ": cannot set CPU affinity: " + std::strerror(err));
      return;
    }
  }
  while (state.Checkpoint([&] { OnVcpuParked(vcpu); }, [&] { vcpu.SetImmediateExit(false); })) {
    auto ran = vcpu.Run();
    if (!ran.ok()) {
      exit.Request(kExitVmError, ran.error().ToString());
      return;
    }
    if (!*ran) continue;  // kicked: look at the run state again
    kvm_run* run = vcpu.run();
    switch (run->exit_reason) {
      case KVM_EXIT_IO: {
        uint64_t size = run->io.size;
        uint64_t total = size * run->io.count;
        if (run->io.data_offset > vcpu.run_size() ||
            total > vcpu.run_size() - run->io.data_offset) {
          exit.Request(kExitVmError, name + ": KVM reported port I/O data outside kvm_run");
          return;
        }
        uint8_t* data = reinterpret_cast<uint8_t*>(run) + run->io.data_offset;
        for (uint32_t i = 0; i < run->io.count; ++i) {
          if (run->io.direction == KVM_EXIT_IO_OUT) {
            buses.io.Write(run->io.port, {data + i * size, size});
          } else {
            buses.io.Read(run->io.port, {data + i * size, size});
          }
        }
        break;
      }
      case KVM_EXIT_MMIO: {
        size_t len = std::min<size_t>(run->mmio.len, sizeof(run->mmio.data));
        if (run->mmio.is_write) {
          buses.mmio.Write(run->mmio.phys_addr, {run->mmio.data, len});
        } else {
          buses.mmio.Read(run->mmio.phys_addr, {run->mmio.data, len});
        }
        break;
      }
      case KVM_EXIT_INTR:
        break;
      case KVM_EXIT_HLT:
        exit.Request(kExitOk, name + " halted with interrupts off: the guest stopped");
        return;
      case KVM_EXIT_SHUTDOWN:
        exit.Request(kExitOk, name +
                                  ": triple fault (KVM_EXIT_SHUTDOWN), handled as a guest "
                                  "reset; crosvm does not restart guests" +
                                  ExitDiagnostics(vcpu));
        return;
      case KVM_EXIT_SYSTEM_EVENT:
        switch (run->system_event.type) {
          case KVM_SYSTEM_EVENT_SHUTDOWN:
            exit.Request(kExitOk, name + ": the guest powered off");
            return;
          case KVM_SYSTEM_EVENT_RESET:
            exit.Request(kExitOk, name + ": the guest reset; crosvm does not restart guests");
            return;
          case KVM_SYSTEM_EVENT_CRASH:
            exit.Request(kExitGuestCrash, name + ": the guest reported a crash");
            return;
          default:
            exit.Request(kExitVmError,
                         name + ": unknown system event " + std::to_string(run->system_event.type));
            return;
        }
      case KVM_EXIT_FAIL_ENTRY:
        exit.Request(kExitVmError, name + ": KVM could not enter the guest (hardware reason " +
                                       Hex(run->fail_entry.hardware_entry_failure_reason) + ")" +
                                       ExitDiagnostics(vcpu));
        return;
      case KVM_EXIT_INTERNAL_ERROR:
        exit.Request(kExitVmError, name + ": KVM internal error, suberror " +
                                       std::to_string(run->internal.suberror) +
                                       " (1 = the instruction emulator failed)" +
                                       ExitDiagnostics(vcpu));
        return;
      default:
        exit.Request(kExitVmError, name + ": unexpected KVM exit reason " +
                                       std::to_string(run->exit_reason) + ExitDiagnostics(vcpu));
        return;
    }
  }
}

Status CheckKvm(const kvm::Kvm& kvm, uint32_t cpus) {
  const std::pair<int, const char*> required[] = {
      {KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"},
      {KVM_CAP_PIT2, "KVM_CAP_PIT2"},
      {KVM_CAP_IRQFD, "KVM_CAP_IRQFD"},
      {KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD"},
      {KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
      {KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"},
      {KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR"},
      {KVM_CAP_IRQ_ROUTING, "KVM_CAP_IRQ_ROUTING"},
      {KVM_CAP_IRQFD_RESAMPLE, "KVM_CAP_IRQFD_RESAMPLE"},
  };
  for (auto [cap, name] : required) {
    if (!kvm.CheckExtension(cap)) return Error(std::string("this KVM lacks ") + name);
  }
  int max = kvm.CheckExtension(KVM_CAP_MAX_VCPUS);
  if (max == 0) max = kvm.CheckExtension(KVM_CAP_NR_VCPUS);
  if (max > 0 && cpus > static_cast<uint32_t>(max)) {
    return Error("-c " + std::to_string(cpus) + ": this KVM supports at most " +
                 std::to_string(max) + " vCPUs");
  }
  return Ok();
}

Status CheckAffinity(const std::vector<int>& cpus) {
  long host = sysconf(_SC_NPROCESSORS_CONF);
  for (int cpu : cpus) {
    if (host > 0 && cpu >= host) {
      return Error("--cpu-affinity: host CPU " + std::to_string(cpu) +
                   " does not exist (this host has CPUs 0-" + std::to_string(host - 1) + ")");
    }
  }
  return Ok();
}

struct SerialPort {
  uint16_t port;
  uint32_t irq;
};
// SLP_TYP of \_S5: the DSDT says it, the PM device acts on it.
constexpr uint8_t kAcpiS5SleepType = 5;

constexpr SerialPort kSerialPorts[] = {{0x3f8, 4}, {0x2f8, 3}, {0x3e8, 4}, {0x2e8, 3}};

// What each of COM1..COM4 is connected to: the --serial options, or COM1 on stdout as the
// console when none are given.
std::vector<SerialOption> SerialLayout(const Config& config) {
  std::vector<SerialOption> ports(4);
  for (int i = 0; i < 4; ++i) ports[i].num = i + 1;
  if (config.serials.empty()) {
    ports[0].type = SerialOption::Type::kStdout;
    ports[0].console = true;
  } else {
    for (const auto& s : config.serials) ports[s.num - 1] = s;
  }
  return ports;
}

class Vm {
 public:
  explicit Vm(const Config& config) : config_(config) {}
  ~Vm();
  Result<int> Run();

 private:
  Status Setup();
  Status SetupMemoryAndKernel();
  Status OpenDisks();
  Status SetupDevices();
  Status SetupPciDevices();
  Status SetupVcpus();
  void StopVcpus();
  void KickVcpus();
  void StopDevices();
  // -s: the control socket, served from before the vCPUs start until the VM ends.
  Status StartControlServer();

  const Config& config_;
  std::optional<kvm::Kvm> kvm_;
  std::optional<kvm::Vm> vm_;
  std::optional<memory::GuestMemory> mem_;
  loader::LoadedKernel kernel_{};
  Buses buses_;
  std::unique_ptr<ExitRequest> exit_;
  std::deque<base::EventFd> irq_events_;  // a deque: devices keep pointers to its elements
  std::vector<base::ScopedFd> serial_files_;
  std::shared_ptr<devices::Serial> stdin_serial_;
  std::vector<std::shared_ptr<devices::Serial>> serials_;  // flushed at exit
  // Opened before any KVM object exists (user errors come first); moved into the devices.
  std::vector<std::unique_ptr<disk::DiskFile>> disks_;
  // PCI: the hypervisor hooks and the one GSI routing table, the root bus and its devices.
  // Torn down explicitly (StopDevices) before the memory, the VM and the buses go.
  std::unique_ptr<vmm::KvmVmControl> vm_control_;
  std::unique_ptr<devices::pci::GsiRouter> gsi_router_;
  std::unique_ptr<devices::pci::PciRoot> pci_root_;
  // Each virtio device, in its own sandboxed process unless --disable-sandbox.
  std::vector<std::unique_ptr<vmm::DeviceHost>> device_hosts_;
  std::vector<std::unique_ptr<kvm::Vcpu>> vcpus_;
  std::mutex threads_mu_;  // threads_: the control thread kicks while Run starts them
  std::vector<std::thread> threads_;
  std::unique_ptr<vmm::VcpuRunState> run_state_;
  // What the control socket reaches: the balloon and each disk (by index), in device_hosts_.
  vmm::DeviceHost* balloon_host_ = nullptr;
  std::vector<vmm::DeviceHost*> disk_hosts_;
  // Last: destroyed first, so no request is served while the rest goes.
  std::unique_ptr<vmm::VmControlHandler> control_handler_;
  std::unique_ptr<control::ControlServer> control_server_;
};

Status Vm::SetupMemoryAndKernel() {
  uint64_t mem_bytes = config_.mem_mib << 20;
  CROSVM_ASSIGN_OR_RETURN(auto mem, memory::GuestMemory::Create(arch::MemoryRanges(mem_bytes)));
  mem_.emplace(std::move(mem));

  CROSVM_ASSIGN_OR_RETURN(auto image, loader::ReadFile(config_.kernel));
  auto kernel = loader::LoadKernel(*mem_, image, arch::kHighMemStart);
  if (!kernel.ok()) return kernel.error().Wrap("kernel " + config_.kernel);
  kernel_ = *kernel;

  std::optional<arch::InitrdPlacement> initrd;
  if (config_.initrd) {
    CROSVM_ASSIGN_OR_RETURN(auto bytes, loader::ReadFile(*config_.initrd));
    auto addr = loader::LoadInitrd(*mem_, kernel_, bytes);
    if (!addr.ok()) return addr.error().Wrap("initrd " + *config_.initrd);
    initrd = arch::InitrdPlacement{*addr, bytes.size()};
  }

  loader::KernelCmdline cmdline(std::min<uint64_t>(kernel_.cmdline_max, arch::kCmdlineMaxSize));
  for (const auto& s : SerialLayout(config_)) {
    if (s.console)
      CROSVM_RETURN_IF_ERROR(cmdline.Insert("console", "ttyS" + std::to_string(s.num - 1)));
  }
  // A panic reboots at once, and a reboot goes through the i8042, which ends crosvm.
  CROSVM_RETURN_IF_ERROR(cmdline.InsertStr("reboot=k panic=-1"));
  for (size_t i = 0; i < config_.disks.size(); ++i) {
    if (config_.disks[i].root) {
      CROSVM_RETURN_IF_ERROR(cmdline.InsertStr("root=/dev/" + VirtioDiskName(i) + " ro"));
    }
  }
  for (const auto& p : config_.params) CROSVM_RETURN_IF_ERROR(cmdline.InsertStr(p));
  const std::string& line = cmdline.str();
  CROSVM_RETURN_IF_ERROR(mem_->Write(
      arch::kCmdlineAddr, {reinterpret_cast<const uint8_t*>(line.c_str()), line.size() + 1}));

  CROSVM_RETURN_IF_ERROR(arch::WriteZeroPage(*mem_, kernel_.bzimage_header, arch::kCmdlineAddr,
                                             cmdline.size_with_nul(), initrd));
  CROSVM_RETURN_IF_ERROR(arch::WriteLongModeTables(*mem_));
  CROSVM_RETURN_IF_ERROR(arch::WriteSmbios(*mem_));  // the MP table follows the PCI devices

  CROSVM_LOG(INFO) << "kernel " << config_.kernel << " ("
                   << (kernel_.format == loader::KernelFormat::kElf ? "ELF" : "bzImage")
                   << ", entry " << Hex(kernel_.entry) << "), " << config_.cpus << " vCPU(s), "
                   << config_.mem_mib << " MiB"
                   << (initrd ? ", initrd " + std::to_string(initrd->size) + " bytes at " +
                                    Hex(initrd->addr)
                              : std::string());
  CROSVM_LOG(INFO) << "kernel command line: " << line;
  return Ok();
}

Status Vm::SetupDevices() {
  auto add_irq = [&](uint32_t gsi) -> Result<base::EventFd*> {
    CROSVM_ASSIGN_OR_RETURN(auto evt, base::EventFd::Create(EFD_NONBLOCK));
    CROSVM_RETURN_IF_ERROR(vm_->RegisterIrqfd(evt.fd(), gsi));
    irq_events_.push_back(std::move(evt));
    return &irq_events_.back();
  };

  auto layout = SerialLayout(config_);
  for (size_t i = 0; i < layout.size(); ++i) {
    const auto& opt = layout[i];
    int out_fd = -1;
    if (opt.type == SerialOption::Type::kStdout) {
      out_fd = STDOUT_FILENO;
    } else if (opt.type == SerialOption::Type::kFile) {
      int fd = open(opt.path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd < 0) return Error::FromErrno("--serial: cannot open " + opt.path);
      serial_files_.emplace_back(fd);
      out_fd = fd;
    }
    CROSVM_ASSIGN_OR_RETURN(base::EventFd * irq, add_irq(kSerialPorts[i].irq));
    auto serial = std::make_shared<devices::Serial>("COM" + std::to_string(i + 1), out_fd,
                                                    [irq] { (void)irq->Write(); });
    CROSVM_RETURN_IF_ERROR(buses_.io.Insert(serial, kSerialPorts[i].port, 8));
    if (opt.type == SerialOption::Type::kStdout && !stdin_serial_) stdin_serial_ = serial;
    serials_.push_back(serial);
  }

  uint64_t mem_bytes = config_.mem_mib << 20;
  uint64_t below = std::min(mem_bytes, arch::kMmioGapStart);
  CROSVM_RETURN_IF_ERROR(
      buses_.io.Insert(std::make_shared<devices::Cmos>(below, mem_bytes - below), 0x70, 2));
  ExitRequest* exit = exit_.get();
  CROSVM_RETURN_IF_ERROR(buses_.io.Insert(std::make_shared<devices::I8042>([exit] {
                                            exit->Request(kExitOk,
                                                          "the guest reset the machine through "
                                                          "the i8042 keyboard controller; crosvm "
                                                          "does not restart guests");
                                          }),
                                          0x64, 1));
  // The ACPI PM registers: the guest's power-off (\_S5) ends crosvm with status 0.
  CROSVM_RETURN_IF_ERROR(buses_.io.Insert(
      std::make_shared<devices::AcpiPm>(
          kAcpiS5SleepType, [exit] { exit->Request(kExitOk, "the guest powered off (ACPI S5)"); }),
      arch::kAcpiPmIoBase, devices::AcpiPm::kSize));
  return SetupPciDevices();
}

Status Vm::OpenDisks() {
  for (const auto& d : config_.disks) {
    auto disk = disk::OpenDisk(d.path, disk::OpenOptions{d.writable, d.format, d.backing_dir});
    if (!disk.ok()) return disk.error().Wrap("disk " + VirtioDiskName(disks_.size()));
    disks_.push_back(std::move(*disk));
  }
  return Ok();
}

// One virtio-net device per backend, in order: "net0" (jail name), "virtio-net net0 (TAP)" in logs.
template <typename AddFn>
Status AddNetDevices(std::vector<NetBackend> nets, AddFn& add) {
  for (size_t i = 0; i < nets.size(); ++i) {
    NetBackend& n = nets[i];
    const std::string jail_name = "net" + std::to_string(i);
    CROSVM_LOG(INFO) << "net " << jail_name << ": TAP " << n.tap->name() << " (" << n.origin
                     << "), guest MAC " << net::FormatMac(n.mac);
    const std::string name = "virtio-net " + jail_name + " (" + n.tap->name() + ")";
    CROSVM_RETURN_IF_ERROR(
        add(std::make_unique<devices::virtio::NetDevice>(std::move(n.tap), n.mac, name), jail_name,
            "net_device"));
  }
  return Ok();
}

Status Vm::SetupPciDevices() {
  namespace pci = devices::pci;
  namespace virtio = devices::virtio;
  vm_control_ = std::make_unique<vmm::KvmVmControl>(*vm_);
  gsi_router_ = std::make_unique<pci::GsiRouter>(vm_control_.get());
  pci_root_ = std::make_unique<pci::PciRoot>(&buses_.mmio, &buses_.io);
  CROSVM_RETURN_IF_ERROR(buses_.io.Insert(pci_root_->config_io(), pci::PciRoot::kConfigAddressPort,
                                          pci::PciRoot::kConfigIoSize));
  CROSVM_ASSIGN_OR_RETURN(auto alloc, pci::CreateX86SystemAllocator(mem_->end_addr()));

  // The TAPs are created and configured here, in crosvm's own network namespace and with its
  // privileges, before any device process exists; each net device process keeps only its TAP.
  CROSVM_ASSIGN_OR_RETURN(std::vector<NetBackend> nets, OpenNetBackends(config_));
  vmm::SandboxOptions sandbox_options{config_.sandbox, config_.seccomp_policy_dir};
  ExitRequest* exit = exit_.get();
  // `jail_name` names the device process ("blk0": ps shows "crosvm:blk0"); `policy` is its
  // seccomp policy (seccomp/x86_64/<policy>.policy).
  auto add = [&](std::unique_ptr<virtio::VirtioDevice> device, const std::string& jail_name,
                 const std::string& policy) -> Status {
    auto make = [&](pci::VmControl* vm, pci::MsiRouter* router) {
      return virtio::VirtioPciDevice::Create(std::move(device), &*mem_, vm, router);
    };
    CROSVM_ASSIGN_OR_RETURN(
        auto host,
        vmm::DeviceHost::Create(
            jail_name, policy, make, vm_control_.get(), gsi_router_.get(), sandbox_options,
            [exit](const std::string& why) { exit->Request(vmm::kExitDeviceFailed, why); }));
    CROSVM_RETURN_IF_ERROR(pci_root_->AddDevice(host->pci_device(), alloc));
    device_hosts_.push_back(std::move(host));
    return Ok();
  };
  for (size_t i = 0; i < disks_.size(); ++i) {
    const DiskOption& opt = config_.disks[i];
    const std::string name = VirtioDiskName(i);
    CROSVM_LOG(INFO) << "disk " << name << ": " << opt.path << " ("
                     << disk::ImageFormatName(disks_[i]->Format()) << ", "
                     << disks_[i]->VirtualSize() << " bytes, "
                     << (opt.writable ? "read-write" : "read-only") << ")";
    CROSVM_RETURN_IF_ERROR(
        add(std::make_unique<virtio::BlockDevice>(std::move(disks_[i]), "virtio-blk " + name,
                                                  virtio::DiskSerial(opt.path)),
            "blk" + std::to_string(i), "block_device"));
    disk_hosts_.push_back(device_hosts_.back().get());
  }
  disks_.clear();
  // PCI slot order: the disks, then the network cards (eth0, eth1, ...), then virtio-rng.
  CROSVM_RETURN_IF_ERROR(AddNetDevices(std::move(nets), add));
  CROSVM_RETURN_IF_ERROR(add(std::make_unique<virtio::RngDevice>(), "rng0", "rng_device"));
  CROSVM_RETURN_IF_ERROR(
      add(std::make_unique<virtio::BalloonDevice>(&*mem_), "balloon0", "balloon_device"));
  balloon_host_ = device_hosts_.back().get();

  std::vector<arch::MpPciIrq> irqs;
  for (const auto& r : pci_root_->intx_routes()) irqs.push_back({r.slot, r.intx_pin, r.ioapic_pin});
  CROSVM_RETURN_IF_ERROR(arch::WriteMpTable(*mem_, config_.cpus, irqs));  // for acpi=off
  arch::AcpiConfig acpi;
  acpi.cpu_count = config_.cpus;
  for (const auto& r : irqs) acpi.pci_irqs.push_back({r.device, r.pin, r.ioapic_pin});
  acpi.pci_io = {alloc.io.base(), alloc.io.end()};
  acpi.pci_mmio32 = {alloc.mmio32.base(), alloc.mmio32.end()};
  acpi.pci_mmio64 = {alloc.mmio64.base(), alloc.mmio64.end()};
  acpi.pm = {static_cast<uint16_t>(arch::kAcpiPmIoBase + devices::AcpiPm::kPm1Status),
             static_cast<uint16_t>(arch::kAcpiPmIoBase + devices::AcpiPm::kPm1Control),
             static_cast<uint16_t>(arch::kAcpiPmIoBase + devices::AcpiPm::kPmTimer),
             kAcpiS5SleepType};
  return arch::WriteAcpiTables(*mem_, acpi);
}

void Vm::StopDevices() {
  // Workers stop and BARs leave the buses while the VM, the routing table and guest memory
  // still exist; then the devices are destroyed (their irqfds unregistered).
  // A sandboxed device's process flushes its disk and exits here.
  for (auto& d : device_hosts_) d->Stop();
  if (pci_root_) pci_root_->UnmapAll();
  pci_root_.reset();
  device_hosts_.clear();
}

Vm::~Vm() {
  control_server_.reset();  // removes the socket, on every exit path
  StopVcpus();
  StopDevices();
}

Status Vm::SetupVcpus() {
  CROSVM_ASSIGN_OR_RETURN(size_t run_size, kvm_->VcpuMmapSize());
  CROSVM_ASSIGN_OR_RETURN(auto cpuid, kvm_->GetSupportedCpuid());
  CROSVM_ASSIGN_OR_RETURN(auto msr_list, kvm_->GetMsrIndexList());
  arch::CpuidQuirks quirks;
  if (access("/sys/module/kvm_pvm", F_OK) == 0 && config_.cpus > 1) {
    quirks.hide_pv_send_ipi = true;
    CROSVM_LOG(INFO) << "host KVM is kvm_pvm: hiding the PV send-IPI feature from the guest "
                        "(hypercall IPIs are lost on such hosts)";
  }
  for (uint32_t id = 0; id < config_.cpus; ++id) {
    CROSVM_ASSIGN_OR_RETURN(auto vcpu, vm_->CreateVcpu(id, run_size));
    auto v = std::make_unique<kvm::Vcpu>(std::move(vcpu));
    CROSVM_RETURN_IF_ERROR(arch::SetupCpuid(*v, cpuid, config_.cpus, quirks));
    CROSVM_RETURN_IF_ERROR(arch::SetupMsrs(*v, msr_list));
    CROSVM_RETURN_IF_ERROR(arch::SetupFpu(*v));
    CROSVM_RETURN_IF_ERROR(arch::SetupLapic(*v));
    // Only the boot CPU starts in long mode; the others wait in the in-kernel LAPIC for the
    // guest's INIT/SIPI, as on real hardware.
    if (id == 0) CROSVM_RETURN_IF_ERROR(arch::SetupLongModeRegisters(*v, kernel_.entry));
    vcpus_.push_back(std::move(v));
  }
  run_state_ = std::make_unique<vmm::VcpuRunState>(vcpus_.size());
  return Ok();
}

Status Vm::Setup() {
  CROSVM_RETURN_IF_ERROR(CheckAffinity(config_.cpu_affinity));
  CROSVM_ASSIGN_OR_RETURN(auto kvm, kvm::Kvm::Open());
  kvm_.emplace(std::move(kvm));
  CROSVM_RETURN_IF_ERROR(CheckKvm(*kvm_, config_.cpus));
  CROSVM_ASSIGN_OR_RETURN(exit_, ExitRequest::Create());

  // Everything that can fail because of the user's files happens before KVM objects exist.
  CROSVM_RETURN_IF_ERROR(SetupMemoryAndKernel());
  CROSVM_RETURN_IF_ERROR(OpenDisks());

  CROSVM_ASSIGN_OR_RETURN(auto vm, kvm_->CreateVm());
  vm_.emplace(std::move(vm));
  CROSVM_RETURN_IF_ERROR(vm_->SetTssAddr(arch::kTssAddr));
  CROSVM_RETURN_IF_ERROR(vm_->SetIdentityMapAddr(arch::kIdentityMapAddr));
  CROSVM_RETURN_IF_ERROR(vm_->CreateIrqchip());
  CROSVM_RETURN_IF_ERROR(vm_->CreatePit2());
  uint32_t slot = 0;
  for (const auto& r : mem_->regions()) {
    CROSVM_RETURN_IF_ERROR(
        vm_->SetUserMemoryRegion(slot++, r.guest_addr, r.size, r.mapping.data()));
  }
  CROSVM_RETURN_IF_ERROR(SetupDevices());
  return SetupVcpus();
}

void Vm::KickVcpus() {
  std::lock_guard lock(threads_mu_);
  for (size_t i = 0; i < threads_.size(); ++i) {
    vcpus_[i]->SetImmediateExit(true);
    pthread_kill(threads_[i].native_handle(), KickSignal());
  }
}

void Vm::StopVcpus() {
  if (run_state_) run_state_->Stop();
  KickVcpus();
  std::lock_guard lock(threads_mu_);
  for (auto& t : threads_) t.join();
  threads_.clear();
}

Status Vm::StartControlServer() {
  if (!config_.socket_path) return Ok();
  vmm::VmControlHooks hooks;
  ExitRequest* exit = exit_.get();
  hooks.stop = [exit] { exit->Request(kExitOk, "stop requested through the control socket"); };
  hooks.run_state = run_state_.get();
  hooks.kick_vcpus = [this] { KickVcpus(); };
  auto control_of = [](vmm::DeviceHost* host) -> vmm::DeviceControlFn {
    return [host](uint32_t op, std::span<const uint8_t> payload) {
      return host->pci_device()->DeviceControl(op, payload);
    };
  };
  if (balloon_host_ != nullptr) hooks.balloon = control_of(balloon_host_);
  for (auto* host : disk_hosts_) hooks.disks.push_back(control_of(host));
  hooks.pid = getpid();
  control_handler_ = std::make_unique<vmm::VmControlHandler>(std::move(hooks));
  const std::string path = control::ResolveSocketPath(*config_.socket_path, getpid());
  auto server = control::ControlServer::Start(path, control_handler_.get());
  if (!server.ok()) return server.error().Wrap("-s " + *config_.socket_path);
  control_server_ = std::move(*server);
  CROSVM_LOG(INFO) << "control socket " << path;
  return Ok();
}

Result<int> Vm::Run() {
  // SIGINT/SIGTERM/SIGHUP are read from a signalfd by the main loop; every thread created
  // from here on inherits the blocked mask, so none of them is interrupted by these.
  sigset_t term;
  sigemptyset(&term);
  for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&term, s);
  pthread_sigmask(SIG_BLOCK, &term, nullptr);
  signal(SIGPIPE, SIG_IGN);
  int sfd = signalfd(-1, &term, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) return Error::FromErrno("signalfd");
  base::ScopedFd signal_fd(sfd);

  CROSVM_RETURN_IF_ERROR(Setup());

  CROSVM_ASSIGN_OR_RETURN(auto loop, base::EventLoop::Create());
  CROSVM_RETURN_IF_ERROR(loop.Add(exit_->fd(), [&](uint32_t) { loop.Quit(); }));
  // A device process that ends while the VM runs (a seccomp violation, a crash, a kill) ends
  // the VM, with a line that names the device and how it ended.
  for (auto& host : device_hosts_) {
    if (!host->jailed()) continue;
    vmm::DeviceHost* h = host.get();
    CROSVM_RETURN_IF_ERROR(loop.Add(h->exit_fd(), [this, h, &loop](uint32_t) {
      (void)loop.Remove(h->exit_fd());
      exit_->Request(vmm::kExitDeviceFailed, h->DescribeExit());
    }));
  }
  int signal_number = 0;
  CROSVM_RETURN_IF_ERROR(loop.Add(signal_fd.get(), [&](uint32_t) {
    signalfd_siginfo info;
    if (read(signal_fd.get(), &info, sizeof(info)) == sizeof(info)) {
      signal_number = static_cast<int>(info.ssi_signo);
      exit_->Request(128 + signal_number,
                     std::string("received ") + strsignal(signal_number) + ", stopping the VM");
    }
  }));

  auto raw = base::RawTerminal::Enter(STDIN_FILENO);
  if (!raw.ok()) return raw.error().Wrap("putting the terminal in raw mode");
  if (stdin_serial_ && fcntl(STDIN_FILENO, F_GETFL) >= 0) {
    auto status = loop.Add(STDIN_FILENO, [&](uint32_t events) {
      uint8_t buf[256];
      ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
      if (n > 0) {
        stdin_serial_->QueueInput({buf, static_cast<size_t>(n)});
      } else if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN) ||
                 (events & (EPOLLHUP | EPOLLERR))) {
        (void)loop.Remove(STDIN_FILENO);  // end of input: the guest just sees no more bytes
      }
    });
    // A regular file or /dev/null cannot be polled; such stdin is simply not forwarded.
    if (!status.ok()) CROSVM_LOG(DEBUG) << "stdin not forwarded: " << status.error().ToString();
  }

  InstallKickHandler();
  CROSVM_RETURN_IF_ERROR(StartControlServer());
  {
    std::lock_guard lock(threads_mu_);
    for (auto& v : vcpus_) {
      kvm::Vcpu* vcpu = v.get();
      threads_.emplace_back([this, vcpu] {
        VcpuLoop(*vcpu, buses_, *exit_, *run_state_, config_.cpu_affinity);
        run_state_->Exited();
      });
    }
  }

  Status loop_status = loop.Run();
  // No request is served from here on (a suspend now would wait for vCPUs that are ending).
  if (control_server_) control_server_->Stop();
  StopVcpus();
  StopDevices();
  // Console output is buffered off the vCPU threads: out before the files close.
  for (auto& s : serials_) (void)s->Flush();
  if (!loop_status.ok()) return loop_status.error();
  control_server_.reset();  // the socket goes before crosvm says it is done
  auto [code, reason] = exit_->Get();
  if (code == kExitOk) {
    CROSVM_LOG(INFO) << reason;
  } else {
    CROSVM_LOG(ERROR) << reason;
    // Where each vCPU stood helps tell a hung guest from a busy one.
    for (const auto& v : vcpus_) {
      CROSVM_LOG(INFO) << "vcpu " << v->id() << " stopped" << ExitDiagnostics(*v);
    }
  }
  return code;
}

}  // namespace

Result<int> RunVm(const Config& config) {
  if (config.syslog_tag) base::EnableSyslog(*config.syslog_tag);
  Vm vm(config);
  return vm.Run();
}

}  // namespace crosvm::cli
