// Thin wrappers over the KVM API (<linux/kvm.h>): the system fd (Kvm), a VM (Vm) and a vCPU
// (Vcpu). Each owns its file descriptor; every ioctl failure comes back as an Error naming it.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "base/mmap.h"

namespace crosvm::kvm {

class Vm;
class Vcpu;

class Kvm {
 public:
  static base::Result<Kvm> Open(const char* path = "/dev/kvm");

  int fd() const { return fd_.get(); }
  // The extension's value (0 = unsupported).
  int CheckExtension(int cap) const;
  base::Result<size_t> VcpuMmapSize() const;
  base::Result<std::vector<kvm_cpuid_entry2>> GetSupportedCpuid() const;
  base::Result<std::vector<uint32_t>> GetMsrIndexList() const;
  base::Result<Vm> CreateVm() const;

 private:
  explicit Kvm(base::ScopedFd fd) : fd_(std::move(fd)) {}
  base::ScopedFd fd_;
};

class Vm {
 public:
  int fd() const { return fd_.get(); }

  base::Status SetUserMemoryRegion(uint32_t slot, uint64_t guest_addr, uint64_t size,
                                   void* host_addr, uint32_t flags = 0);
  base::Status SetTssAddr(uint64_t addr);
  base::Status SetIdentityMapAddr(uint64_t addr);
  // In-kernel PIC + IOAPIC + LAPICs; must precede vCPU creation.
  base::Status CreateIrqchip();
  base::Status CreatePit2();
  base::Status SetIrqLine(uint32_t irq, bool level);
  base::Status RegisterIrqfd(int eventfd, uint32_t gsi, std::optional<int> resample_fd = {});
  base::Status UnregisterIrqfd(int eventfd, uint32_t gsi);
  // An eventfd signalled when the guest writes `addr` (port I/O when `pio`), optionally only
  // when the written value equals `datamatch`.
  base::Status RegisterIoeventfd(int eventfd, uint64_t addr, uint32_t len, bool pio,
                                 std::optional<uint64_t> datamatch = {});
  base::Status UnregisterIoeventfd(int eventfd, uint64_t addr, uint32_t len, bool pio,
                                   std::optional<uint64_t> datamatch = {});
  base::Status SetGsiRouting(const std::vector<kvm_irq_routing_entry>& entries);
  base::Status SignalMsi(uint64_t address, uint32_t data);
  base::Result<Vcpu> CreateVcpu(uint32_t id, size_t mmap_size);

 private:
  friend class Kvm;
  explicit Vm(base::ScopedFd fd) : fd_(std::move(fd)) {}
  base::Status Ioeventfd(int eventfd, uint64_t addr, uint32_t len, bool pio,
                         std::optional<uint64_t> datamatch, bool deassign);
  base::ScopedFd fd_;
};

class Vcpu {
 public:
  uint32_t id() const { return id_; }
  int fd() const { return fd_.get(); }
  kvm_run* run() const { return reinterpret_cast<kvm_run*>(run_.data()); }
  size_t run_size() const { return run_.size(); }

  // One KVM_RUN. Returns true when the vCPU exited with an exit reason to handle, false when the
  // run was interrupted (EINTR/EAGAIN, e.g. by a kick), or an error.
  base::Result<bool> Run();
  // Makes the next (or current, with a signal) KVM_RUN return at once. Any thread may call it.
  void SetImmediateExit(bool value) { run()->immediate_exit = value ? 1 : 0; }

  base::Result<kvm_regs> GetRegs() const;
  base::Status SetRegs(const kvm_regs& regs);
  base::Result<kvm_sregs> GetSregs() const;
  base::Status SetSregs(const kvm_sregs& sregs);
  base::Status SetFpu(const kvm_fpu& fpu);
  base::Status SetMsrs(const std::vector<kvm_msr_entry>& msrs);
  // KVM_SET_MSRS as KVM does it: sets entries in order and stops at the first one it refuses;
  // returns how many were set.
  base::Result<size_t> SetMsrsPrefix(std::span<const kvm_msr_entry> msrs);
  base::Result<std::vector<kvm_msr_entry>> GetMsrs(const std::vector<uint32_t>& indices) const;
  base::Status SetCpuid(const std::vector<kvm_cpuid_entry2>& entries);
  base::Result<kvm_lapic_state> GetLapic() const;
  base::Status SetLapic(const kvm_lapic_state& state);
  base::Result<kvm_mp_state> GetMpState() const;
  base::Status SetMpState(const kvm_mp_state& state);

 private:
  friend class Vm;
  Vcpu(uint32_t id, base::ScopedFd fd, base::MemoryMapping run)
      : id_(id), fd_(std::move(fd)), run_(std::move(run)) {}
  uint32_t id_;
  base::ScopedFd fd_;
  base::MemoryMapping run_;
};

}  // namespace crosvm::kvm
