// ProxyDevice and DeviceServer over a socketpair, the server on a thread, the device a fake
// PciDevice that calls its (recording) VmControl and MsiRouter the way a real device does.
#include "devices/proxy/proxy_device.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <condition_variable>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/eventfd.h"
#include "devices/pci/gsi_router.h"
#include "devices/pci/tests/fake_vm_control.h"
#include "devices/proxy/device_server.h"
#include "devices/proxy/effects.h"

namespace crosvm::devices::proxy {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// The VM side's VmControl: a FakeVmControl that also logs the order of calls.
class LoggingVm : public pci::FakeVmControl {
 public:
  base::Status RegisterIoeventfd(int fd, uint64_t addr, uint32_t len, bool pio,
                                 std::optional<uint64_t> dm) override {
    Log("ioevt+ " + std::to_string(addr));
    return FakeVmControl::RegisterIoeventfd(fd, addr, len, pio, dm);
  }
  base::Status UnregisterIoeventfd(int fd, uint64_t addr, uint32_t len, bool pio,
                                   std::optional<uint64_t> dm) override {
    Log("ioevt- " + std::to_string(addr));
    return FakeVmControl::UnregisterIoeventfd(fd, addr, len, pio, dm);
  }
  base::Status RegisterIrqfd(int fd, uint32_t gsi, std::optional<int> resample) override {
    Log("irqfd+ " + std::to_string(gsi));
    return FakeVmControl::RegisterIrqfd(fd, gsi, resample);
  }
  base::Status UnregisterIrqfd(int fd, uint32_t gsi) override {
    Log("irqfd- " + std::to_string(gsi));
    return FakeVmControl::UnregisterIrqfd(fd, gsi);
  }
  base::Status SetGsiRouting(const std::vector<kvm_irq_routing_entry>& entries) override {
    std::string msi;
    for (const auto& e : entries) {
      if (e.type == KVM_IRQ_ROUTING_MSI) msi += " " + std::to_string(e.gsi);
    }
    Log("routing" + msi);
    return FakeVmControl::SetGsiRouting(entries);
  }
  std::vector<std::string> TakeLog() {
    std::lock_guard lock(log_mu);
    return std::exchange(log, {});
  }

 private:
  void Log(std::string s) {
    std::lock_guard lock(log_mu);
    log.push_back(std::move(s));
  }
  std::mutex log_mu;
  std::vector<std::string> log;
};

bool Readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, 0) == 1;
}

// BAR0 (4 KiB, 32-bit memory). Writes at some offsets make the device call its VmControl and
// MsiRouter; a read at kBlockOffset waits until the test releases it.
class FakeDevice : public pci::SimplePciDevice {
 public:
  static constexpr uint64_t kScriptOffset = 0x10;
  static constexpr uint64_t kManyOffset = 0x20;
  static constexpr uint64_t kBlockOffset = 0x40;
  static constexpr int kMany = 40;

  FakeDevice(pci::VmControl* vm, pci::MsiRouter* router)
      : SimplePciDevice("fake", pci::PciIds{.vendor = 0x1234, .device = 0x5678}),
        vm_(vm),
        router_(router),
        a_(std::move(base::EventFd::Create(EFD_NONBLOCK)).value()),
        b_(std::move(base::EventFd::Create(EFD_NONBLOCK)).value()),
        intx_(std::move(base::EventFd::Create(EFD_NONBLOCK)).value()),
        resample_(std::move(base::EventFd::Create(EFD_NONBLOCK)).value()) {
    EXPECT_TRUE(config().AddBar({.index = 0, .type = pci::BarType::kMem32, .size = 0x1000}).ok());
  }

  base::Status AssignIntx(uint32_t gsi) override {
    Note("intx " + std::to_string(gsi));
    return vm_->RegisterIrqfd(intx_.fd(), gsi, resample_.fd());
  }
  void ReadBar(int bar, uint64_t offset, std::span<uint8_t> data) override {
    Note("read " + std::to_string(bar) + " " + std::to_string(offset));
    if (offset == kBlockOffset) {
      std::unique_lock lock(mu_);
      blocked_ = true;
      cv_.notify_all();
      cv_.wait(lock, [&] { return released_; });
    }
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(offset + i);
  }
  void WriteBar(int bar, uint64_t offset, std::span<const uint8_t> data) override {
    Note("write " + std::to_string(bar) + " " + std::to_string(offset) + " " +
         std::to_string(data.size()));
    if (offset == kScriptOffset) {
      EXPECT_TRUE(vm_->RegisterIoeventfd(a_.fd(), 0x1000, 4, false, std::nullopt).ok());
      EXPECT_TRUE(router_->SetMsiRoute(24, 0xfee00000, 1).ok());
      EXPECT_TRUE(vm_->RegisterIoeventfd(b_.fd(), 0x2000, 4, false, 7).ok());
      EXPECT_TRUE(router_->RemoveRoute(24).ok());
      EXPECT_TRUE(router_->SetMsiRoute(25, 0xfee00000, 2).ok());
      EXPECT_TRUE(vm_->UnregisterIoeventfd(a_.fd(), 0x1000, 4, false, std::nullopt).ok());
    } else if (offset == kManyOffset) {
      for (int i = 0; i < kMany; ++i) {
        EXPECT_TRUE(vm_->RegisterIoeventfd(a_.fd(), 0x10000 + 4 * i, 4, false, std::nullopt).ok());
      }
    }
  }
  void OnBarMapped(int bar, uint64_t addr) override {
    Note("mapped " + std::to_string(bar));
    EXPECT_TRUE(vm_->RegisterIoeventfd(b_.fd(), addr + 0x100, 2, false, std::nullopt).ok());
  }
  void OnBarUnmapped(int bar, uint64_t addr) override {
    Note("unmapped " + std::to_string(bar));
    EXPECT_TRUE(vm_->UnregisterIoeventfd(b_.fd(), addr + 0x100, 2, false, std::nullopt).ok());
  }

  void Release() {
    std::lock_guard lock(mu_);
    released_ = true;
    cv_.notify_all();
  }
  void WaitBlocked() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return blocked_; });
  }
  std::vector<std::string> calls() {
    std::lock_guard lock(mu_);
    return calls_;
  }
  int a() const { return a_.fd(); }
  int b() const { return b_.fd(); }
  int resample() const { return resample_.fd(); }

 private:
  void Note(std::string s) {
    std::lock_guard lock(mu_);
    calls_.push_back(std::move(s));
  }
  pci::VmControl* vm_;
  pci::MsiRouter* router_;
  base::EventFd a_, b_, intx_, resample_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool blocked_ = false;
  bool released_ = false;
  std::vector<std::string> calls_;
};

class ProxyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dvm_.UseRecorder(&recorder_);
    drouter_.UseRecorder(&recorder_);
    auto pair = Channel::CreatePair();
    ASSERT_TRUE(pair.ok());
    server_ = std::make_unique<DeviceServer>(std::move(pair->second), &device_, &recorder_,
                                             [this] { shutdowns_++; });
    server_thread_ = std::thread([this] { server_status_ = server_->Run(); });
    auto p = ProxyDevice::Create("fake", std::move(pair->first), &vm_, &router_,
                                 [this](const std::string& why) {
                                   failures_++;
                                   failure_ = why;
                                 });
    ASSERT_TRUE(p.ok()) << p.error().ToString();
    proxy_ = *p;
  }
  void TearDown() override {
    device_.Release();
    proxy_.reset();  // closes the channel: the server returns
    if (server_thread_.joinable()) server_thread_.join();
  }
  void WriteBar(uint64_t offset, uint32_t v) {
    proxy_->WriteBar(0, offset, {reinterpret_cast<uint8_t*>(&v), 4});
  }
  void WriteConfig(size_t reg, size_t offset, uint32_t v, size_t len) {
    proxy_->WriteConfigRegister(reg, offset, {reinterpret_cast<uint8_t*>(&v), len});
  }

  LoggingVm vm_;                 // the VM process's
  pci::GsiRouter router_{&vm_};  // the VM process's
  DeviceVmControl dvm_{&vm_};    // the device's, switched to recording
  DeviceMsiRouter drouter_{&router_};
  EffectRecorder recorder_;
  FakeDevice device_{&dvm_, &drouter_};
  std::unique_ptr<DeviceServer> server_;
  std::thread server_thread_;
  base::Status server_status_ = base::Error("not run");
  std::atomic<int> shutdowns_{0};
  std::shared_ptr<ProxyDevice> proxy_;
  std::atomic<int> failures_{0};
  std::string failure_;
};

TEST_F(ProxyTest, CallsAndValuesCrossTheBoundary) {
  EXPECT_EQ(proxy_->DebugName(), "fake");
  EXPECT_EQ(proxy_->ReadConfigRegister(0), 0x56781234u);
  uint8_t buf[8] = {};
  proxy_->ReadBar(0, 0x80, {buf, 8});
  for (int i = 0; i < 8; ++i) EXPECT_EQ(buf[i], 0x80 + i);
  WriteBar(0x4, 0xdeadbeef);
  EXPECT_THAT(device_.calls(), ElementsAre("read 0 128", "write 0 4 4"));
  // A config write goes through the device's write mask: the interrupt line is writable.
  WriteConfig(0x3c / 4, 0, 0x0b, 1);
  EXPECT_EQ(proxy_->ReadConfigRegister(0x3c / 4) & 0xff, 0x0bu);
  EXPECT_EQ(device_.config().ReadByte(0x3c), 0x0b);
  EXPECT_FALSE(proxy_->failed());
  EXPECT_EQ(failures_, 0);
}

TEST_F(ProxyTest, AccessesTheServerWouldRefuseAreAnsweredLocally) {
  uint64_t sent = proxy_->requests_sent();
  EXPECT_EQ(proxy_->ReadConfigRegister(kConfigRegisters), 0xffffffffu);
  WriteConfig(kConfigRegisters + 1, 0, 1, 4);
  WriteConfig(1, 3, 1, 2);  // crosses the register
  uint8_t buf[kMaxBarAccess + 1];
  proxy_->ReadBar(0, 0, {buf, sizeof(buf)});
  EXPECT_EQ(buf[0], 0xff);
  proxy_->ReadBar(6, 0, {buf, 4});
  proxy_->ReadBar(0, UINT64_MAX - 1, {buf, 4});
  proxy_->WriteBar(0, 0, {buf, 0});
  EXPECT_EQ(proxy_->requests_sent(), sent);
  EXPECT_FALSE(proxy_->failed()) << "a guest cannot fail the device with odd accesses";
  EXPECT_TRUE(device_.calls().empty());
}

TEST_F(ProxyTest, StatusErrorsComeBack) {
  auto s = proxy_->SetBarAddress(0, 0x123);  // not aligned to the BAR's size
  ASSERT_FALSE(s.ok());
  EXPECT_FALSE(s.error().message().empty());
  EXPECT_TRUE(proxy_->SetBarAddress(0, 0xc0000000).ok());
  EXPECT_FALSE(proxy_->failed()) << "a failed call is not a failed device";
}

TEST_F(ProxyTest, AssignIntxRegistersTheIrqfdAndResampleFdInTheVm) {
  ASSERT_TRUE(proxy_->AssignIntx(17).ok());
  ASSERT_EQ(vm_.irqfds.size(), 1u);
  EXPECT_EQ(vm_.irqfds[0].gsi, 17u);
  ASSERT_TRUE(vm_.irqfds[0].resample.has_value());
  // KVM would signal the resample fd at EOI: the device's own eventfd sees it.
  uint64_t one = 1;
  ASSERT_EQ(write(*vm_.irqfds[0].resample, &one, 8), 8);
  EXPECT_TRUE(Readable(device_.resample()));
}

TEST_F(ProxyTest, EffectsAreAppliedInOrderBeforeTheCallReturns) {
  vm_.TakeLog();
  WriteBar(FakeDevice::kScriptOffset, 1);
  EXPECT_THAT(vm_.TakeLog(), ElementsAre("ioevt+ 4096", "routing 24", "ioevt+ 8192", "routing",
                                         "routing 25", "ioevt- 4096"));
  ASSERT_EQ(vm_.ioeventfds.size(), 1u);
  const auto& e = *vm_.ioeventfds.begin();
  EXPECT_EQ(e.addr, 0x2000u);
  EXPECT_EQ(e.datamatch, std::optional<uint64_t>(7));
  // The fd the VM holds is the device's eventfd: a guest write (KVM) signals the device.
  uint64_t one = 1;
  ASSERT_EQ(write(e.fd, &one, 8), 8);
  EXPECT_TRUE(Readable(device_.b()));
  EXPECT_FALSE(Readable(device_.a()));
  // The route went to the VM's one router, which installed the whole table.
  bool found = false;
  for (const auto& r : router_.Table()) {
    if (r.type == KVM_IRQ_ROUTING_MSI) found = r.gsi == 25 && r.u.msi.data == 2;
  }
  EXPECT_TRUE(found);
}

TEST_F(ProxyTest, UnregistrationMatchesTheRegistration) {
  proxy_->OnBarMapped(0, 0xc0000000);
  ASSERT_EQ(vm_.ioeventfds.size(), 1u);
  EXPECT_EQ(vm_.ioeventfds.begin()->addr, 0xc0000100u);
  proxy_->OnBarUnmapped(0, 0xc0000000);
  EXPECT_TRUE(vm_.ioeventfds.empty()) << "the fake matches fds by number, as registered";
  EXPECT_THAT(vm_.TakeLog(), ElementsAre("ioevt+ 3221225728", "ioevt- 3221225728"));
}

TEST_F(ProxyTest, ManyEffectsTravelInSeveralMessages) {
  WriteBar(FakeDevice::kManyOffset, 1);
  EXPECT_EQ(vm_.ioeventfds.size(), static_cast<size_t>(FakeDevice::kMany));
  EXPECT_FALSE(proxy_->failed());
}

TEST_F(ProxyTest, PciRootQueriesAreAnsweredFromTheCache) {
  EXPECT_THAT(proxy_->Bars(), ElementsAre(::testing::Field(&pci::BarInfo::size, 0x1000u)));
  EXPECT_EQ(proxy_->Command(), 0);
  WriteConfig(pci::kCommand / 4, 0, pci::kCommandMemory, 2);
  uint32_t bar = 0xd0000000;
  WriteConfig(4, 0, bar, 4);
  uint64_t sent = proxy_->requests_sent();
  EXPECT_EQ(proxy_->Command(), pci::kCommandMemory) << "refreshed by the config write's reply";
  EXPECT_EQ(proxy_->BarAddress(0), 0xd0000000u);
  EXPECT_EQ(proxy_->Bars().size(), 1u);
  EXPECT_EQ(proxy_->requests_sent(), sent) << "no round trip for PciRoot's queries";
  ASSERT_TRUE(proxy_->SetBarAddress(0, 0xe0000000).ok());
  EXPECT_EQ(proxy_->BarAddress(0), 0xe0000000u);
}

TEST_F(ProxyTest, AnEffectFromAnotherThreadGoesWithTheNextReply) {
  std::thread worker([&] { EXPECT_TRUE(drouter_.SetMsiRoute(30, 0xfee01000, 5).ok()); });
  worker.join();
  EXPECT_EQ(vm_.routing_updates, 0) << "nothing crosses until the next reply";
  EXPECT_EQ(recorder_.outside_request(), 1u);
  (void)proxy_->ReadConfigRegister(0);
  EXPECT_EQ(vm_.routing_updates, 1);
  EXPECT_THAT(vm_.TakeLog(), ElementsAre("routing 30"));
}

TEST_F(ProxyTest, TheDeviceProcessCannotInstallTablesOrTakeGsis) {
  auto s = dvm_.SetGsiRouting({});
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.error().message(), HasSubstr("stale"));
  auto g = drouter_.AllocateGsi();
  ASSERT_FALSE(g.ok());
  EXPECT_THAT(g.error().message(), HasSubstr("GSIs are allocated before the device is jailed"));
  EXPECT_EQ(vm_.routing_updates, 0);
}

TEST_F(ProxyTest, ShutdownStopsTheDeviceAndTheServer) {
  ASSERT_TRUE(proxy_->Shutdown().ok());
  server_thread_.join();
  EXPECT_TRUE(server_status_.ok());
  EXPECT_EQ(shutdowns_, 1);
  EXPECT_EQ(proxy_->ReadConfigRegister(0), 0xffffffffu);
  EXPECT_EQ(failures_, 0) << "a shut-down device is not a failure";
}

TEST_F(ProxyTest, PeerDeathMidRequestGivesAllOnesAndOneFailure) {
  std::thread vcpu([&] {
    uint8_t buf[4] = {};
    proxy_->ReadBar(0, FakeDevice::kBlockOffset, {buf, 4});
    EXPECT_THAT(buf, ElementsAre(0xff, 0xff, 0xff, 0xff));
  });
  device_.WaitBlocked();
  server_->channel().Shutdown();  // the device process dies while serving the read
  vcpu.join();
  EXPECT_TRUE(proxy_->failed());
  EXPECT_EQ(failures_, 1);
  EXPECT_THAT(failure_, HasSubstr("fake"));
  EXPECT_THAT(failure_, HasSubstr("closed its channel"));
  // Later accesses: all-ones, dropped, no second callback, no hang.
  EXPECT_EQ(proxy_->ReadConfigRegister(0), 0xffffffffu);
  WriteBar(0x4, 1);
  EXPECT_FALSE(proxy_->AssignIntx(3).ok());
  EXPECT_EQ(failures_, 1);
  device_.Release();
  server_thread_.join();
  EXPECT_FALSE(server_status_.ok()) << "its reply had nowhere to go";
}

// A server that answers every request with the bytes given.
class GarbageTest : public ::testing::Test {
 protected:
  std::shared_ptr<ProxyDevice> Start(std::function<std::vector<uint8_t>(const Request&)> answer) {
    auto pair = Channel::CreatePair();
    EXPECT_TRUE(pair.ok());
    peer_ = std::move(pair->second);
    peer_thread_ = std::thread([this, answer] {
      for (;;) {
        auto m = peer_.Recv();
        if (!m.ok() || !m->has_value()) return;
        auto req = DecodeRequest((*m)->bytes);
        if (!req.ok()) return;
        if (!peer_.Send(answer(*req)).ok()) return;
      }
    });
    auto p = ProxyDevice::Create("garbled", std::move(pair->first), &vm_, nullptr,
                                 [this](const std::string& why) {
                                   failures_++;
                                   failure_ = why;
                                 });
    EXPECT_TRUE(p.ok()) << p.error().ToString();
    return p.ok() ? *p : nullptr;
  }
  void TearDown() override {
    peer_.Shutdown();
    if (peer_thread_.joinable()) peer_thread_.join();
  }
  static std::vector<uint8_t> Good(const Request& req) {
    Reply r;
    r.seq = req.seq;
    r.type = req.type;
    r.state.emplace();
    std::vector<int> fds;
    return EncodeReply(r, &fds);
  }

  pci::FakeVmControl vm_;
  Channel peer_;
  std::thread peer_thread_;
  std::atomic<int> failures_{0};
  std::string failure_;
};

TEST_F(GarbageTest, AGarbledReplyFailsTheDeviceOnce) {
  auto proxy = Start([](const Request& req) {
    if (req.type == RequestType::kBars) return Good(req);
    return std::vector<uint8_t>{1, 2, 3};
  });
  ASSERT_NE(proxy, nullptr);
  EXPECT_EQ(proxy->ReadConfigRegister(0), 0xffffffffu);
  EXPECT_EQ(failures_, 1);
  EXPECT_THAT(failure_, HasSubstr("bad reply to ReadConfigRegister"));
  EXPECT_EQ(proxy->ReadConfigRegister(0), 0xffffffffu);
  EXPECT_EQ(failures_, 1);
}

TEST_F(GarbageTest, AReplyToAnotherRequestFailsTheDevice) {
  auto proxy = Start([](const Request& req) {
    Request other = req;
    if (req.type != RequestType::kBars) other.seq += 1;
    return Good(other);
  });
  ASSERT_NE(proxy, nullptr);
  uint8_t buf[2];
  proxy->ReadBar(0, 0, {buf, 2});
  EXPECT_EQ(buf[0], 0xff);
  EXPECT_EQ(failures_, 1);
  EXPECT_THAT(failure_, HasSubstr("to request"));
}

TEST_F(GarbageTest, AReadOfTheWrongSizeFailsTheDevice) {
  auto proxy = Start([](const Request& req) {
    Reply r;
    r.seq = req.seq;
    r.type = req.type;
    r.data = {1};
    std::vector<int> fds;
    return req.type == RequestType::kBars ? Good(req) : EncodeReply(r, &fds);
  });
  ASSERT_NE(proxy, nullptr);
  uint8_t buf[4];
  proxy->ReadBar(0, 0, {buf, 4});
  EXPECT_EQ(buf[0], 0xff);
  EXPECT_EQ(failures_, 1);
  EXPECT_TRUE(proxy->failed());
}

TEST(ProxyCreateTest, FailsWhenNobodyAnswers) {
  auto pair = Channel::CreatePair();
  ASSERT_TRUE(pair.ok());
  pair->second = Channel();  // the device process is already gone
  int failures = 0;
  auto p = ProxyDevice::Create("gone", std::move(pair->first), nullptr, nullptr,
                               [&](const std::string&) { failures++; });
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(p.error().message(), HasSubstr("does not answer"));
  EXPECT_EQ(failures, 0);
}

TEST(DeviceServerTest, MalformedRequestsGetARejectionAndServingGoesOn) {
  auto pair = Channel::CreatePair();
  ASSERT_TRUE(pair.ok());
  pci::SimplePciDevice dev("simple", pci::PciIds{.vendor = 0xabcd});
  EffectRecorder rec;
  DeviceServer server(std::move(pair->second), &dev, &rec, nullptr);
  base::Status status = base::Ok();
  std::thread t([&] { status = server.Run(); });
  Channel& c = pair->first;
  auto reply = [&]() -> Reply {
    auto m = c.Recv();
    EXPECT_TRUE(m.ok() && m->has_value());
    auto r = DecodeReply((*m)->bytes, std::move((*m)->fds));
    EXPECT_TRUE(r.ok()) << r.error().ToString();
    return std::move(r).value();
  };
  // A ReadBar with a 0-byte length, seq 5.
  ASSERT_TRUE(c.Send(std::vector<uint8_t>{5, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}).ok());
  Reply r = reply();
  EXPECT_EQ(r.seq, 5u);
  EXPECT_EQ(r.type, RequestType::kReadBar);
  EXPECT_EQ(r.flags, kReplyRejected);
  EXPECT_THAT(r.error, HasSubstr("BAR access of 0 bytes"));
  // A request with an fd attached.
  int fds[] = {0};
  ASSERT_TRUE(c.Send(std::vector<uint8_t>{6, 0, 0, 0, 3}, fds).ok());
  r = reply();
  EXPECT_EQ(r.flags, kReplyRejected);
  EXPECT_THAT(r.error, HasSubstr("fds"));
  // A good one is still served.
  Request ok;
  ok.seq = 7;
  ok.type = RequestType::kReadConfigRegister;
  ASSERT_TRUE(c.Send(EncodeRequest(ok)).ok());
  r = reply();
  EXPECT_EQ(r.seq, 7u);
  EXPECT_EQ(r.flags, 0);
  EXPECT_EQ(r.value & 0xffff, 0xabcdu);
  c = Channel();  // closing ends the server
  t.join();
  EXPECT_TRUE(status.ok());
}

}  // namespace
}  // namespace crosvm::devices::proxy
