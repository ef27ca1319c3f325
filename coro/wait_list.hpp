#pragma once
// The waiting machinery shared by Event, Lock, Semaphore, Condition, Barrier
// and Queue (internals; users meet only the primitives).
//
// - WaitNode / WaitList<T>: an intrusive FIFO. A node lives inside an awaiter
//   object, which lives in the suspended coroutine's frame, so waiting
//   allocates nothing. An awaiter unlinks itself when it is cancelled or
//   destroyed (frames are destroyed at loop teardown).
// - ParkAwaiter: a task parked on a WaitList until someone calls
//   ParkAwaiter::wake_all(); the plain "wait until notified" of Event.wait(),
//   Queue.join() and Barrier's state changes.
//
// Invariants:
// - A node is in at most one list at a time and linked() says whether it is.
// - A list does not own its nodes. A list destroyed while nodes are still
//   linked unlinks them first, so their awaiters' destructors do not touch a
//   dead list (the primitive died under its waiters: they wait forever, which
//   is the caller's bug, but not memory corruption).
#include <coroutine>
#include <cstddef>

#include "coro/task_base.hpp"

namespace corio::detail {

class WaitNode {
 public:
  WaitNode(const WaitNode&) = delete;
  WaitNode& operator=(const WaitNode&) = delete;
  bool linked() const noexcept { return prev_ != nullptr; }

 protected:
  WaitNode() = default;
  ~WaitNode() = default;

 private:
  template <class>
  friend class WaitList;
  // Linked: prev_ is never null (the first node's prev_ is the last node).
  WaitNode* prev_ = nullptr;
  WaitNode* next_ = nullptr;
};

// FIFO of T, where T derives from WaitNode. One pointer wide (the first
// node's prev_ names the last), since every stream, event and lock carries
// some: push_back, pop_front and remove are O(1), size() walks the list.
template <class T>
class WaitList {
 public:
  WaitList() = default;
  WaitList(const WaitList&) = delete;
  WaitList& operator=(const WaitList&) = delete;
  ~WaitList() { clear(); }

  bool empty() const noexcept { return head_ == nullptr; }
  std::size_t size() const noexcept {
    std::size_t n = 0;
    for (const WaitNode* p = head_; p; p = p->next_) ++n;
    return n;
  }
  T* front() const noexcept { return static_cast<T*>(head_); }

  void push_back(T& t) noexcept {
    WaitNode& n = t;
    n.next_ = nullptr;
    if (!head_) {
      n.prev_ = &n;
      head_ = &n;
      return;
    }
    WaitNode* last = head_->prev_;
    last->next_ = &n;
    n.prev_ = last;
    head_->prev_ = &n;
  }

  T* pop_front() noexcept {
    WaitNode* n = head_;
    if (!n) return nullptr;
    unlink(*n);
    return static_cast<T*>(n);
  }

  // t must be linked in this list.
  void remove(T& t) noexcept { unlink(t); }

  // Unlink every node without waking anyone.
  void clear() noexcept {
    while (head_) unlink(*head_);
  }

 private:
  void unlink(WaitNode& n) noexcept {
    if (&n == head_) {
      head_ = n.next_;
      if (head_) head_->prev_ = n.prev_;  // the last node
    } else {
      n.prev_->next_ = n.next_;
      if (n.next_) n.next_->prev_ = n.prev_;
      else head_->prev_ = n.prev_;  // n was the last
    }
    n.prev_ = n.next_ = nullptr;
  }

  WaitNode* head_ = nullptr;
};

// Suspends the current task on a list until wake_all(). Nothing is handed
// over on wake-up, so a cancel requested after the wake-up but before the
// task resumed is delivered here (CancelledError), as sleep() does.
class [[nodiscard]] ParkAwaiter final : public WaitNode, public CancelHook {
 public:
  // ready: a flag read when the awaiter is awaited (not when it is made, so
  // a stored `auto w = ev.wait();` sees a set() or clear() made since, as an
  // asyncio coroutine would): set, it does not suspend at all. nullptr:
  // always parks.
  ParkAwaiter(WaitList<ParkAwaiter>& list, const bool* ready, const char* what) noexcept
      : list_(&list), what_(what), flag_(ready) {}
  // ready: decided by the caller when the awaiter is made, for awaiters that
  // are awaited at once (net/'s ParkList: `co_await list.wait(...)`).
  ParkAwaiter(WaitList<ParkAwaiter>& list, bool ready, const char* what) noexcept
      : list_(&list), what_(what), ready_(ready) {}
  // Movable until awaited (wait_for, gather and create_task take an awaiter
  // by value), never after: then it is linked and its task suspended here.
  ParkAwaiter(ParkAwaiter&& o) noexcept
      : WaitNode(), CancelHook(), list_(o.list_), what_(o.what_), flag_(o.flag_), ready_(o.ready_) {}
  ~ParkAwaiter() {
    if (linked()) list_->remove(*this);
  }

  bool await_ready() const noexcept { return ready_ || (flag_ && *flag_); }
  bool await_suspend(std::coroutine_handle<> h) {
    task_ = &TaskBase::current_checked(what_);
    if (task_->take_pending_cancel()) {
      cancelled_ = true;
      return false;
    }
    list_->push_back(*this);
    task_->suspend(h, this, what_);
    return true;
  }
  void await_resume() const {
    if (task_ && (cancelled_ || task_->take_pending_cancel())) task_->throw_cancelled();
  }
  bool on_cancel(TaskBase&) noexcept override {
    if (linked()) list_->remove(*this);
    cancelled_ = true;
    task_->wake();
    return true;
  }

  // Wake every task parked on `list`, in the order they parked.
  static void wake_all(WaitList<ParkAwaiter>& list) noexcept {
    while (ParkAwaiter* p = list.pop_front()) p->task_->wake();
  }

 private:
  WaitList<ParkAwaiter>* list_;
  TaskBase* task_ = nullptr;
  const char* what_;
  const bool* flag_ = nullptr;
  bool ready_ = false;
  bool cancelled_ = false;
};

}  // namespace corio::detail
