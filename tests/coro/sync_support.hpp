#pragma once
// Helpers for the synchronization-primitive tests: step the loop like
// asyncio's `await asyncio.sleep(0)`, bound every run, await a task that is
// expected to end cancelled.
#include <doctest/doctest.h>

#include <chrono>
#include <utility>

#include "coro/sleep.hpp"
#include "coro/task.hpp"
#include "coro/task_handle.hpp"
#include "loop/event_loop.hpp"

namespace corio::test {

// Yield n times: every task made ready before each yield runs one step first.
inline Task<void> ticks(int n = 1) {
  for (int i = 0; i < n; ++i) co_await sleep(std::chrono::seconds(0));
}

// run_until_complete with a deadline: a deadlock fails the test (the loop
// stops and run_until_complete throws) instead of hanging it.
template <class T>
T run_bounded(EventLoop& loop, Task<T> main, Duration limit = std::chrono::seconds(30)) {
  CallbackHandle dog = loop.call_later(limit, [&loop] {
    FAIL_CHECK("test deadline passed: a task is stuck");
    loop.stop();
  });
  struct Disarm {
    CallbackHandle& h;
    ~Disarm() { h.cancel(); }
  } disarm{dog};
  return loop.run_until_complete(std::move(main));
}

// Await h; true if it ended with CancelledError, false if it returned.
template <class T>
Task<bool> ends_cancelled(TaskHandle<T> h) {
  try {
    co_await h;
  } catch (const CancelledError&) {
    co_return true;
  }
  co_return false;
}

}  // namespace corio::test
