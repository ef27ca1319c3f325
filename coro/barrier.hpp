#pragma once
// Barrier: asyncio.Barrier. `parties` tasks meet; each wait() returns once
// all of them have called it.
//
// States (asyncio's): filling (tasks arriving) -> draining (the last arrival
// tripped the barrier; the others are leaving) -> filling again once every
// task has left. reset() moves a barrier with tasks inside to resetting
// (they get BrokenBarrierError, then it fills again); abort() breaks it
// until reset(). While draining or resetting, new arrivals wait for the next
// cycle, so a task that re-enters at once cannot join the cycle it just left.
//
// Invariants:
// - count_ is the number of tasks inside wait() past the entry check; each
//   leaves by decrementing it when it resumes, and the last one out ends
//   draining/resetting.
// - Every state change wakes all parked tasks, which re-check the state
//   (asyncio notifies a Condition the same way).
#include <cstddef>
#include <stdexcept>

#include "coro/errors.hpp"
#include "coro/task.hpp"
#include "coro/wait_list.hpp"

namespace corio {

// The barrier was aborted, or reset while this task waited in it.
class BrokenBarrierError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Barrier {
 public:
  // Throws ValueError if parties < 1.
  explicit Barrier(std::ptrdiff_t parties);
  Barrier(const Barrier&) = delete;
  Barrier& operator=(const Barrier&) = delete;

  // Wait until `parties` tasks have called wait(); returns this task's arrival
  // index in the cycle, 0 .. parties-1 (the last arrival trips the barrier and
  // returns parties-1 without suspending). As in asyncio, the index is the
  // number of tasks already inside, so after a waiter was cancelled out of a
  // cycle a later arrival may repeat an index. Throws BrokenBarrierError if the
  // barrier is broken on entry, or is aborted or reset while this task waits.
  // Cancellation: a task cancelled while waiting for the barrier to fill
  // leaves it (n_waiting() drops by one; the barrier does not break) and
  // throws CancelledError; a cancel that arrives after the barrier tripped
  // but before the task resumed also throws CancelledError (the barrier has
  // tripped for the others regardless), as in asyncio.
  Task<std::size_t> wait();

  // Back to the initial state. Tasks waiting in the barrier get
  // BrokenBarrierError; a broken barrier is usable again. Synchronous: there
  // is nothing to wait for (asyncio's coroutine only takes an internal lock).
  void reset() noexcept;

  // Break the barrier: waiting tasks, and every wait() until reset(), get
  // BrokenBarrierError. Synchronous like reset().
  void abort() noexcept;

  std::size_t parties() const noexcept { return parties_; }
  // Tasks waiting for the barrier to fill (0 unless filling).
  std::size_t n_waiting() const noexcept { return state_ == State::filling ? count_ : 0; }
  bool broken() const noexcept { return state_ == State::broken; }

 private:
  enum class State : unsigned char { filling, draining, resetting, broken };

  detail::ParkAwaiter park() noexcept { return detail::ParkAwaiter(parked_, nullptr, "Barrier.wait()"); }
  void changed() noexcept { detail::ParkAwaiter::wake_all(parked_); }
  void leave() noexcept;

  detail::WaitList<detail::ParkAwaiter> parked_;
  std::size_t parties_;
  std::size_t count_ = 0;
  State state_ = State::filling;
};

}  // namespace corio
