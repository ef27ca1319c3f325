#include "coro/sleep.hpp"

#include <doctest/doctest.h>

#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "coro/task_handle.hpp"
#include "loop/event_loop.hpp"
#include "tests/support.hpp"

using namespace corio;
using namespace std::chrono_literals;

TEST_CASE("sleep waits at least its duration") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<Duration> {
      auto t0 = Clock::now();
      co_await sleep(20ms);
      co_return Clock::now() - t0;
    };
    Duration d = loop.run_until_complete(main());
    CHECK(d >= 20ms);
    CHECK(d < 2s);
  });
}

TEST_CASE("sleep(0) yields to other ready tasks, round-robin") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<std::string> {
      std::string trace;
      auto worker = [](std::string& tr, char c) -> Task<void> {
        for (int i = 0; i < 3; ++i) {
          tr += c;
          co_await sleep(0s);
        }
      };
      auto a = create_task(worker(trace, 'a'));
      auto b = create_task(worker(trace, 'b'));
      co_await a;
      co_await b;
      co_return trace;
    };
    CHECK(loop.run_until_complete(main()) == "ababab");
  });
}

TEST_CASE("sleep_until wakes at the deadline; a past deadline returns promptly") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto deadline = Clock::now() + 15ms;
      co_await sleep_until(deadline);
      CHECK(Clock::now() >= deadline);
      auto t0 = Clock::now();
      co_await sleep_until(t0 - 1s);
      CHECK(Clock::now() - t0 < 500ms);
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("sleepers wake in deadline order") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<std::vector<int>> {
      std::vector<int> order;
      // Deadlines from one instant: the tasks start one after another, and a
      // preemption of a few ms between two starts must not swap the order.
      const TimePoint t0 = Clock::now();
      auto s = [](std::vector<int>& o, TimePoint t0, int ms) -> Task<void> {
        co_await sleep_until(t0 + std::chrono::milliseconds(ms));
        o.push_back(ms);
      };
      std::vector<TaskHandle<void>> ts;
      for (int ms : {30, 10, 20, 5, 25}) ts.push_back(create_task(s(order, t0, ms)));
      for (auto& t : ts) co_await t;
      co_return order;
    };
    CHECK(loop.run_until_complete(main()) == std::vector<int>{5, 10, 20, 25, 30});
  });
}

TEST_CASE("sleep waits its full duration even when called late in a long loop iteration") {
  // Regression: deadlines were computed from the time cached at the start of
  // the loop iteration, so a sleep started after other work in the same
  // iteration (here 40 ms of blocking work) woke that much too early.
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      std::this_thread::sleep_for(40ms);  // the iteration is old now
      auto t0 = Clock::now();
      co_await sleep(20ms);
      CHECK(Clock::now() - t0 >= 20ms);
      auto t1 = Clock::now();
      bool fired = false;
      EventLoop::current().call_later(15ms, [&fired] { fired = true; });
      std::this_thread::sleep_for(5ms);
      while (!fired) co_await sleep(0s);
      CHECK(Clock::now() - t1 >= 15ms);
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("a sleep with a huge or infinite duration waits (until cancelled) instead of wrapping into the past") {
  // asyncio.sleep(math.inf) and sleep(1e300) wait forever; now() + d must
  // saturate, not overflow into a deadline already past.
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto forever = [](auto d) -> Task<void> { co_await sleep(d); };
      std::vector<TaskHandle<void>> ts;
      ts.push_back(create_task(forever(Duration::max())));
      ts.push_back(create_task(forever(std::chrono::hours::max())));
      ts.push_back(create_task(forever(std::chrono::duration<double>(std::numeric_limits<double>::infinity()))));
      ts.push_back(create_task(forever(std::chrono::duration<double>(1e300))));
      co_await sleep(30ms);
      for (std::size_t i = 0; i < ts.size(); ++i) {
        CAPTURE(i);
        CHECK_FALSE(ts[i].done());
        ts[i].cancel();
      }
      for (auto& t : ts) {
        try {
          co_await t;
        } catch (const CancelledError&) {
        }
        CHECK(t.cancelled());
      }
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("sleep_until a deadline far in the past, even TimePoint::min(), returns at the next iteration") {
  // asyncio's loop.call_at(-math.inf, cb) runs cb at the next iteration.
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto past = [](TimePoint t) -> Task<void> { co_await sleep_until(t); };
      auto h = create_task(past(TimePoint::min()));
      auto other = create_task([]() -> Task<void> { co_await sleep(20ms); }());
      co_await other;
      CHECK(h.done());
      co_await h;
    };
    CallbackHandle dog = loop.call_later(5s, [&loop] {
      FAIL_CHECK("the loop did not wake for a due timer");
      loop.stop();
    });
    loop.run_until_complete(main());
    dog.cancel();
  });
}
