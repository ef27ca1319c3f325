#pragma once
// Lock: asyncio.Lock, a FIFO-fair mutex for tasks; LockGuard: its RAII release.
//
//   auto guard = co_await lock.scoped();   // `async with lock:`
//   ...                                    // released when guard dies
//
// Like asyncio's, the lock is not owned by a task: any task may release it.
// A Lock must outlive the tasks that use it, including frames destroyed at
// loop teardown: their LockGuards release it then.
//
// Fairness: release() hands the lock straight to the first waiter, so a task
// that calls acquire() while others wait always queues behind them (asyncio
// 3.12 refuses such a newcomer too). One visible difference: asyncio reports
// locked() == false between the release and the woken waiter's resumption,
// although nobody else could take the lock then; here locked() stays true,
// which is what an acquire() at that moment would find.
//
// Invariants:
// - !locked_ implies waiters_ is empty (release() with waiters hands over).
// - grant_pending_ from a hand-over until the waiter resumes; release() then
//   throws (the hold was released once already).
// - A waiter is granted at most once; a granted waiter is unlinked.
#include <cstddef>
#include <exception>
#include <utility>

#include "coro/errors.hpp"
#include "coro/scheduler.hpp"
#include "coro/wait_list.hpp"

namespace corio {

class Condition;

namespace detail {
// A task queued for a Lock; Condition's waiters queue here too once notified.
class LockWaiter : public WaitNode {
 public:
  // The lock is now held on this waiter's behalf (it was unlinked first).
  virtual void on_granted() noexcept = 0;

 protected:
  ~LockWaiter() = default;
};
}  // namespace detail

// Releases what it holds (a Lock, Semaphore, or anything with release()) when
// it goes out of scope. Move-only. Obtained from `co_await x.scoped()`.
template <class L>
class [[nodiscard]] LockGuard {
 public:
  LockGuard() noexcept = default;
  explicit LockGuard(L& l) noexcept : l_(&l) {}
  LockGuard(LockGuard&& o) noexcept : l_(std::exchange(o.l_, nullptr)) {}
  LockGuard& operator=(LockGuard&& o) noexcept {
    if (this != &o) {
      reset();
      l_ = std::exchange(o.l_, nullptr);
    }
    return *this;
  }
  ~LockGuard() { reset(); }

  bool owns() const noexcept { return l_ != nullptr; }
  explicit operator bool() const noexcept { return owns(); }

  // Release now instead of at scope exit (then the guard holds nothing).
  // Throws what L::release() throws, e.g. if the lock was released behind
  // the guard's back.
  void release() {
    if (L* l = std::exchange(l_, nullptr)) l->release();
  }

 private:
  void reset() noexcept {
    L* l = std::exchange(l_, nullptr);
    if (!l) return;
    try {
      l->release();
    } catch (...) {
      // A destructor must not throw; a double release is a bug the loop's
      // exception handler should still show.
      if (Scheduler* s = Scheduler::current()) s->report_exception(std::current_exception(), "LockGuard release");
    }
  }

  L* l_ = nullptr;
};

class Lock {
 public:
  Lock() = default;
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;

  class [[nodiscard]] AcquireAwaiter : public detail::LockWaiter, public CancelHook {
   public:
    explicit AcquireAwaiter(Lock& l) noexcept : lock_(&l) {}
    // Movable until awaited (wait_for, gather and create_task take an
    // awaiter by value), never after.
    AcquireAwaiter(AcquireAwaiter&& o) noexcept : detail::LockWaiter(), CancelHook(), lock_(o.lock_) {}
    ~AcquireAwaiter() {
      // Only at loop teardown can a frame die while queued or granted; a
      // grant in flight then dies with the loop (waking anyone is not safe
      // while the loop destroys frames).
      if (linked()) lock_->waiters_.remove(*this);
    }

    // The fast path: a free lock is taken without suspending (so, as in
    // asyncio, a pending cancel is not seen here but at the next suspension).
    bool await_ready() noexcept {
      if (lock_->locked_) return false;
      lock_->locked_ = true;
      return true;
    }
    bool await_suspend(std::coroutine_handle<> h) {
      task_ = &TaskBase::current_checked("Lock.acquire()");
      if (task_->take_pending_cancel()) {
        cancelled_ = true;
        return false;
      }
      lock_->waiters_.push_back(*this);
      task_->suspend(h, this);
      return true;
    }
    void await_resume() {
      if (cancelled_) task_->throw_cancelled();
      lock_->grant_pending_ = false;  // this task holds it now (granted or taken at once)
      // Granted, then cancelled before resuming: cancellation wins and the
      // lock passes on to the next waiter (asyncio's choice), so a cancelled
      // acquire never leaves the lock held.
      if (task_ && task_->take_pending_cancel()) {
        lock_->release();
        task_->throw_cancelled();
      }
    }
    void on_granted() noexcept override { task_->wake(); }
    bool on_cancel(TaskBase&) noexcept override {
      if (linked()) lock_->waiters_.remove(*this);
      cancelled_ = true;
      task_->wake();
      return true;
    }

   protected:
    Lock* lock_;
    TaskBase* task_ = nullptr;
    bool cancelled_ = false;
  };

  class [[nodiscard]] ScopedAwaiter final : public AcquireAwaiter {
   public:
    using AcquireAwaiter::AcquireAwaiter;
    LockGuard<Lock> await_resume() {
      AcquireAwaiter::await_resume();
      return LockGuard<Lock>(*lock_);
    }
  };

  bool locked() const noexcept { return locked_; }

  // Acquire the lock, waiting in FIFO order behind earlier callers. Any number
  // of tasks may wait. Pair with release(), or use scoped().
  // Cancellation: a queued waiter leaves the queue and throws CancelledError;
  // one cancelled after release() had already handed it the lock, but before
  // it resumed, passes the lock to the next waiter and throws CancelledError.
  // Either way the cancelled task does not hold the lock.
  AcquireAwaiter acquire() noexcept { return AcquireAwaiter(*this); }

  // As acquire(), yielding a LockGuard that releases the lock at scope exit.
  // Cancellation: as acquire(); no guard exists if it throws.
  ScopedAwaiter scoped() noexcept { return ScopedAwaiter(*this); }

  // Unlock, or hand the lock to the first waiter. Throws InvalidStateError if
  // the lock is not held (asyncio raises RuntimeError).
  void release();

  // Tasks queued in acquire() (for tests and debugging).
  std::size_t n_waiters() const noexcept { return waiters_.size(); }

 private:
  friend class Condition;

  // Take a free lock; false if held.
  bool try_take() noexcept {
    if (locked_) return false;
    locked_ = true;
    return true;
  }

  detail::WaitList<detail::LockWaiter> waiters_;
  bool locked_ = false;
  // release() handed the lock to a waiter that has not resumed yet: a
  // release() now is a second release of the same hold.
  bool grant_pending_ = false;
};

}  // namespace corio
