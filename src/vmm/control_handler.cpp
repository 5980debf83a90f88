#include "vmm/control_handler.h"

#include <cerrno>
#include <string>
#include <type_traits>
#include <variant>

#include "devices/virtio/device_control.h"

namespace crosvm::vmm {

using control::Reply;
using control::StatusCode;
namespace virtio = devices::virtio;

Reply VmControlHandler::FromError(const base::Error& error) {
  switch (error.errnum()) {
    case EINVAL:
    case ENOTSUP:
    case EROFS:
    case EFBIG:
      return Reply::Error(StatusCode::kInvalidArgument, error.ToString());
    case EAGAIN:
      return Reply::Error(StatusCode::kUnavailable, error.ToString());
    default:
      return Reply::Error(StatusCode::kFailed, error.ToString());
  }
}

Reply VmControlHandler::Handle(const control::Request& request) {
  return std::visit(
      [&](const auto& body) -> Reply {
        using T = std::decay_t<decltype(body)>;
        if constexpr (std::is_same_v<T, control::Ping>) {
          return Reply::Ok(
              control::VersionInfo{control::kProtocolVersion, static_cast<uint32_t>(hooks_.pid)});
        } else if constexpr (std::is_same_v<T, control::Stop>) {
          if (!hooks_.stop) return Reply::Error(StatusCode::kUnavailable, "stop is not wired");
          hooks_.stop();
          return Reply::Ok({}, "the VM is stopping");
        } else if constexpr (std::is_same_v<T, control::Suspend>) {
          return Suspend();
        } else if constexpr (std::is_same_v<T, control::Resume>) {
          return Resume();
        } else if constexpr (std::is_same_v<T, control::BalloonSetTarget>) {
          auto payload = virtio::EncodeU64(body.bytes);
          return Balloon(static_cast<uint32_t>(virtio::ControlOp::kBalloonSetTarget), payload,
                         false);
        } else if constexpr (std::is_same_v<T, control::BalloonStats>) {
          return Balloon(static_cast<uint32_t>(virtio::ControlOp::kBalloonStats), {}, true);
        } else {
          static_assert(std::is_same_v<T, control::DiskResize>);
          return DiskResize(body.index, body.new_size);
        }
      },
      request.body);
}

Reply VmControlHandler::Suspend() {
  if (hooks_.run_state == nullptr) {
    return Reply::Error(StatusCode::kUnavailable, "this VM cannot be suspended");
  }
  switch (hooks_.run_state->Pause(hooks_.kick_vcpus, hooks_.pause_timeout)) {
    case VcpuRunState::Change::kDone:
      return Reply::Ok({}, "the VM is suspended");
    case VcpuRunState::Change::kAlready:
      return Reply::Error(StatusCode::kInvalidState, "the VM is already suspended");
    case VcpuRunState::Change::kStopping:
      return Reply::Error(StatusCode::kInvalidState, "the VM is stopping");
    case VcpuRunState::Change::kTimedOut:
      // Paused all the same: the stragglers park as soon as their KVM_RUN returns.
      return Reply::Error(StatusCode::kUnavailable,
                          "the VM is suspending, but not every vCPU stopped in time");
  }
  return Reply::Error(StatusCode::kInternal, "unknown run state change");
}

Reply VmControlHandler::Resume() {
  if (hooks_.run_state == nullptr) {
    return Reply::Error(StatusCode::kUnavailable, "this VM cannot be resumed");
  }
  switch (hooks_.run_state->Resume()) {
    case VcpuRunState::Change::kDone:
      return Reply::Ok({}, "the VM is running");
    case VcpuRunState::Change::kAlready:
      return Reply::Error(StatusCode::kInvalidState, "the VM is not suspended");
    case VcpuRunState::Change::kStopping:
      return Reply::Error(StatusCode::kInvalidState, "the VM is stopping");
    case VcpuRunState::Change::kTimedOut:
      break;
  }
  return Reply::Error(StatusCode::kInternal, "unknown run state change");
}

Reply VmControlHandler::Balloon(uint32_t op, std::span<const uint8_t> payload, bool stats) {
  if (!hooks_.balloon) return Reply::Error(StatusCode::kUnavailable, "this VM has no balloon");
  auto answer = hooks_.balloon(op, payload);
  if (!answer.ok()) return FromError(answer.error());
  if (stats) {
    std::vector<virtio::BalloonControlStat> entries;
    auto state = virtio::DecodeBalloonStats(*answer, &entries);
    if (!state.ok()) return Reply::Error(StatusCode::kInternal, state.error().ToString());
    control::BalloonStatsInfo info{{state->target_bytes, state->actual_bytes}, {}};
    for (const auto& e : entries) info.stats.push_back({e.tag, e.value});
    return Reply::Ok(std::move(info));
  }
  auto state = virtio::DecodeBalloonState(*answer);
  if (!state.ok()) return Reply::Error(StatusCode::kInternal, state.error().ToString());
  return Reply::Ok(control::BalloonState{state->target_bytes, state->actual_bytes});
}

Reply VmControlHandler::DiskResize(uint32_t index, uint64_t size) {
  if (index >= hooks_.disks.size() || !hooks_.disks[index]) {
    return Reply::Error(StatusCode::kInvalidArgument,
                        "no disk " + std::to_string(index) + " (this VM has " +
                            std::to_string(hooks_.disks.size()) + ")");
  }
  auto payload = virtio::EncodeU64(size);
  auto answer = hooks_.disks[index](static_cast<uint32_t>(virtio::ControlOp::kDiskResize), payload);
  if (!answer.ok()) return FromError(answer.error());
  auto new_size = virtio::DecodeU64(*answer, "disk resize reply");
  if (!new_size.ok()) return Reply::Error(StatusCode::kInternal, new_size.error().ToString());
  return Reply::Ok(
      {}, "disk " + std::to_string(index) + " is now " + std::to_string(*new_size) + " bytes");
}

}  // namespace crosvm::vmm
