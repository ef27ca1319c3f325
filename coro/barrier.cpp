#include "coro/barrier.hpp"

#include <exception>
#include <string>

namespace corio {

Barrier::Barrier(std::ptrdiff_t parties) : parties_(static_cast<std::size_t>(parties)) {
  if (parties < 1) throw ValueError("Barrier parties must be >= 1, got " + std::to_string(parties));
}

Task<std::size_t> Barrier::wait() {
  // Wait for the previous cycle to drain (or a reset to finish).
  while (state_ == State::draining || state_ == State::resetting) co_await park();
  if (state_ == State::broken) throw BrokenBarrierError("Barrier aborted");

  const std::size_t index = count_++;
  // Every way out (value, BrokenBarrierError, CancelledError) must leave the
  // barrier; C++ has no `finally` around co_await, so capture and rethrow.
  std::exception_ptr error;
  try {
    if (index + 1 == parties_) {
      state_ = State::draining;
      changed();
    } else {
      // count_ includes this task, so the state cannot return to filling
      // before it leaves: any other state means tripped, reset or aborted.
      while (state_ == State::filling) co_await park();
      if (state_ != State::draining) throw BrokenBarrierError("Barrier aborted or reset while waiting");
    }
  } catch (...) {
    error = std::current_exception();
  }
  --count_;
  leave();
  if (error) std::rethrow_exception(error);
  co_return index;
}

void Barrier::leave() noexcept {
  if (count_ != 0) return;
  // The last task out ends draining or resetting; tasks blocked at the entry
  // may start the next cycle.
  if (state_ == State::draining || state_ == State::resetting) state_ = State::filling;
  changed();
}

void Barrier::reset() noexcept {
  if (count_ > 0) state_ = State::resetting;  // the tasks inside get BrokenBarrierError
  else state_ = State::filling;
  changed();
}

void Barrier::abort() noexcept {
  state_ = State::broken;
  changed();
}

}  // namespace corio
