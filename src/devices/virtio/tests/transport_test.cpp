// The virtio PCI transport driven through its configuration space and BAR, the way a guest
// driver would: capabilities, feature negotiation, the status machine, queue setup limits,
// reset, notifications, ISR/INTx and MSI-X interrupts, DEVICE_NEEDS_RESET.
#include "devices/virtio/virtio_pci.h"

#include <poll.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <thread>

#include "devices/bus.h"
#include "devices/pci/gsi_router.h"
#include "devices/pci/pci_root.h"
#include "devices/pci/tests/fake_vm_control.h"
#include "devices/virtio/rng.h"
#include "devices/virtio/tests/test_driver.h"
#include "devices/virtio/virtio.h"

namespace crosvm::devices::virtio {
namespace {

using testing::MakeTestMemory;
using testing::TestQueue;

constexpr uint64_t kRings = 0x1000;
constexpr uint64_t kData = 0x100000;

// A device with a small configuration space and two queues, that records its activations.
class FakeDevice : public VirtioDevice {
 public:
  uint32_t DeviceType() const override { return 42; }
  std::string DebugName() const override { return "fake"; }
  uint32_t PciClassCode() const override { return pci::kClassOther; }
  std::vector<uint16_t> QueueMaxSizes() const override { return {64, 16}; }
  uint64_t Features() const override { return Bit(3) | Bit(kFeatureRingEventIdx); }
  void ReadConfig(uint64_t offset, std::span<uint8_t> data) const override {
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(0xa0 + offset + i);
  }
  base::Status Activate(ActivateContext ctx) override {
    ++activations;
    last = std::move(ctx);
    return base::Ok();
  }
  void Reset() override { ++resets; }
  uint32_t ConfigGeneration() const override { return generation; }
  uint32_t generation = 0;
  int activations = 0;
  int resets = 0;
  ActivateContext last;
};

class TransportTest : public ::testing::Test {
 protected:
  void SetUpWith(std::unique_ptr<VirtioDevice> device, bool msix = true) {
    router_ = std::make_unique<pci::GsiRouter>(&vm_);
    auto d = VirtioPciDevice::Create(std::move(device), &mem_, &vm_, router_.get(), msix);
    ASSERT_TRUE(d.ok()) << d.error().ToString();
    dev_ = *d;
    // A driver enables memory decoding and bus mastering before it sets the device up.
    SetCommand(pci::kCommandMemory | pci::kCommandMaster);
  }
  void SetCommand(uint16_t cmd) {
    dev_->WriteConfigRegister(pci::kCommand / 4, 0, {reinterpret_cast<uint8_t*>(&cmd), 2});
  }
  void SetUp() override { SetUpWith(std::make_unique<FakeDevice>()); }
  FakeDevice* fake() { return static_cast<FakeDevice*>(dev_->device()); }

  uint64_t Read(uint64_t offset, size_t size) {
    uint8_t buf[8] = {};
    dev_->ReadBar(0, offset, {buf, size});
    uint64_t v = 0;
    std::memcpy(&v, buf, size);
    return v;
  }
  void Write(uint64_t offset, size_t size, uint64_t v) {
    uint8_t buf[8];
    std::memcpy(buf, &v, 8);
    dev_->WriteBar(0, offset, {buf, size});
  }
  uint8_t Status() { return static_cast<uint8_t>(Read(kDeviceStatus, 1)); }
  void SetStatus(uint8_t s) { Write(kDeviceStatus, 1, s); }
  uint64_t DeviceFeatures() {
    Write(kDeviceFeatureSelect, 4, 0);
    uint64_t f = Read(kDeviceFeature, 4);
    Write(kDeviceFeatureSelect, 4, 1);
    return f | (Read(kDeviceFeature, 4) << 32);
  }
  void SetDriverFeatures(uint64_t f) {
    Write(kDriverFeatureSelect, 4, 0);
    Write(kDriverFeature, 4, f & 0xffffffff);
    Write(kDriverFeatureSelect, 4, 1);
    Write(kDriverFeature, 4, f >> 32);
  }
  // Up to FEATURES_OK with `features`; returns the status read back.
  uint8_t Negotiate(uint64_t features) {
    SetStatus(0);
    SetStatus(kStatusAcknowledge);
    SetStatus(kStatusAcknowledge | kStatusDriver);
    SetDriverFeatures(features);
    SetStatus(kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk);
    return Status();
  }
  void SetupQueue(uint16_t index, const TestQueue& tq) {
    Write(kQueueSelect, 2, index);
    Write(kQueueSize, 2, tq.size());
    Write(kQueueDesc, 4, tq.desc_addr());
    Write(kQueueDesc + 4, 4, 0);
    Write(kQueueDriver, 4, tq.avail_addr());
    Write(kQueueDriver + 4, 4, 0);
    Write(kQueueDevice, 4, tq.used_addr());
    Write(kQueueDevice + 4, 4, 0);
    Write(kQueueEnable, 2, 1);
  }
  static constexpr uint8_t kOk =
      kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk | kStatusDriverOk;

  memory::GuestMemory mem_ = MakeTestMemory();
  pci::FakeVmControl vm_;
  std::unique_ptr<pci::GsiRouter> router_;
  std::shared_ptr<VirtioPciDevice> dev_;
};

// Waits until `pred` holds (the device works on its own thread).
template <typename Pred>
bool WaitFor(Pred pred) {
  for (int i = 0; i < 2000; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return pred();
}

bool Readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, 0) == 1;
}

uint64_t Drain(int fd) {
  uint64_t v = 0;
  if (read(fd, &v, 8) != 8) return 0;
  return v;
}

TEST_F(TransportTest, PciIdentity) {
  uint32_t id = dev_->ReadConfigRegister(0);
  EXPECT_EQ(id & 0xffff, kPciVendorId);
  EXPECT_EQ(id >> 16, kPciDeviceIdBase + 42);
  uint32_t class_rev = dev_->ReadConfigRegister(2);
  EXPECT_EQ(class_rev & 0xff, 1u) << "revision 1: modern only";
  EXPECT_EQ(class_rev >> 8, pci::kClassOther);
  uint32_t subsys = dev_->ReadConfigRegister(0x2c / 4);
  EXPECT_EQ(subsys & 0xffff, kPciVendorId);
  EXPECT_GE(subsys >> 16, 0x40u);
}

TEST_F(TransportTest, CapabilitiesDescribeTheBar) {
  auto byte = [&](size_t off) {
    return static_cast<uint8_t>(dev_->ReadConfigRegister(off / 4) >> (8 * (off % 4)));
  };
  auto dword = [&](size_t off) { return dev_->ReadConfigRegister(off / 4); };
  EXPECT_TRUE(dword(4) & (pci::kStatusCapList << 16));
  std::map<uint8_t, std::pair<uint32_t, uint32_t>> virtio_caps;  // type -> (offset, length)
  bool msix = false;
  uint32_t notify_mult = 0;
  int guard = 0;
  for (uint8_t p = byte(pci::kCapabilityPointer); p != 0 && guard < 48; p = byte(p + 1), ++guard) {
    ASSERT_GE(p, 0x40);
    ASSERT_EQ(p % 4, 0);
    if (byte(p) == pci::kCapIdVendor) {
      uint8_t type = byte(p + 3);
      EXPECT_EQ(byte(p + 4), 0) << "BAR0";
      virtio_caps[type] = {dword(p + 8), dword(p + 12)};
      if (type == kCapNotifyCfg) {
        EXPECT_EQ(byte(p + 2), 20);
        notify_mult = dword(p + 16);
      }
    } else if (byte(p) == pci::kCapIdMsix) {
      msix = true;
      uint16_t control = static_cast<uint16_t>(dword(p) >> 16);
      EXPECT_EQ((control & 0x7ff) + 1, 3) << "one vector per queue plus configuration";
      EXPECT_EQ(dword(p + 4), kMsixTableOffset);
      EXPECT_EQ(dword(p + 8), kMsixPbaOffset);
    }
  }
  EXPECT_TRUE(msix);
  EXPECT_EQ(virtio_caps[kCapCommonCfg], std::make_pair(uint32_t{0}, uint32_t{0x38}));
  EXPECT_EQ(virtio_caps[kCapIsrCfg].first, kIsrOffset);
  EXPECT_EQ(virtio_caps[kCapDeviceCfg].first, kDeviceCfgOffset);
  EXPECT_EQ(virtio_caps[kCapNotifyCfg], std::make_pair(uint32_t{kNotifyOffset}, uint32_t{8}));
  EXPECT_EQ(notify_mult, kNotifyMultiplier);
  EXPECT_TRUE(virtio_caps.count(kCapPciCfg));
}

TEST_F(TransportTest, Bar0Is64BitMemoryAndSizes) {
  uint32_t all = 0xffffffff;
  dev_->WriteConfigRegister(4, 0, {reinterpret_cast<uint8_t*>(&all), 4});
  dev_->WriteConfigRegister(5, 0, {reinterpret_cast<uint8_t*>(&all), 4});
  EXPECT_EQ(dev_->ReadConfigRegister(4), ~uint32_t{kBar0Size - 1} | 0x4);
  EXPECT_EQ(dev_->ReadConfigRegister(5), 0xffffffffu);
}

TEST_F(TransportTest, FeaturesIncludeVersion1) {
  uint64_t f = DeviceFeatures();
  EXPECT_TRUE(f & Bit(kFeatureVersion1));
  EXPECT_TRUE(f & Bit(3));
  Write(kDeviceFeatureSelect, 4, 2);
  EXPECT_EQ(Read(kDeviceFeature, 4), 0u) << "no features beyond bit 63";
}

TEST_F(TransportTest, FeaturesOkRefusedWithoutVersion1) {
  uint8_t s = Negotiate(Bit(3));
  EXPECT_FALSE(s & kStatusFeaturesOk);
  // And DRIVER_OK without FEATURES_OK starts nothing.
  SetStatus(kStatusAcknowledge | kStatusDriver | kStatusDriverOk);
  EXPECT_FALSE(Status() & kStatusDriverOk);
  EXPECT_EQ(fake()->activations, 0);
}

TEST_F(TransportTest, FeaturesOkRefusedForFeaturesNotOffered) {
  EXPECT_FALSE(Negotiate(Bit(kFeatureVersion1) | Bit(7)) & kStatusFeaturesOk);
}

TEST_F(TransportTest, FeaturesOkAcceptedAndFeaturesFrozen) {
  EXPECT_TRUE(Negotiate(Bit(kFeatureVersion1) | Bit(3)) & kStatusFeaturesOk);
  SetDriverFeatures(Bit(kFeatureVersion1));  // too late: ignored
  Write(kDriverFeatureSelect, 4, 0);
  EXPECT_EQ(Read(kDriverFeature, 4), Bit(3));
}

TEST_F(TransportTest, StatusBitsCannotBeCleared) {
  Negotiate(Bit(kFeatureVersion1));
  SetStatus(kStatusAcknowledge);
  EXPECT_EQ(Status(), kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk);
}

TEST_F(TransportTest, QueueSizeNegotiation) {
  Write(kQueueSelect, 2, 0);
  EXPECT_EQ(Read(kQueueSize, 2), 64u) << "the maximum, after reset";
  EXPECT_EQ(Read(kNumQueues, 2), 2u);
  Write(kQueueSize, 2, 32);
  EXPECT_EQ(Read(kQueueSize, 2), 32u);
  for (uint64_t bad : {0, 24, 128, 65535}) {
    Write(kQueueSize, 2, bad);
    EXPECT_EQ(Read(kQueueSize, 2), 32u) << bad << " is refused";
  }
  Write(kQueueSelect, 2, 1);
  EXPECT_EQ(Read(kQueueSize, 2), 16u);
  EXPECT_EQ(Read(kQueueNotifyOff, 2), 1u);
  Write(kQueueSelect, 2, 7);
  EXPECT_EQ(Read(kQueueSize, 2), 0u) << "no queue 7";
  Write(kQueueSize, 2, 4);  // ignored
  EXPECT_EQ(Read(kQueueEnable, 2), 0u);
}

TEST_F(TransportTest, QueueEnableChecksTheRings) {
  Negotiate(Bit(kFeatureVersion1));
  Write(kQueueSelect, 2, 0);
  Write(kQueueDesc, 4, 0xfff00000);  // outside the 4 MiB of RAM
  Write(kQueueEnable, 2, 1);
  EXPECT_EQ(Read(kQueueEnable, 2), 0u);
  Write(kQueueDesc, 4, kRings + 8);  // misaligned
  Write(kQueueEnable, 2, 1);
  EXPECT_EQ(Read(kQueueEnable, 2), 0u);
  TestQueue tq(mem_, kRings, 64);
  SetupQueue(0, tq);
  EXPECT_EQ(Read(kQueueEnable, 2), 1u);
  EXPECT_EQ(Read(kQueueDesc, 8), kRings) << "64-bit access";
  // Enabled queues are frozen.
  Write(kQueueSize, 2, 8);
  EXPECT_EQ(Read(kQueueSize, 2), 64u);
}

TEST_F(TransportTest, MsixVectorsOutOfRangeReadBackNoVector) {
  Write(kMsixConfig, 2, 2);
  EXPECT_EQ(Read(kMsixConfig, 2), 2u);
  Write(kMsixConfig, 2, 3);
  EXPECT_EQ(Read(kMsixConfig, 2), kNoVector);
  Write(kQueueSelect, 2, 1);
  Write(kQueueMsixVector, 2, 1);
  EXPECT_EQ(Read(kQueueMsixVector, 2), 1u);
  Write(kQueueMsixVector, 2, 1000);
  EXPECT_EQ(Read(kQueueMsixVector, 2), kNoVector);
}

TEST_F(TransportTest, OddAccessesAreIgnored) {
  EXPECT_EQ(Read(kDeviceStatus - 1, 4), 0u) << "straddles fields";
  Write(kQueueSelect + 1, 1, 1);  // half a field
  EXPECT_EQ(Read(kQueueSelect, 2), 0u);
  EXPECT_EQ(Read(kBar0Size - 2, 4), 0u) << "runs off the BAR";
  Write(kBar0Size + 100, 4, 1);
  Write(0x7ff0, 8, 0);
}

TEST_F(TransportTest, DeviceConfigurationIsReadThroughTheBar) {
  EXPECT_EQ(Read(kDeviceCfgOffset, 1), 0xa0u);
  EXPECT_EQ(Read(kDeviceCfgOffset + 2, 2), 0xa3a2u);
}

TEST_F(TransportTest, ConfigGenerationComesFromTheDevice) {
  EXPECT_EQ(Read(kConfigGeneration, 1), 0u);
  fake()->generation = 3;
  EXPECT_EQ(Read(kConfigGeneration, 1), 3u);
  fake()->generation = 0x101;  // wraps in the 8-bit register
  EXPECT_EQ(Read(kConfigGeneration, 1), 1u);
}

TEST_F(TransportTest, DriverOkActivatesEnabledQueuesAndResetStops) {
  TestQueue tq(mem_, kRings, 64);
  Negotiate(Bit(kFeatureVersion1) | Bit(kFeatureRingEventIdx));
  SetupQueue(0, tq);
  Write(kQueueSelect, 2, 0);
  Write(kQueueMsixVector, 2, 1);
  SetStatus(kOk);
  EXPECT_EQ(Status(), kOk);
  ASSERT_EQ(fake()->activations, 1);
  const ActivateContext& ctx = fake()->last;
  EXPECT_EQ(ctx.features, Bit(kFeatureVersion1) | Bit(kFeatureRingEventIdx));
  ASSERT_EQ(ctx.queues.size(), 2u);
  EXPECT_TRUE(ctx.queues[0].ready);
  EXPECT_TRUE(ctx.queues[0].event_idx());
  EXPECT_EQ(ctx.queues[0].msix_vector, 1);
  EXPECT_FALSE(ctx.queues[1].ready);
  EXPECT_EQ(ctx.queue_fds[0], dev_->queue_event_fd(0));

  // Queue configuration is frozen while the device runs.
  Write(kQueueSelect, 2, 1);
  Write(kQueueEnable, 2, 1);
  EXPECT_EQ(Read(kQueueEnable, 2), 0u);

  SetStatus(0);
  EXPECT_EQ(fake()->resets, 1);
  EXPECT_EQ(Status(), 0);
  Write(kQueueSelect, 2, 0);
  EXPECT_EQ(Read(kQueueEnable, 2), 0u);
  EXPECT_EQ(Read(kQueueSize, 2), 64u);
  EXPECT_EQ(Read(kQueueMsixVector, 2), kNoVector);
  Write(kDriverFeatureSelect, 4, 1);
  EXPECT_EQ(Read(kDriverFeature, 4), 0u);
}

TEST_F(TransportTest, NotifyWritesSignalTheQueueEventfd) {
  Write(kNotifyOffset + 4, 2, 1);
  EXPECT_TRUE(Readable(dev_->queue_event_fd(1)));
  EXPECT_FALSE(Readable(dev_->queue_event_fd(0)));
  Write(kNotifyOffset + 8, 2, 2);  // no queue 2: ignored
}

TEST_F(TransportTest, IoeventfdsFollowTheBarMapping) {
  dev_->OnBarMapped(0, 0xd0000000);
  EXPECT_EQ(vm_.ioeventfds.size(), 2u);
  EXPECT_TRUE(vm_.ioeventfds.count(
      {dev_->queue_event_fd(1), 0xd0000000 + kNotifyOffset + 4, 2, false, std::nullopt}));
  dev_->OnBarMapped(0, 0xe0000000);  // moved
  EXPECT_EQ(vm_.ioeventfds.size(), 2u);
  EXPECT_TRUE(vm_.ioeventfds.count(
      {dev_->queue_event_fd(0), 0xe0000000 + kNotifyOffset, 2, false, std::nullopt}));
  dev_->OnBarUnmapped(0, 0xe0000000);
  EXPECT_TRUE(vm_.ioeventfds.empty());
}

TEST_F(TransportTest, BarMovesThroughPciRootMoveTheIoeventfds) {
  Bus mmio("mmio"), io("io");
  pci::PciRoot root(&mmio, &io);
  auto alloc = pci::CreateX86SystemAllocator(testing::kTestMemSize);
  ASSERT_TRUE(alloc.ok());
  auto slot = root.AddDevice(dev_, *alloc);
  ASSERT_TRUE(slot.ok());
  uint64_t bar = dev_->BarAddress(0);
  EXPECT_TRUE(vm_.ioeventfds.empty()) << "decoding is off until the guest enables it";
  uint16_t cmd = pci::kCommandMemory;
  root.WriteConfig(0, *slot, 0, 1, 0, {reinterpret_cast<uint8_t*>(&cmd), 2});
  ASSERT_EQ(vm_.ioeventfds.size(), 2u);
  EXPECT_EQ(vm_.ioeventfds.begin()->addr & ~uint64_t{0xffff}, bar);
  // The guest moves the BAR: MMIO accesses and ioeventfds follow.
  uint32_t lo = 0xe0000000;
  root.WriteConfig(0, *slot, 0, 4, 0, {reinterpret_cast<uint8_t*>(&lo), 4});
  EXPECT_EQ(mmio.DeviceAt(bar), nullptr);
  EXPECT_NE(mmio.DeviceAt(0xe0000000), nullptr);
  for (const auto& e : vm_.ioeventfds) EXPECT_EQ(e.addr & ~uint64_t{0xffff}, 0xe0000000u);
  // Through the bus: the common configuration answers at the new place.
  uint8_t buf[2] = {};
  mmio.Read(0xe0000000 + kNumQueues, {buf, 2});
  EXPECT_EQ(buf[0], 2);
}

// --- Interrupts ---------------------------------------------------------------------------

class InterruptTest : public TransportTest {
 protected:
  void SetUp() override { SetUpWith(std::make_unique<RngDevice>()); }

  void StartRng(bool use_vectors) {
    Negotiate(Bit(kFeatureVersion1));
    SetupQueue(0, tq_);
    if (use_vectors) {
      Write(kMsixConfig, 2, 1);
      Write(kQueueSelect, 2, 0);
      Write(kQueueMsixVector, 2, 0);
    }
    SetStatus(kOk);
    ASSERT_TRUE(dev_->active());
  }
  // One 32-byte entropy request; waits for the device to use it.
  void Request() {
    uint16_t before = tq_.UsedIdx();
    tq_.WriteChain(0, {{kData, 32, true}});
    tq_.Publish(0);
    Write(kNotifyOffset, 2, 0);
    ASSERT_TRUE(WaitFor([&] { return tq_.UsedIdx() != before; }));
  }
  void EnableMsix(bool function_mask = false) {
    // The capability's message control: find it and set the enable bit.
    for (uint32_t p = dev_->ReadConfigRegister(0x34 / 4) & 0xff; p != 0;) {
      uint32_t head = dev_->ReadConfigRegister(p / 4);
      if ((head & 0xff) == pci::kCapIdMsix) {
        uint16_t control =
            static_cast<uint16_t>(pci::kMsixEnable | (function_mask ? pci::kMsixFunctionMask : 0));
        dev_->WriteConfigRegister(p / 4, 2, {reinterpret_cast<uint8_t*>(&control), 2});
        return;
      }
      p = (head >> 8) & 0xff;
    }
    FAIL() << "no MSI-X capability";
  }
  void ProgramVector(uint16_t v, uint32_t data, bool masked) {
    Write(kMsixTableOffset + 16u * v, 4, 0xfee00000);
    Write(kMsixTableOffset + 16u * v + 4, 4, 0);
    Write(kMsixTableOffset + 16u * v + 8, 4, data);
    Write(kMsixTableOffset + 16u * v + 12, 4, masked ? 1 : 0);
  }

  TestQueue tq_{mem_, kRings, 64};
};

TEST_F(InterruptTest, IntxSetsIsrAndRaisesTheLine) {
  ASSERT_TRUE(dev_->AssignIntx(17).ok());
  ASSERT_EQ(vm_.irqfds.size(), 3u) << "2 MSI-X vectors (queue, configuration) and INTx";
  EXPECT_EQ(vm_.irqfds.back().gsi, 17u);
  EXPECT_EQ(vm_.irqfds.back().resample, dev_->interrupt()->resample_fd());
  EXPECT_EQ(dev_->ReadConfigRegister(0x3c / 4) & 0xffff, 0x0111u) << "line 17, pin INTA#";
  StartRng(false);
  Request();
  int fd = dev_->interrupt()->intx_fd();
  ASSERT_TRUE(WaitFor([&] { return Readable(fd); }));
  Drain(fd);
  EXPECT_EQ(Read(kIsrOffset, 1), kIsrQueue);
  EXPECT_EQ(Read(kIsrOffset, 1), 0u) << "reading the ISR clears it";
  // EOI with the ISR clear: the line stays low.
  dev_->interrupt()->Resample();
  EXPECT_FALSE(Readable(fd));
}

TEST_F(InterruptTest, ResampleRaisesTheLineAgainWhileIsrIsSet) {
  StartRng(false);
  Request();
  int fd = dev_->interrupt()->intx_fd();
  ASSERT_TRUE(WaitFor([&] { return Readable(fd); }));
  Drain(fd);
  // The guest EOIs without reading the ISR: KVM signals the resample fd and the line must go
  // up again.
  uint64_t one = 1;
  ASSERT_EQ(write(dev_->interrupt()->resample_fd(), &one, 8), 8);
  EXPECT_TRUE(WaitFor([&] { return Readable(fd); }));
}

TEST_F(InterruptTest, IntxDisableBitHoldsTheLine) {
  SetCommand(pci::kCommandMemory | pci::kCommandMaster | pci::kCommandIntxDisable);
  StartRng(false);
  Request();
  int fd = dev_->interrupt()->intx_fd();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(Readable(fd));
  SetCommand(pci::kCommandMemory | pci::kCommandMaster);
  EXPECT_TRUE(Readable(fd)) << "pending interrupt delivered when INTx is re-enabled";
}

TEST_F(InterruptTest, MsixVectorFiresThroughItsIrqfdAndRoute) {
  EnableMsix();
  ProgramVector(0, 0x4041, false);
  StartRng(true);
  Request();
  int fd = dev_->msix()->vector_fd(0);
  ASSERT_TRUE(WaitFor([&] { return Readable(fd); }));
  EXPECT_EQ(Read(kIsrOffset, 1), 0u) << "no ISR with MSI-X";
  EXPECT_FALSE(Readable(dev_->interrupt()->intx_fd()));
  // The route for the vector's GSI carries the programmed message.
  bool found = false;
  for (const auto& e : vm_.routing) {
    if (e.type == KVM_IRQ_ROUTING_MSI && e.u.msi.data == 0x4041) {
      found = e.u.msi.address_lo == 0xfee00000;
    }
  }
  EXPECT_TRUE(found);
}

TEST_F(InterruptTest, MaskedMsixVectorIsPendingUntilUnmasked) {
  EnableMsix();
  ProgramVector(0, 0x30, true);
  StartRng(true);
  Request();
  int fd = dev_->msix()->vector_fd(0);
  ASSERT_TRUE(WaitFor([&] { return dev_->msix()->pending(0); }));
  EXPECT_FALSE(Readable(fd));
  EXPECT_EQ(Read(kMsixPbaOffset, 8) & 1, 1u);
  Write(kMsixTableOffset + 12, 4, 0);  // unmask
  EXPECT_TRUE(Readable(fd));
  EXPECT_EQ(Read(kMsixPbaOffset, 8) & 1, 0u);
}

TEST_F(InterruptTest, NoVectorMeansNoInterrupt) {
  EnableMsix();
  StartRng(false);  // vectors left at NO_VECTOR
  Request();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  for (uint16_t v = 0; v < 2; ++v) EXPECT_FALSE(Readable(dev_->msix()->vector_fd(v)));
  EXPECT_FALSE(Readable(dev_->interrupt()->intx_fd()));
}

TEST_F(InterruptTest, BrokenRingSetsNeedsResetAndSignalsConfigChange) {
  EnableMsix();
  ProgramVector(1, 0x31, false);
  StartRng(true);
  tq_.SetAvailIdx(100);  // 100 entries in a 64-entry queue
  Write(kNotifyOffset, 2, 0);
  ASSERT_TRUE(WaitFor([&] { return (Status() & kStatusNeedsReset) != 0; }));
  EXPECT_TRUE(WaitFor([&] { return Readable(dev_->msix()->vector_fd(1)); }))
      << "configuration vector";
  SetStatus(0);
  EXPECT_EQ(Status(), 0) << "reset clears DEVICE_NEEDS_RESET";
  // The device works again after the driver sets it up anew.
  tq_.Clear();
  tq_.SetAvailIdx(0);
  StartRng(true);
  Request();
}

TEST_F(InterruptTest, ResetWhileBusyJoinsTheWorker) {
  StartRng(false);
  for (int i = 0; i < 20; ++i) {
    tq_.WriteChain(0, {{kData, 4096, true}});
    tq_.Publish(0);
    Write(kNotifyOffset, 2, 0);
    if (i % 5 == 4) {
      SetStatus(0);
      EXPECT_FALSE(dev_->active());
      tq_.Clear();
      StartRng(false);
    }
  }
  SetStatus(0);
}

TEST_F(InterruptTest, PciCfgCapabilityWindowReadsTheBar) {
  uint8_t cap = 0;
  for (uint32_t p = dev_->ReadConfigRegister(0x34 / 4) & 0xff; p != 0;) {
    uint32_t head = dev_->ReadConfigRegister(p / 4);
    if ((head & 0xff) == pci::kCapIdVendor && ((head >> 24) & 0xff) == kCapPciCfg) {
      cap = static_cast<uint8_t>(p);
    }
    p = (head >> 8) & 0xff;
  }
  ASSERT_NE(cap, 0);
  uint32_t offset = kNumQueues, length = 2;
  dev_->WriteConfigRegister(cap / 4 + 2, 0, {reinterpret_cast<uint8_t*>(&offset), 4});
  dev_->WriteConfigRegister(cap / 4 + 3, 0, {reinterpret_cast<uint8_t*>(&length), 4});
  EXPECT_EQ(dev_->ReadConfigRegister(cap / 4 + 4) & 0xffff, 1u) << "rng has one queue";
  // A write through the window: device status ACKNOWLEDGE.
  offset = kDeviceStatus;
  length = 1;
  dev_->WriteConfigRegister(cap / 4 + 2, 0, {reinterpret_cast<uint8_t*>(&offset), 4});
  dev_->WriteConfigRegister(cap / 4 + 3, 0, {reinterpret_cast<uint8_t*>(&length), 4});
  uint32_t data = kStatusAcknowledge;
  dev_->WriteConfigRegister(cap / 4 + 4, 0, {reinterpret_cast<uint8_t*>(&data), 4});
  EXPECT_EQ(Status(), kStatusAcknowledge);
}

// --- Bounded work, resets, bus mastering, guest-triggered logs -----------------------------

// Bus Master Enable clear: the device does no DMA (the queue is left alone) and sends no MSI;
// both resume when the driver sets it again.
TEST_F(InterruptTest, NoDmaAndNoMsiWithoutBusMastering) {
  EnableMsix();
  ProgramVector(0, 0x41, false);
  StartRng(true);
  SetCommand(pci::kCommandMemory);  // bus mastering off
  tq_.WriteChain(0, {{kData, 32, true}});
  tq_.Publish(0);
  Write(kNotifyOffset, 2, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(tq_.UsedIdx(), 0) << "no queue processing while BME is clear";
  EXPECT_FALSE(Readable(dev_->msix()->vector_fd(0)));
  SetCommand(pci::kCommandMemory | pci::kCommandMaster);
  ASSERT_TRUE(WaitFor([&] { return tq_.UsedIdx() == 1; })) << "picked up when BME is set";
  EXPECT_TRUE(WaitFor([&] { return Readable(dev_->msix()->vector_fd(0)); }));
  SetStatus(0);
}

// A second vCPU keeps the queue full for as long as it likes: the worker yields after its
// budget and checks its stop flag between requests, so a reset returns promptly.
TEST_F(InterruptTest, ResetReturnsWhileAnotherThreadKeepsTheQueueFull) {
  StartRng(false);
  for (uint16_t i = 0; i < tq_.size(); ++i) {
    tq_.SetDesc(i, kData, RngDevice::kMaxBytesPerChain, kDescFWrite, 0);
  }
  for (uint16_t i = 0; i < tq_.size(); ++i) tq_.Publish(i);
  std::atomic<bool> quit{false};
  std::thread refill([&] {
    // Every ring entry names a valid head; keep avail->idx a full ring ahead of the device.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!quit && std::chrono::steady_clock::now() < deadline) {
      tq_.SetAvailIdx(static_cast<uint16_t>(tq_.UsedIdx() + tq_.size()));
      Write(kNotifyOffset, 2, 0);
    }
  });
  ASSERT_TRUE(WaitFor([&] { return tq_.UsedIdx() > 100; }));
  auto start = std::chrono::steady_clock::now();
  SetStatus(0);
  auto took = std::chrono::steady_clock::now() - start;
  quit = true;
  refill.join();
  EXPECT_FALSE(dev_->active());
  EXPECT_LT(took, std::chrono::milliseconds(500));
}

// A device whose stop takes a while (a worker finishing a long request).
class SlowResetDevice : public FakeDevice {
 public:
  void Reset() override {
    std::this_thread::sleep_for(std::chrono::milliseconds(1000));
    FakeDevice::Reset();
  }
};

// Resetting through the VIRTIO_PCI_CAP_PCI_CFG window (a configuration write, under the PCI
// root) while another vCPU reads configuration space: the other vCPU is not held up.
TEST_F(TransportTest, ResetThroughPciCfgDoesNotStallOtherVcpus) {
  SetUpWith(std::make_unique<SlowResetDevice>());
  Bus mmio("mmio"), io("io");
  pci::PciRoot root(&mmio, &io);
  auto alloc = pci::CreateX86SystemAllocator(testing::kTestMemSize);
  ASSERT_TRUE(alloc.ok());
  auto slot = root.AddDevice(dev_, *alloc);
  ASSERT_TRUE(slot.ok());
  Negotiate(Bit(kFeatureVersion1));
  SetStatus(kOk);
  ASSERT_TRUE(dev_->active());

  uint8_t cap = 0;
  for (uint32_t p = dev_->ReadConfigRegister(0x34 / 4) & 0xff; p != 0;) {
    uint32_t head = dev_->ReadConfigRegister(p / 4);
    if ((head & 0xff) == pci::kCapIdVendor && ((head >> 24) & 0xff) == kCapPciCfg) {
      cap = static_cast<uint8_t>(p);
    }
    p = (head >> 8) & 0xff;
  }
  ASSERT_NE(cap, 0);
  uint32_t offset = kDeviceStatus, length = 1, zero = 0;
  root.WriteConfig(0, *slot, 0, cap / 4 + 2, 0, {reinterpret_cast<uint8_t*>(&offset), 4});
  root.WriteConfig(0, *slot, 0, cap / 4 + 3, 0, {reinterpret_cast<uint8_t*>(&length), 4});

  std::atomic<bool> resetting{true};
  std::thread vcpu0([&] {
    root.WriteConfig(0, *slot, 0, cap / 4 + 4, 0, {reinterpret_cast<uint8_t*>(&zero), 4});
    resetting = false;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // vcpu0 is in the reset now
  auto worst = std::chrono::steady_clock::duration::zero();
  int accesses = 0;
  while (resetting) {
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(root.ReadConfig(0, 0, 0, 0) & 0xffff, 0x1b36u) << "host bridge";
    (void)root.ReadConfig(0, *slot, 0, 0);
    (void)Status();  // the device's own registers answer too (the old status, until done)
    worst = std::max(worst, std::chrono::steady_clock::now() - t0);
    ++accesses;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  vcpu0.join();
  EXPECT_GT(accesses, 10);
  EXPECT_LT(worst, std::chrono::milliseconds(300)) << "held up behind the reset (1 s)";
  EXPECT_EQ(Status(), 0);
  EXPECT_FALSE(dev_->active());
}

size_t CountLines(const std::string& s) {
  return static_cast<size_t>(std::count(s.begin(), s.end(), '\n'));
}

// Every log line the driver can trigger is rate-limited.
TEST_F(TransportTest, TenThousandBadAccessesGiveABoundedNumberOfLines) {
  Negotiate(Bit(kFeatureVersion1));
  ::testing::internal::CaptureStderr();
  for (int i = 0; i < 10000; ++i) {
    Write(kQueueSelect, 2, 0);
    Write(kQueueSize, 2, 3);        // not a power of two
    Write(kQueueEnable, 2, 1);      // rings at 0: not enabled
    SetStatus(kStatusAcknowledge);  // clearing bits
    SetStatus(kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk | kStatusDriverOk | 0x40);
  }
  std::string out = ::testing::internal::GetCapturedStderr();
  EXPECT_LE(CountLines(out), 20u) << out.substr(0, 2000);
}

TEST_F(TransportTest, BarOverlapLogsAreRateLimited) {
  Bus mmio("mmio"), io("io");
  pci::PciRoot root(&mmio, &io);
  auto alloc = pci::CreateX86SystemAllocator(testing::kTestMemSize);
  ASSERT_TRUE(alloc.ok());
  auto slot = root.AddDevice(dev_, *alloc);
  ASSERT_TRUE(slot.ok());
  // Something else sits at 0xe0000000; the guest keeps placing the BAR on it.
  class Other : public BusDevice {
   public:
    std::string DebugName() const override { return "other"; }
    void Read(uint64_t, std::span<uint8_t>) override {}
    void Write(uint64_t, std::span<const uint8_t>) override {}
  };
  ASSERT_TRUE(mmio.Insert(std::make_shared<Other>(), 0xe0000000, 0x10000).ok());
  uint16_t cmd = pci::kCommandMemory;
  root.WriteConfig(0, *slot, 0, 1, 0, {reinterpret_cast<uint8_t*>(&cmd), 2});
  ::testing::internal::CaptureStderr();
  uint32_t lo = 0xe0000000, elsewhere = 0xd0000000;
  for (int i = 0; i < 5000; ++i) {
    root.WriteConfig(0, *slot, 0, 4, 0, {reinterpret_cast<uint8_t*>(&lo), 4});
    root.WriteConfig(0, *slot, 0, 4, 0, {reinterpret_cast<uint8_t*>(&elsewhere), 4});
  }
  std::string out = ::testing::internal::GetCapturedStderr();
  EXPECT_LE(CountLines(out), 20u) << out.substr(0, 2000);
}

}  // namespace
}  // namespace crosvm::devices::virtio
