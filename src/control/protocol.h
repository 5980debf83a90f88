// The control socket's wire format (see PROTOCOL.md): one request or reply per SOCK_SEQPACKET
// message, a fixed 16-byte header and a typed little-endian payload. Decoding trusts nothing:
// every length, type and reserved field is checked, and a failure says which status code the
// error reply carries.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

namespace crosvm::control {

inline constexpr uint8_t kMagic[4] = {'C', 'V', 'M', 'C'};
inline constexpr uint16_t kProtocolVersion = 1;
inline constexpr size_t kHeaderSize = 16;
// No message, request or reply, is larger: receivers use a buffer of this size.
inline constexpr size_t kMaxMessageSize = 4096;
inline constexpr size_t kMaxReplyMessageBytes = 1024;
inline constexpr uint32_t kMaxBalloonStats = 64;
// Reply types are the request type with this bit set.
inline constexpr uint16_t kReplyBit = 0x8000;

enum class RequestType : uint16_t {
  kPing = 1,
  kStop = 2,
  kSuspend = 3,
  kResume = 4,
  kBalloonSetTarget = 5,
  kBalloonStats = 6,
  kDiskResize = 7,
};

enum class StatusCode : uint32_t {
  kOk = 0,
  kMalformed = 1,           // bad magic, truncated, wrong payload length, reserved bits set
  kUnsupportedVersion = 2,  // header version is not kProtocolVersion
  kUnknownType = 3,
  kTooLarge = 4,          // the message exceeded kMaxMessageSize
  kPermissionDenied = 5,  // the peer's uid may not control this VM
  kBusy = 6,              // too many clients
  kInvalidState = 7,      // e.g. suspend while suspended
  kInvalidArgument = 8,   // e.g. a disk index that does not exist
  kUnavailable = 9,       // the VM cannot do it (no balloon driver, timeout, ...)
  kFailed = 10,           // it was tried and failed
  kInternal = 11,         // the handler answered something the protocol cannot carry
};
// "ok", "malformed", ...: for messages and the command line client.
const char* StatusCodeName(StatusCode code);

// --- Requests ---
struct Ping {};
struct Stop {};
struct Suspend {};
struct Resume {};
struct BalloonSetTarget {
  uint64_t bytes = 0;
};
struct BalloonStats {};
struct DiskResize {
  uint32_t index = 0;
  uint64_t new_size = 0;  // bytes
};
using RequestBody =
    std::variant<Ping, Stop, Suspend, Resume, BalloonSetTarget, BalloonStats, DiskResize>;

struct Request {
  uint32_t id = 0;  // chosen by the client, echoed in the reply
  RequestBody body;
  RequestType type() const;
};

// --- Replies ---
struct VersionInfo {  // Ping
  uint16_t protocol_version = kProtocolVersion;
  uint32_t pid = 0;
};
struct BalloonState {  // BalloonSetTarget
  uint64_t target_bytes = 0;
  uint64_t actual_bytes = 0;
};
struct BalloonStat {
  uint16_t tag = 0;  // VIRTIO_BALLOON_S_* (virtio 1.x 5.5.6.3)
  uint64_t value = 0;
};
struct BalloonStatsInfo {  // BalloonStats
  BalloonState state;
  std::vector<BalloonStat> stats;  // at most kMaxBalloonStats
};
using ReplyBody = std::variant<std::monostate, VersionInfo, BalloonState, BalloonStatsInfo>;

struct Reply {
  StatusCode status = StatusCode::kOk;
  std::string message;  // human-readable; at most kMaxReplyMessageBytes (longer is cut)
  ReplyBody body;       // only with kOk, and only the type the request expects

  static Reply Ok(ReplyBody body = {}, std::string message = "") {
    return Reply{StatusCode::kOk, std::move(message), std::move(body)};
  }
  static Reply Error(StatusCode code, std::string message) {
    return Reply{code, std::move(message), {}};
  }
};

// The body type an OK reply to `type` carries (index into ReplyBody).
size_t ExpectedReplyBodyIndex(RequestType type);

// A request that could not be decoded: what the error reply says, and the header fields that
// were readable (0 otherwise) so the reply can be matched.
struct DecodeError {
  StatusCode code = StatusCode::kMalformed;
  std::string message;
  uint32_t request_id = 0;
  uint16_t type = 0;
};

std::vector<uint8_t> EncodeRequest(const Request& request);
// `msg` is one whole received message; `truncated` says the receiver's buffer cut it.
bool DecodeRequest(std::span<const uint8_t> msg, bool truncated, Request* out, DecodeError* err);

// `type` is the request's type field as received (unknown values included); the reply's type
// is type | kReplyBit. A body that does not fit the protocol is replaced by a kInternal error.
std::vector<uint8_t> EncodeReply(uint16_t type, uint32_t request_id, const Reply& reply);
// Decodes a reply; `*type` and `*request_id` get the header's fields.
bool DecodeReply(std::span<const uint8_t> msg, uint16_t* type, uint32_t* request_id, Reply* out,
                 std::string* error);

}  // namespace crosvm::control
