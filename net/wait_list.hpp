#pragma once
// detail::ParkList: tasks waiting for a change of state in a net object (data
// arrived on a stream, its write buffer drained, it closed, a server closed).
// A thin use of coro/'s WaitList<ParkAwaiter>, the same machinery Event uses.
//
// Waiters are woken all at once and re-check their condition in a loop, so a
// spurious wake-up is harmless and nobody can be lost between "check" and
// "wait": the loop is single-threaded and the check, the registration and
// the suspension happen in one step of the task.
//
// Cancellation: a waiting task resumes with CancelledError at once and leaves
// the list. A cancel that arrives after the task was woken is delivered too:
// the awaited state lives in the object, not in the waiter, so no data is
// lost by throwing.
#include "coro/wait_list.hpp"

namespace corio::detail {

using Waiter = ParkAwaiter;

class ParkList {
 public:
  ParkList() = default;
  ParkList(const ParkList&) = delete;
  ParkList& operator=(const ParkList&) = delete;

  // ready: do not suspend at all (the condition already changed).
  Waiter wait(const char* what, bool ready = false) noexcept { return Waiter(list_, ready, what); }
  bool empty() const noexcept { return list_.empty(); }
  // Wakes every waiter (each re-checks what it waits for).
  void wake_all() noexcept { ParkAwaiter::wake_all(list_); }

 private:
  WaitList<ParkAwaiter> list_;
};

}  // namespace corio::detail
