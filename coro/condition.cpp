#include "coro/condition.hpp"

namespace corio {

Condition::WaitAwaiter Condition::wait() {
  // Checked at the call, as asyncio does, before anything is released.
  if (!lock_->locked()) throw InvalidStateError("Condition.wait(): cannot wait on an un-acquired lock");
  return WaitAwaiter(*this);
}

void Condition::notify(std::size_t n) {
  if (!lock_->locked()) throw InvalidStateError("Condition.notify(): cannot notify on an un-acquired lock");
  move_to_lock(n);
}

// The lock is held (by the caller of notify, or by a waiter passing on its
// notification), so a moved node simply queues for it.
void Condition::move_to_lock(std::size_t n) noexcept {
  for (; n > 0; --n) {
    WaitAwaiter* w = waiters_.pop_front();
    if (!w) break;
    w->notified_ = true;
    w->phase_ = WaitAwaiter::Phase::relock;
    lock_->waiters_.push_back(*w);
  }
}

Condition::WaitAwaiter::~WaitAwaiter() {
  // Only at loop teardown can a frame die while its node is linked.
  if (!linked()) return;
  if (phase_ == Phase::notify) cond_->waiters_.remove(*this);
  else cond_->lock_->waiters_.remove(*this);
}

bool Condition::WaitAwaiter::await_suspend(std::coroutine_handle<> h) {
  task_ = &TaskBase::current_checked("Condition.wait()");
  if (task_->take_pending_cancel()) {
    // Never released, so nothing to re-acquire.
    cancelled_ = true;
    return false;
  }
  // Release first: it throws if the lock was released since wait() checked,
  // and must then leave no node behind. It may hand the lock to a waiter.
  cond_->lock_->release();
  phase_ = Phase::notify;
  cond_->waiters_.push_back(*this);
  task_->suspend(h, this);
  return true;
}

void Condition::WaitAwaiter::on_granted() noexcept {
  phase_ = Phase::done;
  task_->wake();
}

bool Condition::WaitAwaiter::on_cancel(TaskBase&) noexcept {
  cancelled_ = true;
  if (phase_ == Phase::notify) {
    if (linked()) cond_->waiters_.remove(*this);
    // Re-acquire before throwing: take a free lock now (then nobody queues
    // for it), else queue like everyone else and stay suspended.
    if (cond_->lock_->try_take()) {
      phase_ = Phase::done;
      task_->wake();
    } else {
      phase_ = Phase::relock;
      cond_->lock_->waiters_.push_back(*this);
    }
  }
  // Phase::relock: keep waiting for the lock; CancelledError follows it.
  return true;
}

void Condition::WaitAwaiter::await_resume() {
  phase_ = Phase::done;
  cond_->lock_->grant_pending_ = false;  // held by this task now (see Lock::release)
  // The lock is held here on every path. A cancel that arrived after the
  // lock was granted is delivered now rather than at the next suspension:
  // wait() carries nothing that could be lost.
  if (!cancelled_ && task_->take_pending_cancel()) cancelled_ = true;
  if (cancelled_) {
    // This waiter may have consumed a notify() meant to wake someone; give
    // it to the next waiter (asyncio does the same).
    if (notified_) cond_->move_to_lock(1);
    task_->throw_cancelled();
  }
}

}  // namespace corio
