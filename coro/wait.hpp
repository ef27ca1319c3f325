#pragma once
// wait() and as_completed(): wait on a set of spawned tasks without taking
// their results (asyncio.wait, asyncio.as_completed).
//
//   auto [done, pending] = co_await wait(handles, FIRST_COMPLETED, 500ms);
//
//   auto ac = as_completed(handles, 2s);
//   while (ac.remaining() > 0) {
//     TaskHandle<int> h = co_await ac.next();   // in completion order
//     int v = co_await h;                        // done: value or its exception
//   }
//
// Both take TaskHandle<T>s (as_completed also takes Task<T>s and spawns them
// in order). Neither raises a task's exception nor cancels any task: read
// each handle's result.
//
// GCC 12 note: `co_await wait(std::vector{a, b})` does not compile there (a
// braced list of class objects as a temporary inside a co_await expression,
// "array used as initializer"); build the vector in its own statement first.
#include <algorithm>
#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <unordered_set>
#include <stdexcept>
#include <utility>
#include <vector>

#include "coro/errors.hpp"
#include "coro/scheduler.hpp"
#include "coro/task.hpp"
#include "coro/task_base.hpp"
#include "coro/task_handle.hpp"

namespace corio {

// When wait() returns (asyncio's return_when).
enum class ReturnWhen : std::uint8_t {
  FIRST_COMPLETED,  // any task finished (or was cancelled)
  FIRST_EXCEPTION,  // any task finished with an exception (cancelled does not count), else all done
  ALL_COMPLETED,    // every task finished
};
inline constexpr ReturnWhen FIRST_COMPLETED = ReturnWhen::FIRST_COMPLETED;
inline constexpr ReturnWhen FIRST_EXCEPTION = ReturnWhen::FIRST_EXCEPTION;
inline constexpr ReturnWhen ALL_COMPLETED = ReturnWhen::ALL_COMPLETED;

// wait()'s result: the input handles split by done(), each side in input
// order; a handle given twice appears once (asyncio's sets).
template <class T>
struct WaitResult {
  std::vector<TaskHandle<T>> done;
  std::vector<TaskHandle<T>> pending;
};

namespace detail {

template <class T>
std::vector<TaskBase*> task_bases(const std::vector<TaskHandle<T>>& hs) {
  std::vector<TaskBase*> v;
  v.reserve(hs.size());
  for (const auto& h : hs) {
    if (!h) throw std::invalid_argument("wait/as_completed: empty TaskHandle");
    v.push_back(&h.base());
  }
  return v;
}

// The handles with repeats dropped (asyncio takes a set: wait({t, t}) has t
// once in done, as_completed yields it once), first occurrences in order.
template <class T>
std::vector<TaskHandle<T>> unique_handles(std::vector<TaskHandle<T>> hs) {
  if (hs.size() < 2) return hs;
  std::vector<const TaskBase*> seen;
  seen.reserve(hs.size());
  for (const auto& h : hs) seen.push_back(h ? &h.base() : nullptr);
  std::sort(seen.begin(), seen.end());
  if (std::adjacent_find(seen.begin(), seen.end()) == seen.end()) return hs;  // the usual case: no repeats
  std::unordered_set<const TaskBase*> kept;
  std::vector<TaskHandle<T>> out;
  out.reserve(hs.size());
  for (auto& h : hs) {
    if (!h || kept.insert(&h.base()).second) out.push_back(std::move(h));
  }
  return out;
}

// The wait itself, over type-erased tasks. Lives in wait()'s frame.
class WaitCore final : public CancelHook {
 public:
  WaitCore(std::vector<TaskBase*> tasks, ReturnWhen when, std::optional<Duration> timeout);
  WaitCore(const WaitCore&) = delete;
  WaitCore& operator=(const WaitCore&) = delete;
  ~WaitCore();

  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> h);
  void await_resume() const;
  bool on_cancel(TaskBase& t) noexcept override;

 private:
  struct Child final : DoneWaiter {
    WaitCore* core = nullptr;
    TaskBase* task = nullptr;
    void on_task_done(TaskBase& t) noexcept override { core->child_done(t); }
  };
  bool satisfied_by(TaskBase& t) const noexcept;
  void child_done(TaskBase& t) noexcept;
  void resume_waiter() noexcept;
  static void fired(TimerNode* n) noexcept;

  std::vector<Child> children_;  // never resized after construction
  TimerNode timer_;
  std::optional<Duration> timeout_;
  TaskBase* waiter_ = nullptr;
  std::size_t not_done_ = 0;
  ReturnWhen when_;
  bool woken_ = false;  // the waiter was woken: later events are ignored
  bool cancelled_ = false;
};

// as_completed's bookkeeping over type-erased tasks: records completion
// order from construction on.
class AsCompletedCore {
 public:
  AsCompletedCore(std::vector<TaskBase*> tasks, std::optional<Duration> timeout);
  AsCompletedCore(const AsCompletedCore&) = delete;
  AsCompletedCore& operator=(const AsCompletedCore&) = delete;
  ~AsCompletedCore();

  std::size_t size() const noexcept { return children_.size(); }
  std::size_t remaining() const noexcept { return children_.size() - yielded_; }

  class NextAwaiter final : public CancelHook {
   public:
    explicit NextAwaiter(AsCompletedCore& c) noexcept : core_(c) {}
    NextAwaiter(const NextAwaiter&) = delete;
    ~NextAwaiter() {
      if (core_.waiting_ == this) core_.waiting_ = nullptr;
    }
    bool await_ready() const noexcept;
    bool await_suspend(std::coroutine_handle<> h);
    // The index of the next finished task.
    std::size_t await_resume();
    bool on_cancel(TaskBase& t) noexcept override;

   private:
    friend class AsCompletedCore;
    AsCompletedCore& core_;
    TaskBase* task_ = nullptr;
    bool cancelled_ = false;
  };

 private:
  struct Child final : DoneWaiter {
    AsCompletedCore* core = nullptr;
    TaskBase* task = nullptr;
    std::size_t index = 0;
    void on_task_done(TaskBase&) noexcept override { core->child_done(*this); }
  };
  void child_done(Child& c) noexcept;
  void wake_waiting() noexcept;
  static void fired(TimerNode* n) noexcept;

  std::vector<Child> children_;  // never resized after construction
  std::deque<std::size_t> finished_;  // indices finished and not yet yielded, in completion order
  TimerNode timer_;
  Scheduler* sched_;
  NextAwaiter* waiting_ = nullptr;
  std::size_t yielded_ = 0;
  bool timed_out_ = false;
};

}  // namespace detail

// Wait until `when` is met or `timeout` passed, then split the handles into
// done and pending. The tasks are neither cancelled nor awaited for their
// results (a timeout raises nothing: pending is simply non-empty). Throws
// ValueError for an empty vector, as asyncio does. If the condition already holds
// it returns without suspending.
// Cancellation: cancelling the awaiting task raises CancelledError in it (also
// when the cancel arrives after the wait was satisfied but before the task
// resumed, as in asyncio); the waited-on tasks are not touched.
// Concurrency: any number of wait()s may watch the same tasks.
template <class T>
Task<WaitResult<T>> wait(std::vector<TaskHandle<T>> tasks, ReturnWhen when = ALL_COMPLETED,
                         std::optional<Duration> timeout = std::nullopt) {
  if (tasks.empty()) throw ValueError("wait: the set of tasks is empty");
  tasks = detail::unique_handles(std::move(tasks));
  {
    detail::WaitCore core(detail::task_bases(tasks), when, timeout);
    co_await core;
  }
  WaitResult<T> r;
  for (auto& h : tasks) (h.done() ? r.done : r.pending).push_back(std::move(h));
  co_return r;
}

// Yields the given tasks as they finish (asyncio.as_completed; in 3.13 terms,
// it yields the original tasks). Completion order is recorded from
// construction, so tasks that finish while the caller does something else
// keep their order; tasks already done come first, in input order.
//
//   next():      awaitable -> TaskHandle<T> of the next finished task (done()).
//                After `timeout` (counted from construction) the tasks that
//                finished before it are still yielded, then next() throws
//                TimeoutError for each remaining one (the tasks keep running).
//                InvalidStateError once all were yielded, or if another
//                next() is already waiting.
//   remaining(): tasks not yet yielded; size(): all of them.
//
// Cancellation: cancelling the task awaiting next() raises CancelledError in
// it (also when the cancel arrives after a task finished but before the
// awaiter resumed, as asyncio's queue-based as_completed does); nothing is
// lost — the next next() yields the same task. The tasks
// themselves are never cancelled by as_completed.
// Concurrency: one next() awaited at a time. Not movable (it is registered
// with the tasks): keep it where as_completed() put it.
template <class T>
class AsCompleted {
 public:
  AsCompleted(std::vector<TaskHandle<T>> tasks, std::optional<Duration> timeout)
      : tasks_(detail::unique_handles(std::move(tasks))), core_(detail::task_bases(tasks_), timeout) {}
  AsCompleted(const AsCompleted&) = delete;
  AsCompleted& operator=(const AsCompleted&) = delete;

  std::size_t size() const noexcept { return core_.size(); }
  std::size_t remaining() const noexcept { return core_.remaining(); }

  class Next {
   public:
    Next(detail::AsCompletedCore& c, const std::vector<TaskHandle<T>>& tasks) noexcept : aw_(c), tasks_(tasks) {}
    bool await_ready() const noexcept { return aw_.await_ready(); }
    bool await_suspend(std::coroutine_handle<> h) { return aw_.await_suspend(h); }
    TaskHandle<T> await_resume() { return tasks_[aw_.await_resume()]; }

   private:
    detail::AsCompletedCore::NextAwaiter aw_;
    const std::vector<TaskHandle<T>>& tasks_;
  };
  [[nodiscard]] Next next() noexcept { return Next(core_, tasks_); }

 private:
  std::vector<TaskHandle<T>> tasks_;
  detail::AsCompletedCore core_;
};

template <class T>
AsCompleted<T> as_completed(std::vector<TaskHandle<T>> tasks, std::optional<Duration> timeout = std::nullopt) {
  return AsCompleted<T>(std::move(tasks), timeout);
}
// Spawns each task (create_task, in order), then as above.
template <class T>
AsCompleted<T> as_completed(std::vector<Task<T>> tasks, std::optional<Duration> timeout = std::nullopt) {
  std::vector<TaskHandle<T>> hs;
  hs.reserve(tasks.size());
  for (auto& t : tasks) hs.push_back(create_task(std::move(t)));
  return AsCompleted<T>(std::move(hs), timeout);
}

}  // namespace corio
