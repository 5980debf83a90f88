#include "devices/virtio/interrupt.h"

#include <sys/eventfd.h>

#include "devices/virtio/virtio.h"

namespace crosvm::devices::virtio {

base::Result<std::unique_ptr<Interrupt>> Interrupt::Create(pci::MsixConfig* msix) {
  CROSVM_ASSIGN_OR_RETURN(auto intx, base::EventFd::Create(EFD_NONBLOCK));
  CROSVM_ASSIGN_OR_RETURN(auto resample, base::EventFd::Create(EFD_NONBLOCK));
  return std::unique_ptr<Interrupt>(new Interrupt(msix, std::move(intx), std::move(resample)));
}

void Interrupt::AppendKeptFds(std::vector<int>& fds) const {
  fds.push_back(intx_.fd());
  fds.push_back(resample_.fd());
  if (msix_) msix_->AppendKeptFds(fds);
}

Interrupt::~Interrupt() {
  if (vm_ != nullptr) (void)vm_->UnregisterIrqfd(intx_.fd(), gsi_);
}

base::Status Interrupt::ConnectIntx(pci::VmControl* vm, uint32_t gsi) {
  if (vm == nullptr) return base::Ok();
  CROSVM_RETURN_IF_ERROR(vm->RegisterIrqfd(intx_.fd(), gsi, resample_.fd()));
  vm_ = vm;
  gsi_ = gsi;
  return base::Ok();
}

void Interrupt::Raise(uint8_t isr_bit, uint16_t vector) {
  if (msix_ != nullptr && msix_->enabled()) {
    // With MSI-X on, INTx and the ISR are not used; NO_VECTOR means "no interrupt".
    if (vector != kNoVector) msix_->Signal(vector);
    return;
  }
  isr_.fetch_or(isr_bit);
  if (!intx_disabled_.load()) (void)intx_.Write();
}

void Interrupt::SignalQueue(uint16_t vector) {
  Raise(kIsrQueue, vector);
}

void Interrupt::SignalConfigChanged() {
  Raise(kIsrConfig, config_vector_.load());
}

void Interrupt::SetNeedsReset() {
  if (needs_reset_.exchange(true)) return;
  SignalConfigChanged();
}

uint8_t Interrupt::ReadAndClearIsr() {
  return isr_.exchange(0);
}

void Interrupt::Resample() {
  if (isr_.load() != 0 && !intx_disabled_.load()) (void)intx_.Write();
}

void Interrupt::SetIntxDisabled(bool disabled) {
  bool was = intx_disabled_.exchange(disabled);
  if (was && !disabled) Resample();
}

void Interrupt::Reset() {
  isr_.store(0);
  needs_reset_.store(false);
  config_vector_.store(kNoVector);
}

}  // namespace crosvm::devices::virtio
