#pragma once
// Event: asyncio.Event. A flag that tasks can wait for.
//
// set() wakes every waiting task (in the order they started waiting) and lets
// later wait()s pass at once until clear(). A task woken by set() returns from
// wait() even if clear() ran before it resumed.
//
// Invariants: waiters are parked only while the flag is clear; set() empties
// the list. Not copyable or movable (waiters point into it).
#include <cstddef>

#include "coro/wait_list.hpp"

namespace corio {

class Event {
 public:
  Event() = default;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  bool is_set() const noexcept { return value_; }

  // Set the flag and wake every waiter. Idempotent.
  void set() noexcept {
    if (value_) return;
    value_ = true;
    detail::ParkAwaiter::wake_all(waiters_);
  }

  // Clear the flag; later wait()s block until the next set().
  void clear() noexcept { value_ = false; }

  // Wait until the flag is set; returns at once (without suspending) if it is.
  // Any number of tasks may wait concurrently.
  // Cancellation: the waiter leaves the list and throws CancelledError; a
  // cancel that arrives after set() woke it but before it resumed is thrown
  // too (nothing is handed over, so nothing is lost).
  detail::ParkAwaiter wait() noexcept { return detail::ParkAwaiter(waiters_, &value_, "Event.wait()"); }

  // Tasks waiting now (for tests and debugging).
  std::size_t n_waiters() const noexcept { return waiters_.size(); }

 private:
  detail::WaitList<detail::ParkAwaiter> waiters_;
  bool value_ = false;
};

}  // namespace corio
