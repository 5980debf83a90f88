#include "vmm/vcpu_run_state.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace crosvm::vmm {
namespace {

using namespace std::chrono_literals;
using Change = VcpuRunState::Change;

// Fake vCPUs: each spins through Checkpoint (as a vCPU between two KVM_RUNs) and counts.
struct FakeVcpus {
  explicit FakeVcpus(size_t n) : state(n), runs(n), parks(n), resumes(n) {
    for (size_t i = 0; i < n; ++i) {
      threads.emplace_back([this, i] {
        while (state.Checkpoint([&] { parks[i]++; }, [&] { resumes[i]++; })) {
          runs[i]++;
          std::this_thread::sleep_for(100us);
        }
        state.Exited();
      });
    }
  }
  ~FakeVcpus() {
    state.Stop();
    for (auto& t : threads) t.join();
  }
  uint64_t total_runs() {
    uint64_t t = 0;
    for (auto& r : runs) t += r.load();
    return t;
  }
  VcpuRunState state;
  std::vector<std::atomic<uint64_t>> runs, parks, resumes;
  std::vector<std::thread> threads;
};

TEST(VcpuRunStateTest, PauseParksEveryVcpuAndResumeRunsThemAgain) {
  FakeVcpus v(3);
  std::atomic<int> kicks{0};
  EXPECT_EQ(v.state.Pause([&] { kicks++; }, 5s), Change::kDone);
  EXPECT_EQ(kicks.load(), 1);
  EXPECT_EQ(v.state.parked(), 3u);
  EXPECT_EQ(v.state.state(), VcpuRunState::State::kPaused);
  uint64_t before = v.total_runs();
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(v.total_runs(), before) << "a parked vCPU ran";
  for (auto& p : v.parks) EXPECT_EQ(p.load(), 1u);

  EXPECT_EQ(v.state.Resume(), Change::kDone);
  std::this_thread::sleep_for(50ms);
  EXPECT_GT(v.total_runs(), before);
  for (auto& r : v.resumes) EXPECT_EQ(r.load(), 1u);
  EXPECT_EQ(v.state.parked(), 0u);
}

TEST(VcpuRunStateTest, DoublePauseAndResumeWhileRunningAreAnsweredAlready) {
  FakeVcpus v(2);
  EXPECT_EQ(v.state.Resume(), Change::kAlready);
  EXPECT_EQ(v.state.Pause(nullptr, 5s), Change::kDone);
  EXPECT_EQ(v.state.Pause(nullptr, 5s), Change::kAlready);
  EXPECT_EQ(v.state.Resume(), Change::kDone);
  EXPECT_EQ(v.state.Resume(), Change::kAlready);
}

TEST(VcpuRunStateTest, StopWakesParkedVcpusAndRefusesChanges) {
  auto v = std::make_unique<FakeVcpus>(2);
  EXPECT_EQ(v->state.Pause(nullptr, 5s), Change::kDone);
  v->state.Stop();
  for (auto& t : v->threads) t.join();  // would hang if parked threads were not woken
  v->threads.clear();
  for (auto& r : v->resumes) EXPECT_EQ(r.load(), 0u) << "woken to stop, not to run";
  EXPECT_EQ(v->state.Pause(nullptr, 1s), Change::kStopping);
  EXPECT_EQ(v->state.Resume(), Change::kStopping);
}

TEST(VcpuRunStateTest, PauseTimesOutWhenAVcpuDoesNotPark) {
  VcpuRunState state(1);  // a vCPU that never reaches a checkpoint (stuck in KVM_RUN)
  EXPECT_EQ(state.Pause(nullptr, 50ms), Change::kTimedOut);
  EXPECT_EQ(state.state(), VcpuRunState::State::kPaused);
  EXPECT_EQ(state.Resume(), Change::kDone);
}

TEST(VcpuRunStateTest, PauseDoesNotWaitForExitedVcpus) {
  VcpuRunState state(2);
  state.Exited();
  std::thread t([&] {
    while (state.Checkpoint(nullptr, nullptr)) std::this_thread::sleep_for(100us);
  });
  EXPECT_EQ(state.Pause(nullptr, 5s), Change::kDone);
  state.Stop();
  t.join();
}

}  // namespace
}  // namespace crosvm::vmm
