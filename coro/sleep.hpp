#pragma once
// sleep(d), sleep_until(t): suspend the current task; sleep(0) (or any d <= 0)
// yields to the other ready tasks once.
//
// Cancellation: cancel() wakes the sleeper at once with CancelledError; a
// cancel requested while the task was about to resume is delivered here too.
#include "coro/scheduler.hpp"
#include "coro/task_base.hpp"

namespace corio {

class SleepAwaiter final : public CancelHook {
 public:
  explicit SleepAwaiter(TimePoint deadline, bool yield_only) noexcept : yield_(yield_only) {
    node_.deadline = deadline;
    node_.fire = &SleepAwaiter::fired;
  }
  SleepAwaiter(const SleepAwaiter&) = delete;
  ~SleepAwaiter() {
    if (node_.armed()) task_->scheduler().cancel_timer(node_);
  }

  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> h) {
    task_ = &TaskBase::current_checked("sleep()");
    if (task_->take_pending_cancel()) {
      cancelled_ = true;
      return false;
    }
    if (yield_) {
      // Already queued: a cancel now is kept and thrown in await_resume.
      task_->suspend(h, nullptr, "sleep(0)");
      task_->wake();
      return true;
    }
    node_.ctx = this;
    task_->scheduler().add_timer(node_);
    task_->suspend(h, this, "sleep");
    return true;
  }
  void await_resume() const {
    if (cancelled_ || task_->take_pending_cancel()) task_->throw_cancelled();
  }
  bool on_cancel(TaskBase&) noexcept override {
    task_->scheduler().cancel_timer(node_);
    cancelled_ = true;
    task_->wake();
    return true;
  }

 private:
  static void fired(detail::TimerNode* n) noexcept {
    static_cast<SleepAwaiter*>(n->ctx)->task_->wake();
  }

  detail::TimerNode node_;
  TaskBase* task_ = nullptr;
  bool yield_;
  bool cancelled_ = false;
};

inline SleepAwaiter sleep_until(TimePoint deadline) { return SleepAwaiter(deadline, false); }

template <class Rep, class Period>
SleepAwaiter sleep(std::chrono::duration<Rep, Period> d) {
  if (d <= d.zero()) return SleepAwaiter(TimePoint{}, true);
  Scheduler& s = current_scheduler();
  return SleepAwaiter(detail::deadline_after(s.now(), d), false);
}

}  // namespace corio
