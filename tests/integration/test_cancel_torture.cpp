// Cancellation torture: 100,000 tasks doing random sleeps, queue operations
// (with timeouts) and lock/semaphore acquisitions, cancelled at random points.
// Afterwards every lock is released, the semaphore is whole, no waiter is
// left behind, and the queue's books balance: every item put was either got
// or is still in the queue. Under ASan/LSan this also proves no frame leaks
// and nothing is touched after it is freed.
#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "corio/corio.hpp"
#include "tests/support.hpp"

using namespace corio;
using namespace std::chrono_literals;

namespace {

struct World {
  Lock lock;
  Semaphore sem{8};
  Queue<std::int64_t> queue{64};
  int in_lock = 0;
  int in_sem = 0;
  int max_in_lock = 0;
  int max_in_sem = 0;
  std::int64_t put_sum = 0;  // items that made it into the queue
  std::int64_t got_sum = 0;  // items that came out of it
  std::int64_t puts = 0, gets = 0, timeouts = 0, cancelled = 0, finished = 0;
};

// Counts holders of a resource; RAII so that a cancel inside the critical
// section still leaves the count right.
struct Holding {
  int& n;
  Holding(int& count, int& max) : n(count) {
    if (++n > max) max = n;
  }
  ~Holding() { --n; }
};

Task<void> put_one(World& w, std::int64_t v) {
  co_await w.queue.put(v);
  w.put_sum += v;  // counted only once the put returned: a cancelled put inserts nothing
  ++w.puts;
}

Task<void> get_one(World& w) {
  std::int64_t v = co_await w.queue.get();
  w.got_sum += v;
  ++w.gets;
}

Task<void> worker(World& w, std::uint32_t seed) {
  std::mt19937 rng(seed);
  try {
    int steps = 2 + static_cast<int>(rng() % 5);
    for (int s = 0; s < steps; ++s) {
      switch (rng() % 5) {
        case 0:
          co_await sleep(std::chrono::microseconds(rng() % 2000));
          break;
        case 1: {
          auto g = co_await w.lock.scoped();
          Holding h(w.in_lock, w.max_in_lock);
          co_await sleep(0s);  // hold it across a suspension: cancels land here too
          break;
        }
        case 2: {
          auto g = co_await w.sem.scoped();
          Holding h(w.in_sem, w.max_in_sem);
          co_await sleep(std::chrono::microseconds(rng() % 200));
          break;
        }
        case 3:
          try {
            co_await wait_for(put_one(w, 1 + static_cast<std::int64_t>(rng() % 1000)), 2ms);
          } catch (const TimeoutError&) {
            ++w.timeouts;
          }
          break;
        default:
          try {
            co_await wait_for(get_one(w), 2ms);
          } catch (const TimeoutError&) {
            ++w.timeouts;
          }
          break;
      }
    }
    ++w.finished;
  } catch (const CancelledError&) {
    ++w.cancelled;
    throw;
  }
}

Task<void> torture(int n_tasks, std::uint32_t seed) {
  World w;
  std::mt19937 rng(seed);
  std::vector<TaskHandle<void>> tasks;
  tasks.reserve(static_cast<std::size_t>(n_tasks));
  for (int i = 0; i < n_tasks; ++i) tasks.push_back(create_task(worker(w, rng())));
  // Cancel about a third of them at random moments while they run.
  for (int round = 0; round < 200; ++round) {
    for (int k = 0; k < n_tasks / 600; ++k) tasks[rng() % tasks.size()].cancel("torture");
    if (round % 4 == 0) co_await sleep(std::chrono::microseconds(rng() % 500));
    else co_await sleep(0s);
  }
  std::int64_t done_ok = 0, done_cancelled = 0;
  for (auto& t : tasks) {
    try {
      co_await t;
      ++done_ok;
    } catch (const CancelledError&) {
      ++done_cancelled;
    }
  }
  // Drain what is left in the queue: the books must balance exactly.
  std::int64_t left = 0;
  while (!w.queue.empty()) left += w.queue.get_nowait();
  MESSAGE(n_tasks << " tasks: " << done_ok << " finished, " << done_cancelled << " cancelled; " << w.puts
                  << " puts, " << w.gets << " gets, " << w.timeouts << " timeouts");
  CHECK(done_ok + done_cancelled == n_tasks);
  CHECK(done_ok == w.finished);
  // Tasks cancelled before their first step never ran, so never counted themselves.
  CHECK(done_cancelled >= w.cancelled);
  CHECK(w.cancelled > 0);
  CHECK(done_cancelled > n_tasks / 20);  // the cancels really landed
  CHECK(w.put_sum == w.got_sum + left);
  CHECK_FALSE(w.lock.locked());
  CHECK(w.lock.n_waiters() == 0);
  CHECK(w.sem.value() == 8);
  CHECK(w.sem.n_waiters() == 0);
  CHECK(w.queue.n_getters() == 0);
  CHECK(w.queue.n_putters() == 0);
  CHECK(w.max_in_lock == 1);
  CHECK(w.max_in_sem <= 8);
  CHECK(w.in_lock == 0);
  CHECK(w.in_sem == 0);
}

}  // namespace

TEST_CASE("100,000 tasks with random sleeps, queue and lock operations and random cancels stay consistent") {
  test::on_each_backend([](EventLoop& loop) {
    loop.run_until_complete(torture(100'000, 20261126));
    CHECK(loop.task_count() == 0);
  });
}
