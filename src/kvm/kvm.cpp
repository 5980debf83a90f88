#include "kvm/kvm.h"

#include "kvm/ioctls.h"

#include "base/strings.h"

#include <fcntl.h>
#include <sys/ioctl.h>

#include <cstdlib>
#include <cstring>
#include <memory>

namespace crosvm::kvm {
namespace {

using base::Error;
using base::Ok;
using base::Result;
using base::Status;

// A variable-length KVM argument: a __u32 count, then (at a C-computed offset) the entries.
template <typename Entry>
class FlexBuffer {
 public:
  FlexBuffer(unsigned long entries_offset, size_t n)
      : offset_(entries_offset), storage_((entries_offset + n * sizeof(Entry) + 15) / 16 + 1) {}
  void* arg() { return storage_.data(); }
  uint32_t count() const { return *reinterpret_cast<const uint32_t*>(storage_.data()); }
  void set_count(uint32_t n) { *reinterpret_cast<uint32_t*>(storage_.data()) = n; }
  Entry* entries() {
    return reinterpret_cast<Entry*>(reinterpret_cast<uint8_t*>(storage_.data()) + offset_);
  }

 private:
  struct alignas(16) Chunk {
    uint8_t bytes[16];
  };
  unsigned long offset_;
  std::vector<Chunk> storage_;  // zero-initialized, 16-byte aligned
};

Status Ioctl(int fd, unsigned long req, const void* arg, const char* name) {
  if (ioctl(fd, req, arg) < 0) return Error::FromErrno(name);
  return Ok();
}

}  // namespace

Result<Kvm> Kvm::Open(const char* path) {
  int fd = open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    return Error::FromErrno(std::string("cannot open ") + path +
                            " (is KVM available, and may this user open it?)");
  }
  Kvm kvm{base::ScopedFd(fd)};
  int version = ioctl(fd, KVM_GET_API_VERSION, 0);
  if (version != KVM_API_VERSION) {
    return Error("KVM API version " + std::to_string(version) + " is not the expected " +
                 std::to_string(KVM_API_VERSION));
  }
  return kvm;
}

int Kvm::CheckExtension(int cap) const {
  int r = ioctl(fd_.get(), KVM_CHECK_EXTENSION, cap);
  return r < 0 ? 0 : r;
}

Result<size_t> Kvm::VcpuMmapSize() const {
  int size = ioctl(fd_.get(), KVM_GET_VCPU_MMAP_SIZE, 0);
  if (size <= 0) return Error::FromErrno("KVM_GET_VCPU_MMAP_SIZE");
  return static_cast<size_t>(size);
}

Result<std::vector<kvm_cpuid_entry2>> Kvm::GetSupportedCpuid() const {
  for (size_t n = 128; n <= 4096; n *= 2) {
    FlexBuffer<kvm_cpuid_entry2> buf(crosvm_kvm_cpuid2_entries_offset, n);
    buf.set_count(n);
    if (ioctl(fd_.get(), crosvm_kvm_get_supported_cpuid, buf.arg()) == 0) {
      return std::vector<kvm_cpuid_entry2>(buf.entries(), buf.entries() + buf.count());
    }
    if (errno != E2BIG) return Error::FromErrno("KVM_GET_SUPPORTED_CPUID");
  }
  return Error("KVM_GET_SUPPORTED_CPUID: too many entries");
}

Result<std::vector<uint32_t>> Kvm::GetMsrIndexList() const {
  FlexBuffer<uint32_t> buf(crosvm_kvm_msr_list_indices_offset, 1024);
  buf.set_count(1024);
  if (ioctl(fd_.get(), crosvm_kvm_get_msr_index_list, buf.arg()) < 0) {
    return Error::FromErrno("KVM_GET_MSR_INDEX_LIST");
  }
  return std::vector<uint32_t>(buf.entries(), buf.entries() + buf.count());
}

Result<Vm> Kvm::CreateVm() const {
  int fd = ioctl(fd_.get(), KVM_CREATE_VM, 0);
  if (fd < 0) return Error::FromErrno("KVM_CREATE_VM");
  return Vm(base::ScopedFd(fd));
}

Status Vm::SetUserMemoryRegion(uint32_t slot, uint64_t guest_addr, uint64_t size, void* host_addr,
                               uint32_t flags) {
  kvm_userspace_memory_region region{};
  region.slot = slot;
  region.flags = flags;
  region.guest_phys_addr = guest_addr;
  region.memory_size = size;
  region.userspace_addr = reinterpret_cast<uint64_t>(host_addr);
  return Ioctl(fd_.get(), KVM_SET_USER_MEMORY_REGION, &region, "KVM_SET_USER_MEMORY_REGION");
}

Status Vm::SetTssAddr(uint64_t addr) {
  if (ioctl(fd_.get(), KVM_SET_TSS_ADDR, static_cast<unsigned long>(addr)) < 0) {
    return Error::FromErrno("KVM_SET_TSS_ADDR");
  }
  return Ok();
}

Status Vm::SetIdentityMapAddr(uint64_t addr) {
  return Ioctl(fd_.get(), KVM_SET_IDENTITY_MAP_ADDR, &addr, "KVM_SET_IDENTITY_MAP_ADDR");
}

Status Vm::CreateIrqchip() {
  if (ioctl(fd_.get(), KVM_CREATE_IRQCHIP, 0) < 0) return Error::FromErrno("KVM_CREATE_IRQCHIP");
  return Ok();
}

Status Vm::CreatePit2() {
  kvm_pit_config config{};
  return Ioctl(fd_.get(), KVM_CREATE_PIT2, &config, "KVM_CREATE_PIT2");
}

Status Vm::SetIrqLine(uint32_t irq, bool level) {
  kvm_irq_level l{};
  l.irq = irq;
  l.level = level ? 1 : 0;
  return Ioctl(fd_.get(), KVM_IRQ_LINE, &l, "KVM_IRQ_LINE");
}

Status Vm::RegisterIrqfd(int eventfd, uint32_t gsi, std::optional<int> resample_fd) {
  kvm_irqfd irqfd{};
  irqfd.fd = static_cast<uint32_t>(eventfd);
  irqfd.gsi = gsi;
  if (resample_fd) {
    irqfd.flags = KVM_IRQFD_FLAG_RESAMPLE;
    irqfd.resamplefd = static_cast<uint32_t>(*resample_fd);
  }
  return Ioctl(fd_.get(), KVM_IRQFD, &irqfd, "KVM_IRQFD");
}

Status Vm::UnregisterIrqfd(int eventfd, uint32_t gsi) {
  kvm_irqfd irqfd{};
  irqfd.fd = static_cast<uint32_t>(eventfd);
  irqfd.gsi = gsi;
  irqfd.flags = KVM_IRQFD_FLAG_DEASSIGN;
  return Ioctl(fd_.get(), KVM_IRQFD, &irqfd, "KVM_IRQFD deassign");
}

Status Vm::Ioeventfd(int eventfd, uint64_t addr, uint32_t len, bool pio,
                     std::optional<uint64_t> datamatch, bool deassign) {
  kvm_ioeventfd io{};
  io.fd = eventfd;
  io.addr = addr;
  io.len = len;
  if (pio) io.flags |= KVM_IOEVENTFD_FLAG_PIO;
  if (deassign) io.flags |= KVM_IOEVENTFD_FLAG_DEASSIGN;
  if (datamatch) {
    io.flags |= KVM_IOEVENTFD_FLAG_DATAMATCH;
    io.datamatch = *datamatch;
  }
  return Ioctl(fd_.get(), KVM_IOEVENTFD, &io, "KVM_IOEVENTFD");
}

Status Vm::RegisterIoeventfd(int eventfd, uint64_t addr, uint32_t len, bool pio,
                             std::optional<uint64_t> datamatch) {
  return Ioeventfd(eventfd, addr, len, pio, datamatch, false);
}

Status Vm::UnregisterIoeventfd(int eventfd, uint64_t addr, uint32_t len, bool pio,
                               std::optional<uint64_t> datamatch) {
  return Ioeventfd(eventfd, addr, len, pio, datamatch, true);
}

Status Vm::SetGsiRouting(const std::vector<kvm_irq_routing_entry>& entries) {
  FlexBuffer<kvm_irq_routing_entry> buf(crosvm_kvm_irq_routing_entries_offset, entries.size());
  buf.set_count(entries.size());
  std::memcpy(buf.entries(), entries.data(), entries.size() * sizeof(entries[0]));
  return Ioctl(fd_.get(), crosvm_kvm_set_gsi_routing, buf.arg(), "KVM_SET_GSI_ROUTING");
}

Status Vm::SignalMsi(uint64_t address, uint32_t data) {
  kvm_msi msi{};
  msi.address_lo = static_cast<uint32_t>(address);
  msi.address_hi = static_cast<uint32_t>(address >> 32);
  msi.data = data;
  if (ioctl(fd_.get(), KVM_SIGNAL_MSI, &msi) < 0) return Error::FromErrno("KVM_SIGNAL_MSI");
  return Ok();
}

Result<Vcpu> Vm::CreateVcpu(uint32_t id, size_t mmap_size) {
  int fd = ioctl(fd_.get(), KVM_CREATE_VCPU, static_cast<unsigned long>(id));
  if (fd < 0) return Error::FromErrno("KVM_CREATE_VCPU " + std::to_string(id));
  base::ScopedFd vcpu_fd(fd);
  CROSVM_ASSIGN_OR_RETURN(auto run, base::MemoryMapping::FromFd(fd, mmap_size));
  return Vcpu(id, std::move(vcpu_fd), std::move(run));
}

Result<bool> Vcpu::Run() {
  if (ioctl(fd_.get(), KVM_RUN, 0) < 0) {
    if (errno == EINTR || errno == EAGAIN) return false;
    return Error::FromErrno("KVM_RUN on vcpu " + std::to_string(id_));
  }
  return true;
}

Result<kvm_regs> Vcpu::GetRegs() const {
  kvm_regs regs{};
  CROSVM_RETURN_IF_ERROR(Ioctl(fd_.get(), KVM_GET_REGS, &regs, "KVM_GET_REGS"));
  return regs;
}

Status Vcpu::SetRegs(const kvm_regs& regs) {
  return Ioctl(fd_.get(), KVM_SET_REGS, &regs, "KVM_SET_REGS");
}

Result<kvm_sregs> Vcpu::GetSregs() const {
  kvm_sregs sregs{};
  CROSVM_RETURN_IF_ERROR(Ioctl(fd_.get(), KVM_GET_SREGS, &sregs, "KVM_GET_SREGS"));
  return sregs;
}

Status Vcpu::SetSregs(const kvm_sregs& sregs) {
  return Ioctl(fd_.get(), KVM_SET_SREGS, &sregs, "KVM_SET_SREGS");
}

Status Vcpu::SetFpu(const kvm_fpu& fpu) {
  return Ioctl(fd_.get(), KVM_SET_FPU, &fpu, "KVM_SET_FPU");
}

Result<size_t> Vcpu::SetMsrsPrefix(std::span<const kvm_msr_entry> msrs) {
  FlexBuffer<kvm_msr_entry> buf(crosvm_kvm_msrs_entries_offset, msrs.size());
  buf.set_count(msrs.size());
  if (!msrs.empty()) std::memcpy(buf.entries(), msrs.data(), msrs.size() * sizeof(msrs[0]));
  int n = ioctl(fd_.get(), crosvm_kvm_set_msrs, buf.arg());
  if (n < 0) return Error::FromErrno("KVM_SET_MSRS");
  return static_cast<size_t>(n);
}

Status Vcpu::SetMsrs(const std::vector<kvm_msr_entry>& msrs) {
  CROSVM_ASSIGN_OR_RETURN(size_t n, SetMsrsPrefix(msrs));
  if (n != msrs.size()) {
    return Error("KVM_SET_MSRS: MSR " + base::Hex(msrs[n].index) + " was refused");
  }
  return Ok();
}

Result<std::vector<kvm_msr_entry>> Vcpu::GetMsrs(const std::vector<uint32_t>& indices) const {
  FlexBuffer<kvm_msr_entry> buf(crosvm_kvm_msrs_entries_offset, indices.size());
  buf.set_count(indices.size());
  for (size_t i = 0; i < indices.size(); ++i) buf.entries()[i].index = indices[i];
  int n = ioctl(fd_.get(), crosvm_kvm_get_msrs, buf.arg());
  if (n < 0) return Error::FromErrno("KVM_GET_MSRS");
  return std::vector<kvm_msr_entry>(buf.entries(), buf.entries() + n);
}

Status Vcpu::SetCpuid(const std::vector<kvm_cpuid_entry2>& entries) {
  FlexBuffer<kvm_cpuid_entry2> buf(crosvm_kvm_cpuid2_entries_offset, entries.size());
  buf.set_count(entries.size());
  std::memcpy(buf.entries(), entries.data(), entries.size() * sizeof(entries[0]));
  return Ioctl(fd_.get(), crosvm_kvm_set_cpuid2, buf.arg(), "KVM_SET_CPUID2");
}

Result<kvm_lapic_state> Vcpu::GetLapic() const {
  kvm_lapic_state s{};
  CROSVM_RETURN_IF_ERROR(Ioctl(fd_.get(), KVM_GET_LAPIC, &s, "KVM_GET_LAPIC"));
  return s;
}

Status Vcpu::SetLapic(const kvm_lapic_state& state) {
  return Ioctl(fd_.get(), KVM_SET_LAPIC, &state, "KVM_SET_LAPIC");
}

Result<kvm_mp_state> Vcpu::GetMpState() const {
  kvm_mp_state s{};
  CROSVM_RETURN_IF_ERROR(Ioctl(fd_.get(), KVM_GET_MP_STATE, &s, "KVM_GET_MP_STATE"));
  return s;
}

Status Vcpu::SetMpState(const kvm_mp_state& state) {
  return Ioctl(fd_.get(), KVM_SET_MP_STATE, &state, "KVM_SET_MP_STATE");
}

}  // namespace crosvm::kvm
