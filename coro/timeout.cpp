#include "coro/timeout.hpp"

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
  node_.deadline = *when_;
  node_.ctx = this;
  task_->scheduler().add_timer(node_);
}

void Timeout::disarm() noexcept {
  if (node_.armed()) task_->scheduler().cancel_timer(node_);
}

void Timeout::fired(detail::TimerNode* n) noexcept {
  auto* self = static_cast<Timeout*>(n->ctx);
  // Armed only while entered: exit() and reschedule() disarm first.
  self->state_ = State::expiring;
  try {
    self->own_ = self->task_->cancel_own();
  } catch (...) {  // cancel() with an empty message allocates nothing
  }
}

}  // namespace corio
