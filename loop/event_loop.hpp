#pragma once
// EventLoop: one thread's ready queue, timer heap, I/O backend and
// cross-thread wake-up (asyncio's event loop).
//
// Invariants:
// - Everything but call_soon_threadsafe() is called on the loop's own thread.
// - User code (task steps and callbacks) runs only from run_once(), in the
//   order things became ready; I/O completions and timers only enqueue.
// - One iteration: wait for I/O (at most one io_uring_enter / epoll_wait;
//   not blocking when work is ready), take thread-safe calls, fire due timers,
//   then run exactly the items that were ready at that point. Items made ready
//   meanwhile run in the next iteration, so a busy task cannot starve I/O.
// - The loop holds a reference to every task not yet done; closing the loop
//   cancels the kernel's operations, waits for it to let go, then destroys
//   any frame still suspended. Nothing leaks at exit.
#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "coro/callback.hpp"
#include "coro/errors.hpp"
#include "coro/event.hpp"
#include "coro/scheduler.hpp"
#include "coro/task_base.hpp"
#include "coro/task_handle.hpp"
#include "loop/backend.hpp"
#include "loop/timer_heap.hpp"

namespace corio {

class EventLoop;
class ThreadPoolExecutor;

namespace detail {
// A scheduled callback (call_soon / call_later / call_at / call_soon_threadsafe).
struct CallbackNode final : Runnable {
  Callback fn;
  TimerNode timer;
  EventLoop* loop = nullptr;
  std::uint32_t refs = 1;
  bool cancelled = false;
  bool ran = false;  // fn was entered: cancel() only records the request
  bool queued = false;
  void run() noexcept override;
  void discard() noexcept override { release(); }
  static void fire_timer(TimerNode* t) noexcept;
  void release() noexcept {
    if (--refs == 0) delete this;
  }
};
}  // namespace detail

// asyncio's Handle/TimerHandle: cancel() prevents a callback that has not run yet.
class CallbackHandle {
 public:
  CallbackHandle() = default;
  explicit CallbackHandle(detail::CallbackNode* n) noexcept : n_(n) {}  // adopts a reference
  CallbackHandle(const CallbackHandle& o) noexcept : n_(o.n_) {
    if (n_) ++n_->refs;
  }
  CallbackHandle(CallbackHandle&& o) noexcept : n_(std::exchange(o.n_, nullptr)) {}
  CallbackHandle& operator=(CallbackHandle o) noexcept {
    std::swap(n_, o.n_);
    return *this;
  }
  ~CallbackHandle() {
    if (n_) n_->release();
  }
  // Loop thread only. Idempotent; a callback already run is unaffected.
  void cancel() noexcept;
  bool cancelled() const noexcept { return n_ && n_->cancelled; }
  // The deadline of a timer handle.
  TimePoint when() const noexcept { return n_ ? n_->timer.deadline : TimePoint{}; }

 private:
  detail::CallbackNode* n_ = nullptr;
};

struct LoopOptions {
  // Default: $CORIO_BACKEND (io_uring|epoll), else io_uring.
  std::optional<detail::BackendKind> backend;
  // Default: $CORIO_DEBUG=1.
  std::optional<bool> debug;
  unsigned sq_entries = 1024;
  // io_uring: receive buffers shared by the loop's streams (a power of two,
  // 16 KiB each); 0 makes streams use a plain recv per read.
  unsigned provided_buffers = 256;
  // Test hook: act as if io_uring_queue_init failed with this errno.
  int force_uring_error = 0;
  // Test hook (io_uring): the kernel rejects multishot accepts (-EINVAL), as
  // before Linux 5.19, so servers fall back to one accept per connection.
  bool refuse_multishot_accept = false;
  // SCHED_FIFO priority (1-99) for the thread while it runs this loop; 0, the
  // default, leaves the thread's scheduling alone. Why: with the normal
  // policy, a loop that shares the cores with CPU-bound threads (a busy
  // executor) can wake up to one scheduler tick late (4 ms at HZ=250; the
  // kernel does the same to any thread, see bench_to_thread timer_floor).
  // A real-time loop thread preempts them at once: a 10 ms timer then fires
  // within ~0.1 ms at p99 while every executor thread burns CPU.
  // - Threads the loop thread creates (executor workers, std::thread) start
  //   with the normal policy (SCHED_RESET_ON_FORK); the previous policy is
  //   restored when run_forever() returns.
  // - Needs CAP_SYS_NICE or RLIMIT_RTPRIO >= the priority; without it
  //   run_forever() throws std::system_error (EPERM) before running anything.
  // - The price: while the loop is busy it keeps its core; the kernel's RT
  //   throttling (kernel.sched_rt_runtime_us, 95 % by default) is what leaves
  //   other threads on that core a share. Use it for latency-sensitive
  //   loops, not for a loop that computes.
  int realtime_priority = 0;
};

using ExceptionHandler = std::function<void(std::exception_ptr, std::string_view context)>;

class EventLoop final : public Scheduler {
 public:
  explicit EventLoop(LoopOptions opts = {});
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // The loop running on this thread; throws NoRunningLoopError if none.
  static EventLoop& current();
  static EventLoop* current_or_null() noexcept { return tls_loop_; }
  // close_fd(): fd is about to be closed. Tells every loop made on this
  // thread, running or not: an fd used in one run of a loop may be closed
  // between runs (or while another loop of the thread runs), and epoll must
  // not take the number's next file for the registered one.
  static void forget_fd_on_this_thread(int fd) noexcept;

  // ---- scheduling (loop thread) -----------------------------------------
  CallbackHandle call_soon(Callback fn);
  CallbackHandle call_later(Duration delay, Callback fn);
  CallbackHandle call_at(TimePoint when, Callback fn);
  // The one thread-safe entry point. Many calls made while the loop sleeps
  // cost a single wake-up (one eventfd write).
  void call_soon_threadsafe(Callback fn);
  // The same path without the allocation, for the thread bridge: queue `r`
  // (not in any other queue) from any thread; it runs on the loop thread in
  // FIFO order with call_soon_threadsafe calls, or is discard()ed at close.
  void post_threadsafe(detail::Runnable& r) noexcept;
  // Loop thread only. `delta` posts from other threads are (no longer) on
  // their way: a thread-pool call in flight. While any is expected the loop
  // spins briefly before it blocks (a cross-core hand-off costs far less than
  // a sleep and a wake-up), and close() waits for all of them to arrive, so
  // that no thread posts to a dead loop.
  void expect_threadsafe_posts(int delta) noexcept { threadsafe_expected_ += delta; }
  int threadsafe_expected() const noexcept { return threadsafe_expected_; }
  // Read fresh (not the iteration's cached time), as asyncio's loop.time():
  // a deadline computed from it is never early, however long the current
  // iteration has run. Firing compares deadlines with the time read after
  // waking, so a timer never fires before its deadline.
  TimePoint time() const noexcept { return Clock::now(); }
  // The time read when this iteration woke up (the cached clock of uvloop's
  // loop.time() and of nginx's timers): no clock read, but behind time() by
  // however long the iteration has run so far. For coarse deadlines, such as
  // a server's protocol timeouts, that may end that much early.
  TimePoint iteration_time() const noexcept { return now_; }

  // ---- running ------------------------------------------------------------
  void run_forever();
  // Run until `t` is done; returns its value or rethrows its exception.
  template <class T>
  T run_until_complete(Task<T> t, std::string name = {}) {
    if (running_) throw InvalidStateError("this event loop is already running");
    if (tls_loop_) throw InvalidStateError("another event loop is running in this thread");
    TaskHandle<T> h = create_task_on(*this, std::move(t), std::move(name));
    run_until_done(h.base());
    if constexpr (std::is_void_v<T>) h.result();
    else return std::move(h.result());
  }
  void run_until_done(TaskBase& t);
  // Stop run_forever() after the current iteration (asyncio's stop()).
  void stop() noexcept { stopping_ = true; }
  bool is_running() const noexcept { return running_; }
  // Cancel every pending task and run until they are done (asyncio.run's
  // _cancel_all_tasks); tasks failing with an exception are reported.
  void cancel_all_tasks(std::string msg = {});

  // ---- introspection ------------------------------------------------------
  std::vector<TaskBase*> all_tasks() const;
  std::size_t task_count() const noexcept { return task_count_; }
  // The registry itself, without a copy: the first live task, then follow
  // TaskBase::reg_next_. Do not let a task finish during the walk.
  TaskBase* first_task() const noexcept { return tasks_head_; }
  detail::Backend& backend() noexcept { return *backend_; }
  detail::BackendKind backend_kind() const noexcept { return backend_->kind(); }
  const char* backend_name() const noexcept { return backend_->name(); }
  // The line printed when io_uring was refused and epoll is used ("" otherwise).
  const std::string& fallback_notice() const noexcept { return fallback_notice_; }
  std::uint64_t wakeups() const noexcept { return wakeups_.load(std::memory_order_relaxed); }
  std::uint64_t iterations() const noexcept { return iterations_; }
  // Times the loop set out to block waiting for events; each costs at most one wake-up.
  std::uint64_t sleeps() const noexcept { return sleeps_; }

  void set_exception_handler(ExceptionHandler h) { exception_handler_ = std::move(h); }
  // Debug-mode diagnostics (slow steps, never-awaited coroutines). Default: stderr.
  void set_warning_handler(std::function<void(std::string_view)> h) { warning_handler_ = std::move(h); }

  // ---- signals (asyncio's add_signal_handler) ------------------------------
  // Run fn on this loop's thread each time `sig` arrives, whatever thread the
  // kernel delivered it to. Replaces a previous handler for sig. Throws
  // std::invalid_argument for SIGKILL/SIGSTOP or an out-of-range number, and
  // InvalidStateError if another loop in the process handles signals.
  void add_signal_handler(int sig, Callback fn);
  // Restores the disposition from before add_signal_handler; false if none.
  bool remove_signal_handler(int sig);

  // ---- graceful shutdown --------------------------------------------------
  // The shutdown token: set when a shutdown begins (the first SIGINT/SIGTERM
  // under corio::run, or request_shutdown()). Servers stop accepting when it
  // is set, finish in-flight work, then close idle connections; user code can
  // `co_await loop.shutdown_event().wait()` or poll shutdown_requested().
  Event& shutdown_event() noexcept { return shutdown_event_; }
  bool shutdown_requested() const noexcept { return shutdown_event_.is_set(); }
  void request_shutdown() noexcept { shutdown_event_.set(); }

  // Every live task with its state and await chain (see TaskBase::describe).
  std::string dump_tasks() const;
  // Hooks run by run() when shutting down (the default executor registers one).
  void add_shutdown_hook(std::function<void()> fn) { shutdown_hooks_.push_back(std::move(fn)); }
  void run_shutdown_hooks();

  // ---- the default executor (loop/thread_pool.hpp) ------------------------
  // What to_thread() and run_in_executor(loop, nullptr, ...) use: created on
  // first use with ThreadPoolExecutor::default_max_workers() threads, shut
  // down by run() at exit (shutdown(wait=true, cancel_futures=true)).
  ThreadPoolExecutor& default_executor();
  // Replace it (asyncio's set_default_executor). The previous one is released
  // (its destructor joins its threads once nothing else holds it).
  void set_default_executor(std::shared_ptr<ThreadPoolExecutor> executor);
  // shutdown(wait=true, cancel_futures=true) on the default executor, if any.
  void shutdown_default_executor() noexcept;
  // How long shutdown_default_executor() waits for calls still running on
  // pool threads (corio::run sets RunOptions::shutdown_grace). Past it the
  // threads are abandoned: threads_abandoned() turns true, and the loop must
  // then never be destroyed (their completions will still be posted to it).
  void set_shutdown_grace(std::chrono::nanoseconds g) noexcept { shutdown_grace_ = g; }
  std::size_t threads_abandoned() const noexcept { return threads_abandoned_; }

  // ---- Scheduler ----------------------------------------------------------
  void post(detail::Runnable& r) noexcept override {
    r.next_ready_ = nullptr;
    if (ready_tail_) ready_tail_->next_ready_ = &r;
    else ready_head_ = &r;
    ready_tail_ = &r;
  }
  void add_timer(detail::TimerNode& t) override { timers_.push(t); }
  void cancel_timer(detail::TimerNode& t) noexcept override { timers_.remove(t); }
  bool posted_by_timers(const detail::Runnable& r) const noexcept override {
    // Few entries: only what timers fired so far in this turn posted.
    for (const detail::Runnable* p = timer_mark_ ? timer_mark_->next_ready_ : ready_head_; p; p = p->next_ready_)
      if (p == &r) return true;
    return false;
  }
  TimePoint now() const noexcept override { return time(); }
  void report_exception(std::exception_ptr e, std::string_view context) noexcept override;
  void report_warning(std::string_view msg) noexcept override;
  void task_started(TaskBase& t) noexcept override;
  void task_finished(TaskBase& t) noexcept override;
  bool debug() const noexcept override { return debug_; }

 private:
  void run_once();
  bool spin_for_threadsafe(std::int64_t timeout_ns) noexcept;
  void drain_threadsafe() noexcept;
  void arm_wake() noexcept;
  static void on_wake(detail::IoOp* op) noexcept;
  void arm_signals() noexcept;
  // An eventfd the loop keeps a read armed on (wake-ups, signals).
  int open_internal_eventfd(detail::IoOp& op, std::uint64_t* buf, void (*complete)(detail::IoOp*) noexcept,
                            const char* what);
  static void on_signal_fd(detail::IoOp* op) noexcept;
  void dispatch_signals() noexcept;
  detail::CallbackNode* make_timer(TimePoint when, Callback fn);
  void close() noexcept;

  static inline thread_local EventLoop* tls_loop_ = nullptr;
  // The loops made on this thread (forget_fd_on_this_thread), linked through
  // thread_next_/thread_prev_; thread_head_ is the list the loop is on.
  static inline thread_local EventLoop* tls_thread_loops_ = nullptr;
  EventLoop** thread_head_ = nullptr;
  EventLoop* thread_next_ = nullptr;
  EventLoop* thread_prev_ = nullptr;

  std::unique_ptr<detail::Backend> backend_;
  std::string fallback_notice_;
  detail::Runnable* ready_head_ = nullptr;
  detail::Runnable* ready_tail_ = nullptr;
  // While timers fire: the last entry queued before they started (nullptr:
  // none), so what follows it was posted by them (posted_by_timers).
  detail::Runnable* timer_mark_ = nullptr;
  detail::TimerHeap timers_;
  TimePoint now_;

  // Cross-thread: a Treiber stack the loop takes whole (linked through
  // Runnable::next_ready_, free while an entry is in this stack), plus one eventfd.
  alignas(64) std::atomic<detail::Runnable*> mpsc_head_{nullptr};
  // kAwake: running; kSleeping: blocked (or about to block) in wait;
  // kWoken: a producer wrote the eventfd for this sleep.
  static constexpr std::uint8_t kAwake = 0, kSleeping = 1, kWoken = 2;
  alignas(64) std::atomic<std::uint8_t> wake_state_{kAwake};
  std::atomic<std::uint64_t> wakeups_{0};
  // Threads inside post_threadsafe(): close() waits for them to leave before
  // the eventfd and the loop go away.
  alignas(64) std::atomic<int> posters_{0};
  static constexpr int kThreadsafeBatch = 1024;
  alignas(64) detail::Runnable* ts_head_ = nullptr;  // drained, not yet posted (FIFO)
  detail::Runnable* ts_tail_ = nullptr;
  // Expected posts (loop thread only) and the spin before blocking for them.
  int threadsafe_expected_ = 0;
  bool spin_useful_ = true;  // false after a spin ran out, until a post arrives
  static constexpr std::chrono::microseconds kThreadsafeSpin{50};
  std::shared_ptr<ThreadPoolExecutor> default_executor_;
  bool default_executor_hooked_ = false;
  int wake_fd_ = -1;
  std::uint64_t wake_buf_ = 0;
  detail::IoOp wake_op_;
  bool wake_armed_ = false;

  // Signals: the C handler writes signal_fd_; a read on it is kept armed.
  int signal_fd_ = -1;
  std::uint64_t signal_buf_ = 0;
  detail::IoOp signal_op_;
  bool signal_armed_ = false;
  std::vector<std::pair<int, std::shared_ptr<Callback>>> signal_handlers_;

  TaskBase* tasks_head_ = nullptr;
  TaskBase* tasks_tail_ = nullptr;
  std::size_t task_count_ = 0;

  std::chrono::nanoseconds shutdown_grace_ = std::chrono::hours(24 * 365);
  std::size_t threads_abandoned_ = 0;
  Event shutdown_event_;  // outlives close(): frames waiting on it are destroyed there
  ExceptionHandler exception_handler_;
  std::function<void(std::string_view)> warning_handler_;
  std::vector<std::function<void()>> shutdown_hooks_;
  std::uint64_t iterations_ = 0;
  std::uint64_t sleeps_ = 0;
  int realtime_priority_ = 0;
  bool stopping_ = false;
  bool running_ = false;
  bool closing_ = false;
  bool debug_ = false;
};

}  // namespace corio
