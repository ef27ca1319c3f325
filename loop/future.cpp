#include "loop/future.hpp"

#include <cstdio>

namespace corio::detail {

bool FutureStateBase::cancel(std::string msg) {
  std::unique_lock lk(mu_);
  Status s = status();
  if (s == Status::cancelled) return true;
  if (s != Status::pending) return false;
  cancel_msg_ = std::move(msg);
  on_cancelled_locked();
  complete(lk, Status::cancelled);
  return true;
}

bool FutureStateBase::set_running() noexcept {
  std::lock_guard lk(mu_);
  if (status() != Status::pending) return false;
  status_.store(Status::running, std::memory_order_release);
  return true;
}

bool FutureStateBase::set_exception(std::exception_ptr e) noexcept {
  std::unique_lock lk(mu_);
  if (done()) return false;
  exception_ = std::move(e);
  complete(lk, Status::finished);
  return true;
}

bool FutureStateBase::set_cancelled(std::string msg) noexcept {
  std::unique_lock lk(mu_);
  if (done()) return false;
  try {
    cancel_msg_ = std::move(msg);
  } catch (...) {
  }
  complete(lk, Status::cancelled);
  return true;
}

void FutureStateBase::finish_running() noexcept {
  std::unique_lock lk(mu_);
  complete(lk, Status::finished);
}

void FutureStateBase::complete(std::unique_lock<std::mutex>& lk, Status s) noexcept {
  status_.store(s, std::memory_order_release);
  cv_.notify_all();
  while (FutureObserver* o = observers_) {
    observers_ = o->next_;
    if (observers_) observers_->prev_ = nullptr;
    o->next_ = o->prev_ = nullptr;
    o->linked_ = false;
    o->on_future_done(*this);
  }
  std::vector<std::function<void()>> cbs = std::move(callbacks_);
  callbacks_.clear();
  lk.unlock();
  for (auto& cb : cbs) {
    try {
      cb();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "corio: exception in a future's done callback: %s\n", e.what());
    } catch (...) {
      std::fprintf(stderr, "corio: exception in a future's done callback\n");
    }
  }
}

void FutureStateBase::wait() const {
  std::unique_lock lk(mu_);
  cv_.wait(lk, [this] { return done(); });
}

bool FutureStateBase::wait_until(TimePoint deadline) const {
  std::unique_lock lk(mu_);
  return cv_.wait_until(lk, deadline, [this] { return done(); });
}

std::exception_ptr FutureStateBase::exception_until(std::optional<TimePoint> deadline) const {
  std::unique_lock lk(mu_);
  if (deadline) {
    if (!cv_.wait_until(lk, *deadline, [this] { return done(); })) throw TimeoutError("future not done in time");
  } else {
    cv_.wait(lk, [this] { return done(); });
  }
  if (status() == Status::cancelled) throw CancelledError(cancel_msg_);
  return exception_;
}

void FutureStateBase::check_until(std::optional<TimePoint> deadline) const {
  if (std::exception_ptr e = exception_until(deadline)) std::rethrow_exception(e);
}

bool FutureStateBase::add_observer(FutureObserver& o) {
  std::lock_guard lk(mu_);
  if (done()) return false;
  o.prev_ = nullptr;
  o.next_ = observers_;
  if (observers_) observers_->prev_ = &o;
  observers_ = &o;
  o.linked_ = true;
  return true;
}

bool FutureStateBase::remove_observer(FutureObserver& o) {
  std::lock_guard lk(mu_);
  if (!o.linked_) return false;
  if (o.prev_) o.prev_->next_ = o.next_;
  else observers_ = o.next_;
  if (o.next_) o.next_->prev_ = o.prev_;
  o.next_ = o.prev_ = nullptr;
  o.linked_ = false;
  return true;
}

void FutureStateBase::add_done_callback(std::function<void()> cb) {
  {
    std::lock_guard lk(mu_);
    if (!done()) {
      callbacks_.push_back(std::move(cb));
      return;
    }
  }
  try {
    cb();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "corio: exception in a future's done callback: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "corio: exception in a future's done callback\n");
  }
}

}  // namespace corio::detail

namespace corio::detail {

MultiWaiter::MultiWaiter(const std::vector<FutureStateBase*>& states) : nodes_(states.size()) {
  finished_.reserve(states.size());
  for (std::size_t i = 0; i < states.size(); ++i) {
    nodes_[i].waiter = this;
    nodes_[i].state = states[i];
    if (!states[i]->add_observer(nodes_[i])) record(*states[i]);  // already done
  }
}

MultiWaiter::~MultiWaiter() {
  for (Node& n : nodes_) n.state->remove_observer(n);
}

void MultiWaiter::record(FutureStateBase& s) noexcept {
  std::lock_guard lk(mu_);
  ++done_count_;
  if (s.failed()) ++failed_count_;
  finished_.push_back(&s);  // within the reserved capacity: each node records once
  cv_.notify_all();
}

FutureStateBase* MultiWaiter::next_done(std::optional<TimePoint> deadline) {
  std::unique_lock lk(mu_);
  if (taken_ == nodes_.size()) return nullptr;
  auto ready = [this] { return finished_head_ < finished_.size(); };
  if (!deadline) {
    cv_.wait(lk, ready);
  } else if (!cv_.wait_until(lk, *deadline, ready)) {
    throw TimeoutError(std::to_string(nodes_.size() - taken_) + " (of " + std::to_string(nodes_.size()) +
                       ") futures unfinished");
  }
  FutureStateBase* s = finished_[finished_head_++];
  ++taken_;
  return s;
}

}  // namespace corio::detail
