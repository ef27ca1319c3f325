#include "coro/condition.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "coro/task_handle.hpp"
#include "loop/event_loop.hpp"
#include "tests/coro/sync_support.hpp"
#include "tests/support.hpp"

using namespace corio;
using test::ticks;

namespace {

// Acquire, wait for a notification, log; keep the lock (asyncio test_wait).
Task<void> wait_keep_lock(Condition& c, std::vector<int>& log, int id) {
  co_await c.acquire();
  co_await c.wait();
  log.push_back(id);
}

// Acquire, wait for a notification, log, release (asyncio test_notify).
Task<void> wait_and_release(Condition& c, std::vector<int>& log, int id) {
  auto guard = co_await c.scoped();
  co_await c.wait();
  log.push_back(id);
}

}  // namespace

TEST_CASE("wait, notify and notify_all without holding the lock raise InvalidStateError") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Condition cond;
      CHECK_THROWS_WITH_AS(co_await cond.wait(), "Condition.wait(): cannot wait on an un-acquired lock",
                           InvalidStateError);
      CHECK_THROWS_AS(cond.notify(), InvalidStateError);
      CHECK_THROWS_AS(cond.notify_all(), InvalidStateError);
      CHECK_FALSE(cond.locked());
      CHECK(cond.n_waiters() == 0);
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("wait releases the lock; a notified waiter resumes only once it holds the lock again") {
  // asyncio test_wait.
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Condition cond;
      std::vector<int> log;
      auto t1 = create_task(wait_keep_lock(cond, log, 1));
      auto t2 = create_task(wait_keep_lock(cond, log, 2));
      auto t3 = create_task(wait_keep_lock(cond, log, 3));
      co_await ticks();
      CHECK(log.empty());
      CHECK_FALSE(cond.locked());  // every waiter released it
      CHECK(cond.n_waiters() == 3);

      co_await cond.acquire();
      cond.notify();
      co_await ticks();
      CHECK(log.empty());  // notified, but the lock is still ours
      CHECK(cond.locked());

      cond.release();
      co_await ticks();
      CHECK(log == std::vector<int>{1});
      CHECK(cond.locked());  // t1 kept it

      cond.notify(2);
      co_await ticks();
      CHECK(log == std::vector<int>{1});
      CHECK(cond.locked());

      cond.release();
      co_await ticks();
      CHECK(log == std::vector<int>{1, 2});
      CHECK(cond.locked());

      cond.release();
      co_await ticks();
      CHECK(log == std::vector<int>{1, 2, 3});
      CHECK(cond.locked());
      CHECK(t1.done());
      CHECK(t2.done());
      CHECK(t3.done());
      cond.release();
      CHECK_FALSE(cond.locked());
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("notify(n) wakes n waiters and notify_all wakes the rest, in the order they waited") {
  // asyncio test_notify and test_notify_all.
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Condition cond;
      std::vector<int> log;
      std::vector<TaskHandle<void>> ts;
      for (int id = 1; id <= 5; ++id) ts.push_back(create_task(wait_and_release(cond, log, id)));
      co_await ticks();
      CHECK(cond.n_waiters() == 5);

      co_await cond.acquire();
      cond.notify(1);
      cond.release();
      co_await ticks();
      CHECK(log == std::vector<int>{1});

      co_await cond.acquire();
      cond.notify(1);
      cond.notify(2);
      CHECK(cond.n_waiters() == 1);
      cond.release();
      co_await ticks(3);
      CHECK(log == std::vector<int>{1, 2, 3, 4});

      co_await cond.acquire();
      cond.notify_all();
      cond.notify(2048);  // nobody left: a no-op
      cond.release();
      for (auto& t : ts) co_await t;
      CHECK(log == std::vector<int>{1, 2, 3, 4, 5});
      CHECK_FALSE(cond.locked());
      CHECK(cond.n_waiters() == 0);
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("wait_for returns once the predicate holds, with the predicate's value") {
  // asyncio test_wait_for and test_wait_for_unacquired.
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Condition cond;
      // A predicate already true returns at once, without the lock.
      int v = co_await cond.wait_for([] { return 42; });
      CHECK(v == 42);
      CHECK_THROWS_AS(co_await cond.wait_for([] { return false; }), InvalidStateError);

      bool ready = false;
      int evaluations = 0;
      std::vector<int> log;
      auto waiter = [](Condition& c, bool& r, int& evals, std::vector<int>& lg) -> Task<void> {
        auto guard = co_await c.scoped();
        bool got = co_await c.wait_for([&] {
          ++evals;
          return r;
        });
        CHECK(c.locked());
        lg.push_back(got ? 1 : 0);
      };
      auto t = create_task(waiter(cond, ready, evaluations, log));
      co_await ticks();
      CHECK(evaluations == 1);

      co_await cond.acquire();
      cond.notify();
      cond.release();
      co_await ticks();
      CHECK(log.empty());  // woke, re-checked, waits again
      CHECK(evaluations == 2);

      ready = true;
      co_await cond.acquire();
      cond.notify();
      cond.release();
      co_await t;
      CHECK(log == std::vector<int>{1});
      CHECK(evaluations == 3);
      CHECK_FALSE(cond.locked());
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("a waiter cancelled while waiting re-acquires the lock before CancelledError propagates") {
  // asyncio test_wait_cancel, with the lock contested when the cancel arrives.
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Condition cond;
      std::vector<std::string> log;
      auto waiter = [](Condition& c, std::vector<std::string>& lg) -> Task<void> {
        auto guard = co_await c.scoped();
        try {
          co_await c.wait();
        } catch (const CancelledError&) {
          lg.push_back(c.locked() ? "cancelled holding the lock" : "cancelled without the lock");
          throw;
        }
      };
      auto t = create_task(waiter(cond, log));
      co_await ticks();
      CHECK_FALSE(cond.locked());
      co_await cond.acquire();  // the lock is ours when the cancel comes
      t.cancel();
      CHECK(cond.n_waiters() == 0);
      co_await ticks(3);
      CHECK_FALSE(t.done());  // queued for the lock
      log.push_back("main releases");
      cond.release();
      CHECK(co_await test::ends_cancelled(t));
      CHECK(log == std::vector<std::string>{"main releases", "cancelled holding the lock"});
      CHECK_FALSE(cond.locked());  // the waiter's guard released it
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("a waiter cancelled while the lock is free takes it at once and raises CancelledError") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Condition cond;
      co_await cond.acquire();
      auto wait_only = [](Condition& c) -> Task<void> { co_await c.wait(); };
      auto t = create_task(wait_only(cond));
      co_await ticks();
      CHECK_FALSE(cond.locked());  // released by wait()
      t.cancel();
      CHECK(cond.locked());  // taken on the waiter's behalf at once
      CHECK(co_await test::ends_cancelled(t));
      CHECK(cond.locked());  // the task ended holding it, as in asyncio
      CHECK(cond.n_waiters() == 0);
      cond.release();
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("a waiter cancelled after notify passes the notification to the next waiter") {
  // asyncio test_wait_cancel_after_notify, plus the pass-on.
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Condition cond;
      std::vector<int> log;
      auto w1 = create_task(wait_and_release(cond, log, 1));
      auto w2 = create_task(wait_and_release(cond, log, 2));
      co_await ticks();
      co_await cond.acquire();
      cond.notify();  // chooses w1
      co_await ticks();
      w1.cancel();    // w1 is queued for the lock
      co_await ticks();
      CHECK_FALSE(w1.done());
      cond.release();
      CHECK(co_await test::ends_cancelled(w1));
      co_await w2;  // woken by the notification w1 could not use
      CHECK(log == std::vector<int>{2});
      CHECK_FALSE(cond.locked());
      CHECK(cond.n_waiters() == 0);
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("notify then cancel while the waiter re-acquires: it ends holding the lock, with CancelledError") {
  // asyncio test_wait_cancel_contested.
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Condition cond;
      co_await cond.acquire();
      auto wait_only = [](Condition& c) -> Task<void> { co_await c.wait(); };
      auto t = create_task(wait_only(cond));
      co_await ticks();
      CHECK_FALSE(cond.locked());
      co_await cond.acquire();
      cond.notify();
      t.cancel();
      t.cancel();  // a second request is absorbed by the same re-acquire
      cond.release();
      CHECK(co_await test::ends_cancelled(t));
      CHECK(cond.locked());
      cond.release();
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("a condition may share a lock: both report the same state and either one's release serves both") {
  // asyncio test_explicit_lock.
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Lock lock;
      Condition c1(lock);
      Condition c2(lock);
      CHECK(&c1.lock() == &lock);
      {
        auto guard = co_await c1.scoped();
        CHECK(lock.locked());
        CHECK(c2.locked());
      }
      CHECK_FALSE(c1.locked());
      std::vector<int> log;
      auto t = create_task(wait_and_release(c1, log, 1));
      co_await ticks();
      {
        auto guard = co_await lock.scoped();
        c2.notify_all();  // a different condition: t stays put
        CHECK(c1.n_waiters() == 1);
        c1.notify();
      }
      co_await t;
      CHECK(log == std::vector<int>{1});
      CHECK_FALSE(lock.locked());
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("a cancel pending when wait is called throws CancelledError without releasing the lock") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Condition cond;
      std::vector<int> log;
      auto body = [](Condition& c, std::vector<int>& lg) -> Task<void> {
        auto guard = co_await c.scoped();
        co_await ticks();  // the contender queues for the lock meanwhile
        current_task()->cancel();
        try {
          co_await c.wait();
        } catch (const CancelledError&) {
          lg.push_back(c.locked() ? 1 : 0);
          throw;
        }
      };
      auto contender = [](Condition& c, std::vector<int>& lg) -> Task<void> {
        auto guard = co_await c.scoped();
        lg.push_back(2);
      };
      auto t = create_task(body(cond, log));
      auto other = create_task(contender(cond, log));
      CHECK(co_await test::ends_cancelled(t));
      co_await other;
      CHECK(log == std::vector<int>{1, 2});  // the contender never got in between
      CHECK_FALSE(cond.locked());
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("loop teardown with tasks waiting for a notification or for the lock unlinks them all") {
  // The condition outlives the loop, as it must: the waiters' LockGuards
  // release its lock when their frames are destroyed.
  test::on_each_backend([](EventLoop& loop) {
    auto leave_waiters = [](Condition& c, std::vector<int>& log) -> Task<void> {
      for (int id = 0; id < 3; ++id) (void)create_task(wait_and_release(c, log, id));
      co_await ticks();
      co_await c.acquire();
      c.notify();  // the first now queues for the lock, which this task keeps
      CHECK(c.n_waiters() == 2);
      CHECK(c.lock().n_waiters() == 1);
    };
    Condition cond;
    std::vector<int> log;
    {
      EventLoop inner(test::options_for(loop.backend_kind()));
      inner.run_until_complete(leave_waiters(cond, log));
    }
    CHECK(cond.n_waiters() == 0);
    CHECK(cond.lock().n_waiters() == 0);
    CHECK(log.empty());
  });
}
