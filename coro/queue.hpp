#pragma once
// Queue<T>, PriorityQueue<T, Compare>, LifoQueue<T>: asyncio's queues,
// including Python 3.13's shutdown().
//
//   Queue<Job> q(100);                  // maxsize 0 means unbounded
//   co_await q.put(job);                // waits while full
//   Job j = co_await q.get();           // waits while empty
//   q.task_done();  co_await q.join();
//
// How waiters are served (fair and lossless under cancellation):
// - put_nowait() with getters waiting wakes the first getter and reserves an
//   item for it; the item stays in the queue until that getter resumes and
//   takes the item then (the front one, or the smallest, as a get at that
//   moment would). A getter cancelled in between drops its reservation and
//   the next getter is woken instead: a cancelled get() never takes an item,
//   so none is lost and the order is kept (asyncio leaves the item in the
//   queue the same way).
// - Likewise a freed slot is reserved for the first waiting putter, which
//   inserts its item when it resumes; a putter cancelled in between inserts
//   nothing and passes the slot on.
// - Reserved items are not offered to anyone else, and reserved slots count
//   as taken, so a newcomer never overtakes a woken waiter.
//
// Invariants:
// - A waiter's node is in getters_/putters_ while it waits, and in
//   granted_getters_/granted_putters_ from its grant until it resumes, so the
//   reservations are those lists' sizes and an awaiter destroyed at loop
//   teardown (or a queue destroyed under its waiters) fixes the counts by
//   unlinking.
// - qsize() == items stored - granted getters.
// - full() <=> maxsize > 0 && items stored + granted putters >= maxsize.
// - Getters wait only while qsize() == 0; putters wait only while full() and
//   not shut down. Every change that breaks one of these wakes waiters.
// - unfinished_ counts put items not yet marked task_done(); finished_ is set
//   exactly when it is 0.
// - After shutdown(immediate=true) nothing is stored and no getter is granted.
#include <algorithm>
#include <cstddef>
#include <deque>
#include <functional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "coro/errors.hpp"
#include "coro/event.hpp"
#include "coro/wait_list.hpp"

namespace corio {

// get_nowait() on an empty queue.
class QueueEmpty : public std::runtime_error {
 public:
  QueueEmpty() : std::runtime_error("Queue.get_nowait(): the queue is empty") {}
};

// put_nowait() on a full queue.
class QueueFull : public std::runtime_error {
 public:
  QueueFull() : std::runtime_error("Queue.put_nowait(): the queue is full") {}
};

// put() after shutdown(), or get() on a queue that is shut down and empty.
class QueueShutDown : public std::runtime_error {
 public:
  QueueShutDown() : std::runtime_error("the queue is shut down") {}
};

namespace detail {

// Storage policies: push(T&&), pop() -> T, size(), clear().
template <class T>
class FifoStore {
 public:
  void push(T&& v) { q_.push_back(std::move(v)); }
  T pop() {
    T v = std::move(q_.front());
    q_.pop_front();
    return v;
  }
  std::size_t size() const noexcept { return q_.size(); }
  void clear() noexcept { q_.clear(); }

 private:
  std::deque<T> q_;
};

template <class T>
class LifoStore {
 public:
  void push(T&& v) { v_.push_back(std::move(v)); }
  T pop() {
    T v = std::move(v_.back());
    v_.pop_back();
    return v;
  }
  std::size_t size() const noexcept { return v_.size(); }
  void clear() noexcept { v_.clear(); }

 private:
  std::vector<T> v_;
};

// Smallest first under Compare (heapq's order for std::less).
template <class T, class Compare>
class HeapStore {
 public:
  void push(T&& v) {
    v_.push_back(std::move(v));
    std::push_heap(v_.begin(), v_.end(), Greater{cmp_});
  }
  T pop() {
    std::pop_heap(v_.begin(), v_.end(), Greater{cmp_});
    T v = std::move(v_.back());
    v_.pop_back();
    return v;
  }
  std::size_t size() const noexcept { return v_.size(); }
  void clear() noexcept { v_.clear(); }

 private:
  // std's heap functions keep the largest on top; invert to keep the smallest.
  struct Greater {
    Compare& cmp;
    bool operator()(const T& a, const T& b) const { return cmp(b, a); }
  };
  std::vector<T> v_;
  Compare cmp_;
};

}  // namespace detail

template <class T, class Store = detail::FifoStore<T>>
class Queue {
 public:
  explicit Queue(std::size_t maxsize = 0) : maxsize_(maxsize) { finished_.set(); }
  Queue(const Queue&) = delete;
  Queue& operator=(const Queue&) = delete;

  // Common to the put and get awaiters: a queued wait that ends in a grant
  // (a reserved slot or item), a shutdown, or a cancellation.
  class WaiterBase : public detail::WaitNode, public CancelHook {
   public:
    WaiterBase(const WaiterBase&) = delete;
    bool on_cancel(TaskBase&) noexcept override {
      // Only a waiting node has the hook (wake() on a grant clears it).
      if (linked()) waiting_list().remove(*this);
      cancelled_ = true;
      task_->wake();
      return true;
    }

   protected:
    friend class Queue;
    enum class Outcome : unsigned char { none, granted, shut_down, taken };

    WaiterBase(Queue& q, bool putter) noexcept : q_(&q), putter_(putter) {}
    // Movable until awaited (see ParkAwaiter), never after.
    WaiterBase(WaiterBase&& o) noexcept : detail::WaitNode(), CancelHook(), q_(o.q_), putter_(o.putter_) {}
    ~WaiterBase() {
      // Only at loop teardown can a frame die while waiting or granted; just
      // unlink (waking anyone is unsafe while frames die). Unlinking a grant
      // gives its reservation back.
      if (linked()) (outcome_ == Outcome::granted ? granted_list() : waiting_list()).remove(*this);
    }

    detail::WaitList<WaiterBase>& waiting_list() noexcept { return putter_ ? q_->putters_ : q_->getters_; }
    detail::WaitList<WaiterBase>& granted_list() noexcept {
      return putter_ ? q_->granted_putters_ : q_->granted_getters_;
    }
    // Resumed after a grant: the reservation becomes this task's to use or
    // give back.
    void take_grant() noexcept {
      outcome_ = Outcome::taken;
      granted_list().remove(*this);
    }
    // The outcomes that carry nothing: a cancel while queued, or a shutdown
    // (a cancel arriving after the shutdown woke the task wins, as in asyncio).
    void check_woken() const {
      if (cancelled_) task_->throw_cancelled();
      if (outcome_ == Outcome::shut_down) {
        if (task_->take_pending_cancel()) task_->throw_cancelled();
        throw QueueShutDown();
      }
    }
    bool begin_wait(std::coroutine_handle<> h, const char* what) {
      task_ = &TaskBase::current_checked(what);
      if (task_->take_pending_cancel()) {
        cancelled_ = true;
        return false;
      }
      waiting_list().push_back(*this);
      task_->suspend(h, this);
      return true;
    }

    Queue* q_;
    TaskBase* task_ = nullptr;
    Outcome outcome_ = Outcome::none;
    bool putter_;
    bool cancelled_ = false;
  };

  class [[nodiscard]] PutAwaiter final : public WaiterBase {
    using Outcome = typename WaiterBase::Outcome;

   public:
    PutAwaiter(Queue& q, T&& item) : WaiterBase(q, true), item_(std::move(item)) {}
    PutAwaiter(PutAwaiter&& o) noexcept(std::is_nothrow_move_constructible_v<T>)
        : WaiterBase(std::move(o)), item_(std::move(o.item_)) {}

    // Without suspending when there is room, or when shut down (then throws).
    bool await_ready() const noexcept { return this->q_->shutdown_ || !this->q_->full(); }
    bool await_suspend(std::coroutine_handle<> h) { return this->begin_wait(h, "Queue.put()"); }
    void await_resume() {
      Queue& q = *this->q_;
      this->check_woken();
      if (this->outcome_ == Outcome::granted) {
        this->take_grant();
        if (this->task_->take_pending_cancel()) {
          q.wake_putters();  // the slot goes to the next putter
          this->task_->throw_cancelled();
        }
      }
      q.put_nowait(std::move(item_));  // throws QueueShutDown after shutdown()
    }

   private:
    T item_;
  };

  class [[nodiscard]] GetAwaiter final : public WaiterBase {
    using Outcome = typename WaiterBase::Outcome;

   public:
    explicit GetAwaiter(Queue& q) noexcept : WaiterBase(q, false) {}
    GetAwaiter(GetAwaiter&& o) noexcept : WaiterBase(std::move(o)) {}

    // Without suspending when an item is free, or when shut down (then it
    // returns an item left in the queue, or throws).
    bool await_ready() const noexcept { return this->q_->shutdown_ || !this->q_->empty(); }
    bool await_suspend(std::coroutine_handle<> h) { return this->begin_wait(h, "Queue.get()"); }
    T await_resume() {
      Queue& q = *this->q_;
      this->check_woken();
      if (this->outcome_ == Outcome::granted) {
        this->take_grant();
        if (this->task_->take_pending_cancel()) {
          q.wake_getters();  // the item stays queued for the next getter
          this->task_->throw_cancelled();
        }
      }
      return q.get_nowait();
    }
  };

  // ---- the asyncio Queue API ----------------------------------------------

  // Items that a get() could take now (items promised to getters that were
  // woken but have not resumed yet are not counted).
  std::size_t qsize() const noexcept { return store_.size() - granted_getters_.size(); }
  std::size_t maxsize() const noexcept { return maxsize_; }
  bool empty() const noexcept { return qsize() == 0; }
  // True if put_nowait() would throw QueueFull. Never true when maxsize is 0.
  bool full() const noexcept { return maxsize_ > 0 && store_.size() + granted_putters_.size() >= maxsize_; }

  // Put `item`, waiting while the queue is full; waiting putters are served
  // in FIFO order. Throws QueueShutDown once shutdown() was called (also to
  // putters waiting at that moment). Any number of tasks may put concurrently.
  // Cancellation: a waiting putter leaves the queue without inserting and
  // throws CancelledError; one cancelled after a slot was reserved for it,
  // but before it resumed, inserts nothing either and passes the slot on.
  PutAwaiter put(T item) { return PutAwaiter(*this, std::move(item)); }

  // Remove and return an item, waiting while the queue is empty; waiting
  // getters are served in FIFO order. After shutdown(): returns the items
  // still queued, then throws QueueShutDown (at once after immediate
  // shutdown, also to getters waiting at that moment). Any number of tasks
  // may get concurrently.
  // Cancellation: a waiting getter leaves the queue and throws
  // CancelledError; one cancelled after an item was reserved for it, but
  // before it resumed, takes nothing: the item stays in the queue, in order,
  // for the next getter. No item is ever lost to a cancelled get().
  GetAwaiter get() noexcept { return GetAwaiter(*this); }

  // Throws QueueShutDown after shutdown(), QueueFull if full().
  void put_nowait(T item) {
    if (shutdown_) throw QueueShutDown();
    if (full()) throw QueueFull();
    store_.push(std::move(item));
    ++unfinished_;
    finished_.clear();
    wake_getters();
  }

  // Throws QueueShutDown if empty() after shutdown(), else QueueEmpty if empty().
  T get_nowait() {
    if (empty()) {
      if (shutdown_) throw QueueShutDown();
      throw QueueEmpty();
    }
    T item = store_.pop();
    wake_putters();
    return item;
  }

  // A consumer finished processing an item it got. Throws ValueError if
  // called more times than items were put.
  void task_done() {
    if (unfinished_ == 0) throw ValueError("Queue.task_done() called too many times");
    if (--unfinished_ == 0) finished_.set();
  }

  // Wait until every item put has been marked task_done() (returns at once
  // if so). Any number of tasks may join.
  // Cancellation: the joiner stops waiting and throws CancelledError; the
  // queue is unaffected.
  detail::ParkAwaiter join() noexcept { return finished_.wait(); }

  // Python 3.13's shutdown: put() and put_nowait() throw QueueShutDown from
  // now on, waiting putters included; get() drains what is left, then throws
  // QueueShutDown. immediate=true also drops every queued item (counting each
  // as task_done(), which may release join()) and makes get() throw at once,
  // waiting getters included. May be called again (e.g. to go immediate).
  void shutdown(bool immediate = false) {
    shutdown_ = true;
    if (immediate) {
      // Each dropped item counts as done (never below zero: task_done() may
      // have been called ahead of the matching get()).
      unfinished_ -= std::min(unfinished_, store_.size());
      store_.clear();
      // Getters already woken for an item get QueueShutDown instead; they are
      // queued to run, so they are not woken again.
      while (WaiterBase* w = granted_getters_.pop_front()) w->outcome_ = WaiterBase::Outcome::shut_down;
      if (unfinished_ == 0) finished_.set();
    }
    // Putters already woken for a slot find the queue shut down when they
    // resume (put_nowait throws) and give the slot back then.
    while (WaiterBase* w = getters_.pop_front()) wake(*w, WaiterBase::Outcome::shut_down);
    while (WaiterBase* w = putters_.pop_front()) wake(*w, WaiterBase::Outcome::shut_down);
  }

  // Waiting tasks (for tests and debugging).
  std::size_t n_getters() const noexcept { return getters_.size(); }
  std::size_t n_putters() const noexcept { return putters_.size(); }

 private:
  static void wake(WaiterBase& w, typename WaiterBase::Outcome o) noexcept {
    w.outcome_ = o;
    w.task_->wake();
  }

  // Reserve free items for waiting getters, first come first served.
  void wake_getters() noexcept {
    while (qsize() > 0 && !getters_.empty()) {
      WaiterBase* w = getters_.pop_front();
      granted_getters_.push_back(*w);
      wake(*w, WaiterBase::Outcome::granted);
    }
  }

  // Reserve free slots for waiting putters, first come first served.
  void wake_putters() noexcept {
    while (!shutdown_ && !full() && !putters_.empty()) {
      WaiterBase* w = putters_.pop_front();
      granted_putters_.push_back(*w);
      wake(*w, WaiterBase::Outcome::granted);
    }
  }

  Store store_;
  detail::WaitList<WaiterBase> getters_;
  detail::WaitList<WaiterBase> putters_;
  detail::WaitList<WaiterBase> granted_getters_;  // each holds one item in reserve
  detail::WaitList<WaiterBase> granted_putters_;  // each holds one slot in reserve
  Event finished_;
  std::size_t maxsize_;
  std::size_t unfinished_ = 0;
  bool shutdown_ = false;
};

// Retrieves the smallest item first (under Compare), like asyncio's
// PriorityQueue over heapq; put (priority, value) pairs for priorities.
template <class T, class Compare = std::less<T>>
class PriorityQueue : public Queue<T, detail::HeapStore<T, Compare>> {
 public:
  using Queue<T, detail::HeapStore<T, Compare>>::Queue;
};

// Retrieves the most recently added item first.
template <class T>
class LifoQueue : public Queue<T, detail::LifoStore<T>> {
 public:
  using Queue<T, detail::LifoStore<T>>::Queue;
};

}  // namespace corio
