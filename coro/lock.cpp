#include "coro/lock.hpp"

namespace corio {

void Lock::release() {
  if (!locked_) throw InvalidStateError("Lock.release(): the lock is not acquired");
  // Released already and handed to a waiter that has not resumed yet: it is
  // that waiter's now (asyncio, whose lock is free until the waiter runs,
  // raises here too), and another hand-over would let two tasks in.
  if (grant_pending_)
    throw InvalidStateError("Lock.release(): the lock is not acquired (released already, and handed to a waiting task)");
  // Hand over instead of unlocking, so no newcomer can slip in before the
  // first waiter resumes.
  if (detail::LockWaiter* w = waiters_.pop_front()) {
    grant_pending_ = true;
    w->on_granted();
  } else {
    locked_ = false;
  }
}

}  // namespace corio
