// ThreadPoolExecutor from plain threads (no event loop): submit, map,
// cancel, shutdown, lazy threads, signal masks. Suite "bridge" (also TSan).
#include "loop/thread_pool.hpp"

#include <doctest/doctest.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <numeric>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "tests/loop/thread_support.hpp"
#include "tests/loop/tsan_suppressions.hpp"

using namespace corio;
using namespace std::chrono_literals;
using corio::test::AppError;
using corio::test::eventually;
using corio::test::Gate;

TEST_CASE("submit returns a future with the value, or the exception with its type and message") {
  ThreadPoolExecutor pool(4);
  auto f = pool.submit([](int a, int b) { return a * b; }, 6, 7);
  CHECK(f.result() == 42);
  CHECK(f.done());
  CHECK(f.exception() == nullptr);
  auto g = pool.submit([]() -> int { throw AppError("broken", 5); });
  try {
    g.result();
    FAIL("no exception");
  } catch (const AppError& e) {
    CHECK(std::string(e.what()) == "broken");
    CHECK(e.code == 5);
  }
  CHECK(g.exception() != nullptr);
  auto v = pool.submit([] {});
  v.get();
  CHECK(v.done());
}

TEST_CASE("background workers run at SCHED_IDLE and normal ones at the caller's policy") {
  ThreadPoolExecutor bg(2, "bg", WorkerPriority::background);
  ThreadPoolExecutor normal(2, "nm");
  CHECK(bg.priority() == WorkerPriority::background);
  CHECK(normal.priority() == WorkerPriority::normal);
  CHECK(bg.submit([] { return sched_getscheduler(0); }).result() == SCHED_IDLE);
  CHECK(normal.submit([] { return sched_getscheduler(0); }).result() == sched_getscheduler(0));
}

TEST_CASE("map returns values in input order and raises the first error when its turn comes") {
  ThreadPoolExecutor pool(4);
  std::vector<int> in{1, 2, 3, 4, 5, 6, 7, 8};
  // Later inputs finish first.
  auto slow_square = [](int x) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2 * (9 - x)));
    return x * x;
  };
  std::vector<int> out;
  for (int v : pool.map(slow_square, in)) out.push_back(v);
  CHECK(out == std::vector<int>{1, 4, 9, 16, 25, 36, 49, 64});

  auto failing = [](int x) {
    if (x == 4) throw AppError("four", x);
    if (x == 6) throw AppError("six", x);
    return x;
  };
  auto results = pool.map(failing, in);
  std::vector<int> got;
  try {
    for (int v : results) got.push_back(v);
    FAIL("no exception");
  } catch (const AppError& e) {
    CHECK(e.code == 4);  // the first error in input order, not in completion order
  }
  CHECK(got == std::vector<int>{1, 2, 3});
  CHECK_THROWS_AS(pool.map(failing, in).to_vector(), AppError);
}

TEST_CASE("map with a timeout raises TimeoutError for a value not ready in time; dropping it cancels the rest") {
  ThreadPoolExecutor pool(1);
  Gate gate;
  std::atomic<int> ran{0};
  {
    auto results = pool.map(
        [&](int x) {
          ++ran;
          if (x == 0) gate.wait();
          return x;
        },
        std::vector<int>{0, 1, 2, 3}, 20ms);
    CHECK_THROWS_AS(results.next(), TimeoutError);
  }  // the three calls still queued behind the first are cancelled here
  gate.open();
  pool.shutdown(true);
  CHECK(ran.load() == 1);
}

TEST_CASE("cancel succeeds only before the call starts, and a cancelled call never runs") {
  ThreadPoolExecutor pool(1);
  Gate gate;
  std::atomic<bool> started{false}, second_ran{false};
  auto first = pool.submit([&] {
    started = true;
    gate.wait();
    return 1;
  });
  REQUIRE(eventually([&] { return started.load(); }));
  auto second = pool.submit([&] { second_ran = true; });
  CHECK(first.running());
  CHECK_FALSE(first.cancel());  // running: cannot be cancelled
  CHECK(second.cancel("changed my mind"));
  CHECK(second.cancel());  // again: still cancelled
  CHECK(second.cancelled());
  CHECK(second.done());
  try {
    second.result();
    FAIL("no exception");
  } catch (const CancelledError& e) {
    CHECK(e.message() == "changed my mind");
  }
  CHECK_THROWS_AS(second.exception(), CancelledError);
  gate.open();
  CHECK(first.result() == 1);
  CHECK_FALSE(first.cancel());  // finished
  pool.shutdown(true);
  CHECK_FALSE(second_ran.load());
}

TEST_CASE("shutdown(cancel_futures=true) cancels queued work; shutdown(wait) runs what was queued") {
  SUBCASE("cancel_futures") {
    ThreadPoolExecutor pool(1);
    Gate gate;
    std::atomic<bool> started{false};
    std::atomic<int> ran{0};
    auto first = pool.submit([&] {
      started = true;
      gate.wait();
    });
    REQUIRE(eventually([&] { return started.load(); }));
    std::vector<futures::Future<void>> queued;
    for (int i = 0; i < 10; ++i) queued.push_back(pool.submit([&] { ++ran; }));
    pool.shutdown(/*wait=*/false, /*cancel_futures=*/true);
    for (auto& f : queued) CHECK(f.cancelled());
    CHECK_THROWS_AS(pool.submit([] {}), InvalidStateError);
    gate.open();
    pool.shutdown(true);
    CHECK(first.done());
    CHECK_FALSE(first.cancelled());
    CHECK(ran.load() == 0);
  }
  SUBCASE("wait runs everything queued") {
    std::atomic<int> ran{0};
    std::vector<futures::Future<void>> fs;
    {
      ThreadPoolExecutor pool(2);
      for (int i = 0; i < 100; ++i) fs.push_back(pool.submit([&] {
        std::this_thread::sleep_for(100us);
        ++ran;
      }));
    }  // the destructor is shutdown(wait=true): non-daemon threads
    CHECK(ran.load() == 100);
    for (auto& f : fs) CHECK((f.done() && !f.cancelled()));
  }
}

// A zero grace once counted idle threads as abandoned: they were woken to
// leave but had not left yet when the grace (none) was over.
TEST_CASE("shutdown_for waits for running calls only: idle threads never count, even with no grace") {
  {
    ThreadPoolExecutor pool(4);
    std::vector<futures::Future<int>> fs;
    for (int i = 0; i < 4; ++i) fs.push_back(pool.submit([i] { return i; }));
    for (auto& f : fs) f.result();
    CHECK(pool.shutdown_for(0ns));  // every thread idle (parked or spinning)
    CHECK(pool.running_threads() == 0);  // and joined
    CHECK(pool.busy_threads() == 0);
  }
  {
    ThreadPoolExecutor pool(2);
    Gate gate;
    std::atomic<bool> started{false};
    auto blocked = pool.submit([&] {
      started = true;
      gate.wait();
    });
    pool.submit([] {}).result();  // the other thread ran a call and is idle now
    REQUIRE(eventually([&] { return started.load(); }));
    CHECK_FALSE(pool.shutdown_for(20ms));
    CHECK(pool.busy_threads() == 1);  // the blocked call's thread only
    gate.open();
    blocked.result();
    CHECK(pool.shutdown_for(5s));
    CHECK(pool.running_threads() == 0);
  }
}

TEST_CASE("threads start lazily, up to max_workers") {
  ThreadPoolExecutor pool(3);
  CHECK(pool.max_workers() == 3);
  CHECK(pool.thread_count() == 0);
  pool.submit([] {}).result();
  CHECK(pool.thread_count() == 1);
  Gate gate;
  std::atomic<int> running{0};
  std::vector<futures::Future<void>> fs;
  for (int i = 0; i < 8; ++i) fs.push_back(pool.submit([&] {
    ++running;
    gate.wait();
  }));
  CHECK(eventually([&] { return running.load() == 3; }));
  CHECK(pool.thread_count() == 3);
  gate.open();
  for (auto& f : fs) f.result();
  CHECK(running.load() == 8);
  CHECK(ThreadPoolExecutor::default_max_workers() >= 5);
  CHECK(ThreadPoolExecutor::default_max_workers() <= 32);
}

TEST_CASE("pool threads block every signal, so signals reach the loop's thread") {
  ThreadPoolExecutor pool(2);
  auto blocked = pool.submit([] {
    sigset_t cur;
    pthread_sigmask(SIG_BLOCK, nullptr, &cur);
    return sigismember(&cur, SIGINT) == 1 && sigismember(&cur, SIGTERM) == 1 && sigismember(&cur, SIGCHLD) == 1 &&
           sigismember(&cur, SIGUSR1) == 1;
  });
  CHECK(blocked.result());
  // The submitting thread's own mask is unchanged.
  sigset_t mine;
  pthread_sigmask(SIG_BLOCK, nullptr, &mine);
  CHECK(sigismember(&mine, SIGINT) == 0);
}

TEST_CASE("request_stop reaches a running callable that takes a std::stop_token") {
  ThreadPoolExecutor pool(1);
  std::atomic<bool> started{false};
  auto f = pool.submit(
      [&started](std::stop_token st, int limit_ms) {
        started = true;
        auto until = Clock::now() + std::chrono::milliseconds(limit_ms);
        while (!st.stop_requested() && Clock::now() < until) std::this_thread::sleep_for(100us);
        return st.stop_requested();
      },
      5000);
  REQUIRE(eventually([&] { return started.load(); }));
  CHECK(f.request_stop());
  CHECK(f.result(10s));
  auto plain = pool.submit([] { return 1; });
  plain.wait();
  CHECK_FALSE(plain.request_stop());  // takes no token
}

TEST_CASE("8 threads submitting 20,000 calls each: every call runs once") {
  ThreadPoolExecutor pool(4);
  constexpr int kThreads = 8, kCalls = 20'000;
  std::vector<std::atomic<int>> hits(kThreads * kCalls);
  std::vector<std::thread> ths;
  std::atomic<long> sum{0};
  for (int t = 0; t < kThreads; ++t) {
    ths.emplace_back([&, t] {
      std::vector<futures::Future<int>> fs;
      fs.reserve(kCalls);
      for (int i = 0; i < kCalls; ++i) {
        int id = t * kCalls + i;
        fs.push_back(pool.submit([&hits, id] {
          ++hits[id];
          return id;
        }));
      }
      long s = 0;
      for (auto& f : fs) s += f.result();
      sum += s;
    });
  }
  for (auto& th : ths) th.join();
  long n = static_cast<long>(kThreads) * kCalls;
  CHECK(sum.load() == n * (n - 1) / 2);
  bool once = true;
  for (auto& h : hits) once = once && h.load() == 1;
  CHECK(once);
}
