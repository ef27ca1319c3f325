#include "coro/lock.hpp"

namespace corio {

void Lock::release() {
  if (!locked_) throw InvalidStateError("Lock.release(): the lock is not acquired");
  // Hand over instead of unlocking, so no newcomer can slip in before the
  // first waiter resumes.
  if (detail::LockWaiter* w = waiters_.pop_front()) w->on_granted();
  else locked_ = false;
}

}  // namespace corio
