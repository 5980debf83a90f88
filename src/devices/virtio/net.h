// virtio-net (virtio 1.1, 5.1) on a TAP: queue 0 receives, queue 1 transmits, no control
// queue. The vnet header is the 12-byte virtio 1.x one (with num_buffers) on both the rings and
// the TAP; checksum, TSO4/TSO6 and ECN offloads are offered only when the TAP accepted the
// matching TUNSETOFFLOAD (probed at construction, in the VMM), and programmed into the TAP from
// what the driver negotiated on activation (in the jailed device process).
//
// One worker thread serves both directions without busy loops: TX drains with a budget; RX
// waits on the TAP only while it holds guest buffers and starts again on an RX kick. Hostile
// input is dropped and counted (NetCounters), never fatal to the other direction.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "devices/virtio/virtio.h"
#include "devices/virtio/virtio_device.h"
#include "devices/virtio/worker.h"
#include "net/tap.h"

namespace crosvm::devices::virtio {

// Feature bits (5.1.3).
inline constexpr int kNetFCsum = 0;
inline constexpr int kNetFGuestCsum = 1;
inline constexpr int kNetFMac = 5;
inline constexpr int kNetFGuestTso4 = 7;
inline constexpr int kNetFGuestTso6 = 8;
inline constexpr int kNetFGuestEcn = 9;
inline constexpr int kNetFHostTso4 = 11;
inline constexpr int kNetFHostTso6 = 12;
inline constexpr int kNetFHostEcn = 13;
inline constexpr int kNetFMrgRxbuf = 15;
inline constexpr int kNetFStatus = 16;

inline constexpr uint16_t kNetSLinkUp = 1;

// struct virtio_net_hdr (5.1.6).
inline constexpr uint8_t kNetHdrFNeedsCsum = 1;
inline constexpr uint8_t kNetHdrFDataValid = 2;
inline constexpr uint8_t kNetHdrGsoNone = 0;
inline constexpr uint8_t kNetHdrGsoTcpv4 = 1;
inline constexpr uint8_t kNetHdrGsoUdp = 3;
inline constexpr uint8_t kNetHdrGsoTcpv6 = 4;
inline constexpr uint8_t kNetHdrGsoEcn = 0x80;

struct VirtioNetHdr {
  uint8_t flags;
  uint8_t gso_type;
  uint16_t hdr_len;
  uint16_t gso_size;
  uint16_t csum_start;
  uint16_t csum_offset;
  uint16_t num_buffers;
};
static_assert(sizeof(VirtioNetHdr) == 12);

// Why a TX header is refused, given the frame length after it and the negotiated features;
// nullptr when it is acceptable.
const char* CheckTxHeader(const VirtioNetHdr& hdr, uint64_t frame_len, uint64_t features);

// A snapshot of the device's counters.
struct NetCounters {
  uint64_t rx_frames = 0;
  uint64_t rx_bytes = 0;  // frame bytes, headers excluded
  uint64_t tx_frames = 0;
  uint64_t tx_bytes = 0;
  uint64_t rx_dropped_too_big = 0;  // longer than the buffers the guest had posted
  uint64_t rx_dropped_short = 0;    // shorter than a vnet header (never from a real TAP)
  uint64_t rx_bad_chains = 0;       // device-readable or smaller than a header: returned unused
  uint64_t rx_read_errors = 0;
  uint64_t tx_dropped_writable = 0;    // chain with device-writable descriptors
  uint64_t tx_dropped_short = 0;       // shorter than the vnet header
  uint64_t tx_dropped_too_long = 0;    // more than kMaxFrameBytes after the header
  uint64_t tx_dropped_bad_header = 0;  // CheckTxHeader refused it (GSO, checksum fields)
  uint64_t tx_write_errors = 0;        // the TAP refused the frame
  uint64_t rx_tap_wakeups = 0;         // times the worker found the TAP readable
  uint64_t rx_poll_stops = 0;          // times it stopped waiting on the TAP for lack of buffers
  bool rx_polling = false;             // waiting on the TAP now
};

class NetDevice : public VirtioDevice {
 public:
  static constexpr uint16_t kQueueSize = 256;
  static constexpr size_t kHdrSize = sizeof(VirtioNetHdr);
  // The largest frame (after the vnet header) in either direction: a 64 KiB GSO frame.
  static constexpr uint64_t kMaxFrameBytes = 64 * 1024;

  // Probes which offloads `tap` accepts and leaves them off. `name` identifies the device in
  // logs ("virtio-net tap0").
  NetDevice(std::unique_ptr<net::TapInterface> tap, net::MacAddress mac,
            std::string name = "virtio-net");
  ~NetDevice() override;

  uint32_t DeviceType() const override { return kTypeNet; }
  std::string DebugName() const override { return name_; }
  uint32_t PciClassCode() const override;
  std::vector<uint16_t> QueueMaxSizes() const override { return {kQueueSize, kQueueSize}; }
  uint64_t Features() const override;
  void ReadConfig(uint64_t offset, std::span<uint8_t> data) const override;
  base::Status Activate(ActivateContext ctx) override;
  void Reset() override;
  void AppendKeptFds(std::vector<int>& fds) const override;

  // TUN_F_* flags the TAP accepted at construction.
  uint32_t accepted_offloads() const { return accepted_offloads_; }
  NetCounters counters() const;

  struct Counters;  // the live (atomic) counters
  struct Engine;    // the worker's state

 private:
  std::unique_ptr<net::TapInterface> tap_;
  net::MacAddress mac_;
  std::string name_;
  uint32_t accepted_offloads_ = 0;
  std::unique_ptr<Counters> counters_;
  std::unique_ptr<Worker> worker_;
  RateLimitedLog reset_log_{4, std::chrono::seconds(60)};
};

}  // namespace crosvm::devices::virtio
