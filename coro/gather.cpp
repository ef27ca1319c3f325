#include "coro/gather.hpp"

namespace corio::detail {

GatherCore::GatherCore(std::vector<TaskBase*> children, bool return_exceptions)
    : children_(children.size()), return_exceptions_(return_exceptions) {
  for (std::size_t i = 0; i < children.size(); ++i) {
    children_[i].core = this;
    children_[i].task = children[i];
  }
}

GatherCore::~GatherCore() {
  for (Child& c : children_) c.task->remove_done_waiter(c);
}

bool GatherCore::record(TaskBase& t) noexcept {
  ++finished_;
  if (!return_exceptions_ && (t.cancelled() || t.state() == TaskBase::State::failed)) {
    first_failure_ = &t;
    return true;
  }
  return finished_ == children_.size();
}

bool GatherCore::await_suspend(std::coroutine_handle<> h) {
  waiter_ = &TaskBase::current_checked("gather()");
  // Children that finished before the gather was awaited count in argument
  // order; if they already decide the outcome there is nothing to wait for.
  for (Child& c : children_) {
    if (c.task->done() && record(*c.task)) {
      decided_ = true;
      return false;
    }
  }
  if (children_.empty()) {
    decided_ = true;
    return false;
  }
  for (Child& c : children_)
    if (!c.task->done()) c.task->add_done_waiter(c);
  // A cancel requested while this task was running is forwarded to the
  // children, as asyncio forwards it to the future the task awaits.
  if (waiter_->has_pending_cancel() && on_cancel(*waiter_)) waiter_->take_pending_cancel();
  suspended_ = true;
  waiter_->suspend(h, this);
  return true;
}

void GatherCore::child_done(TaskBase& t) noexcept {
  if (decided_) return;
  if (record(t)) {
    decided_ = true;
    waiter_->wake();
  }
}

bool GatherCore::on_cancel(TaskBase& t) noexcept {
  const std::string& msg = t.cancel_request_message();
  bool any = false;
  for (Child& c : children_) {
    try {
      if (c.task->cancel(msg)) any = true;
    } catch (...) {  // only a failed copy of the message can throw
    }
  }
  if (any) {
    cancel_requested_ = true;
    try {
      cancel_msg_ = msg;
    } catch (...) {
    }
  }
  // Not one child accepted (all done): the request stays with the task.
  return any;
}

void GatherCore::await_resume() {
  // Woken (decided while suspended), then cancelled before resuming.
  if (waiter_ && suspended_ && waiter_->take_pending_cancel()) waiter_->throw_cancelled();
  if (first_failure_) {
    if (first_failure_->cancelled()) throw CancelledError(first_failure_->cancel_message());
    std::rethrow_exception(first_failure_->exception());
  }
  if (cancel_requested_) throw CancelledError(cancel_msg_);
}

}  // namespace corio::detail
