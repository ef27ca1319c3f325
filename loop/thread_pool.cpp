#include "loop/thread_pool.hpp"

#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <system_error>

namespace corio {

namespace {

void futex_wait(std::atomic<std::uint32_t>* word, std::uint32_t expected) noexcept {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAIT_PRIVATE, expected, nullptr, nullptr, 0);
}

void futex_wake_one(std::atomic<std::uint32_t>* word) noexcept {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
}

}  // namespace

// A worker thread. `word` is its futex: 0 while it sleeps parked, 1 once a
// waker took it off the parked list (the waker's store is the only wake-up;
// spurious returns from FUTEX_WAIT re-check it).
struct ThreadPoolExecutor::Worker {
  std::thread thread;
  std::atomic<std::uint32_t> word{0};
  Worker* next_parked = nullptr;
  std::size_t index = 0;
};

std::size_t ThreadPoolExecutor::default_max_workers() noexcept {
  unsigned n = std::thread::hardware_concurrency();
  if (n == 0) n = 1;
  return std::min<std::size_t>(32, n + 4);
}

ThreadPoolExecutor::ThreadPoolExecutor(std::size_t max_workers, std::string thread_name_prefix,
                                       WorkerPriority priority)
    : max_workers_(max_workers ? max_workers : default_max_workers()),
      max_spinners_(std::max(1u, std::thread::hardware_concurrency() / 2)),
      prefix_(thread_name_prefix.empty() ? "corio-pool" : std::move(thread_name_prefix)),
      priority_(priority) {}

ThreadPoolExecutor::~ThreadPoolExecutor() { shutdown(/*wait=*/true); }

std::size_t ThreadPoolExecutor::thread_count() const {
  std::lock_guard lk(mu_);
  return workers_.size();
}

void ThreadPoolExecutor::submit_item(detail::WorkItem& item) {
  Worker* wake = nullptr;
  {
    std::lock_guard lk(mu_);
    if (shutdown_.load(std::memory_order_relaxed)) {
      throw InvalidStateError("ThreadPoolExecutor: cannot schedule new work after shutdown");
    }
    item.next_work_ = nullptr;
    if (tail_) tail_->next_work_ = &item;
    else head_ = &item;
    tail_ = &item;
    queued_.fetch_add(1, std::memory_order_seq_cst);
    // A searching worker will take it: no wake-up. Otherwise start one
    // searcher (wake a parked worker, else a new thread); when it finds
    // work it starts the next one if more is queued (worker_main). So a
    // burst of submissions costs the submitting (loop) thread one wake-up.
    if (searching_ == 0) {
      try {
        wake = start_searcher_locked();
      } catch (...) {
        if (workers_.empty()) {  // nobody would ever run it: take it back
          head_ = tail_ = nullptr;
          queued_.store(0, std::memory_order_relaxed);
          throw;
        }
        // The running workers will get to it.
      }
    }
  }
  if (wake) unpark(*wake);
}

ThreadPoolExecutor::Worker* ThreadPoolExecutor::start_searcher_locked() {
  if (Worker* w = parked_) {
    parked_ = w->next_parked;
    ++searching_;  // counted for it from now: no second wake-up meanwhile
    return w;
  }
  // No new threads once shut down: the ones there drain the queue.
  if (workers_.size() < max_workers_ && !shutdown_.load(std::memory_order_relaxed)) {
    spawn_locked();
    ++searching_;
  }
  return nullptr;
}

void ThreadPoolExecutor::unpark(Worker& w) noexcept {
  w.word.store(1, std::memory_order_release);
  futex_wake_one(&w.word);
}

void ThreadPoolExecutor::spawn_locked() {
  auto w = std::make_unique<Worker>();
  w->index = workers_.size();
  Worker* raw = w.get();
  workers_.push_back(std::move(w));
  // Block every signal before the thread exists, so it inherits the mask
  // from its first instruction: signals must reach the loop's thread.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  try {
    raw->thread = std::thread([this, raw] { worker_main(*raw); });
  } catch (...) {
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    workers_.pop_back();
    throw;
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

// A worker is running an item, searching (counted in searching_: spinning,
// or just woken/started), or parked on its futex. searching_ changes only
// under mu_, so a submitter that sees a searcher (and skips the wake-up)
// knows it will look at the queue again under the lock before it parks.
void ThreadPoolExecutor::worker_main(Worker& w) noexcept {
  {
    std::string name = prefix_ + "_" + std::to_string(w.index);
    if (name.size() > 15) name = name.substr(name.size() - 15);
    pthread_setname_np(pthread_self(), name.c_str());
  }
  if (priority_ == WorkerPriority::background) {
    // Unprivileged and always allowed (lowering one's own priority); should
    // it fail, the thread simply stays normal.
    sched_param sp{};
    pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
  }
  std::unique_lock lk(mu_);
  bool searching = true;  // whoever started us counted us
  for (;;) {
    if (detail::WorkItem* item = head_) {
      head_ = item->next_work_;
      if (!head_) tail_ = nullptr;
      queued_.fetch_sub(1, std::memory_order_seq_cst);
      Worker* wake = nullptr;
      if (searching) {
        searching = false;
        // The last searcher found work: if more is queued, start another.
        if (--searching_ == 0 && head_) {
          try {
            wake = start_searcher_locked();
          } catch (...) {  // no thread: the busy workers will get to it
          }
        }
      }
      ++busy_;
      lk.unlock();
      if (wake) unpark(*wake);
      item->run_on_worker();
      lk.lock();
      if (--busy_ == 0 && shutdown_.load(std::memory_order_relaxed)) exited_cv_.notify_all();
      continue;
    }
    if (shutdown_.load(std::memory_order_relaxed)) break;
    // Idle. Spin a few microseconds for new work (at most max_spinners_ at
    // once, so idle workers do not take the CPU from the loop), then park.
    long spin_ns = spin_ns_.load(std::memory_order_relaxed);
    if (!searching && spin_ns > 0 && searching_ < max_spinners_) {
      searching = true;
      ++searching_;
    }
    if (searching && spin_ns > 0) {
      lk.unlock();
      detail::spin_until(std::chrono::nanoseconds(spin_ns), [this] {
        return queued_.load(std::memory_order_relaxed) > 0 || shutdown_.load(std::memory_order_relaxed);
      });
      lk.lock();
      if (head_ || shutdown_.load(std::memory_order_relaxed)) continue;
    }
    if (searching) {
      searching = false;
      --searching_;
    }
    // Park. A submitter that queues after we release the lock sees
    // searching_ without us and takes us off the parked list.
    w.word.store(0, std::memory_order_relaxed);
    w.next_parked = parked_;
    parked_ = &w;
    lk.unlock();
    while (w.word.load(std::memory_order_acquire) == 0) futex_wait(&w.word, 0);
    lk.lock();
    searching = true;  // the waker counted us
  }
  if (searching) --searching_;
  ++exited_;  // under mu_
  exited_cv_.notify_all();
}

bool ThreadPoolExecutor::shutdown_for(std::chrono::nanoseconds grace, bool cancel_futures) {
  shutdown(/*wait=*/false, cancel_futures);
  {
    std::unique_lock lk(mu_);
    // The calls, not the threads: an idle thread still has to wake up and
    // leave, which takes no time worth waiting for but is not done at once
    // (a zero grace counted idle threads as abandoned).
    if (!exited_cv_.wait_for(lk, grace, [this] { return busy_ == 0 && head_ == nullptr; })) return false;
  }
  shutdown(/*wait=*/true, cancel_futures);  // every thread has left worker_main: joins at once
  return true;
}

std::size_t ThreadPoolExecutor::running_threads() const {
  std::lock_guard lk(mu_);
  return workers_.size() - exited_;
}

std::size_t ThreadPoolExecutor::busy_threads() const {
  std::lock_guard lk(mu_);
  return busy_;
}

void ThreadPoolExecutor::shutdown(bool wait, bool cancel_futures) {
  detail::WorkItem* cancelled = nullptr;
  Worker* parked = nullptr;
  {
    std::lock_guard lk(mu_);
    shutdown_.store(true, std::memory_order_release);
    if (cancel_futures) {
      cancelled = head_;
      head_ = tail_ = nullptr;
      queued_.store(0, std::memory_order_relaxed);
    }
    parked = std::exchange(parked_, nullptr);
    for (Worker* w = parked; w; w = w->next_parked) ++searching_;  // each wakes counted, as always
  }
  // Outside the lock: cancelling notifies owners (future callbacks, loop posts).
  while (cancelled) {
    detail::WorkItem* next = cancelled->next_work_;
    cancelled->cancel_on_shutdown();
    cancelled = next;
  }
  while (parked) {
    Worker* next = parked->next_parked;
    unpark(*parked);
    parked = next;
  }
  if (!wait) return;
  // workers_ no longer grows once shutdown_ is set (start_searcher_locked).
  std::lock_guard jl(join_mu_);
  std::vector<Worker*> ws;
  {
    std::lock_guard lk(mu_);
    for (auto& w : workers_) ws.push_back(w.get());
  }
  for (Worker* w : ws) {
    if (w->thread.joinable() && w->thread.get_id() != std::this_thread::get_id()) w->thread.join();
  }
}

}  // namespace corio
