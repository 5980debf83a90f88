#include "vmm/device_host.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <vector>

#include "base/logging.h"
#include "devices/proxy/channel.h"
#include "devices/proxy/device_server.h"
#include "sandbox/policy_path.h"
#include "sandbox/seccomp_policy.h"
#include "sandbox/sigsys_reporter.h"

namespace crosvm::vmm {

using base::Error;
using base::Ok;
using base::Result;
using base::Status;
namespace pci = devices::pci;
namespace proxy = devices::proxy;
namespace virtio = devices::virtio;

// What the device process works with. It lives in the VMM's heap, so the forked device process
// finds it at the same address; in the VMM it is only kept, never used after the fork.
struct DeviceHost::Child {
  std::shared_ptr<virtio::VirtioPciDevice> device;
  proxy::EffectRecorder recorder;
  proxy::Channel channel;  // the device process's end
  std::optional<sandbox::BpfProgram> bpf;
  base::ScopedFd sigsys_write;
  base::ScopedFd null_fd;  // stdin and stdout of the device process
};

namespace {

// The VMM's copy of a jailed device is never run after the fork, and never destroyed either:
// its destructor would unregister the irqfds its device process uses and write its (stale)
// qcow2 metadata over the image. It goes with the process. Reachable from here, so that
// LeakSanitizer does not report it.
std::vector<std::shared_ptr<virtio::VirtioPciDevice>>& Retired() {
  static auto* retired = new std::vector<std::shared_ptr<virtio::VirtioPciDevice>>;
  return *retired;
}

bool WaitReadable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  int r;
  do {
    r = poll(&p, 1, timeout_ms);
  } while (r < 0 && errno == EINTR);
  return r == 1;
}

}  // namespace

Result<std::unique_ptr<DeviceHost>> DeviceHost::Create(std::string jail_name, std::string policy,
                                                       const Factory& make, pci::VmControl* vm,
                                                       pci::MsiRouter* router,
                                                       const SandboxOptions& options,
                                                       FailureCallback on_failure) {
  std::unique_ptr<DeviceHost> host(new DeviceHost());
  host->vm_control_ = std::make_unique<proxy::DeviceVmControl>(vm);
  host->router_ = std::make_unique<proxy::DeviceMsiRouter>(router);
  CROSVM_ASSIGN_OR_RETURN(auto device, make(host->vm_control_.get(), host->router_.get()));
  host->name_ = device->DebugName();
  if (!options.enabled) {
    host->device_ = std::move(device);
    return host;
  }
  host->child_ = std::make_unique<Child>();
  host->child_->device = std::move(device);
  auto started = host->StartJail(jail_name, policy, options, vm, router, std::move(on_failure));
  if (!started.ok()) return started.error().Wrap(host->name_);
  return host;
}

Status DeviceHost::StartJail(const std::string& jail_name, const std::string& policy,
                             const SandboxOptions& options, pci::VmControl* vm,
                             pci::MsiRouter* router, FailureCallback on_failure) {
  Child* c = child_.get();
  // The sandbox's start-up cost, for the benchmarks (logged at DEBUG below).
  const auto t_start = std::chrono::steady_clock::now();
  auto ms_since = [](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
  };
  // The policy is read and compiled here, in the VMM: the device process only installs it.
  CROSVM_ASSIGN_OR_RETURN(std::string path, sandbox::FindPolicy(policy, options.policy_dir));
  CROSVM_ASSIGN_OR_RETURN(auto parsed, sandbox::SeccompPolicy::ParseFile(path));
  CROSVM_ASSIGN_OR_RETURN(auto filter, sandbox::Compile(parsed, sandbox::DefaultAction::kTrap));
  CROSVM_ASSIGN_OR_RETURN(auto bpf, filter.ExportBpf());
  c->bpf.emplace(std::move(bpf));
  const double policy_ms = ms_since(t_start);

  CROSVM_ASSIGN_OR_RETURN(auto pair, proxy::Channel::CreatePair());
  c->channel = std::move(pair.second);
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return Error::FromErrno("pipe2 (seccomp report)");
  sigsys_read_ = base::ScopedFd(p[0]);
  c->sigsys_write = base::ScopedFd(p[1]);
  int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null_fd < 0) return Error::FromErrno("open /dev/null");
  c->null_fd = base::ScopedFd(null_fd);

  (void)base::StderrIsTerminal();  // decided here: the device process may not ask (ioctl)

  sandbox::JailConfig config;
  config.name = jail_name;
  config.keep_fds = c->device->KeptFds();
  config.keep_fds.push_back(c->channel.fd());
  config.keep_fds.push_back(c->sigsys_write.get());
  config.keep_fds.push_back(c->null_fd.get());

  proxy::DeviceVmControl* vm_control = vm_control_.get();
  proxy::DeviceMsiRouter* msi_router = router_.get();
  auto hook = [c, vm_control, msi_router]() -> Status {
    base::DisableSyslog();  // no /dev/log in the jail: the device logs to stderr only
    // From here on the device's calls into the VM become effects sent with each reply.
    vm_control->UseRecorder(&c->recorder);
    msi_router->UseRecorder(&c->recorder);
    // The device has no business with crosvm's terminal; stderr stays for its log.
    if (dup2(c->null_fd.get(), STDIN_FILENO) < 0 || dup2(c->null_fd.get(), STDOUT_FILENO) < 0) {
      return Error::FromErrno("pointing stdin and stdout at /dev/null");
    }
    c->null_fd.reset();
    CROSVM_RETURN_IF_ERROR(sandbox::InstallSigsysReporter(c->sigsys_write.get()));
    int err = c->bpf->InstallAsyncSignalSafe();
    if (err != 0) return Error::FromErrno("installing the seccomp filter", err);
    return Ok();
  };
  const std::string name = name_;
  auto main = [c, name]() -> int {
    auto device = std::move(c->device);
    proxy::DeviceServer server(std::move(c->channel), device.get(), &c->recorder,
                               [&device] { device->Shutdown(); });
    Status served = server.Run();
    if (!served.ok()) CROSVM_LOG(ERROR) << name << ": " << served.error().ToString();
    c->recorder.Close();
    device->Shutdown();
    device.reset();  // here, in the device process: its disk is flushed and closed
    return served.ok() ? 0 : 1;
  };
  auto jail = sandbox::Jail::Spawn(config, hook, main);
  if (!jail.ok()) {
    // Only now ask what the host lacks: a probe at every start would cost a fork and a set of
    // namespaces (milliseconds) on hosts where the jail works anyway.
    auto support = sandbox::CheckSandboxSupport();
    if (!support.ok()) return support.error();
    return jail.error().Wrap("starting its sandboxed process");
  }
  jail_.emplace(std::move(*jail));

  // The VMM keeps none of the device process's ends.
  c->channel = proxy::Channel();
  c->sigsys_write.reset();
  c->null_fd.reset();
  Retired().push_back(std::move(c->device));

  const double spawn_ms = ms_since(t_start) - policy_ms;
  const int exit_fd = jail_->exit_fd();
  auto failed = [this, exit_fd, on_failure = std::move(on_failure)](const std::string& why) {
    // Usually the process is already gone: then say how it ended (the seccomp trap, a crash).
    if (WaitReadable(exit_fd, 1000)) {
      on_failure(DescribeExit());
    } else {
      on_failure(name_ + ": " + why);
    }
  };
  auto created = proxy::ProxyDevice::Create(name_, std::move(pair.first), vm, router, failed);
  if (!created.ok()) {
    if (WaitReadable(exit_fd, 1000)) return Error(DescribeExit());
    return created.error();
  }
  proxy_ = std::move(*created);
  CROSVM_LOG(DEBUG) << name_ << ": sandboxed in process " << jail_->pid() << " (policy " << path
                    << ", " << config.keep_fds.size() << " fds kept); set-up " << ms_since(t_start)
                    << " ms: policy " << policy_ms << " ms, jail " << spawn_ms << " ms";
  return Ok();
}

DeviceHost::~DeviceHost() {
  Stop();
}

std::shared_ptr<pci::PciDevice> DeviceHost::pci_device() const {
  if (proxy_) return proxy_;
  return device_;
}

std::string DeviceHost::DescribeExit() {
  if (!jail_) return name_ + ": not sandboxed";
  // The VMM's main loop and a vCPU thread (a failed access) may both ask.
  std::lock_guard lock(exit_mu_);
  if (!exit_description_) exit_description_ = DescribeExitOnce();
  return *exit_description_;
}

std::string DeviceHost::DescribeExitOnce() {
  const std::string who = name_ + " (pid " + std::to_string(jail_->pid()) + ")";
  auto info = jail_->Wait();
  if (!info.ok()) return who + ": " + info.error().ToString();
  if (info->exited() && info->exit_code == sandbox::kSeccompTrapExitCode) {
    auto record = sandbox::ReadSigsysRecord(sigsys_read_.get());
    if (record.ok() && record->has_value()) {
      const auto& r = **record;
      return who + ": its seccomp policy does not allow system call " +
             sandbox::SyscallName(static_cast<int>(r.syscall_nr), r.arch) + " (" +
             std::to_string(r.syscall_nr) + "); the device process was stopped";
    }
  }
  if (info->exited() && info->exit_code == sandbox::Jail::kSetupFailedExitCode) {
    return who + ": the device process could not finish its sandbox set-up (its error is above)";
  }
  if (info->exited() && info->exit_code == 0) {
    clean_exit_ = true;
    return who + ": the device process exited";
  }
  return who + ": the device process " + info->ToString();
}

void DeviceHost::Stop() {
  if (stopped_) return;
  stopped_ = true;
  if (device_) {
    device_->Shutdown();
    return;
  }
  if (!jail_) return;
  if (proxy_) {
    auto st = proxy_->Shutdown();
    if (!st.ok()) CROSVM_LOG(DEBUG) << name_ << ": shutdown: " << st.error().ToString();
  }
  // The device process flushes its disk and exits; a wedged one is killed.
  if (!WaitReadable(jail_->exit_fd(), 10000)) {
    CROSVM_LOG(ERROR) << name_ << " (pid " << jail_->pid()
                      << "): the device process did not stop within 10 s; killing it";
    jail_->Kill();
  }
  std::string how = DescribeExit();
  if (!clean_exit_) CROSVM_LOG(ERROR) << how;
}

}  // namespace crosvm::vmm
