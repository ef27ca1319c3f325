#include "coro/task_group.hpp"

namespace corio {

namespace {
bool is_cancelled_error(const std::exception_ptr& e) noexcept { return exception_is<CancelledError>(e); }
}  // namespace

// join()'s wait for the last child. Interruptible: a cancel of the calling
// task wakes it (await_resume() returns true) so join() can react, then it
// waits again.
class TaskGroup::JoinAwaiter final : public CancelHook {
 public:
  explicit JoinAwaiter(TaskGroup& g) noexcept : g_(g) {}
  JoinAwaiter(const JoinAwaiter&) = delete;
  ~JoinAwaiter() {
    if (g_.joiner_ == this) g_.joiner_ = nullptr;
  }
  bool await_ready() const noexcept { return g_.children_.empty(); }
  bool await_suspend(std::coroutine_handle<> h) noexcept {
    TaskBase& t = *g_.parent_;
    if (t.take_pending_cancel()) {
      cancelled_ = true;
      return false;
    }
    g_.joiner_ = this;
    suspended_ = true;
    t.suspend(h, this);
    return true;
  }
  // True if the wait was ended by a cancel of the calling task, including one
  // made after the last child finished but before the task resumed (asyncio
  // throws it at `await self._on_completed_fut`).
  bool await_resume() const noexcept {
    return cancelled_ || (suspended_ && g_.parent_->take_pending_cancel());
  }
  bool on_cancel(TaskBase& t) noexcept override {
    g_.joiner_ = nullptr;
    cancelled_ = true;
    t.wake();
    return true;
  }
  void children_done() noexcept {
    g_.joiner_ = nullptr;
    g_.parent_->wake();
  }

 private:
  TaskGroup& g_;
  bool cancelled_ = false;
  bool suspended_ = false;
};

TaskGroup::~TaskGroup() {
  // Only loop teardown gets here with children (see the header): detach.
  while (!children_.empty()) {
    Child& c = children_.front();
    c.task->remove_done_waiter(c);
    TaskBase* t = c.task;
    children_.pop_front();
    t->release();
  }
}

void TaskGroup::check_can_spawn() const {
  if (exiting_ && children_.empty())
    throw InvalidStateError("TaskGroup.create_task: the group is finished");
  if (aborting_)
    throw InvalidStateError(
        "TaskGroup.create_task: the group is shutting down (a child failed, the body raised, or the group was "
        "cancelled)");
}

void TaskGroup::adopt(TaskBase& t) {
  Child& c = children_.emplace_back();
  c.group = this;
  c.task = &t;
  c.self = std::prev(children_.end());
  t.add_ref();
  t.add_done_waiter(c);
}

void TaskGroup::abort() noexcept {
  aborting_ = true;
  // cancel() only wakes tasks, it never finishes one synchronously, so the
  // list cannot change under this loop.
  for (Child& c : children_) c.task->cancel();
}

void TaskGroup::child_done(Child& c, TaskBase& t) noexcept {
  // Unlinked from t's waiters before this call; t stays alive (the loop's
  // reference is released after the waiters ran).
  children_.erase(c.self);
  t.release();
  if (joiner_ && children_.empty()) joiner_->children_done();

  if (t.state() != TaskBase::State::failed) return;  // finished or cancelled: nothing to report
  std::exception_ptr e = t.exception();               // marks it retrieved
  try {
    errors_.push_back(e);
  } catch (...) {
    parent_->scheduler().report_exception(e, "TaskGroup could not record a child's exception (out of memory)");
  }
  if (parent_->done()) {  // not reachable through task_group(); kept loud rather than lost
    parent_->scheduler().report_exception(e, "TaskGroup child failed after its parent task finished");
    return;
  }
  if (!aborting_ && !parent_cancel_requested_) {
    // Interrupt whatever the body is waiting on; join() takes this request
    // back with uncancel() so that it never reaches the caller:
    //
    //   co_await task_group([](TaskGroup& tg) -> Task<void> {
    //     tg.create_task(crash_soon());
    //     co_await sleep(1h);  // <- cancelled by the group
    //   });                    // -> ExceptionGroup, not CancelledError
    abort();
    parent_cancel_requested_ = true;
    own_cancel_ = parent_->cancel_own();
  }
}

void TaskGroup::cancel() {
  if (exiting_ && children_.empty()) return;
  if (!aborting_) {
    abort();
    if (!parent_cancel_requested_) {
      parent_cancel_requested_ = true;
      own_cancel_ = parent_->cancel_own();
    }
  }
}

Task<void> TaskGroup::join(std::exception_ptr body_exc) {
  exiting_ = true;
  const bool body_cancelled = is_cancelled_error(body_exc);
  std::exception_ptr propagate_cancel = body_cancelled ? body_exc : nullptr;
  // The body raised (or was cancelled, from outside or by us): stop the children.
  //
  //   co_await task_group([](TaskGroup& tg) -> Task<void> {
  //     tg.create_task(work());
  //     throw std::runtime_error("x");  // or: co_await sleep(1s) cancelled from outside
  //   });
  if (body_exc && !aborting_) abort();

  std::exception_ptr pending_cancel;
  while (!children_.empty()) {
    // The calling task may be cancelled several times while children finish
    // (repeated outside cancels, or our own request arriving now), hence the loop.
    JoinAwaiter w(*this);
    if (co_await w) {
      pending_cancel = std::make_exception_ptr(CancelledError(parent_->cancel_message()));
      if (!aborting_) {
        // The calling task is cancelled from outside while the body is done
        // and children still run:
        //
        //   co_await task_group([](TaskGroup& tg) -> Task<void> {
        //     tg.create_task(sleep(1h));
        //   });  // <- cancel() arrives here
        propagate_cancel = pending_cancel;
        abort();
      }
    }
  }

  if (parent_cancel_requested_) {
    // Our own request must be taken back.
    if (parent_->uncancel_own(own_cancel_) == 0) {
      // No other request is left: do not turn our cancel into the caller's.
      propagate_cancel = nullptr;
    } else if (!propagate_cancel) {
      // Another request remains and was delivered while we waited: it is not ours to drop.
      propagate_cancel = pending_cancel;
    }
  }

  // Errors have priority over cancellation.
  if (propagate_cancel && errors_.empty()) std::rethrow_exception(propagate_cancel);

  if (body_exc && !body_cancelled) errors_.push_back(body_exc);
  if (!errors_.empty()) {
    // The calling task is being cancelled from outside: keep that request
    // armed (uncancel + cancel keeps the count) so that the caller's next
    // suspension point raises CancelledError after handling the group's errors.
    if (parent_->cancelling() > 0) {
      parent_->uncancel();
      parent_->cancel(parent_->cancel_message());
    }
    throw ExceptionGroup("unhandled errors in a TaskGroup", std::move(errors_));
  }
}

}  // namespace corio
