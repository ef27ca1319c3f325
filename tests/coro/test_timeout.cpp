#include "coro/timeout.hpp"

#include <doctest/doctest.h>

#include <string>
#include <thread>

#include "coro/shield.hpp"
#include "coro/sleep.hpp"
#include "coro/task_group.hpp"
#include "coro/task_handle.hpp"
#include "loop/event_loop.hpp"
#include "tests/coro/structured_helpers.hpp"
#include "tests/support.hpp"

// Behaviours ported from CPython's Lib/test/test_asyncio/test_timeouts.py and
// test_waitfor.py.

using namespace corio;
using namespace std::chrono_literals;
using test::Boom;
using test::capture;
using test::ms;
using test::value_after;

namespace {

// Ignores cancellation until `total` has passed (CPython's SlowTask).
Task<int> slow_ignoring_cancel(ms total, bool& exited) {
  auto end = Clock::now() + total;
  while (Clock::now() < end) {
    try {
      co_await sleep(std::chrono::duration_cast<ms>(end - Clock::now()) + 1ms);
    } catch (const CancelledError&) {
    }
  }
  exited = true;
  co_return 5;
}

// On cancel: cleans up (awaiting `cleanup`), sets `finished`, re-raises.
Task<int> cancellable_with_cleanup(ms cleanup, bool& finished) {
  std::exception_ptr e;
  try {
    co_await sleep(10s);
  } catch (const CancelledError&) {
    e = std::current_exception();
  }
  co_await sleep(cleanup);
  finished = true;
  if (e) std::rethrow_exception(e);
  co_return 1;
}

}  // namespace

TEST_CASE("a timeout scope raises TimeoutError at its deadline and reports expired()") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto t0 = test::loop_now();
      Timeout cm = timeout(20ms);
      auto e = co_await capture(cm.run(test::nap(10s)));
      auto elapsed = test::loop_now() - t0;
      CHECK(exception_is<TimeoutError>(e));
      CHECK(cm.expired());
      CHECK(elapsed >= 20ms);
      CHECK(elapsed < 2s);

      auto deadline = current_scheduler().now() + 10ms;
      Timeout at = timeout_at(deadline);
      e = co_await capture(at.run(test::nap(10s)));
      CHECK(exception_is<TimeoutError>(e));
      CHECK(at.expired());
      CHECK(at.when() == deadline);
      CHECK(current_task()->cancelling() == 0);
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("the body sees CancelledError at the deadline and may await in its cleanup before TimeoutError") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      bool finished = false;
      auto t0 = test::loop_now();
      auto e = co_await capture(timeout(10ms).run(cancellable_with_cleanup(30ms, finished)));
      CHECK(exception_is<TimeoutError>(e));
      CHECK(finished);
      CHECK(test::loop_now() - t0 >= 40ms);  // the cleanup ran to its end first
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("nested scopes with one deadline: only the outer raises TimeoutError, the inner lets CancelledError through") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto deadline = current_scheduler().now() + 10ms;
      Timeout cm1 = timeout_at(deadline);
      Timeout cm2 = timeout_at(deadline);
      auto inner = [](Timeout& cm2, bool& cancelled) -> Task<void> {
        bool c = false;
        try {
          co_await cm2.run(test::nap(10s));
        } catch (const CancelledError&) {
          c = true;
        }
        cancelled = c;
        if (c) throw CancelledError();
      };
      bool cancelled = false;
      auto e = co_await capture(cm1.run(inner(cm2, cancelled)));
      CHECK(exception_is<TimeoutError>(e));
      CHECK(cancelled);
      CHECK(cm1.expired());
      CHECK(cm2.expired());
      CHECK(current_task()->cancelling() == 0);
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("a scope that does not expire changes nothing; a scope without deadline never expires") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Timeout cm = timeout(10s);
      int v = co_await cm.run(value_after(5ms, 3));
      CHECK(v == 3);
      CHECK_FALSE(cm.expired());
      CHECK(*cm.when() > current_scheduler().now());

      Timeout none = timeout(std::nullopt);
      co_await none.run(test::nap(10ms));
      CHECK_FALSE(none.expired());
      CHECK_FALSE(none.when().has_value());

      Timeout none_at = timeout_at(std::nullopt);
      co_await none_at.run(test::nap(1ms));
      CHECK_FALSE(none_at.expired());
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("timeout(0) and deadlines in the past expire at the next loop iteration, even around sleep(0)") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      for (auto d : {0ms, -11ms}) {
        auto t0 = current_scheduler().now();
        Timeout cm = timeout(d);
        auto e = co_await capture(cm.run(test::nap(10s)));
        CHECK(exception_is<TimeoutError>(e));
        CHECK(cm.expired());
        CHECK(*cm.when() <= current_scheduler().now());
        CHECK(current_scheduler().now() - t0 < 1s);

        Timeout cm0 = timeout(d);
        e = co_await capture(cm0.run(test::nap(0ms)));
        CHECK(exception_is<TimeoutError>(e));
        CHECK(cm0.expired());
      }
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("a foreign exception passes through a scope unchanged, expired or not") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto raise_now = []() -> Task<void> {
        throw Boom("foreign");
        co_return;
      };
      Timeout cm = timeout(10ms);
      auto e = co_await capture(cm.run(raise_now()));
      CHECK(exception_is<Boom>(e));
      CHECK_FALSE(cm.expired());

      // Raised by the body's cleanup after the deadline cancelled it.
      auto crash = []() -> Task<void> {
        try {
          co_await sleep(1s);
        } catch (const CancelledError&) {
        }
        throw Boom("in cleanup");
      };
      Timeout cm2 = timeout(10ms);
      e = co_await capture(cm2.run(crash()));
      CHECK(exception_is<Boom>(e));
      CHECK(cm2.expired());
      CHECK(current_task()->cancelling() == 0);
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("an outside cancel is never turned into TimeoutError") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      // A self-cancel inside a scope that has not expired.
      auto self_cancel = []() -> Task<void> {
        current_task()->cancel();
        co_await sleep(10s);
      };
      Timeout cm = timeout(10s);
      auto e = co_await capture(cm.run(self_cancel()));
      CHECK(exception_is<CancelledError>(e));
      CHECK_FALSE(cm.expired());
      current_task()->uncancel();

      // An outside cancel racing with the deadline: both requests arrive
      // before the task runs again, so the scope's uncancel() leaves one and
      // CancelledError wins. The canceller's timer is due first (15 < 20 ms),
      // so its cancel() lands right after the deadline's, in one iteration.
      // The error carries the message of the request the sleep accepted, the
      // deadline's (empty): CPython 3.11 prints "CancelledError() True 1".
      auto canceller = [](TaskHandle<void>& v) -> Task<void> {
        co_await sleep(15ms);
        v.cancel("outside");
      };
      auto victim = [](bool& tripped) -> Task<void> {
        Timeout t = timeout(20ms);
        co_await t.run([](bool& tr) -> Task<void> {
          std::this_thread::sleep_for(40ms);  // both timers become due meanwhile
          tr = true;
          co_await sleep(10s);
        }(tripped));
      };
      bool tripped = false;
      TaskHandle<void> v;
      auto c = create_task(canceller(v));
      v = create_task(victim(tripped));
      e = co_await capture(v);
      co_await c;
      CHECK(tripped);
      CHECK(test::cancel_message_of(e).empty());
      CHECK(v.cancelled());
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("a task whose timeout expired is not left cancelled") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto outer = []() -> Task<int> {
        auto e = co_await capture(timeout(1ms).run(test::nap(10s)));
        CHECK(exception_is<TimeoutError>(e));
        CHECK(current_task()->cancelling() == 0);
        co_await sleep(5ms);  // nothing left armed
        co_return 1;
      };
      auto t = create_task(outer());
      CHECK(co_await t == 1);
      CHECK(t.done());
      CHECK_FALSE(t.cancelled());
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("nested scopes expiring in one busy iteration: the outer one still interrupts later work") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto t0 = test::loop_now();
      auto body = []() -> Task<void> {
        auto busy = []() -> Task<void> {
          std::this_thread::sleep_for(100ms);  // the loop is busy: both deadlines pass
          co_await sleep(1s);
        };
        auto e = co_await capture(timeout(10ms).run(busy()));
        // The inner scope sees two requests (its own and the outer's), so it
        // lets CancelledError through (as asyncio does); either way the outer
        // deadline must end the work below.
        CHECK((exception_is<TimeoutError>(e) || exception_is<CancelledError>(e)));
        if (exception_is<CancelledError>(e)) std::rethrow_exception(e);
        co_await sleep(10s);
      };
      auto e = co_await capture(timeout(50ms).run(body()));
      CHECK(exception_is<TimeoutError>(e));
      CHECK(test::loop_now() - t0 < 2s);
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("reschedule moves the deadline and when() follows it") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto& s = current_scheduler();
      // From another task, while the scope is active (CPython test_reschedule).
      auto deadline1 = s.now() + 10s;
      auto deadline2 = deadline1 + 20s;
      auto f = [](Timeout& cm) -> Task<void> { co_await cm.run(test::nap(50s)); };
      Timeout cm = timeout_at(deadline1);
      auto task = create_task(f(cm));
      co_await sleep(0s);
      CHECK(cm.when() == deadline1);
      cm.reschedule(deadline2);
      CHECK(cm.when() == deadline2);
      cm.reschedule(std::nullopt);
      CHECK_FALSE(cm.when().has_value());
      task.cancel();
      auto e = co_await capture(task);
      CHECK(exception_is<CancelledError>(e));
      CHECK_FALSE(cm.expired());

      // From the body: pushing the deadline back avoids the timeout...
      auto extend = [](Timeout& t) -> Task<int> {
        co_await sleep(10ms);
        t.reschedule_in(1s);
        co_await sleep(30ms);
        co_return 9;
      };
      Timeout t1 = timeout(20ms);
      CHECK(co_await t1.run(extend(t1)) == 9);
      CHECK_FALSE(t1.expired());

      // ...and pulling it in to the past expires at the next iteration.
      auto shorten = [](Timeout& t) -> Task<void> {
        t.reschedule(current_scheduler().now() - 1s);
        co_await sleep(10s);
      };
      auto t0 = test::loop_now();
      Timeout t2 = timeout(10s);
      e = co_await capture(t2.run(shorten(t2)));
      CHECK(exception_is<TimeoutError>(e));
      CHECK(test::loop_now() - t0 < 2s);
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("reschedule refuses a scope not entered, expired or finished; a scope is entered once") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Timeout fresh = timeout(10ms);
      CHECK_THROWS_WITH_AS(fresh.reschedule(std::nullopt), "Timeout has not been entered", InvalidStateError);

      Timeout done = timeout(10ms);
      co_await done.run(test::nap(0ms));
      CHECK_THROWS_WITH_AS(done.reschedule(std::nullopt), doctest::Contains("finished"), InvalidStateError);
      auto e = co_await capture(done.run(test::nap(0ms)));
      CHECK(test::what_of(e) == "Timeout has already been entered");

      Timeout expired = timeout(1ms);
      co_await capture(expired.run(test::nap(1s)));
      CHECK_THROWS_WITH_AS(expired.reschedule(std::nullopt), doctest::Contains("expired"), InvalidStateError);
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("a timeout in cleanup after a swallowed cancel still raises TimeoutError; a new cancel stays a cancel") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto after_cancel = [](bool recancel) -> Task<std::exception_ptr> {
        try {
          current_task()->cancel();
          co_await sleep(1s);  // work that gets cancelled
        } catch (const CancelledError&) {
        }
        CHECK(current_task()->cancelling() == 1);
        auto cleanup = [](bool recancel) -> Task<void> {
          if (recancel) current_task()->cancel();
          co_await sleep(2s);
        };
        co_return co_await capture(timeout(recancel ? 1s : 0s).run(cleanup(recancel)));
      };
      auto e = co_await create_task(after_cancel(false));
      CHECK(exception_is<TimeoutError>(e));
      e = co_await create_task(after_cancel(true));
      CHECK(exception_is<CancelledError>(e));
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("a timeout around a task group cancels its children and raises TimeoutError") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      int cancels = 0;
      auto t0 = test::loop_now();
      auto e = co_await capture(timeout(20ms).run(task_group([&](TaskGroup& tg) -> Task<void> {
        tg.create_task(test::sleep_counting(10s, cancels));
        tg.create_task(test::sleep_counting(10s, cancels));
        co_await test::sleep_counting(10s, cancels);
      })));
      CHECK(exception_is<TimeoutError>(e));
      CHECK(cancels == 3);
      CHECK(test::loop_now() - t0 < 2s);
      CHECK(current_task()->cancelling() == 0);
    };
    loop.run_until_complete(main());
  });
}

// ---- wait_for ---------------------------------------------------------------------

TEST_CASE("wait_for returns the value of work that finishes in time") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto done = []() -> Task<std::string> { co_return "done"; };
      CHECK(co_await wait_for(done(), 100s) == "done");
      auto h = create_task(value_after(10ms, 4));
      CHECK(co_await wait_for(h, 1s) == 4);
      co_await wait_for(test::nap(1ms), 1s);
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("wait_for cancels the work at the deadline and waits for its cleanup before TimeoutError") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      // A coroutine runs inline...
      bool finished = false;
      auto t0 = test::loop_now();
      auto e = co_await capture(wait_for(cancellable_with_cleanup(20ms, finished), 10ms));
      CHECK(exception_is<TimeoutError>(e));
      CHECK(finished);
      CHECK(test::loop_now() - t0 >= 30ms);
      CHECK(test::loop_now() - t0 < 2s);

      // ...a spawned task is cancelled and awaited.
      bool task_done = false;
      auto inner = create_task(cancellable_with_cleanup(20ms, task_done));
      e = co_await capture(wait_for(inner, 10ms));
      CHECK(exception_is<TimeoutError>(e));
      CHECK(task_done);
      CHECK(inner.cancelled());
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("wait_for returns the value of work that swallows the cancellation") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto return_42 = []() -> Task<int> {
        try {
          co_await sleep(10s);
        } catch (const CancelledError&) {
          co_return 42;
        }
        co_return 0;
      };
      CHECK(co_await wait_for(return_42(), 10ms) == 42);
      CHECK(co_await wait_for(create_task(return_42()), 10ms) == 42);

      bool exited = false;
      auto t0 = test::loop_now();
      CHECK(co_await wait_for(slow_ignoring_cancel(60ms, exited), 20ms) == 5);
      CHECK(exited);
      CHECK(test::loop_now() - t0 >= 60ms);
      CHECK(current_task()->cancelling() == 0);
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("wait_for with a timeout <= 0: a done task yields its result, a coroutine never starts, a running task is cancelled") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto done = create_task(value_after(0ms, 8));
      co_await done;
      auto t0 = test::loop_now();
      CHECK(co_await wait_for(done, 0s) == 8);

      bool started = false;
      auto foo = [](bool& s) -> Task<void> {
        s = true;
        co_return;
      };
      auto e = co_await capture(wait_for(foo(started), 0s));
      CHECK(exception_is<TimeoutError>(e));
      CHECK_FALSE(started);

      for (auto d : {0ms, -1ms}) {
        bool finished = false;
        auto running = create_task(cancellable_with_cleanup(5ms, finished));
        co_await sleep(1ms);
        e = co_await capture(wait_for(running, d));
        CHECK(exception_is<TimeoutError>(e));
        CHECK(running.cancelled());
        CHECK(finished);
      }
      CHECK(test::loop_now() - t0 < 2s);
    };
    loop.run_until_complete(main());
  });
}

// asyncio's wait_for(task, 0) cancels the task, then awaits a separate future
// (_cancel_and_wait): a cancel of the caller ends that wait at once and does
// not reach the task again. A CPython 3.11 run prints ['inner cancelled',
// 'outer CancelledError inner.done=False', 'inner cleanup done'].
TEST_CASE("a caller cancelled in wait_for with a timeout <= 0 leaves at once and lets the task finish its cleanup") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      bool finished = false;  // set only if the cleanup's own sleep was not interrupted
      auto inner = create_task(cancellable_with_cleanup(100ms, finished));
      co_await sleep(0s);
      auto outer_body = [](TaskHandle<int> in) -> Task<int> { co_return co_await wait_for(in, 0s); };
      auto outer = create_task(outer_body(inner));
      co_await sleep(1ms);  // inner is in its cleanup now
      CHECK_FALSE(inner.done());
      outer.cancel("outer");
      auto e = co_await capture(outer);
      CHECK(test::cancel_message_of(e) == "outer");
      CHECK_FALSE(inner.done());  // outer did not wait for the cleanup
      (void)co_await capture(inner);
      CHECK(inner.cancelled());
      CHECK(finished);
    };
    loop.run_until_complete(main());
  });
}

// The rest of asyncio's wait_for(task, 0) after _cancel_and_wait: a task
// that swallows the cancel yields its value, one that fails in its cleanup
// raises that error (not TimeoutError); a void task works the same way.
TEST_CASE("wait_for with a timeout <= 0 returns what the cancelled task ended with") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto swallow = []() -> Task<int> {
        try {
          co_await sleep(10s);
        } catch (const CancelledError&) {
        }
        co_await sleep(1ms);
        co_return 7;
      };
      auto h = create_task(swallow());
      co_await sleep(0s);
      CHECK(co_await wait_for(h, 0s) == 7);

      auto fail = []() -> Task<int> {
        try {
          co_await sleep(10s);
        } catch (const CancelledError&) {
        }
        throw Boom("cleanup");
      };
      h = create_task(fail());
      co_await sleep(0s);
      auto e = co_await capture(wait_for(h, 0s));
      CHECK(exception_is<Boom>(e));

      auto v = create_task(test::nap(10s));
      co_await sleep(0s);
      e = co_await capture(wait_for(v, -1ms));
      CHECK(exception_is<TimeoutError>(e));
      CHECK(v.cancelled());
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("cancelling a task in wait_for cancels the awaited task too and stays a CancelledError") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      // CPython _test_cancel_wait_for, with and without a real timeout.
      auto waiter = [](TaskHandle<int> t) -> Task<int> { co_return co_await wait_for(t, 60s); };
      auto blocked = create_task(value_after(10s, 1));
      auto w = create_task(waiter(blocked));
      co_await sleep(5ms);
      w.cancel();
      auto e = co_await capture(w);
      CHECK(exception_is<CancelledError>(e));
      CHECK(blocked.cancelled());

      // wait_for cancelled before it ever ran leaves the inner task alone
      // (test_wait_for_self_cancellation).
      auto inner = create_task(value_after(20ms, 42));
      auto w2 = create_task(waiter(inner));
      w2.cancel();
      e = co_await capture(w2);
      CHECK(exception_is<CancelledError>(e));
      CHECK(co_await inner == 42);

      // A cancel after wait_for returned is delivered at the next await (gh-86296).
      auto after = [](bool& reached) -> Task<void> {
        auto quick = []() -> Task<void> { co_return; };
        co_await wait_for(quick(), 100s);
        co_await sleep(1s);
        reached = true;
      };
      bool reached = false;
      auto t = create_task(after(reached));
      co_await sleep(0s);
      CHECK_FALSE(t.done());
      t.cancel();
      e = co_await capture(t);
      CHECK(exception_is<CancelledError>(e));
      CHECK_FALSE(reached);
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("an exception raised by the work while being cancelled propagates instead of TimeoutError") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto inner = []() -> Task<void> {
        try {
          co_await sleep(1s);
        } catch (const CancelledError&) {
        }
        throw Boom("during cancellation");
      };
      auto e = co_await capture(wait_for(create_task(inner()), 5ms));
      CHECK(exception_is<Boom>(e));
      e = co_await capture(wait_for(inner(), 5ms));
      CHECK(exception_is<Boom>(e));
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("wait_for over shield: the deadline ends the wait while the shielded task keeps running") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto h = create_task(value_after(40ms, 3));
      auto e = co_await capture(wait_for(shield(h), 10ms));
      CHECK(exception_is<TimeoutError>(e));
      CHECK_FALSE(h.done());
      CHECK(co_await h == 3);
      CHECK(co_await wait_for(shield(create_task(value_after(1ms, 4))), 1s) == 4);
    };
    loop.run_until_complete(main());
  });
}

// A deadline that passes while the task is already queued (woken by another
// cancel, or by a completion that wins the race) leaves the scope's request
// undelivered; the scope must take it back whole, or it reaches the caller's
// next suspension point after the scope ended. asyncio coalesces the two
// requests into one CancelledError.
TEST_CASE("a deadline passing while the task is queued never leaks the scope's cancel past the scope") {
  test::on_each_backend([](EventLoop& loop) {
    SUBCASE("an outside cancel accepted first, the deadline passing before the task runs") {
      {
        auto main = [](EventLoop& loop) -> Task<void> {
          const TimePoint deadline = loop.now() + 30ms;
          TaskBase* me = current_task();
          auto killer = [](TaskBase* t, TimePoint d) -> Task<void> {
            co_await sleep_until(d - 1ms);
            while (Clock::now() < d + 2ms) {
            }  // both are due in the same iteration
            t->cancel("outer");
          };
          auto k = create_task(killer(me, deadline));
          std::string got;
          try {
            co_await timeout_at(deadline).run([]() -> Task<void> { co_await sleep(10s); }());
            got = "returned";
          } catch (const TimeoutError&) {
            got = "TimeoutError";
          } catch (const CancelledError&) {
            got = "CancelledError";
          }
          CHECK(got == "CancelledError");  // the outside request is not the scope's to convert
          CHECK(me->cancelling() == 1);
          std::string after;
          try {
            co_await sleep(1ms);  // cleanup that awaits
            after = "cleanup ran";
          } catch (const CancelledError&) {
            after = "a second CancelledError";
          }
          CHECK(after == "cleanup ran");
          co_await k;
        };
        loop.run_until_complete(main(loop));
      }
    }
    SUBCASE("a completion that wins over the deadline, with an older request outstanding") {
      auto main = [](EventLoop& loop) -> Task<void> {
        TaskBase* me = current_task();
        me->cancel("earlier");  // handled by cleaning up, never uncancel()ed
        try {
          co_await sleep(1ms);
        } catch (const CancelledError&) {
        }
        REQUIRE(me->cancelling() == 1);
        const TimePoint deadline = loop.now() + 30ms;
        auto child = [](TimePoint d) -> Task<int> {
          co_await sleep_until(d - 1ms);
          while (Clock::now() < d + 2ms) {
          }  // done just past the deadline: the timer fires while the waiter is queued
          co_return 7;
        };
        auto h = create_task(child(deadline));
        auto waiter = [](TaskHandle<int> h) -> Task<int> { co_return co_await h; };
        int v = 0;
        try {
          v = co_await timeout_at(deadline).run(waiter(h));
        } catch (const TimeoutError&) {
          v = -1;
        }
        CHECK((v == 7 || v == -1));  // the completion may win; either way the scope is over
        CHECK(me->cancelling() == 1);
        std::string after;
        try {
          co_await sleep(1ms);
          after = "ok";
        } catch (const CancelledError&) {
          after = "the scope's request leaked";
        }
        CHECK(after == "ok");
      };
      loop.run_until_complete(main(loop));
    }
  });
}

// asyncio runs what was made ready before a turn's timers fire ahead of
// their callbacks: a result that came before the deadline's turn is
// returned, even when the loop only gets to it after the deadline passed.
TEST_CASE("a completion queued before the deadline's turn wins over the deadline, as in asyncio") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = [](EventLoop& loop) -> Task<void> {
      const TimePoint deadline = loop.now() + 120ms;
      auto child = [](TimePoint d) -> Task<int> {
        co_await sleep_until(d - 60ms);
        while (Clock::now() < d + 2ms) {
        }  // the deadline passes during this step, which wakes the waiter
        co_return 7;
      };
      auto h = create_task(child(deadline));
      auto waiter = [](TaskHandle<int> h) -> Task<int> { co_return co_await h; };
      Timeout t = timeout_at(deadline);
      std::string got;
      try {
        got = "value " + std::to_string(co_await t.run(waiter(h)));
      } catch (const TimeoutError&) {
        got = "TimeoutError";
      }
      CHECK(got == "value 7");  // CPython 3.11: "value 7", expired() False
      CHECK_FALSE(t.expired());
      CHECK(current_task()->cancelling() == 0);
    };
    loop.run_until_complete(main(loop));
  });
}

TEST_CASE("a result ready before the deadline is returned when another step holds the loop past it") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = [](EventLoop& loop) -> Task<void> {
      const TimePoint deadline = loop.now() + 120ms;
      auto child = []() -> Task<int> {
        co_await sleep(40ms);
        co_return 7;  // long before the deadline
      };
      auto hog = [](TimePoint d) -> Task<void> {
        co_await sleep(40ms);
        while (Clock::now() < d + 5ms) {
        }  // a long step in the same turn, after the child's
      };
      auto h = create_task(child());
      auto g = create_task(hog(deadline));
      Timeout t = timeout_at(deadline);
      std::string got;
      try {
        got = "value " + std::to_string(co_await t.run([](TaskHandle<int> h) -> Task<int> { co_return co_await h; }(h)));
      } catch (const TimeoutError&) {
        got = "TimeoutError";
      }
      CHECK(got == "value 7");  // CPython 3.11: "value 7 expired False"
      CHECK_FALSE(t.expired());
      co_await g;
    };
    loop.run_until_complete(main(loop));
  });
}

TEST_CASE("a huge timeout never expires: timeout(), reschedule_in() and wait_for() saturate the deadline") {
  // asyncio.timeout(1e300) lets its body finish; wait_for(coro, 1e300) returns its value.
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      {
        Timeout t = timeout(Duration::max());
        auto e = co_await capture(t.run(value_after(20ms, 1)));
        CHECK(e == nullptr);
        CHECK_FALSE(t.expired());
      }
      {
        Timeout t = timeout(std::chrono::hours::max());
        auto e = co_await capture(t.run(value_after(20ms, 1)));
        CHECK(e == nullptr);
      }
      {
        Timeout t = timeout(10s);
        auto body = [](Timeout& t) -> Task<void> {
          t.reschedule_in(Duration::max());
          co_await sleep(20ms);
        };
        auto e = co_await capture(t.run(body(t)));
        CHECK(e == nullptr);
        CHECK_FALSE(t.expired());
      }
      int v = 0;
      auto e = co_await capture([](int& v) -> Task<void> { v = co_await wait_for(value_after(20ms, 7), Duration::max()); }(v));
      CHECK(e == nullptr);
      CHECK(v == 7);
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("wait_for(task, 0) in debug mode does not report the task it refused to start as never awaited") {
  // CPython 3.11 (-X dev, debug=True): wait_for(work(), 0) raises
  // TimeoutError and warns about nothing (the coroutine is closed by the
  // cancelled task, not left unawaited).
  LoopOptions o;
  o.debug = true;
  EventLoop loop(o);
  std::vector<std::string> warnings;
  loop.set_warning_handler([&warnings](std::string_view w) { warnings.emplace_back(w); });
  auto main = []() -> Task<void> {
    auto e = co_await capture(wait_for(value_after(1ms, 1), 0s));
    CHECK(exception_is<TimeoutError>(e));
  };
  loop.run_until_complete(main());
  CHECK(warnings.empty());
  if (!warnings.empty()) MESSAGE(warnings.front());
}
