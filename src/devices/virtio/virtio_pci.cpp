#include "devices/virtio/virtio_pci.h"

#include <sys/eventfd.h>

#include <bit>
#include <chrono>
#include <cstring>
#include <thread>

#include "base/logging.h"
#include "base/strings.h"
#include "devices/virtio/virtio.h"

namespace crosvm::devices::virtio {
namespace {

using base::Hex;

uint64_t LoadLe(std::span<const uint8_t> data) {
  uint64_t v = 0;
  for (size_t i = 0; i < data.size() && i < 8; ++i) v |= static_cast<uint64_t>(data[i]) << (8 * i);
  return v;
}

void StoreLe(std::span<uint8_t> data, uint64_t v) {
  for (size_t i = 0; i < data.size(); ++i) data[i] = i < 8 ? static_cast<uint8_t>(v >> (8 * i)) : 0;
}

// The body of a struct virtio_pci_cap after cap_vndr and cap_next.
std::vector<uint8_t> VirtioCap(uint8_t cap_len, uint8_t type, uint32_t offset, uint32_t length) {
  std::vector<uint8_t> body(cap_len - 2, 0);
  body[0] = cap_len;
  body[1] = type;
  body[2] = kBarIndex;
  std::memcpy(&body[6], &offset, 4);
  std::memcpy(&body[10], &length, 4);
  return body;
}

// The common configuration fields: where each starts and how wide it is. 64-bit fields may
// also be accessed as two 32-bit halves.
struct Field {
  uint64_t offset;
  uint64_t size;
};
constexpr Field kCommonFields[] = {
    {kDeviceFeatureSelect, 4}, {kDeviceFeature, 4},    {kDriverFeatureSelect, 4},
    {kDriverFeature, 4},       {kMsixConfig, 2},       {kNumQueues, 2},
    {kDeviceStatus, 1},        {kConfigGeneration, 1}, {kQueueSelect, 2},
    {kQueueSize, 2},           {kQueueMsixVector, 2},  {kQueueEnable, 2},
    {kQueueNotifyOff, 2},      {kQueueDesc, 8},        {kQueueDriver, 8},
    {kQueueDevice, 8},
};

// The field an access (offset, size) addresses and the byte position within it, if the access
// is one the spec allows: the whole field, or a 32-bit half of a 64-bit field.
std::optional<std::pair<Field, uint64_t>> FindField(uint64_t offset, uint64_t size) {
  for (const Field& f : kCommonFields) {
    if (offset < f.offset || offset >= f.offset + f.size) continue;
    uint64_t within = offset - f.offset;
    if (within == 0 && size == f.size) return std::pair{f, within};
    if (f.size == 8 && size == 4 && (within == 0 || within == 4)) return std::pair{f, within};
    return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace

VirtioPciDevice::VirtioPciDevice(std::string name, std::unique_ptr<VirtioDevice> device,
                                 memory::GuestMemory* mem, pci::VmControl* vm)
    : name_(std::move(name)),
      device_(std::move(device)),
      mem_(mem),
      vm_(vm),
      config_(pci::PciIds{
          .vendor = kPciVendorId,
          .device = static_cast<uint16_t>(kPciDeviceIdBase + device_->DeviceType()),
          .class_code = device_->PciClassCode(),
          .revision = kPciRevision,
          .subsystem_vendor = kPciVendorId,
          .subsystem_id = kPciSubsystemId,
      }) {}

base::Result<std::shared_ptr<VirtioPciDevice>> VirtioPciDevice::Create(
    std::unique_ptr<VirtioDevice> device, memory::GuestMemory* mem, pci::VmControl* vm,
    pci::MsiRouter* router, bool use_msix) {
  std::string name = device->DebugName();
  std::shared_ptr<VirtioPciDevice> d(new VirtioPciDevice(name, std::move(device), mem, vm));
  auto status = d->Init(router, use_msix);
  if (!status.ok()) return status.error().Wrap(name);
  return d;
}

base::Status VirtioPciDevice::Init(pci::MsiRouter* router, bool use_msix) {
  for (uint16_t max : device_->QueueMaxSizes()) {
    if (max == 0 || max > kMaxQueueSize || !std::has_single_bit(max)) {
      return base::Error("bad maximum queue size " + std::to_string(max));
    }
    queues_.emplace_back(max);
    CROSVM_ASSIGN_OR_RETURN(auto evt, base::EventFd::Create(EFD_NONBLOCK));
    queue_evts_.push_back(std::move(evt));
  }
  const size_t num_queues = queues_.size();
  if (num_queues * kNotifyMultiplier > kMsixTableOffset - kNotifyOffset) {
    return base::Error("too many queues");
  }
  if (use_msix) {
    uint16_t vectors = static_cast<uint16_t>(num_queues + 1);
    CROSVM_ASSIGN_OR_RETURN(msix_, pci::MsixConfig::Create(vectors, vm_, router, name_));
    if (msix_->table_size() > kMsixPbaOffset - kMsixTableOffset) {
      return base::Error("too many MSI-X vectors");
    }
  }
  CROSVM_ASSIGN_OR_RETURN(interrupt_, Interrupt::Create(msix_.get()));
  // The command register resets to 0: no bus mastering until the driver enables it.
  interrupt_->SetBusMaster(false);
  if (msix_) msix_->SetBusMaster(false);

  CROSVM_RETURN_IF_ERROR(config_.AddBar(pci::BarInfo{
      .index = kBarIndex, .type = pci::BarType::kMem64, .size = kBar0Size, .prefetchable = false}));

  auto common = VirtioCap(16, kCapCommonCfg, kCommonCfgOffset, kCommonCfgSize);
  CROSVM_RETURN_IF_ERROR(config_.AddCapability(pci::kCapIdVendor, common));
  auto notify = VirtioCap(20, kCapNotifyCfg, kNotifyOffset,
                          static_cast<uint32_t>(num_queues * kNotifyMultiplier));
  std::memcpy(&notify[14], &kNotifyMultiplier, 4);
  CROSVM_RETURN_IF_ERROR(config_.AddCapability(pci::kCapIdVendor, notify));
  auto isr = VirtioCap(16, kCapIsrCfg, kIsrOffset, 1);
  CROSVM_RETURN_IF_ERROR(config_.AddCapability(pci::kCapIdVendor, isr));
  auto device = VirtioCap(16, kCapDeviceCfg, kDeviceCfgOffset, kDeviceCfgSize);
  CROSVM_RETURN_IF_ERROR(config_.AddCapability(pci::kCapIdVendor, device));
  // VIRTIO_PCI_CAP_PCI_CFG: the driver writes bar, offset and length, then reads or writes
  // pci_cfg_data to access the BAR through configuration space.
  auto pci_cfg = VirtioCap(20, kCapPciCfg, 0, 0);
  std::vector<uint8_t> pci_cfg_mask(pci_cfg.size(), 0);
  pci_cfg_mask[2] = 0xff;                                  // bar
  for (size_t i = 6; i < 18; ++i) pci_cfg_mask[i] = 0xff;  // offset, length, data
  CROSVM_ASSIGN_OR_RETURN(pci_cfg_cap_,
                          config_.AddCapability(pci::kCapIdVendor, pci_cfg, pci_cfg_mask));
  if (msix_) {
    auto body = msix_->CapabilityBody(kBarIndex, kMsixTableOffset, kMsixPbaOffset);
    CROSVM_ASSIGN_OR_RETURN(
        msix_cap_,
        config_.AddCapability(pci::kCapIdMsix, body, pci::MsixConfig::CapabilityWriteMask()));
  }
  return base::Ok();
}

VirtioPciDevice::~VirtioPciDevice() {
  Shutdown();
}

std::vector<int> VirtioPciDevice::KeptFds() const {
  std::vector<int> fds;
  for (const auto& e : queue_evts_) fds.push_back(e.fd());
  interrupt_->AppendKeptFds(fds);
  device_->AppendKeptFds(fds);
  return fds;
}

void VirtioPciDevice::Shutdown() {
  std::unique_lock lock(mu_);
  while (resetting_) {
    // A vCPU is stopping the device: let it finish (bounded: the worker checks its stop
    // flag between requests).
    lock.unlock();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    lock.lock();
  }
  if (active_) {
    active_ = false;
    resetting_ = true;
    lock.unlock();
    device_->Reset();
    lock.lock();
    resetting_ = false;
  }
  UnregisterIoeventfds();
}

bool VirtioPciDevice::active() const {
  std::lock_guard lock(mu_);
  return active_;
}

base::Status VirtioPciDevice::AssignIntx(uint32_t gsi) {
  config_.SetInterrupt(static_cast<uint8_t>(gsi), 1);  // INTA#
  return interrupt_->ConnectIntx(vm_, gsi);
}

uint32_t VirtioPciDevice::ReadConfigRegister(size_t reg) {
  if (pci_cfg_cap_ != 0 && reg == (pci_cfg_cap_ + 16u) / 4) {
    // pci_cfg_data: read cap.length bytes of the BAR at cap.offset (without cfg_mu_: the BAR
    // access takes the device's own locks).
    uint8_t bar;
    uint32_t offset, length;
    {
      std::lock_guard lock(cfg_mu_);
      bar = config_.ReadByte(pci_cfg_cap_ + 4u);
      offset = config_.ReadDword(pci_cfg_cap_ + 8u);
      length = config_.ReadDword(pci_cfg_cap_ + 12u);
    }
    uint8_t buf[4] = {0, 0, 0, 0};
    if (bar == kBarIndex && (length == 1 || length == 2 || length == 4) && offset % length == 0 &&
        offset < kBar0Size) {
      ReadBar(bar, offset, {buf, length});
    }
    uint32_t v;
    std::memcpy(&v, buf, 4);
    std::lock_guard lock(cfg_mu_);
    config_.SetDword(pci_cfg_cap_ + 16u, v);
    return config_.ReadRegister(reg);
  }
  std::lock_guard lock(cfg_mu_);
  return config_.ReadRegister(reg);
}

void VirtioPciDevice::WriteConfigRegister(size_t reg, size_t offset,
                                          std::span<const uint8_t> data) {
  uint16_t command = 0, msix_control = 0;
  bool window = false;
  uint8_t bar = 0;
  uint32_t bar_offset = 0, length = 0, window_value = 0;
  {
    std::lock_guard lock(cfg_mu_);
    config_.WriteRegister(reg, offset, data);
    command = config_.command();
    if (msix_cap_ != 0) msix_control = config_.ReadWord(msix_cap_ + 2u);
    if (pci_cfg_cap_ != 0 && reg == (pci_cfg_cap_ + 16u) / 4) {
      window = true;
      bar = config_.ReadByte(pci_cfg_cap_ + 4u);
      bar_offset = config_.ReadDword(pci_cfg_cap_ + 8u);
      length = config_.ReadDword(pci_cfg_cap_ + 12u);
      window_value = config_.ReadDword(pci_cfg_cap_ + 16u);
    }
  }
  if (reg == pci::kCommand / 4) CommandChanged(command);
  if (msix_cap_ != 0 && reg == msix_cap_ / 4u) msix_->SetMessageControl(msix_control);
  if (window && bar == kBarIndex && (length == 1 || length == 2 || length == 4) &&
      bar_offset % length == 0 && bar_offset < kBar0Size) {
    uint8_t buf[4];
    std::memcpy(buf, &window_value, 4);
    WriteBar(bar, bar_offset, {buf, length});
  }
}

void VirtioPciDevice::CommandChanged(uint16_t command) {
  interrupt_->SetIntxDisabled(command & pci::kCommandIntxDisable);
  const bool master = command & pci::kCommandMaster;
  bool kick = false;
  {
    std::lock_guard lock(mu_);
    kick = master && !bus_master_ && active_;
    bus_master_ = master;
    // Order: the worker sees bus mastering on before it is kicked; MSI-X delivers what went
    // pending while it was off.
    interrupt_->SetBusMaster(master);
  }
  if (msix_) msix_->SetBusMaster(master);
  if (kick) {
    // Requests the driver queued while bus mastering was off are picked up now.
    for (auto& evt : queue_evts_) (void)evt.Write();
  }
}

void VirtioPciDevice::ReadBar(int bar, uint64_t offset, std::span<uint8_t> data) {
  std::memset(data.data(), 0, data.size());
  if (bar != kBarIndex || offset >= kBar0Size || data.size() > kBar0Size - offset) return;
  if (offset < kCommonCfgOffset + kCommonCfgSize) {
    ReadCommon(offset - kCommonCfgOffset, data);
  } else if (offset == kIsrOffset) {
    data[0] = interrupt_->ReadAndClearIsr();
  } else if (offset >= kDeviceCfgOffset && offset < kDeviceCfgOffset + kDeviceCfgSize) {
    if (data.size() <= kDeviceCfgOffset + kDeviceCfgSize - offset) {
      device_->ReadConfig(offset - kDeviceCfgOffset, data);
    }
  } else if (msix_ && offset >= kMsixTableOffset && offset < kMsixPbaOffset) {
    msix_->ReadTable(offset - kMsixTableOffset, data);
  } else if (msix_ && offset >= kMsixPbaOffset) {
    msix_->ReadPba(offset - kMsixPbaOffset, data);
  }
}

void VirtioPciDevice::WriteBar(int bar, uint64_t offset, std::span<const uint8_t> data) {
  if (bar != kBarIndex || offset >= kBar0Size || data.size() > kBar0Size - offset) return;
  if (offset < kCommonCfgOffset + kCommonCfgSize) {
    WriteCommon(offset - kCommonCfgOffset, data);
  } else if (offset >= kDeviceCfgOffset && offset < kDeviceCfgOffset + kDeviceCfgSize) {
    if (data.size() <= kDeviceCfgOffset + kDeviceCfgSize - offset) {
      std::lock_guard lock(mu_);
      device_->WriteConfig(offset - kDeviceCfgOffset, data);
    }
  } else if (offset >= kNotifyOffset &&
             offset < kNotifyOffset + kNotifyMultiplier * queues_.size()) {
    // A notification the ioeventfd did not catch (other width, or no KVM): same effect.
    size_t q = (offset - kNotifyOffset) / kNotifyMultiplier;
    (void)queue_evts_[q].Write();
  } else if (msix_ && offset >= kMsixTableOffset && offset < kMsixPbaOffset) {
    msix_->WriteTable(offset - kMsixTableOffset, data);
  }
}

Queue* VirtioPciDevice::SelectedQueue() {
  return queue_select_ < queues_.size() ? &queues_[queue_select_] : nullptr;
}

uint64_t VirtioPciDevice::OfferedFeatures() const {
  return device_->Features() | Bit(kFeatureVersion1);
}

void VirtioPciDevice::ReadCommon(uint64_t offset, std::span<uint8_t> data) {
  auto field = FindField(offset, data.size());
  if (!field) return;  // zeros
  std::lock_guard lock(mu_);
  const Queue* q = SelectedQueue();
  uint64_t v = 0;
  switch (field->first.offset) {
    case kDeviceFeatureSelect:
      v = device_feature_select_;
      break;
    case kDeviceFeature:
      v = device_feature_select_ < 2 ? OfferedFeatures() >> (32 * device_feature_select_) : 0;
      break;
    case kDriverFeatureSelect:
      v = driver_feature_select_;
      break;
    case kDriverFeature:
      v = driver_feature_select_ < 2 ? driver_features_ >> (32 * driver_feature_select_) : 0;
      break;
    case kMsixConfig:
      v = interrupt_->config_vector();
      break;
    case kNumQueues:
      v = queues_.size();
      break;
    case kDeviceStatus:
      v = status_ | (interrupt_->needs_reset() ? kStatusNeedsReset : 0);
      break;
    case kConfigGeneration:
      v = device_->ConfigGeneration() & 0xff;  // the register is 8 bits wide
      break;
    case kQueueSelect:
      v = queue_select_;
      break;
    case kQueueSize:
      v = q ? q->size : 0;
      break;
    case kQueueMsixVector:
      v = q ? q->msix_vector : kNoVector;
      break;
    case kQueueEnable:
      v = q ? q->ready : 0;
      break;
    case kQueueNotifyOff:
      v = q ? queue_select_ : 0;
      break;
    case kQueueDesc:
      v = q ? q->desc_table : 0;
      break;
    case kQueueDriver:
      v = q ? q->avail_ring : 0;
      break;
    case kQueueDevice:
      v = q ? q->used_ring : 0;
      break;
  }
  StoreLe(data, v >> (8 * field->second));
}

void VirtioPciDevice::WriteCommon(uint64_t offset, std::span<const uint8_t> data) {
  auto field = FindField(offset, data.size());
  if (!field) return;
  const uint64_t v = LoadLe(data);
  const uint64_t within = field->second;
  std::unique_lock lock(mu_);
  Queue* q = SelectedQueue();
  // Queue configuration is frozen while the device runs (or is being stopped), and per queue
  // once it is enabled.
  const bool queue_writable = q != nullptr && !q->ready && !active_ && !resetting_;
  auto valid_vector = [&](uint64_t vec) -> uint16_t {
    if (msix_ && vec < msix_->num_vectors()) return static_cast<uint16_t>(vec);
    return kNoVector;  // the driver reads NO_VECTOR back: the mapping failed
  };
  auto set_half = [&](uint64_t& reg) {
    if (field->first.size == 4 || data.size() == 8) {
      reg = v;
    } else if (within == 0) {
      reg = (reg & ~uint64_t{0xffffffff}) | (v & 0xffffffff);
    } else {
      reg = (reg & 0xffffffff) | (v << 32);
    }
  };
  switch (field->first.offset) {
    case kDeviceFeatureSelect:
      device_feature_select_ = static_cast<uint32_t>(v);
      break;
    case kDriverFeatureSelect:
      driver_feature_select_ = static_cast<uint32_t>(v);
      break;
    case kDriverFeature:
      if (status_ & kStatusFeaturesOk) break;  // features are final after FEATURES_OK
      if (driver_feature_select_ < 2) {
        int shift = 32 * static_cast<int>(driver_feature_select_);
        driver_features_ =
            (driver_features_ & ~(uint64_t{0xffffffff} << shift)) | ((v & 0xffffffff) << shift);
      }
      break;
    case kMsixConfig:
      interrupt_->set_config_vector(valid_vector(v));
      break;
    case kDeviceStatus:
      WriteStatus(static_cast<uint8_t>(v), lock);
      break;
    case kQueueSelect:
      queue_select_ = static_cast<uint16_t>(v);
      break;
    case kQueueSize:
      if (!queue_writable) break;
      if (v == 0 || v > q->max_size() || !std::has_single_bit(v)) {
        CROSVM_LOG_RATE_LIMITED(log_, WARNING)
            << name_ << ": driver asked for queue size " << v << " (maximum " << q->max_size()
            << ", a power of two); ignored";
        break;
      }
      q->size = static_cast<uint16_t>(v);
      break;
    case kQueueMsixVector:
      if (q != nullptr && !active_ && !resetting_) q->msix_vector = valid_vector(v);
      break;
    case kQueueEnable:
      if (!queue_writable || v != 1) break;
      if (auto s = q->Validate(*mem_); !s.ok()) {
        CROSVM_LOG_RATE_LIMITED(log_, WARNING)
            << name_ << ": queue " << queue_select_ << " not enabled: " << s.error().ToString();
        break;
      }
      q->ready = true;
      break;
    case kQueueDesc:
      if (queue_writable) set_half(q->desc_table);
      break;
    case kQueueDriver:
      if (queue_writable) set_half(q->avail_ring);
      break;
    case kQueueDevice:
      if (queue_writable) set_half(q->used_ring);
      break;
    default:
      break;  // read-only fields
  }
}

void VirtioPciDevice::WriteStatus(uint8_t status, std::unique_lock<std::mutex>& lock) {
  // While another vCPU stops the device, status writes are ignored; the driver sees the old
  // status until the reset is complete (it polls for 0 after writing 0).
  if (resetting_) return;
  if (status == 0) {
    ResetLocked(lock);
    return;
  }
  status &= static_cast<uint8_t>(~kStatusNeedsReset);  // only the device sets that bit
  const uint8_t old = status_;
  if ((status & old) != old) {
    CROSVM_LOG_RATE_LIMITED(log_, WARNING) << name_ << ": driver tried to clear status bits ("
                                           << Hex(old) << " -> " << Hex(status) << "); ignored";
    return;
  }
  if ((status & kStatusFeaturesOk) && !(old & kStatusFeaturesOk)) {
    uint64_t offered = OfferedFeatures();
    if (!(driver_features_ & Bit(kFeatureVersion1))) {
      CROSVM_LOG_RATE_LIMITED(log_, WARNING)
          << name_
          << ": driver did not accept VIRTIO_F_VERSION_1 (legacy drivers are not "
             "supported); FEATURES_OK refused";
      status &= static_cast<uint8_t>(~kStatusFeaturesOk);
    } else if (driver_features_ & ~offered) {
      CROSVM_LOG_RATE_LIMITED(log_, WARNING)
          << name_ << ": driver accepted features " << Hex(driver_features_)
          << " beyond those offered " << Hex(offered) << "; FEATURES_OK refused";
      status &= static_cast<uint8_t>(~kStatusFeaturesOk);
    }
  }
  if ((status & kStatusDriverOk) && !(old & kStatusDriverOk) && !active_) {
    if (!(status & kStatusFeaturesOk)) {
      CROSVM_LOG_RATE_LIMITED(log_, WARNING) << name_ << ": DRIVER_OK without FEATURES_OK; ignored";
      status &= static_cast<uint8_t>(~kStatusDriverOk);
    } else {
      ActivateContext ctx;
      ctx.mem = mem_;
      ctx.interrupt = interrupt_.get();
      ctx.features = driver_features_;
      base::Status s = base::Ok();
      for (size_t i = 0; i < queues_.size(); ++i) {
        Queue q = queues_[i];
        if (q.ready && s.ok()) s = q.Activate(mem_, driver_features_);
        ctx.queues.push_back(q);
        ctx.queue_fds.push_back(queue_evts_[i].fd());
      }
      if (s.ok()) s = device_->Activate(std::move(ctx));
      if (s.ok()) {
        active_ = true;
      } else {
        CROSVM_LOG_RATE_LIMITED(log_, ERROR)
            << name_ << ": cannot start the device: " << s.error().ToString();
        interrupt_->SetNeedsReset();
      }
    }
  }
  status_ = status;
}

void VirtioPciDevice::ResetLocked(std::unique_lock<std::mutex>& lock) {
  if (active_) {
    active_ = false;
    resetting_ = true;
    // Joins the worker (bounded: it checks its stop flag between requests): nothing touches
    // the old queues after this. mu_ is released meanwhile, so that accesses from other vCPUs
    // (status polls among them) are answered at once.
    lock.unlock();
    device_->Reset();
    lock.lock();
    resetting_ = false;
  }
  for (auto& q : queues_) q.Reset();
  device_feature_select_ = driver_feature_select_ = 0;
  driver_features_ = 0;
  status_ = 0;
  queue_select_ = 0;
  interrupt_->Reset();
}

void VirtioPciDevice::RegisterIoeventfds(uint64_t bar_addr) {
  if (vm_ == nullptr) return;
  for (size_t i = 0; i < queue_evts_.size(); ++i) {
    uint64_t addr = bar_addr + kNotifyOffset + kNotifyMultiplier * i;
    auto s = vm_->RegisterIoeventfd(queue_evts_[i].fd(), addr, 2, false, std::nullopt);
    if (!s.ok()) {
      // The guest moves the BAR as often as it likes: rate-limited.
      CROSVM_LOG_RATE_LIMITED(log_, WARNING)
          << name_ << ": no ioeventfd for queue " << i << " at " << Hex(addr)
          << " (notifications go through VM exits): " << s.error().ToString();
    }
  }
  ioeventfd_base_ = bar_addr;
}

void VirtioPciDevice::UnregisterIoeventfds() {
  if (vm_ == nullptr || !ioeventfd_base_) return;
  for (size_t i = 0; i < queue_evts_.size(); ++i) {
    uint64_t addr = *ioeventfd_base_ + kNotifyOffset + kNotifyMultiplier * i;
    (void)vm_->UnregisterIoeventfd(queue_evts_[i].fd(), addr, 2, false, std::nullopt);
  }
  ioeventfd_base_.reset();
}

void VirtioPciDevice::OnBarMapped(int bar, uint64_t addr) {
  if (bar != kBarIndex) return;
  std::lock_guard lock(mu_);
  UnregisterIoeventfds();
  RegisterIoeventfds(addr);
}

void VirtioPciDevice::OnBarUnmapped(int bar, uint64_t) {
  if (bar != kBarIndex) return;
  std::lock_guard lock(mu_);
  UnregisterIoeventfds();
}

}  // namespace crosvm::devices::virtio
