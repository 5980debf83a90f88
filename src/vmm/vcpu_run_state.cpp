#include "vmm/vcpu_run_state.h"

namespace crosvm::vmm {

VcpuRunState::Change VcpuRunState::Pause(const std::function<void()>& kick,
                                         std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  State s = state_.load();
  if (s == State::kStopping) return Change::kStopping;
  if (s == State::kPaused) return Change::kAlready;
  state_.store(State::kPaused);
  lock.unlock();
  if (kick) kick();
  lock.lock();
  bool all = cv_.wait_for(lock, timeout, [&] {
    return state_.load() != State::kPaused || parked_ + exited_ >= vcpus_;
  });
  if (state_.load() == State::kStopping) return Change::kStopping;
  return all ? Change::kDone : Change::kTimedOut;
}

VcpuRunState::Change VcpuRunState::Resume() {
  std::lock_guard lock(mu_);
  State s = state_.load();
  if (s == State::kStopping) return Change::kStopping;
  if (s == State::kRunning) return Change::kAlready;
  state_.store(State::kRunning);
  cv_.notify_all();
  return Change::kDone;
}

void VcpuRunState::Stop() {
  std::lock_guard lock(mu_);
  state_.store(State::kStopping);
  cv_.notify_all();
}

VcpuRunState::State VcpuRunState::state() const {
  return state_.load();
}

size_t VcpuRunState::parked() const {
  std::lock_guard lock(mu_);
  return parked_;
}

bool VcpuRunState::Checkpoint(const std::function<void()>& on_park,
                              const std::function<void()>& on_resume) {
  State s = state_.load(std::memory_order_acquire);
  if (s == State::kRunning) return true;
  if (s == State::kStopping) return false;
  if (on_park) on_park();
  std::unique_lock lock(mu_);
  ++parked_;
  cv_.notify_all();
  cv_.wait(lock, [&] { return state_.load() != State::kPaused; });
  --parked_;
  bool run = state_.load() == State::kRunning;
  lock.unlock();
  if (run && on_resume) on_resume();
  return run;
}

void VcpuRunState::Exited() {
  std::lock_guard lock(mu_);
  ++exited_;
  cv_.notify_all();
}

}  // namespace crosvm::vmm
