#include "coro/event.hpp"

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

Task<void> wait_then_log(Event& ev, std::vector<int>& log, int id) {
  co_await ev.wait();
  log.push_back(id);
}

}  // namespace

TEST_CASE("an event starts clear, and set and clear toggle is_set") {
  Event ev;
  CHECK_FALSE(ev.is_set());
  ev.set();
  CHECK(ev.is_set());
  ev.set();  // idempotent
  CHECK(ev.is_set());
  ev.clear();
  CHECK_FALSE(ev.is_set());
  CHECK(ev.n_waiters() == 0);
}

TEST_CASE("wait on a set event returns without suspending") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<std::string> {
      std::string trace;
      Event ev;
      ev.set();
      auto other = [](std::string& tr) -> Task<void> {
        tr += 'o';
        co_return;
      };
      auto t = create_task(other(trace));
      co_await ev.wait();  // must not yield to `other`
      trace += 'm';
      co_await t;
      co_return trace;
    };
    CHECK(test::run_bounded(loop, main()) == "mo");
  });
}

TEST_CASE("set wakes every waiter in the order they waited; a task not yet waiting passes straight through") {
  // asyncio test_wait: t1 and t2 wait, t3 is created before set() but only
  // runs after it, so it passes first.
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<std::vector<int>> {
      Event ev;
      std::vector<int> log;
      auto t1 = create_task(wait_then_log(ev, log, 1));
      auto t2 = create_task(wait_then_log(ev, log, 2));
      co_await ticks();
      CHECK(log.empty());
      CHECK(ev.n_waiters() == 2);
      auto t3 = create_task(wait_then_log(ev, log, 3));
      ev.set();
      CHECK(ev.n_waiters() == 0);
      co_await ticks();
      CHECK(t1.done());
      CHECK(t2.done());
      CHECK(t3.done());
      co_return log;
    };
    CHECK(test::run_bounded(loop, main()) == std::vector<int>{3, 1, 2});
  });
}

TEST_CASE("a waiter cancelled while waiting throws CancelledError and leaves no waiter behind") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Event ev;
      std::vector<int> log;
      auto a = create_task(wait_then_log(ev, log, 1));
      auto b = create_task(wait_then_log(ev, log, 2));
      co_await ticks();
      CHECK(ev.n_waiters() == 2);
      a.cancel("stop waiting");
      CHECK(ev.n_waiters() == 1);  // unlinked at once, not when it runs
      CHECK_THROWS_AS(co_await a, CancelledError);
      CHECK(a.cancelled());
      ev.set();
      co_await b;
      CHECK(log == std::vector<int>{2});
      CHECK(ev.n_waiters() == 0);
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("a waiter woken by set returns even if clear runs before it resumes") {
  // asyncio test_clear_with_waiters.
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Event ev;
      std::vector<int> log;
      auto t = create_task(wait_then_log(ev, log, 1));
      co_await ticks();
      ev.set();
      ev.clear();
      CHECK_FALSE(ev.is_set());
      ev.set();
      ev.set();
      co_await ticks();
      CHECK(log == std::vector<int>{1});
      CHECK(t.done());
      CHECK_FALSE(t.cancelled());
      CHECK(ev.n_waiters() == 0);
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("a cancel that arrives after set woke the waiter is delivered as CancelledError") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Event ev;
      std::vector<int> log;
      auto a = create_task(wait_then_log(ev, log, 1));
      auto b = create_task(wait_then_log(ev, log, 2));
      co_await ticks();
      ev.set();   // both are queued to run
      a.cancel();  // a has not resumed yet
      CHECK(co_await test::ends_cancelled(a));
      co_await b;
      CHECK(log == std::vector<int>{2});
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("a cancel pending before wait suspends throws at once and registers nothing") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Event ev;
      auto body = [](Event& e, bool& reached) -> Task<void> {
        current_task()->cancel("early");
        reached = true;
        co_await e.wait();
        FAIL_CHECK("wait returned");
      };
      bool reached = false;
      auto t = create_task(body(ev, reached));
      CHECK(co_await test::ends_cancelled(t));
      CHECK(reached);
      CHECK(ev.n_waiters() == 0);
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("an event can be cleared and waited on again") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Event ev;
      std::vector<int> log;
      ev.set();
      co_await ev.wait();
      ev.clear();
      auto t = create_task(wait_then_log(ev, log, 7));
      co_await ticks(3);
      CHECK(log.empty());  // blocked again after clear()
      CHECK(ev.n_waiters() == 1);
      ev.set();
      co_await t;
      CHECK(log == std::vector<int>{7});
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("loop teardown with tasks waiting on an event frees every frame safely") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Event ev;
      std::vector<int> log;
      (void)create_task(wait_then_log(ev, log, 1));
      (void)create_task(wait_then_log(ev, log, 2));
      co_await ticks();
      CHECK(ev.n_waiters() == 2);
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("an awaiter made by wait() checks the flag when it is awaited, not when it was made") {
  // asyncio: ev.wait() makes a coroutine that looks at the flag only once
  // awaited; a stored awaiter must behave the same.
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<std::string> {
      std::string trace;
      Event ev;
      {
        auto w = ev.wait();  // made while clear
        ev.set();
        co_await w;  // set by now: passes (it parked forever before)
        trace += 'a';
      }
      {
        auto w = ev.wait();  // made while set
        ev.clear();
        auto setter = [](Event& e, std::string& tr) -> Task<void> {
          tr += 's';
          e.set();
          co_return;
        };
        auto t = create_task(setter(ev, trace));
        co_await w;  // clear by now: waits for the setter (it passed at once before)
        trace += 'b';
        co_await t;
      }
      co_return trace;
    };
    CHECK(test::run_bounded(loop, main()) == "asb");
  });
}
