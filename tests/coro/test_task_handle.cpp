#include "coro/task_handle.hpp"

#include <doctest/doctest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "coro/shield.hpp"
#include "coro/sleep.hpp"
#include "coro/timeout.hpp"
#include "loop/event_loop.hpp"
#include "tests/coro/structured_helpers.hpp"
#include "tests/support.hpp"

using namespace corio;
using namespace std::chrono_literals;

namespace {

Task<int> value_after(std::chrono::milliseconds d, int v) {
  co_await sleep(d);
  co_return v;
}

Task<void> fail_after(std::chrono::milliseconds d) {
  co_await sleep(d);
  throw std::runtime_error("child failed");
}

// Sleeps 10 s, swallows a cancel of that sleep, and returns v either way.
Task<int> swallows_cancel(int v) {
  try {
    co_await sleep(10s);
  } catch (const CancelledError&) {
  }
  co_return v;
}

}  // namespace

TEST_CASE("create_task runs the task concurrently and awaiting the handle yields its value") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<int> {
      auto a = create_task(value_after(20ms, 1), "a");
      auto b = create_task(value_after(10ms, 2), "b");
      CHECK(a.name() == "a");
      CHECK_FALSE(a.done());
      int sum = co_await a + co_await b;
      CHECK(a.done());
      CHECK(b.done());
      co_return sum;
    };
    auto t0 = Clock::now();
    CHECK(loop.run_until_complete(main()) == 3);
    CHECK(Clock::now() - t0 < 1s);  // concurrent: ~20 ms, not 30 ms + scheduling noise
  });
}

TEST_CASE("a task's exception reaches whoever awaits it, and result() rethrows it") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto t = create_task(fail_after(1ms));
      CHECK_THROWS_WITH_AS(co_await t, "child failed", std::runtime_error);
      CHECK(t.done());
      CHECK_FALSE(t.cancelled());
      CHECK(t.exception() != nullptr);
      CHECK_THROWS_AS(t.result(), std::runtime_error);
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("result() and exception() on a pending task raise InvalidStateError") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto t = create_task(value_after(5ms, 1));
      CHECK_THROWS_AS(t.result(), InvalidStateError);
      CHECK_THROWS_AS(t.exception(), InvalidStateError);
      CHECK(co_await t == 1);
      CHECK(t.result() == 1);
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("a task cancelled before its first step never runs its body") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      bool ran = false;
      auto body = [](bool& r) -> Task<void> {
        r = true;
        co_return;
      };
      auto t = create_task(body(ran));
      CHECK(t.cancel("early"));
      CHECK_THROWS_AS(co_await t, CancelledError);
      CHECK(t.cancelled());
      CHECK_FALSE(ran);
      CHECK_FALSE(t.cancel());  // already done
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("cancel() interrupts a sleeping task with the message, and cleanup may await") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      std::vector<std::string> log;
      auto sleeper = [](std::vector<std::string>& log) -> Task<int> {
        try {
          co_await sleep(10s);
        } catch (const CancelledError& e) {
          log.push_back(std::string("caught:") + e.message());
        }
        co_await sleep(1ms);  // an await in cleanup still works
        log.push_back("cleaned");
        throw CancelledError("re-raised");
      };
      auto t = create_task(sleeper(log));
      co_await sleep(1ms);
      auto t0 = Clock::now();
      CHECK(t.cancel("stop now"));
      CHECK(t.cancelling() == 1);
      try {
        co_await t;
        FAIL("expected CancelledError");
      } catch (const CancelledError& e) {
        CHECK(e.message() == "re-raised");
      }
      CHECK(Clock::now() - t0 < 1s);
      CHECK(t.cancelled());
      REQUIRE(log.size() == 2);
      CHECK(log[0] == "caught:stop now");
      CHECK(log[1] == "cleaned");
    };
    loop.run_until_complete(main());
  });
}

// Two requests made before the task ran again arrive as one CancelledError,
// as in asyncio (Task.__step consumes _must_cancel): its cleanup may await.
// The error carries the first request's message, the one the interrupted wait
// accepted (asyncio 3.11 prints "caught:('one',)" for this scenario). A
// request made after that delivery interrupts the cleanup.
TEST_CASE("cancels that arrive before the task runs again are delivered as one CancelledError") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      std::vector<std::string> log;
      auto sleeper = [](std::vector<std::string>& log) -> Task<int> {
        try {
          co_await sleep(10s);
        } catch (const CancelledError& e) {
          log.push_back("caught:" + e.message());
        }
        try {
          co_await sleep(1ms);
          log.push_back("cleaned");
        } catch (const CancelledError& e) {
          log.push_back("cleanup cancelled:" + e.message());
        }
        try {
          co_await sleep(10s);
        } catch (const CancelledError& e) {
          log.push_back("third:" + e.message());
        }
        co_return current_task()->cancelling();
      };
      auto t = create_task(sleeper(log));
      co_await sleep(1ms);
      CHECK(t.cancel("one"));
      CHECK(t.cancel("two"));  // the task has not run since the first
      co_await sleep(20ms);     // it caught one CancelledError and cleaned up
      CHECK(t.cancel("three")); // a new request, after the delivery
      CHECK(co_await t == 3);
      REQUIRE(log.size() == 3);
      CHECK(log[0] == "caught:one");
      CHECK(log[1] == "cleaned");
      CHECK(log[2] == "third:three");
    };
    loop.run_until_complete(main());
  });
}

// Nothing has accepted a request before the task's first step, so each one
// replaces the message, as asyncio's _cancel_message does (it prints
// "unstarted: ('q',)").
TEST_CASE("a task cancelled twice before its first step ends with the last message") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto t = create_task(value_after(10s, 1));
      CHECK(t.cancel("p"));
      CHECK(t.cancel("q"));
      try {
        co_await t;
        FAIL("not cancelled");
      } catch (const CancelledError& e) {
        CHECK(e.message() == "q");
      }
      CHECK(t.cancelling() == 2);
    };
    loop.run_until_complete(main());
  });
}

// The task catches the first CancelledError and then awaits a task that is
// already done: the message seen by whoever awaits it later is still "one".
TEST_CASE("a cancelled task records the message of the request its wait accepted") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto t = create_task(value_after(10s, 1));
      co_await sleep(1ms);
      CHECK(t.cancel("one"));
      CHECK(t.cancel("two"));
      try {
        co_await t;
        FAIL("not cancelled");
      } catch (const CancelledError& e) {
        CHECK(e.message() == "one");
      }
      CHECK(t.cancelled());
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("a task that swallows its cancellation finishes normally") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto t = create_task(swallows_cancel(9));
      co_await sleep(1ms);
      t.cancel();
      CHECK(co_await t == 9);
      CHECK_FALSE(t.cancelled());
      CHECK(t.uncancel() == 0);
    };
    loop.run_until_complete(main());
  });
}

// CPython 3.11: the forwarded cancel("first") ended in the inner task's
// value, so the request that cancels the outer task is the later one, and
// its message is the one raised: CancelledError('second').
TEST_CASE("a cancel after a forwarded one that the awaited task swallowed raises its own message") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto outer_body = [](TaskHandle<int> in) -> Task<std::string> {
        try {
          co_return std::to_string(co_await in);
        } catch (const CancelledError& e) {
          co_return "cancelled " + e.message();
        }
      };
      auto inner = create_task(swallows_cancel(7), "inner");
      auto outer = create_task(outer_body(inner), "outer");
      co_await sleep(1ms);
      outer.cancel("first");
      co_await sleep(0s);  // the inner task swallows it and ends; outer is woken, not yet run
      CHECK(inner.done());
      CHECK_FALSE(outer.done());
      outer.cancel("second");
      CHECK(co_await outer == "cancelled second");
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("cancelling a task that awaits another task cancels the inner one too") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto inner = create_task(value_after(10s, 1), "inner");
      auto outer_body = [](TaskHandle<int> in) -> Task<int> { co_return co_await in; };
      auto outer = create_task(outer_body(inner), "outer");
      co_await sleep(1ms);
      outer.cancel("from main");
      CHECK_THROWS_AS(co_await outer, CancelledError);
      CHECK(inner.cancelled());
      CHECK(outer.cancelled());
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("a cancel made after the awaited task finished but before the awaiter resumed wins over the result") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      std::vector<std::string> log;
      TaskHandle<void> w;
      auto body = [](const TaskHandle<void>* self, std::vector<std::string>& log) -> Task<void> {
        auto t = create_task(test::value_then_cancel(self, 42));
        int v = co_await t;  // t is done when the cancel arrives
        log.push_back("got " + std::to_string(v));
      };
      w = create_task(body(&w, log));
      std::exception_ptr e = co_await test::capture(w);
      CHECK(test::cancel_message_of(e) == "late");
      CHECK(w.cancelled());
      CHECK(log.empty());  // asyncio: the result is not delivered
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("a cancel requested while the task is running is delivered at its next suspension") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto self_cancel = []() -> Task<int> {
        current_task()->cancel("self");
        int steps = 1;  // still running: nothing thrown yet
        try {
          co_await sleep(0s);
        } catch (const CancelledError& e) {
          CHECK(e.message() == "self");
          co_return steps;
        }
        co_return -1;
      };
      CHECK(co_await create_task(self_cancel()) == 1);
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("an exception nobody retrieves is reported when the task is freed, with its name") {
  test::on_each_backend([](EventLoop& loop) {
    std::vector<std::string> reports;
    loop.set_exception_handler([&](std::exception_ptr, std::string_view ctx) { reports.emplace_back(ctx); });
    auto main = []() -> Task<void> {
      { auto t = create_task(fail_after(1ms), "forgotten"); }
      co_await sleep(10ms);
    };
    loop.run_until_complete(main());
    REQUIRE(reports.size() == 1);
    CHECK(reports[0].find("never retrieved") != std::string::npos);
    CHECK(reports[0].find("forgotten") != std::string::npos);
  });
}

TEST_CASE("current_task and all_tasks see the running tasks") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = [](EventLoop& l) -> Task<void> {
      TaskBase* me = current_task();
      REQUIRE(me != nullptr);
      CHECK(me->name() == "main");
      auto t = create_task(value_after(5ms, 0), "child");
      auto all = l.all_tasks();
      CHECK(all.size() == 2);
      co_await t;
      CHECK(l.all_tasks().size() == 1);
    };
    loop.run_until_complete(main(loop), "main");
    CHECK(current_task() == nullptr);
  });
}

TEST_CASE("create_task outside a running loop raises NoRunningLoopError") {
  CHECK_THROWS_AS(create_task(value_after(1ms, 1)), NoRunningLoopError);
}

// A task awaiting its own handle would wait for its own end forever; asyncio
// raises RuntimeError there.
TEST_CASE("a task awaiting its own handle gets InvalidStateError instead of hanging") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      TaskHandle<int> self;
      auto body = [](TaskHandle<int>* self) -> Task<int> {
        co_await sleep(0ms);
        try {
          co_return co_await *self;
        } catch (const InvalidStateError& e) {
          CHECK(std::string(e.what()).find("cannot await itself") != std::string::npos);
          co_return 7;
        }
      };
      self = create_task(body(&self), "selfish");
      CHECK(co_await wait_for(self, 5s) == 7);
    };
    loop.run_until_complete(main());
  });
}

// asyncio's Task.cancel(msg) passes msg to the awaited task each time; the
// awaiting task keeps only its first message for itself.
TEST_CASE("each cancel of a task awaiting another passes its own message on") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      std::vector<std::string> log;
      auto inner = create_task(test::absorbs_two_cancels(log), "inner");
      auto outer_body = [](TaskHandle<int> in) -> Task<int> { co_return co_await in; };
      auto outer = create_task(outer_body(inner), "outer");
      co_await sleep(1ms);
      CHECK(outer.cancel("one"));
      co_await sleep(1ms);  // inner takes "one" and waits again
      CHECK(outer.cancel("two"));
      CHECK(co_await outer == 7);  // as in asyncio: inner absorbed both, its result comes through
      CHECK(log == std::vector<std::string>{"one", "two"});
    };
    loop.run_until_complete(main());
  });
}

// asyncio runs a task's done callbacks in the order they were added, so the
// tasks awaiting it resume in the order they started waiting. Waiters that
// leave first (a shield cancelled from the middle, then from the end of the
// list) do not disturb that order for the others, nor for one added after.
TEST_CASE("tasks awaiting one task resume in the order they started waiting") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      std::vector<int> log;
      auto target = create_task(value_after(5ms, 1), "target");
      auto plain = [](TaskHandle<int> t, int n, std::vector<int>& log) -> Task<void> {
        co_await t;
        log.push_back(n);
      };
      auto shielded = [](TaskHandle<int> t, int n, std::vector<int>& log) -> Task<void> {
        co_await shield(t);
        log.push_back(n);
      };
      std::vector<TaskHandle<void>> ws;
      ws.push_back(create_task(plain(target, 0, log)));
      ws.push_back(create_task(shielded(target, 1, log)));
      ws.push_back(create_task(plain(target, 2, log)));
      ws.push_back(create_task(shielded(target, 3, log)));
      co_await sleep(0s);  // all four wait now, in that order
      ws[1].cancel();
      ws[3].cancel();
      co_await sleep(0s);  // both left the target's waiters
      ws.push_back(create_task(plain(target, 4, log)));
      for (auto& w : ws) (void)co_await test::capture(w);
      CHECK(ws[1].cancelled());
      CHECK(ws[3].cancelled());
      CHECK(log == std::vector<int>{0, 2, 4});
    };
    loop.run_until_complete(main());
  });
}
