#include "coro/task_group.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "coro/shield.hpp"
#include "coro/sleep.hpp"
#include "coro/task_handle.hpp"
#include "loop/event_loop.hpp"
#include "tests/coro/structured_helpers.hpp"
#include "tests/support.hpp"

// Behaviours ported from CPython's Lib/test/test_asyncio/test_taskgroups.py
// (3.13+ rules: errors beat cancellation). Group bodies are capturing lambdas
// on purpose: task_group() keeps the callable alive while it runs, which is
// the documented way to use it; every other coroutine lambda is captureless.

using namespace corio;
using namespace std::chrono_literals;
using test::all_are;
using test::Boom;
using test::boom_after;
using test::capture;
using test::group_of;
using test::OtherError;
using test::sleep_counting;
using test::value_after;

TEST_CASE("a task group waits for all its children, whose results are ready afterwards") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      TaskHandle<int> t1, t2, t3;
      auto t0 = test::loop_now();
      co_await task_group([&](TaskGroup& tg) -> Task<void> {
        t1 = tg.create_task(value_after(10ms, 42));
        t2 = tg.create_task(value_after(40ms, 11));
        CHECK(co_await t1 == 42);  // the body may await its children
        CHECK(tg.size() == 1);
        t3 = tg.create_task(value_after(30ms, 7));  // spawned after the first child ended
      });
      auto elapsed = test::loop_now() - t0;
      CHECK(t1.result() == 42);
      CHECK(t2.result() == 11);
      CHECK(t3.result() == 7);
      CHECK(elapsed >= 40ms);  // waited for the slowest child
      CHECK(elapsed < 2s);
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("cancelling one child explicitly does not disturb the group") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      TaskHandle<int> t1, t2;
      co_await task_group([&](TaskGroup& tg) -> Task<void> {
        t1 = tg.create_task(value_after(10s, 42));
        co_await sleep(10ms);
        t1.cancel();
        t2 = tg.create_task(value_after(20ms, 11));
      });
      CHECK(t1.cancelled());
      CHECK(t2.result() == 11);
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("a failing child cancels its siblings and the body; the group raises an ExceptionGroup") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      int sibling_cancels = 0, body_cancels = 0, after_group = 0;
      auto runner = [](int& sibling_cancels, int& body_cancels, int& after_group) -> Task<void> {
        co_await task_group([&](TaskGroup& tg) -> Task<void> {
          tg.create_task(boom_after(10ms));
          tg.create_task(boom_after(10ms));
          tg.create_task(boom_after(10ms));
          tg.create_task(sleep_counting(10s, sibling_cancels));
          co_await sleep_counting(10s, body_cancels);
        });
        ++after_group;
      };
      auto t0 = test::loop_now();
      auto r = create_task(runner(sibling_cancels, body_cancels, after_group));
      auto e = co_await capture(r);
      CHECK(test::loop_now() - t0 < 2s);
      ExceptionGroup g = group_of(e);
      // The three failures race with the cancellation the first one starts.
      CHECK(g.size() >= 1);
      CHECK(g.size() <= 3);
      CHECK(all_are<Boom>(g));
      CHECK(std::string(g.what()).find("unhandled errors in a TaskGroup") == 0);
      CHECK(sibling_cancels == 1);
      CHECK(body_cancels == 1);
      CHECK(after_group == 0);
      CHECK_FALSE(r.cancelled());
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("a cancel from outside cancels every child and surfaces as CancelledError with its message") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      // The body waits too (CPython test_taskgroup_07).
      auto runner = [](int& n) -> Task<void> {
        co_await task_group([&](TaskGroup& tg) -> Task<void> {
          for (int i = 0; i < 5; ++i) tg.create_task(sleep_counting(10s, n));
          try {
            co_await sleep(10s);
          } catch (const CancelledError&) {
            n += 10;
            throw;
          }
        });
      };
      int n = 0;
      auto r = create_task(runner(n));
      co_await sleep(20ms);
      CHECK_FALSE(r.done());
      r.cancel("test");
      auto e = co_await capture(r);
      CHECK(test::cancel_message_of(e) == "test");
      CHECK(r.cancelled());
      CHECK(n == 15);

      // The body is done and only the children run (CPython test_cancellation).
      auto runner2 = [](int& n) -> Task<void> {
        co_await task_group([&](TaskGroup& tg) -> Task<void> {
          for (int i = 0; i < 5; ++i) tg.create_task(sleep_counting(10s, n));
          co_return;
        });
      };
      n = 0;
      auto r2 = create_task(runner2(n));
      co_await sleep(20ms);
      r2.cancel("again");
      e = co_await capture(r2);
      CHECK(test::cancel_message_of(e) == "again");
      CHECK(n == 5);
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("an outside cancel that arrives before the children fail yields CancelledError, not errors") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto runner = []() -> Task<void> {
        co_await task_group([](TaskGroup& tg) -> Task<void> {
          for (int i = 0; i < 5; ++i) tg.create_task(boom_after(200ms));
          co_await sleep(10s);
        });
      };
      auto t0 = test::loop_now();
      auto r = create_task(runner());
      co_await sleep(20ms);
      r.cancel("test");
      auto e = co_await capture(r);
      CHECK(test::cancel_message_of(e) == "test");
      CHECK(test::loop_now() - t0 < 2s);
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("an error raised by the body cancels the children and is wrapped in an ExceptionGroup") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      TaskHandle<int> t1, t2;
      // After an await (CPython test_taskgroup_09)...
      auto e = co_await capture(task_group([&](TaskGroup& tg) -> Task<void> {
        t1 = tg.create_task(value_after(10s, 42));
        t2 = tg.create_task(value_after(10s, 11));
        co_await sleep(10ms);
        throw Boom("body");
      }));
      ExceptionGroup g = group_of(e);
      REQUIRE(g.size() == 1);
      CHECK(test::what_of(g[0]) == "body");
      CHECK(t1.cancelled());
      CHECK(t2.cancelled());

      // ...and before the children ever ran (test_taskgroup_10).
      e = co_await capture(task_group([&](TaskGroup& tg) -> Task<void> {
        t1 = tg.create_task(value_after(10s, 42));
        t2 = tg.create_task(value_after(10s, 11));
        throw Boom("at once");
        co_return;
      }));
      g = group_of(e);
      REQUIRE(g.size() == 1);
      CHECK(all_are<Boom>(g));
      CHECK(t1.cancelled());
      CHECK(t2.cancelled());
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("nested groups: an outside cancel propagates through both as CancelledError") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto runner = [](bool outer_child) -> Task<void> {
        co_await task_group([=](TaskGroup& g1) -> Task<void> {
          if (outer_child) g1.create_task(test::nap(10s), "outer-sleeper");
          co_await task_group([](TaskGroup& g2) -> Task<void> {
            for (int i = 0; i < 5; ++i) g2.create_task(boom_after(200ms));
            co_await sleep(10s);
          });
        });
      };
      for (bool outer_child : {false, true}) {
        auto r = create_task(runner(outer_child));
        co_await sleep(20ms);
        CHECK_FALSE(r.done());
        r.cancel();
        auto e = co_await capture(r);
        CHECK(exception_is<CancelledError>(e));
        CHECK(r.cancelled());
      }
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("nested groups: an outer child's failure cancels the inner group and the aggregate stays flat") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto e = co_await capture(task_group([](TaskGroup& g1) -> Task<void> {
        g1.create_task(boom_after(10ms, "outer"));
        co_await task_group([](TaskGroup& g2) -> Task<void> {
          g2.create_task(boom_after(10s, "inner"));
          co_return;
        });
      }));
      ExceptionGroup g = group_of(e);
      REQUIRE(g.size() == 1);
      CHECK(exception_is<Boom>(g[0]));
      CHECK(test::what_of(g[0]) == "outer");
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("nested groups keep their nesting: an inner failure is an ExceptionGroup inside the outer one") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto e = co_await capture(task_group([](TaskGroup& g1) -> Task<void> {
        g1.create_task(boom_after(10s, "outer"));
        co_await task_group([](TaskGroup& g2) -> Task<void> {
          g2.create_task(boom_after(10ms, "inner"));
          co_return;
        });
      }));
      ExceptionGroup g = group_of(e);
      REQUIRE(g.size() == 1);
      ExceptionGroup inner = group_of(g[0]);
      REQUIRE(inner.size() == 1);
      CHECK(test::what_of(inner[0]) == "inner");
      CHECK(g.contains<Boom>());
      CHECK(g.leaves().size() == 1);
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("errors beat cancellation: a child failing during the body's cleanup after an outside cancel") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto nested_runner = []() -> Task<void> {
        co_await task_group([](TaskGroup& g) -> Task<void> {
          g.create_task(boom_after(60ms));
          bool cancelled = false;
          try {
            co_await sleep(10s);
          } catch (const CancelledError&) {
            cancelled = true;
          }
          CHECK(cancelled);
          co_await sleep(10s);  // cleanup; the child fails meanwhile and interrupts it
          throw CancelledError();
        });
      };
      // Cancelled directly (CPython test_taskgroup_15)...
      auto t0 = test::loop_now();
      auto r = create_task(nested_runner());
      co_await sleep(20ms);
      r.cancel();
      auto e = co_await capture(r);
      ExceptionGroup g = group_of(e);
      CHECK(all_are<Boom>(g));
      CHECK_FALSE(r.cancelled());
      CHECK(test::loop_now() - t0 < 2s);  // the 10 s cleanup was interrupted

      // ...and through a task awaiting it (test_taskgroup_16).
      auto runner = [](decltype(nested_runner) nr) -> Task<void> {
        auto t = create_task(nr());
        co_await t;
      };
      auto r2 = create_task(runner(nested_runner));
      co_await sleep(20ms);
      r2.cancel();
      e = co_await capture(r2);
      CHECK(all_are<Boom>(group_of(e)));
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("a body that answers the cancellation with another exception yields an ExceptionGroup") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto runner = [](int& n) -> Task<void> {
        co_await task_group([&](TaskGroup&) -> Task<void> {
          try {
            co_await sleep(10s);
          } catch (const CancelledError&) {
            n += 10;
            throw OtherError("instead");
          }
        });
      };
      int n = 0;
      auto r = create_task(runner(n));
      co_await sleep(20ms);
      r.cancel();
      auto e = co_await capture(r);
      ExceptionGroup g = group_of(e);
      REQUIRE(g.size() == 1);
      CHECK(exception_is<OtherError>(g[0]));
      CHECK(n == 10);
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("child errors come first in the aggregate, then the body's own error") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto nested = []() -> Task<void> {
        try {
          co_await sleep(10s);
        } catch (const CancelledError&) {
          throw OtherError("from the body");
        }
      };
      auto e = co_await capture(task_group([&](TaskGroup& g) -> Task<void> {
        g.create_task(boom_after(10ms));
        co_await nested();
      }));
      ExceptionGroup g = group_of(e);
      REQUIRE(g.size() == 2);
      CHECK(exception_is<Boom>(g[0]));
      CHECK(exception_is<OtherError>(g[1]));
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("after an ExceptionGroup the caller's outside cancel stays armed for its next suspension") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto raise_error = [](bool& ready) -> Task<void> {
        ready = true;
        co_await sleep(0s);
        throw Boom("child");
      };
      auto inner = [](decltype(raise_error) re, bool& ready, int& stage) -> Task<void> {
        auto e = co_await capture(task_group([&](TaskGroup& tg) -> Task<void> {
          tg.create_task(re(ready));
          co_await sleep(10s);
          stage = -1;  // the sleep must be cancelled
        }));
        CHECK(all_are<Boom>(group_of(e)));
        CHECK(current_task()->cancelling() == 1);
        stage = 1;
        co_await sleep(10s);  // the outside cancel fires here
        stage = -2;
      };
      bool ready = false;
      int stage = 0;
      auto t = create_task(inner(raise_error, ready, stage));
      while (!ready) co_await sleep(0s);
      CHECK(t.cancelling() == 0);
      t.cancel();
      CHECK(t.cancelling() == 1);
      auto t0 = test::loop_now();
      auto e = co_await capture(t);
      CHECK(exception_is<CancelledError>(e));
      CHECK(t.cancelled());
      CHECK(stage == 1);
      CHECK(test::loop_now() - t0 < 2s);
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("the group never leaks its own cancel request to the caller") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto throw_now = []() -> Task<void> {
        throw Boom("now");
        co_return;
      };
      // The body is done when the child fails...
      auto e = co_await capture(task_group([&](TaskGroup& tg) -> Task<void> {
        tg.create_task(throw_now());
        co_return;
      }));
      CHECK(all_are<Boom>(group_of(e)));
      CHECK(current_task()->cancelling() == 0);
      // ...or waiting, and the group cancelled it.
      e = co_await capture(task_group([&](TaskGroup& tg) -> Task<void> {
        tg.create_task(boom_after(5ms));
        co_await sleep(10s);
      }));
      CHECK(all_are<Boom>(group_of(e)));
      CHECK(current_task()->cancelling() == 0);
      auto t0 = test::loop_now();
      co_await sleep(10ms);  // not cancelled
      CHECK(test::loop_now() - t0 >= 10ms);
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("children may spawn siblings through the group") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      // A root child spawning two more (test_taskgroup_24).
      auto leaf = [](int& done, int d) -> Task<void> {
        co_await sleep(std::chrono::milliseconds(d));
        ++done;
      };
      auto root = [](TaskGroup& g, decltype(leaf) lf, int& done) -> Task<void> {
        co_await sleep(10ms);
        g.create_task(lf(done, 10));
        g.create_task(lf(done, 20));
        ++done;
      };
      int done = 0;
      co_await task_group([&](TaskGroup& g) -> Task<void> {
        g.create_task(root(g, leaf, done));
        co_return;
      });
      CHECK(done == 3);

      // Hydra heads multiply until Hercules fails (test_taskgroup_25).
      struct Hydra {
        static Task<void> head(TaskGroup& g, int& n) {
          ++n;
          co_await sleep(5ms);
          g.create_task(head(g, n));
          g.create_task(head(g, n));
        }
      };
      auto hercules = [](int& n) -> Task<void> {
        while (n < 10) co_await sleep(7ms);
        throw Boom("hercules");
      };
      int heads = 0;
      auto e = co_await capture(task_group([&](TaskGroup& g) -> Task<void> {
        g.create_task(Hydra::head(g, heads));
        g.create_task(hercules(heads));
        co_return;
      }));
      ExceptionGroup g = group_of(e);
      REQUIRE(g.size() == 1);
      CHECK(test::what_of(g[0]) == "hercules");
      CHECK(heads >= 10);
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("tg.cancel() ends the group quietly, from the body or from a child") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      int cancels = 0;
      bool after = false;
      auto t0 = test::loop_now();
      co_await task_group([&](TaskGroup& tg) -> Task<void> {
        tg.create_task(sleep_counting(10s, cancels));
        tg.create_task(sleep_counting(10s, cancels));
        co_await sleep(5ms);
        tg.cancel();
        CHECK(tg.aborting());
        tg.cancel();  // idempotent
        co_await sleep_counting(10s, cancels);
        after = true;
      });
      CHECK(cancels == 3);
      CHECK_FALSE(after);
      CHECK(current_task()->cancelling() == 0);

      // A child ends the group while the body waits...
      auto stopper = [](TaskGroup& g) -> Task<void> {
        co_await sleep(10ms);
        g.cancel();
      };
      cancels = 0;
      co_await task_group([&](TaskGroup& tg) -> Task<void> {
        tg.create_task(sleep_counting(10s, cancels));
        tg.create_task(stopper(tg));
        co_await sleep_counting(10s, cancels);
      });
      CHECK(cancels == 2);
      // ...or while the group waits for its children, the body being done.
      cancels = 0;
      co_await task_group([&](TaskGroup& tg) -> Task<void> {
        tg.create_task(sleep_counting(10s, cancels));
        tg.create_task(stopper(tg));
        co_return;
      });
      CHECK(cancels == 1);
      CHECK(current_task()->cancelling() == 0);
      co_await sleep(1ms);  // nothing left armed
      CHECK(test::loop_now() - t0 < 2s);
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("tg.cancel() does not hide an outside cancel nor a child's failure") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto runner = []() -> Task<void> {
        co_await task_group([](TaskGroup& tg) -> Task<void> {
          tg.create_task(test::nap(10s));
          std::exception_ptr e;
          try {
            co_await sleep(10s);
          } catch (const CancelledError&) {
            e = std::current_exception();
          }
          tg.cancel();  // too late: the caller is being cancelled from outside
          std::rethrow_exception(e);
        });
      };
      auto r = create_task(runner());
      co_await sleep(10ms);
      r.cancel("outside");
      auto e = co_await capture(r);
      CHECK(test::cancel_message_of(e) == "outside");
      CHECK(r.cancelled());

      e = co_await capture(task_group([](TaskGroup& tg) -> Task<void> {
        tg.create_task(boom_after(5ms));
        std::exception_ptr c;
        try {
          co_await sleep(10s);
        } catch (const CancelledError&) {
          c = std::current_exception();
        }
        tg.cancel();  // the group is already shutting down because of the failure
        std::rethrow_exception(c);
      }));
      CHECK(all_are<Boom>(group_of(e)));
    };
    loop.run_until_complete(main());
  });
}

// asyncio's tg.create_task takes any coroutine; corio::create_task and
// gather take awaiter objects as well as Tasks, and so does the group's.
TEST_CASE("a group's create_task takes an awaiter object, as create_task does") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto inner = create_task(value_after(2ms, 5));
      TaskHandle<int> child;
      co_await task_group([&](TaskGroup& tg) -> Task<void> {
        child = tg.create_task(shield(inner), "shielded");
        co_return;
      });
      CHECK(child.done());
      CHECK(child.name() == "shielded");
      CHECK(child.result() == 5);

      // The awaiter child is a real child: the group cancels it (the shielded
      // task keeps running) and refuses a new one once shutting down.
      auto slow = create_task(value_after(20ms, 6));
      TaskHandle<int> cancelled;
      co_await task_group([&](TaskGroup& tg) -> Task<void> {
        cancelled = tg.create_task(shield(slow));
        co_await sleep(1ms);
        tg.cancel();
        CHECK_THROWS_AS(tg.create_task(shield(slow)), InvalidStateError);
      });
      CHECK(cancelled.cancelled());
      CHECK_FALSE(slow.done());
      CHECK(co_await slow == 6);
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("create_task on a group that is shutting down raises InvalidStateError and never runs the task") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto mark = [](bool& ran) -> Task<void> {
        ran = true;
        co_return;
      };
      bool ran = false;
      std::string message;
      auto e = co_await capture(task_group([&](TaskGroup& tg) -> Task<void> {
        tg.create_task(boom_after(5ms));
        std::exception_ptr c;
        try {
          co_await sleep(10s);
        } catch (const CancelledError&) {
          c = std::current_exception();
        }
        try {
          tg.create_task(mark(ran));
        } catch (const InvalidStateError& x) {
          message = x.what();
        }
        std::rethrow_exception(c);
      }));
      CHECK(all_are<Boom>(group_of(e)));
      CHECK(message.find("shutting down") != std::string::npos);
      CHECK_FALSE(ran);

      co_await task_group([&](TaskGroup& tg) -> Task<void> {
        tg.cancel();
        CHECK_THROWS_AS(tg.create_task(mark(ran)), InvalidStateError);
        co_return;
      });
      CHECK_FALSE(ran);
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("a group's children carry the names given to create_task") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      co_await task_group([](TaskGroup& tg) -> Task<void> {
        auto t = tg.create_task(test::nap(0ms), "yolo");
        CHECK(t.name() == "yolo");
        co_return;
      });
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("repeated outside cancels do not interrupt the group's wait for its children's cleanup") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto child = [](int& cleaned) -> Task<void> {
        std::exception_ptr e;
        try {
          co_await sleep(10s);
        } catch (const CancelledError&) {
          e = std::current_exception();
        }
        co_await sleep(40ms);  // cleanup that must run to its end
        ++cleaned;
        std::rethrow_exception(e);
      };
      auto runner = [](decltype(child) c, int& cleaned) -> Task<void> {
        co_await task_group([&](TaskGroup& tg) -> Task<void> {
          tg.create_task(c(cleaned));
          tg.create_task(c(cleaned));
          co_return;
        });
      };
      int cleaned = 0;
      auto r = create_task(runner(child, cleaned));
      co_await sleep(10ms);
      r.cancel("first");
      co_await sleep(10ms);
      r.cancel("second");
      auto e = co_await capture(r);
      CHECK(exception_is<CancelledError>(e));
      CHECK(r.cancelled());
      CHECK(cleaned == 2);
    };
    loop.run_until_complete(main());
  });
}

// The group takes its own request back whole even when an older request
// keeps cancelling() above zero (task_group.hpp: it never leaks its cancel).
TEST_CASE("group.cancel() with an older request outstanding does not leak the group's request") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      TaskBase* me = current_task();
      me->cancel("earlier");
      try {
        co_await sleep(1ms);
      } catch (const CancelledError&) {
      }
      REQUIRE(me->cancelling() == 1);
      co_await task_group([](TaskGroup& tg) -> Task<void> {
        tg.cancel();  // ends the group quietly; the body does not await
        co_return;
      });
      CHECK(me->cancelling() == 1);
      std::string after;
      try {
        co_await sleep(1ms);
        after = "ok";
      } catch (const CancelledError&) {
        after = "the group's request leaked";
      }
      CHECK(after == "ok");
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("a cancel made after the last child finished but before the group resumed raises CancelledError") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      std::vector<std::string> log;
      TaskHandle<void> w;
      auto body = [](const TaskHandle<void>* self, std::vector<std::string>& log) -> Task<void> {
        co_await task_group([self](TaskGroup& tg) -> Task<void> {
          tg.create_task(test::value_then_cancel(self, 7));
          co_return;
        });
        log.push_back("group returned");
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
