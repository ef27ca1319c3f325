#include "coro/semaphore.hpp"

#include <doctest/doctest.h>

#include <algorithm>
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

// Acquire, log, and keep the unit (the test releases it).
Task<void> acquire_and_log(Semaphore& sem, std::vector<int>& log, int id) {
  co_await sem.acquire();
  log.push_back(id);
}

// Tasks inside the guarded section; leaving by exception counts too.
struct Inside {
  int& n;
  explicit Inside(int& count) : n(count) { ++n; }
  ~Inside() { --n; }
};

}  // namespace

TEST_CASE("a negative initial value raises ValueError; a zero value starts locked") {
  CHECK_THROWS_AS(Semaphore(-1), ValueError);
  CHECK_THROWS_AS(BoundedSemaphore(-1), std::invalid_argument);
  Semaphore zero(0);
  CHECK(zero.locked());
  CHECK(zero.value() == 0);
  Semaphore one;
  CHECK_FALSE(one.locked());
  CHECK(one.value() == 1);
}

TEST_CASE("acquire takes units until none is left, then waiters are served one unit per release") {
  // asyncio test_acquire, with FIFO order made exact.
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Semaphore sem(3);
      std::vector<int> log;
      co_await sem.acquire();
      co_await sem.acquire();
      CHECK_FALSE(sem.locked());
      auto t1 = create_task(acquire_and_log(sem, log, 1));
      auto t2 = create_task(acquire_and_log(sem, log, 2));
      auto t3 = create_task(acquire_and_log(sem, log, 3));
      co_await ticks();
      CHECK(log == std::vector<int>{1});
      CHECK(sem.locked());
      CHECK(sem.n_waiters() == 2);
      CHECK(sem.value() == 0);

      auto t4 = create_task(acquire_and_log(sem, log, 4));
      sem.release();
      sem.release();
      CHECK(sem.value() == 0);  // both units went straight to t2 and t3
      co_await ticks();
      CHECK(log == std::vector<int>{1, 2, 3});
      CHECK(sem.locked());
      CHECK(sem.n_waiters() == 1);  // t4 queued behind them
      CHECK_FALSE(t4.done());

      sem.release();
      co_await t4;
      CHECK(log == std::vector<int>{1, 2, 3, 4});
      CHECK(sem.value() == 0);
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("BoundedSemaphore released more often than acquired raises ValueError") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      BoundedSemaphore sem(2);
      CHECK_THROWS_WITH_AS(sem.release(), "BoundedSemaphore released too many times", ValueError);
      co_await sem.acquire();
      sem.release();
      CHECK(sem.value() == 2);
      CHECK_THROWS_AS(sem.release(), ValueError);
      CHECK(sem.value() == 2);
      {
        auto guard = co_await sem.scoped();
        CHECK(sem.value() == 1);
      }
      CHECK(sem.value() == 2);

      // A plain Semaphore may grow past its initial value.
      Semaphore plain(1);
      plain.release();
      CHECK(plain.value() == 2);
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("waiters acquire in FIFO order even when the holder asks again at once") {
  // asyncio test_acquire_fifo_order.
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<std::vector<std::string>> {
      Semaphore sem(1);
      std::vector<std::string> result;
      auto coro = [](Semaphore& s, std::vector<std::string>& r, std::string tag) -> Task<void> {
        co_await s.acquire();
        r.push_back(tag + "_1");
        co_await ticks();
        s.release();
        co_await s.acquire();
        r.push_back(tag + "_2");
        co_await ticks();
        s.release();
      };
      auto a = create_task(coro(sem, result, "c1"));
      auto b = create_task(coro(sem, result, "c2"));
      auto c = create_task(coro(sem, result, "c3"));
      co_await a;
      co_await b;
      co_await c;
      CHECK(sem.value() == 1);
      co_return result;
    };
    CHECK(test::run_bounded(loop, main()) ==
          std::vector<std::string>{"c1_1", "c2_1", "c3_1", "c1_2", "c2_2", "c3_2"});
  });
}

TEST_CASE("waiters cancelled before any release are skipped and never take a unit") {
  // asyncio test_acquire_cancel_before_awoken and test_acquire_fifo_order_3.
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Semaphore sem(0);
      std::vector<int> log;
      std::vector<TaskHandle<void>> ts;
      for (int id = 1; id <= 4; ++id) ts.push_back(create_task(acquire_and_log(sem, log, id)));
      co_await ticks();
      ts[0].cancel();
      ts[1].cancel();
      CHECK(sem.n_waiters() == 2);
      sem.release();
      co_await ticks(2);
      CHECK(log == std::vector<int>{3});
      CHECK(ts[2].done());
      CHECK_FALSE(ts[3].done());
      CHECK(ts[0].cancelled());
      CHECK(ts[1].cancelled());
      sem.release();
      co_await ts[3];
      CHECK(log == std::vector<int>{3, 4});
      CHECK(sem.value() == 0);
      CHECK(sem.n_waiters() == 0);
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("a waiter cancelled after release handed it a unit passes the unit to the next waiter") {
  // asyncio test_acquire_hang, with the cancel after the hand-over.
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Semaphore sem(0);
      std::vector<int> log;
      auto t1 = create_task(acquire_and_log(sem, log, 1));
      auto t2 = create_task(acquire_and_log(sem, log, 2));
      co_await ticks();
      sem.release();  // granted to t1, which has not resumed yet
      t1.cancel();
      CHECK(co_await test::ends_cancelled(t1));
      co_await ticks();
      CHECK(t2.done());
      CHECK(log == std::vector<int>{2});
      CHECK(sem.locked());
      CHECK(sem.value() == 0);
      sem.release();
      CHECK(sem.value() == 1);
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("a holder that cancels a granted waiter on its way out leaves the unit acquirable") {
  // asyncio test_acquire_no_hang.
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Semaphore sem(1);
      bool c2_entered = false;
      auto c2 = [](Semaphore& s, bool& entered) -> Task<void> {
        auto guard = co_await s.scoped();
        entered = true;
      };
      auto c1 = [](Semaphore& s, TaskHandle<void>& other) -> Task<void> {
        {
          auto guard = co_await s.scoped();
          co_await ticks();
        }  // hands the unit to c2...
        other.cancel();  // ...which is cancelled before it resumes
      };
      TaskHandle<void> t2;
      auto t1 = create_task(c1(sem, t2));
      t2 = create_task(c2(sem, c2_entered));
      co_await t1;
      CHECK(co_await test::ends_cancelled(t2));
      CHECK_FALSE(c2_entered);
      CHECK(sem.value() == 1);
      co_await sem.acquire();  // does not hang
      CHECK(sem.locked());
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("a newcomer does not take a unit released while others wait") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Semaphore sem(1);
      std::vector<int> log;
      co_await sem.acquire();
      auto t1 = create_task(acquire_and_log(sem, log, 1));
      co_await ticks();
      sem.release();
      CHECK(sem.locked());  // the unit is t1's already
      auto t2 = create_task(acquire_and_log(sem, log, 2));
      co_await ticks(2);
      CHECK(log == std::vector<int>{1});
      CHECK(sem.n_waiters() == 1);
      sem.release();
      co_await t2;
      CHECK(log == std::vector<int>{1, 2});
      CHECK(t1.done());
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("many waiters with cancellations keep the count consistent and never exceed the value") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Semaphore sem(3);
      int inside = 0;
      int max_inside = 0;
      int entries = 0;
      auto worker = [](Semaphore& s, int& in, int& max_in, int& n, int id) -> Task<void> {
        for (int round = 0; round < 3; ++round) {
          auto guard = co_await s.scoped();
          Inside here(in);
          max_in = std::max(max_in, in);
          ++n;
          co_await ticks(1 + (id + round) % 3);
        }
      };
      std::vector<TaskHandle<void>> ts;
      for (int i = 0; i < 30; ++i) ts.push_back(create_task(worker(sem, inside, max_inside, entries, i)));
      co_await ticks();
      CHECK(sem.n_waiters() == 27);
      // Cancel some waiters at once, others over time: queued ones, ones
      // granted a unit but not yet resumed, and holders.
      for (int i = 0; i < 30; i += 4) {
        ts[i].cancel();
        co_await ticks(i % 3);
      }
      int cancelled = 0;
      for (auto& t : ts) cancelled += co_await test::ends_cancelled(t) ? 1 : 0;
      CHECK(cancelled == 8);
      CHECK(max_inside == 3);
      CHECK(inside == 0);
      CHECK(entries >= 22 * 3);
      CHECK(sem.value() == 3);
      CHECK(sem.n_waiters() == 0);
      CHECK_FALSE(sem.locked());
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("a pending cancel makes a blocked acquire throw at once without queueing") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Semaphore sem(0);
      auto body = [](Semaphore& s) -> Task<void> {
        current_task()->cancel();
        co_await s.acquire();
      };
      auto t = create_task(body(sem));
      CHECK(co_await test::ends_cancelled(t));
      CHECK(sem.n_waiters() == 0);
      sem.release();
      CHECK(sem.value() == 1);  // nobody took it
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("loop teardown with tasks queued for and just granted a unit frees every frame safely") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Semaphore sem(0);
      std::vector<int> log;
      for (int id = 0; id < 3; ++id) (void)create_task(acquire_and_log(sem, log, id));
      co_await ticks();
      sem.release();  // granted to the first; nobody resumes before teardown
      CHECK(sem.n_waiters() == 2);
      CHECK(log.empty());
    };
    loop.run_until_complete(main());
  });
}
