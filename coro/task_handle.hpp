#pragma once
// create_task() and TaskHandle<T>: a spawned task and a reference to it.
//
// TaskHandle is what asyncio calls a Task object: copyable (a reference
// count), awaitable, with cancel()/done()/result()/exception()/name().
// Dropping every handle does not stop the task: the loop keeps it alive until
// it finishes (no ownerless task is ever lost). An exception nobody retrieved
// is reported to the loop's exception handler when the record is freed.
//
// Awaiting a handle: yields the task's value, rethrows its exception, or
// throws CancelledError if it was cancelled. Many tasks may await one handle.
// Cancellation: cancelling the awaiting task cancels the awaited one (as in
// asyncio); the awaiter then resumes when that task is done. A cancel that
// arrives after the task finished but before the awaiter resumed raises
// CancelledError at this await instead of the result (asyncio's Task.__step
// throws it in place of the done future's result). Use shield() to wait
// without forwarding the cancel.
#include <string>
#include <type_traits>
#include <utility>

#include "coro/task.hpp"
#include "coro/task_base.hpp"

namespace corio {

namespace detail {

template <class T>
class TaskState final : public TaskBase {
 public:
  TaskState(Scheduler& s, Task<T>&& t, std::string name)
      : TaskBase(s, t.handle(), t.handle().promise(), std::move(name)) {
    (void)t.release();  // the record owns the frame now
  }
  ~TaskState() override { report_unretrieved(); }
  Promise<T>& promise() noexcept { return static_cast<Promise<T>&>(*root_promise()); }
  PromiseBase* root_promise() const noexcept override { return promise_of<T>(root_); }
};

}  // namespace detail

template <class T>
class TaskHandle {
 public:
  TaskHandle() noexcept = default;
  explicit TaskHandle(detail::TaskState<T>* s) noexcept : s_(s) {}  // adopts one reference
  TaskHandle(const TaskHandle& o) noexcept : s_(o.s_) {
    if (s_) s_->add_ref();
  }
  TaskHandle(TaskHandle&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  TaskHandle& operator=(TaskHandle o) noexcept {
    std::swap(s_, o.s_);
    return *this;
  }
  ~TaskHandle() {
    if (s_) s_->release();
  }

  explicit operator bool() const noexcept { return s_ != nullptr; }
  TaskBase& base() const noexcept { return *s_; }

  bool done() const noexcept { return s_->done(); }
  bool cancelled() const noexcept { return s_->cancelled(); }
  bool cancel(std::string msg = {}) const { return s_->cancel(std::move(msg)); }
  int cancelling() const noexcept { return s_->cancelling(); }
  int uncancel() const noexcept { return s_->uncancel(); }
  std::string name() const { return s_->name(); }
  void set_name(std::string n) const { s_->set_name(std::move(n)); }
  std::exception_ptr exception() const { return s_->exception(); }

  // The value (by reference into the task), or rethrows; InvalidStateError if not done.
  decltype(auto) result() const {
    s_->check_result();
    if constexpr (!std::is_void_v<T>) return (s_->promise().ref());
  }

  class Awaiter final : public CancelHook, public DoneWaiter {
   public:
    explicit Awaiter(detail::TaskState<T>* s) noexcept : s_(s) { s_->add_ref(); }
    Awaiter(const Awaiter&) = delete;
    ~Awaiter() {
      s_->remove_done_waiter(*this);
      s_->release();
    }
    bool await_ready() const noexcept { return s_->done(); }
    bool await_suspend(std::coroutine_handle<> h) {
      waiter_ = &TaskBase::current_checked("awaiting a task");
      // It would wait for its own end forever (asyncio raises RuntimeError).
      if (waiter_ == s_) throw InvalidStateError("task '" + s_->name() + "' cannot await itself");
      if (waiter_->has_pending_cancel()) {
        // asyncio forwards a pending cancel to the awaited task.
        if (!s_->cancel(waiter_->cancel_message())) return false;  // done: resume now
        waiter_->take_pending_cancel();
        if (s_->done()) return false;
      }
      s_->add_done_waiter(*this);
      waiter_->suspend(h, this, "await task");
      return true;
    }
    T await_resume() {
      if (woken_ && waiter_->has_pending_cancel()) {
        // Woken by the task's end, then cancelled before resuming: the
        // cancel wins, and the task's exception counts as retrieved (asyncio
        // read it with result() before throwing the cancel instead).
        if (s_->state() == TaskBase::State::failed) (void)s_->exception();
        waiter_->throw_cancelled();
      }
      s_->check_result();
      if constexpr (!std::is_void_v<T>) {
        if constexpr (std::is_copy_constructible_v<T>) return s_->promise().ref();
        else return std::move(s_->promise().ref());
      }
    }
    bool on_cancel(TaskBase& t) noexcept override { return s_->cancel(t.cancel_request_message()); }
    void on_task_done(TaskBase&) noexcept override {
      woken_ = true;
      if (s_->state() != TaskBase::State::cancelled) waiter_->forwarded_cancel_spent();
      waiter_->wake();
    }

   private:
    detail::TaskState<T>* s_;
    TaskBase* waiter_ = nullptr;
    bool woken_ = false;
  };

  Awaiter operator co_await() const noexcept { return Awaiter(s_); }

 private:
  detail::TaskState<T>* s_ = nullptr;
};

// Schedule `task` to run on the current loop (its first step runs in a later
// loop iteration). Throws NoRunningLoopError outside a running loop.
template <class T>
TaskHandle<T> create_task(Task<T> task, std::string name = {}) {
  Scheduler& s = current_scheduler();
  if (!task.valid()) throw InvalidStateError("create_task: empty Task");
  auto* st = new detail::TaskState<T>(s, std::move(task), std::move(name));
  st->add_ref();  // the handle's reference (the scheduler holds the first)
  s.post(*st);
  return TaskHandle<T>(st);
}

namespace detail {
template <class A>
struct is_task_or_handle : std::false_type {};
template <class T>
struct is_task_or_handle<Task<T>> : std::true_type {};
template <class T>
struct is_task_or_handle<TaskHandle<T>> : std::true_type {};

// An awaiter object passed by value that is not a Task or a handle: what
// StreamReader's reads return (net/stream.hpp), shield(), ...
template <class A>
concept SpawnableAwaiter = !std::is_lvalue_reference_v<A> && DirectAwaiter<std::remove_cvref_t<A>> &&
                           !is_task_or_handle<std::remove_cvref_t<A>>::value;
}  // namespace detail

// create_task(awaiter): asyncio's create_task(reader.readline()) — an awaiter
// object (not a Task) runs as its own task, awaited in a frame of its own.
template <class A>
  requires detail::SpawnableAwaiter<A&&>
auto create_task(A&& awaiter, std::string name = {}) {
  return create_task(detail::await_in_task(std::remove_cvref_t<A>(std::move(awaiter))), std::move(name));
}

// Same, on an explicit scheduler (used by EventLoop before it runs).
template <class T>
TaskHandle<T> create_task_on(Scheduler& s, Task<T> task, std::string name = {}) {
  if (!task.valid()) throw InvalidStateError("create_task: empty Task");
  auto* st = new detail::TaskState<T>(s, std::move(task), std::move(name));
  st->add_ref();
  s.post(*st);
  return TaskHandle<T>(st);
}

}  // namespace corio
