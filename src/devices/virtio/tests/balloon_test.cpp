// virtio-balloon: inflate releases the memfd's pages, deflate accounting, hostile page numbers,
// configuration and its generation, the config-change interrupt, the stats round trip.
#include "devices/virtio/balloon.h"

#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "devices/virtio/tests/test_driver.h"
#include "devices/virtio/virtio.h"

namespace crosvm::devices::virtio {
namespace {

using namespace std::chrono_literals;
using testing::TestQueue;

constexpr uint64_t kMiB = 1 << 20;
// Two RAM regions with a gap: [0, 3 MiB) and [4 MiB, 5 MiB). PFNs 768..1023 are the gap.
memory::GuestMemory MakeGappedMemory() {
  auto m = memory::GuestMemory::Create({{0, 3 * kMiB}, {4 * kMiB, kMiB}});
  EXPECT_TRUE(m.ok());
  return std::move(*m);
}

uint64_t MemfdBytes(const memory::GuestMemory& mem) {
  struct stat st {};
  EXPECT_EQ(fstat(mem.memfd(), &st), 0);
  return uint64_t(st.st_blocks) * 512;
}

void Touch(memory::GuestMemory& mem, uint64_t gpa, uint64_t len, uint8_t v) {
  std::vector<uint8_t> buf(len, v);
  ASSERT_TRUE(mem.Write(gpa, buf).ok());
}

TEST(BalloonTrackerTest, InflateReleasesMemoryAndDeflateAccounts) {
  auto mem = MakeGappedMemory();
  BalloonCounters c;
  BalloonPageTracker t(&mem, &c);
  Touch(mem, 2 * kMiB, 64 * 4096, 0xab);      // PFNs 512..575
  Touch(mem, 4 * kMiB, 16 * 4096, 0xcd);      // PFNs 1024..1039 (second region)
  Touch(mem, 2 * kMiB + 64 * 4096, 4096, 1);  // PFN 576: a neighbour that stays
  uint64_t before = MemfdBytes(mem);
  std::vector<uint32_t> pfns;
  for (uint32_t p = 512; p < 576; ++p) pfns.push_back(p);
  for (uint32_t p = 1039; p >= 1024; --p) pfns.push_back(p);  // not in order
  t.Inflate(pfns);
  EXPECT_EQ(c.inflated.load(), 80u);
  EXPECT_EQ(t.pages_in_balloon(), 80u);
  EXPECT_LE(MemfdBytes(mem), before - 80 * 4096) << "the memfd gave the pages back";
  EXPECT_EQ(*mem.ReadObj<uint8_t>(2 * kMiB + 100), 0) << "a released page reads as zero";
  EXPECT_EQ(*mem.ReadObj<uint8_t>(4 * kMiB + 15 * 4096), 0);
  EXPECT_EQ(*mem.ReadObj<uint8_t>(2 * kMiB + 64 * 4096), 1) << "the neighbour is intact";
  EXPECT_EQ(c.punch_failures.load(), 0u);

  // Deflate half; the pages come back when touched.
  std::vector<uint32_t> back(pfns.begin(), pfns.begin() + 40);
  t.Deflate(back);
  EXPECT_EQ(c.deflated.load(), 40u);
  EXPECT_EQ(t.pages_in_balloon(), 40u);
  uint64_t low = MemfdBytes(mem);
  Touch(mem, 2 * kMiB, 40 * 4096, 7);
  // 39: the read of PFN 512 above already brought its page back.
  EXPECT_GE(MemfdBytes(mem), low + 39 * 4096);
  // Deflating again is not counted twice; re-inflating a deflated page works.
  t.Deflate(back);
  EXPECT_EQ(c.deflated.load(), 40u);
  EXPECT_EQ(c.unknown_deflates.load(), 40u);
  t.Inflate(std::vector<uint32_t>{512});
  EXPECT_EQ(c.inflated.load(), 81u);
  t.Clear();
  EXPECT_EQ(t.pages_in_balloon(), 0u);
}

TEST(BalloonTrackerTest, HostilePageNumbersAreCountedAndIgnored) {
  auto mem = MakeGappedMemory();
  BalloonCounters c;
  BalloonPageTracker t(&mem, &c);
  Touch(mem, 3 * kMiB - 4096, 4096, 9);  // the last page before the gap
  uint64_t before = MemfdBytes(mem);
  // In the gap, just past RAM, far past RAM, the largest PFN, and a repeat.
  t.Inflate(std::vector<uint32_t>{768, 1023, 1280, 1u << 30, 0xffffffffu, 100, 100, 100});
  EXPECT_EQ(c.bad_pfns.load(), 5u);
  EXPECT_EQ(c.repeated_pfns.load(), 2u);
  EXPECT_EQ(c.inflated.load(), 1u);
  EXPECT_EQ(*mem.ReadObj<uint8_t>(3 * kMiB - 4096), 9) << "a gap PFN released nothing nearby";
  EXPECT_GE(MemfdBytes(mem), before - 4096);
  t.Deflate(std::vector<uint32_t>{768, 0xffffffffu, 200});
  EXPECT_EQ(c.bad_pfns.load(), 7u);
  EXPECT_EQ(c.unknown_deflates.load(), 1u);
  EXPECT_EQ(c.deflated.load(), 0u);
}

TEST(BalloonDeviceTest, IdentityAndFeatures) {
  auto mem = MakeGappedMemory();
  BalloonDevice d(&mem);
  EXPECT_EQ(d.DeviceType(), 5u);
  EXPECT_EQ(d.QueueMaxSizes().size(), 3u);
  EXPECT_TRUE(d.Features() & Bit(kBalloonFStatsVq));
  EXPECT_TRUE(d.Features() & Bit(kBalloonFDeflateOnOom));
  EXPECT_FALSE(d.Features() & Bit(kBalloonFMustTellHost));
  std::vector<int> fds;
  d.AppendKeptFds(fds);
  EXPECT_EQ(fds, std::vector<int>{mem.memfd()});
}

TEST(BalloonDeviceTest, ConfigTargetGenerationAndActual) {
  auto mem = MakeGappedMemory();
  BalloonDevice d(&mem);
  uint8_t cfg[12];
  d.ReadConfig(0, cfg);
  EXPECT_EQ(std::vector<uint8_t>(cfg, cfg + 12), std::vector<uint8_t>(12, 0));
  EXPECT_EQ(d.ConfigGeneration(), 0u);
  EXPECT_EQ(d.SetTarget(kMiB + 100), kMiB) << "whole pages";
  EXPECT_EQ(d.ConfigGeneration(), 1u);
  d.ReadConfig(0, {cfg, 4});
  EXPECT_EQ(cfg[0] | cfg[1] << 8, 256);
  // More than RAM is capped at RAM (4 MiB = 1024 pages).
  EXPECT_EQ(d.SetTarget(uint64_t{1} << 50), 4 * kMiB);
  EXPECT_EQ(d.ConfigGeneration(), 2u);
  d.ReadConfig(1, {cfg, 2});
  EXPECT_EQ(cfg[0], 4) << "1024 = 0x400, byte 1";
  // The driver writes `actual`; its write does not change the generation. num_pages is ours.
  uint8_t actual[4] = {0x10, 0, 0, 0};
  d.WriteConfig(4, actual);
  EXPECT_EQ(d.actual_bytes(), 16 * 4096u);
  uint8_t hi = 1;
  d.WriteConfig(5, {&hi, 1});
  EXPECT_EQ(d.actual_bytes(), 0x110 * 4096u);
  d.WriteConfig(0, actual);
  d.WriteConfig(6, actual);  // crosses the end
  EXPECT_EQ(d.target_bytes(), 4 * kMiB);
  EXPECT_EQ(d.actual_bytes(), 0x110 * 4096u);
  EXPECT_EQ(d.ConfigGeneration(), 2u);
}

// The device activated on three test queues, as the transport would.
class BalloonActiveTest : public ::testing::Test {
 protected:
  void Activate(bool stats) {
    auto irq = Interrupt::Create(nullptr);
    ASSERT_TRUE(irq.ok());
    irq_ = std::move(*irq);
    ActivateContext ctx;
    ctx.mem = &mem_;
    ctx.interrupt = irq_.get();
    ctx.features = Bit(kFeatureVersion1) | (stats ? Bit(kBalloonFStatsVq) : 0);
    for (int i = 0; i < 3; ++i) {
      auto fd = base::EventFd::Create(EFD_NONBLOCK);
      ASSERT_TRUE(fd.ok());
      fds_.push_back(std::move(*fd));
      Queue q = tqs_[i].MakeDeviceQueue(0);
      if (i == 2 && !stats) q.ready = false;
      ctx.queues.push_back(q);
      ctx.queue_fds.push_back(fds_.back().fd());
    }
    ASSERT_TRUE(dev_.Activate(std::move(ctx)).ok());
  }
  // Sends `pfns` on queue `qi` and waits until the device used the chain.
  void Send(int qi, const std::vector<uint32_t>& pfns, uint64_t buf) {
    if (!pfns.empty()) {
      ASSERT_TRUE(
          mem_.Write(buf, {reinterpret_cast<const uint8_t*>(pfns.data()), pfns.size() * 4}).ok());
    }
    uint16_t head = next_head_[qi]++;
    tqs_[qi].WriteChain(head, {{buf, static_cast<uint32_t>(pfns.size() * 4), false}});
    uint16_t used = tqs_[qi].UsedIdx();
    tqs_[qi].Publish(head);
    ASSERT_TRUE(fds_[qi].Write().ok());
    ASSERT_TRUE(WaitUsed(qi, used + 1));
  }
  bool WaitUsed(int qi, uint16_t idx) {
    for (int i = 0; i < 2000; ++i) {
      if (tqs_[qi].UsedIdx() == idx) return true;
      std::this_thread::sleep_for(1ms);
    }
    return false;
  }

  memory::GuestMemory mem_ = MakeGappedMemory();
  TestQueue tqs_[3] = {TestQueue(mem_, 0x1000, 16), TestQueue(mem_, 0x4000, 16),
                       TestQueue(mem_, 0x8000, 16)};
  uint16_t next_head_[3] = {0, 0, 0};
  std::vector<base::EventFd> fds_;
  std::unique_ptr<Interrupt> irq_;
  BalloonDevice dev_{&mem_};
};

TEST_F(BalloonActiveTest, InflateAndDeflateThroughTheQueues) {
  Activate(true);
  Touch(mem_, 2 * kMiB, 32 * 4096, 0x5a);
  Touch(mem_, 0x10000, 4096, 0);  // the PFN array's page, so that it does not count below
  uint64_t before = MemfdBytes(mem_);
  std::vector<uint32_t> pfns;
  for (uint32_t p = 512; p < 544; ++p) pfns.push_back(p);
  Send(0, pfns, 0x10000);
  EXPECT_EQ(dev_.counters().inflated.load(), 32u);
  EXPECT_LE(MemfdBytes(mem_), before - 32 * 4096);
  EXPECT_EQ(*mem_.ReadObj<uint8_t>(2 * kMiB), 0);
  EXPECT_EQ(tqs_[0].UsedElem(0).second, 0u) << "the device writes nothing back";
  Send(1, {512, 513, 900}, 0x11000);
  EXPECT_EQ(dev_.counters().deflated.load(), 2u);
  EXPECT_EQ(dev_.counters().bad_pfns.load(), 1u);
  // A huge array: only kMaxPfnsPerChain page numbers are looked at, the rest counted.
  std::vector<uint32_t> huge(3 * BalloonPageTracker::kMaxPfnsPerChain, 0xfffffff0u);
  Send(0, huge, 0x20000);
  EXPECT_EQ(dev_.counters().excess_pfns.load(), 2 * BalloonPageTracker::kMaxPfnsPerChain);
  EXPECT_EQ(dev_.counters().bad_pfns.load(), 1 + BalloonPageTracker::kMaxPfnsPerChain);
  // An empty chain does no harm.
  Send(0, {}, 0x30000);
  dev_.Reset();
}

TEST_F(BalloonActiveTest, SetTargetSignalsConfigChange) {
  Activate(true);
  EXPECT_EQ(irq_->ReadAndClearIsr(), 0);
  uint32_t gen = dev_.ConfigGeneration();
  dev_.SetTarget(2 * kMiB);
  EXPECT_EQ(dev_.ConfigGeneration(), gen + 1);
  EXPECT_EQ(irq_->ReadAndClearIsr() & kIsrConfig, kIsrConfig);
  dev_.Reset();
  dev_.SetTarget(kMiB);  // no driver: no interrupt, but the target is kept for the next one
  EXPECT_EQ(irq_->ReadAndClearIsr(), 0);
  EXPECT_EQ(dev_.target_bytes(), kMiB);
}

TEST_F(BalloonActiveTest, StatsRoundTrip) {
  Activate(true);
  constexpr uint64_t kStats = 0x40000;
  auto write_stats = [&](uint64_t swap_in, uint64_t free_mem) {
    uint8_t raw[20] = {};
    uint16_t t0 = 0, t4 = 4;
    std::memcpy(raw, &t0, 2);
    std::memcpy(raw + 2, &swap_in, 8);
    std::memcpy(raw + 10, &t4, 2);
    std::memcpy(raw + 12, &free_mem, 8);
    ASSERT_TRUE(mem_.Write(kStats, raw).ok());
  };
  // The driver's first buffer at start-up, which the device keeps.
  write_stats(1, 1000);
  tqs_[2].WriteChain(0, {{kStats, 20, false}});
  tqs_[2].Publish(0);
  ASSERT_TRUE(fds_[2].Write().ok());
  for (int i = 0; i < 2000 && dev_.counters().stats_buffers.load() == 0; ++i)
    std::this_thread::sleep_for(1ms);
  ASSERT_EQ(dev_.counters().stats_buffers.load(), 1u);
  EXPECT_EQ(tqs_[2].UsedIdx(), 0) << "held, not returned";

  std::vector<BalloonStatEntry> stats;
  std::string error = "not run";
  std::thread pending([&] {
    auto r = dev_.RequestStats(2s);
    if (r.ok()) {
      stats = *r;
      error.clear();
    } else {
      error = r.error().ToString();
    }
  });
  // The device gives the buffer back; the driver refills and re-adds it.
  ASSERT_TRUE(WaitUsed(2, 1));
  EXPECT_EQ(tqs_[2].UsedElem(0).first, 0u);
  write_stats(2, 2000);
  tqs_[2].Publish(0);
  ASSERT_TRUE(fds_[2].Write().ok());
  pending.join();
  ASSERT_EQ(error, "");
  ASSERT_EQ(stats.size(), 2u);
  EXPECT_EQ(stats[0].tag, 0);
  EXPECT_EQ(stats[0].value, 2u);
  EXPECT_EQ(stats[1].tag, 4);
  EXPECT_EQ(stats[1].value, 2000u);

  // A driver that does not refill: a bounded wait.
  auto t0 = std::chrono::steady_clock::now();
  auto late = dev_.RequestStats(200ms);
  ASSERT_FALSE(late.ok());
  EXPECT_NE(late.error().message().find("within 200 ms"), std::string::npos);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  dev_.Reset();
  auto none = dev_.RequestStats(10ms);
  EXPECT_FALSE(none.ok()) << "no driver";
}

TEST_F(BalloonActiveTest, NoStatsQueueIsAClearError) {
  Activate(false);
  auto r = dev_.RequestStats(1s);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("stats queue"), std::string::npos);
}

}  // namespace
}  // namespace crosvm::devices::virtio
