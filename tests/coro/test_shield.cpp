#include "coro/shield.hpp"

#include <doctest/doctest.h>

#include <string>

#include "coro/gather.hpp"
#include "coro/sleep.hpp"
#include "coro/task_handle.hpp"
#include "loop/event_loop.hpp"
#include "tests/coro/structured_helpers.hpp"
#include "tests/support.hpp"

// Behaviours ported from the shield parts of CPython's
// Lib/test/test_asyncio/test_tasks.py (test_shield_*, test_gather_shield).

using namespace corio;
using namespace std::chrono_literals;
using test::Boom;
using test::boom_after;
using test::capture;
using test::value_after;

TEST_CASE("shield yields the task's value or rethrows its exception") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto h = create_task(value_after(5ms, 42));
      CHECK(co_await shield(h) == 42);
      CHECK(co_await shield(value_after(1ms, 7)) == 7);
      auto e = co_await capture(create_task([]() -> Task<void> { co_await shield(boom_after(1ms, "inner")); }()));
      CHECK(exception_is<Boom>(e));
      CHECK(test::what_of(e) == "inner");
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("shielding a task that is already done yields at once, even with a cancel pending") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto h = create_task(value_after(0ms, 5));
      co_await h;
      auto body = [](TaskHandle<int> h) -> Task<int> {
        current_task()->cancel();
        int v = co_await shield(h);  // no suspension: the result is there
        try {
          co_await sleep(1s);  // the pending cancel fires here
        } catch (const CancelledError&) {
          co_return v;
        }
        co_return -1;
      };
      CHECK(co_await create_task(body(h)) == 5);
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("cancelling the awaiting task raises CancelledError at once while the shielded task keeps running") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto inner = create_task(value_after(80ms, 9));
      auto outer_body = [](TaskHandle<int> in) -> Task<int> { co_return co_await shield(in); };
      auto outer = create_task(outer_body(inner));
      co_await sleep(10ms);
      auto t0 = test::loop_now();
      outer.cancel("outer only");
      auto e = co_await capture(outer);
      CHECK(test::cancel_message_of(e) == "outer only");
      CHECK(outer.cancelled());
      CHECK_FALSE(inner.done());
      CHECK(inner.cancelling() == 0);
      CHECK(test::loop_now() - t0 < 2s);
      CHECK(co_await inner == 9);
      CHECK_FALSE(inner.cancelled());
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("a cancel pending when shield is awaited raises at once and leaves the task alone") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto inner = create_task(value_after(20ms, 3));
      auto body = [](TaskHandle<int> in) -> Task<void> {
        current_task()->cancel("early");
        co_await shield(in);
      };
      auto e = co_await capture(create_task(body(inner)));
      CHECK(test::cancel_message_of(e) == "early");
      CHECK(co_await inner == 3);
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("if the shielded task itself is cancelled the awaiter gets CancelledError") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto inner = create_task(value_after(10s, 1));
      auto outer_body = [](TaskHandle<int> in) -> Task<int> { co_return co_await shield(in); };
      auto outer = create_task(outer_body(inner));
      co_await sleep(5ms);
      inner.cancel("inner");
      auto e = co_await capture(outer);
      CHECK(test::cancel_message_of(e) == "inner");
      CHECK(outer.cancelled());
      CHECK(inner.cancelled());
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("a shielded gather keeps its children running when the awaiter is cancelled") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto a = create_task(value_after(30ms, 1));
      auto b = create_task(value_after(30ms, 2));
      auto outer_body = [](TaskHandle<int> a, TaskHandle<int> b) -> Task<void> {
        auto s = shield(gather(a, b));
        co_await s;
      };
      auto outer = create_task(outer_body(a, b));
      co_await sleep(5ms);
      outer.cancel();
      auto e = co_await capture(outer);
      CHECK(exception_is<CancelledError>(e));
      CHECK(co_await a == 1);
      CHECK(co_await b == 2);
      CHECK_FALSE(a.cancelled());
      CHECK_FALSE(b.cancelled());
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("several awaiters may shield one task; cancelling one leaves the others waiting") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto inner = create_task(value_after(30ms, 6));
      auto waiter = [](TaskHandle<int> in) -> Task<int> { co_return co_await shield(in); };
      auto w1 = create_task(waiter(inner));
      auto w2 = create_task(waiter(inner));
      co_await sleep(5ms);
      w1.cancel();
      auto e = co_await capture(w1);
      CHECK(exception_is<CancelledError>(e));
      CHECK(co_await w2 == 6);
      CHECK(inner.result() == 6);
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("a cancel made after the shielded task finished but before the awaiter resumed raises at the shield") {
  // CPython 3.11: the awaiter of shield(t) is cancelled (call_soon) right
  // after t returned 5; `await shield(t)` raises CancelledError('late')
  // there, and t.result() is still 5.
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      std::vector<std::string> log;
      TaskHandle<void> w;
      TaskHandle<int> inner;
      auto body = [](const TaskHandle<void>* self, TaskHandle<int>& inner, std::vector<std::string>& log) -> Task<void> {
        inner = create_task(test::value_then_cancel(self, 5));
        int v = co_await shield(inner);
        log.push_back("got " + std::to_string(v));
        co_await sleep(0s);
        log.push_back("no cancel at the next suspension");
      };
      w = create_task(body(&w, inner, log));
      std::exception_ptr e = co_await capture(w);
      CHECK(test::cancel_message_of(e) == "late");
      CHECK(log.empty());  // asyncio: the shield raised, nothing was delivered
      CHECK(inner.result() == 5);
    };
    loop.run_until_complete(main());
  });
}
