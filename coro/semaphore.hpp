#pragma once
// Semaphore and BoundedSemaphore: asyncio's, FIFO-fair.
//
//   Semaphore sem(3);
//   auto guard = co_await sem.scoped();    // `async with sem:`
//
// Fairness: release() hands its unit straight to the first waiter instead of
// incrementing the counter, so a newcomer cannot take it first; a newcomer
// passes without waiting only when nobody waits (asyncio 3.12's FIFO rule).
//
// Invariants:
// - value_ > 0 implies waiters_ is empty (release() with waiters hands over).
// - Cancellation creates or loses no unit: value_ plus the units tasks hold
//   (counting units handed to waiters that have not resumed yet) changes only
//   through completed acquires and release(); a waiter cancelled after it was
//   granted gives its unit back through the same hand-over path.
// - Bounded: value_ never exceeds the initial value.
#include <cstddef>
#include <limits>

#include "coro/errors.hpp"
#include "coro/lock.hpp"
#include "coro/wait_list.hpp"

namespace corio {

class Semaphore {
 public:
  // Throws ValueError if value < 0.
  explicit Semaphore(std::ptrdiff_t value = 1);
  Semaphore(const Semaphore&) = delete;
  Semaphore& operator=(const Semaphore&) = delete;

  class [[nodiscard]] AcquireAwaiter : public detail::WaitNode, public CancelHook {
   public:
    explicit AcquireAwaiter(Semaphore& s) noexcept : sem_(&s) {}
    // Movable until awaited (wait_for, gather and create_task take an
    // awaiter by value), never after.
    AcquireAwaiter(AcquireAwaiter&& o) noexcept : detail::WaitNode(), CancelHook(), sem_(o.sem_) {}
    ~AcquireAwaiter() {
      // A frame dies while queued only at loop teardown (see Lock).
      if (linked()) sem_->waiters_.remove(*this);
    }

    // Fast path without suspending when a unit is free (then nobody waits).
    bool await_ready() noexcept {
      if (sem_->value_ == 0) return false;
      --sem_->value_;
      return true;
    }
    bool await_suspend(std::coroutine_handle<> h) {
      task_ = &TaskBase::current_checked("Semaphore.acquire()");
      if (task_->take_pending_cancel()) {
        cancelled_ = true;
        return false;
      }
      sem_->waiters_.push_back(*this);
      task_->suspend(h, this);
      return true;
    }
    void await_resume() {
      if (cancelled_) task_->throw_cancelled();
      // Granted, then cancelled before resuming: give the unit back (to the
      // next waiter if any) and let the cancellation win, as asyncio does.
      if (task_ && task_->take_pending_cancel()) {
        sem_->give_back();
        task_->throw_cancelled();
      }
    }
    bool on_cancel(TaskBase&) noexcept override {
      if (linked()) sem_->waiters_.remove(*this);
      cancelled_ = true;
      task_->wake();
      return true;
    }

   protected:
    friend class Semaphore;
    Semaphore* sem_;
    TaskBase* task_ = nullptr;
    bool cancelled_ = false;
  };

  class [[nodiscard]] ScopedAwaiter final : public AcquireAwaiter {
   public:
    using AcquireAwaiter::AcquireAwaiter;
    LockGuard<Semaphore> await_resume() {
      AcquireAwaiter::await_resume();
      return LockGuard<Semaphore>(*sem_);
    }
  };

  // True if acquire() would wait.
  bool locked() const noexcept { return value_ == 0; }
  // Units free now.
  std::size_t value() const noexcept { return value_; }

  // Take one unit, waiting in FIFO order when none is free. Any number of
  // tasks may wait.
  // Cancellation: a queued waiter leaves the queue and throws CancelledError;
  // one cancelled after release() had handed it a unit, but before it
  // resumed, passes that unit on and throws CancelledError. A cancelled
  // acquire never holds a unit.
  AcquireAwaiter acquire() noexcept { return AcquireAwaiter(*this); }

  // As acquire(), yielding a guard that releases the unit at scope exit.
  // Cancellation: as acquire().
  ScopedAwaiter scoped() noexcept { return ScopedAwaiter(*this); }

  // Return one unit: to the first waiter, else to the counter.
  // BoundedSemaphore: throws ValueError if that would exceed the initial value.
  void release();

  // Tasks queued in acquire() (for tests and debugging).
  std::size_t n_waiters() const noexcept { return waiters_.size(); }

 protected:
  Semaphore(std::ptrdiff_t value, bool bounded);

 private:
  void give_back() noexcept;

  detail::WaitList<AcquireAwaiter> waiters_;
  std::size_t value_;
  std::size_t bound_;  // max() when unbounded
};

// A Semaphore that refuses to be released more often than acquired:
// release() beyond the initial value throws ValueError("BoundedSemaphore
// released too many times").
class BoundedSemaphore : public Semaphore {
 public:
  explicit BoundedSemaphore(std::ptrdiff_t value = 1) : Semaphore(value, true) {}
};

}  // namespace corio
