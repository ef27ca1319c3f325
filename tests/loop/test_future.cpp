// futures::Future, futures::wait and futures::as_completed from plain
// threads (no event loop). Suite "bridge" (also TSan).
#include "loop/future.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "loop/thread_pool.hpp"

#include "tests/loop/tsan_suppressions.hpp"

using namespace corio;
using namespace std::chrono_literals;

namespace {

struct AppError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Sleeps then returns x: with decreasing delays, completion order is the reverse of input order.
int sleep_then(int x, int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return x;
}

}  // namespace

TEST_CASE("result with a timeout raises TimeoutError while the call runs, then returns the value") {
  ThreadPoolExecutor pool(1);
  auto f = pool.submit(sleep_then, 9, 100);
  CHECK_THROWS_AS(f.result(5ms), TimeoutError);
  CHECK_FALSE(f.wait_for(1ms));
  CHECK(f.get(10s) == 9);
  CHECK(f.wait_for(0ms));
}

TEST_CASE("a huge or infinite timeout waits for the call (no overflow of now + timeout)") {
  ThreadPoolExecutor pool(1);
  auto f = pool.submit(sleep_then, 9, 30);
  CHECK(f.result(std::chrono::nanoseconds::max()) == 9);
  auto g = pool.submit(sleep_then, 8, 30);
  CHECK(g.result(std::chrono::hours::max()) == 8);
  auto h = pool.submit(sleep_then, 7, 30);
  CHECK(h.wait_for(std::chrono::duration<double>(HUGE_VAL)));
  auto i = pool.submit(sleep_then, 6, 30);
  CHECK(i.exception(std::chrono::nanoseconds::max()) == nullptr);
}

TEST_CASE("add_done_callback runs once: in the completing thread, or at once when already done") {
  ThreadPoolExecutor pool(1);
  std::atomic<bool> release{false};
  auto f = pool.submit([&] {
    while (!release) std::this_thread::sleep_for(100us);
    return std::this_thread::get_id();
  });
  std::atomic<int> calls{0};
  std::thread::id cb_thread;
  bool saw_done = false;
  f.add_done_callback([&](const futures::Future<std::thread::id>& done) {
    cb_thread = std::this_thread::get_id();
    saw_done = done.done();
    ++calls;
  });
  release = true;
  std::thread::id worker = f.result();
  // As in Python, callbacks run just after the waiters are released.
  auto until = Clock::now() + 10s;
  while (calls.load() == 0 && Clock::now() < until) std::this_thread::sleep_for(100us);
  CHECK(calls.load() == 1);
  CHECK(saw_done);
  CHECK(cb_thread == worker);
  bool ran_now = false;
  f.add_done_callback([&](const futures::Future<std::thread::id>&) { ran_now = true; });
  CHECK(ran_now);
  CHECK(calls.load() == 1);
  // An exception from a callback is reported, not propagated.
  auto g = futures::make_ready_future<int>(3);
  g.add_done_callback([](const futures::Future<int>&) { throw std::runtime_error("callback failure (expected)"); });
  CHECK(g.result() == 3);
}

TEST_CASE("futures::wait returns on FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED or the timeout") {
  ThreadPoolExecutor pool(4);
  SUBCASE("FIRST_COMPLETED") {
    std::vector<futures::Future<int>> fs{pool.submit(sleep_then, 0, 300), pool.submit(sleep_then, 1, 5),
                                         pool.submit(sleep_then, 2, 300)};
    auto r = futures::wait(fs, futures::FIRST_COMPLETED);
    REQUIRE(r.done.size() >= 1);
    CHECK(r.done[0].result() == 1);
    CHECK(r.done.size() + r.not_done.size() == 3);
  }
  SUBCASE("FIRST_EXCEPTION stops at the first failure") {
    std::vector<futures::Future<int>> fs{pool.submit(sleep_then, 0, 500),
                                         pool.submit([]() -> int { throw AppError("early"); }),
                                         pool.submit(sleep_then, 2, 500)};
    auto r = futures::wait(fs, futures::FIRST_EXCEPTION);
    REQUIRE(r.done.size() == 1);
    CHECK_THROWS_AS(r.done[0].result(), AppError);
    CHECK(r.not_done.size() == 2);
  }
  SUBCASE("FIRST_EXCEPTION without failures waits for all") {
    std::vector<futures::Future<int>> fs{pool.submit(sleep_then, 0, 10), pool.submit(sleep_then, 1, 20)};
    auto r = futures::wait(fs, futures::FIRST_EXCEPTION);
    CHECK(r.done.size() == 2);
    CHECK(r.not_done.empty());
  }
  SUBCASE("ALL_COMPLETED, with a cancelled and an already-done future") {
    std::vector<futures::Future<int>> fs{pool.submit(sleep_then, 0, 10), futures::make_ready_future<int>(5),
                                         pool.submit(sleep_then, 2, 20)};
    auto r = futures::wait(fs);
    CHECK(r.done.size() == 3);
    CHECK(r.done[1].result() == 5);  // input order is kept
  }
  SUBCASE("the timeout returns what is done so far") {
    std::vector<futures::Future<int>> fs{pool.submit(sleep_then, 0, 1), pool.submit(sleep_then, 1, 400)};
    auto r = futures::wait(fs, futures::ALL_COMPLETED, 100ms);
    CHECK(r.done.size() == 1);
    CHECK(r.not_done.size() == 1);
  }
}

TEST_CASE("as_completed yields futures in completion order, already-done ones first, each once") {
  ThreadPoolExecutor pool(4);
  auto ready = futures::make_ready_future<int>(-1);
  std::vector<futures::Future<int>> fs{pool.submit(sleep_then, 0, 240), pool.submit(sleep_then, 1, 120),
                                       pool.submit(sleep_then, 2, 5), ready, ready};
  std::vector<int> order;
  for (const futures::Future<int>& f : futures::as_completed(fs)) order.push_back(f.result());
  CHECK(order == std::vector<int>{-1, 2, 1, 0});
}

TEST_CASE("as_completed with a timeout raises TimeoutError for futures still running") {
  ThreadPoolExecutor pool(2);
  std::vector<futures::Future<int>> fs{pool.submit(sleep_then, 0, 1), pool.submit(sleep_then, 1, 500)};
  auto it = futures::as_completed(fs, 100ms);
  auto first = it.next();
  REQUIRE(first);
  CHECK(first->result() == 0);
  try {
    it.next();
    FAIL("no timeout");
  } catch (const TimeoutError& e) {
    CHECK(std::string(e.what()) == "1 (of 2) futures unfinished");
  }
}

TEST_CASE("a plain thread can wait on futures completed by many workers") {
  ThreadPoolExecutor pool(8);
  std::vector<futures::Future<int>> fs;
  for (int i = 0; i < 2000; ++i) fs.push_back(pool.submit([i] { return i; }));
  long sum = 0;
  int n = 0;
  for (const auto& f : futures::as_completed(fs)) {
    sum += f.result();
    ++n;
  }
  CHECK(n == 2000);
  CHECK(sum == 1999L * 2000 / 2);
  auto r = futures::wait(fs);
  CHECK(r.done.size() == 2000);
}
