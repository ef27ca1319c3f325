#include "coro/lock.hpp"

#include <doctest/doctest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "coro/event.hpp"
#include "coro/task_handle.hpp"
#include "loop/event_loop.hpp"
#include "tests/coro/sync_support.hpp"
#include "tests/support.hpp"

using namespace corio;
using test::ticks;

namespace {

// Acquire, log, and keep the lock (the test releases it).
Task<void> acquire_and_log(Lock& lock, std::vector<int>& log, int id) {
  co_await lock.acquire();
  log.push_back(id);
}

// Acquire, log, hold until `go` is set, release.
Task<void> hold_until(Lock& lock, std::vector<int>& log, int id, Event& go) {
  auto guard = co_await lock.scoped();
  log.push_back(id);
  co_await go.wait();
}

// Counts the tasks inside a critical section; leaving by exception counts too.
struct Inside {
  int& n;
  explicit Inside(int& count) : n(count) { ++n; }
  ~Inside() { --n; }
};

}  // namespace

TEST_CASE("release of a lock that is not held raises InvalidStateError") {
  Lock lock;
  CHECK_FALSE(lock.locked());
  CHECK_THROWS_WITH_AS(lock.release(), "Lock.release(): the lock is not acquired", InvalidStateError);
  CHECK_FALSE(lock.locked());
}

TEST_CASE("acquire takes a free lock at once and release frees it") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Lock lock;
      co_await lock.acquire();
      CHECK(lock.locked());
      lock.release();
      CHECK_FALSE(lock.locked());
      CHECK_THROWS_AS(lock.release(), InvalidStateError);
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("each release lets exactly one waiter in, in FIFO order") {
  // asyncio test_acquire.
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Lock lock;
      std::vector<int> log;
      co_await lock.acquire();
      auto t1 = create_task(acquire_and_log(lock, log, 1));
      auto t2 = create_task(acquire_and_log(lock, log, 2));
      co_await ticks();
      CHECK(log.empty());
      CHECK(lock.n_waiters() == 2);

      lock.release();
      co_await ticks();
      CHECK(log == std::vector<int>{1});
      co_await ticks();
      CHECK(log == std::vector<int>{1});

      auto t3 = create_task(acquire_and_log(lock, log, 3));
      lock.release();
      co_await ticks();
      CHECK(log == std::vector<int>{1, 2});

      lock.release();
      co_await ticks();
      CHECK(log == std::vector<int>{1, 2, 3});
      CHECK(t1.done());
      CHECK(t2.done());
      CHECK(t3.done());
      CHECK(lock.locked());
      lock.release();
      CHECK_FALSE(lock.locked());
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("under contention the lock goes round-robin: a releasing task cannot re-take it ahead of the queue") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<std::vector<int>> {
      Lock lock;
      std::vector<int> order;
      auto worker = [](Lock& l, std::vector<int>& o, int id) -> Task<void> {
        for (int round = 0; round < 3; ++round) {
          co_await l.acquire();
          o.push_back(id);
          co_await ticks();  // hold across a suspension
          l.release();       // then immediately try again
        }
      };
      std::vector<TaskHandle<void>> ts;
      for (int id = 0; id < 5; ++id) ts.push_back(create_task(worker(lock, order, id)));
      for (auto& t : ts) co_await t;
      CHECK_FALSE(lock.locked());
      CHECK(lock.n_waiters() == 0);
      co_return order;
    };
    CHECK(test::run_bounded(loop, main()) == std::vector<int>{0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1, 2, 3, 4});
  });
}

TEST_CASE("release hands the lock to the first waiter, so a newcomer queues behind it") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Lock lock;
      Event go;
      std::vector<int> log;
      co_await lock.acquire();
      auto t1 = create_task(hold_until(lock, log, 1, go));
      co_await ticks();
      lock.release();
      CHECK(lock.locked());  // held on t1's behalf before t1 even runs
      go.set();
      co_await lock.acquire();  // the newcomer: must wait for t1
      log.push_back(0);
      CHECK(t1.done());
      CHECK(log == std::vector<int>{1, 0});
      lock.release();
    };
    test::run_bounded(loop, main());
  });
}

// CPython 3.11: release(); release() before the woken waiter runs raises
// "RuntimeError: Lock is not acquired." (its lock is free until then).
TEST_CASE("a second release before the waiter it handed the lock to resumes raises, and lets nobody else in") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Lock lock;
      std::vector<int> log;
      co_await lock.acquire();
      auto t1 = create_task(acquire_and_log(lock, log, 1));
      auto t2 = create_task(acquire_and_log(lock, log, 2));
      co_await ticks();
      lock.release();  // handed to t1
      CHECK_THROWS_WITH_AS(
          lock.release(),
          "Lock.release(): the lock is not acquired (released already, and handed to a waiting task)",
          InvalidStateError);
      co_await ticks();
      CHECK(log == std::vector<int>{1});  // t2 still queued: one holder at a time
      CHECK(lock.n_waiters() == 1u);
      lock.release();  // t1's hold, released for it: now t2's
      co_await ticks();
      CHECK(log == std::vector<int>{1, 2});
      lock.release();
      CHECK_FALSE(lock.locked());
      co_await t1;
      co_await t2;
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("a waiter cancelled while queued leaves the queue and the lock stays with its holder") {
  // asyncio test_acquire_cancel.
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Lock lock;
      std::vector<int> log;
      co_await lock.acquire();
      auto t = create_task(acquire_and_log(lock, log, 1));
      co_await ticks();
      CHECK(lock.n_waiters() == 1);
      t.cancel();
      CHECK(lock.n_waiters() == 0);
      CHECK(co_await test::ends_cancelled(t));
      CHECK(lock.locked());
      lock.release();
      CHECK_FALSE(lock.locked());
      CHECK(log.empty());
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("a waiter cancelled after release handed it the lock passes the lock to the next waiter") {
  // asyncio test_finished_waiter_cancelled.
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Lock lock;
      Event go;
      std::vector<int> log;
      co_await lock.acquire();
      auto tb = create_task(hold_until(lock, log, 2, go));
      auto tc = create_task(hold_until(lock, log, 3, go));
      co_await ticks();
      CHECK(lock.n_waiters() == 2);
      lock.release();  // granted to tb, which has not resumed yet
      tb.cancel();
      co_await ticks(2);
      CHECK(tb.cancelled());
      CHECK(lock.locked());
      CHECK(log == std::vector<int>{3});  // tc holds it now
      go.set();
      co_await tc;
      CHECK_FALSE(lock.locked());
      CHECK(lock.n_waiters() == 0);
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("cancel and release in the same step let exactly one other waiter take the lock") {
  // asyncio test_cancel_release_race.
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Lock lock;
      int lock_count = 0;
      int call_count = 0;
      auto lockit = [](Lock& l, int& locks, int& calls) -> Task<void> {
        ++calls;
        co_await l.acquire();
        ++locks;
      };
      co_await lock.acquire();
      auto t1 = create_task(lockit(lock, lock_count, call_count));
      auto t2 = create_task(lockit(lock, lock_count, call_count));
      auto t3 = create_task(lockit(lock, lock_count, call_count));
      co_await ticks();
      t1.cancel();
      lock.release();
      CHECK(co_await test::ends_cancelled(t1));
      co_await ticks();
      CHECK(lock_count == 1);
      CHECK(call_count == 3);
      CHECK(t2.done());
      CHECK_FALSE(t3.done());
      t3.cancel();
      CHECK(co_await test::ends_cancelled(t3));
      CHECK(lock.locked());  // still t2's
      CHECK(lock.n_waiters() == 0);
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("a holder releasing while the first waiter is being cancelled wakes the next waiter") {
  // asyncio test_cancel_race.
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Lock lock;
      Event fa;
      std::vector<int> log;
      auto lockit = [](Lock& l, std::vector<int>& lg, int id, Event* blocker) -> Task<void> {
        auto guard = co_await l.scoped();
        lg.push_back(id);
        if (blocker) co_await blocker->wait();
      };
      auto ta = create_task(lockit(lock, log, 1, &fa));
      co_await ticks();
      CHECK(lock.locked());
      auto tb = create_task(lockit(lock, log, 2, nullptr));
      co_await ticks();
      CHECK(lock.n_waiters() == 1);
      auto tc = create_task(lockit(lock, log, 3, nullptr));
      co_await ticks();
      CHECK(lock.n_waiters() == 2);

      fa.set();
      tb.cancel();
      co_await ticks();
      CHECK(ta.done());
      CHECK(tb.cancelled());
      co_await tc;
      CHECK(log == std::vector<int>{1, 3});
      CHECK_FALSE(lock.locked());
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("scoped() releases at scope exit, on an exception, and early via guard.release()") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Lock lock;
      {
        auto guard = co_await lock.scoped();
        CHECK(guard.owns());
        CHECK(lock.locked());
      }
      CHECK_FALSE(lock.locked());

      auto throws_inside = [](Lock& l) -> Task<void> {
        auto guard = co_await l.scoped();
        throw std::runtime_error("inside");
      };
      CHECK_THROWS_WITH_AS(co_await throws_inside(lock), "inside", std::runtime_error);
      CHECK_FALSE(lock.locked());

      auto guard = co_await lock.scoped();
      guard.release();
      CHECK_FALSE(guard.owns());
      CHECK_FALSE(lock.locked());
      LockGuard<Lock> moved;
      {
        auto g2 = co_await lock.scoped();
        moved = std::move(g2);
      }
      CHECK(lock.locked());  // ownership moved out of the inner scope
      moved = LockGuard<Lock>();
      CHECK_FALSE(lock.locked());
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("cancelling a task that holds the lock through a guard passes the lock on") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Lock lock;
      Event never;
      Event go;
      std::vector<int> log;
      auto holder = create_task(hold_until(lock, log, 1, never));
      co_await ticks();
      auto waiter = create_task(hold_until(lock, log, 2, go));
      co_await ticks();
      holder.cancel();
      CHECK(co_await test::ends_cancelled(holder));
      co_await ticks();
      CHECK(log == std::vector<int>{1, 2});
      CHECK(lock.locked());
      go.set();
      co_await waiter;
      CHECK_FALSE(lock.locked());
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("a pending cancel: a queued acquire throws at once; a free lock is still taken without a suspension") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Lock lock;
      co_await lock.acquire();
      auto blocked = [](Lock& l) -> Task<void> {
        current_task()->cancel();
        co_await l.acquire();
      };
      auto t = create_task(blocked(lock));
      CHECK(co_await test::ends_cancelled(t));
      CHECK(lock.n_waiters() == 0);
      lock.release();

      // asyncio's fast path: acquiring a free lock does not suspend, so the
      // cancel is seen at the next suspension point instead.
      auto fast = [](Lock& l, bool& held) -> Task<void> {
        current_task()->cancel();
        co_await l.acquire();
        held = l.locked();
        try {
          co_await ticks();
        } catch (const CancelledError&) {
          l.release();
          throw;
        }
      };
      bool held = false;
      auto f = create_task(fast(lock, held));
      CHECK(co_await test::ends_cancelled(f));
      CHECK(held);
      CHECK_FALSE(lock.locked());
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("many contending tasks with cancellations never overlap and leave the lock free") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Lock lock;
      int inside = 0;
      int overlaps = 0;
      int entries = 0;
      auto worker = [](Lock& l, int& in, int& over, int& n) -> Task<void> {
        for (int round = 0; round < 4; ++round) {
          auto guard = co_await l.scoped();
          if (in != 0) ++over;
          Inside inside(in);
          ++n;
          co_await ticks(1 + round % 2);
        }
      };
      std::vector<TaskHandle<void>> ts;
      for (int i = 0; i < 20; ++i) ts.push_back(create_task(worker(lock, inside, overlaps, entries)));
      // Cancel every third worker at different moments: queued, granted but
      // not yet resumed, or holding the lock.
      for (int i = 0; i < 20; i += 3) {
        co_await ticks(i % 4);
        ts[i].cancel();
      }
      int cancelled = 0;
      for (auto& t : ts) cancelled += co_await test::ends_cancelled(t) ? 1 : 0;
      CHECK(cancelled == 7);
      CHECK(overlaps == 0);
      CHECK(inside == 0);
      CHECK(entries >= 13 * 4);  // the 13 uncancelled workers finished every round
      CHECK_FALSE(lock.locked());
      CHECK(lock.n_waiters() == 0);
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("loop teardown with tasks queued for and just granted a lock frees every frame safely") {
  // Run under ASan: the lock dies with main's frame before the loop
  // destroys the waiters' frames, which must not touch it.
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Lock lock;
      std::vector<int> log;
      co_await lock.acquire();
      (void)create_task(acquire_and_log(lock, log, 1));
      (void)create_task(acquire_and_log(lock, log, 2));
      co_await ticks();
      CHECK(lock.n_waiters() == 2);
      lock.release();  // granted to the first; neither resumes before teardown
      CHECK(log.empty());
    };
    loop.run_until_complete(main());

    // A holder's guard releases the lock when its frame is destroyed, which
    // hands it to a waiter that is being torn down too.
    auto leave_holder = [](Lock& l, Event& never, std::vector<int>& log) -> Task<void> {
      (void)create_task(hold_until(l, log, 1, never));
      (void)create_task(hold_until(l, log, 2, never));
      co_await ticks(2);
      CHECK(l.locked());
      CHECK(l.n_waiters() == 1);
    };
    Lock lock;
    Event never;
    std::vector<int> log;
    {
      EventLoop inner(test::options_for(loop.backend_kind()));
      inner.run_until_complete(leave_holder(lock, never, log));
    }
    CHECK(log == std::vector<int>{1});
    CHECK(lock.n_waiters() == 0);
  });
}
