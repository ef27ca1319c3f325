#pragma once
// Deadlines: timeout(d) / timeout_at(t) scopes and wait_for(aw, d)
// (asyncio.timeout, asyncio.timeout_at, asyncio.wait_for).
//
// C++ has no `async with`, so a scope wraps the work it limits:
//
//   co_await timeout(2s).run(fetch(url));          // TimeoutError after 2 s
//
//   Timeout t = timeout(2s);                         // a scope the body can move
//   co_await t.run(download(t));                    // download() may call t.reschedule()
//
// Mechanics (asyncio's): run(body) awaits `body` in the calling task. At the
// deadline the scope cancels the calling task, so `body` sees CancelledError
// at the point where it waits and may clean up (awaiting is allowed). When
// `body` ends, the scope takes back its own cancel request (uncancel()); if
// no other request remains — the count falls back to what it was on entry —
// and `body` ended with CancelledError, the scope raises TimeoutError
// instead. So:
// - a cancel from outside is never swallowed: it stays CancelledError;
// - nested scopes: only the scope whose deadline caused the cancel converts
//   it (an inner scope seeing an outer scope's request lets it through);
// - a `body` that swallows the cancellation and returns normally returns its
//   value (DESIGN Semantics 4): the deadline is enforced by cancellation,
//   never by abandoning the work;
// - another exception raised by `body` while being cancelled (e.g. from its
//   cleanup) propagates as it is.
//
// Cancellation: the scope's own request becomes TimeoutError as above; any
// other request propagates as CancelledError.
// Concurrency: a Timeout is entered (run) once, in one task. reschedule(),
// when() and expired() may be called from anywhere on the loop's thread
// while it lives.
#include <chrono>
#include <concepts>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "coro/errors.hpp"
#include "coro/exception_group.hpp"
#include "coro/scheduler.hpp"
#include "coro/task.hpp"
#include "coro/task_base.hpp"
#include "coro/task_handle.hpp"
#include "coro/wait.hpp"

namespace corio {

class Timeout {
 public:
  // A scope expiring at `when`; nullopt never expires (until rescheduled).
  explicit Timeout(std::optional<TimePoint> when) noexcept : when_(when) { node_.fire = &Timeout::fired; }
  Timeout(const Timeout&) = delete;
  Timeout& operator=(const Timeout&) = delete;
  ~Timeout() { disarm(); }

  std::optional<TimePoint> when() const noexcept { return when_; }
  // Move the deadline (nullopt: no deadline). A deadline already past expires
  // at the next loop iteration. Throws InvalidStateError unless the scope is
  // active (entered, not expired, not finished).
  void reschedule(std::optional<TimePoint> when);
  template <class Rep, class Period>
  void reschedule_in(std::chrono::duration<Rep, Period> d) {
    reschedule(detail::deadline_after(current_scheduler().now(), d));
  }
  // The deadline passed while the scope was active (whatever body did then).
  bool expired() const noexcept { return state_ == State::expiring || state_ == State::expired; }

  // Await `body` in the calling task under this scope's deadline (see the
  // header comment). Throws InvalidStateError if the scope was entered before.
  template <class T>
  Task<T> run(Task<T> body) {
    enter();
    std::exception_ptr exc;
    if constexpr (std::is_void_v<T>) {
      try {
        co_await std::move(body);
      } catch (...) {
        exc = std::current_exception();
      }
      exit(exc);
    } else {
      std::optional<T> value;
      try {
        value.emplace(co_await std::move(body));
      } catch (...) {
        exc = std::current_exception();
      }
      exit(exc);
      co_return std::move(*value);
    }
  }

 private:
  enum class State : std::uint8_t { created, entered, expiring, expired, exited };

  void enter();
  // Rethrows `exc`, or throws TimeoutError in its place, or returns.
  void exit(const std::exception_ptr& exc);
  void arm();
  void disarm() noexcept;
  static void fired(detail::TimerNode* n) noexcept;
  void post_expiry() noexcept;
  void expire() noexcept;
  struct DeferredExpiry;

  detail::TimerNode node_;
  // The deadline passed: its expiry waits in the ready queue (timeout.cpp).
  DeferredExpiry* deferred_ = nullptr;
  std::optional<TimePoint> when_;
  TaskBase* task_ = nullptr;
  int cancelling_on_entry_ = 0;
  TaskBase::OwnCancel own_;  // the deadline's request, once it fired
  State state_ = State::created;
};

// A scope expiring `d` from now (asyncio.timeout(delay)); needs a running loop.
template <class Rep, class Period>
Timeout timeout(std::chrono::duration<Rep, Period> d) {
  return Timeout(detail::deadline_after(current_scheduler().now(), d));
}
// asyncio.timeout(None): no deadline until rescheduled.
inline Timeout timeout(std::nullopt_t) noexcept { return Timeout(std::nullopt); }
// A scope expiring at `when` on the loop's clock (asyncio.timeout_at).
inline Timeout timeout_at(std::optional<TimePoint> when) noexcept { return Timeout(when); }

namespace detail {
template <class T>
Task<T> await_handle(TaskHandle<T> h) {
  co_return co_await h;
}

}  // namespace detail

// wait_for(task, d): the task's value, or TimeoutError if it does not finish
// within d. `task` runs in the calling task under a timeout(d) scope: at the
// deadline it is cancelled and ran to its end (its cleanup included) before
// TimeoutError is raised; if it swallows the cancellation and returns a value,
// that value is returned (DESIGN Semantics 4). With d <= 0 the task never
// starts and TimeoutError is raised at once (asyncio).
// Cancellation: cancelling the calling task cancels `task` (it runs inline);
// the CancelledError propagates.
template <class T, class Rep, class Period>
Task<T> wait_for(Task<T> task, std::chrono::duration<Rep, Period> d) {
  if (d <= d.zero()) {
    // Refused on purpose, not forgotten: no "never awaited" report in debug
    // mode (asyncio closes the coroutine through the cancelled task).
    if (task.valid()) task.release().destroy();
    throw TimeoutError("wait_for: timed out (timeout <= 0, the task was not started)");
  }
  co_return co_await timeout(d).run(std::move(task));
}

// wait_for(handle, d): like above for an already spawned task. At the
// deadline the task is cancelled and awaited; TimeoutError is raised once it
// has finished cancelled. With d <= 0 a task already done yields its result;
// otherwise it is cancelled at once and waited for (asyncio's
// _cancel_and_wait): TimeoutError once it finished cancelled, else its value
// or exception.
// Cancellation: with d > 0, cancelling the calling task cancels the awaited
// task too (as awaiting a TaskHandle does) and raises CancelledError once it
// finished. With d <= 0 the task is already cancelled: a cancel of the
// calling task raises CancelledError at once, neither cancelling the task a
// second time (which would cut its cleanup short) nor waiting for it, as in
// asyncio.
template <class T, class Rep, class Period>
Task<T> wait_for(TaskHandle<T> h, std::chrono::duration<Rep, Period> d) {
  if (d > d.zero()) co_return co_await timeout(d).run(detail::await_handle(std::move(h)));
  if (h.done()) co_return co_await h;
  h.cancel();
  // wait() leaves the task alone when the calling task is cancelled, where
  // awaiting the handle would forward the cancel.
  std::vector<TaskHandle<T>> hs{h};
  co_await wait(hs);
  if (h.cancelled()) throw TimeoutError("wait_for: timed out (timeout <= 0)");
  co_return co_await h;  // done: it swallowed the cancel (value) or failed
}

// wait_for(awaiter, d) for other movable awaiters, typically
// `wait_for(shield(h), d)`: the awaiter is awaited in the calling task under
// a timeout(d) scope (d <= 0 expires at the next loop iteration).
// Cancellation: as for timeout(d).run(...); what the awaiter does on cancel
// is its own (shield: the inner task keeps running).
template <class A, class Rep, class Period>
  requires detail::DirectAwaiter<A>
Task<decltype(std::declval<A&>().await_resume())> wait_for(A aw, std::chrono::duration<Rep, Period> d) {
  co_return co_await timeout(d).run(detail::await_in_task(std::move(aw)));
}

}  // namespace corio
