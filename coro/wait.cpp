#include "coro/wait.hpp"

namespace corio::detail {

// ---- wait() -----------------------------------------------------------------------

WaitCore::WaitCore(std::vector<TaskBase*> tasks, ReturnWhen when, std::optional<Duration> timeout)
    : children_(tasks.size()), timeout_(timeout), when_(when) {
  for (std::size_t i = 0; i < tasks.size(); ++i) {
    children_[i].core = this;
    children_[i].task = tasks[i];
  }
  timer_.fire = &WaitCore::fired;
  timer_.ctx = this;
}

WaitCore::~WaitCore() {
  for (Child& c : children_) c.task->remove_done_waiter(c);
  if (timer_.armed()) waiter_->scheduler().cancel_timer(timer_);
}

bool WaitCore::satisfied_by(TaskBase& t) const noexcept {
  switch (when_) {
    case ReturnWhen::FIRST_COMPLETED:
      return true;
    case ReturnWhen::FIRST_EXCEPTION:
      if (t.state() == TaskBase::State::failed) return true;
      break;
    case ReturnWhen::ALL_COMPLETED:
      break;
  }
  return not_done_ == 0;
}

bool WaitCore::await_suspend(std::coroutine_handle<> h) {
  waiter_ = &TaskBase::current_checked("wait()");
  if (waiter_->take_pending_cancel()) {
    cancelled_ = true;
    return false;
  }
  not_done_ = 0;
  for (Child& c : children_)
    if (!c.task->done()) ++not_done_;
  for (Child& c : children_)
    if (c.task->done() && satisfied_by(*c.task)) return false;
  if (not_done_ == 0) return false;
  for (Child& c : children_)
    if (!c.task->done()) c.task->add_done_waiter(c);
  if (timeout_) {
    timer_.deadline = deadline_after(waiter_->scheduler().now(), *timeout_);
    waiter_->scheduler().add_timer(timer_);
  }
  waiter_->suspend(h, this);
  return true;
}

void WaitCore::await_resume() const {
  // woken_: satisfied or timed out while suspended; a cancel made before the
  // task resumed still wins, as in asyncio.
  if (cancelled_ || (woken_ && waiter_->has_pending_cancel())) waiter_->throw_cancelled();
}

void WaitCore::resume_waiter() noexcept {
  woken_ = true;
  if (timer_.armed()) waiter_->scheduler().cancel_timer(timer_);
  waiter_->wake();
}

void WaitCore::child_done(TaskBase& t) noexcept {
  --not_done_;
  if (!woken_ && satisfied_by(t)) resume_waiter();
}

void WaitCore::fired(TimerNode* n) noexcept {
  auto* self = static_cast<WaitCore*>(n->ctx);
  if (!self->woken_) self->resume_waiter();
}

bool WaitCore::on_cancel(TaskBase&) noexcept {
  cancelled_ = true;
  resume_waiter();
  return true;
}

// ---- as_completed() -------------------------------------------------------------

AsCompletedCore::AsCompletedCore(std::vector<TaskBase*> tasks, std::optional<Duration> timeout)
    : children_(tasks.size()), sched_(&current_scheduler()) {
  timer_.fire = &AsCompletedCore::fired;
  timer_.ctx = this;
  for (std::size_t i = 0; i < tasks.size(); ++i) {
    Child& c = children_[i];
    c.core = this;
    c.task = tasks[i];
    c.index = i;
    if (c.task->done()) finished_.push_back(i);
  }
  for (Child& c : children_)
    if (!c.task->done()) c.task->add_done_waiter(c);
  if (timeout && finished_.size() < children_.size()) {
    timer_.deadline = deadline_after(sched_->now(), *timeout);
    sched_->add_timer(timer_);
  }
}

AsCompletedCore::~AsCompletedCore() {
  for (Child& c : children_) c.task->remove_done_waiter(c);
  sched_->cancel_timer(timer_);
}

void AsCompletedCore::child_done(Child& c) noexcept {
  // After the timeout the remaining tasks are reported as timed out, even if
  // they finish later (asyncio drops its callbacks at the timeout).
  if (timed_out_) return;
  try {
    finished_.push_back(c.index);
  } catch (...) {
    return;  // out of memory: this task will surface as a timeout/never; nothing better to do here
  }
  if (finished_.size() + yielded_ == children_.size()) sched_->cancel_timer(timer_);
  wake_waiting();
}

void AsCompletedCore::wake_waiting() noexcept {
  if (NextAwaiter* w = std::exchange(waiting_, nullptr)) w->task_->wake();
}

void AsCompletedCore::fired(TimerNode* n) noexcept {
  auto* self = static_cast<AsCompletedCore*>(n->ctx);
  self->timed_out_ = true;
  self->wake_waiting();
}

bool AsCompletedCore::NextAwaiter::await_ready() const noexcept {
  return !core_.finished_.empty() || core_.timed_out_ || core_.remaining() == 0;
}

bool AsCompletedCore::NextAwaiter::await_suspend(std::coroutine_handle<> h) {
  if (core_.waiting_) throw InvalidStateError("as_completed: another next() is already waiting");
  task_ = &TaskBase::current_checked("as_completed().next()");
  if (task_->take_pending_cancel()) {
    cancelled_ = true;
    return false;
  }
  core_.waiting_ = this;
  task_->suspend(h, this);
  return true;
}

std::size_t AsCompletedCore::NextAwaiter::await_resume() {
  // task_ is set only if this next() suspended: woken, then cancelled before
  // resuming, it yields nothing and leaves the finished task queued.
  if (cancelled_ || (task_ && task_->has_pending_cancel())) task_->throw_cancelled();
  if (!core_.finished_.empty()) {
    std::size_t i = core_.finished_.front();
    core_.finished_.pop_front();
    ++core_.yielded_;
    return i;
  }
  if (core_.remaining() == 0) throw InvalidStateError("as_completed: every task was already yielded");
  ++core_.yielded_;  // this one is reported as timed out
  throw TimeoutError("as_completed: timed out waiting for the next task");
}

bool AsCompletedCore::NextAwaiter::on_cancel(TaskBase& t) noexcept {
  core_.waiting_ = nullptr;
  cancelled_ = true;
  t.wake();
  return true;
}

}  // namespace corio::detail
