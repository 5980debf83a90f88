// virtio-balloon (virtio 1.1, 5.5): the host sets a target (num_pages), the guest driver gives
// pages to the balloon (inflate queue) or takes them back (deflate queue) and reports how many
// it holds (actual). Guest RAM is a shared memfd, where MADV_DONTNEED frees nothing: inflated
// pages are returned to the host with fallocate(PUNCH_HOLE) on the memfd. A deflated page needs
// nothing: it faults back in (zeroed) when the guest touches it.
//
// Features: VIRTIO_BALLOON_F_STATS_VQ (the stats queue) and VIRTIO_BALLOON_F_DEFLATE_ON_OOM (the
// guest may take pages back under memory pressure instead of invoking its OOM killer).
// VIRTIO_BALLOON_F_MUST_TELL_HOST is not offered: it only matters to a device that must act
// before the guest reuses a deflated page, and this one does nothing on deflate.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "base/rate_limited_log.h"
#include "devices/virtio/virtio.h"
#include "devices/virtio/virtio_device.h"
#include "devices/virtio/worker.h"

namespace crosvm::devices::virtio {

// Feature bits (5.5.3).
inline constexpr int kBalloonFMustTellHost = 0;
inline constexpr int kBalloonFStatsVq = 1;
inline constexpr int kBalloonFDeflateOnOom = 2;
// The balloon's page size is fixed by the spec, whatever the guest's page size.
inline constexpr uint64_t kBalloonPageSize = 4096;
inline constexpr int kBalloonPageShift = 12;

// One stats entry as the driver sends it (struct virtio_balloon_stat, 10 bytes packed).
struct BalloonStatEntry {
  uint16_t tag = 0;
  uint64_t value = 0;
};

// What happened to the page numbers the driver sent; all hostile input lands in a counter.
struct BalloonCounters {
  std::atomic<uint64_t> inflated{0};          // pages released to the host
  std::atomic<uint64_t> deflated{0};          // pages taken back by the guest
  std::atomic<uint64_t> bad_pfns{0};          // outside guest RAM or in a gap between regions
  std::atomic<uint64_t> repeated_pfns{0};     // inflated while already in the balloon
  std::atomic<uint64_t> unknown_deflates{0};  // deflated while not in the balloon
  std::atomic<uint64_t> excess_pfns{0};       // past kMaxPfnsPerChain in one chain, not looked at
  std::atomic<uint64_t> punch_failures{0};    // fallocate refused (the page stays resident)
  std::atomic<uint64_t> stats_buffers{0};     // stats buffers received from the driver
};

// Which guest pages are in the balloon, and releasing their memory. Used by one thread.
class BalloonPageTracker {
 public:
  // Page numbers one chain may carry; Linux sends at most 256.
  static constexpr size_t kMaxPfnsPerChain = 1024;

  BalloonPageTracker(const memory::GuestMemory* mem, BalloonCounters* counters);
  void Inflate(std::span<const uint32_t> pfns);
  void Deflate(std::span<const uint32_t> pfns);
  // The driver was reset: it owns all its pages again.
  void Clear();
  uint64_t pages_in_balloon() const { return in_balloon_; }

 private:
  // The region index and page index in it of `pfn`, or false for a page not in guest RAM.
  bool Locate(uint32_t pfn, size_t* region, uint64_t* page) const;

  const memory::GuestMemory* mem_;
  BalloonCounters* counters_;
  std::vector<std::vector<bool>> present_;  // per region, per 4 KiB page
  uint64_t in_balloon_ = 0;
  RateLimitedLog log_;
};

class BalloonDevice : public VirtioDevice {
 public:
  static constexpr uint16_t kQueueSize = 128;
  static constexpr size_t kMaxStats = 64;
  static constexpr size_t kInflateQueue = 0, kDeflateQueue = 1, kStatsQueue = 2;

  // `mem` is the guest RAM the device will be activated with; it must outlive the device.
  explicit BalloonDevice(const memory::GuestMemory* mem);
  ~BalloonDevice() override;

  uint32_t DeviceType() const override { return kTypeBalloon; }
  std::string DebugName() const override { return "virtio-balloon"; }
  uint32_t PciClassCode() const override;
  std::vector<uint16_t> QueueMaxSizes() const override {
    return {kQueueSize, kQueueSize, kQueueSize};
  }
  uint64_t Features() const override;
  void ReadConfig(uint64_t offset, std::span<uint8_t> data) const override;
  void WriteConfig(uint64_t offset, std::span<const uint8_t> data) override;
  uint32_t ConfigGeneration() const override { return generation_.load(); }
  base::Status Activate(ActivateContext ctx) override;
  void Reset() override;

  // The fds a jailed device process must keep: the guest memory's memfd.
  void AppendKeptFds(std::vector<int>& fds) const override;
  // BalloonSetTarget, BalloonQuery and BalloonStats (device_control.h). Stats wait at most
  // kStatsTimeout for the driver; no answer is EAGAIN.
  base::Result<std::vector<uint8_t>> Control(uint32_t op,
                                             std::span<const uint8_t> payload) override;
  static constexpr std::chrono::milliseconds kStatsTimeout{1000};

  // Sets the balloon's target size (rounded down to 4 KiB pages, at most all of guest RAM),
  // bumps the configuration generation and interrupts the driver. Returns the target set, in
  // bytes. Thread-safe.
  uint64_t SetTarget(uint64_t bytes);
  uint64_t target_bytes() const { return uint64_t{num_pages_.load()} * kBalloonPageSize; }
  // What the driver last reported holding (its `actual` config field), in bytes.
  uint64_t actual_bytes() const { return uint64_t{actual_.load()} * kBalloonPageSize; }

  // Asks the driver for fresh statistics (gives its stats buffer back) and waits up to
  // `timeout` for them. Fails if the driver did not enable the stats queue or does not answer in
  // time. Thread-safe; call it from the control thread, never from the device's worker.
  base::Result<std::vector<BalloonStatEntry>> RequestStats(std::chrono::milliseconds timeout);

  const BalloonCounters& counters() const { return counters_; }

 private:
  struct Shared;  // state the worker thread and the control thread share

  const memory::GuestMemory* mem_;
  std::atomic<uint32_t> num_pages_{0};
  std::atomic<uint32_t> actual_{0};
  std::atomic<uint32_t> generation_{0};
  BalloonCounters counters_;
  std::mutex mu_;  // interrupt_ and shared_ against Activate/Reset
  Interrupt* interrupt_ = nullptr;
  std::shared_ptr<Shared> shared_;
  std::unique_ptr<Worker> worker_;
};

}  // namespace crosvm::devices::virtio
