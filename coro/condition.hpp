#pragma once
// Condition: asyncio.Condition, a condition variable over a Lock (its own, or
// one shared with other code or other Conditions).
//
//   auto guard = co_await cond.scoped();
//   co_await cond.wait_for([&] { return !items.empty(); });
//
// notify(n) moves up to n waiters, in the order they started waiting, from
// the condition straight into the lock's FIFO queue ("wait morphing"): a
// notified task resumes only once it holds the lock again, behind tasks
// already queued for the lock, as in asyncio where it re-acquires after
// waking. wait() may return without a matching notify() only in the
// documented pass-on case below; callers re-check their predicate anyway
// (wait_for() does).
//
// Invariants:
// - A wait node is in the condition's list (waiting for notify) or in the
//   lock's queue (waiting to re-acquire), never both; phase_ says which.
// - The lock is held whenever a node is moved into its queue (notify requires
//   the lock; a cancelled waiter takes a free lock directly).
#include <cstddef>
#include <type_traits>

#include "coro/lock.hpp"
#include "coro/task.hpp"
#include "coro/wait_list.hpp"

namespace corio {

class Condition {
 public:
  Condition() noexcept : lock_(&own_lock_) {}
  // Share `lock`, which must outlive the condition.
  explicit Condition(Lock& lock) noexcept : lock_(&lock) {}
  Condition(const Condition&) = delete;
  Condition& operator=(const Condition&) = delete;

  class [[nodiscard]] WaitAwaiter final : public detail::LockWaiter, public CancelHook {
   public:
    explicit WaitAwaiter(Condition& c) noexcept : cond_(&c) {}
    WaitAwaiter(WaitAwaiter&&) = delete;
    ~WaitAwaiter();

    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> h);
    void await_resume();
    void on_granted() noexcept override;
    bool on_cancel(TaskBase&) noexcept override;

   private:
    friend class Condition;
    enum class Phase : unsigned char { idle, notify, relock, done };
    Condition* cond_;
    TaskBase* task_ = nullptr;
    Phase phase_ = Phase::idle;
    bool notified_ = false;
    bool cancelled_ = false;
  };

  // The lock's API (asyncio exports these from the lock).
  bool locked() const noexcept { return lock_->locked(); }
  Lock::AcquireAwaiter acquire() noexcept { return lock_->acquire(); }
  Lock::ScopedAwaiter scoped() noexcept { return lock_->scoped(); }
  void release() { lock_->release(); }
  Lock& lock() noexcept { return *lock_; }

  // Release the lock, wait for notify()/notify_all(), re-acquire the lock,
  // return. The caller must hold the lock: throws InvalidStateError if it is
  // not locked (asyncio: RuntimeError). Any number of tasks may wait.
  // Cancellation: the lock is re-acquired before CancelledError propagates,
  // even if the cancel arrived while waiting for notify() (the task then
  // queues for the lock) — so code after the wait, and a LockGuard around
  // it, always own the lock. Further cancels during that re-acquire are
  // absorbed into the one CancelledError. A waiter cancelled after notify()
  // chose it passes the notification to the next waiter, so no wake-up is
  // lost. A cancel pending before wait() suspends throws CancelledError
  // without ever releasing the lock. (A frame destroyed while suspended here,
  // at loop teardown, does not hold the lock; a LockGuard around the wait
  // then releases it on its way out. The Condition must outlive such frames.)
  WaitAwaiter wait();

  // wait() until pred() is true; returns pred()'s last value (asyncio's
  // wait_for). Checks pred() first, so it may return without waiting — and
  // without holding the lock if pred() is already true. The predicate runs
  // with the lock held otherwise.
  // Cancellation: as wait(); the lock is held when CancelledError propagates.
  template <class Pred>
  Task<std::decay_t<std::invoke_result_t<Pred&>>> wait_for(Pred pred) {
    auto result = pred();
    while (!result) {
      co_await wait();
      result = pred();
    }
    co_return result;
  }

  // Wake up to n waiters (they resume once they re-acquire the lock). The
  // caller must hold the lock: throws InvalidStateError otherwise.
  void notify(std::size_t n = 1);
  void notify_all() { notify(waiters_.size()); }

  // Tasks waiting for a notification (for tests and debugging).
  std::size_t n_waiters() const noexcept { return waiters_.size(); }

 private:
  void move_to_lock(std::size_t n) noexcept;

  Lock own_lock_;  // unused when sharing a lock
  Lock* lock_;
  detail::WaitList<WaitAwaiter> waiters_;
};

}  // namespace corio
