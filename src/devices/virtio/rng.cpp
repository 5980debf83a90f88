#include "devices/virtio/rng.h"

#include <sys/random.h>

#include <cerrno>

#include "base/logging.h"
#include "devices/pci/pci_config.h"
#include "devices/virtio/virtio.h"

namespace crosvm::devices::virtio {

RngDevice::~RngDevice() {
  Reset();
  CROSVM_LOG(INFO) << "virtio-rng: served " << requests_.load() << " entropy requests, "
                   << bytes_.load() << " bytes";
}

uint32_t RngDevice::PciClassCode() const {
  return pci::kClassOther;
}

uint64_t RngDevice::Features() const {
  return Bit(kFeatureRingIndirectDesc) | Bit(kFeatureRingEventIdx);
}

uint32_t RngDevice::FillChain(const memory::GuestMemory& mem, const DescriptorChain& chain) {
  ChainWriter w(mem, chain, kMaxBytesPerChain);
  w.Produce(w.remaining(), [](uint8_t* p, size_t len) {
    while (len > 0) {
      ssize_t n = getrandom(p, len, 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        return false;
      }
      p += n;
      len -= static_cast<size_t>(n);
    }
    return true;
  });
  // The used length counts whole pieces written; a failing getrandom() (it does not fail for
  // the sizes virtio buffers can have) leaves the rest unreported.
  return static_cast<uint32_t>(std::min<uint64_t>(w.written(), UINT32_MAX));
}

base::Status RngDevice::Activate(ActivateContext ctx) {
  Reset();
  CROSVM_ASSIGN_OR_RETURN(worker_, StartSingleQueueWorker(DebugName(), std::move(ctx),
                                                          [this](const memory::GuestMemory& mem,
                                                                 const DescriptorChain& chain) {
                                                            uint32_t n = FillChain(mem, chain);
                                                            requests_.fetch_add(1);
                                                            bytes_.fetch_add(n);
                                                            return n;
                                                          }));
  return base::Ok();
}

void RngDevice::Reset() {
  worker_.reset();
}

}  // namespace crosvm::devices::virtio
