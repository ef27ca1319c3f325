#pragma once
// The abstract scheduler that coro/ is written against: "resume this soon" and
// "wake me at time t". loop/EventLoop implements it; coro/ tests may use a fake.
// Nothing in coro/ makes a syscall or knows about file descriptors.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <string_view>

namespace corio {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using Duration = Clock::duration;

class TaskBase;
class CancelHook;

namespace detail {

// Something the scheduler runs from its ready queue. The queue is intrusive
// (no allocation per post); an item is in at most one queue at a time, which
// each poster guarantees (a task is woken by exactly one event per suspension).
struct Runnable {
  // The ready queue's link, meaningful only while the item is queued. A
  // TaskBase keeps its CancelHook in the same word (TaskBase::hook()): a task
  // has a hook only while suspended, and is queued only once woken, which
  // clears the hook first — so the two are never needed at once, and a task
  // record (one per connection in a server) is a word smaller.
  union {
    Runnable* next_ready_ = nullptr;
    CancelHook* task_hook_;
  };
  virtual void run() noexcept = 0;
  // The scheduler is closing and will never run this entry: drop what the
  // queue held (a callback's reference). Tasks are torn down separately.
  virtual void discard() noexcept {}

 protected:
  ~Runnable() = default;
};

// A timer entry owned by whoever arms it (a sleep awaiter in a coroutine frame,
// a call_later handle). The scheduler keeps a pointer while it is armed; the
// owner must disarm it (cancel_timer) before it dies.
struct TimerNode {
  static constexpr std::size_t kNotArmed = static_cast<std::size_t>(-1);
  TimePoint deadline{};
  std::uint64_t seq = 0;  // assigned when armed: equal deadlines fire in FIFO order
  std::size_t heap_index = kNotArmed;
  void (*fire)(TimerNode*) noexcept = nullptr;  // runs on the loop thread when due
  void* ctx = nullptr;                           // for fire()
  bool armed() const noexcept { return heap_index != kNotArmed; }
};

}  // namespace detail

namespace detail {
// now + d without overflow: a huge or infinite delay (Duration::max(),
// hours::max(), duration<double>(inf), NaN) saturates at TimePoint::max() and
// never expires, as asyncio's call_later(math.inf) never fires; a hugely
// negative one is simply `now` (already due). A plain now + ceil<Duration>(d)
// overflows there and lands in the past (or, far enough, confuses the loop's
// wait computation).
// A Duration already: one integer compare (EventLoop::call_later's too). A
// negative d cannot wrap below TimePoint::min(), the loop's `now` being positive.
inline TimePoint deadline_after(TimePoint now, Duration d) noexcept {
  return d > TimePoint::max() - now ? TimePoint::max() : now + d;
}
template <class Rep, class Period>
TimePoint deadline_after(TimePoint now, std::chrono::duration<Rep, Period> d) noexcept {
  using Wide = std::chrono::duration<long double, Duration::period>;
  const Wide at = Wide(now.time_since_epoch()) + Wide(d);
  if (!(at < Wide(Duration::max()))) return TimePoint::max();
  if (!(at > Wide(Duration::min()))) return now;
  return now + std::chrono::ceil<Duration>(d);
}
// d as a Duration, rounded up, saturating at Duration::max() (hours::max()
// or an infinite double would overflow ceil<Duration>); negative ones at 0.
template <class Rep, class Period>
Duration saturated_duration(std::chrono::duration<Rep, Period> d) noexcept {
  using Wide = std::chrono::duration<long double, Duration::period>;
  if (!(Wide(d) < Wide(Duration::max()))) return Duration::max();
  if (!(Wide(d) > Wide(0))) return Duration::zero();
  return std::chrono::ceil<Duration>(d);
}
}  // namespace detail

class Scheduler {
 public:
  // Append r to the ready queue; it runs in a later step of the loop, in FIFO order.
  virtual void post(detail::Runnable& r) noexcept = 0;
  // Arm t for t.deadline. Its fire() is called from the loop once the deadline passed.
  virtual void add_timer(detail::TimerNode& t) = 0;
  // Disarm t if armed; a no-op otherwise.
  virtual void cancel_timer(detail::TimerNode& t) noexcept = 0;
  // While timers fire: whether r was posted by one that fired before, in
  // this same turn (rather than queued earlier: by I/O or a previous step).
  // Timeout uses it to order its expiry as asyncio does.
  virtual bool posted_by_timers(const detail::Runnable& r) const noexcept {
    (void)r;
    return false;
  }
  // The loop's clock, read fresh: deadlines computed as now() + d must not be
  // early when the current iteration has already run for a while.
  virtual TimePoint now() const noexcept = 0;
  // An exception nobody will ever see (a task's unretrieved failure, a throwing
  // callback). Default handler prints it to stderr; never terminates.
  virtual void report_exception(std::exception_ptr e, std::string_view context) noexcept = 0;
  // A diagnostic (debug mode: slow steps, never-awaited coroutines). Never throws.
  virtual void report_warning(std::string_view msg) noexcept = 0;
  // Task registry (all_tasks(), shutdown): tasks link themselves in and out.
  virtual void task_started(TaskBase& t) noexcept = 0;
  virtual void task_finished(TaskBase& t) noexcept = 0;
  virtual bool debug() const noexcept { return false; }

  // The scheduler running on this thread, or nullptr.
  static Scheduler* current() noexcept { return tls_current_; }

 protected:
  ~Scheduler() = default;
  static void set_current(Scheduler* s) noexcept { tls_current_ = s; }

 private:
  // initial-exec: read by every create_task; see detail::tls_next_resume.
  static inline thread_local Scheduler* tls_current_ [[gnu::tls_model("initial-exec")]] = nullptr;
};

// The running scheduler; throws NoRunningLoopError when there is none.
Scheduler& current_scheduler();

}  // namespace corio
