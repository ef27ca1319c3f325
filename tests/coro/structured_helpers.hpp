#pragma once
// Helpers shared by the structured-concurrency tests (gather, TaskGroup, wait,
// timeouts, shield, async_finally): small tasks with known timing and a way to
// look at an exception after the co_await that raised it (C++ forbids
// co_await in a catch handler, so tests capture first, inspect after).
#include <doctest/doctest.h>

#include <chrono>
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

#include "coro/errors.hpp"
#include "coro/exception_group.hpp"
#include "coro/sleep.hpp"
#include "coro/task.hpp"
#include "coro/task_handle.hpp"
#include "loop/event_loop.hpp"

namespace corio::test {

using ms = std::chrono::milliseconds;

// The loop's clock, cached per iteration. Timers are set and fire against it,
// so lower bounds on elapsed time must be measured with it too: a sleep
// started late in an iteration ends up to that much "early" on Clock::now().
inline TimePoint loop_now() { return current_scheduler().now(); }

// Distinct error types, as the CPython tests use ZeroDivisionError/MyExc/ValueError.
struct Boom : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct OtherError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline Task<void> nap(ms d) { co_await sleep(d); }

inline Task<int> value_after(ms d, int v) {
  co_await sleep(d);
  co_return v;
}

inline Task<void> boom_after(ms d, std::string what = "boom") {
  co_await sleep(d);
  throw Boom(what);
}

// Sleeps d; counts a CancelledError in `cancels` and re-raises it.
inline Task<void> sleep_counting(ms d, int& cancels) {
  try {
    co_await sleep(d);
  } catch (const CancelledError&) {
    ++cancels;
    throw;
  }
}

// Returns v after one yield, having asked the loop (call_soon, queued before
// this task's end wakes anyone) to cancel *victim with "late": whoever this
// task's end wakes is cancelled before it resumes. asyncio then raises
// CancelledError at that await (Task.__step throws it instead of the done
// future's result); the CPython 3.11 runs of these scenarios print
// "CancelledError('late',) at the await" for a task, gather, wait, TaskGroup.
inline Task<int> value_then_cancel(const TaskHandle<void>* victim, int v) {
  co_await sleep(std::chrono::seconds(0));
  EventLoop::current().call_soon([victim] { victim->cancel("late"); });
  co_return v;
}

// Catches two cancels, records their messages, then returns 7: a child that
// stays alive to receive a second cancel (each one's message is logged).
inline Task<int> absorbs_two_cancels(std::vector<std::string>& log) {
  for (int i = 0; i < 2; ++i) {
    try {
      co_await sleep(std::chrono::seconds(10));
    } catch (const CancelledError& e) {
      log.push_back(e.message());
    }
  }
  co_return 7;
}

// Awaits t and returns what it threw (nullptr if it returned).
template <class T>
Task<std::exception_ptr> capture(Task<T> t) {
  try {
    co_await std::move(t);
  } catch (...) {
    co_return std::current_exception();
  }
  co_return nullptr;
}

template <class T>
Task<std::exception_ptr> capture(TaskHandle<T> h) {
  try {
    co_await h;
  } catch (...) {
    co_return std::current_exception();
  }
  co_return nullptr;
}

// The ExceptionGroup in e; fails the test if e holds something else.
inline ExceptionGroup group_of(const std::exception_ptr& e) {
  REQUIRE_MESSAGE(exception_is<ExceptionGroup>(e), "expected an ExceptionGroup");
  try {
    std::rethrow_exception(e);
  } catch (const ExceptionGroup& g) {
    return g;
  }
  throw std::logic_error("unreachable");
}

inline std::string cancel_message_of(const std::exception_ptr& e) {
  REQUIRE_MESSAGE(exception_is<CancelledError>(e), "expected a CancelledError");
  try {
    std::rethrow_exception(e);
  } catch (const CancelledError& c) {
    return c.message();
  }
  throw std::logic_error("unreachable");
}

inline std::string what_of(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "?";
  }
}

// Every sub-exception of g (not recursing) is an E.
template <class E>
bool all_are(const ExceptionGroup& g) {
  for (const auto& e : g)
    if (!exception_is<E>(e)) return false;
  return true;
}

}  // namespace corio::test
