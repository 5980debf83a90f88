// VcpuRunState: whether the vCPU threads run, are parked (the VM is suspended) or are ending,
// shared by the control thread (which changes it) and the vCPU threads (which obey it between
// two KVM_RUNs). No KVM here: the caller supplies how a vCPU is kicked out of KVM_RUN and what
// a vCPU does as it parks (KVM_KVMCLOCK_CTRL), so the state machine is testable on its own.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>

namespace crosvm::vmm {

class VcpuRunState {
 public:
  enum class State { kRunning, kPaused, kStopping };
  enum class Change {
    kDone,      // the state changed (Pause: every live vCPU is parked)
    kAlready,   // it was already so (Pause while paused, Resume while running)
    kStopping,  // the VM is ending; nothing changes any more
    kTimedOut,  // Pause: not every vCPU parked in time (the state is paused all the same)
  };

  explicit VcpuRunState(size_t vcpus) : vcpus_(vcpus) {}

  // Control thread. Pause asks every vCPU to park, calls `kick` to get them out of KVM_RUN,
  // and waits up to `timeout` until every vCPU that still runs is parked.
  Change Pause(const std::function<void()>& kick, std::chrono::milliseconds timeout);
  // Wakes the parked vCPUs.
  Change Resume();
  // From now on Checkpoint returns false; parked vCPUs wake up to end. Call `kick` after it.
  void Stop();
  State state() const;

  // vCPU thread, before each KVM_RUN. Returns false when the thread must end. While paused,
  // runs `on_park` once, then blocks until Resume or Stop; `on_resume` runs before it returns
  // true again (e.g. to clear KVM's immediate_exit).
  bool Checkpoint(const std::function<void()>& on_park, const std::function<void()>& on_resume);
  // vCPU thread, as it ends for any reason: a Pause no longer waits for it.
  void Exited();

  size_t parked() const;

 private:
  const size_t vcpus_;
  mutable std::mutex mu_;
  std::condition_variable cv_;                 // the state, parked_ and exited_ changed
  std::atomic<State> state_{State::kRunning};  // read without mu_ on the vCPUs' fast path
  size_t parked_ = 0;
  size_t exited_ = 0;
};

}  // namespace crosvm::vmm
