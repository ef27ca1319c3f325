#pragma once
// detail::WaitList: tasks waiting for a change of state in a net object (data
// arrived on a stream, its write buffer drained, it closed, a server closed).
//
// Waiters are woken all at once and re-check their condition in a loop, so a
// spurious wake-up is harmless and nobody can be lost between "check" and
// "wait": the loop is single-threaded and the check, the registration and
// the suspension happen in one step of the task.
//
// Cancellation: a waiting task resumes with CancelledError at once and leaves
// the list. A cancel that arrives after the task was woken is delivered here
// too: the awaited state lives in the object, not in the waiter, so no data
// is lost by throwing.
#include <coroutine>

#include "coro/task_base.hpp"

namespace corio::detail {

class WaitList;

class Waiter final : public CancelHook {
 public:
  // ready: do not suspend at all (the condition already changed).
  Waiter(WaitList& list, const char* what, bool ready = false) noexcept : list_(&list), what_(what), ready_(ready) {}
  Waiter(const Waiter&) = delete;
  Waiter& operator=(const Waiter&) = delete;
  inline ~Waiter();

  bool await_ready() const noexcept { return ready_; }
  inline bool await_suspend(std::coroutine_handle<> h);
  void await_resume() {
    if (ready_) return;
    if (cancelled_ || task_->take_pending_cancel()) task_->throw_cancelled();
  }
  inline bool on_cancel(TaskBase&) noexcept override;

 private:
  friend class WaitList;
  WaitList* list_;
  Waiter* next_ = nullptr;
  Waiter* prev_ = nullptr;
  TaskBase* task_ = nullptr;
  const char* what_;
  bool linked_ = false;
  bool ready_;
  bool cancelled_ = false;
};

class WaitList {
 public:
  WaitList() = default;
  WaitList(const WaitList&) = delete;
  WaitList& operator=(const WaitList&) = delete;
  // The owner wakes its waiters before it dies; whoever is still linked is
  // detached so its destructor does not touch a dead list.
  ~WaitList() {
    while (Waiter* w = head_) unlink(*w);
  }

  Waiter wait(const char* what, bool ready = false) noexcept { return Waiter(*this, what, ready); }
  bool empty() const noexcept { return head_ == nullptr; }

  // Wakes every waiter (each re-checks what it waits for).
  void wake_all() noexcept {
    while (Waiter* w = head_) {
      unlink(*w);
      w->task_->wake();
    }
  }

 private:
  friend class Waiter;
  void push(Waiter& w) noexcept {
    w.next_ = nullptr;
    w.prev_ = tail_;
    if (tail_) tail_->next_ = &w;
    else head_ = &w;
    tail_ = &w;
    w.linked_ = true;
  }
  void unlink(Waiter& w) noexcept {
    if (w.prev_) w.prev_->next_ = w.next_;
    else head_ = w.next_;
    if (w.next_) w.next_->prev_ = w.prev_;
    else tail_ = w.prev_;
    w.next_ = w.prev_ = nullptr;
    w.linked_ = false;
  }
  Waiter* head_ = nullptr;
  Waiter* tail_ = nullptr;
};

Waiter::~Waiter() {
  if (linked_) list_->unlink(*this);
}

bool Waiter::await_suspend(std::coroutine_handle<> h) {
  task_ = &TaskBase::current_checked(what_);
  if (task_->take_pending_cancel()) {
    cancelled_ = true;
    return false;
  }
  list_->push(*this);
  task_->suspend(h, this, what_);
  return true;
}

bool Waiter::on_cancel(TaskBase&) noexcept {
  if (linked_) list_->unlink(*this);
  cancelled_ = true;
  task_->wake();
  return true;
}

}  // namespace corio::detail
