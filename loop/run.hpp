#pragma once
// corio::run(main()): asyncio.run for corio.
//
// Creates an EventLoop, runs `main` as a task named "main" until it is done,
// then cancels every task still pending and runs the loop until they finish
// (their cleanup may await), runs the loop's shutdown hooks (the default
// executor is shut down there), closes the loop, and returns main's value or
// rethrows main's exception (CancelledError if main was cancelled).
#include <utility>

#include "coro/task.hpp"
#include "coro/task_handle.hpp"
#include "loop/event_loop.hpp"

namespace corio {

struct RunOptions {
  LoopOptions loop;
};

namespace detail {
// Everything after main finished: cancel and drain leftovers, shutdown hooks.
void finish_run(EventLoop& loop);
}  // namespace detail

template <class T>
T run(Task<T> main, RunOptions opts = {}) {
  EventLoop loop(std::move(opts.loop));
  TaskHandle<T> h = create_task_on(loop, std::move(main), "main");
  try {
    loop.run_until_done(h.base());
  } catch (...) {
    detail::finish_run(loop);
    throw;
  }
  detail::finish_run(loop);
  if constexpr (std::is_void_v<T>) h.result();
  else return std::move(h.result());
}

}  // namespace corio
