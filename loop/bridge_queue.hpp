#pragma once
// BridgeQueue<T>: a FIFO between plain threads and tasks (the janus pattern):
// threads block on it, tasks await it, and either side may be producer or
// consumer.
//
//   corio::BridgeQueue<Row> q(1000);
//   std::thread writer([&] {                         // a thread: blocking side
//     try { for (;;) db.insert(q.get()); } catch (const corio::QueueClosed&) {}
//   });
//   co_await q.async_put(std::move(row));             // a task: awaitable side
//   q.close();                                         // writer drains, then sees QueueClosed
//
// Semantics:
// - maxsize 0 means unbounded; otherwise put waits while qsize() == maxsize.
// - FIFO, and fair across both sides: waiting getters and putters, threads and
//   tasks alike, are served in arrival order. An item (or a free slot) is handed
//   straight to the first waiter, so a woken waiter never finds it taken.
// - close(): later puts throw QueueClosed; waiting putters wake with
//   QueueClosed (their items are not enqueued); getters drain what is left,
//   then get QueueClosed. Idempotent.
// - Nobody busy-waits: threads sleep on condition variables, tasks are woken
//   through their loop's cross-thread path (EventLoop::post_threadsafe: one
//   eventfd write wakes the loop for many items).
// - The blocking calls throw InvalidStateError on a thread that runs an event
//   loop (they would stall it): tasks use async_put/async_get.
// - The queue must outlive every waiter (thread or task) on it.
//
// Concurrency: any number of threads and tasks (on any loops) may use one
// queue at once; all state is under one mutex, held only for O(1) work.
#include <chrono>
#include <condition_variable>
#include <coroutine>
#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <utility>

#include "coro/errors.hpp"
#include "coro/task_base.hpp"
#include "loop/event_loop.hpp"
#include "loop/remote_wake.hpp"

namespace corio {

// put/get on a closed BridgeQueue (get: once it is also drained).
class QueueClosed : public std::runtime_error {
 public:
  QueueClosed() : std::runtime_error("BridgeQueue is closed") {}
};

namespace detail {

// A thread or a task waiting on a BridgeQueue: an intrusive node in its stack
// frame or coroutine frame, linked while it waits, under the queue's mutex.
template <class T>
struct BridgeWaiter {
  enum class Outcome : std::uint8_t { waiting, served, closed };
  BridgeWaiter* next = nullptr;
  BridgeWaiter* prev = nullptr;
  Outcome outcome = Outcome::waiting;
  bool linked = false;
  T* src = nullptr;                        // a putter's item (moved from when served)
  std::optional<T>* dst = nullptr;         // a getter's slot (filled when served)
  std::condition_variable* cv = nullptr;   // set for a thread
  RemoteWake* wake = nullptr;              // set for a task

  // Under the queue's mutex: a post from here cannot race the waiter's unregistering.
  void notify() noexcept {
    if (cv) cv->notify_one();
    else wake->fire();
  }
};

template <class T>
class BridgeWaiterList {
 public:
  bool empty() const noexcept { return head_ == nullptr; }
  void push_back(BridgeWaiter<T>& w) noexcept {
    w.next = nullptr;
    w.prev = tail_;
    if (tail_) tail_->next = &w;
    else head_ = &w;
    tail_ = &w;
    w.linked = true;
  }
  BridgeWaiter<T>* pop_front() noexcept {
    BridgeWaiter<T>* w = head_;
    if (w) remove(*w);
    return w;
  }
  void remove(BridgeWaiter<T>& w) noexcept {
    if (!w.linked) return;
    if (w.prev) w.prev->next = w.next;
    else head_ = w.next;
    if (w.next) w.next->prev = w.prev;
    else tail_ = w.prev;
    w.next = w.prev = nullptr;
    w.linked = false;
  }

 private:
  BridgeWaiter<T>* head_ = nullptr;
  BridgeWaiter<T>* tail_ = nullptr;
};

inline void check_may_block(const char* what) {
  if (EventLoop::current_or_null()) {
    throw InvalidStateError(std::string("BridgeQueue::") + what +
                            " would block the event loop's thread; await async_" + what + "() in a task");
  }
}

}  // namespace detail

template <class T>
class BridgeQueue {
  using Waiter = detail::BridgeWaiter<T>;
  using Outcome = typename Waiter::Outcome;

 public:
  explicit BridgeQueue(std::size_t maxsize = 0) : maxsize_(maxsize) {}
  BridgeQueue(const BridgeQueue&) = delete;
  BridgeQueue& operator=(const BridgeQueue&) = delete;

  // ---- threads: blocking ------------------------------------------------------
  // Waits while full. QueueClosed if closed (before or while waiting).
  void put(T item) {
    detail::check_may_block("put");
    std::unique_lock lk(mu_);
    if (offer_locked(item)) return;
    wait_locked(lk, putters_, &item, nullptr, std::nullopt);
  }
  // Waits at most `timeout`; false if still full then (item left untouched).
  template <class Rep, class Period>
  bool put(T&& item, std::chrono::duration<Rep, Period> timeout) {
    return timed_put(item, timeout);
  }
  template <class Rep, class Period>
  bool put(const T& item, std::chrono::duration<Rep, Period> timeout) {
    T copy(item);
    return timed_put(copy, timeout);
  }
  // Waits while empty. QueueClosed once closed and drained.
  T get() {
    detail::check_may_block("get");
    std::unique_lock lk(mu_);
    if (std::optional<T> x = take_locked()) return std::move(*x);
    std::optional<T> slot;
    wait_locked(lk, getters_, nullptr, &slot, std::nullopt);
    return std::move(*slot);
  }
  // Waits at most `timeout`; std::nullopt if still empty then. QueueClosed
  // once closed and drained.
  template <class Rep, class Period>
  std::optional<T> get(std::chrono::duration<Rep, Period> timeout) {
    detail::check_may_block("get");
    const TimePoint deadline = detail::deadline_after(Clock::now(), timeout);
    std::unique_lock lk(mu_);
    if (std::optional<T> x = take_locked()) return x;
    std::optional<T> slot;
    if (!wait_locked(lk, getters_, nullptr, &slot, deadline)) return std::nullopt;
    return slot;
  }

  // ---- either side: never blocks ----------------------------------------------
  // False if full (an rvalue item is then left untouched). QueueClosed if closed.
  bool try_put(T&& item) {
    std::lock_guard lk(mu_);
    return offer_locked(item);
  }
  bool try_put(const T& item) {
    T copy(item);
    std::lock_guard lk(mu_);
    return offer_locked(copy);
  }
  // std::nullopt if empty. QueueClosed once closed and drained.
  std::optional<T> try_get() {
    std::lock_guard lk(mu_);
    return take_locked();
  }

  // ---- tasks: awaitable ---------------------------------------------------------

  // co_await q.async_put(std::move(x)): waits while full.
  // Errors: QueueClosed if the queue is (or gets) closed before x is taken.
  // Cancellation: CancelledError, and x was not enqueued (an rvalue argument
  // is left unmoved); if x had already been taken when the cancel came, the put
  // completes and the cancel is raised at the task's next suspension point.
  class [[nodiscard]] PutAwaiter final : public CancelHook {
   public:
    PutAwaiter(BridgeQueue& q, T* src) noexcept : q_(&q), src_(src) {}
    PutAwaiter(BridgeQueue& q, const T& item) : q_(&q), own_(item), src_(&*own_) {}
    PutAwaiter(const PutAwaiter&) = delete;
    ~PutAwaiter() { q_->leave(w_); }

    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> h) {
      task_ = &TaskBase::current_checked("BridgeQueue::async_put()");
      std::lock_guard lk(q_->mu_);
      if (q_->offer_locked(*src_)) return false;  // a pending cancel stays armed: the put happened
      if (task_->take_pending_cancel()) {
        cancelled_ = true;
        return false;
      }
      w_.src = src_;
      q_->enqueue_task_locked(w_, q_->putters_, *task_, h, this);
      return true;
    }
    void await_resume() {
      if (cancelled_) task_->throw_cancelled();
      if (!w_.wake) return;  // done without waiting
      w_.wake->release();
      w_.wake = nullptr;
      if (w_.outcome == Outcome::closed) throw QueueClosed();
      if (cancel_requested_) task_->rearm_cancel();
    }
    bool on_cancel(TaskBase&) noexcept override { return q_->cancel_wait(w_, *task_, cancelled_, cancel_requested_); }

   private:
    BridgeQueue* q_;
    std::optional<T> own_;
    T* src_;
    Waiter w_;
    TaskBase* task_ = nullptr;
    bool cancelled_ = false;
    bool cancel_requested_ = false;
  };

  // co_await q.async_get(): the next item; waits while empty.
  // Errors: QueueClosed once closed and drained.
  // Cancellation: CancelledError, and no item was taken: an item already
  // handed to this getter when the cancel came goes back to the head of the
  // queue (or to the next waiting getter). No item is ever lost.
  class [[nodiscard]] GetAwaiter final : public CancelHook {
   public:
    explicit GetAwaiter(BridgeQueue& q) noexcept : q_(&q) {}
    GetAwaiter(const GetAwaiter&) = delete;
    ~GetAwaiter() { q_->leave(w_); }

    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> h) {
      task_ = &TaskBase::current_checked("BridgeQueue::async_get()");
      std::lock_guard lk(q_->mu_);
      if (std::optional<T> x = q_->take_locked()) {  // QueueClosed if closed and drained
        slot_ = std::move(x);  // a pending cancel stays armed: the item is delivered
        return false;
      }
      if (task_->take_pending_cancel()) {
        cancelled_ = true;
        return false;
      }
      w_.dst = &slot_;
      q_->enqueue_task_locked(w_, q_->getters_, *task_, h, this);
      return true;
    }
    T await_resume() {
      if (cancelled_) task_->throw_cancelled();
      if (w_.wake) {  // waited: served or closed
        w_.wake->release();
        w_.wake = nullptr;
        if (w_.outcome == Outcome::closed) throw QueueClosed();
      }
      return std::move(*slot_);
    }
    bool on_cancel(TaskBase&) noexcept override {
      bool unused = false;
      return q_->cancel_wait(w_, *task_, cancelled_, unused);
    }

   private:
    BridgeQueue* q_;
    std::optional<T> slot_;
    Waiter w_;
    TaskBase* task_ = nullptr;
    bool cancelled_ = false;
  };

  // The rvalue is moved from only once it is enqueued (see PutAwaiter).
  PutAwaiter async_put(T&& item) noexcept { return PutAwaiter(*this, &item); }
  PutAwaiter async_put(const T& item) { return PutAwaiter(*this, item); }
  GetAwaiter async_get() noexcept { return GetAwaiter(*this); }

  // ---- state ------------------------------------------------------------------------
  // Wake every waiter: putters get QueueClosed, getters drain then get QueueClosed.
  void close() {
    std::lock_guard lk(mu_);
    closed_ = true;
    while (Waiter* w = getters_.pop_front()) {
      w->outcome = Outcome::closed;
      w->notify();
    }
    while (Waiter* w = putters_.pop_front()) {
      w->outcome = Outcome::closed;
      w->notify();
    }
  }
  bool closed() const {
    std::lock_guard lk(mu_);
    return closed_;
  }
  std::size_t qsize() const {
    std::lock_guard lk(mu_);
    return items_.size();
  }
  bool empty() const { return qsize() == 0; }
  bool full() const {
    std::lock_guard lk(mu_);
    return maxsize_ != 0 && items_.size() >= maxsize_;
  }
  std::size_t maxsize() const noexcept { return maxsize_; }

 private:
  // Hand `item` to the first waiting getter, or enqueue it if there is room.
  // Moved from only when it returns true. QueueClosed if closed.
  bool offer_locked(T& item) {
    if (closed_) throw QueueClosed();
    if (Waiter* g = getters_.pop_front()) {  // getters wait only while empty
      g->dst->emplace(std::move(item));
      g->outcome = Outcome::served;
      g->notify();
      return true;
    }
    if (maxsize_ != 0 && items_.size() >= maxsize_) return false;
    items_.push_back(std::move(item));
    return true;
  }
  // The first item, refilling from the first waiting putter (putters wait only
  // while full, so FIFO order holds). std::nullopt if empty and open;
  // QueueClosed if empty and closed.
  std::optional<T> take_locked() {
    if (items_.empty()) {
      if (closed_) throw QueueClosed();
      return std::nullopt;
    }
    std::optional<T> x(std::move(items_.front()));
    items_.pop_front();
    if (Waiter* p = putters_.pop_front()) {
      items_.push_back(std::move(*p->src));
      p->outcome = Outcome::served;
      p->notify();
    }
    return x;
  }

  // A thread waits on its own condition variable until served, closed, or the
  // deadline; false on timeout (then unregistered, nothing taken).
  bool wait_locked(std::unique_lock<std::mutex>& lk, detail::BridgeWaiterList<T>& list, T* src,
                   std::optional<T>* dst, std::optional<TimePoint> deadline) {
    std::condition_variable cv;
    Waiter w;
    w.src = src;
    w.dst = dst;
    w.cv = &cv;
    list.push_back(w);
    auto done = [&] { return w.outcome != Outcome::waiting; };
    if (deadline) {
      if (!cv.wait_until(lk, *deadline, done)) {
        list.remove(w);
        return false;
      }
    } else {
      cv.wait(lk, done);
    }
    if (w.outcome == Outcome::closed) throw QueueClosed();
    return true;
  }

  template <class Rep, class Period>
  bool timed_put(T& item, std::chrono::duration<Rep, Period> timeout) {
    detail::check_may_block("put");
    const TimePoint deadline = detail::deadline_after(Clock::now(), timeout);
    std::unique_lock lk(mu_);
    if (offer_locked(item)) return true;
    return wait_locked(lk, putters_, &item, nullptr, deadline);
  }

  void enqueue_task_locked(Waiter& w, detail::BridgeWaiterList<T>& list, TaskBase& task, std::coroutine_handle<> h,
                           CancelHook* hook) {
    w.wake = new detail::RemoteWake(EventLoop::current(), task);
    task.suspend(h, hook);
    list.push_back(w);
  }

  // on_cancel of a waiting task (loop thread). Getters undo: an item already
  // handed over goes back to the head of the line, so CancelledError always
  // means "nothing taken". A putter whose item was taken cannot undo (it may be
  // consumed already): the put stands and the cancel waits for the task's
  // next suspension point.
  bool cancel_wait(Waiter& w, TaskBase& task, bool& cancelled, bool& cancel_requested) noexcept {
    bool unlinked = false;
    {
      std::lock_guard lk(mu_);
      if (w.outcome == Outcome::waiting) {
        (w.dst ? getters_ : putters_).remove(w);
        unlinked = true;
      } else if (w.outcome == Outcome::served) {
        if (!w.dst) {
          cancel_requested = true;  // settled in await_resume, when the wake-up arrives
          return true;
        }
        give_back_locked(*w.dst);
      }
    }
    // Unlinked: no wake-up will come. Served or closed: one is on its way and
    // only drops its reference when it arrives.
    if (unlinked) w.wake->release_sender();
    w.wake->detach();
    w.wake = nullptr;
    cancelled = true;
    task.wake();
    return true;
  }

  // An item handed to a getter that will not take it: to the next waiting
  // getter, else back to the head of the queue (maxsize may be exceeded by
  // this one item until the next get).
  void give_back_locked(std::optional<T>& slot) noexcept {
    if (Waiter* g = getters_.pop_front()) {
      g->dst->emplace(std::move(*slot));
      g->outcome = Outcome::served;
      g->notify();
    } else {
      items_.push_front(std::move(*slot));
    }
    slot.reset();
  }

  // An awaiter's frame is destroyed: normally after it resumed (nothing to
  // do), or at loop teardown while still waiting (unregister; a getter gives
  // back an item already handed to it).
  void leave(Waiter& w) noexcept {
    if (!w.wake) return;
    bool was_waiting;
    {
      std::lock_guard lk(mu_);
      was_waiting = w.linked;
      if (was_waiting) (w.dst ? getters_ : putters_).remove(w);
      else if (w.outcome == Outcome::served && w.dst && w.dst->has_value()) give_back_locked(*w.dst);
    }
    if (was_waiting) w.wake->release_sender();
    w.wake->detach();
    w.wake = nullptr;
  }

  mutable std::mutex mu_;
  std::deque<T> items_;
  detail::BridgeWaiterList<T> getters_;  // non-empty only while items_ is empty
  detail::BridgeWaiterList<T> putters_;  // non-empty only while items_ is full
  const std::size_t maxsize_;
  bool closed_ = false;
};

}  // namespace corio
