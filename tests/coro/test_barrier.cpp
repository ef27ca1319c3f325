#include "coro/barrier.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstddef>
#include <stdexcept>
#include <vector>

#include "coro/task_handle.hpp"
#include "loop/event_loop.hpp"
#include "tests/coro/sync_support.hpp"
#include "tests/support.hpp"

using namespace corio;
using test::ticks;

namespace {

constexpr int N = 5;

Task<std::size_t> wait_once(Barrier& b) { co_return co_await b.wait(); }

// Wait; count a BrokenBarrierError instead of failing.
Task<void> wait_count_broken(Barrier& b, int& broken) {
  try {
    co_await b.wait();
  } catch (const BrokenBarrierError&) {
    ++broken;
  }
}

std::vector<std::size_t> iota_indexes(std::size_t n) {
  std::vector<std::size_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = i;
  return v;
}

}  // namespace

TEST_CASE("a barrier needs at least one party") {
  CHECK_THROWS_AS(Barrier(0), ValueError);
  CHECK_THROWS_AS(Barrier(-4), ValueError);
  Barrier b(N);
  CHECK(b.parties() == N);
  CHECK(b.n_waiting() == 0);
  CHECK_FALSE(b.broken());
}

TEST_CASE("every task gets a distinct arrival index, cycle after cycle") {
  // asyncio test_context_manager and test_filling_tasks_check_return_value.
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Barrier barrier(N);
      std::vector<std::size_t> first, second;
      auto twice = [](Barrier& b, std::vector<std::size_t>& f, std::vector<std::size_t>& s) -> Task<void> {
        f.push_back(co_await b.wait());
        s.push_back(co_await b.wait());
      };
      std::vector<TaskHandle<void>> ts;
      for (int i = 0; i < N; ++i) ts.push_back(create_task(twice(barrier, first, second)));
      for (auto& t : ts) co_await t;
      std::sort(first.begin(), first.end());
      std::sort(second.begin(), second.end());
      CHECK(first == iota_indexes(N));
      CHECK(second == iota_indexes(N));
      CHECK(barrier.n_waiting() == 0);
      CHECK_FALSE(barrier.broken());
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("a one-party barrier passes at once and returns index 0 each time") {
  // asyncio test_filling_one_task and test_filling_one_task_twice.
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Barrier barrier(1);
      CHECK(co_await barrier.wait() == 0);
      auto t1 = create_task(wait_once(barrier));
      co_await ticks();
      CHECK(barrier.n_waiting() == 0);
      auto t2 = create_task(wait_once(barrier));
      co_await ticks();
      CHECK(t1.done());
      CHECK(t2.done());
      CHECK(t1.result() == 0);
      CHECK(t2.result() == 0);
      CHECK_FALSE(barrier.broken());
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("n_waiting counts the tasks waiting for the barrier to fill") {
  // asyncio test_filling_task_by_task.
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Barrier barrier(3);
      auto t1 = create_task(wait_once(barrier));
      co_await ticks();
      CHECK(barrier.n_waiting() == 1);
      auto t2 = create_task(wait_once(barrier));
      co_await ticks();
      CHECK(barrier.n_waiting() == 2);
      auto t3 = create_task(wait_once(barrier));
      CHECK(co_await t3 == 2);  // the last arrival trips it
      CHECK(co_await t1 == 0);
      CHECK(co_await t2 == 1);
      CHECK(barrier.n_waiting() == 0);
      CHECK_FALSE(barrier.broken());
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("a task cancelled while waiting leaves the barrier without breaking it") {
  // asyncio test_filling_tasks_cancel_one.
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Barrier barrier(3);
      int passed = 0;
      auto pass = [](Barrier& b, int& p) -> Task<void> {
        co_await b.wait();
        ++p;
      };
      auto t1 = create_task(pass(barrier, passed));
      co_await ticks();
      auto t2 = create_task(pass(barrier, passed));
      co_await ticks();
      CHECK(barrier.n_waiting() == 2);
      t1.cancel();
      co_await ticks();
      CHECK(barrier.n_waiting() == 1);
      CHECK(co_await test::ends_cancelled(t1));
      auto t3 = create_task(pass(barrier, passed));
      co_await ticks();
      CHECK(barrier.n_waiting() == 2);
      auto t4 = create_task(pass(barrier, passed));
      co_await t2;
      co_await t3;
      co_await t4;
      CHECK(passed == 3);
      CHECK(barrier.n_waiting() == 0);
      CHECK_FALSE(barrier.broken());
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("reset while tasks wait raises BrokenBarrierError in them and leaves the barrier usable") {
  // asyncio test_reset_barrier and test_reset_barrier_while_tasks_waiting.
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Barrier one(1);
      one.reset();
      CHECK(one.n_waiting() == 0);
      CHECK_FALSE(one.broken());

      Barrier barrier(N);
      int broken = 0;
      std::vector<TaskHandle<void>> ts;
      for (int i = 0; i < N - 1; ++i) ts.push_back(create_task(wait_count_broken(barrier, broken)));
      co_await ticks();
      CHECK(barrier.n_waiting() == N - 1);
      barrier.reset();
      for (auto& t : ts) co_await t;
      CHECK(broken == N - 1);
      CHECK(barrier.n_waiting() == 0);
      CHECK_FALSE(barrier.broken());

      // A full cycle works again.
      std::vector<TaskHandle<std::size_t>> again;
      for (int i = 0; i < N; ++i) again.push_back(create_task(wait_once(barrier)));
      std::vector<std::size_t> idx;
      for (auto& t : again) idx.push_back(co_await t);
      std::sort(idx.begin(), idx.end());
      CHECK(idx == iota_indexes(N));
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("waiters that hit a reset can wait again and complete the next cycle") {
  // asyncio test_reset_barrier_while_tasks_waiting_and_waiting_again.
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Barrier barrier(N);
      int results1 = 0;
      int results2 = 0;
      auto coro1 = [](Barrier& b, int& r1, int& r2) -> Task<void> {
        try {
          co_await b.wait();
        } catch (const BrokenBarrierError&) {
          ++r1;
        }
        co_await b.wait();  // asyncio's `finally:` clause
        ++r2;
      };
      auto coro2 = [](Barrier& b, int& r2) -> Task<void> {
        co_await b.wait();
        ++r2;
      };
      std::vector<TaskHandle<void>> ts;
      for (int i = 0; i < N - 1; ++i) ts.push_back(create_task(coro1(barrier, results1, results2)));
      co_await ticks();
      barrier.reset();
      co_await ticks();
      auto last = create_task(coro2(barrier, results2));
      for (auto& t : ts) co_await t;
      co_await last;
      CHECK_FALSE(barrier.broken());
      CHECK(results1 == N - 1);
      CHECK(results2 == N);
      CHECK(barrier.n_waiting() == 0);
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("abort breaks the barrier for waiters and later arrivals until reset") {
  // asyncio test_abort_barrier and test_abort_barrier_when_exception.
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Barrier barrier(N);
      int passed_second = 0;
      int broken = 0;
      int aborted_by = 0;
      auto coro = [](Barrier& b, int& p2, int& br, int& ab) -> Task<void> {
        std::size_t i = 0;
        try {
          i = co_await b.wait();
          if (i == N / 2) throw std::runtime_error("fail in the middle");
          co_await b.wait();
          ++p2;
        } catch (const BrokenBarrierError&) {
          ++br;
        } catch (const std::runtime_error&) {
          ++ab;
          b.abort();
        }
      };
      std::vector<TaskHandle<void>> ts;
      for (int i = 0; i < N; ++i) ts.push_back(create_task(coro(barrier, passed_second, broken, aborted_by)));
      for (auto& t : ts) co_await t;
      CHECK(barrier.broken());
      CHECK(passed_second == 0);
      CHECK(broken == N - 1);
      CHECK(aborted_by == 1);
      CHECK(barrier.n_waiting() == 0);
      CHECK_THROWS_WITH_AS(co_await barrier.wait(), "Barrier aborted", BrokenBarrierError);

      barrier.reset();
      CHECK_FALSE(barrier.broken());
      std::vector<TaskHandle<std::size_t>> again;
      for (int i = 0; i < N; ++i) again.push_back(create_task(wait_once(barrier)));
      for (auto& t : again) co_await t;
      CHECK_FALSE(barrier.broken());
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("abort, then a synchronized reset, restores the barrier for every task") {
  // asyncio test_abort_barrier_when_exception_then_resetting.
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Barrier barrier1(N);
      Barrier barrier2(N);
      int results1 = 0, results2 = 0, results3 = 0;
      auto coro = [](Barrier& b1, Barrier& b2, int& r1, int& r2, int& r3) -> Task<void> {
        try {
          std::size_t i = co_await b1.wait();
          if (i == N / 2) throw std::runtime_error("fail");
          co_await b1.wait();
          ++r1;
        } catch (const BrokenBarrierError&) {
          ++r2;
        } catch (const std::runtime_error&) {
          b1.abort();
        }
        // Everyone has left barrier1 before the reset, and nobody enters it
        // before the reset is done.
        std::size_t i = co_await b2.wait();
        if (i == N / 2) b1.reset();
        co_await b2.wait();
        co_await b1.wait();
        ++r3;
      };
      std::vector<TaskHandle<void>> ts;
      for (int i = 0; i < N; ++i) ts.push_back(create_task(coro(barrier1, barrier2, results1, results2, results3)));
      for (auto& t : ts) co_await t;
      CHECK_FALSE(barrier1.broken());
      CHECK(results1 == 0);
      CHECK(results2 == N - 1);
      CHECK(results3 == N);
      CHECK(barrier1.n_waiting() == 0);
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("tasks that re-enter while the barrier drains wait for the next cycle") {
  // asyncio test_blocking_tasks_while_draining: two tasks re-enter at once,
  // the other three only after a second barrier; all must get through.
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Barrier barrier(N);
      Barrier nowaiting(N - 2);
      int rewait = 2;
      std::vector<std::size_t> second;
      auto coro = [](Barrier& b, Barrier& nw, int& rw, std::vector<std::size_t>& s) -> Task<void> {
        co_await b.wait();
        if (rw > 0) {
          --rw;
          s.push_back(co_await b.wait());
        } else {
          co_await nw.wait();
          s.push_back(co_await b.wait());
        }
      };
      std::vector<TaskHandle<void>> ts;
      for (int i = 0; i < N; ++i) ts.push_back(create_task(coro(barrier, nowaiting, rewait, second)));
      for (auto& t : ts) co_await t;
      std::sort(second.begin(), second.end());
      CHECK(second == iota_indexes(N));  // one full second cycle, no index reused
      CHECK(barrier.n_waiting() == 0);
      CHECK_FALSE(barrier.broken());
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("reset while half the tasks drain and half block: the blocked ones get BrokenBarrierError") {
  // asyncio test_reset_barrier_when_tasks_half_draining_half_blocking.
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Barrier barrier(N);
      int results1 = 0, results2 = 0, count = 0;
      constexpr int blocking = N / 2;
      auto coro = [](Barrier& b, int& r1, int& r2, int& c) -> Task<void> {
        bool broke = false;
        try {
          co_await b.wait();
        } catch (const BrokenBarrierError&) {
          ++r1;
          broke = true;
        }
        if (broke) {
          co_await b.wait();
          co_return;
        }
        ++c;
        if (c > blocking) {
          b.reset();
          co_await b.wait();
        } else {
          try {
            co_await b.wait();
          } catch (const BrokenBarrierError&) {
            ++r2;
          }
        }
      };
      std::vector<TaskHandle<void>> ts;
      for (int i = 0; i < N; ++i) ts.push_back(create_task(coro(barrier, results1, results2, count)));
      for (auto& t : ts) co_await t;
      CHECK(results1 == blocking);
      CHECK(results2 == 0);
      CHECK(barrier.n_waiting() == 0);
      CHECK_FALSE(barrier.broken());
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("loop teardown with tasks inside a barrier frees every frame safely") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Barrier barrier(3);
      (void)create_task(wait_once(barrier));
      (void)create_task(wait_once(barrier));
      co_await ticks();
      CHECK(barrier.n_waiting() == 2);
    };
    loop.run_until_complete(main());
  });
}
