#include "devices/virtio/balloon.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "base/eventfd.h"
#include "base/logging.h"
#include "devices/pci/pci_config.h"
#include "devices/virtio/device_control.h"

namespace crosvm::devices::virtio {

// --- BalloonPageTracker ---

BalloonPageTracker::BalloonPageTracker(const memory::GuestMemory* mem, BalloonCounters* counters)
    : mem_(mem), counters_(counters) {
  for (const auto& r : mem_->regions()) present_.emplace_back(r.size / kBalloonPageSize, false);
}

bool BalloonPageTracker::Locate(uint32_t pfn, size_t* region, uint64_t* page) const {
  uint64_t gpa = uint64_t{pfn} << kBalloonPageShift;
  const auto& regions = mem_->regions();
  for (size_t i = 0; i < regions.size(); ++i) {
    if (gpa >= regions[i].guest_addr && gpa + kBalloonPageSize <= regions[i].end()) {
      *region = i;
      *page = (gpa - regions[i].guest_addr) / kBalloonPageSize;
      return true;
    }
  }
  return false;
}

void BalloonPageTracker::Inflate(std::span<const uint32_t> pfns) {
  // Consecutive pages are released with one fallocate; `run` is the pending range of the memfd.
  uint64_t run_off = 0, run_len = 0;
  auto flush = [&] {
    if (run_len == 0) return;
    if (fallocate(mem_->memfd(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                  static_cast<off_t>(run_off), static_cast<off_t>(run_len)) != 0) {
      counters_->punch_failures.fetch_add(run_len / kBalloonPageSize);
      log_.Warn(std::string("virtio-balloon: releasing guest pages: ") + strerror(errno));
    }
    run_len = 0;
  };
  for (uint32_t pfn : pfns) {
    size_t r;
    uint64_t page;
    if (!Locate(pfn, &r, &page)) {
      counters_->bad_pfns.fetch_add(1);
      continue;
    }
    if (present_[r][page]) {
      counters_->repeated_pfns.fetch_add(1);
      continue;
    }
    present_[r][page] = true;
    ++in_balloon_;
    counters_->inflated.fetch_add(1);
    uint64_t off = mem_->regions()[r].memfd_offset + page * kBalloonPageSize;
    if (run_len != 0 && off == run_off + run_len) {
      run_len += kBalloonPageSize;
    } else {
      flush();
      run_off = off;
      run_len = kBalloonPageSize;
    }
  }
  flush();
}

void BalloonPageTracker::Deflate(std::span<const uint32_t> pfns) {
  for (uint32_t pfn : pfns) {
    size_t r;
    uint64_t page;
    if (!Locate(pfn, &r, &page)) {
      counters_->bad_pfns.fetch_add(1);
    } else if (!present_[r][page]) {
      counters_->unknown_deflates.fetch_add(1);
    } else {
      present_[r][page] = false;
      --in_balloon_;
      counters_->deflated.fetch_add(1);
    }
  }
}

void BalloonPageTracker::Clear() {
  for (auto& v : present_) std::fill(v.begin(), v.end(), false);
  in_balloon_ = 0;
}

// --- BalloonDevice ---

struct BalloonDevice::Shared {
  // Worker thread only.
  memory::GuestMemory* mem = nullptr;
  Interrupt* interrupt = nullptr;
  std::vector<Queue> queues;
  std::vector<int> queue_fds;
  BalloonPageTracker tracker;
  RateLimitedLog log;
  std::optional<uint16_t> held_stats;  // the driver's stats buffer, kept until we want more
  std::shared_ptr<std::atomic<bool>> stop = std::make_shared<std::atomic<bool>>(false);
  base::EventFd stats_request;
  bool stats_ready = false;  // the driver enabled the stats queue
  // Shared with RequestStats.
  std::mutex mu;
  std::condition_variable cv;
  uint64_t stats_seq = 0;
  std::vector<BalloonStatEntry> stats;

  BalloonCounters* counters;

  Shared(const memory::GuestMemory* m, BalloonCounters* c, base::EventFd req)
      : tracker(m, c), stats_request(std::move(req)), counters(c) {}

  // Reads the PFN array of one inflate or deflate chain (at most kMaxPfnsPerChain).
  std::vector<uint32_t> ReadPfns(const DescriptorChain& chain, BalloonCounters* counters) {
    uint64_t n = chain.readable_bytes / 4;
    if (n > BalloonPageTracker::kMaxPfnsPerChain) {
      counters->excess_pfns.fetch_add(n - BalloonPageTracker::kMaxPfnsPerChain);
      n = BalloonPageTracker::kMaxPfnsPerChain;
    }
    if (n == 0) return {};
    std::vector<uint32_t> pfns(n);
    ChainReader reader(*mem, chain);
    if (!reader.Read({reinterpret_cast<uint8_t*>(pfns.data()), n * 4})) return {};
    for (auto& p : pfns) p = le32toh(p);
    return pfns;
  }

  // Takes the driver's stats buffers; the newest is kept (the driver sends one at a time).
  void ServeStats() {
    Queue& q = queues[kStatsQueue];
    DescriptorChain chain;
    std::string error;
    while (!stop->load() && interrupt->bus_master()) {
      auto r = q.Pop(&chain, &error);
      if (r == Queue::PopResult::kEmpty) {
        if (q.EnableNotification()) continue;
        break;
      }
      if (r == Queue::PopResult::kBroken) {
        log.Warn("virtio-balloon: stats queue: " + error + "; the device needs a reset");
        interrupt->SetNeedsReset();
        break;
      }
      if (r == Queue::PopResult::kBadChain) {
        log.Warn("virtio-balloon: stats queue: " + error + "; returned unused");
        q.AddUsed(chain.head, 0);
        continue;
      }
      size_t n = std::min<uint64_t>(chain.readable_bytes / 10, kMaxStats);
      std::vector<uint8_t> raw(n * 10);
      ChainReader reader(*mem, chain);
      std::vector<BalloonStatEntry> entries;
      if (reader.Read(raw)) {
        for (size_t i = 0; i < n; ++i) {
          BalloonStatEntry e;
          uint16_t tag;
          uint64_t value;
          std::memcpy(&tag, &raw[i * 10], 2);
          std::memcpy(&value, &raw[i * 10 + 2], 8);
          e.tag = le16toh(tag);
          e.value = le64toh(value);
          entries.push_back(e);
        }
      }
      if (held_stats) q.AddUsed(*held_stats, 0);  // a second buffer: give the old one back
      held_stats = chain.head;
      {
        std::lock_guard lock(mu);
        stats = std::move(entries);
        ++stats_seq;
      }
      counters->stats_buffers.fetch_add(1);
      cv.notify_all();
    }
    if (q.NeedsInterrupt()) interrupt->SignalQueue(q.msix_vector);
  }

  // Someone wants fresh stats: hand the buffer back so the driver refills it.
  void GiveBackStats() {
    if (!held_stats || !interrupt->bus_master()) return;
    Queue& q = queues[kStatsQueue];
    q.AddUsed(*held_stats, 0);
    held_stats.reset();
    if (q.NeedsInterrupt()) interrupt->SignalQueue(q.msix_vector);
  }
};

BalloonDevice::BalloonDevice(const memory::GuestMemory* mem) : mem_(mem) {}

BalloonDevice::~BalloonDevice() {
  Reset();
  CROSVM_LOG(INFO) << "virtio-balloon: " << counters_.inflated.load() << " pages inflated, "
                   << counters_.deflated.load() << " deflated; ignored "
                   << counters_.bad_pfns.load() << " bad, " << counters_.repeated_pfns.load()
                   << " repeated, " << counters_.unknown_deflates.load() << " unknown deflates, "
                   << counters_.excess_pfns.load() << " excess";
}

uint32_t BalloonDevice::PciClassCode() const {
  return pci::kClassOther;
}

uint64_t BalloonDevice::Features() const {
  return Bit(kBalloonFStatsVq) | Bit(kBalloonFDeflateOnOom) | Bit(kFeatureRingIndirectDesc) |
         Bit(kFeatureRingEventIdx);
}

void BalloonDevice::ReadConfig(uint64_t offset, std::span<uint8_t> data) const {
  uint8_t cfg[8];
  uint32_t num = htole32(num_pages_.load()), actual = htole32(actual_.load());
  std::memcpy(cfg, &num, 4);
  std::memcpy(cfg + 4, &actual, 4);
  for (size_t i = 0; i < data.size(); ++i) data[i] = offset + i < sizeof(cfg) ? cfg[offset + i] : 0;
}

void BalloonDevice::WriteConfig(uint64_t offset, std::span<const uint8_t> data) {
  // Only `actual` (bytes 4..7) belongs to the driver; partial writes update their bytes.
  if (offset < 4 || offset >= 8 || data.size() > 8 - offset) return;
  uint32_t v = le32toh(actual_.load());
  uint8_t bytes[4];
  std::memcpy(bytes, &v, 4);
  std::memcpy(bytes + (offset - 4), data.data(), data.size());
  std::memcpy(&v, bytes, 4);
  actual_.store(le32toh(v));
}

void BalloonDevice::AppendKeptFds(std::vector<int>& fds) const {
  fds.push_back(mem_->memfd());
}

base::Result<std::vector<uint8_t>> BalloonDevice::Control(uint32_t op,
                                                          std::span<const uint8_t> payload) {
  switch (static_cast<ControlOp>(op)) {
    case ControlOp::kBalloonSetTarget: {
      CROSVM_ASSIGN_OR_RETURN(uint64_t bytes, DecodeU64(payload, "balloon target"));
      uint64_t target = SetTarget(bytes);
      return EncodeBalloonState({target, actual_bytes()});
    }
    case ControlOp::kBalloonQuery:
      CROSVM_RETURN_IF_ERROR(DecodeEmpty(payload, "balloon query"));
      return EncodeBalloonState({target_bytes(), actual_bytes()});
    case ControlOp::kBalloonStats: {
      CROSVM_RETURN_IF_ERROR(DecodeEmpty(payload, "balloon stats"));
      auto stats = RequestStats(kStatsTimeout);
      if (!stats.ok()) return base::Error(stats.error().message(), EAGAIN);
      std::vector<BalloonControlStat> out;
      for (const auto& e : *stats) out.push_back({e.tag, e.value});
      return EncodeBalloonStats({target_bytes(), actual_bytes()}, out);
    }
    default:
      return VirtioDevice::Control(op, payload);
  }
}

uint64_t BalloonDevice::SetTarget(uint64_t bytes) {
  uint64_t pages = std::min(bytes / kBalloonPageSize, mem_->total_size() / kBalloonPageSize);
  pages = std::min<uint64_t>(pages, UINT32_MAX);
  std::lock_guard lock(mu_);
  num_pages_.store(static_cast<uint32_t>(pages));
  generation_.fetch_add(1);
  if (interrupt_ != nullptr) interrupt_->SignalConfigChanged();
  return pages * kBalloonPageSize;
}

base::Status BalloonDevice::Activate(ActivateContext ctx) {
  Reset();
  if (ctx.queues.size() < 2 || !ctx.queues[kInflateQueue].ready ||
      !ctx.queues[kDeflateQueue].ready) {
    return base::Error("virtio-balloon: the driver did not enable the inflate and deflate queues");
  }
  CROSVM_ASSIGN_OR_RETURN(auto req, base::EventFd::Create(EFD_NONBLOCK | EFD_CLOEXEC));
  auto shared = std::make_shared<Shared>(ctx.mem, &counters_, std::move(req));
  shared->mem = ctx.mem;
  shared->interrupt = ctx.interrupt;
  shared->stats_ready = (ctx.features & Bit(kBalloonFStatsVq)) && ctx.queues.size() > kStatsQueue &&
                        ctx.queues[kStatsQueue].ready;
  shared->queues = std::move(ctx.queues);
  shared->queue_fds = std::move(ctx.queue_fds);

  std::vector<Worker::Source> sources;
  for (size_t qi : {kInflateQueue, kDeflateQueue}) {
    Shared* s = shared.get();
    BalloonCounters* counters = &counters_;
    sources.push_back({s->queue_fds[qi], [s, qi, counters] {
                         bool more = false;
                         DrainQueue(
                             "virtio-balloon", s->queues[qi], *s->interrupt, s->log,
                             [&](const DescriptorChain& c) {
                               auto pfns = s->ReadPfns(c, counters);
                               if (qi == kInflateQueue) {
                                 s->tracker.Inflate(pfns);
                               } else {
                                 s->tracker.Deflate(pfns);
                               }
                               return 0u;  // the device writes nothing
                             },
                             s->stop.get(), {}, &more);
                         if (more) {
                           uint64_t one = 1;
                           (void)!write(s->queue_fds[qi], &one, sizeof(one));
                         }
                       }});
  }
  if (shared->stats_ready) {
    Shared* s = shared.get();
    sources.push_back({s->queue_fds[kStatsQueue], [s] { s->ServeStats(); }});
    sources.push_back({s->stats_request.fd(), [s] { s->GiveBackStats(); }});
  }
  sources.push_back(
      {ctx.interrupt->resample_fd(), [s = shared.get()] { s->interrupt->Resample(); }});
  CROSVM_ASSIGN_OR_RETURN(auto worker,
                          Worker::Start("virtio-balloon", std::move(sources), shared->stop));
  std::lock_guard lock(mu_);
  interrupt_ = ctx.interrupt;
  shared_ = std::move(shared);
  worker_ = std::move(worker);
  return base::Ok();
}

void BalloonDevice::Reset() {
  std::unique_ptr<Worker> worker;
  std::shared_ptr<Shared> shared;
  {
    std::lock_guard lock(mu_);
    worker = std::move(worker_);
    shared = std::move(shared_);
    interrupt_ = nullptr;
  }
  worker.reset();  // joins: nothing touches guest memory after this
  if (shared) {
    std::lock_guard lock(shared->mu);
    shared->stats_seq = UINT64_MAX;  // wakes RequestStats callers, who see the reset
    shared->cv.notify_all();
  }
  // A reset driver holds no balloon; what it reported is void.
  actual_.store(0);
}

base::Result<std::vector<BalloonStatEntry>> BalloonDevice::RequestStats(
    std::chrono::milliseconds timeout) {
  std::shared_ptr<Shared> shared;
  {
    std::lock_guard lock(mu_);
    shared = shared_;
  }
  if (!shared) return base::Error("virtio-balloon: the guest's balloon driver is not running");
  if (!shared->stats_ready)
    return base::Error("virtio-balloon: the guest's driver did not enable the stats queue");
  std::unique_lock lock(shared->mu);
  uint64_t seq = shared->stats_seq;
  CROSVM_RETURN_IF_ERROR(shared->stats_request.Write());
  if (!shared->cv.wait_for(lock, timeout, [&] { return shared->stats_seq != seq; })) {
    return base::Error("virtio-balloon: no statistics from the guest within " +
                       std::to_string(timeout.count()) + " ms");
  }
  if (shared->stats_seq == UINT64_MAX) return base::Error("virtio-balloon: the device was reset");
  return shared->stats;
}

}  // namespace crosvm::devices::virtio
