#include "coro/timeout.hpp"

#include <new>

namespace corio {

void Timeout::enter() {
  if (state_ != State::created) throw InvalidStateError("Timeout has already been entered");
  task_ = &TaskBase::current_checked("Timeout.run()");
  state_ = State::entered;
  // Requests already pending belong to someone else: only what comes on top
  // of this count can be ours to convert.
  cancelling_on_entry_ = task_->cancelling();
  arm();
}

void Timeout::exit(const std::exception_ptr& exc) {
  disarm();
  if (state_ == State::expiring) {
    state_ = State::expired;
    if (task_->uncancel_own(own_) <= cancelling_on_entry_ && exc && exception_is<CancelledError>(exc)) {
      // No new request came on top of ours: this CancelledError is the deadline's.
      throw TimeoutError("the timeout expired");
    }
  } else {
    state_ = State::exited;
  }
  if (exc) std::rethrow_exception(exc);
}

void Timeout::reschedule(std::optional<TimePoint> when) {
  switch (state_) {
    case State::created:
      throw InvalidStateError("Timeout has not been entered");
    case State::expiring:
    case State::expired:
      throw InvalidStateError("Cannot change state of an expired Timeout");
    case State::exited:
      throw InvalidStateError("Cannot change state of a finished Timeout");
    case State::entered:
      break;
  }
  disarm();
  when_ = when;
  arm();
}

void Timeout::arm() {
  if (!when_) return;
  if (*when_ <= task_->scheduler().now()) {
    post_expiry();
    return;
  }
  node_.deadline = *when_;
  node_.ctx = this;
  task_->scheduler().add_timer(node_);
}

// The order of an expiry, as asyncio's (_run_once runs what I/O and earlier
// steps made ready, then the timers' callbacks; a task a timer wakes runs one
// step later). A task already queued with the outcome of what it awaited
// runs that step first: a result that came in time is returned, and the
// scope, left with it, never expires; the expiry waits behind it in the ready
// queue. A task woken by a timer that fired just before (a sleep's, another
// deadline's) is cancelled at once, ahead of that step. A deadline already
// past when armed expires "soon" (asyncio call_soon's it), ahead of a task
// that merely yields. The waiting expiry is heap-allocated: the ready queue
// cannot give an entry back, and the Timeout may be gone (its scope left) by
// the time it runs; exit() and reschedule() let go of it.
struct Timeout::DeferredExpiry final : detail::Runnable {
  explicit DeferredExpiry(Timeout* t) noexcept : timeout(t) {}
  void run() noexcept override {
    if (timeout) {
      timeout->deferred_ = nullptr;
      timeout->expire();
    }
    delete this;
  }
  void discard() noexcept override {
    if (timeout) timeout->deferred_ = nullptr;
    delete this;
  }
  Timeout* timeout;
};

void Timeout::disarm() noexcept {
  if (node_.armed()) task_->scheduler().cancel_timer(node_);
  if (deferred_) {
    deferred_->timeout = nullptr;  // it frees itself when the queue reaches it
    deferred_ = nullptr;
  }
}

void Timeout::post_expiry() noexcept {
  auto* d = new (std::nothrow) DeferredExpiry(this);
  if (!d) {
    expire();  // out of memory: at once rather than never
    return;
  }
  deferred_ = d;
  task_->scheduler().post(*d);
}

void Timeout::fired(detail::TimerNode* n) noexcept {
  // Armed only while entered: exit() and reschedule() disarm first.
  auto* self = static_cast<Timeout*>(n->ctx);
  if (self->task_->queued() && !self->task_->scheduler().posted_by_timers(*self->task_)) self->post_expiry();
  else self->expire();
}

void Timeout::expire() noexcept {
  state_ = State::expiring;
  try {
    own_ = task_->cancel_own();
  } catch (...) {  // cancel() with an empty message allocates nothing
  }
}

}  // namespace corio
