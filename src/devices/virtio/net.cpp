#include "devices/virtio/net.h"

#include <limits.h>
#include <linux/if_tun.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <vector>

#include "base/event_loop.h"
#include "base/logging.h"
#include "devices/pci/pci_config.h"

namespace crosvm::devices::virtio {

struct NetDevice::Counters {
  std::atomic<uint64_t> rx_frames{0}, rx_bytes{0}, tx_frames{0}, tx_bytes{0};
  std::atomic<uint64_t> rx_dropped_too_big{0}, rx_dropped_short{0}, rx_bad_chains{0},
      rx_read_errors{0};
  std::atomic<uint64_t> tx_dropped_writable{0}, tx_dropped_short{0}, tx_dropped_too_long{0},
      tx_dropped_bad_header{0}, tx_write_errors{0};
  std::atomic<uint64_t> rx_tap_wakeups{0}, rx_poll_stops{0};
  std::atomic<bool> rx_polling{false};
};

namespace {

constexpr size_t kRxQueue = 0;
constexpr size_t kTxQueue = 1;
// The most iovecs one readv/writev takes (IOV_MAX); RX holds chains up to this many pieces.
constexpr size_t kMaxIov = IOV_MAX;
// Frames read per TAP wake-up before the worker looks at its other events again (the TAP fd is
// level-triggered, so what is left wakes it again at once).
constexpr int kRxBudgetFrames = 64;

void Bump(std::atomic<uint64_t>& c, uint64_t n = 1) {
  c.fetch_add(n, std::memory_order_relaxed);
}

// Which TUN_F_* flags the TAP should use for the driver's negotiated features: the GUEST_*
// features say what the guest can receive.
uint32_t TunFlagsFor(uint64_t features) {
  uint32_t f = 0;
  if (!(features & Bit(kNetFGuestCsum))) return 0;  // every offload below needs it
  f |= TUN_F_CSUM;
  if (features & Bit(kNetFGuestTso4)) f |= TUN_F_TSO4;
  if (features & Bit(kNetFGuestTso6)) f |= TUN_F_TSO6;
  if ((features & Bit(kNetFGuestEcn)) && (f & (TUN_F_TSO4 | TUN_F_TSO6))) f |= TUN_F_TSO_ECN;
  return f;
}

}  // namespace

const char* CheckTxHeader(const VirtioNetHdr& hdr, uint64_t frame_len, uint64_t features) {
  if (hdr.flags & ~(kNetHdrFNeedsCsum | kNetHdrFDataValid)) return "unknown header flags";
  if (hdr.flags & kNetHdrFNeedsCsum) {
    if (!(features & Bit(kNetFCsum))) return "NEEDS_CSUM without VIRTIO_NET_F_CSUM";
    if (uint64_t{hdr.csum_start} + hdr.csum_offset + 2 > frame_len) {
      return "checksum position outside the frame";
    }
  }
  const uint8_t gso = hdr.gso_type & ~kNetHdrGsoEcn;
  const bool ecn = hdr.gso_type & kNetHdrGsoEcn;
  switch (gso) {
    case kNetHdrGsoNone:
      if (ecn) return "ECN bit without a GSO type";
      return nullptr;
    case kNetHdrGsoTcpv4:
      if (!(features & Bit(kNetFHostTso4))) return "TCPv4 GSO without VIRTIO_NET_F_HOST_TSO4";
      break;
    case kNetHdrGsoTcpv6:
      if (!(features & Bit(kNetFHostTso6))) return "TCPv6 GSO without VIRTIO_NET_F_HOST_TSO6";
      break;
    default:
      return "unknown gso_type";
  }
  if (ecn && !(features & Bit(kNetFHostEcn))) return "ECN GSO without VIRTIO_NET_F_HOST_ECN";
  if (!(hdr.flags & kNetHdrFNeedsCsum)) return "GSO frame without NEEDS_CSUM";
  if (hdr.gso_size == 0) return "GSO frame with gso_size 0";
  if (hdr.hdr_len > frame_len) return "hdr_len beyond the frame";
  return nullptr;
}

// Everything the worker thread owns; touched only on that thread once it runs.
struct NetDevice::Engine {
  // A posted RX chain the device holds until a frame fills it.
  struct Held {
    uint16_t head;
    std::vector<iovec> iov;
    uint64_t capacity;
  };

  Engine(std::string name_in, const ActivateContext& ctx, net::TapInterface* tap_in,
         Counters* counters_in, std::shared_ptr<std::atomic<bool>> stop_in)
      : name(std::move(name_in)),
        mem(ctx.mem),
        interrupt(ctx.interrupt),
        rxq(ctx.queues[kRxQueue]),
        txq(ctx.queues[kTxQueue]),
        rx_fd(ctx.queue_fds[kRxQueue]),
        tx_fd(ctx.queue_fds[kTxQueue]),
        features(ctx.features),
        tap(tap_in),
        counters(counters_in),
        stop(std::move(stop_in)),
        mrg(ctx.features & Bit(kNetFMrgRxbuf)) {}

  std::string name;
  memory::GuestMemory* mem;
  Interrupt* interrupt;
  Queue rxq, txq;
  int rx_fd, tx_fd;
  uint64_t features;
  net::TapInterface* tap;
  Counters* counters;
  std::shared_ptr<std::atomic<bool>> stop;
  base::EventLoop* loop = nullptr;
  RateLimitedLog log;
  bool mrg;
  bool rx_broken = false;  // the RX ring is inconsistent: the driver must reset the device
  bool rx_polling = false;
  bool rx_paused = false;  // the TAP failed a read: not waited on until the next RX kick
  bool rx_signal = false;  // used RX elements not yet signalled
  std::deque<Held> held;
  uint64_t held_capacity = 0;
  size_t held_iovs = 0;
  std::vector<iovec> iov_scratch;

  // With mergeable buffers, hold enough for the largest frame; otherwise one chain per frame.
  bool WantMore() const {
    if (!mrg) return held.empty();
    return held_capacity < kHdrSize + kMaxFrameBytes && held_iovs + kQueueSize <= kMaxIov;
  }

  void FillHeld() {
    if (rx_broken || !interrupt->bus_master()) return;
    DescriptorChain chain;
    std::string error;
    // Bounded: every pass pops a chain (at most the ring's size before it runs dry) or ends.
    while (WantMore() && !stop->load(std::memory_order_relaxed)) {
      auto r = rxq.Pop(&chain, &error);
      if (r == Queue::PopResult::kEmpty) {
        if (!rxq.EnableNotification()) break;
        continue;
      }
      if (r == Queue::PopResult::kBroken) {
        log.Warn(name + " rx: " + error + "; the device needs a reset");
        rx_broken = true;
        interrupt->SetNeedsReset();
        break;
      }
      if (r == Queue::PopResult::kBadChain || chain.readable_count > 0 ||
          chain.writable_bytes < kHdrSize || chain.descriptors.size() > kQueueSize) {
        log.Warn(name + " rx: " + (error.empty() ? "buffer unusable for a frame" : error) +
                 "; returned unused");
        Bump(counters->rx_bad_chains);
        rxq.AddUsed(chain.head, 0);
        rx_signal = true;
        error.clear();
        continue;
      }
      Held h{chain.head, {}, 0};
      ChainWriter w(*mem, chain);
      w.Produce(w.remaining(), [&](uint8_t* p, size_t n) {
        h.iov.push_back({p, n});
        h.capacity += n;
        return true;
      });
      // Pieces split at guest memory region edges; a chain may not crowd the readv limit.
      if (h.iov.size() > kQueueSize) {
        log.Warn(name + " rx: buffer in too many pieces; returned unused");
        Bump(counters->rx_bad_chains);
        rxq.AddUsed(chain.head, 0);
        rx_signal = true;
        continue;
      }
      held_capacity += h.capacity;
      held_iovs += h.iov.size();
      held.push_back(std::move(h));
    }
  }

  void UpdatePolling() {
    const bool want = !held.empty() && !rx_broken && !rx_paused && interrupt->bus_master();
    if (want == rx_polling) return;
    if (want) {
      auto s = loop->Add(tap->fd(), [this](uint32_t) { RxReadable(); });
      if (!s.ok()) {
        log.Warn(name + ": cannot wait on the TAP: " + s.error().ToString());
        return;
      }
    } else {
      (void)loop->Remove(tap->fd());
      Bump(counters->rx_poll_stops);
    }
    rx_polling = want;
    counters->rx_polling.store(want);
  }

  void SignalRx() {
    if (rx_signal && rxq.NeedsInterrupt()) interrupt->SignalQueue(rxq.msix_vector);
    rx_signal = false;
  }

  void RxKick() {
    rx_paused = false;
    FillHeld();
    SignalRx();
    UpdatePolling();
  }

  // Writes `data` at byte `offset` of the buffer the iovecs describe.
  static void PutAt(const std::vector<iovec>& iov, size_t offset, const void* data, size_t len) {
    const auto* src = static_cast<const uint8_t*>(data);
    for (const iovec& v : iov) {
      if (len == 0) return;
      if (offset >= v.iov_len) {
        offset -= v.iov_len;
        continue;
      }
      size_t n = std::min(len, v.iov_len - offset);
      std::memcpy(static_cast<uint8_t*>(v.iov_base) + offset, src, n);
      src += n;
      len -= n;
      offset = 0;
    }
  }

  void RxReadable() {
    Bump(counters->rx_tap_wakeups);
    for (int frames = 0; frames < kRxBudgetFrames; ++frames) {
      if (stop->load(std::memory_order_relaxed)) return;
      FillHeld();
      if (held.empty()) break;
      iov_scratch.clear();
      uint64_t capacity = 0;
      for (const Held& h : held) {
        iov_scratch.insert(iov_scratch.end(), h.iov.begin(), h.iov.end());
        capacity += h.capacity;
        if (!mrg) break;  // one chain must hold the whole frame
      }
      ssize_t n = tap->ReadFrame(iov_scratch);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        if (errno == EINTR) continue;
        // A TAP that fails every read would wake us for ever: wait for the next RX kick.
        Bump(counters->rx_read_errors);
        log.Warn(name + ": reading the TAP: " + std::string(strerror(errno)));
        rx_paused = true;
        break;
      }
      if (n == 0) {  // the other end is gone (a socketpair in tests)
        rx_paused = true;
        break;
      }
      const auto len = static_cast<uint64_t>(n);
      if (len > capacity) {
        // Never truncated silently: the held buffers are reused for the next frame.
        Bump(counters->rx_dropped_too_big);
        log.Warn(name + ": received frame of " + std::to_string(len) +
                 " bytes is larger than the " + std::to_string(capacity) +
                 " bytes of buffers posted; dropped");
        continue;
      }
      if (len < kHdrSize) {
        Bump(counters->rx_dropped_short);
        continue;
      }
      // The chains the frame filled, in order; the header goes to the first one.
      uint16_t count = 0;
      uint64_t covered = 0;
      for (const Held& h : held) {
        ++count;
        covered += h.capacity;
        if (covered >= len) break;
      }
      // The TAP leaves num_buffers alone (its own header is 10 bytes).
      PutAt(held.front().iov, offsetof(VirtioNetHdr, num_buffers), &count, sizeof(count));
      uint64_t left = len;
      for (uint16_t i = 0; i < count; ++i) {
        Held& h = held.front();
        uint64_t used = std::min(left, h.capacity);
        rxq.AddUsed(h.head, static_cast<uint32_t>(used));
        left -= used;
        held_capacity -= h.capacity;
        held_iovs -= h.iov.size();
        held.pop_front();
      }
      rx_signal = true;
      Bump(counters->rx_frames);
      Bump(counters->rx_bytes, len - kHdrSize);
    }
    FillHeld();
    SignalRx();
    UpdatePolling();
  }

  uint32_t Transmit(const DescriptorChain& chain) {
    if (chain.writable_bytes > 0) {
      Bump(counters->tx_dropped_writable);
      log.Warn(name + " tx: chain with device-writable buffers; dropped");
      return 0;
    }
    if (chain.readable_bytes < kHdrSize) {
      Bump(counters->tx_dropped_short);
      log.Warn(name + " tx: chain shorter than the vnet header; dropped");
      return 0;
    }
    const uint64_t frame_len = chain.readable_bytes - kHdrSize;
    if (frame_len > kMaxFrameBytes) {
      Bump(counters->tx_dropped_too_long);
      log.Warn(name + " tx: frame of " + std::to_string(frame_len) + " bytes; dropped");
      return 0;
    }
    ChainReader reader(*mem, chain);
    // The header is checked and sent from this copy: the guest may change its own while the
    // TAP reads it.
    VirtioNetHdr hdr{};
    if (!reader.ReadObj(&hdr)) return 0;
    if (const char* why = CheckTxHeader(hdr, frame_len, features)) {
      Bump(counters->tx_dropped_bad_header);
      log.Warn(name + " tx: " + why + "; dropped");
      return 0;
    }
    hdr.num_buffers = 0;
    iov_scratch.clear();
    iov_scratch.push_back({&hdr, kHdrSize});
    bool fits = reader.Consume(frame_len, [&](const uint8_t* p, size_t n) {
      if (iov_scratch.size() >= kMaxIov) return false;
      iov_scratch.push_back({const_cast<uint8_t*>(p), n});
      return true;
    });
    if (!fits) {
      Bump(counters->tx_dropped_too_long);
      return 0;
    }
    if (tap->WriteFrame(iov_scratch) < 0) {
      Bump(counters->tx_write_errors);
      log.Warn(name + " tx: writing to the TAP: " + std::string(strerror(errno)));
      return 0;
    }
    Bump(counters->tx_frames);
    Bump(counters->tx_bytes, frame_len);
    return 0;  // the device writes nothing into a TX chain
  }

  void TxKick() {
    bool more = false;
    DrainQueue(
        name + " tx", txq, *interrupt, log,
        [this](const DescriptorChain& c) { return Transmit(c); }, stop.get(), DrainBudget{}, &more);
    if (more) {
      // Budget spent: come back after the other events (RX, a stop request).
      uint64_t one = 1;
      (void)!write(tx_fd, &one, sizeof(one));
    }
  }
};

NetDevice::NetDevice(std::unique_ptr<net::TapInterface> tap, net::MacAddress mac, std::string name)
    : tap_(std::move(tap)),
      mac_(mac),
      name_(std::move(name)),
      counters_(std::make_unique<Counters>()) {
  auto accepts = [&](uint32_t flags) {
    auto r = tap_->SetOffload(flags);
    if (!r.ok()) {
      CROSVM_LOG(WARNING) << name_ << ": probing TAP offloads: " << r.error().ToString();
      return false;
    }
    return *r;
  };
  // Each offload is probed on top of checksum offload, which all of them need.
  if (accepts(TUN_F_CSUM)) {
    accepted_offloads_ = TUN_F_CSUM;
    if (accepts(TUN_F_CSUM | TUN_F_TSO4)) accepted_offloads_ |= TUN_F_TSO4;
    if (accepts(TUN_F_CSUM | TUN_F_TSO6)) accepted_offloads_ |= TUN_F_TSO6;
    uint32_t tso = accepted_offloads_ & (TUN_F_TSO4 | TUN_F_TSO6);
    if (tso && accepts(TUN_F_CSUM | tso | TUN_F_TSO_ECN)) accepted_offloads_ |= TUN_F_TSO_ECN;
  }
  // Nothing offloaded until a driver asks for it.
  (void)tap_->SetOffload(0);
}

NetDevice::~NetDevice() {
  Reset();
}

uint32_t NetDevice::PciClassCode() const {
  return pci::kClassNetworkEthernet;
}

uint64_t NetDevice::Features() const {
  uint64_t f = Bit(kNetFMac) | Bit(kNetFStatus) | Bit(kNetFMrgRxbuf) |
               Bit(kFeatureRingIndirectDesc) | Bit(kFeatureRingEventIdx);
  if (accepted_offloads_ & TUN_F_CSUM) {
    f |= Bit(kNetFCsum) | Bit(kNetFGuestCsum);
    if (accepted_offloads_ & TUN_F_TSO4) f |= Bit(kNetFHostTso4) | Bit(kNetFGuestTso4);
    if (accepted_offloads_ & TUN_F_TSO6) f |= Bit(kNetFHostTso6) | Bit(kNetFGuestTso6);
    if (accepted_offloads_ & TUN_F_TSO_ECN) f |= Bit(kNetFHostEcn) | Bit(kNetFGuestEcn);
  }
  return f;
}

void NetDevice::ReadConfig(uint64_t offset, std::span<uint8_t> data) const {
  // struct virtio_net_config: mac[6], status; max_virtqueue_pairs and mtu are not offered.
  std::array<uint8_t, 8> config{};
  std::memcpy(config.data(), mac_.data(), mac_.size());
  uint16_t status = kNetSLinkUp;
  std::memcpy(config.data() + 6, &status, sizeof(status));
  for (size_t i = 0; i < data.size(); ++i) {
    data[i] = offset + i < config.size() ? config[offset + i] : 0;
  }
}

base::Status NetDevice::Activate(ActivateContext ctx) {
  Reset();
  if (ctx.queues.size() < 2 || !ctx.queues[kRxQueue].ready || !ctx.queues[kTxQueue].ready) {
    return base::Error(name_ + ": the driver did not enable both the rx and the tx queue");
  }
  CROSVM_RETURN_IF_ERROR(tap_->SetVnetHdrSize(static_cast<int>(kHdrSize)));
  const uint32_t tun_flags = TunFlagsFor(ctx.features);
  CROSVM_ASSIGN_OR_RETURN(bool accepted, tap_->SetOffload(tun_flags));
  if (!accepted) {
    return base::Error(name_ + ": the TAP refused offloads " + std::to_string(tun_flags) +
                       " it accepted before");
  }
  auto stop = std::make_shared<std::atomic<bool>>(false);
  auto engine = std::make_shared<Engine>(name_, ctx, tap_.get(), counters_.get(), stop);
  counters_->rx_polling.store(false);
  std::vector<Worker::Source> sources;
  sources.push_back({ctx.queue_fds[kRxQueue], [engine] { engine->RxKick(); }});
  sources.push_back({ctx.queue_fds[kTxQueue], [engine] { engine->TxKick(); }});
  Interrupt* interrupt = ctx.interrupt;
  sources.push_back({interrupt->resample_fd(), [interrupt] { interrupt->Resample(); }});
  CROSVM_ASSIGN_OR_RETURN(
      worker_, Worker::Start(name_, std::move(sources), stop, [engine](base::EventLoop* loop) {
        engine->loop = loop;
        // Buffers the driver posted before DRIVER_OK: look at both queues once started.
        uint64_t one = 1;
        (void)!write(engine->rx_fd, &one, sizeof(one));
        (void)!write(engine->tx_fd, &one, sizeof(one));
        return base::Ok();
      }));
  return base::Ok();
}

void NetDevice::Reset() {
  if (!worker_) return;
  worker_.reset();
  counters_->rx_polling.store(false);
  NetCounters c = counters();
  // The driver can reset the device as often as it likes: rate-limited.
  CROSVM_LOG_RATE_LIMITED(reset_log_, INFO)
      << name_ << ": rx " << c.rx_frames << " frames " << c.rx_bytes << " bytes, tx " << c.tx_frames
      << " frames " << c.tx_bytes << " bytes; rx dropped: too big " << c.rx_dropped_too_big
      << ", short " << c.rx_dropped_short << ", bad buffers " << c.rx_bad_chains << ", read errors "
      << c.rx_read_errors << "; tx dropped: writable " << c.tx_dropped_writable << ", short "
      << c.tx_dropped_short << ", too long " << c.tx_dropped_too_long << ", bad header "
      << c.tx_dropped_bad_header << ", write errors " << c.tx_write_errors;
}

void NetDevice::AppendKeptFds(std::vector<int>& fds) const {
  fds.push_back(tap_->fd());
}

NetCounters NetDevice::counters() const {
  const Counters& c = *counters_;
  NetCounters s;
  s.rx_frames = c.rx_frames.load();
  s.rx_bytes = c.rx_bytes.load();
  s.tx_frames = c.tx_frames.load();
  s.tx_bytes = c.tx_bytes.load();
  s.rx_dropped_too_big = c.rx_dropped_too_big.load();
  s.rx_dropped_short = c.rx_dropped_short.load();
  s.rx_bad_chains = c.rx_bad_chains.load();
  s.rx_read_errors = c.rx_read_errors.load();
  s.tx_dropped_writable = c.tx_dropped_writable.load();
  s.tx_dropped_short = c.tx_dropped_short.load();
  s.tx_dropped_too_long = c.tx_dropped_too_long.load();
  s.tx_dropped_bad_header = c.tx_dropped_bad_header.load();
  s.tx_write_errors = c.tx_write_errors.load();
  s.rx_tap_wakeups = c.rx_tap_wakeups.load();
  s.rx_poll_stops = c.rx_poll_stops.load();
  s.rx_polling = c.rx_polling.load();
  return s;
}

}  // namespace crosvm::devices::virtio
