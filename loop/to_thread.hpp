#pragma once
// Awaiting work done on other threads, from a task:
//
//   std::string page = co_await corio::to_thread(render, std::move(doc));    // default executor
//   auto n = co_await corio::run_in_executor(pool, count_words, std::cref(text));
//   auto v = co_await corio::wrap_future(pool.submit(parse, text));          // any futures::Future
//
// The callable runs on a pool thread; its value, or its exception (the same
// type, rethrown from the std::exception_ptr), comes back to the awaiting
// task. Completions come back through the loop's one cross-thread path
// (EventLoop::post_threadsafe): many calls finishing while the loop sleeps
// cost one eventfd wake-up and one drain, and none while it runs. While calls
// are in flight the loop spins a few tens of microseconds before it blocks,
// so a short call's round trip avoids a sleep and a wake-up.
//
// Callables and arguments are decay-copied into the call (std::ref to share),
// invoked once as rvalues on the worker, and destroyed there after the call;
// results come back by value. A callable invocable as
// fn(std::stop_token, args...) receives a token.
//
// GCC 12: a capturing lambda written inside the co_await expression
// (`co_await to_thread([s] { ... })`) is destroyed twice by the compiler (a
// double free). Name it first, or pass arguments: `to_thread(fn, s)`.
//
// Cancellation (of the awaiting task):
// - A call that has not started never runs; the task gets CancelledError at once.
// - A call that has started cannot be stopped (threads cannot be killed): its
//   std::stop_token, if it takes one, is requested; by default the task gets
//   CancelledError at once and the call's result is discarded when it
//   returns. With `.wait_on_cancel()` the task instead waits for the call to
//   return, then gets CancelledError (DESIGN Semantics 5).
// - executor.shutdown(cancel_futures=true) cancels calls still queued: their
//   awaiters get CancelledError("executor shut down").
// - A cancel that arrives after the result was delivered stays pending for the
//   task's next suspension point (the result is not lost).
// The loop does not close while one of its calls still runs on a thread:
// EventLoop::close() waits for it (corio::run shuts the default executor down
// first, cancelling what is queued).
#include <coroutine>
#include <exception>
#include <optional>
#include <type_traits>
#include <utility>
#include <variant>

#include "coro/errors.hpp"
#include "coro/frame_allocator.hpp"
#include "coro/task_base.hpp"
#include "loop/event_loop.hpp"
#include "loop/future.hpp"
#include "loop/remote_wake.hpp"
#include "loop/thread_pool.hpp"

namespace corio {

namespace detail {

// One to_thread()/run_in_executor() call: a pool work item that posts itself
// back to the loop when done.
//
// Invariants:
// - state_: queued -> running -> done, or queued -> cancelled; the CAS out of
//   queued decides between the worker (runs it) and a canceller (the awaiter,
//   or the executor's shutdown).
// - Two references: the awaiter's and the pool's. The pool's travels with the
//   post and is dropped on the loop thread (run/discard), or by the worker if
//   the awaiter cancelled first (then no post is made).
// - Each call is one expected post for its loop (expect_threadsafe_posts):
//   settled by run()/discard(), or by the awaiter when its cancel wins.
// - waiter_ is touched on the loop thread only.
template <class Call>
class ThreadCall final : public WorkItem, public Runnable {
 public:
  using R = typename Call::result_type;
  using Stored = std::conditional_t<std::is_void_v<R>, std::monostate, R>;
  enum class State : std::uint8_t { queued, running, done, cancelled };

  ThreadCall(EventLoop& loop, TaskBase& waiter, Call&& call)
      : loop_(&loop), waiter_(&waiter), call_(std::move(call)) {}
  ThreadCall(const ThreadCall&) = delete;
  ThreadCall& operator=(const ThreadCall&) = delete;

  // ---- worker ---------------------------------------------------------------
  void run_on_worker() noexcept override {
    State q = State::queued;
    if (!state_.compare_exchange_strong(q, State::running, std::memory_order_acq_rel)) {
      release();  // cancelled by its awaiter: no post
      return;
    }
    try {
      if constexpr (std::is_void_v<R>) {
        (*call_)(stop_);
        result_.emplace();
      } else {
        result_.emplace((*call_)(stop_));
      }
    } catch (...) {
      exception_ = std::current_exception();
    }
    call_.reset();
    state_.store(State::done, std::memory_order_release);
    loop_->post_threadsafe(*this);  // the pool's reference travels with it
  }
  void cancel_on_shutdown() noexcept override {
    if (try_cancel()) loop_->post_threadsafe(*this);
    else release();
  }

  // ---- loop thread ------------------------------------------------------------
  void run() noexcept override {
    loop_->expect_threadsafe_posts(-1);
    if (TaskBase* t = waiter_) {
      waiter_ = nullptr;
      t->wake();
    }
    release();
  }
  void discard() noexcept override {
    loop_->expect_threadsafe_posts(-1);
    waiter_ = nullptr;
    release();
  }

  bool try_cancel() noexcept {
    State q = State::queued;
    return state_.compare_exchange_strong(q, State::cancelled, std::memory_order_acq_rel);
  }
  State state() const noexcept { return state_.load(std::memory_order_acquire); }
  void request_stop() noexcept {
    if constexpr (Call::takes_stop_token) stop_.request_stop();
  }
  bool attached() const noexcept { return waiter_ != nullptr; }
  void detach() noexcept { waiter_ = nullptr; }
  // The awaiter's cancel won: destroy the callable here, on the loop thread.
  void drop_call() noexcept { call_.reset(); }
  EventLoop& loop() const noexcept { return *loop_; }
  std::exception_ptr exception() const noexcept { return exception_; }
  Stored& value() noexcept { return *result_; }

  void release() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
  static void* operator new(std::size_t n) { return frame_alloc(n); }
  static void operator delete(void* p, std::size_t n) noexcept { frame_free(p, n); }

 private:
  ~ThreadCall() = default;

  EventLoop* loop_;
  TaskBase* waiter_;
  std::atomic<State> state_{State::queued};
  std::atomic<int> refs_{2};
  std::optional<Call> call_;
  [[no_unique_address]] typename Call::StopSource stop_;
  std::optional<Stored> result_;
  std::exception_ptr exception_;
};

template <class Call>
class [[nodiscard]] ThreadCallAwaiter final : public CancelHook {
  using R = typename Call::result_type;
  using Item = ThreadCall<Call>;

 public:
  // executor nullptr: the loop's default executor. loop nullptr: the running loop.
  ThreadCallAwaiter(ThreadPoolExecutor* executor, EventLoop* loop, Call&& call)
      : executor_(executor), loop_(loop), call_(std::move(call)) {}
  // Movable until awaited (for .wait_on_cancel()).
  ThreadCallAwaiter(ThreadCallAwaiter&& o)
      : executor_(o.executor_), loop_(o.loop_), call_(std::move(o.call_)), wait_on_cancel_(o.wait_on_cancel_) {}
  ThreadCallAwaiter& operator=(ThreadCallAwaiter&&) = delete;
  ~ThreadCallAwaiter() {
    if (!item_) return;
    if (item_->attached()) {  // the frame dies while waiting (loop teardown)
      if (item_->try_cancel()) {
        item_->loop().expect_threadsafe_posts(-1);
        item_->drop_call();
      }
      item_->detach();
    }
    item_->release();
  }

  // If the awaiting task is cancelled while the call runs, wait for the call
  // to return before raising CancelledError (instead of abandoning it).
  ThreadCallAwaiter wait_on_cancel() && {
    wait_on_cancel_ = true;
    return std::move(*this);
  }

  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> h) {
    task_ = &TaskBase::current_checked("to_thread()/run_in_executor()");
    if (task_->take_pending_cancel()) {  // cancelled before submitting: never runs
      cancelled_ = true;
      return false;
    }
    EventLoop& loop = EventLoop::current();
    if (loop_ && loop_ != &loop) throw InvalidStateError("run_in_executor: awaited on another loop than the one given");
    ThreadPoolExecutor& ex = executor_ ? *executor_ : loop.default_executor();
    auto* item = new Item(loop, *task_, std::move(*call_));
    call_.reset();
    loop.expect_threadsafe_posts(1);
    try {
      ex.submit_item(*item);
    } catch (...) {
      loop.expect_threadsafe_posts(-1);
      item->release();
      item->release();
      throw;
    }
    item_ = item;
    task_->suspend(h, this);
    return true;
  }

  R await_resume() {
    if (cancelled_ || cancel_requested_) task_->throw_cancelled();
    if (item_->state() == Item::State::cancelled) throw CancelledError("executor shut down");
    if (std::exception_ptr e = item_->exception()) std::rethrow_exception(e);
    if constexpr (!std::is_void_v<R>) return std::move(item_->value());
  }

  bool on_cancel(TaskBase&) noexcept override {
    if (item_->try_cancel()) {  // not started: it never runs
      item_->loop().expect_threadsafe_posts(-1);
      item_->drop_call();
      item_->detach();
      cancelled_ = true;
      task_->wake();
      return true;
    }
    item_->request_stop();
    if (wait_on_cancel_) {
      cancel_requested_ = true;  // woken when the call returns; raises then
      return true;
    }
    item_->detach();  // abandoned: the result is dropped when it arrives
    cancelled_ = true;
    task_->wake();
    return true;
  }

 private:
  ThreadPoolExecutor* executor_;
  EventLoop* loop_;
  std::optional<Call> call_;
  Item* item_ = nullptr;
  TaskBase* task_ = nullptr;
  bool wait_on_cancel_ = false;
  bool cancelled_ = false;
  bool cancel_requested_ = false;
};

// wrap_future's awaiter: an observer on the future that wakes the task
// through a RemoteWake.
template <class T>
class [[nodiscard]] FutureAwaiter final : public CancelHook, public FutureObserver {
 public:
  explicit FutureAwaiter(futures::Future<T> f) : f_(std::move(f)) {
    if (!f_.valid()) throw InvalidStateError("wrap_future: empty Future");
  }
  FutureAwaiter(const FutureAwaiter&) = delete;
  ~FutureAwaiter() {
    if (wake_) {
      if (f_.state()->remove_observer(*this)) wake_->release_sender();
      wake_->detach();
    }
  }

  bool await_ready() const noexcept { return f_.done(); }
  bool await_suspend(std::coroutine_handle<> h) {
    task_ = &TaskBase::current_checked("wrap_future()");
    if (task_->take_pending_cancel()) {
      f_.cancel(task_->cancel_message());
      cancelled_ = true;
      return false;
    }
    wake_ = new RemoteWake(EventLoop::current(), *task_);
    if (!f_.state()->add_observer(*this)) {  // done meanwhile
      wake_->release_sender();
      wake_->release();
      wake_ = nullptr;
      return false;
    }
    // A fire from another thread is only run by this loop, after we return.
    task_->suspend(h, this);
    return true;
  }
  decltype(auto) await_resume() {
    if (wake_) {
      wake_->release();  // fired: the sender's reference went with the post
      wake_ = nullptr;
    }
    if (cancelled_) task_->throw_cancelled();
    if constexpr (std::is_void_v<T>) {
      f_.result();
    } else if constexpr (std::is_copy_constructible_v<T>) {
      return T(f_.result());
    } else {
      return T(std::move(f_.result()));
    }
  }

  void on_future_done(FutureStateBase&) noexcept override { wake_->fire(); }

  bool on_cancel(TaskBase& t) noexcept override {
    // Unregister first: cancelling the future below completes it, and our
    // observer must not fire a second wake-up.
    if (f_.state()->remove_observer(*this)) wake_->release_sender();
    try {
      f_.cancel(t.cancel_request_message());  // asyncio: cancels the call if not started
    } catch (...) {
    }
    wake_->detach();
    wake_ = nullptr;
    cancelled_ = true;
    task_->wake();
    return true;
  }

 private:
  futures::Future<T> f_;
  TaskBase* task_ = nullptr;
  RemoteWake* wake_ = nullptr;
  bool cancelled_ = false;
};

}  // namespace detail

// Run fn(args...) on the loop's default executor and await its result.
// Cancellation: see the top of this header.
template <class F, class... Args>
auto to_thread(F&& fn, Args&&... args) {
  using Call = detail::bound_call_t<F, Args...>;
  return detail::ThreadCallAwaiter<Call>(nullptr, nullptr, Call(std::forward<F>(fn), std::forward<Args>(args)...));
}

// Run fn(args...) on `executor` and await its result (asyncio's
// loop.run_in_executor). Cancellation: as to_thread.
template <class F, class... Args>
auto run_in_executor(ThreadPoolExecutor& executor, F&& fn, Args&&... args) {
  using Call = detail::bound_call_t<F, Args...>;
  return detail::ThreadCallAwaiter<Call>(&executor, nullptr, Call(std::forward<F>(fn), std::forward<Args>(args)...));
}

// asyncio's spelling, loop.run_in_executor(executor, fn, *args): executor
// nullptr means the loop's default executor. Await it on that loop.
template <class F, class... Args>
auto run_in_executor(EventLoop& loop, ThreadPoolExecutor* executor, F&& fn, Args&&... args) {
  using Call = detail::bound_call_t<F, Args...>;
  return detail::ThreadCallAwaiter<Call>(executor, &loop, Call(std::forward<F>(fn), std::forward<Args>(args)...));
}

// Await a thread-safe future from a task: its value (a copy, or moved out if
// T is move-only), its exception, or CancelledError if it was cancelled.
// Cancellation: the awaiting task gets CancelledError at once and the future
// is cancelled too (which stops it only if it has not started), as asyncio's
// wrap_future does.
template <class T>
detail::FutureAwaiter<T> wrap_future(futures::Future<T> f) {
  return detail::FutureAwaiter<T>(std::move(f));
}

}  // namespace corio
