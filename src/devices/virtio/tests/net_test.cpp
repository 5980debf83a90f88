// virtio-net driven through the PCI transport and the test driver, with the TAP replaced by a
// SOCK_SEQPACKET socketpair (one message per frame, like a TAP): frames both ways, header and
// num_buffers, mergeable buffers, offload negotiation, every hostile case dropped and counted
// while the other direction keeps working, and RX polling only while buffers are posted.
#include "devices/virtio/net.h"

#include <linux/if_tun.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <mutex>
#include <thread>

#include "devices/pci/pci_config.h"
#include "devices/pci/tests/fake_vm_control.h"
#include "devices/virtio/tests/test_driver.h"
#include "devices/virtio/virtio_pci.h"

namespace crosvm::devices::virtio {
namespace {

using testing::Buf;
using testing::MakeTestMemory;
using testing::TestQueue;

constexpr uint64_t kRxRings = 0x1000;
constexpr uint64_t kTxRings = 0x3000;
constexpr uint64_t kRxBufs = 0x100000;
constexpr uint64_t kTxBufs = 0x200000;
constexpr uint16_t kRingSize = 64;
constexpr uint32_t kAllOffloads = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;
const net::MacAddress kMac = {0x02, 0x11, 0x22, 0x33, 0x44, 0x55};

// A "TAP" on one end of a socketpair; the test holds the other end.
class SocketTap : public net::TapInterface {
 public:
  SocketTap(int fd, uint32_t accepted) : fd_(fd), accepted_(accepted) {}
  int fd() const override { return fd_.get(); }
  ssize_t ReadFrame(std::span<const iovec> iov) override {
    msghdr m{};
    m.msg_iov = const_cast<iovec*>(iov.data());
    m.msg_iovlen = iov.size();
    // MSG_TRUNC: the frame's real length, as a TAP reports it.
    return recvmsg(fd_.get(), &m, MSG_TRUNC | MSG_DONTWAIT);
  }
  ssize_t WriteFrame(std::span<const iovec> iov) override {
    return writev(fd_.get(), iov.data(), static_cast<int>(iov.size()));
  }
  base::Result<bool> SetOffload(uint32_t flags) override {
    std::lock_guard lock(mu);
    offload_calls.push_back(flags);
    return (flags & ~accepted_) == 0;
  }
  base::Status SetVnetHdrSize(int size) override {
    std::lock_guard lock(mu);
    hdr_sizes.push_back(size);
    return base::Ok();
  }

  std::mutex mu;
  std::vector<uint32_t> offload_calls;
  std::vector<int> hdr_sizes;

 private:
  base::ScopedFd fd_;
  uint32_t accepted_;
};

template <typename Pred>
bool WaitFor(Pred pred, int ms = 2000) {
  for (int i = 0; i < ms; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return pred();
}

std::vector<uint8_t> Pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 13);
  return v;
}

class NetTest : public ::testing::Test {
 protected:
  void Start(uint64_t driver_features, uint32_t accepted = kAllOffloads, bool post_tx = true) {
    (void)post_tx;
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
    peer_.reset(sv[1]);
    auto tap = std::make_unique<SocketTap>(sv[0], accepted);
    tap_ = tap.get();
    auto dev = VirtioPciDevice::Create(std::make_unique<NetDevice>(std::move(tap), kMac, "net0"),
                                       &mem_, &vm_, nullptr, false);
    ASSERT_TRUE(dev.ok()) << dev.error().ToString();
    dev_ = std::move(dev).value();
    net_ = static_cast<NetDevice*>(dev_->device());
    uint16_t cmd = pci::kCommandMemory | pci::kCommandMaster;
    dev_->WriteConfigRegister(pci::kCommand / 4, 0, {reinterpret_cast<uint8_t*>(&cmd), 2});
    W(kDeviceStatus, 1, kStatusAcknowledge | kStatusDriver);
    offered_ = ReadFeatures();
    uint64_t f = driver_features | Bit(kFeatureVersion1);
    W(kDriverFeatureSelect, 4, 0);
    W(kDriverFeature, 4, f & 0xffffffff);
    W(kDriverFeatureSelect, 4, 1);
    W(kDriverFeature, 4, f >> 32);
    W(kDeviceStatus, 1, kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk);
    ASSERT_TRUE(R(kDeviceStatus, 1) & kStatusFeaturesOk) << "features refused";
    for (uint16_t q = 0; q < 2; ++q) {
      TestQueue& tq = q == 0 ? rx_ : tx_;
      W(kQueueSelect, 2, q);
      W(kQueueSize, 2, kRingSize);
      W(kQueueDesc, 8, tq.desc_addr());
      W(kQueueDriver, 8, tq.avail_addr());
      W(kQueueDevice, 8, tq.used_addr());
      W(kQueueEnable, 2, 1);
    }
    W(kDeviceStatus, 1, kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk | kStatusDriverOk);
    ASSERT_TRUE(dev_->active());
  }
  void TearDown() override {
    if (dev_) W(kDeviceStatus, 1, 0);
  }

  void W(uint64_t off, size_t size, uint64_t v) {
    dev_->WriteBar(0, off, {reinterpret_cast<uint8_t*>(&v), size});
  }
  uint64_t R(uint64_t off, size_t size) {
    uint64_t v = 0;
    dev_->ReadBar(0, off, {reinterpret_cast<uint8_t*>(&v), size});
    return v;
  }
  uint64_t ReadFeatures() {
    W(kDeviceFeatureSelect, 4, 0);
    uint64_t lo = R(kDeviceFeature, 4);
    W(kDeviceFeatureSelect, 4, 1);
    return lo | R(kDeviceFeature, 4) << 32;
  }
  void Kick(uint16_t q) { W(kNotifyOffset + kNotifyMultiplier * q, 2, q); }

  // Posts an RX chain of one writable buffer at descriptor `desc`.
  void PostRx(uint16_t desc, uint64_t addr, uint32_t len) {
    rx_.WriteChain(desc, {{addr, len, true}});
    rx_.Publish(desc);
  }
  // Sends a frame from the "network" with the given header.
  void SendFromNet(const VirtioNetHdr& hdr, const std::vector<uint8_t>& frame) {
    iovec iov[2] = {{const_cast<VirtioNetHdr*>(&hdr), sizeof(hdr)},
                    {const_cast<uint8_t*>(frame.data()), frame.size()}};
    ASSERT_EQ(writev(peer_.get(), iov, 2), static_cast<ssize_t>(sizeof(hdr) + frame.size()));
  }
  // The next frame the device wrote to the TAP, or empty after `ms`.
  std::vector<uint8_t> ReceiveOnNet(int ms = 2000) {
    pollfd p{peer_.get(), POLLIN, 0};
    if (poll(&p, 1, ms) != 1) return {};
    std::vector<uint8_t> buf(128 * 1024);
    ssize_t n = recv(peer_.get(), buf.data(), buf.size(), 0);
    buf.resize(n > 0 ? static_cast<size_t>(n) : 0);
    return buf;
  }
  // A TX chain: header then the frame in two pieces.
  void PostTx(uint16_t desc, const VirtioNetHdr& hdr, const std::vector<uint8_t>& frame,
              uint64_t addr = kTxBufs) {
    ASSERT_TRUE(mem_.WriteObj(addr, hdr).ok());
    ASSERT_TRUE(mem_.Write(addr + 0x100, frame).ok());
    size_t half = frame.size() / 2;
    tx_.WriteChain(desc,
                   {{addr, sizeof(hdr), false},
                    {addr + 0x100, static_cast<uint32_t>(half), false},
                    {addr + 0x100 + half, static_cast<uint32_t>(frame.size() - half), false}});
    tx_.Publish(desc);
  }

  memory::GuestMemory mem_ = MakeTestMemory();
  pci::FakeVmControl vm_;
  TestQueue rx_{mem_, kRxRings, kRingSize};
  TestQueue tx_{mem_, kTxRings, kRingSize};
  base::ScopedFd peer_;
  SocketTap* tap_ = nullptr;
  std::shared_ptr<VirtioPciDevice> dev_;
  NetDevice* net_ = nullptr;
  uint64_t offered_ = 0;
};

TEST(NetDeviceTest, ConfigKeptFdsAndOfferedFeaturesFollowTheTap) {
  struct Case {
    uint32_t accepted;
    uint64_t expect_on, expect_off;
  };
  const uint64_t offload_bits = Bit(kNetFCsum) | Bit(kNetFGuestCsum) | Bit(kNetFHostTso4) |
                                Bit(kNetFGuestTso4) | Bit(kNetFHostTso6) | Bit(kNetFGuestTso6) |
                                Bit(kNetFHostEcn) | Bit(kNetFGuestEcn);
  const uint64_t always = Bit(kNetFMac) | Bit(kNetFStatus) | Bit(kNetFMrgRxbuf);
  for (Case c : {Case{kAllOffloads, always | offload_bits, 0}, Case{0, always, offload_bits},
                 Case{TUN_F_CSUM, always | Bit(kNetFCsum) | Bit(kNetFGuestCsum),
                      offload_bits & ~(Bit(kNetFCsum) | Bit(kNetFGuestCsum))},
                 Case{TUN_F_CSUM | TUN_F_TSO4, always | Bit(kNetFHostTso4) | Bit(kNetFGuestTso4),
                      Bit(kNetFHostTso6) | Bit(kNetFGuestTso6) | Bit(kNetFHostEcn)}}) {
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    close(sv[1]);
    auto tap = std::make_unique<SocketTap>(sv[0], c.accepted);
    SocketTap* t = tap.get();
    NetDevice dev(std::move(tap), kMac);
    EXPECT_EQ(dev.accepted_offloads(), c.accepted);
    EXPECT_EQ(dev.Features() & c.expect_on, c.expect_on) << c.accepted;
    EXPECT_EQ(dev.Features() & c.expect_off, 0u) << c.accepted;
    ASSERT_FALSE(t->offload_calls.empty());
    EXPECT_EQ(t->offload_calls.back(), 0u) << "probing leaves offloads off";
    std::vector<int> fds;
    dev.AppendKeptFds(fds);
    EXPECT_EQ(fds, std::vector<int>{sv[0]});
    EXPECT_EQ(dev.DeviceType(), 1u);
    EXPECT_EQ(dev.QueueMaxSizes().size(), 2u);
    EXPECT_EQ(dev.PciClassCode(), pci::kClassNetworkEthernet);
    uint8_t cfg[10];
    dev.ReadConfig(0, cfg);
    EXPECT_EQ(std::memcmp(cfg, kMac.data(), 6), 0);
    EXPECT_EQ(cfg[6] | cfg[7] << 8, kNetSLinkUp);
    EXPECT_EQ(cfg[8], 0);
  }
}

TEST_F(NetTest, NegotiatedOffloadsProgramTheTap) {
  Start(Bit(kNetFGuestCsum) | Bit(kNetFGuestTso4) | Bit(kNetFGuestEcn) | Bit(kNetFCsum));
  EXPECT_TRUE(offered_ & Bit(kNetFGuestTso6));
  std::lock_guard lock(tap_->mu);
  EXPECT_EQ(tap_->offload_calls.back(), uint32_t{TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO_ECN});
  EXPECT_EQ(tap_->hdr_sizes, std::vector<int>{12});
}

TEST_F(NetTest, NoOffloadsNegotiatedMeansNoneProgrammed) {
  Start(Bit(kNetFMac));
  std::lock_guard lock(tap_->mu);
  EXPECT_EQ(tap_->offload_calls.back(), 0u);
}

TEST_F(NetTest, TxFramesArriveIntact) {
  Start(Bit(kNetFCsum) | Bit(kNetFHostTso4));
  auto frame = Pattern(1000, 1);
  VirtioNetHdr hdr{kNetHdrFNeedsCsum, kNetHdrGsoTcpv4, 54, 948, 34, 16, 0};
  PostTx(0, hdr, frame);
  Kick(1);
  auto got = ReceiveOnNet();
  ASSERT_EQ(got.size(), 12 + frame.size());
  VirtioNetHdr sent;
  std::memcpy(&sent, got.data(), 12);
  EXPECT_EQ(sent.gso_type, kNetHdrGsoTcpv4);
  EXPECT_EQ(sent.gso_size, 948);
  EXPECT_EQ(sent.csum_start, 34);
  EXPECT_EQ(std::vector<uint8_t>(got.begin() + 12, got.end()), frame);
  ASSERT_TRUE(WaitFor([&] { return tx_.UsedIdx() == 1; }));
  EXPECT_EQ(tx_.UsedElem(0), std::make_pair(0u, 0u));
  EXPECT_EQ(net_->counters().tx_frames, 1u);
  EXPECT_EQ(net_->counters().tx_bytes, 1000u);
}

TEST_F(NetTest, RxFrameLandsWithHeaderAndOneBuffer) {
  Start(0);
  PostRx(0, kRxBufs, 2048);
  Kick(0);
  auto frame = Pattern(100, 7);
  VirtioNetHdr hdr{kNetHdrFDataValid, 0, 0, 0, 0, 0, 0xabcd};
  SendFromNet(hdr, frame);
  ASSERT_TRUE(WaitFor([&] { return rx_.UsedIdx() == 1; }));
  EXPECT_EQ(rx_.UsedElem(0), std::make_pair(0u, 112u));
  auto got = mem_.ReadObj<VirtioNetHdr>(kRxBufs);
  EXPECT_EQ(got->flags, kNetHdrFDataValid);
  EXPECT_EQ(got->num_buffers, 1) << "set by the device, whatever the TAP left there";
  std::vector<uint8_t> data(100);
  ASSERT_TRUE(mem_.Read(kRxBufs + 12, data).ok());
  EXPECT_EQ(data, frame);
  auto c = net_->counters();
  EXPECT_EQ(c.rx_frames, 1u);
  EXPECT_EQ(c.rx_bytes, 100u);
}

TEST_F(NetTest, MergeableBuffersSpreadAFrameAndCountThem) {
  Start(Bit(kNetFMrgRxbuf));
  for (uint16_t i = 0; i < 4; ++i) PostRx(i, kRxBufs + i * 0x1000, 256);
  Kick(0);
  auto frame = Pattern(600, 3);  // 612 bytes with the header: 256 + 256 + 100
  SendFromNet(VirtioNetHdr{}, frame);
  ASSERT_TRUE(WaitFor([&] { return rx_.UsedIdx() == 3; }));
  EXPECT_EQ(rx_.UsedElem(0), std::make_pair(0u, 256u));
  EXPECT_EQ(rx_.UsedElem(1), std::make_pair(1u, 256u));
  EXPECT_EQ(rx_.UsedElem(2), std::make_pair(2u, 100u));
  EXPECT_EQ(mem_.ReadObj<VirtioNetHdr>(kRxBufs)->num_buffers, 3);
  std::vector<uint8_t> got;
  for (uint64_t i = 0; i < 3; ++i) {
    std::vector<uint8_t> piece(i < 2 ? 256 : 100);
    ASSERT_TRUE(mem_.Read(kRxBufs + i * 0x1000, piece).ok());
    got.insert(got.end(), piece.begin(), piece.end());
  }
  EXPECT_EQ(std::vector<uint8_t>(got.begin() + 12, got.end()), frame);
  // The next small frame takes the fourth buffer alone.
  SendFromNet(VirtioNetHdr{}, Pattern(20, 9));
  ASSERT_TRUE(WaitFor([&] { return rx_.UsedIdx() == 4; }));
  EXPECT_EQ(rx_.UsedElem(3), std::make_pair(3u, 32u));
  EXPECT_EQ(mem_.ReadObj<VirtioNetHdr>(kRxBufs + 0x3000)->num_buffers, 1);
  EXPECT_EQ(net_->counters().rx_frames, 2u);
}

TEST_F(NetTest, FrameLargerThanTheBuffersIsDroppedNotTruncated) {
  Start(0);
  PostRx(0, kRxBufs, 100);
  Kick(0);
  SendFromNet(VirtioNetHdr{}, Pattern(500, 1));
  ASSERT_TRUE(WaitFor([&] { return net_->counters().rx_dropped_too_big == 1; }));
  EXPECT_EQ(rx_.UsedIdx(), 0);
  // The same buffer takes the next frame that fits.
  auto small = Pattern(50, 2);
  SendFromNet(VirtioNetHdr{}, small);
  ASSERT_TRUE(WaitFor([&] { return rx_.UsedIdx() == 1; }));
  EXPECT_EQ(rx_.UsedElem(0), std::make_pair(0u, 62u));
  std::vector<uint8_t> data(50);
  ASSERT_TRUE(mem_.Read(kRxBufs + 12, data).ok());
  EXPECT_EQ(data, small);
}

TEST_F(NetTest, MergeableFrameLargerThanAllPostedBuffersIsDropped) {
  Start(Bit(kNetFMrgRxbuf));
  PostRx(0, kRxBufs, 256);
  PostRx(1, kRxBufs + 0x1000, 256);
  Kick(0);
  SendFromNet(VirtioNetHdr{}, Pattern(1000, 1));
  ASSERT_TRUE(WaitFor([&] { return net_->counters().rx_dropped_too_big == 1; }));
  SendFromNet(VirtioNetHdr{}, Pattern(300, 1));
  ASSERT_TRUE(WaitFor([&] { return rx_.UsedIdx() == 2; }));
  EXPECT_EQ(mem_.ReadObj<VirtioNetHdr>(kRxBufs)->num_buffers, 2);
}

TEST_F(NetTest, RxWaitsOnTheTapOnlyWhileBuffersArePosted) {
  Start(0);
  // No buffers: a frame waiting on the TAP must not wake the worker at all.
  auto frame = Pattern(64, 5);
  SendFromNet(VirtioNetHdr{}, frame);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto c = net_->counters();
  EXPECT_FALSE(c.rx_polling);
  EXPECT_EQ(c.rx_tap_wakeups, 0u);
  EXPECT_EQ(c.rx_frames, 0u);
  // A buffer and a kick: the frame comes in, the only buffer is used, polling stops again.
  PostRx(0, kRxBufs, 2048);
  Kick(0);
  ASSERT_TRUE(WaitFor([&] { return rx_.UsedIdx() == 1; }));
  ASSERT_TRUE(WaitFor([&] { return !net_->counters().rx_polling; }));
  EXPECT_GE(net_->counters().rx_poll_stops, 1u);
  SendFromNet(VirtioNetHdr{}, frame);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  c = net_->counters();
  EXPECT_LE(c.rx_tap_wakeups, 2u) << "no busy loop while the ring is empty";
  EXPECT_EQ(c.rx_frames, 1u);
  PostRx(1, kRxBufs + 0x1000, 2048);
  Kick(0);
  ASSERT_TRUE(WaitFor([&] { return rx_.UsedIdx() == 2; }));
  EXPECT_EQ(net_->counters().rx_frames, 2u);
}

TEST_F(NetTest, HostileTxChainsAreDroppedAndCountedWhileRxKeepsWorking) {
  Start(Bit(kNetFCsum) | Bit(kNetFHostTso4));
  PostRx(0, kRxBufs, 2048);
  Kick(0);
  uint16_t d = 0;
  auto frame = Pattern(200, 4);
  // Device-writable descriptor in a TX chain.
  ASSERT_TRUE(mem_.WriteObj(kTxBufs, VirtioNetHdr{}).ok());
  tx_.WriteChain(d, {{kTxBufs, 12, false}, {kTxBufs + 0x100, 64, true}});
  tx_.Publish(d);
  d += 2;
  // Shorter than the header.
  tx_.WriteChain(d, {{kTxBufs, 8, false}});
  tx_.Publish(d);
  d += 1;
  // Longer than 64 KiB after the header.
  tx_.WriteChain(d, {{kTxBufs, 12, false}, {kTxBufs + 0x1000, 64 * 1024 + 1, false}});
  tx_.Publish(d);
  d += 2;
  // Bad GSO and checksum fields, each at its own buffer so the headers differ.
  const VirtioNetHdr bad[] = {
      {0, 7, 0, 0, 0, 0, 0},                                      // unknown gso_type
      {kNetHdrFNeedsCsum, kNetHdrGsoTcpv4, 54, 0, 34, 16, 0},     // gso_size 0
      {kNetHdrFNeedsCsum, kNetHdrGsoTcpv4, 500, 100, 34, 16, 0},  // hdr_len beyond the frame
      {kNetHdrFNeedsCsum, kNetHdrGsoTcpv6, 54, 100, 34, 16, 0},   // TSO6 not negotiated
      {kNetHdrFNeedsCsum, kNetHdrGsoTcpv4 | kNetHdrGsoEcn, 54, 100, 34, 16, 0},  // no ECN
      {kNetHdrFNeedsCsum, 0, 0, 0, 190, 16, 0},  // checksum past the end
      {0x10, 0, 0, 0, 0, 0, 0},                  // unknown flag
  };
  for (size_t i = 0; i < std::size(bad); ++i) {
    PostTx(d, bad[i], frame, kTxBufs + 0x20000 + i * 0x1000);
    d += 3;
  }
  // Then a good frame.
  PostTx(d, VirtioNetHdr{}, frame, kTxBufs + 0x40000);
  const uint16_t total = 3 + std::size(bad) + 1;
  Kick(1);
  ASSERT_TRUE(WaitFor([&] { return tx_.UsedIdx() == total; }));
  for (uint16_t i = 0; i < total; ++i) EXPECT_EQ(tx_.UsedElem(i).second, 0u);
  auto got = ReceiveOnNet();
  ASSERT_EQ(got.size(), 212u);
  EXPECT_EQ(std::vector<uint8_t>(got.begin() + 12, got.end()), frame);
  EXPECT_TRUE(ReceiveOnNet(50).empty()) << "only the good frame reached the TAP";
  auto c = net_->counters();
  EXPECT_EQ(c.tx_dropped_writable, 1u);
  EXPECT_EQ(c.tx_dropped_short, 1u);
  EXPECT_EQ(c.tx_dropped_too_long, 1u);
  EXPECT_EQ(c.tx_dropped_bad_header, std::size(bad));
  EXPECT_EQ(c.tx_frames, 1u);
  // RX still works.
  SendFromNet(VirtioNetHdr{}, frame);
  ASSERT_TRUE(WaitFor([&] { return rx_.UsedIdx() == 1; }));
  EXPECT_EQ(net_->counters().rx_frames, 1u);
}

TEST_F(NetTest, HostileRxBuffersAreReturnedUnusedAndTxKeepsWorking) {
  Start(0);
  // A readable descriptor in an RX chain, then one too small for a header, then a good one.
  rx_.WriteChain(0, {{kRxBufs, 64, false}, {kRxBufs + 0x100, 64, true}});
  rx_.Publish(0);
  rx_.WriteChain(2, {{kRxBufs + 0x200, 8, true}});
  rx_.Publish(2);
  PostRx(3, kRxBufs + 0x1000, 2048);
  Kick(0);
  ASSERT_TRUE(WaitFor([&] { return net_->counters().rx_bad_chains == 2; }));
  ASSERT_TRUE(WaitFor([&] { return rx_.UsedIdx() == 2; }));
  EXPECT_EQ(rx_.UsedElem(0).second, 0u);
  EXPECT_EQ(rx_.UsedElem(1).second, 0u);
  auto frame = Pattern(80, 1);
  PostTx(0, VirtioNetHdr{}, frame);
  Kick(1);
  EXPECT_EQ(ReceiveOnNet().size(), 92u);
  SendFromNet(VirtioNetHdr{}, frame);
  ASSERT_TRUE(WaitFor([&] { return rx_.UsedIdx() == 3; }));
  EXPECT_EQ(rx_.UsedElem(2), std::make_pair(3u, 92u));
}

TEST_F(NetTest, AFullRingIsDrainedAcrossBudgetedRounds) {
  Start(0);
  // As many chains as one round's budget (64 chains): the round ends on the budget and the
  // worker reschedules itself; every frame goes out, in order.
  constexpr uint16_t kChains = kRingSize;
  for (uint16_t i = 0; i < kChains; ++i) {
    uint64_t a = kTxBufs + i * 0x200;
    ASSERT_TRUE(mem_.WriteObj(a, VirtioNetHdr{}).ok());
    ASSERT_TRUE(mem_.Write(a + 12, Pattern(40, static_cast<uint8_t>(i))).ok());
    tx_.WriteChain(i, {{a, 52, false}});
    tx_.Publish(i);
  }
  Kick(1);
  for (uint16_t i = 0; i < kChains; ++i) {
    auto got = ReceiveOnNet();
    ASSERT_EQ(got.size(), 52u) << i;
    EXPECT_EQ(got[12], static_cast<uint8_t>(i)) << "in order";
  }
  EXPECT_TRUE(WaitFor([&] { return tx_.UsedIdx() == kChains; }));
}

TEST(NetHeaderTest, CheckTxHeader) {
  const uint64_t all = Bit(kNetFCsum) | Bit(kNetFHostTso4) | Bit(kNetFHostTso6) | Bit(kNetFHostEcn);
  EXPECT_EQ(CheckTxHeader(VirtioNetHdr{}, 60, 0), nullptr);
  VirtioNetHdr tso{kNetHdrFNeedsCsum, kNetHdrGsoTcpv6 | kNetHdrGsoEcn, 74, 1440, 54, 16, 0};
  EXPECT_EQ(CheckTxHeader(tso, 3000, all), nullptr);
  EXPECT_NE(CheckTxHeader(tso, 3000, all & ~Bit(kNetFHostEcn)), nullptr);
  tso.flags = 0;
  EXPECT_NE(CheckTxHeader(tso, 3000, all), nullptr) << "GSO needs a partial checksum";
  VirtioNetHdr udp{kNetHdrFNeedsCsum, kNetHdrGsoUdp, 42, 1400, 34, 6, 0};
  EXPECT_NE(CheckTxHeader(udp, 3000, all), nullptr) << "UFO is never offered";
  VirtioNetHdr csum{kNetHdrFNeedsCsum, 0, 0, 0, 34, 16, 0};
  EXPECT_EQ(CheckTxHeader(csum, 52, all), nullptr);
  EXPECT_NE(CheckTxHeader(csum, 51, all), nullptr);
  EXPECT_NE(CheckTxHeader(csum, 100, 0), nullptr) << "CSUM not negotiated";
}

}  // namespace
}  // namespace crosvm::devices::virtio
