#pragma once
// run_coroutine_threadsafe(loop, task): submit a coroutine to a loop running
// in another thread, and get a thread-safe future for its result (asyncio's
// run_coroutine_threadsafe).
//
//   // on some plain thread, while `loop` runs elsewhere:
//   futures::Future<int> f = corio::run_coroutine_threadsafe(loop, fetch_count());
//   int n = f.result(std::chrono::seconds(5));   // or f.cancel()
//
// - The task is created on the loop thread (through call_soon_threadsafe) and
//   runs there like any task; its value, exception (same type) or
//   cancellation settles the future.
// - The future stays pending (never "running") until the task is done, so
//   cancel() succeeds until then: it cancels the task on the loop, and the
//   future reports cancelled at once even if the task then swallows the
//   cancellation. Cancelled before the task's first step, its body never runs.
// - If the loop closes first, the future is cancelled ("event loop closed").
// - `loop` must be alive when this is called; after the loop closed, every
//   future it returned is done, so cancel() never touches a dead loop.
// The future's done callbacks run on the loop thread when the task settles it.
#include <exception>
#include <string>
#include <utility>

#include "coro/errors.hpp"
#include "coro/task.hpp"
#include "coro/task_handle.hpp"
#include "loop/event_loop.hpp"
#include "loop/future.hpp"

namespace corio {

namespace detail {

template <class T>
class CoroFutureState final : public FutureState<T> {
 public:
  explicit CoroFutureState(EventLoop& loop) noexcept : loop_(&loop) {}

  EventLoop& loop() const noexcept { return *loop_; }
  // Loop thread only.
  TaskHandle<void> task;

 private:
  // Under the state's lock: forward the cancel to the task on its loop. The
  // post happens before the task can settle the state (that needs the lock),
  // so the loop is alive (it closes only after settling every such state).
  void on_cancelled_locked() noexcept override {
    // The reference travels in the callback and is dropped when it runs or
    // when the loop discards it at close (a raw pointer leaked the state).
    struct Ref {
      CoroFutureState* s;
      explicit Ref(CoroFutureState* p) noexcept : s(p) { s->add_ref(); }
      Ref(Ref&& o) noexcept : s(std::exchange(o.s, nullptr)) {}
      ~Ref() {
        if (s) s->release();
      }
    };
    try {
      loop_->call_soon_threadsafe([r = Ref(this)] {
        if (r.s->task) r.s->task.cancel(r.s->cancel_message());
      });
    } catch (...) {  // out of memory: the task runs on; the future is cancelled anyway
    }
  }

  EventLoop* loop_;
};

// Holds a reference to the state; settles it as cancelled if dropped before
// anything settled it (the callback was discarded, the frame destroyed).
// Destroyed on the loop thread, except if call_soon_threadsafe itself failed.
template <class T>
class CoroFutureRef {
 public:
  explicit CoroFutureRef(CoroFutureState<T>* s) noexcept : s_(s) {}
  CoroFutureRef(CoroFutureRef&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  CoroFutureRef& operator=(CoroFutureRef&&) = delete;
  ~CoroFutureRef() {
    if (s_) {
      s_->set_cancelled("event loop closed");
      // On the loop thread (a frame or callback destroyed there): drop the
      // task record here, not wherever the last Future goes.
      s_->task = TaskHandle<void>();
      s_->release();
    }
  }
  CoroFutureState<T>* get() const noexcept { return s_; }

 private:
  CoroFutureState<T>* s_;
};

template <class T>
Task<void> run_threadsafe_body(Task<T> inner, CoroFutureRef<T> param_ref) {
  // A local, not the parameter: locals die when the body ends, parameters
  // only with the task record, which the state's handle keeps alive (a cycle).
  CoroFutureRef<T> ref = std::move(param_ref);
  CoroFutureState<T>* st = ref.get();
  try {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(inner);
      st->set_result();
    } else {
      st->set_result(co_await std::move(inner));
    }
  } catch (const CancelledError& e) {
    st->set_cancelled(e.message());
  } catch (...) {
    st->set_exception(std::current_exception());
  }
  st->task = TaskHandle<void>();  // settled: no cancel will need it
}

}  // namespace detail

template <class T>
futures::Future<T> run_coroutine_threadsafe(EventLoop& loop, Task<T> task, std::string name = {}) {
  if (!task.valid()) throw InvalidStateError("run_coroutine_threadsafe: empty Task");
  auto* st = new detail::CoroFutureState<T>(loop);
  st->add_ref();  // the callback's, below
  futures::Future<T> f(st);
  loop.call_soon_threadsafe([ref = detail::CoroFutureRef<T>(st), task = std::move(task),
                             name = std::move(name)]() mutable {
    detail::CoroFutureState<T>* s = ref.get();
    if (s->done()) return;  // cancelled before it could start: the body never runs
    // The body now owns the reference; if the loop closes with it suspended,
    // destroying its frame settles the future.
    s->task = create_task_on(s->loop(), detail::run_threadsafe_body(std::move(task), std::move(ref)),
                             std::move(name));
  });
  return f;
}

}  // namespace corio
