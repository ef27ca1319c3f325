#pragma once
// TaskBase: the record of a spawned task (what asyncio calls a Task), and the
// suspension protocol every awaitable in corio follows.
//
// Invariants:
// - A task is resumed only by TaskBase::run(), from the scheduler's ready
//   queue: the one place user code is entered. Awaitables never resume a
//   coroutine themselves; they call wake(), which posts the task.
// - While suspended, a task has exactly one resume point and at most one
//   CancelHook (the awaitable it waits in). wake() clears the hook, so an
//   event can wake the task at most once per suspension.
// - The scheduler holds a reference while the task is not done; handles hold
//   the others. The root frame lives as long as the record (it holds the result).
//
// Cancellation (asyncio's rules): cancel(msg) asks the current hook to
// interrupt the wait. If it can, the task later resumes and its awaitable
// throws CancelledError(msg). If the task is running, queued to run, or not yet
// started, the request is kept (must_cancel) and thrown at its next suspension
// point; a task cancelled before its first step never runs its body. Each
// request is delivered once, so a task may catch CancelledError and await in
// its cleanup; a second cancel() interrupts that cleanup. Requests made while
// one is already on its way (the task queued with it) go with it: one
// CancelledError for all of them, as in asyncio (cancelling() counts each).
// Its message is that of the request a hook accepted; later messages are
// dropped (asyncio's Task.__step throws the CancelledError its future already
// carries, not one made from the newer _cancel_message).
#include <coroutine>
#include <cstdint>
#include <exception>
#include <memory>
#include <string>

#include "coro/errors.hpp"
#include "coro/scheduler.hpp"
#include "coro/task.hpp"

namespace corio {

// Implemented by awaitables that a cancel() can interrupt.
class CancelHook {
 public:
  // Called on the loop thread when the task suspended here is cancelled. Return
  // true if the cancellation will be delivered: the awaitable arranges for the
  // task to be woken (now, or when the kernel lets go of its operation) and
  // then throws CancelledError — unless the operation completed first, in which
  // case its result is delivered (kernel completions win). Return false if the
  // wait cannot be interrupted; the request is then kept for the next
  // suspension point.
  virtual bool on_cancel(TaskBase& t) noexcept = 0;

 protected:
  ~CancelHook() = default;
};

// Notified synchronously when a task finishes, in the order the waiters were
// added (asyncio's done callbacks). Must only post/wake (never run user code).
class DoneWaiter {
 public:
  virtual void on_task_done(TaskBase& t) noexcept = 0;

 protected:
  ~DoneWaiter() = default;

 private:
  friend class TaskBase;
  DoneWaiter* next_ = nullptr;
  DoneWaiter* prev_ = nullptr;  // the first node's names the last
  bool linked_ = false;
};

class TaskBase : public detail::Runnable {
 public:
  enum class State : std::uint8_t { pending, finished, failed, cancelled };

  TaskBase(const TaskBase&) = delete;
  TaskBase& operator=(const TaskBase&) = delete;

  // ---- the asyncio Task API -------------------------------------------------
  bool done() const noexcept { return state() != State::pending; }
  bool cancelled() const noexcept { return state() == State::cancelled; }
  State state() const noexcept { return static_cast<State>(state_); }
  // Request cancellation; false if the task is already done.
  bool cancel(std::string msg = {});
  // Number of pending cancellation requests (asyncio's cancelling()).
  int cancelling() const noexcept { return num_cancels_requested_; }
  // Take back one request; returns the remaining count. When it reaches zero a
  // kept (not yet delivered) request is dropped too.
  int uncancel() noexcept;

  // For scopes that cancel the task they run in (Timeout, TaskGroup) and must
  // take that request back when they end. cancel_own() makes the request and
  // remembers whether it is the only undelivered one; uncancel_own() takes it
  // back, dropping it as well when it is still undelivered: a kernel
  // completion that won the race resumed the task with its result, or the
  // request was made while the task ran and it never awaited again. (One
  // that arrived behind another CancelledError already on its way is
  // delivered with it: throw_cancelled().) Without that, with
  // older requests keeping cancelling() above zero, the scope's request
  // would reach the caller at its next suspension point, after the scope
  // ended.
  struct OwnCancel {
    bool pending_before = false;  // another request was already undelivered
    int count_after = 0;          // cancelling() right after ours
  };
  OwnCancel cancel_own() {
    OwnCancel c{must_cancel_ != 0, 0};
    cancel();
    c.count_after = num_cancels_requested_;
    return c;
  }
  // Returns the remaining count, as uncancel().
  int uncancel_own(const OwnCancel& c) noexcept {
    // No request since ours (the count is unchanged) and none pending
    // before it: a pending request now can only be ours.
    if (!c.pending_before && must_cancel_ && num_cancels_requested_ == c.count_after) must_cancel_ = false;
    return uncancel();
  }
  // The name given at creation or by set_name(); else the subclass's
  // default_name() ("Task-<id>"), formatted when asked for.
  std::string name() const;
  void set_name(std::string name);
  std::uint64_t id() const noexcept { return id_; }
  // The exception the task ended with (nullptr if it returned normally).
  // Throws CancelledError if the task was cancelled, InvalidStateError if not done.
  std::exception_ptr exception();
  // Rethrows like result() would, without returning a value.
  void check_result();
  const std::string& cancel_message() const noexcept;
  // For a CancelHook that passes the request on (to an awaited task, a
  // gather's children, a future): the message of the cancel() being
  // delivered. Usually cancel_message(); after a first request was accepted
  // the task keeps that first message, but each later request is passed on
  // with its own, as asyncio's Task.cancel(msg) forwards msg to _fut_waiter.
  const std::string& cancel_request_message() const noexcept {
    return tls_request_msg_ ? *tls_request_msg_ : cancel_message();
  }

  void add_done_waiter(DoneWaiter& w) noexcept;
  void remove_done_waiter(DoneWaiter& w) noexcept;

  void add_ref() noexcept { ++refs_; }
  void release() noexcept {
    if (--refs_ == 0) delete this;
  }

  Scheduler& scheduler() const noexcept { return *sched_; }

  // The task whose step is running on this thread, or nullptr (plain callbacks).
  static TaskBase* current() noexcept { return tls_current_; }
  // Like current(), but throws InvalidStateError outside a task.
  static TaskBase& current_checked(const char* what);

  // ---- the suspension protocol (for awaitables) -----------------------------
  // If a cancellation request is pending, consume it and return true: the
  // awaitable must then not suspend and throw_cancelled() from await_resume.
  bool take_pending_cancel() noexcept {
    if (!must_cancel_) return false;
    must_cancel_ = false;
    return true;
  }
  bool has_pending_cancel() const noexcept { return must_cancel_; }
  // Record where to resume and who to ask on cancel(). hook may be null.
  // `what` names the wait for dump_tasks() ("sleep", "read fd", "Queue.get").
  void suspend(std::coroutine_handle<> h, CancelHook* hook, const char* what = nullptr) noexcept {
    resume_point_ = h;
    task_hook_ = hook;
    waiting_on_ = what;
  }
  // The awaited event happened (or a cancel was accepted): queue the task to run.
  void wake() noexcept {
    // The frame resumes later in this loop turn, after the rest of the
    // batch: start fetching it now. With a thousand connections it is cold,
    // and the resume's first load waited for it (server CPU per request,
    // keep-alive at 1,024 connections: user time 1,395 -> 1,218 ns).
    __builtin_prefetch(resume_point_.address());
    task_hook_ = nullptr;
    queued_ = true;
    sched_->post(*this);  // from here on the word holds the queue's link
  }
  // Woken (or not yet started) and waiting in the ready queue for its next step.
  bool queued() const noexcept { return queued_; }
  // Replace the hook while staying suspended (e.g. a wait that changes phase).
  void set_hook(CancelHook* hook) noexcept { task_hook_ = hook; }
  // The awaitable the task is suspended in (as passed to suspend()), until
  // it is woken; nullptr otherwise. The hook shares its word with the ready
  // queue's link (Runnable): while queued, that word is the link.
  CancelHook* hook() const noexcept { return queued_ ? nullptr : task_hook_; }
  // Requests that arrived while this one was on its way (the task was queued
  // with it) are delivered with it, as one CancelledError (asyncio's
  // Task.__step consumes _must_cancel the same way); later ones are not.
  [[noreturn]] void throw_cancelled() {
    must_cancel_ = false;
    throw CancelledError(cancel_message());
  }
  // A hook accepted a cancel but the operation completed anyway and delivers
  // its result: keep the request so the next suspension point throws.
  void rearm_cancel() noexcept { must_cancel_ = true; }
  // A hook that passed a cancel on (to an awaited task) saw it end without
  // being cancelled: that request is used up, so a later cancel() before
  // the task runs is a new request with its own message (asyncio: the task's
  // _fut_waiter is done, so cancel() sets _cancel_message).
  void forwarded_cancel_spent() noexcept { cancel_accepted_ = false; }
  // Loop teardown only: destroy the suspended frame of a task that never
  // finished (after the kernel let go of its buffers) and drop the loop's ref.
  void abandon() noexcept;

  void run() noexcept final;

  // ---- introspection --------------------------------------------------------
  // One line of state, then the await chain from the root coroutine down to
  // the frame where the task is suspended, e.g.
  //   Task 'fetch' #12: suspended in sleep
  //       at main_task() (demo.cpp:40)
  //       at worker(int) (demo.cpp:21)
  std::string describe() const;
  // The innermost frame of the await chain (where the task runs or waits).
  const detail::PromiseBase* leaf() const noexcept;

  // Intrusive registry links, owned by the scheduler.
  TaskBase* reg_prev_ = nullptr;
  TaskBase* reg_next_ = nullptr;

  static void* operator new(std::size_t n) { return detail::frame_alloc(n); }
  static void operator delete(void* p, std::size_t n) noexcept { detail::frame_free(p, n); }

 protected:
  TaskBase(Scheduler& s, std::coroutine_handle<> root, detail::PromiseBase& root_promise, std::string name);
  // Adopts `root` (the Task gives up its frame).
  template <class T>
  TaskBase(Scheduler& s, Task<T>&& root, std::string name)
      : TaskBase(s, root.handle(), root.handle().promise(), std::move(name)) {
    (void)root.release();
  }
  virtual ~TaskBase();
  // The root frame's promise (nullptr once abandon() destroyed the frame).
  // Subclasses know the frame's promise type, so the record need not keep a
  // second pointer to it beside root_.
  virtual detail::PromiseBase* root_promise() const noexcept = 0;
  template <class T>
  static detail::PromiseBase* promise_of(std::coroutine_handle<> root) noexcept {
    if (!root) return nullptr;
    return &std::coroutine_handle<detail::Promise<T>>::from_address(root.address()).promise();
  }
  // For subclasses' destructors (root_promise() is gone in ~TaskBase): a
  // failure nobody retrieved goes to the scheduler's exception handler.
  void report_unretrieved() noexcept;
  // Called once the root frame finished (or the task was cancelled before starting).
  void finish() noexcept;

  // For subclasses: the name when none was set ("Task-<id>").
  virtual std::string default_name() const;
  // For subclasses: the task just finished (state() is final), before its
  // DoneWaiters are told. Same rules as DoneWaiter: post and wake only.
  virtual void on_finished() noexcept {}
  // For on_finished(): the exception the root frame failed with, which the
  // subclass takes over (it reports it itself). The task then counts as
  // finished, as if a wrapper coroutine had caught it. nullptr if none.
  std::exception_ptr take_failure() noexcept;
  // References held (the scheduler's while pending, handles, awaiters).
  std::uint32_t ref_count() const noexcept { return refs_; }

  std::coroutine_handle<> root_;

 private:
  friend void detail::task_root_done(TaskBase* owner) noexcept;
  void finish_cancelled(std::string msg) noexcept;
  void set_cancel_message(std::string msg) noexcept;
  void run_timed(std::coroutine_handle<> h) noexcept;

  // initial-exec: read on every step; see detail::tls_next_resume.
  static inline thread_local TaskBase* tls_current_ [[gnu::tls_model("initial-exec")]] = nullptr;
  // cancel()'s own message while its hook runs, when it differs from the
  // kept cancel_message() (cancel_request_message()).
  static inline thread_local const std::string* tls_request_msg_ [[gnu::tls_model("initial-exec")]] = nullptr;

  // What most tasks never have: a name of their own and a cancel message.
  // Out of line, so an unnamed, never-cancelled task (one per connection in
  // a server) does not carry two empty strings.
  struct Extra {
    std::string name;
    std::string cancel_msg;
    DoneWaiter* waiters = nullptr;  // the done-waiter list once the Extra exists
  };
  Extra& extra();
  bool side_is_extra() const noexcept { return reinterpret_cast<std::uintptr_t>(side_) & 1; }
  Extra* extra_ptr() const noexcept {
    return side_is_extra() ? reinterpret_cast<Extra*>(static_cast<char*>(side_) - 1) : nullptr;
  }
  // The head of the done-waiter list, wherever it lives (see side_).
  DoneWaiter* waiters() const noexcept {
    if (Extra* x = extra_ptr()) return x->waiters;
    return static_cast<DoneWaiter*>(side_);
  }
  void set_waiters(DoneWaiter* w) noexcept {
    if (Extra* x = extra_ptr()) x->waiters = w;
    else side_ = w;
  }

  // Laid out for size: pointers first, then the counters and flags packed
  // into the last word (a server keeps one record per connection). The
  // CancelHook lives in Runnable's link word (hook()).
  Scheduler* sched_;
  std::coroutine_handle<> resume_point_;
  // One word for the done-waiter list and the Extra: the list's head while
  // there is no Extra (DoneWaiter* — so add_done_waiter() never allocates and
  // stays noexcept), else the Extra's address with bit 0 set and the head
  // moved into it. Both are at least 8-byte aligned: bit 0 is free.
  void* side_ = nullptr;
  const char* waiting_on_ = nullptr;
  std::uint32_t refs_ = 1;  // the scheduler's reference while pending
  int num_cancels_requested_ = 0;
  // One word: the id (56 bits: wraps after 7e16 tasks), the State and the flags.
  std::uint64_t id_ : 56;
  std::uint64_t state_ : 2 = static_cast<std::uint64_t>(State::pending);
  std::uint64_t started_ : 1 = false;
  std::uint64_t queued_ : 1 = true;  // posted at creation
  std::uint64_t must_cancel_ : 1 = false;
  std::uint64_t exception_retrieved_ : 1 = false;
  // A hook accepted a cancel and the task has not run since: that request's
  // message is the one thrown, so cancel() keeps it.
  std::uint64_t cancel_accepted_ : 1 = false;

  void set_state(State st) noexcept { state_ = static_cast<std::uint64_t>(st); }
};

// The task running now; nullptr from a plain callback.
inline TaskBase* current_task() noexcept { return TaskBase::current(); }

}  // namespace corio
