#pragma once
// async_finally(): async cleanup after success, an error or a cancellation
// (DESIGN "Semantics decided" 10).
//
// C++ forbids co_await inside a catch handler and in destructors, so
// asyncio's
//
//   try: return await body()
//   finally: await cleanup()
//
// is written
//
//   co_return co_await async_finally(body(), cleanup());
//
// or, when the cleanup needs to know how the body ended (commit vs rollback),
//
//   co_await async_finally(body(), [&](std::exception_ptr e) -> Task<void> {
//     if (e) co_await rollback(); else co_await commit();
//   });
//
// Order: `body` runs to its end in the calling task; then the cleanup runs
// (and may await) whatever happened; then body's exception, if any, is
// rethrown, else its value returned. If the cleanup throws, its exception
// replaces the body's (as an exception raised in a Python `finally` does).
// The callable form is invoked only after `body` ended and is kept alive
// (moved into the coroutine frame) while its Task runs, so it may capture.
//
// Cancellation: a cancel of the calling task reaches `body` where it waits;
// the body's CancelledError is held while the cleanup runs. The cancel was
// delivered once (DESIGN Semantics 1), so the cleanup's awaits run normally; a
// second cancel() interrupts the cleanup (its CancelledError then replaces
// the body's exception). After the cleanup the body's CancelledError is
// rethrown.
// Concurrency: none of its own; body and cleanup run one after the other in
// the calling task.
#include <exception>
#include <functional>
#include <optional>
#include <type_traits>
#include <utility>

#include "coro/task.hpp"

namespace corio {

namespace detail {
// Runs body, then cleanup_for(exception or nullptr), then reports body's outcome.
template <class T, class MakeCleanup>
Task<T> run_then_cleanup(Task<T> body, MakeCleanup make_cleanup) {
  std::exception_ptr exc;
  if constexpr (std::is_void_v<T>) {
    try {
      co_await std::move(body);
    } catch (...) {
      exc = std::current_exception();
    }
    co_await make_cleanup(exc);
    if (exc) std::rethrow_exception(exc);
  } else {
    std::optional<T> value;
    try {
      value.emplace(co_await std::move(body));
    } catch (...) {
      exc = std::current_exception();
    }
    co_await make_cleanup(exc);
    if (exc) std::rethrow_exception(exc);
    co_return std::move(*value);
  }
}
}  // namespace detail

// async_finally(body, cleanup_task): cleanup_task is a Task<void> (lazy: it
// does not start before body ended).
template <class T>
Task<T> async_finally(Task<T> body, Task<void> cleanup) {
  return detail::run_then_cleanup(std::move(body), [c = std::move(cleanup)](const std::exception_ptr&) mutable {
    return std::move(c);
  });
}

// async_finally(body, fn): fn(std::exception_ptr) -> Task<void> is called
// after body ended, with body's exception or nullptr on success.
template <class T, class F>
  requires std::is_invocable_r_v<Task<void>, F&, std::exception_ptr>
Task<T> async_finally(Task<T> body, F cleanup) {
  return detail::run_then_cleanup(std::move(body), [f = std::move(cleanup)](const std::exception_ptr& e) mutable {
    return std::invoke(f, e);
  });
}

}  // namespace corio
