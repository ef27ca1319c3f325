// run_coroutine_threadsafe: plain threads submit coroutines to a running
// loop and wait on (or cancel) thread-safe futures. Suite "bridge" (also TSan).
#include "loop/run_coroutine_threadsafe.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "coro/sleep.hpp"
#include "loop/run.hpp"
#include "tests/loop/tsan_suppressions.hpp"
#include "tests/support.hpp"

using namespace corio;
using namespace std::chrono_literals;

namespace {

struct AppError : std::runtime_error {
  AppError(const std::string& m, int c) : std::runtime_error(m), code(c) {}
  int code;
};

Task<int> doubled(int x) {
  co_await sleep(0ms);
  co_return 2 * x;
}

Task<int> failing() {
  co_await sleep(1ms);
  throw AppError("coroutine failed", 9);
}

Task<int> after_flag(std::atomic<bool>& go) {
  for (int i = 0; i < 20'000 && !go.load(); ++i) co_await sleep(1ms);
  co_return 1;
}

// Keeps the loop running until `done` is set by the test's threads (bounded).
Task<void> serve_until(std::atomic<bool>& done) {
  for (int i = 0; i < 20'000 && !done.load(); ++i) co_await sleep(1ms);
  CHECK(done.load());
}

}  // namespace

TEST_CASE("a thread gets a coroutine's value, or its exception with type and message, through the future") {
  test::on_each_backend([](EventLoop& loop) {
    std::atomic<bool> done{false};
    std::thread th([&] {
      auto f = run_coroutine_threadsafe(loop, doubled(21));
      CHECK(f.result(10s) == 42);
      auto g = run_coroutine_threadsafe(loop, failing());
      try {
        g.result(10s);
        FAIL("no exception");
      } catch (const AppError& e) {
        CHECK(std::string(e.what()) == "coroutine failed");
        CHECK(e.code == 9);
      }
      std::thread::id cb_thread;
      std::atomic<bool> cb{false}, go{false};
      auto h = run_coroutine_threadsafe(loop, after_flag(go));
      h.add_done_callback([&](const futures::Future<int>&) {
        cb_thread = std::this_thread::get_id();
        cb = true;
      });
      go = true;  // the task finishes only now, after the callback was added
      h.wait();
      for (int i = 0; i < 100'000 && !cb.load(); ++i) std::this_thread::sleep_for(100us);
      CHECK(cb.load());
      CHECK(cb_thread != std::this_thread::get_id());  // ran on the loop's thread
      done = true;
    });
    loop.run_until_complete(serve_until(done));
    th.join();
  });
}

TEST_CASE("run_coroutine_threadsafe from 8 threads, 500 coroutines each, delivers every result") {
  test::on_each_backend([](EventLoop& loop) {
    constexpr int kThreads = 8, kEach = 500;
    std::atomic<int> finished{0};
    std::atomic<bool> done{false};
    std::atomic<long> total{0};
    std::vector<std::thread> ths;
    for (int t = 0; t < kThreads; ++t) {
      ths.emplace_back([&, t] {
        std::vector<futures::Future<int>> fs;
        for (int i = 0; i < kEach; ++i) fs.push_back(run_coroutine_threadsafe(loop, doubled(t * kEach + i)));
        long s = 0;
        for (auto& f : fs) s += f.result(30s);
        total += s;
        if (finished.fetch_add(1) + 1 == kThreads) done = true;
      });
    }
    loop.run_until_complete(serve_until(done));
    for (auto& th : ths) th.join();
    long n = static_cast<long>(kThreads) * kEach;
    CHECK(total.load() == n * (n - 1));  // sum of 2i for i < n
  });
}

namespace {

struct Sleeper {
  std::atomic<bool> started{false};
  std::atomic<bool> saw_cancel{false};
  std::string message;
};

Task<int> sleep_long(Sleeper& s) {
  s.started = true;
  try {
    co_await sleep(1h);
  } catch (const CancelledError& e) {
    s.message = e.message();
    s.saw_cancel = true;
    throw;
  }
  co_return 0;
}

Task<void> wait_for_flag(std::atomic<bool>& flag) {
  for (int i = 0; i < 20'000 && !flag.load(); ++i) co_await sleep(1ms);
  CHECK(flag.load());
}

}  // namespace

TEST_CASE("cancelling the future from a thread cancels the task on the loop") {
  test::on_each_backend([](EventLoop& loop) {
    Sleeper s;
    std::atomic<bool> cancelled_ok{false};
    std::thread th([&] {
      auto f = run_coroutine_threadsafe(loop, sleep_long(s));
      while (!s.started) std::this_thread::sleep_for(100us);
      CHECK(f.cancel("stop it"));
      CHECK(f.cancelled());  // at once, before the task has even seen it
      CHECK_THROWS_AS(f.result(), CancelledError);
      cancelled_ok = true;
    });
    loop.run_until_complete(wait_for_flag(s.saw_cancel));
    th.join();
    CHECK(cancelled_ok.load());
    CHECK(s.message == "stop it");
  });
}

namespace {

Task<void> body_runs(std::atomic<bool>& ran) {
  ran = true;
  co_return;
}

// Blocks the loop's thread (on purpose) until the thread has submitted and cancelled.
Task<void> busy_until(std::atomic<bool>& flag) {
  for (int i = 0; i < 100'000 && !flag.load(); ++i) std::this_thread::sleep_for(100us);
  co_await sleep(5ms);  // let the submission's callback run
}

}  // namespace

TEST_CASE("a future cancelled before its task started: the coroutine's body never runs") {
  test::on_each_backend([](EventLoop& loop) {
    std::atomic<bool> ran{false}, submitted{false};
    std::thread th([&] {
      auto f = run_coroutine_threadsafe(loop, body_runs(ran));
      CHECK(f.cancel());
      submitted = true;
    });
    loop.run_until_complete(busy_until(submitted));
    th.join();
    CHECK_FALSE(ran.load());
  });
}

TEST_CASE("the future is cancelled when its loop closes before the task finishes") {
  test::on_each_backend([](EventLoop& loop) {
    Sleeper s;
    futures::Future<int> f;
    {
      EventLoop inner(test::options_for(loop.backend_kind()));
      std::thread th([&] { f = run_coroutine_threadsafe(inner, sleep_long(s)); });
      inner.run_until_complete(wait_for_flag(s.started));
      th.join();
      CHECK_FALSE(f.done());
    }  // the suspended task is destroyed with the loop
    REQUIRE(f.done());
    CHECK(f.cancelled());
    try {
      f.result();
    } catch (const CancelledError& e) {
      CHECK(e.message() == "event loop closed");
    }
  });
}
