#include "vmm/control_handler.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <thread>

#include "devices/virtio/device_control.h"

namespace crosvm::vmm {
namespace {

using control::Reply;
using control::Request;
using control::StatusCode;
namespace virtio = devices::virtio;
using namespace std::chrono_literals;

Reply Send(VmControlHandler& h, control::RequestBody body) {
  return h.Handle(Request{7, std::move(body)});
}

TEST(ControlHandlerTest, StopAsksTheVmToEnd) {
  int stops = 0;
  VmControlHooks hooks;
  hooks.stop = [&] { stops++; };
  VmControlHandler h(std::move(hooks));
  EXPECT_EQ(Send(h, control::Stop{}).status, StatusCode::kOk);
  EXPECT_EQ(stops, 1);
}

TEST(ControlHandlerTest, PingSaysThePid) {
  VmControlHooks hooks;
  hooks.pid = 1234;
  VmControlHandler h(std::move(hooks));
  Reply r = Send(h, control::Ping{});
  ASSERT_EQ(r.status, StatusCode::kOk);
  EXPECT_EQ(std::get<control::VersionInfo>(r.body).pid, 1234u);
}

TEST(ControlHandlerTest, SuspendResumeStateMachine) {
  VcpuRunState state(1);
  std::thread vcpu([&] {
    while (state.Checkpoint(nullptr, nullptr)) std::this_thread::sleep_for(100us);
  });
  VmControlHooks hooks;
  hooks.run_state = &state;
  int kicks = 0;
  hooks.kick_vcpus = [&] { kicks++; };
  VmControlHandler h(std::move(hooks));
  EXPECT_EQ(Send(h, control::Resume{}).status, StatusCode::kInvalidState);
  EXPECT_EQ(Send(h, control::Suspend{}).status, StatusCode::kOk);
  EXPECT_EQ(kicks, 1);
  Reply again = Send(h, control::Suspend{});
  EXPECT_EQ(again.status, StatusCode::kInvalidState);
  EXPECT_NE(again.message.find("already suspended"), std::string::npos);
  EXPECT_EQ(Send(h, control::Resume{}).status, StatusCode::kOk);
  state.Stop();
  vcpu.join();
  EXPECT_EQ(Send(h, control::Suspend{}).status, StatusCode::kInvalidState);
}

TEST(ControlHandlerTest, BalloonTargetGoesToTheDeviceAndTheReplySaysActual) {
  VmControlHooks hooks;
  uint32_t seen_op = 0;
  uint64_t seen_bytes = 0;
  hooks.balloon = [&](uint32_t op,
                      std::span<const uint8_t> p) -> base::Result<std::vector<uint8_t>> {
    seen_op = op;
    seen_bytes = *virtio::DecodeU64(p, "t");
    return virtio::EncodeBalloonState({seen_bytes, 4096});
  };
  VmControlHandler h(std::move(hooks));
  Reply r = Send(h, control::BalloonSetTarget{1 << 20});
  ASSERT_EQ(r.status, StatusCode::kOk) << r.message;
  EXPECT_EQ(seen_op, static_cast<uint32_t>(virtio::ControlOp::kBalloonSetTarget));
  EXPECT_EQ(seen_bytes, 1u << 20);
  auto st = std::get<control::BalloonState>(r.body);
  EXPECT_EQ(st.target_bytes, 1u << 20);
  EXPECT_EQ(st.actual_bytes, 4096u);
}

TEST(ControlHandlerTest, BalloonStatsAndGarbageFromTheDevice) {
  VmControlHooks hooks;
  bool garbage = false;
  hooks.balloon = [&](uint32_t, std::span<const uint8_t>) -> base::Result<std::vector<uint8_t>> {
    if (garbage) return std::vector<uint8_t>{1, 2, 3};
    virtio::BalloonControlStat s[] = {{4, 100}, {5, 200}};
    return virtio::EncodeBalloonStats({8192, 4096}, s);
  };
  VmControlHandler h(std::move(hooks));
  Reply r = Send(h, control::BalloonStats{});
  ASSERT_EQ(r.status, StatusCode::kOk);
  auto info = std::get<control::BalloonStatsInfo>(r.body);
  ASSERT_EQ(info.stats.size(), 2u);
  EXPECT_EQ(info.stats[1].tag, 5);
  EXPECT_EQ(info.stats[1].value, 200u);
  garbage = true;
  EXPECT_EQ(Send(h, control::BalloonStats{}).status, StatusCode::kInternal);
  EXPECT_EQ(Send(h, control::BalloonSetTarget{1}).status, StatusCode::kInternal);
}

TEST(ControlHandlerTest, NoBalloonIsUnavailable) {
  VmControlHandler h(VmControlHooks{});
  EXPECT_EQ(Send(h, control::BalloonSetTarget{1}).status, StatusCode::kUnavailable);
  EXPECT_EQ(Send(h, control::Suspend{}).status, StatusCode::kUnavailable);
}

TEST(ControlHandlerTest, DiskResizeByIndexAndErrorsByKind) {
  VmControlHooks hooks;
  int err = 0;
  hooks.disks.push_back(
      [&](uint32_t op, std::span<const uint8_t> p) -> base::Result<std::vector<uint8_t>> {
        EXPECT_EQ(op, static_cast<uint32_t>(virtio::ControlOp::kDiskResize));
        if (err != 0) return base::Error("refused", err);
        return virtio::EncodeU64(*virtio::DecodeU64(p, "size"));
      });
  VmControlHandler h(std::move(hooks));
  Reply ok = Send(h, control::DiskResize{0, 1 << 30});
  EXPECT_EQ(ok.status, StatusCode::kOk);
  EXPECT_NE(ok.message.find("1073741824"), std::string::npos);
  EXPECT_EQ(Send(h, control::DiskResize{1, 1 << 30}).status, StatusCode::kInvalidArgument);
  err = ENOTSUP;
  EXPECT_EQ(Send(h, control::DiskResize{0, 1}).status, StatusCode::kInvalidArgument);
  err = EROFS;
  EXPECT_EQ(Send(h, control::DiskResize{0, 1}).status, StatusCode::kInvalidArgument);
  err = EIO;
  EXPECT_EQ(Send(h, control::DiskResize{0, 1}).status, StatusCode::kFailed);
  err = EAGAIN;
  EXPECT_EQ(Send(h, control::DiskResize{0, 1}).status, StatusCode::kUnavailable);
}

}  // namespace
}  // namespace crosvm::vmm
