#pragma once
// futures::Future<T>: a thread-safe future, Python's concurrent.futures.Future.
//
//   corio::ThreadPoolExecutor pool(4);
//   corio::futures::Future<int> f = pool.submit(compute, 42);
//   int v = f.result();                    // blocks; rethrows compute's exception
//   f.result(std::chrono::seconds(1));     // TimeoutError if not done by then
//
// Any thread may call any member; copies share one state (a reference count).
// It lives in corio::futures, beside wait() and as_completed() for plain
// threads, so that it does not clash with the task-side names in coro/.
// From a task, await it with corio::wrap_future(f) (loop/to_thread.hpp);
// never block the loop thread in result().
//
// States: pending -> running -> finished (a value or an exception), or
// pending -> cancelled. cancel() succeeds only while pending (a call that
// started cannot be stopped: threads cannot be killed). Done callbacks run
// once, in the thread that completed the future (or at once in the caller's
// thread if it is already done); an exception they throw is printed and
// dropped.
#include <atomic>
#include <chrono>
#include <cstddef>
#include <iterator>
#include <unordered_map>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "coro/errors.hpp"
#include "coro/scheduler.hpp"

namespace corio {

namespace futures {
template <class T>
class Future;
}  // namespace futures

namespace detail {

class FutureStateBase;

// Told once when a future becomes done (finished or cancelled). Runs under the
// future's mutex, in the completing thread: it must only record and signal
// (never block, never call back into the future). Used by futures::wait,
// as_completed and the task-side awaiter.
class FutureObserver {
 public:
  virtual void on_future_done(FutureStateBase& s) noexcept = 0;

 protected:
  ~FutureObserver() = default;

 private:
  friend class FutureStateBase;
  FutureObserver* next_ = nullptr;
  FutureObserver* prev_ = nullptr;
  bool linked_ = false;
};

// The shared state behind futures::Future<T>.
//
// Invariants:
// - status_ changes only under mu_; it is atomic so that done() needs no lock.
// - The value/exception is written before status_ becomes finished (the
//   writer is the only one while running, or holds mu_), and read only after.
// - Observers and callbacks are taken out exactly once, when the state
//   becomes done; nothing is added after that (add_* reports "already done").
class FutureStateBase {
 public:
  enum class Status : std::uint8_t { pending, running, finished, cancelled };

  FutureStateBase(const FutureStateBase&) = delete;
  FutureStateBase& operator=(const FutureStateBase&) = delete;

  void add_ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  Status status() const noexcept { return status_.load(std::memory_order_acquire); }
  bool done() const noexcept {
    Status s = status();
    return s == Status::finished || s == Status::cancelled;
  }

  // pending -> cancelled. True if cancelled now or before; false once running
  // or finished.
  bool cancel(std::string msg = {});
  // pending -> running (concurrent.futures' set_running_or_notify_cancel):
  // false if it was cancelled.
  bool set_running() noexcept;
  // Store an exception and finish; false if already done (it is dropped).
  bool set_exception(std::exception_ptr e) noexcept;
  // Finish as cancelled even if running (the producer gave up, e.g. its loop
  // closed). False if already done.
  bool set_cancelled(std::string msg) noexcept;
  // Ask a running call to stop, if it takes a std::stop_token. False otherwise.
  virtual bool request_stop() noexcept { return false; }

  void wait() const;
  bool wait_until(TimePoint deadline) const;  // true if done

  // Throws CancelledError if cancelled, TimeoutError if not done by deadline.
  std::exception_ptr exception_until(std::optional<TimePoint> deadline) const;
  // Rethrows the exception, CancelledError or TimeoutError; returns if finished with a value.
  void check_until(std::optional<TimePoint> deadline) const;

  // False (and nothing registered) if already done.
  bool add_observer(FutureObserver& o);
  // True if o was still registered (so it has not been and will not be told).
  bool remove_observer(FutureObserver& o);
  // Runs cb now in this thread if already done.
  void add_done_callback(std::function<void()> cb);

  const std::string& cancel_message() const noexcept { return cancel_msg_; }
  // Finished by an exception. Only meaningful once done() was seen (or under
  // the state's lock, as in FutureObserver::on_future_done).
  bool failed() const noexcept { return status() == Status::finished && exception_ != nullptr; }

 protected:
  FutureStateBase() = default;
  virtual ~FutureStateBase() = default;
  // A cancel() has just succeeded; mu_ is held (used by
  // run_coroutine_threadsafe to forward the cancel to its task: posting under
  // the lock orders it before the task settles the state).
  virtual void on_cancelled_locked() noexcept {}
  // Sets status s (finished/cancelled) under the held lock, wakes waiters and
  // observers, unlocks, then runs the done callbacks in this thread.
  void complete(std::unique_lock<std::mutex>& lk, Status s) noexcept;
  // running -> finished after the value/exception was stored by the runner.
  void finish_running() noexcept;

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::exception_ptr exception_;

 private:
  std::atomic<int> refs_{1};
  std::atomic<Status> status_{Status::pending};
  std::string cancel_msg_;
  FutureObserver* observers_ = nullptr;
  std::vector<std::function<void()>> callbacks_;
};

template <class T>
class FutureState : public FutureStateBase {
 public:
  using Stored = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

  // Store a value and finish; false if already done (cancelled), value dropped.
  template <class... U>
  bool set_result(U&&... v) {
    std::unique_lock lk(mu_);
    if (status() == Status::finished || status() == Status::cancelled) return false;
    value_.emplace(std::forward<U>(v)...);
    complete(lk, Status::finished);
    return true;
  }

  Stored& value() noexcept { return *value_; }

 protected:
  std::optional<Stored> value_;
};

}  // namespace detail

namespace futures {

template <class T>
class Future {
 public:
  using value_type = T;

  Future() noexcept = default;
  explicit Future(detail::FutureState<T>* s) noexcept : s_(s) {}  // adopts one reference
  Future(const Future& o) noexcept : s_(o.s_) {
    if (s_) s_->add_ref();
  }
  Future(Future&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  Future& operator=(Future o) noexcept {
    std::swap(s_, o.s_);
    return *this;
  }
  ~Future() {
    if (s_) s_->release();
  }

  bool valid() const noexcept { return s_ != nullptr; }
  bool done() const noexcept { return s_->done(); }
  bool running() const noexcept { return s_->status() == detail::FutureStateBase::Status::running; }
  bool cancelled() const noexcept { return s_->status() == detail::FutureStateBase::Status::cancelled; }
  // Cancel unless the call started: true if the future is (now) cancelled.
  bool cancel(std::string msg = {}) const { return s_->cancel(std::move(msg)); }
  // Request a stop of a running call that takes a std::stop_token (beyond
  // concurrent.futures); false if the call does not take one.
  bool request_stop() const noexcept { return s_->request_stop(); }

  // Blocks until done; returns the value (a reference into the shared state,
  // valid while a Future refers to it) or rethrows the call's exception.
  // CancelledError if cancelled.
  decltype(auto) result() const { return result_impl(std::nullopt); }
  // Same, or TimeoutError if not done within `timeout`.
  template <class Rep, class Period>
  decltype(auto) result(std::chrono::duration<Rep, Period> timeout) const {
    return result_impl(detail::deadline_after(Clock::now(), timeout));
  }
  // std::future's spelling of result().
  decltype(auto) get() const { return result(); }
  template <class Rep, class Period>
  decltype(auto) get(std::chrono::duration<Rep, Period> timeout) const {
    return result(timeout);
  }

  // Blocks until done: the call's exception, or nullptr if it returned.
  // CancelledError if cancelled; TimeoutError if the timeout passes first.
  std::exception_ptr exception() const { return s_->exception_until(std::nullopt); }
  template <class Rep, class Period>
  std::exception_ptr exception(std::chrono::duration<Rep, Period> timeout) const {
    return s_->exception_until(detail::deadline_after(Clock::now(), timeout));
  }

  void wait() const { s_->wait(); }
  // True if done within `timeout`.
  template <class Rep, class Period>
  bool wait_for(std::chrono::duration<Rep, Period> timeout) const {
    return s_->wait_until(detail::deadline_after(Clock::now(), timeout));
  }

  // fn(future) runs once when the future is done: in the thread that
  // completes it, or now in this thread if it is done already.
  void add_done_callback(std::function<void(const Future&)> fn) const {
    s_->add_done_callback([self = *this, fn = std::move(fn)] { fn(self); });
  }

  detail::FutureState<T>* state() const noexcept { return s_; }
  friend bool operator==(const Future& a, const Future& b) noexcept { return a.s_ == b.s_; }

 private:
  decltype(auto) result_impl(std::optional<TimePoint> deadline) const {
    s_->check_until(deadline);
    if constexpr (!std::is_void_v<T>) return (s_->value());
  }

  detail::FutureState<T>* s_ = nullptr;
};

// A future already finished with `value` (tests, adapters).
template <class T, class... U>
Future<T> make_ready_future(U&&... value) {
  auto* s = new detail::FutureState<T>;
  s->set_result(std::forward<U>(value)...);
  return Future<T>(s);
}

}  // namespace futures

// ---- waiting on many futures from a plain thread ---------------------------

namespace futures {

// When futures::wait() returns (concurrent.futures' return_when).
enum class ReturnWhen : std::uint8_t {
  FIRST_COMPLETED,  // any future finished or was cancelled
  FIRST_EXCEPTION,  // any future finished by raising; else like ALL_COMPLETED
  ALL_COMPLETED,
};
inline constexpr ReturnWhen FIRST_COMPLETED = ReturnWhen::FIRST_COMPLETED;
inline constexpr ReturnWhen FIRST_EXCEPTION = ReturnWhen::FIRST_EXCEPTION;
inline constexpr ReturnWhen ALL_COMPLETED = ReturnWhen::ALL_COMPLETED;

template <class T>
struct DoneAndNotDone {
  std::vector<Future<T>> done;      // in input order
  std::vector<Future<T>> not_done;  // in input order
};

}  // namespace futures

namespace detail {

// One condition variable for a thread waiting on many futures: an observer
// node per future records, in completion order, which ones became done.
// Lock order: a future's mutex, then this one (observers run under the
// former); this one is never held while taking a future's.
class MultiWaiter {
 public:
  explicit MultiWaiter(const std::vector<FutureStateBase*>& states);  // distinct states
  ~MultiWaiter();
  MultiWaiter(const MultiWaiter&) = delete;
  MultiWaiter& operator=(const MultiWaiter&) = delete;

  // Blocks until `enough(done_count, failed_count)` or the deadline; returns its value.
  template <class Pred>
  bool wait_until(Pred enough, std::optional<TimePoint> deadline) {
    std::unique_lock lk(mu_);
    auto ready = [&] { return enough(done_count_, failed_count_); };
    if (!deadline) {
      cv_.wait(lk, ready);
      return true;
    }
    return cv_.wait_until(lk, *deadline, ready);
  }
  // The next state to complete, in completion order (already-done ones first,
  // in input order); nullptr once every one was taken. TimeoutError at deadline.
  FutureStateBase* next_done(std::optional<TimePoint> deadline);

 private:
  struct Node final : FutureObserver {
    MultiWaiter* waiter = nullptr;
    FutureStateBase* state = nullptr;
    void on_future_done(FutureStateBase& s) noexcept override { waiter->record(s); }
  };
  void record(FutureStateBase& s) noexcept;

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Node> nodes_;  // sized once: observers keep their addresses
  std::vector<FutureStateBase*> finished_;  // reserved for every node: record() never allocates
  std::size_t finished_head_ = 0;
  std::size_t done_count_ = 0;
  std::size_t failed_count_ = 0;
  std::size_t taken_ = 0;
};

template <class T>
std::vector<FutureStateBase*> distinct_states(const std::vector<futures::Future<T>>& fs) {
  std::vector<FutureStateBase*> out;
  out.reserve(fs.size());
  std::unordered_map<FutureStateBase*, bool> seen;
  for (const auto& f : fs) {
    if (!f.valid()) throw InvalidStateError("futures: an empty Future was passed");
    if (seen.emplace(f.state(), true).second) out.push_back(f.state());
  }
  return out;
}

template <class T>
futures::DoneAndNotDone<T> wait_impl(const std::vector<futures::Future<T>>& fs, futures::ReturnWhen when,
                                     std::optional<TimePoint> deadline) {
  std::vector<FutureStateBase*> states = distinct_states(fs);
  {
    MultiWaiter w(states);
    const std::size_t total = states.size();
    w.wait_until(
        [when, total](std::size_t done, std::size_t failed) {
          switch (when) {
            case futures::ReturnWhen::FIRST_COMPLETED:
              return done > 0 || total == 0;
            case futures::ReturnWhen::FIRST_EXCEPTION:
              return failed > 0 || done == total;
            case futures::ReturnWhen::ALL_COMPLETED:
              break;
          }
          return done == total;
        },
        deadline);
  }
  futures::DoneAndNotDone<T> r;
  for (const auto& f : fs) (f.done() ? r.done : r.not_done).push_back(f);
  return r;
}

}  // namespace detail

namespace futures {

// Blocks until `return_when` is met; returns the futures split into done and
// not done (a future that completes meanwhile may be in either list only if it
// completed after the split began). Usable from any thread, no loop needed.
template <class T>
DoneAndNotDone<T> wait(const std::vector<Future<T>>& fs, ReturnWhen return_when = ALL_COMPLETED) {
  return detail::wait_impl(fs, return_when, std::nullopt);
}
// Same, returning when `timeout` passes even if return_when is not met (no exception).
template <class T, class Rep, class Period>
DoneAndNotDone<T> wait(const std::vector<Future<T>>& fs, ReturnWhen return_when,
                       std::chrono::duration<Rep, Period> timeout) {
  return detail::wait_impl(fs, return_when, detail::deadline_after(Clock::now(), timeout));
}

// The futures in the order they complete (those already done first, in input
// order; duplicates once), for a plain thread:
//
//   for (auto f : corio::futures::as_completed(fs)) use(f.result());
//
// With a timeout, advancing past the deadline throws TimeoutError. The object
// stays registered on every future until it is destroyed.
template <class T>
class AsCompleted {
 public:
  AsCompleted(std::vector<Future<T>> fs, std::optional<TimePoint> deadline)
      : futures_(std::move(fs)), waiter_(detail::distinct_states(futures_)), deadline_(deadline) {
    for (const auto& f : futures_) index_.emplace(f.state(), &f);
  }
  AsCompleted(const AsCompleted&) = delete;
  AsCompleted& operator=(const AsCompleted&) = delete;

  // The next completed future; std::nullopt after the last.
  std::optional<Future<T>> next() {
    detail::FutureStateBase* s = waiter_.next_done(deadline_);
    if (!s) return std::nullopt;
    return *index_.at(s);
  }

  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = Future<T>;
    using difference_type = std::ptrdiff_t;
    using pointer = const Future<T>*;
    using reference = const Future<T>&;
    iterator() = default;
    explicit iterator(AsCompleted* owner) : owner_(owner) { ++*this; }
    reference operator*() const { return *cur_; }
    pointer operator->() const { return &*cur_; }
    iterator& operator++() {
      cur_ = owner_->next();
      if (!cur_) owner_ = nullptr;
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& a, const iterator& b) noexcept { return a.owner_ == b.owner_; }

   private:
    AsCompleted* owner_ = nullptr;
    std::optional<Future<T>> cur_;
  };
  // Starting the iteration blocks for the first completed future.
  iterator begin() { return iterator(this); }
  iterator end() { return iterator(); }

 private:
  std::vector<Future<T>> futures_;
  detail::MultiWaiter waiter_;
  std::optional<TimePoint> deadline_;
  std::unordered_map<detail::FutureStateBase*, const Future<T>*> index_;
};

template <class T>
AsCompleted<T> as_completed(std::vector<Future<T>> fs) {
  return AsCompleted<T>(std::move(fs), std::nullopt);
}
template <class T, class Rep, class Period>
AsCompleted<T> as_completed(std::vector<Future<T>> fs, std::chrono::duration<Rep, Period> timeout) {
  return AsCompleted<T>(std::move(fs), detail::deadline_after(Clock::now(), timeout));
}

}  // namespace futures

}  // namespace corio
