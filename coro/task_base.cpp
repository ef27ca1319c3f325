#include "coro/task_base.hpp"

#include <atomic>
#include <cstring>

namespace corio {

Scheduler& current_scheduler() {
  Scheduler* s = Scheduler::current();
  if (!s) throw NoRunningLoopError("no running event loop in this thread");
  return *s;
}

namespace {
std::atomic<std::uint64_t> g_next_task_id{1};
}

TaskBase::TaskBase(Scheduler& s, std::coroutine_handle<> root, detail::PromiseBase& root_promise, std::string name)
    : root_(root), sched_(&s), id_(g_next_task_id.fetch_add(1, std::memory_order_relaxed)) {
  if (!name.empty()) extra().name = std::move(name);
  root_promise.set_root_owner(this);  // spawned counts as awaited
  resume_point_ = root;
  sched_->task_started(*this);
}

TaskBase::~TaskBase() {
  if (root_) root_.destroy();
  delete extra_ptr();
}

void TaskBase::report_unretrieved() noexcept {
  if (state() != State::failed || exception_retrieved_) return;
  detail::PromiseBase* p = root_promise();
  if (!p || !p->exception_) return;
  try {
    sched_->report_exception(p->exception_, "Task exception was never retrieved: task '" + name() + "'");
  } catch (...) {
    // Out of memory while formatting: nothing better to do.
  }
}

std::string TaskBase::name() const {
  if (Extra* x = extra_ptr(); x && !x->name.empty()) return x->name;
  return default_name();
}

std::string TaskBase::default_name() const { return "Task-" + std::to_string(id_); }

void TaskBase::set_name(std::string name) {
  if (name.empty() && !extra_ptr()) return;
  extra().name = std::move(name);
}

TaskBase::Extra& TaskBase::extra() {
  if (Extra* x = extra_ptr()) return *x;
  auto* x = new Extra;
  x->waiters = waiters();  // the list moves into the Extra
  side_ = reinterpret_cast<char*>(x) + 1;  // bit 0: an Extra
  return *x;
}

const std::string& TaskBase::cancel_message() const noexcept {
  static const std::string empty;
  Extra* x = extra_ptr();
  return x ? x->cancel_msg : empty;
}

void TaskBase::set_cancel_message(std::string msg) noexcept {
  if (msg.empty() && !extra_ptr()) return;
  try {
    extra().cancel_msg = std::move(msg);
  } catch (...) {
    // Out of memory: the cancellation still happens, without its message.
  }
}

TaskBase& TaskBase::current_checked(const char* what) {
  TaskBase* t = tls_current_;
  if (!t) throw InvalidStateError(std::string(what) + " must be awaited inside a task (create_task or run)");
  return *t;
}

bool TaskBase::cancel(std::string msg) {
  if (done()) return false;
  ++num_cancels_requested_;
  // A request already accepted by a hook is on its way with its message;
  // this one is delivered with it (asyncio keeps the first message here:
  // the cancelled future's CancelledError is what Task.__step throws).
  const bool kept = cancel_accepted_;
  if (!kept) set_cancel_message(std::move(msg));
  if (CancelHook* h = hook()) {
    // A hook that passes the request on passes this one's message, also
    // when the task keeps an earlier one (cancel_request_message()).
    const std::string* const outer = std::exchange(tls_request_msg_, kept ? &msg : nullptr);
    const bool accepted = h->on_cancel(*this);
    tls_request_msg_ = outer;
    if (accepted) {
      cancel_accepted_ = true;
      return true;
    }
  }
  must_cancel_ = true;
  return true;
}

int TaskBase::uncancel() noexcept {
  if (num_cancels_requested_ > 0) {
    --num_cancels_requested_;
    if (num_cancels_requested_ == 0) must_cancel_ = false;
  }
  return num_cancels_requested_;
}

std::exception_ptr TaskBase::exception() {
  switch (state()) {
    case State::pending:
      throw InvalidStateError("exception(): task '" + name() + "' is not done");
    case State::cancelled:
      throw CancelledError(cancel_message());
    case State::failed:
      exception_retrieved_ = true;
      return root_promise()->exception_;
    case State::finished:
      break;
  }
  return nullptr;
}

std::exception_ptr TaskBase::take_failure() noexcept {
  if (state() != State::failed) return nullptr;
  set_state(State::finished);
  return root_promise()->exception_;
}

void TaskBase::check_result() {
  if (auto e = exception()) std::rethrow_exception(e);
}

// The list is FIFO, as asyncio runs done callbacks in the order they were
// added: tasks awaiting one task resume in the order they started waiting.
// The head's prev_ names the last node, so appending is O(1).
void TaskBase::add_done_waiter(DoneWaiter& w) noexcept {
  DoneWaiter* head = waiters();
  w.next_ = nullptr;
  w.linked_ = true;
  if (!head) {
    w.prev_ = &w;
    set_waiters(&w);
    return;
  }
  DoneWaiter* last = head->prev_;
  last->next_ = &w;
  w.prev_ = last;
  head->prev_ = &w;
}

void TaskBase::remove_done_waiter(DoneWaiter& w) noexcept {
  if (!w.linked_) return;
  DoneWaiter* head = waiters();
  if (&w == head) {
    set_waiters(w.next_);
    if (w.next_) w.next_->prev_ = w.prev_;  // the last node
  } else {
    w.prev_->next_ = w.next_;
    if (w.next_) w.next_->prev_ = w.prev_;
    else head->prev_ = w.prev_;  // w was the last
  }
  w.next_ = w.prev_ = nullptr;
  w.linked_ = false;
}

void TaskBase::run() noexcept {
  // Out of the ready queue: the link word holds the hook again (none).
  queued_ = false;
  task_hook_ = nullptr;
  // The request a hook accepted (if any) is thrown in this step, before user
  // code runs: requests from now on carry their own message again.
  cancel_accepted_ = false;
  if (!started_) {
    started_ = true;
    if (must_cancel_) {  // cancelled before its first step: the body never runs
      must_cancel_ = false;
      finish_cancelled(cancel_message());
      return;
    }
  }
  std::coroutine_handle<> h = std::exchange(resume_point_, {});
  TaskBase* prev = std::exchange(tls_current_, this);
  if (sched_->debug()) [[unlikely]] {
    run_timed(h);
    tls_current_ = prev;
    return;
  }
  // The trampoline: awaiting or finishing a nested Task names the next frame
  // instead of calling into it, so the stack stays flat. `this` may be gone
  // once the root frame finished; the loop does not touch it.
  do {
    h.resume();
    h = std::exchange(detail::tls_next_resume, {});
  } while (h);
  tls_current_ = prev;
}

namespace {
std::string frame_line(const detail::PromiseBase& p) {
  const char* file = p.where_.file_name();
  if (const char* slash = std::strrchr(file, '/')) file = slash + 1;
  return std::string(p.where_.function_name()) + " (" + file + ":" + std::to_string(p.where_.line()) + ")";
}
constexpr auto kSlowStep = std::chrono::milliseconds(100);
}  // namespace

void TaskBase::run_timed(std::coroutine_handle<> h) noexcept {
  // Debug mode: the same step, timed. What to name is captured first: the
  // task may be gone once its step ends.
  std::string who = name();
  std::string where = leaf() ? frame_line(*leaf()) : "?";
  auto t0 = Clock::now();
  do {
    h.resume();
    h = std::exchange(detail::tls_next_resume, {});
  } while (h);
  auto took = Clock::now() - t0;
  if (took > kSlowStep) {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(took).count();
    Scheduler::current()->report_warning("slow step: task '" + who + "' ran " + std::to_string(ms) +
                                         " ms without yielding (resumed in " + where + ")");
  }
}

const detail::PromiseBase* TaskBase::leaf() const noexcept {
  const detail::PromiseBase* p = root_promise();
  if (!p) return nullptr;
  while (p->child_) p = p->child_;
  return p;
}

std::string TaskBase::describe() const {
  std::string out = "Task '" + name() + "' #" + std::to_string(id_) + ": ";
  if (done()) {
    out += cancelled() ? "cancelled" : state() == State::failed ? "failed" : "finished";
  } else if (tls_current_ == this) {
    out += "running";
  } else if (!started_) {
    out += "not started";
  } else if (queued_) {
    out += "ready to resume";
  } else {
    out += "suspended in ";
    out += waiting_on_ ? waiting_on_ : "an await";
  }
  if (must_cancel_) out += " (cancel pending)";
  else if (num_cancels_requested_ > 0) out += " (cancelling)";
  out += '\n';
  for (const detail::PromiseBase* p = root_promise(); p && !done(); p = p->child_) {
    out += "    at " + frame_line(*p) + "\n";
  }
  return out;
}

namespace detail {
void report_never_awaited(const PromiseBase& p) noexcept {
  Scheduler* s = Scheduler::current();
  if (!s || !s->debug()) return;
  try {
    s->report_warning("coroutine " + frame_line(p) + " was never awaited");
  } catch (...) {
  }
}
}  // namespace detail

void TaskBase::finish_cancelled(std::string msg) noexcept {
  set_cancel_message(std::move(msg));
  set_state(State::cancelled);
  finish();
}

void TaskBase::finish() noexcept {
  if (state() == State::pending) {
    if (std::exception_ptr e = root_promise()->exception_) {
      try {
        std::rethrow_exception(e);
      } catch (const CancelledError& c) {
        set_state(State::cancelled);
        set_cancel_message(c.message());
      } catch (...) {
        set_state(State::failed);
      }
    } else if (must_cancel_) {
      // Cancelled right before the body returned: asyncio reports the task as cancelled.
      must_cancel_ = false;
      set_state(State::cancelled);
    } else {
      set_state(State::finished);
    }
  }
  // Not while queued (loop teardown abandons tasks whose queue entry was
  // discarded): the word is the queue's link then, and hook() is null anyway.
  if (!queued_) task_hook_ = nullptr;
  on_finished();
  // In registration order (asyncio's done callbacks); unlink each before
  // calling so a waiter may free itself.
  while (DoneWaiter* w = waiters()) {
    remove_done_waiter(*w);
    w->on_task_done(*this);
  }
  sched_->task_finished(*this);
  release();
}

void TaskBase::abandon() noexcept {
  if (done()) return;
  if (root_) std::exchange(root_, {}).destroy();  // runs the awaiters' destructors (root_promise() is null now)
  set_cancel_message("event loop closed");
  set_state(State::cancelled);
  finish();
}

namespace detail {
void task_root_done(TaskBase* owner) noexcept { owner->finish(); }
}  // namespace detail

}  // namespace corio
