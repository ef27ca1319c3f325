#pragma once
// shield(): wait for a task without letting a cancel reach it (asyncio.shield).
//
//   T v = co_await shield(handle);          // or shield(some_task())
//
// Awaiting yields the task's value or rethrows its exception, like awaiting
// the handle; a task already done yields at once.
//
// Cancellation: cancelling the awaiting task raises CancelledError in it at
// once, while the shielded task KEEPS RUNNING (its result stays in its
// handle; shield(Task) spawns the task, and if nobody retrieves its exception
// the loop reports it). If the shielded task itself is cancelled (by someone
// holding its handle), the awaiter gets CancelledError as with a plain await.
// A cancel that arrives after the task finished but before the awaiter
// resumed raises CancelledError at this await, as in asyncio (Task.__step
// throws it in place of the done outer future's result); the result stays in
// the task's handle (task()).
// Concurrency: each Shielded is awaited once; any number of them (and plain
// awaits) may wait on one task.
#include <coroutine>
#include <type_traits>
#include <utility>

#include "coro/task.hpp"
#include "coro/task_base.hpp"
#include "coro/task_handle.hpp"

namespace corio {

template <class T>
class [[nodiscard]] Shielded final : public CancelHook, public DoneWaiter {
 public:
  explicit Shielded(TaskHandle<T> h) noexcept : h_(std::move(h)) {}
  // Movable until awaited (wait_for(shield(h), d) moves it into a coroutine).
  Shielded(Shielded&& o) noexcept : CancelHook(), DoneWaiter(), h_(std::move(o.h_)) {}
  Shielded& operator=(Shielded&&) = delete;
  ~Shielded() {
    if (h_) h_.base().remove_done_waiter(*this);
  }

  // The shielded task, e.g. to await it again after the awaiter was cancelled
  // (the result is copied to the awaiter when T is copyable, so it stays readable).
  const TaskHandle<T>& task() const noexcept { return h_; }

  bool await_ready() const noexcept { return h_.done(); }
  bool await_suspend(std::coroutine_handle<> h) {
    waiter_ = &TaskBase::current_checked("shield()");
    if (waiter_->take_pending_cancel()) {
      cancelled_ = true;
      return false;
    }
    h_.base().add_done_waiter(*this);
    waiter_->suspend(h, this);
    return true;
  }
  T await_resume() {
    if (cancelled_) waiter_->throw_cancelled();
    if (woken_ && waiter_->has_pending_cancel()) {
      // Woken by the task's end, then cancelled before resuming: the cancel
      // wins; the task's exception counts as retrieved (asyncio's shield read
      // it into the outer future, which the cancelled task read too).
      if (h_.base().state() == TaskBase::State::failed) (void)h_.base().exception();
      waiter_->throw_cancelled();
    }
    if constexpr (std::is_void_v<T>) {
      h_.result();
    } else if constexpr (std::is_copy_constructible_v<T>) {
      return h_.result();
    } else {
      return std::move(h_.result());
    }
  }
  bool on_cancel(TaskBase& t) noexcept override {
    // Leave the inner task alone: stop waiting for it and resume with CancelledError.
    h_.base().remove_done_waiter(*this);
    cancelled_ = true;
    t.wake();
    return true;
  }
  void on_task_done(TaskBase&) noexcept override {
    woken_ = true;
    waiter_->wake();
  }

 private:
  TaskHandle<T> h_;
  TaskBase* waiter_ = nullptr;
  bool cancelled_ = false;
  bool woken_ = false;
};

// Shield an already spawned task.
template <class T>
Shielded<T> shield(TaskHandle<T> h) {
  return Shielded<T>(std::move(h));
}
// Spawn `task` (create_task) and shield it. Needs a running loop.
template <class T>
Shielded<T> shield(Task<T> task) {
  return Shielded<T>(create_task(std::move(task)));
}

}  // namespace corio
