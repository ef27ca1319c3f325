#include "coro/wait.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "coro/sleep.hpp"
#include "coro/task_handle.hpp"
#include "loop/event_loop.hpp"
#include "tests/coro/structured_helpers.hpp"
#include "tests/support.hpp"

// Behaviours ported from the wait and as_completed parts of CPython's
// Lib/test/test_asyncio/test_tasks.py (test_wait*, test_as_completed*).

using namespace corio;
using namespace std::chrono_literals;
using test::Boom;
using test::capture;
using test::ms;
using test::value_after;

namespace {

Task<int> fail_after(ms d) {
  co_await sleep(d);
  throw Boom("failed");
}

template <class T>
bool contains(const std::vector<TaskHandle<T>>& v, const TaskHandle<T>& h) {
  return std::any_of(v.begin(), v.end(), [&](const TaskHandle<T>& x) { return &x.base() == &h.base(); });
}

}  // namespace

TEST_CASE("wait with ALL_COMPLETED returns when every task is done") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto a = create_task(value_after(10ms, 1));
      auto b = create_task(value_after(30ms, 2));
      auto t0 = test::loop_now();
      std::vector hs{a, b};  // not a braced temporary inside co_await: GCC 12 miscompiles that (see wait.hpp)
      auto [done, pending] = co_await wait(hs);
      auto elapsed = test::loop_now() - t0;
      CHECK(done.size() == 2);
      CHECK(pending.empty());
      CHECK(contains(done, a));
      CHECK(contains(done, b));
      CHECK(elapsed >= 30ms);
      CHECK(elapsed < 2s);
      CHECK(a.result() + b.result() == 3);
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("wait with FIRST_COMPLETED returns when any task is done") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto slow = create_task(value_after(10s, 1));
      auto fast = create_task(value_after(10ms, 2));
      auto t0 = test::loop_now();
      std::vector hs{slow, fast};
      auto [done, pending] = co_await wait(hs, FIRST_COMPLETED);
      CHECK(test::loop_now() - t0 < 2s);
      REQUIRE(done.size() == 1);
      CHECK(&done[0].base() == &fast.base());
      REQUIRE(pending.size() == 1);
      CHECK(&pending[0].base() == &slow.base());
      CHECK_FALSE(slow.done());  // not cancelled by wait
      slow.cancel();
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("wait with FIRST_EXCEPTION returns at the first failure; a cancelled task does not count") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto slow = create_task(value_after(10s, 1));
      auto cancelled = create_task(value_after(10s, 2));
      auto bad = create_task(fail_after(30ms));
      cancelled.cancel();
      std::vector hs{slow, cancelled, bad};
      auto r = co_await wait(hs, FIRST_EXCEPTION);
      auto& [done, pending] = r;
      CHECK(done.size() == 2);  // the cancelled one and the failure
      CHECK(contains(done, bad));
      CHECK(contains(done, cancelled));
      CHECK(pending.size() == 1);
      CHECK(bad.exception() != nullptr);
      slow.cancel();

      // Without any failure it waits for all.
      auto x = create_task(value_after(5ms, 1));
      auto y = create_task(value_after(15ms, 2));
      std::vector xy{x, y};
      auto all = co_await wait(xy, FIRST_EXCEPTION);
      CHECK(all.done.size() == 2);
      CHECK(all.pending.empty());
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("wait with a timeout returns what is done; pending tasks keep running and nothing is raised") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto a = create_task(value_after(10ms, 1));
      auto b = create_task(value_after(60ms, 2));
      auto t0 = test::loop_now();
      std::vector hs{a, b};
      auto r = co_await wait(hs, ALL_COMPLETED, 30ms);
      auto& [done, pending] = r;
      auto elapsed = test::loop_now() - t0;
      CHECK(elapsed >= 30ms);
      CHECK(elapsed < 2s);
      REQUIRE(done.size() == 1);
      CHECK(&done[0].base() == &a.base());
      REQUIRE(pending.size() == 1);
      CHECK_FALSE(b.cancelled());
      CHECK(co_await b == 2);
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("wait returns at once when the condition already holds") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto a = create_task(value_after(0ms, 1));
      auto b = create_task(value_after(10s, 2));
      co_await a;
      auto t0 = test::loop_now();
      std::vector hs{a, b};
      auto r = co_await wait(hs, FIRST_COMPLETED);
      CHECK(test::loop_now() - t0 < 1s);
      CHECK(r.done.size() == 1);
      CHECK(r.pending.size() == 1);
      std::vector just_a{a};
      r = co_await wait(just_a, ALL_COMPLETED);
      CHECK(r.done.size() == 1);
      b.cancel();
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("wait does not raise the tasks' exceptions and refuses an empty set") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto bad = create_task(fail_after(5ms));
      auto good = create_task(value_after(10ms, 3));
      std::vector hs{bad, good};
      auto r = co_await wait(hs);
      CHECK(r.done.size() == 2);
      CHECK_THROWS_AS(bad.result(), Boom);
      CHECK(good.result() == 3);

      auto e = co_await capture(wait(std::vector<TaskHandle<int>>{}));
      CHECK(exception_is<std::invalid_argument>(e));
    };
    loop.run_until_complete(main());
  });
}

// asyncio.wait(set()) raises ValueError("Set of Tasks/Futures is empty.").
TEST_CASE("wait on an empty set raises ValueError, as asyncio does") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto e = co_await capture(wait(std::vector<TaskHandle<int>>{}, FIRST_COMPLETED));
      CHECK(exception_is<ValueError>(e));
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("cancelling a task in wait raises CancelledError in it and leaves the waited tasks alone") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto a = create_task(value_after(30ms, 1));
      auto waiter = [](TaskHandle<int> a) -> Task<void> {
        std::vector hs{a};
        co_await wait(hs, ALL_COMPLETED, 10s);
      };
      auto w = create_task(waiter(a));
      co_await sleep(5ms);
      auto t0 = test::loop_now();
      w.cancel("stop waiting");
      auto e = co_await capture(w);
      CHECK(test::cancel_message_of(e) == "stop waiting");
      CHECK(test::loop_now() - t0 < 25ms + 1s);
      CHECK_FALSE(a.done());
      CHECK(co_await a == 1);
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("a cancel made after wait was satisfied but before the awaiter resumed raises CancelledError") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      std::vector<std::string> log;
      TaskHandle<void> w;
      auto body = [](const TaskHandle<void>* self, std::vector<std::string>& log) -> Task<void> {
        std::vector<TaskHandle<int>> hs{create_task(test::value_then_cancel(self, 1))};
        auto r = co_await wait(hs);
        log.push_back("done " + std::to_string(r.done.size()));
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

TEST_CASE("as_completed yields tasks in completion order, those already done first") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto already = create_task(value_after(0ms, 0));
      co_await already;
      std::vector<TaskHandle<int>> hs{create_task(value_after(30ms, 30)), create_task(value_after(10ms, 10)),
                                      already, create_task(value_after(20ms, 20))};
      auto ac = as_completed(hs);
      CHECK(ac.size() == 4);
      std::vector<int> order;
      while (ac.remaining() > 0) {
        TaskHandle<int> h = co_await ac.next();
        CHECK(h.done());
        order.push_back(co_await h);
      }
      CHECK(order == std::vector<int>{0, 10, 20, 30});
      auto e = co_await capture([](AsCompleted<int>& ac) -> Task<void> { co_await ac.next(); }(ac));
      CHECK(exception_is<InvalidStateError>(e));
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("as_completed records completions made while nobody waits, and hands back failures as handles") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      std::vector<Task<int>> ts;
      ts.push_back(value_after(20ms, 2));
      ts.push_back(fail_after(5ms));
      ts.push_back(value_after(10ms, 1));
      auto ac = as_completed(std::move(ts));  // spawns them
      co_await sleep(40ms);                   // all finish meanwhile
      auto first = co_await ac.next();
      CHECK_THROWS_AS(first.result(), Boom);
      CHECK((co_await ac.next()).result() == 1);
      CHECK((co_await ac.next()).result() == 2);
      CHECK(ac.remaining() == 0);
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("as_completed with a timeout yields what finished in time, then TimeoutError for the rest") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto slow = create_task(value_after(10s, 2));
      auto ac = as_completed(std::vector{create_task(value_after(5ms, 1)), slow}, 30ms);
      auto t0 = test::loop_now();
      CHECK((co_await ac.next()).result() == 1);
      auto next = [](AsCompleted<int>& ac) -> Task<int> { co_return (co_await ac.next()).result(); };
      auto e = co_await capture(next(ac));
      CHECK(exception_is<TimeoutError>(e));
      CHECK(test::loop_now() - t0 >= 25ms);
      CHECK(test::loop_now() - t0 < 2s);
      CHECK(ac.remaining() == 0);
      CHECK_FALSE(slow.done());  // never cancelled by as_completed
      slow.cancel();

      // A timeout that never fires changes nothing.
      auto ac2 = as_completed(std::vector{create_task(value_after(1ms, 5))}, 10s);
      CHECK((co_await ac2.next()).result() == 5);
    };
    loop.run_until_complete(main());
  });
}

// asyncio's as_completed takes from a queue of finished tasks: a getter woken
// and then cancelled raises CancelledError and leaves the task queued.
TEST_CASE("a cancel made after next() was woken but before it resumed raises and loses nothing") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      std::vector<std::string> log;
      TaskHandle<void> w;
      std::vector<TaskHandle<int>> hs;
      auto body = [](const TaskHandle<void>* self, std::vector<TaskHandle<int>>& hs,
                     std::vector<std::string>& log) -> Task<void> {
        hs.push_back(create_task(test::value_then_cancel(self, 7)));
        auto ac = as_completed(hs);
        std::exception_ptr e = nullptr;
        try {
          TaskHandle<int> h = co_await ac.next();
          log.push_back("got " + std::to_string(h.result()));
        } catch (const CancelledError&) {
          e = std::current_exception();
        }
        CHECK(test::cancel_message_of(e) == "late");
        CHECK(ac.remaining() == 1);
        TaskHandle<int> h = co_await ac.next();  // the same task, not lost
        CHECK(h.result() == 7);
      };
      w = create_task(body(&w, hs, log));
      CHECK(co_await capture(w) == nullptr);
      CHECK(log.empty());
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("cancelling a task in as_completed's next() loses nothing; one next() at a time") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto ac = as_completed(std::vector{create_task(value_after(30ms, 7))});
      auto consumer = [](AsCompleted<int>& ac) -> Task<int> { co_return (co_await ac.next()).result(); };
      auto c1 = create_task(consumer(ac));
      co_await sleep(5ms);
      // A second concurrent next() is refused.
      auto e = co_await capture(consumer(ac));
      CHECK(exception_is<InvalidStateError>(e));
      c1.cancel();
      e = co_await capture(c1);
      CHECK(exception_is<CancelledError>(e));
      CHECK(ac.remaining() == 1);
      CHECK(co_await create_task(consumer(ac)) == 7);
      CHECK(ac.remaining() == 0);
    };
    loop.run_until_complete(main());
  });
}

// asyncio.wait and as_completed take a set: a task given twice is one task.
TEST_CASE("wait and as_completed count a task given twice once") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto a = create_task(value_after(5ms, 1));
      auto b = create_task(value_after(200ms, 2));
      std::vector hs{a, b, a};
      auto [done, pending] = co_await wait(hs, FIRST_COMPLETED);
      CHECK(done.size() == 1);
      CHECK(pending.size() == 1);
      CHECK(contains(done, a));
      CHECK(contains(pending, b));

      std::vector again{b, a, b, a};
      auto ac = as_completed(again);
      CHECK(ac.size() == 2);
      TaskHandle<int> first = co_await ac.next();
      CHECK(&first.base() == &a.base());  // already done: yielded first
      TaskHandle<int> second = co_await ac.next();
      CHECK(&second.base() == &b.base());
      CHECK(ac.remaining() == 0);
      CHECK(co_await second == 2);
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("wait and as_completed with a huge timeout wait for the tasks instead of timing out at once") {
  // asyncio.wait({t}, timeout=1e300) -> done 1 pending 0; as_completed(timeout=1e300) yields t.
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      std::vector<TaskHandle<void>> hs{create_task(test::nap(20ms))};
      auto r = co_await wait(hs, ALL_COMPLETED, Duration::max());
      CHECK(r.done.size() == 1);
      CHECK(r.pending.empty());
      std::vector<TaskHandle<void>> hs2{create_task(test::nap(20ms))};
      auto ac = as_completed(hs2, Duration::max());
      std::exception_ptr e;
      try {
        auto h = co_await ac.next();
        CHECK(h.done());
      } catch (...) {
        e = std::current_exception();
      }
      CHECK(e == nullptr);
    };
    loop.run_until_complete(main());
  });
}
