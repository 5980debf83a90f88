// Transparency: the real virtio PCI transport with virtio-rng, behind PciRoot, driven the way a
// guest driver would, with the device on the far side of a ProxyDevice: its server on a thread,
// or in a fork()ed child (which shares guest memory and the eventfds, as a jailed device
// process does). The VM side's FakeVmControl sees the effects: ioeventfds when the BAR is
// mapped, MSI routes when the driver programs the MSI-X table.
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include "devices/bus.h"
#include "devices/pci/address_allocator.h"
#include "devices/pci/gsi_router.h"
#include "devices/pci/pci_root.h"
#include "devices/pci/tests/fake_vm_control.h"
#include "devices/proxy/device_server.h"
#include "devices/proxy/effects.h"
#include "devices/proxy/proxy_device.h"
#include "devices/virtio/rng.h"
#include "devices/virtio/tests/test_driver.h"
#include "devices/virtio/virtio.h"
#include "devices/virtio/virtio_pci.h"

namespace crosvm::devices::proxy {
namespace {

using ::testing::HasSubstr;
using virtio::testing::MakeTestMemory;
using virtio::testing::TestQueue;
namespace v = virtio;

constexpr uint64_t kRings = 0x1000;
constexpr uint64_t kData = 0x100000;
constexpr uint32_t kMsiAddr = 0xfee00000;

bool Readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, 0) == 1;
}

template <typename Pred>
bool WaitFor(Pred pred) {
  for (int i = 0; i < 2000; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return pred();
}

enum class Mode { kThread, kFork };

class TransparencyTest : public ::testing::TestWithParam<Mode> {
 protected:
  void SetUp() override {
    auto d = v::VirtioPciDevice::Create(std::make_unique<v::RngDevice>(), &mem_, &dvm_, &drouter_);
    ASSERT_TRUE(d.ok()) << d.error().ToString();
    dev_ = *d;
    // MSI-X took its GSIs and irqfds in the VM process, before the "jail".
    ASSERT_EQ(vm_.irqfds.size(), 2u);
    auto pair = Channel::CreatePair();
    ASSERT_TRUE(pair.ok());
    if (GetParam() == Mode::kFork) {
      pid_ = fork();
      ASSERT_GE(pid_, 0);
      if (pid_ == 0) {
        // The device process: never returns into the test.
        pair->first = Channel();
        dvm_.UseRecorder(&recorder_);
        drouter_.UseRecorder(&recorder_);
        DeviceServer server(std::move(pair->second), dev_.get(), &recorder_,
                            [this] { dev_->Shutdown(); });
        auto s = server.Run();
        _exit(s.ok() ? 0 : 1);
      }
      pair->second = Channel();  // else the child's death would not end the stream
    } else {
      dvm_.UseRecorder(&recorder_);
      drouter_.UseRecorder(&recorder_);
      server_ = std::make_unique<DeviceServer>(std::move(pair->second), dev_.get(), &recorder_,
                                               [this] { dev_->Shutdown(); });
      thread_ = std::thread([this] { server_status_ = server_->Run(); });
    }
    auto p = ProxyDevice::Create(dev_->DebugName(), std::move(pair->first), &vm_, &router_,
                                 [this](const std::string& why) {
                                   failures_++;
                                   failure_ = why;
                                 });
    ASSERT_TRUE(p.ok()) << p.error().ToString();
    proxy_ = *p;
    auto alloc = pci::CreateX86SystemAllocator(virtio::testing::kTestMemSize);
    ASSERT_TRUE(alloc.ok());
    alloc_.emplace(std::move(alloc).value());
    auto slot = root_.AddDevice(proxy_, *alloc_);
    ASSERT_TRUE(slot.ok()) << slot.error().ToString();
    slot_ = *slot;
    bar_ = proxy_->BarAddress(0);
  }

  void TearDown() override {
    root_.UnmapAll();
    if (proxy_ && !proxy_->failed()) {
      EXPECT_TRUE(proxy_->Shutdown().ok());
    }
    proxy_.reset();
    if (thread_.joinable()) thread_.join();
    if (pid_ > 0) {
      int status = 0;
      ASSERT_EQ(waitpid(pid_, &status, 0), pid_);
      if (!killed_) {
        EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
      }
    }
  }

  uint32_t Cfg(size_t reg) { return root_.ReadConfig(0, slot_, 0, reg); }
  void SetCfg(size_t reg, size_t offset, uint32_t value, size_t len) {
    root_.WriteConfig(0, slot_, 0, reg, offset, {reinterpret_cast<uint8_t*>(&value), len});
  }
  uint64_t Read(uint64_t off, size_t size) {
    uint64_t value = 0;
    EXPECT_TRUE(mmio_.Read(bar_ + off, {reinterpret_cast<uint8_t*>(&value), size}));
    return value;
  }
  void Write(uint64_t off, size_t size, uint64_t value) {
    EXPECT_TRUE(mmio_.Write(bar_ + off, {reinterpret_cast<uint8_t*>(&value), size}));
  }
  void EnableMsix() {
    for (uint32_t p = Cfg(pci::kCapabilityPointer / 4) & 0xff; p != 0;) {
      uint32_t head = Cfg(p / 4);
      if ((head & 0xff) == pci::kCapIdMsix) {
        SetCfg(p / 4, 2, pci::kMsixEnable, 2);
        return;
      }
      p = (head >> 8) & 0xff;
    }
    FAIL() << "no MSI-X capability";
  }
  void ProgramVector(uint16_t vec, uint32_t data) {
    Write(v::kMsixTableOffset + 16u * vec, 4, kMsiAddr);
    Write(v::kMsixTableOffset + 16u * vec + 4, 4, 0);
    Write(v::kMsixTableOffset + 16u * vec + 8, 4, data);
    Write(v::kMsixTableOffset + 16u * vec + 12, 4, 0);  // unmasked
  }
  std::optional<kvm_irq_routing_entry> MsiRoute(uint32_t data) {
    std::lock_guard lock(vm_.mu);
    for (const auto& e : vm_.routing) {
      if (e.type == KVM_IRQ_ROUTING_MSI && e.u.msi.data == data) return e;
    }
    return std::nullopt;
  }
  int IrqfdFor(uint32_t gsi) {
    for (const auto& i : vm_.irqfds) {
      if (i.gsi == gsi) return i.fd;
    }
    return -1;
  }

  // The VM process.
  memory::GuestMemory mem_ = MakeTestMemory();
  pci::FakeVmControl vm_;
  pci::GsiRouter router_{&vm_};
  // Handed to the device at Create; recording once it is "jailed". The recorder outlives the
  // device (its destructor still unregisters through them).
  EffectRecorder recorder_;
  DeviceVmControl dvm_{&vm_};
  DeviceMsiRouter drouter_{&router_};
  std::shared_ptr<v::VirtioPciDevice> dev_;
  std::unique_ptr<DeviceServer> server_;
  std::thread thread_;
  base::Status server_status_ = base::Ok();
  pid_t pid_ = -1;
  bool killed_ = false;
  std::shared_ptr<ProxyDevice> proxy_;
  std::atomic<int> failures_{0};
  std::string failure_;
  Bus mmio_{"mmio"}, io_{"io"};
  pci::PciRoot root_{&mmio_, &io_};
  std::optional<pci::SystemAllocator> alloc_;
  uint8_t slot_ = 0;
  uint64_t bar_ = 0;
};

TEST_P(TransparencyTest, RngRequestRoundTripWithIoeventfdAndMsix) {
  EXPECT_EQ(Cfg(0) & 0xffff, v::kPciVendorId);
  EXPECT_EQ(Cfg(0) >> 16, v::kPciDeviceIdBase + v::kTypeRng);
  // INTx was wired through the proxy: an irqfd with a resample fd, applied as an effect.
  ASSERT_EQ(vm_.irqfds.size(), 3u);
  EXPECT_TRUE(vm_.irqfds[2].resample.has_value());
  EXPECT_TRUE(vm_.ioeventfds.empty()) << "no decoding yet";

  // The driver enables decoding: PciRoot maps the BAR and the ioeventfd follows.
  SetCfg(pci::kCommand / 4, 0, pci::kCommandMemory | pci::kCommandMaster, 2);
  ASSERT_EQ(vm_.ioeventfds.size(), 1u);
  const auto ioevt = *vm_.ioeventfds.begin();
  EXPECT_EQ(ioevt.addr, bar_ + v::kNotifyOffset);
  EXPECT_EQ(ioevt.len, 2u);
  EXPECT_EQ(Read(v::kNumQueues, 2), 1u);

  // MSI-X: routes are installed when the table is programmed.
  EnableMsix();
  int updates = vm_.routing_updates;
  ProgramVector(0, 0x4041);
  ProgramVector(1, 0x4042);
  EXPECT_GT(vm_.routing_updates, updates);
  auto route = MsiRoute(0x4041);
  ASSERT_TRUE(route.has_value());
  EXPECT_EQ(route->u.msi.address_lo, kMsiAddr);
  ASSERT_TRUE(MsiRoute(0x4042).has_value());

  // Feature negotiation and the queue, through the BAR.
  Write(v::kDeviceStatus, 1, v::kStatusAcknowledge | v::kStatusDriver);
  Write(v::kDriverFeatureSelect, 4, 1);
  Write(v::kDriverFeature, 4, 1);  // VIRTIO_F_VERSION_1
  Write(v::kDeviceStatus, 1, v::kStatusAcknowledge | v::kStatusDriver | v::kStatusFeaturesOk);
  ASSERT_EQ(Read(v::kDeviceStatus, 1) & v::kStatusFeaturesOk, v::kStatusFeaturesOk);
  TestQueue tq(mem_, kRings, 64);
  Write(v::kMsixConfig, 2, 1);
  Write(v::kQueueSelect, 2, 0);
  Write(v::kQueueSize, 2, 64);
  Write(v::kQueueDesc, 8, tq.desc_addr());
  Write(v::kQueueDriver, 8, tq.avail_addr());
  Write(v::kQueueDevice, 8, tq.used_addr());
  Write(v::kQueueMsixVector, 2, 0);
  EXPECT_EQ(Read(v::kQueueMsixVector, 2), 0u);
  Write(v::kQueueEnable, 2, 1);
  Write(v::kDeviceStatus, 1,
        v::kStatusAcknowledge | v::kStatusDriver | v::kStatusFeaturesOk | v::kStatusDriverOk);
  EXPECT_EQ(Read(v::kDeviceStatus, 1) & v::kStatusDriverOk, v::kStatusDriverOk);

  // One entropy request. The notification takes the fast path: KVM would write the
  // ioeventfd the VM process holds.
  const int updates_before_request = vm_.routing_updates;
  tq.WriteChain(0, {{kData, 32, true}});
  tq.Publish(0);
  uint64_t one = 1;
  ASSERT_EQ(write(ioevt.fd, &one, 8), 8);
  ASSERT_TRUE(WaitFor([&] { return tq.UsedIdx() == 1; }));
  EXPECT_EQ(tq.UsedElem(0), std::make_pair(0u, 32u));
  // The interrupt: the vector's irqfd (on the routed GSI) fires, without any route change.
  int irqfd = IrqfdFor(route->gsi);
  ASSERT_GE(irqfd, 0);
  EXPECT_TRUE(WaitFor([&] { return Readable(irqfd); }));
  EXPECT_EQ(vm_.routing_updates, updates_before_request);

  // The driver turns decoding off: the ioeventfd goes.
  SetCfg(pci::kCommand / 4, 0, pci::kCommandMaster, 2);
  EXPECT_TRUE(vm_.ioeventfds.empty());
  EXPECT_EQ(failures_, 0);
}

TEST_P(TransparencyTest, DeviceDeathGivesAllOnesAndOneFailure) {
  SetCfg(pci::kCommand / 4, 0, pci::kCommandMemory | pci::kCommandMaster, 2);
  EXPECT_EQ(Read(v::kNumQueues, 2), 1u);
  if (GetParam() == Mode::kFork) {
    ASSERT_EQ(kill(pid_, SIGKILL), 0);
    killed_ = true;
  } else {
    server_->channel().Shutdown();
  }
  EXPECT_EQ(Read(v::kNumQueues, 2), 0xffffu);
  EXPECT_EQ(Cfg(0), 0xffffffffu);
  Write(v::kDeviceStatus, 1, v::kStatusAcknowledge);  // dropped, and does not hang
  EXPECT_EQ(failures_, 1);
  EXPECT_THAT(failure_, HasSubstr("virtio-rng"));
  EXPECT_TRUE(proxy_->failed());
}

INSTANTIATE_TEST_SUITE_P(Modes, TransparencyTest, ::testing::Values(Mode::kThread, Mode::kFork),
                         [](const auto& info) {
                           return info.param == Mode::kThread ? std::string("Thread")
                                                              : std::string("Fork");
                         });

}  // namespace
}  // namespace crosvm::devices::proxy
