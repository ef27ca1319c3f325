#pragma once
// ThreadPoolExecutor: Python's concurrent.futures.ThreadPoolExecutor.
//
//   corio::ThreadPoolExecutor pool(4);
//   auto f = pool.submit(parse, std::move(text));      // futures::Future<Doc>
//   for (int n : pool.map(square, std::vector{1, 2, 3})) ...   // input order
//   pool.shutdown();                                    // or let the destructor do it
//
// From a task, prefer `co_await corio::to_thread(fn, args...)` or
// `co_await corio::run_in_executor(pool, fn, args...)` (loop/to_thread.hpp):
// they bring the result back through the loop's one cross-thread path
// without blocking it.
//
// Threads and lifetime:
// - Workers start lazily, when work is queued and no idle worker can take it,
//   up to max_workers (default min(32, cores + 4), as in Python). An idle
//   worker spins for a few microseconds before it parks on a futex (at most
//   half the cores spin at once): work that arrives in that window costs no
//   wake-up (a wake costs microseconds here, tens when the other core is
//   halted). A submission wakes a worker only when none is searching, and a
//   woken worker that finds work wakes the next if more is queued, so a
//   burst costs the submitting (loop) thread one wake-up.
// - Workers block every signal, so that signals go to the loop's thread.
// - Non-daemon semantics: the destructor calls shutdown(wait=true), so it runs
//   everything already queued and joins the threads. A call that never
//   returns keeps the destructor (and the process exit) waiting: threads
//   cannot be killed. Do not destroy an executor from one of its own workers.
// - Callables and their arguments are decay-copied (use std::ref to pass by
//   reference), invoked once as rvalues, and destroyed on the worker right
//   after the call. Results are returned by value.
// - A callable invocable as fn(std::stop_token, args...) receives a token;
//   Future::request_stop() (and cancelling a to_thread() awaiter) requests it.
#include <sched.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <iterator>
#include <memory>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "coro/errors.hpp"
#include "loop/future.hpp"

namespace corio {

class ThreadPoolExecutor;

namespace detail {

// One pause/yield instruction for spin-wait loops.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

// Spin until ready() or `budget` passed; returns ready(). Between short
// bursts of polling it yields the CPU: when the thread we wait for shares our
// core (both cores busy), a pure spin would hold the core it needs until the
// budget ran out; on an otherwise idle core sched_yield returns at once.
// Measured here: a round trip between two threads sharing a core took the
// whole budget with pure spinning, ~3.3 us with 8 polls per yield, ~5.6 us
// with 32; across cores it stays ~1 us either way.
template <class Ready>
bool spin_until(std::chrono::nanoseconds budget, Ready ready) {
  const auto until = std::chrono::steady_clock::now() + budget;
  for (;;) {
    for (int i = 0; i < 8; ++i) {  // ~0.5 us of pause instructions
      if (ready()) return true;
      cpu_relax();
    }
    if (std::chrono::steady_clock::now() >= until) return ready();
    sched_yield();
  }
}

// Something a pool thread runs. The pool holds one reference from
// submit_item() until it hands it back through exactly one of the two calls.
class WorkItem {
 public:
  // On a worker: run the call unless it was cancelled while queued.
  virtual void run_on_worker() noexcept = 0;
  // shutdown(cancel_futures=true) while still queued: cancel unless started.
  virtual void cancel_on_shutdown() noexcept = 0;

 protected:
  ~WorkItem() = default;

 private:
  friend class ::corio::ThreadPoolExecutor;
  WorkItem* next_work_ = nullptr;
};

struct NoStopToken {};

// A callable with its decay-copied arguments, invoked once as rvalues.
template <class F, class... Args>
class BoundCall {
 public:
  static constexpr bool takes_stop_token = std::is_invocable_v<F&&, std::stop_token, Args&&...>;
  using raw_result = std::conditional_t<takes_stop_token, std::invoke_result<F&&, std::stop_token, Args&&...>,
                                        std::invoke_result<F&&, Args&&...>>;
  using result_type = std::remove_cvref_t<typename raw_result::type>;
  // Storage for a stop_source only when the callable wants a token.
  using StopSource = std::conditional_t<takes_stop_token, std::stop_source, NoStopToken>;

  template <class G, class... A>
    requires(!std::is_same_v<std::remove_cvref_t<G>, BoundCall>)
  explicit BoundCall(G&& f, A&&... args) : f_(std::forward<G>(f)), args_(std::forward<A>(args)...) {}

  result_type operator()([[maybe_unused]] const StopSource& stop) {
    return std::apply(
        [&](Args&... a) -> result_type {
          if constexpr (takes_stop_token) return std::invoke(std::move(f_), stop.get_token(), std::move(a)...);
          else return std::invoke(std::move(f_), std::move(a)...);
        },
        args_);
  }

 private:
  F f_;
  std::tuple<Args...> args_;
};

template <class F, class... Args>
using bound_call_t = BoundCall<std::decay_t<F>, std::decay_t<Args>...>;

template <class F, class... Args>
using call_result_t = typename bound_call_t<F, Args...>::result_type;

// submit()'s item: a future state that runs its call on a worker.
template <class Call>
class PoolFuture final : public FutureState<typename Call::result_type>, public WorkItem {
  using T = typename Call::result_type;
  using Status = FutureStateBase::Status;

 public:
  explicit PoolFuture(Call&& call) : call_(std::move(call)) {}

  void run_on_worker() noexcept override {
    if (this->set_running()) {
      try {
        if constexpr (std::is_void_v<T>) {
          (*call_)(stop_);
          this->value_.emplace();
        } else {
          this->value_.emplace((*call_)(stop_));
        }
      } catch (...) {
        this->exception_ = std::current_exception();
      }
      call_.reset();  // captures die here, before anyone is told
      this->finish_running();
    }
    this->release();  // the pool's reference
  }
  void cancel_on_shutdown() noexcept override {
    try {
      this->cancel("executor shut down");
    } catch (...) {
    }
    this->release();
  }
  bool request_stop() noexcept override {
    if constexpr (Call::takes_stop_token) return stop_.request_stop();
    return false;
  }

 private:
  std::optional<Call> call_;
  [[no_unique_address]] typename Call::StopSource stop_;
};

}  // namespace detail

namespace futures {

// ThreadPoolExecutor::map()'s result: iterate to get each value in input
// order; iteration blocks for each one and rethrows its exception when its
// turn comes (later results stay available to a new iteration step). With a
// timeout, a value not ready by the deadline (counted from the map() call)
// throws TimeoutError. Destroying it cancels the calls that have not started.
template <class R>
class MapResults {
 public:
  MapResults(std::vector<Future<R>> fs, std::optional<TimePoint> deadline)
      : futures_(std::move(fs)), deadline_(deadline) {}
  MapResults(MapResults&&) noexcept = default;
  MapResults& operator=(MapResults&&) noexcept = default;
  ~MapResults() {
    for (std::size_t i = next_; i < futures_.size(); ++i) futures_[i].cancel();
  }

  std::size_t size() const noexcept { return futures_.size(); }
  const std::vector<Future<R>>& futures() const noexcept { return futures_; }

  // The next value in input order (moved out); std::nullopt after the last.
  std::optional<R> next() {
    if (next_ == futures_.size()) return std::nullopt;
    Future<R>& f = futures_[next_++];
    if (deadline_) return std::move(f.result(*deadline_ - Clock::now()));
    return std::move(f.result());
  }
  // Every value, in input order; rethrows the first error in input order.
  std::vector<R> to_vector() {
    std::vector<R> out;
    out.reserve(futures_.size() - next_);
    while (auto v = next()) out.push_back(std::move(*v));
    return out;
  }

  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = R;
    using difference_type = std::ptrdiff_t;
    using pointer = R*;
    using reference = R&;
    iterator() = default;
    explicit iterator(MapResults* owner) : owner_(owner) { ++*this; }
    R& operator*() { return *cur_; }
    R* operator->() { return &*cur_; }
    iterator& operator++() {
      cur_ = owner_->next();
      if (!cur_) owner_ = nullptr;
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& a, const iterator& b) noexcept { return a.owner_ == b.owner_; }

   private:
    MapResults* owner_ = nullptr;
    std::optional<R> cur_;
  };
  iterator begin() { return iterator(this); }
  iterator end() { return iterator(); }

 private:
  std::vector<Future<R>> futures_;
  std::optional<TimePoint> deadline_;
  std::size_t next_ = 0;
};

}  // namespace futures

// How a pool's threads are scheduled against the event loop's thread.
// - normal: like any thread (asyncio's pools). CPU-bound work on every core
//   can then delay the loop by a scheduler slice: a 10 ms timer fired up to
//   ~4 ms late at p99 here (bench_to_thread timer_under_load).
// - background: SCHED_IDLE. The threads still use every cycle nobody else
//   wants, and a normal thread that wakes (the loop) usually preempts them:
//   the same timer fired within 0.06-3.3 ms at p99 over six runs (the kernel
//   still lets a woken thread that it deems ahead of its share wait for the
//   tick). The price: while other programs keep every core busy, background
//   work waits. Use it for CPU-heavy pools; keep blocking I/O (DNS, files) on
//   a normal pool. For a firm bound, give the loop thread real-time priority
//   instead (LoopOptions::realtime_priority).
enum class WorkerPriority { normal, background };

class ThreadPoolExecutor {
 public:
  // max_workers 0: default_max_workers(). Threads are named
  // "<prefix>_<n>" (truncated to 15 bytes); default prefix "corio-pool".
  explicit ThreadPoolExecutor(std::size_t max_workers = 0, std::string thread_name_prefix = {},
                              WorkerPriority priority = WorkerPriority::normal);
  ~ThreadPoolExecutor();
  ThreadPoolExecutor(const ThreadPoolExecutor&) = delete;
  ThreadPoolExecutor& operator=(const ThreadPoolExecutor&) = delete;

  // min(32, hardware threads + 4), Python's default.
  static std::size_t default_max_workers() noexcept;

  // Schedule fn(args...) (or fn(stop_token, args...)). Throws
  // InvalidStateError after shutdown().
  template <class F, class... Args>
  futures::Future<detail::call_result_t<F, Args...>> submit(F&& fn, Args&&... args) {
    using Call = detail::bound_call_t<F, Args...>;
    auto* item = new detail::PoolFuture<Call>(Call(std::forward<F>(fn), std::forward<Args>(args)...));
    item->add_ref();  // the returned Future's; the pool holds the first
    futures::Future<detail::call_result_t<F, Args...>> f(item);
    try {
      submit_item(*item);
    } catch (...) {
      item->release();  // the pool never took it
      throw;
    }
    return f;
  }

  // fn(x) for every x of `inputs`, all submitted now; values in input order
  // (see MapResults). fn must return a value.
  template <class F, class Range>
  auto map(F&& fn, Range&& inputs) {
    return map_impl(std::forward<F>(fn), std::forward<Range>(inputs), std::nullopt);
  }
  template <class F, class Range, class Rep, class Period>
  auto map(F&& fn, Range&& inputs, std::chrono::duration<Rep, Period> timeout) {
    return map_impl(std::forward<F>(fn), std::forward<Range>(inputs),
                    detail::deadline_after(Clock::now(), timeout));
  }

  // Stop accepting work. cancel_futures: cancel every call still queued.
  // wait: block until every queued call ran and the threads exited. Safe to
  // call again (and from several threads); the destructor calls shutdown(true).
  void shutdown(bool wait = true, bool cancel_futures = false);
  // shutdown(false, cancel_futures), then wait at most `grace` for every
  // call to finish (queued ones too, without cancel_futures). True if they
  // all did: the threads, idle now, are joined (at once: they only have to
  // wake up and leave). False if some still run blocking work. Those cannot
  // be stopped: the executor must then outlive them (corio::run abandons it
  // on purpose, and the process ends them when it exits). Idle threads never
  // count, whatever the grace: a zero grace abandons only busy ones.
  bool shutdown_for(std::chrono::nanoseconds grace, bool cancel_futures = true);
  // Threads started and not yet exited.
  std::size_t running_threads() const;
  // Threads running a call now (what shutdown_for waits for).
  std::size_t busy_threads() const;

  std::size_t max_workers() const noexcept { return max_workers_; }
  WorkerPriority priority() const noexcept { return priority_; }
  // Threads started so far.
  std::size_t thread_count() const;
  // Calls queued, not yet started.
  std::size_t pending() const noexcept { return queued_.load(std::memory_order_relaxed); }
  bool is_shutdown() const noexcept { return shutdown_.load(std::memory_order_acquire); }
  // How long an idle worker spins before it parks (default 10 µs; 0: never spins).
  void set_idle_spin(std::chrono::nanoseconds d) noexcept { spin_ns_.store(d.count(), std::memory_order_relaxed); }

  // For the bridge (to_thread): queue an item; the pool takes one reference.
  // Throws InvalidStateError after shutdown (the item is not taken).
  void submit_item(detail::WorkItem& item);

 private:
  struct Worker;

  template <class F, class Range>
  auto map_impl(F&& fn, Range&& inputs, std::optional<TimePoint> deadline) {
    using Elem = decltype(*std::begin(inputs));
    using R = detail::call_result_t<F&, Elem>;
    static_assert(!std::is_void_v<R>, "ThreadPoolExecutor::map needs a callable that returns a value; use submit()");
    std::vector<futures::Future<R>> fs;
    try {
      for (auto&& x : inputs) fs.push_back(submit(fn, std::forward<decltype(x)>(x)));
    } catch (...) {
      for (auto& f : fs) f.cancel();
      throw;
    }
    return futures::MapResults<R>(std::move(fs), deadline);
  }

  void worker_main(Worker& w) noexcept;
  // mu_ held: wake a parked worker (returned, to unpark outside the lock) or
  // start a thread, counting it as searching. May throw if a thread cannot start.
  Worker* start_searcher_locked();
  void spawn_locked();  // mu_ held
  void unpark(Worker& w) noexcept;

  mutable std::mutex mu_;
  detail::WorkItem* head_ = nullptr;  // FIFO of queued items
  detail::WorkItem* tail_ = nullptr;
  std::atomic<std::size_t> queued_{0};  // items in the FIFO (spinners read it without the lock)
  unsigned searching_ = 0;              // workers spinning, or woken and not yet running an item
  Worker* parked_ = nullptr;            // idle workers asleep on their futex (LIFO: the warmest first)
  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<bool> shutdown_{false};
  std::atomic<long> spin_ns_{10'000};
  std::size_t max_workers_;
  unsigned max_spinners_;  // half the cores, at least one
  std::string prefix_;
  WorkerPriority priority_;
  std::mutex join_mu_;  // serializes joining (shutdown from several threads)
  std::size_t exited_ = 0;  // workers that left worker_main (under mu_)
  std::size_t busy_ = 0;    // workers running a call now (under mu_)
  std::condition_variable exited_cv_;  // exited_ or (after shutdown) busy_ changed
};

}  // namespace corio
