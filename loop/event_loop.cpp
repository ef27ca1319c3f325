#include "loop/event_loop.hpp"

#include <sched.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <csignal>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <system_error>
#include <thread>

#include "coro/errors.hpp"
#include "loop/thread_pool.hpp"

#include "loop/signals.hpp"
#ifdef CORIO_FAULT_INJECTION
#include "loop/fault_backend.hpp"
#endif

namespace corio {

namespace detail {

void CallbackNode::fire_timer(TimerNode* t) noexcept {
  // The heap's reference passes to the ready queue.
  auto* node = static_cast<CallbackNode*>(t->ctx);
  node->queued = true;
  node->loop->post(*node);
}

void CallbackNode::run() noexcept {
  queued = false;
  if (!cancelled) {
    ran = true;  // a handle's cancel() after this point only sets the flag
    try {
      fn();
    } catch (...) {
      loop->report_exception(std::current_exception(), "exception in callback");
    }
    fn.reset();  // drop captures now, not when the last handle goes
  }
  release();  // the queue's reference
}

std::unique_ptr<Backend> make_backend(const BackendOptions& opts, std::string* notice) {
  if (opts.kind == BackendKind::io_uring) {
    int err = 0;
    if (auto b = make_uring_backend(opts, &err)) return b;
    *notice = std::string("corio: io_uring unavailable (") + std::strerror(err) + "), using epoll";
    std::fprintf(stderr, "%s\n", notice->c_str());
  }
  auto b = make_epoll_backend();
  if (!b) throw std::system_error(errno, std::system_category(), "epoll_create1");
  return b;
}

static std::unique_ptr<Backend> make_loop_backend(const BackendOptions& opts, std::string* notice) {
  auto b = make_backend(opts, notice);
#ifdef CORIO_FAULT_INJECTION
  // Test builds: CORIO_FAULT_SEED (or a test's FaultOverride) puts the
  // fault-injection layer between this loop and the kernel.
  if (auto cfg = fault_config_for_new_loop()) b = make_fault_backend(std::move(b), *cfg);
#endif
  return b;
}

}  // namespace detail

void CallbackHandle::cancel() noexcept {
  if (!n_ || n_->cancelled) return;
  n_->cancelled = true;
  if (n_->ran) return;  // running or run: fn is reset by run() itself
  n_->fn.reset();
  if (n_->timer.armed()) {
    n_->loop->cancel_timer(n_->timer);
    n_->release();  // the heap's reference
  }
}

namespace {

detail::BackendKind backend_from_env() {
  const char* e = std::getenv("CORIO_BACKEND");
  if (!e || !*e || std::strcmp(e, "io_uring") == 0) return detail::BackendKind::io_uring;
  if (std::strcmp(e, "epoll") == 0) return detail::BackendKind::epoll;
  throw std::invalid_argument(std::string("CORIO_BACKEND must be io_uring or epoll, not '") + e + "'");
}

bool debug_from_env() {
  const char* e = std::getenv("CORIO_DEBUG");
  return e && *e && std::strcmp(e, "0") != 0;
}

}  // namespace

EventLoop::EventLoop(LoopOptions opts) {
  detail::BackendOptions bo;
  bo.kind = opts.backend ? *opts.backend : backend_from_env();
  bo.sq_entries = opts.sq_entries;
  bo.provided_buffers = opts.provided_buffers;
  bo.force_uring_error = opts.force_uring_error;
  bo.refuse_multishot_accept = opts.refuse_multishot_accept;
  debug_ = opts.debug ? *opts.debug : debug_from_env();
  if (opts.realtime_priority < 0 || opts.realtime_priority > 99) {
    throw ValueError("LoopOptions::realtime_priority must be 0 (off) or 1-99, got " +
                     std::to_string(opts.realtime_priority));
  }
  realtime_priority_ = opts.realtime_priority;
  backend_ = detail::make_loop_backend(bo, &fallback_notice_);
  wake_fd_ = open_internal_eventfd(wake_op_, &wake_buf_, &EventLoop::on_wake, "eventfd (wake-up)");
  now_ = Clock::now();
  arm_wake();
  thread_head_ = &tls_thread_loops_;
  thread_next_ = tls_thread_loops_;
  if (thread_next_) thread_next_->thread_prev_ = this;
  tls_thread_loops_ = this;
}

EventLoop::~EventLoop() {
  close();
  if (thread_prev_) thread_prev_->thread_next_ = thread_next_;
  else *thread_head_ = thread_next_;
  if (thread_next_) thread_next_->thread_prev_ = thread_prev_;
}

void EventLoop::forget_fd_on_this_thread(int fd) noexcept {
  for (EventLoop* l = tls_thread_loops_; l; l = l->thread_next_) l->backend_->forget_fd(fd);
}

int EventLoop::open_internal_eventfd(detail::IoOp& op, std::uint64_t* buf, void (*complete)(detail::IoOp*) noexcept,
                                     const char* what) {
  int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) throw std::system_error(errno, std::system_category(), what);
  op.kind = detail::OpKind::read;
  op.fd = fd;
  op.buf = buf;
  op.len = sizeof *buf;
  op.complete = complete;
  op.ctx = this;
  op.internal = true;  // the loop's own: not counted as work in flight
  return fd;
}

EventLoop& EventLoop::current() {
  if (!tls_loop_) throw NoRunningLoopError("no running event loop in this thread");
  return *tls_loop_;
}

// ---- scheduling ---------------------------------------------------------------

CallbackHandle EventLoop::call_soon(Callback fn) {
  auto* n = new detail::CallbackNode;
  n->fn = std::move(fn);
  n->loop = this;
  n->refs = 2;  // the queue's and the handle's
  n->queued = true;
  post(*n);
  return CallbackHandle(n);
}

detail::CallbackNode* EventLoop::make_timer(TimePoint when, Callback fn) {
  auto* n = new detail::CallbackNode;
  n->fn = std::move(fn);
  n->loop = this;
  n->refs = 2;  // the heap's and the handle's
  n->timer.deadline = when;
  n->timer.ctx = n;
  n->timer.fire = &detail::CallbackNode::fire_timer;
  timers_.push(n->timer);
  return n;
}

CallbackHandle EventLoop::call_later(Duration delay, Callback fn) {
  // Saturated: now + a huge delay must not wrap into the past.
  return CallbackHandle(make_timer(detail::deadline_after(time(), delay), std::move(fn)));
}

CallbackHandle EventLoop::call_at(TimePoint when, Callback fn) { return CallbackHandle(make_timer(when, std::move(fn))); }

void EventLoop::call_soon_threadsafe(Callback fn) {
  auto* n = new detail::CallbackNode;
  n->fn = std::move(fn);
  n->loop = this;
  n->queued = true;
  // On the loop's own thread: the ready queue directly, so that the order of
  // registration holds across call_soon and call_soon_threadsafe (asyncio).
  if (tls_loop_ == this) post(*n);
  else post_threadsafe(*n);
}

void EventLoop::post_threadsafe(detail::Runnable& r) noexcept {
  // Counted from before the push until after the eventfd write: once the loop
  // has seen the push, its close() sees this count (the push's release orders
  // it) and waits for the write to finish.
  posters_.fetch_add(1, std::memory_order_relaxed);
  r.next_ready_ = mpsc_head_.load(std::memory_order_relaxed);
  while (!mpsc_head_.compare_exchange_weak(r.next_ready_, &r, std::memory_order_seq_cst, std::memory_order_relaxed)) {
  }
  // A wake-up is paid only by the one producer that moves the loop from
  // "sleeping" to "woken": calls made while the loop runs cost no syscall, and
  // a burst while it sleeps costs one. One atomic word, so that no producer can
  // act on a stale "sleeping" (a separate flag and check-then-set would let one
  // that read "sleeping" just before the loop woke write a second time).
  // Pairs with run_once(): it stores kSleeping and then re-checks the stack
  // (both seq_cst), so either it sees this push or this CAS sees kSleeping.
  std::uint8_t expect = kSleeping;
  if (wake_state_.compare_exchange_strong(expect, kWoken, std::memory_order_seq_cst, std::memory_order_relaxed)) {
    wakeups_.fetch_add(1, std::memory_order_relaxed);
    std::uint64_t one = 1;
    ssize_t w;
    do {
      w = ::write(wake_fd_, &one, sizeof one);
    } while (w < 0 && errno == EINTR);
  }
  posters_.fetch_sub(1, std::memory_order_release);
}

void EventLoop::drain_threadsafe() noexcept {
  detail::Runnable* n = mpsc_head_.exchange(nullptr, std::memory_order_acquire);
  // The stack is newest-first; reverse it and append to the FIFO backlog.
  detail::Runnable* first = nullptr;
  detail::Runnable* last = n;
  while (n) {
    detail::Runnable* next = n->next_ready_;
    n->next_ready_ = first;
    first = n;
    n = next;
  }
  if (first) {
    spin_useful_ = true;
    if (ts_tail_) ts_tail_->next_ready_ = first;
    else ts_head_ = first;
    ts_tail_ = last;
  }
  // Bounded batch per iteration: producers faster than the loop must not
  // starve timers and I/O (the rest waits for the next iteration, in order).
  for (int i = 0; i < kThreadsafeBatch && ts_head_; ++i) {
    detail::Runnable* c = ts_head_;
    ts_head_ = c->next_ready_;
    post(*c);
  }
  if (!ts_head_) ts_tail_ = nullptr;
}

void EventLoop::arm_wake() noexcept {
  wake_armed_ = true;
  // epoll may complete the read at once when the eventfd already has a count.
  while (backend_->submit(wake_op_)) {
  }
}

void EventLoop::on_wake(detail::IoOp* op) noexcept {
  auto* self = static_cast<EventLoop*>(op->ctx);
  self->wake_armed_ = false;
  // Awake now: later producers need not write. (The drain follows in
  // run_once, and the loop stores kSleeping again only before its next wait.)
  self->wake_state_.store(kAwake, std::memory_order_seq_cst);
  if (!self->closing_) self->arm_wake();
}

// ---- running -------------------------------------------------------------------

void EventLoop::run_once() {
  ++iterations_;
  std::int64_t timeout_ns = -1;
  if (ready_head_ || stopping_ || ts_head_ || mpsc_head_.load(std::memory_order_acquire)) {
    timeout_ns = 0;
  } else if (!timers_.empty()) {
    // Compared before subtracting: a deadline far in the past (TimePoint::min(),
    // sleep_until/timeout_at of one) would wrap `deadline - now` to a huge wait.
    const TimePoint top = timers_.top()->deadline;
    const TimePoint now = Clock::now();
    timeout_ns = top <= now ? 0 : std::chrono::duration_cast<std::chrono::nanoseconds>(top - now).count();
  }
  if (timeout_ns != 0 && threadsafe_expected_ > 0 && spin_useful_ && spin_for_threadsafe(timeout_ns)) {
    timeout_ns = 0;  // a thread-pool completion arrived while spinning
  }
  if (timeout_ns != 0) {
    // Each move to kSleeping allows at most one wake-up (the producer CAS
    // from kSleeping to kWoken), so wake-ups never exceed sleeps_.
    ++sleeps_;
    wake_state_.store(kSleeping, std::memory_order_seq_cst);
    if (mpsc_head_.load(std::memory_order_seq_cst)) {  // a call slipped in: do not block
      wake_state_.store(kAwake, std::memory_order_relaxed);
      timeout_ns = 0;
    }
  }
  backend_->wait(timeout_ns);
  // A write that raced with this store leaves its count in the eventfd: the
  // next wait returns at once and on_wake consumes it. Nothing is lost.
  wake_state_.store(kAwake, std::memory_order_relaxed);
  now_ = Clock::now();
  if (ts_head_ || mpsc_head_.load(std::memory_order_relaxed)) drain_threadsafe();
  timer_mark_ = ready_tail_;
  while (!timers_.empty() && timers_.top()->deadline <= now_) {
    detail::TimerNode* t = timers_.pop();
    t->fire(t);
  }
  timer_mark_ = nullptr;
  // Run what is ready now; what becomes ready meanwhile waits for the next turn.
  detail::Runnable* r = ready_head_;
  ready_head_ = ready_tail_ = nullptr;
  while (r) {
    detail::Runnable* next = r->next_ready_;
    r->next_ready_ = nullptr;
    r->run();  // the one place where user code is entered
    r = next;
  }
}

bool EventLoop::spin_for_threadsafe(std::int64_t timeout_ns) noexcept {
  // Only the cross-thread stack is watched: nothing else can become ready
  // without a syscall, and the spin is far shorter than any timer slack.
  auto budget = std::chrono::duration_cast<std::chrono::nanoseconds>(kThreadsafeSpin);
  if (timeout_ns > 0 && timeout_ns < budget.count()) budget = std::chrono::nanoseconds(timeout_ns);
  if (detail::spin_until(budget, [this] { return mpsc_head_.load(std::memory_order_relaxed) != nullptr; })) {
    return true;
  }
  spin_useful_ = false;  // long calls: block until one arrives, then try again
  return false;
}

namespace {

// LoopOptions::realtime_priority: SCHED_FIFO for this thread while the loop
// runs, then the policy it had before.
class RealtimeScope {
 public:
  explicit RealtimeScope(int priority) {
    if (priority == 0) return;
    old_policy_ = ::sched_getscheduler(0);
    if (old_policy_ < 0 || ::sched_getparam(0, &old_param_) != 0) {
      throw std::system_error(errno, std::system_category(), "sched_getscheduler (event loop thread)");
    }
    old_policy_ &= ~SCHED_RESET_ON_FORK;
    sched_param p{};
    p.sched_priority = priority;
    // RESET_ON_FORK: threads this one creates (executor workers) start with
    // the normal policy instead of inheriting real-time priority.
    if (::sched_setscheduler(0, SCHED_FIFO | SCHED_RESET_ON_FORK, &p) != 0) {
      int e = errno;
      throw std::system_error(e, std::system_category(),
                              "SCHED_FIFO priority " + std::to_string(priority) +
                                  " for the event loop thread (LoopOptions::realtime_priority; needs "
                                  "CAP_SYS_NICE or RLIMIT_RTPRIO >= " + std::to_string(priority) + ")");
    }
    active_ = true;
  }
  ~RealtimeScope() {
    // Lowering one's own priority is always allowed.
    if (active_) ::sched_setscheduler(0, old_policy_, &old_param_);
  }
  RealtimeScope(const RealtimeScope&) = delete;
  RealtimeScope& operator=(const RealtimeScope&) = delete;

 private:
  int old_policy_ = SCHED_OTHER;
  sched_param old_param_{};
  bool active_ = false;
};

}  // namespace

void EventLoop::run_forever() {
  if (running_) throw InvalidStateError("this event loop is already running");
  if (tls_loop_) throw InvalidStateError("another event loop is running in this thread");
  RealtimeScope realtime(realtime_priority_);
  running_ = true;
  tls_loop_ = this;
  Scheduler::set_current(this);
  struct Restore {
    EventLoop* l;
    ~Restore() {
      l->running_ = false;
      l->stopping_ = false;
      tls_loop_ = nullptr;
      Scheduler::set_current(nullptr);
    }
  } restore{this};
  now_ = Clock::now();
  do run_once();
  while (!stopping_);
}

void EventLoop::run_until_done(TaskBase& t) {
  struct Stopper final : DoneWaiter {
    EventLoop* loop;
    void on_task_done(TaskBase&) noexcept override { loop->stop(); }
  } stopper;
  stopper.loop = this;
  if (!t.done()) {
    t.add_done_waiter(stopper);
    try {
      run_forever();
    } catch (...) {
      t.remove_done_waiter(stopper);
      throw;
    }
    t.remove_done_waiter(stopper);
  }
  if (!t.done()) throw InvalidStateError("event loop stopped before the task completed");
}

void EventLoop::cancel_all_tasks(std::string msg) {
  std::vector<TaskBase*> tasks = all_tasks();
  if (tasks.empty()) return;
  for (TaskBase* t : tasks) t->add_ref();
  for (TaskBase* t : tasks) t->cancel(msg);
  // Each cancelled task may await in its cleanup; one that ignores
  // cancellation keeps the loop here, as in asyncio.
  auto all_done = [&] {
    for (TaskBase* t : tasks)
      if (!t->done()) return false;
    return true;
  };
  if (!all_done()) {
    struct Stopper final : DoneWaiter {
      EventLoop* loop;
      void on_task_done(TaskBase&) noexcept override { loop->stop(); }
    };
    std::vector<Stopper> stoppers(tasks.size());
    for (std::size_t i = 0; i < tasks.size(); ++i) {
      stoppers[i].loop = this;
      if (!tasks[i]->done()) tasks[i]->add_done_waiter(stoppers[i]);
    }
    try {
      while (!all_done()) run_forever();  // every finishing task stops one round
    } catch (...) {
      for (std::size_t i = 0; i < tasks.size(); ++i) tasks[i]->remove_done_waiter(stoppers[i]);
      for (TaskBase* t : tasks) t->release();
      throw;
    }
    for (std::size_t i = 0; i < tasks.size(); ++i) tasks[i]->remove_done_waiter(stoppers[i]);
  }
  for (TaskBase* t : tasks) {
    if (t->state() == TaskBase::State::failed) {
      report_exception(t->exception(), "unhandled exception during shutdown in task '" + t->name() + "'");
    }
    t->release();
  }
}

ThreadPoolExecutor& EventLoop::default_executor() {
  if (!default_executor_) {
    default_executor_ = std::make_shared<ThreadPoolExecutor>(ThreadPoolExecutor::default_max_workers());
  }
  if (!default_executor_hooked_) {
    default_executor_hooked_ = true;
    add_shutdown_hook([this] { shutdown_default_executor(); });
  }
  return *default_executor_;
}

void EventLoop::set_default_executor(std::shared_ptr<ThreadPoolExecutor> executor) {
  default_executor_ = std::move(executor);
  if (default_executor_ && !default_executor_hooked_) {
    default_executor_hooked_ = true;
    add_shutdown_hook([this] { shutdown_default_executor(); });
  }
}

void EventLoop::shutdown_default_executor() noexcept {
  if (!default_executor_) return;
  if (!default_executor_->shutdown_for(shutdown_grace_, /*cancel_futures=*/true)) {
    threads_abandoned_ = default_executor_->busy_threads();
  }
}

void EventLoop::run_shutdown_hooks() {
  auto hooks = std::move(shutdown_hooks_);
  shutdown_hooks_.clear();
  for (auto& h : hooks) h();
}

// ---- signals ---------------------------------------------------------------------

void EventLoop::add_signal_handler(int sig, Callback fn) {
  if (sig <= 0 || sig > SIGRTMAX || sig > detail::SignalState::kMaxSignal)
    throw std::invalid_argument("add_signal_handler: invalid signal number " + std::to_string(sig));
  if (sig == SIGKILL || sig == SIGSTOP) {
    throw std::invalid_argument(std::string("add_signal_handler: ") + (sig == SIGKILL ? "SIGKILL" : "SIGSTOP") +
                                " cannot be caught");
  }
  if (signal_fd_ < 0) {
    int owner = detail::SignalState::wake_fd();
    if (owner >= 0) throw InvalidStateError("add_signal_handler: another event loop handles signals in this process");
    signal_fd_ = open_internal_eventfd(signal_op_, &signal_buf_, &EventLoop::on_signal_fd, "eventfd (signals)");
    detail::SignalState::set_wake_fd(signal_fd_);
    arm_signals();
  }
  auto cb = std::make_shared<Callback>(std::move(fn));
  detail::SignalState::stop_counting(sig);  // a new handler owns it (corio::run re-enables its own)
  for (auto& [s, h] : signal_handlers_) {
    if (s == sig) {
      h = std::move(cb);
      return;
    }
  }
  detail::SignalState::install(sig);
  signal_handlers_.emplace_back(sig, std::move(cb));
}

bool EventLoop::remove_signal_handler(int sig) {
  for (auto it = signal_handlers_.begin(); it != signal_handlers_.end(); ++it) {
    if (it->first == sig) {
      signal_handlers_.erase(it);
      detail::SignalState::stop_counting(sig);
      detail::SignalState::uninstall(sig);
      return true;
    }
  }
  return false;
}

void EventLoop::arm_signals() noexcept {
  signal_armed_ = true;
  while (backend_->submit(signal_op_)) dispatch_signals();  // epoll: already readable
}

void EventLoop::on_signal_fd(detail::IoOp* op) noexcept {
  auto* self = static_cast<EventLoop*>(op->ctx);
  self->signal_armed_ = false;
  if (self->closing_) return;
  self->dispatch_signals();
  self->arm_signals();
}

void EventLoop::dispatch_signals() noexcept {
  unsigned long long bits = detail::SignalState::take_pending();
  for (int sig = 1; sig <= detail::SignalState::kMaxSignal; ++sig) {
    if (!(bits & (1ull << (sig - 1)))) continue;
    unsigned times = detail::SignalState::take_count(sig);  // 0: counted by an earlier dispatch
    for (auto& [s, h] : signal_handlers_) {
      if (s != sig) continue;
      // As a callback on the ready queue: handlers run where user code runs,
      // once per arrival (asyncio).
      std::shared_ptr<Callback> keep = h;
      for (unsigned i = 0; i < times; ++i) call_soon([keep] { (*keep)(); });
    }
  }
}

std::string EventLoop::dump_tasks() const {
  std::string out = "corio: " + std::to_string(task_count_) + " live task(s) on the " + backend_->name() + " loop\n";
  for (TaskBase* t = tasks_head_; t; t = t->reg_next_) out += t->describe();
  return out;
}

// ---- Scheduler -------------------------------------------------------------------

void EventLoop::report_warning(std::string_view msg) noexcept {
  if (warning_handler_) {
    try {
      warning_handler_(msg);
      return;
    } catch (...) {
    }
  }
  std::fprintf(stderr, "corio: warning: %.*s\n", static_cast<int>(msg.size()), msg.data());
}


void EventLoop::report_exception(std::exception_ptr e, std::string_view context) noexcept {
  if (exception_handler_) {
    try {
      exception_handler_(e, context);
      return;
    } catch (...) {
    }
  }
  std::string what = "unknown exception";
  try {
    if (e) std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    what = ex.what();
  } catch (const CancelledError& c) {
    what = std::string("CancelledError: ") + c.what();
  } catch (...) {
  }
  std::fprintf(stderr, "corio: %.*s: %s\n", static_cast<int>(context.size()), context.data(), what.c_str());
}

void EventLoop::task_started(TaskBase& t) noexcept {
  t.reg_next_ = nullptr;
  t.reg_prev_ = tasks_tail_;
  if (tasks_tail_) tasks_tail_->reg_next_ = &t;
  else tasks_head_ = &t;
  tasks_tail_ = &t;
  ++task_count_;
}

void EventLoop::task_finished(TaskBase& t) noexcept {
  if (t.reg_prev_) t.reg_prev_->reg_next_ = t.reg_next_;
  else tasks_head_ = t.reg_next_;
  if (t.reg_next_) t.reg_next_->reg_prev_ = t.reg_prev_;
  else tasks_tail_ = t.reg_prev_;
  t.reg_prev_ = t.reg_next_ = nullptr;
  --task_count_;
}

std::vector<TaskBase*> EventLoop::all_tasks() const {
  std::vector<TaskBase*> v;
  v.reserve(task_count_);
  for (TaskBase* t = tasks_head_; t; t = t->reg_next_) v.push_back(t);
  return v;
}

// ---- teardown --------------------------------------------------------------------

void EventLoop::close() noexcept {
  closing_ = true;
  // 1. The kernel lets go of every buffer: cancel all operations and wait for
  //    their completions (bounded: a stuck kernel op must not hang exit).
  backend_->cancel_all();
  auto deadline = Clock::now() + std::chrono::seconds(5);
  for (auto& [sig, h] : signal_handlers_) detail::SignalState::uninstall(sig);
  signal_handlers_.clear();
  if (signal_fd_ >= 0) detail::SignalState::set_wake_fd(-1);
  while ((backend_->in_flight() > 0 || wake_armed_ || signal_armed_) && Clock::now() < deadline) {
    backend_->wait(10'000'000);
  }
  // 2. Frames still suspended are destroyed; their awaiters unhook themselves.
  //    Ready-queue entries must not run afterwards.
  for (detail::Runnable* r = std::exchange(ready_head_, nullptr); r;) {
    detail::Runnable* next = r->next_ready_;
    r->discard();
    r = next;
  }
  ready_tail_ = nullptr;
  while (TaskBase* t = tasks_head_) {
    t->add_ref();
    t->abandon();
    t->release();
  }
  // 3. What is left: queued callbacks and armed call_later timers.
  ready_head_ = ready_tail_ = nullptr;
  while (!timers_.empty()) {
    detail::TimerNode* t = timers_.pop();
    if (t->fire == &detail::CallbackNode::fire_timer) static_cast<detail::CallbackNode*>(t->ctx)->release();
  }
  // Thread-pool calls still running for this loop will post their
  // completion here: wait for them (threads cannot be killed), then for every
  // poster to leave post_threadsafe(). Their awaiters are gone, so each entry
  // is only discarded.
  auto discard_ready = [this] {
    for (detail::Runnable* r = std::exchange(ready_head_, nullptr); r;) {
      detail::Runnable* next = r->next_ready_;
      r->discard();
      r = next;
    }
    ready_tail_ = nullptr;
  };
  for (;;) {
    do drain_threadsafe();
    while (ts_head_);
    discard_ready();
    if (threadsafe_expected_ <= 0) break;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  while (posters_.load(std::memory_order_acquire) != 0) std::this_thread::yield();
  do drain_threadsafe();
  while (ts_head_);
  discard_ready();
  backend_->forget_fd(wake_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
  wake_fd_ = -1;
  if (signal_fd_ >= 0) backend_->forget_fd(signal_fd_);
  if (signal_fd_ >= 0) ::close(signal_fd_);
  signal_fd_ = -1;
}

}  // namespace corio
