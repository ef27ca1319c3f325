#include "coro/gather.hpp"

#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

#include "coro/sleep.hpp"
#include "coro/task_handle.hpp"
#include "loop/event_loop.hpp"
#include "tests/coro/structured_helpers.hpp"
#include "tests/support.hpp"

// Behaviours ported from the gather parts of CPython's
// Lib/test/test_asyncio/test_tasks.py (GatherTestsBase, test_gather_*,
// test_one_cancellation, test_cancel_gather_*, test_return_exceptions).

using namespace corio;
using namespace std::chrono_literals;
using test::Boom;
using test::boom_after;
using test::capture;
using test::ms;
using test::value_after;

namespace {

Task<std::string> text_after(ms d, std::string s) {
  co_await sleep(d);
  co_return s;
}

// Sleeps d unless cancelled; on cancel, swallows it and returns -1.
Task<int> stubborn(ms d) {
  bool cancelled = false;
  try {
    co_await sleep(d);
  } catch (const CancelledError&) {
    cancelled = true;
  }
  if (!cancelled) co_return 1;
  co_await sleep(5ms);  // cleanup may await
  co_return -1;
}

}  // namespace

TEST_CASE("gather runs children concurrently and returns results in argument order") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto t0 = test::loop_now();
      auto [a, b, c] = co_await gather(value_after(40ms, 1), text_after(10ms, "two"), test::nap(20ms));
      auto elapsed = test::loop_now() - t0;
      CHECK(a == 1);
      CHECK(b == "two");
      static_assert(std::is_same_v<decltype(c), std::monostate>, "void children yield std::monostate");
      CHECK(elapsed >= 40ms);
      CHECK(elapsed < 2s);  // the longest child, not the sum
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("gather over a vector yields a vector; an empty gather returns at once") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      std::vector<Task<int>> tasks;
      for (int i = 0; i < 5; ++i) tasks.push_back(value_after(ms(25 - 5 * i), i * i));
      std::vector<int> v = co_await gather(std::move(tasks));
      CHECK(v == std::vector<int>{0, 1, 4, 9, 16});

      std::tuple<> nothing = co_await gather();
      (void)nothing;
      std::vector<int> none = co_await gather(std::vector<Task<int>>{});
      CHECK(none.empty());

      std::vector<Task<void>> voids;
      voids.push_back(test::nap(1ms));
      voids.push_back(test::nap(2ms));
      auto vv = co_await gather(std::move(voids));
      CHECK(vv.size() == 2);

      // Move-only results are moved out of the tasks gather spawned.
      auto make = [](int x) -> Task<std::unique_ptr<int>> { co_return std::make_unique<int>(x); };
      auto [p, q] = co_await gather(make(3), make(4));
      CHECK(*p + *q == 7);
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("gather mixes tasks and handles; handles already done count at once") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto done = create_task(value_after(0ms, 5));
      co_await done;
      auto running = create_task(text_after(10ms, "later"));
      auto [x, y, z] = co_await gather(done, value_after(5ms, 6), running);
      CHECK(x == 5);
      CHECK(y == 6);
      CHECK(z == "later");
      CHECK(running.result() == "later");  // a handle's result is copied, still readable

      std::vector<TaskHandle<int>> hs{create_task(value_after(5ms, 1)), create_task(value_after(1ms, 2))};
      auto v = co_await gather(hs);
      CHECK(v == std::vector<int>{1, 2});
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("gather spawns its children when called, in argument order") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto step = [](std::vector<int>& log, int id) -> Task<int> {
        log.push_back(id);
        co_return id;
      };
      std::vector<int> log;
      auto g = gather(step(log, 1), step(log, 2), step(log, 3));
      co_await sleep(0s);  // the children run now, before anyone awaits g
      CHECK(log == std::vector<int>{1, 2, 3});
      auto [a, b, c] = co_await std::move(g);
      CHECK(a + b + c == 6);
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("the first child exception propagates at once while the other children keep running") {
  test::on_each_backend([](EventLoop& loop) {
    int reports = 0;  // the second failure, that nobody retrieves
    loop.set_exception_handler([&](std::exception_ptr, std::string_view) { ++reports; });
    auto main = []() -> Task<void> {
      auto slow = create_task(value_after(60ms, 7));
      auto t0 = test::loop_now();
      auto e = co_await capture(gather(slow, boom_after(10ms, "first"), boom_after(30ms, "second")));
      auto elapsed = test::loop_now() - t0;
      REQUIRE(exception_is<Boom>(e));
      CHECK(test::what_of(e) == "first");
      CHECK(elapsed < 2s);
      CHECK_FALSE(slow.done());  // raised before the slow child ended, which was not cancelled
      CHECK(co_await slow == 7);
      CHECK_FALSE(slow.cancelled());
    };
    loop.run_until_complete(main());
    CHECK(reports == 1);
  });
}

TEST_CASE("a child cancelled on its own makes gather raise CancelledError; the others keep running") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto a = create_task(value_after(10s, 1));
      auto b = create_task(value_after(30ms, 2));
      auto g = create_task(gather(a, b));
      co_await sleep(5ms);
      a.cancel("child only");
      auto e = co_await capture(g);
      CHECK(test::cancel_message_of(e) == "child only");
      CHECK(g.cancelled());
      CHECK_FALSE(b.done());
      CHECK(co_await b == 2);
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("with return_exceptions every child is waited for and each outcome is kept") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto c = create_task(value_after(10s, 3));
      auto t0 = test::loop_now();
      auto g = create_task(gather(return_exceptions, value_after(30ms, 1), boom_after(5ms, "bad"), c, test::nap(1ms)));
      co_await sleep(10ms);
      c.cancel("stop c");
      auto [r1, r2, r3, r4] = co_await g;
      CHECK(test::loop_now() - t0 >= 30ms);  // waited past the failure for the slow child
      REQUIRE(r1.has_value());
      CHECK(r1.value() == 1);
      CHECK(r2.has_exception<Boom>());
      CHECK_FALSE(r2.cancelled());
      CHECK_THROWS_WITH_AS(r2.value(), "bad", Boom);
      CHECK(r3.cancelled());
      CHECK(test::cancel_message_of(r3.exception()) == "stop c");
      CHECK(r4.has_value());

      std::vector<Task<int>> ts;
      ts.push_back(value_after(1ms, 10));
      ts.push_back([]() -> Task<int> {
        throw Boom("vector");
        co_return 0;
      }());
      auto v = co_await gather(return_exceptions, std::move(ts));
      REQUIRE(v.size() == 2);
      CHECK(v[0].value() == 10);
      CHECK(v[1].has_exception<std::runtime_error>());
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("cancelling the task awaiting gather cancels every child") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto a = create_task(value_after(10s, 1));
      auto b = create_task(value_after(10s, 2));
      auto g = create_task(gather(a, b, value_after(10s, 3)));
      co_await sleep(5ms);
      auto t0 = test::loop_now();
      g.cancel("whole gather");
      auto e = co_await capture(g);
      CHECK(test::cancel_message_of(e) == "whole gather");
      CHECK(g.cancelled());
      CHECK(test::loop_now() - t0 < 2s);
      co_await capture(a);
      co_await capture(b);
      CHECK(a.cancelled());
      CHECK(b.cancelled());
      CHECK(a.base().cancel_message() == "whole gather");
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("with return_exceptions a cancelled gather raises CancelledError once every child is done") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto swallow = create_task(stubborn(10s));
      auto plain = create_task(value_after(10s, 2));
      auto g = create_task(gather(return_exceptions, swallow, plain));
      co_await sleep(5ms);
      g.cancel();
      auto e = co_await capture(g);
      CHECK(exception_is<CancelledError>(e));
      // It waited for the stubborn child's cleanup, which returned a value.
      CHECK(swallow.done());
      CHECK(swallow.result() == -1);
      CHECK(plain.cancelled());

      // Without return_exceptions all children swallowing the cancel still
      // ends in CancelledError: the gather itself was cancelled.
      auto s1 = create_task(stubborn(10s));
      auto g2 = create_task(gather(s1));
      co_await sleep(5ms);
      g2.cancel();
      e = co_await capture(g2);
      CHECK(exception_is<CancelledError>(e));
      CHECK(s1.result() == -1);
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("a cancel requested while the task runs is forwarded to gather's children at its await") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto self_cancelling = [](TaskHandle<int> a) -> Task<void> {
        current_task()->cancel("pending");
        co_await gather(a);
      };
      auto a = create_task(value_after(10s, 1));
      auto t = create_task(self_cancelling(a));
      auto e = co_await capture(t);
      CHECK(test::cancel_message_of(e) == "pending");
      co_await capture(a);
      CHECK(a.cancelled());
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("a cancel made after gather's children finished but before the awaiter resumed raises CancelledError") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      std::vector<std::string> log;
      TaskHandle<void> w;
      auto body = [](const TaskHandle<void>* self, std::vector<std::string>& log) -> Task<void> {
        auto [a, b] = co_await gather(test::value_then_cancel(self, 1), value_after(ms(0), 2));
        log.push_back("got " + std::to_string(a + b));
      };
      w = create_task(body(&w, log));
      std::exception_ptr e = co_await capture(w);
      CHECK(test::cancel_message_of(e) == "late");
      CHECK(w.cancelled());
      CHECK(log.empty());
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("a child failing after gather already raised is reported to the loop, never lost") {
  test::on_each_backend([](EventLoop& loop) {
    std::vector<std::string> reports;
    loop.set_exception_handler([&](std::exception_ptr e, std::string_view ctx) {
      reports.push_back(std::string(ctx) + " / " + test::what_of(e));
    });
    auto main = []() -> Task<void> {
      auto e = co_await capture(gather(boom_after(5ms, "first"), boom_after(20ms, "late")));
      CHECK(test::what_of(e) == "first");
      co_await sleep(60ms);  // the second child fails meanwhile; nobody holds its handle
    };
    loop.run_until_complete(main());
    REQUIRE(reports.size() == 1);
    CHECK(reports[0].find("never retrieved") != std::string::npos);
    CHECK(reports[0].find("late") != std::string::npos);
  });
}

TEST_CASE("each cancel of a task awaiting gather passes its own message to the children") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      std::vector<std::string> log;
      auto body = [](std::vector<std::string>& log) -> Task<void> { co_await gather(test::absorbs_two_cancels(log)); };
      auto g = create_task(body(log));
      co_await sleep(1ms);
      CHECK(g.cancel("one"));
      co_await sleep(1ms);
      CHECK(g.cancel("two"));
      CHECK_THROWS_AS(co_await g, CancelledError);  // asyncio: a gather whose cancel was requested raises
      CHECK(log == std::vector<std::string>{"one", "two"});
    };
    loop.run_until_complete(main());
  });
}
