// The messages between a ProxyDevice (VM process) and a DeviceServer (device process): one
// request per pci::PciDevice call, and a reply with the call's result, the device's current
// command register and BARs (so the proxy can answer PciRoot's queries itself) and the
// effects: the VmControl / MsiRouter calls the device made while serving the request, for the
// VM process to carry out.
//
// Encoding: little-endian fixed-width fields, no padding, in the order given below.
//   request: u32 seq, u8 type, then per type:
//     ReadConfigRegister u32 reg | WriteConfigRegister u32 reg, u8 offset, u8 len, data
//     SetBarAddress u8 bar, u64 addr | AssignIntx u32 gsi | BarAddress u8 bar
//     ReadBar u8 bar, u64 offset, u8 len | WriteBar u8 bar, u64 offset, u8 len, data
//     OnBarMapped / OnBarUnmapped u8 bar, u64 addr | Bars, Command, Shutdown: nothing
//     DeviceControl u32 op, u16 len, payload (len <= kMaxControlPayload)
//   reply: u32 seq, u8 type, u8 flags, u64 value, u16 error_len, error, u8 data_len, data,
//     (DeviceControl only: u16 data_len, data up to kMaxControlPayload; `value` of an error
//      reply is the errno the device's error carried)
//     [state: u16 command, u8 count, count x (u8 index, u8 bar type, u8 prefetchable,
//      u64 size, u64 address)], u8 effect count, effects (u8 type, then per type, below).
// Every field is checked on decode; so is the number of fds against what the effects need.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "devices/pci/pci_config.h"

namespace crosvm::devices::proxy {

// The widest BAR access that travels (the buses use 1, 2, 4 or 8 bytes).
inline constexpr size_t kMaxBarAccess = 64;
inline constexpr size_t kMaxErrorLength = 1024;
// Configuration registers (dwords) a request may name: PCIe's 4 KiB space.
inline constexpr uint32_t kConfigRegisters = 1024;
// Effects in one reply message; more are sent in extra messages flagged kReplyMore. Each effect
// carries at most two fds, so this keeps a message within Channel::kMaxFds.
inline constexpr size_t kMaxEffectsPerMessage = 16;
// A DeviceControl request's payload, and its reply's data, are at most this long.
inline constexpr size_t kMaxControlPayload = 1024;

enum class RequestType : uint8_t {
  kReadConfigRegister = 1,
  kWriteConfigRegister,
  kBars,
  kBarAddress,
  kCommand,
  kSetBarAddress,
  kAssignIntx,
  kReadBar,
  kWriteBar,
  kOnBarMapped,
  kOnBarUnmapped,
  kShutdown,
  kDeviceControl,  // PciDevice::DeviceControl: the VMM's typed requests (balloon, disk resize)
};
const char* RequestTypeName(RequestType type);

struct Request {
  uint32_t seq = 0;
  RequestType type = RequestType::kBars;
  uint32_t reg = 0;           // config register (dword index)
  uint8_t offset = 0;         // byte within the config register
  uint8_t bar = 0;            // BAR index
  uint64_t addr = 0;          // BAR address (SetBarAddress, OnBarMapped/Unmapped) or offset
  uint32_t gsi = 0;           // AssignIntx
  uint8_t len = 0;            // ReadBar: bytes to read
  uint32_t op = 0;            // DeviceControl
  std::vector<uint8_t> data;  // WriteConfigRegister, WriteBar, DeviceControl's payload
};

std::vector<uint8_t> EncodeRequest(const Request& r);
base::Result<Request> DecodeRequest(std::span<const uint8_t> bytes);

enum class EffectType : uint8_t {
  kRegisterIoeventfd = 1,
  kUnregisterIoeventfd,
  kRegisterIrqfd,
  kUnregisterIrqfd,
  kSetMsiRoute,
  kRemoveRoute,
};
const char* EffectTypeName(EffectType type);

// One VmControl / MsiRouter call made by the device. Encoded fields per type:
//   (Un)RegisterIoeventfd: i32 key, u64 addr, u32 len, u8 pio, u8 has_datamatch, u64 datamatch
//   RegisterIrqfd: i32 key, u32 gsi, u8 has_resample, i32 resample_key
//   UnregisterIrqfd: i32 key, u32 gsi | SetMsiRoute: u32 gsi, u64 addr, u32 data
//   RemoveRoute: u32 gsi
// `key` is the fd's number in the device process: it names the eventfd across messages (the
// received fd is a new number each time), so the VM process can unregister exactly what it
// registered.
struct Effect {
  EffectType type = EffectType::kRemoveRoute;
  int32_t key = -1;
  int32_t resample_key = -1;
  uint64_t addr = 0;
  uint32_t len = 0;
  bool pio = false;
  std::optional<uint64_t> datamatch;
  uint32_t gsi = 0;
  uint32_t data = 0;
  base::ScopedFd fd;                          // the eventfd (fd-carrying types)
  std::optional<base::ScopedFd> resample_fd;  // RegisterIrqfd with a resample fd

  // Fds this type carries, in order: fd, then resample_fd.
  size_t fd_count() const;
};

struct BarState {
  pci::BarInfo info;
  uint64_t address = 0;
};

// What PciRoot asks a device under its lock.
struct DeviceState {
  uint16_t command = 0;
  std::vector<BarState> bars;  // at most pci::kNumBars
};

inline constexpr uint8_t kReplyStatusError = 1 << 0;  // the call returned this error
inline constexpr uint8_t kReplyRejected = 1 << 1;     // the server refused the request
inline constexpr uint8_t kReplyHasState = 1 << 2;
inline constexpr uint8_t kReplyMore = 1 << 3;  // effects only; the result follows
inline constexpr uint8_t kReplyKnownFlags = 0xf;

struct Reply {
  uint32_t seq = 0;
  RequestType type = RequestType::kBars;
  uint8_t flags = 0;          // kReplyStatusError, kReplyRejected, kReplyMore; kReplyHasState is
                              // derived from `state`
  uint64_t value = 0;         // ReadConfigRegister, BarAddress, Command
  std::string error;          // with kReplyStatusError or kReplyRejected
  std::vector<uint8_t> data;  // ReadBar, DeviceControl
  std::optional<DeviceState> state;
  std::vector<Effect> effects;  // at most kMaxEffectsPerMessage
};

// The bytes, and in `fds` the effects' fds (borrowed from `r`) in the order they need.
std::vector<uint8_t> EncodeReply(const Reply& r, std::vector<int>* fds);
// Takes the fds; they are handed to the effects that carry them.
base::Result<Reply> DecodeReply(std::span<const uint8_t> bytes, std::vector<base::ScopedFd> fds);

}  // namespace crosvm::devices::proxy
