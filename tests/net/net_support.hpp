#pragma once
// Helpers for the net and integration tests: bounded runs, so no test hangs.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "coro/task_handle.hpp"
#include "net/stream.hpp"
#include "loop/event_loop.hpp"

namespace corio::test {

// Runs `main` on `loop` like run_until_complete, but cancels it when `limit`
// passes, so a broken test fails with "test deadline exceeded" instead of hanging.
template <class T>
T run_bounded(EventLoop& loop, Task<T> main, std::chrono::seconds limit = std::chrono::seconds(60)) {
  TaskHandle<T> h = create_task_on(loop, std::move(main), "test main");
  bool expired = false;
  CallbackHandle watchdog = loop.call_later(limit, [&expired, b = &h.base()] {
    expired = true;
    b->cancel("test deadline exceeded");
  });
  loop.run_until_done(h.base());
  watchdog.cancel();
  if (expired) FAIL("test deadline of " << limit.count() << " s exceeded");
  try {
    if constexpr (std::is_void_v<T>) h.result();
    else return std::move(h.result());
  } catch (const CancelledError& e) {
    FAIL("test main was cancelled: " << e.what());
  }
  if constexpr (!std::is_void_v<T>) return T{};
}

// Awaits t, which is expected to end cancelled: true if it raised
// CancelledError (any other exception propagates).
template <class T>
Task<bool> ends_cancelled(TaskHandle<T>& t) {
  try {
    (void)co_await t;
  } catch (const CancelledError&) {
    co_return true;
  }
  co_return false;
}

// Whether this process runs under injected faults (scripts/test.sh's
// CORIO_FAULT_SEED pass), where a test of exact kernel-side counts cannot
// hold. The fault layer unsets CORIO_FAULT_* when the first loop starts
// (maybe before this runs), so the environment the process started with is
// read from /proc/self/environ.
inline bool started_with_faults() {
  std::FILE* f = std::fopen("/proc/self/environ", "rb");
  if (!f) return std::getenv("CORIO_FAULT_SEED") != nullptr;
  std::string env;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) env.append(buf, n);
  std::fclose(f);
  return env.rfind("CORIO_FAULT_SEED=", 0) == 0 || env.find(std::string("\0CORIO_FAULT_SEED=", 18)) != std::string::npos;
}

// A line-echo connection handler for test servers.
inline Task<void> echo_lines(StreamReader& r, StreamWriter& w) {
  for (;;) {
    std::string line = co_await r.readline();
    if (line.empty()) break;
    w.write(line);
    co_await w.drain();
  }
}

}  // namespace corio::test
