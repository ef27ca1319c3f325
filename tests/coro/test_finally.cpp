#include "coro/finally.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "coro/sleep.hpp"
#include "coro/task_handle.hpp"
#include "loop/event_loop.hpp"
#include "tests/coro/structured_helpers.hpp"
#include "tests/support.hpp"

// DESIGN Semantics 10: async cleanup after success, an error or a cancellation.

using namespace corio;
using namespace std::chrono_literals;
using test::Boom;
using test::capture;
using test::ms;
using test::OtherError;

namespace {

using Log = std::vector<std::string>;

// A cleanup that awaits before it records itself.
Task<void> cleanup(Log& log, ms d) {
  co_await sleep(d);
  log.push_back("cleanup");
}

Task<int> body_ok(Log& log) {
  co_await sleep(1ms);
  log.push_back("body");
  co_return 7;
}

Task<int> body_fails(Log& log) {
  co_await sleep(1ms);
  log.push_back("body");
  throw Boom("body failed");
}

}  // namespace

TEST_CASE("async_finally runs the cleanup after success and returns the body's value") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Log log;
      int v = co_await async_finally(body_ok(log), cleanup(log, 5ms));
      CHECK(v == 7);
      CHECK(log == Log{"body", "cleanup"});
      co_await async_finally(test::nap(1ms), cleanup(log, 1ms));
      CHECK(log.size() == 3);
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("after an error the cleanup runs and awaits, then the error is rethrown") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Log log;
      auto e = co_await capture(async_finally(body_fails(log), cleanup(log, 5ms)));
      CHECK(exception_is<Boom>(e));
      CHECK(test::what_of(e) == "body failed");
      CHECK(log == Log{"body", "cleanup"});
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("after a cancellation the cleanup runs to its end, awaits included, then CancelledError is rethrown") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto worker = [](Log& log) -> Task<void> {
        co_await async_finally(test::nap(10s), cleanup(log, 20ms));
        log.push_back("after");  // not reached
      };
      Log log;
      auto t = create_task(worker(log));
      co_await sleep(5ms);
      auto t0 = test::loop_now();
      t.cancel("stop");
      auto e = co_await capture(t);
      CHECK(test::cancel_message_of(e) == "stop");
      CHECK(t.cancelled());
      CHECK(log == Log{"cleanup"});
      CHECK(test::loop_now() - t0 >= 20ms);  // the cleanup's sleep was not interrupted
      CHECK(test::loop_now() - t0 < 2s);
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("a second cancel interrupts the cleanup, and its CancelledError is what propagates") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto worker = [](Log& log) -> Task<void> { co_await async_finally(test::nap(10s), cleanup(log, 10s)); };
      Log log;
      auto t = create_task(worker(log));
      co_await sleep(5ms);
      t.cancel("first");
      co_await sleep(5ms);
      t.cancel("second");
      auto e = co_await capture(t);
      CHECK(test::cancel_message_of(e) == "second");
      CHECK(log.empty());  // the cleanup was interrupted before it logged
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("the callable form learns how the body ended and may capture") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Log log;
      auto finish = [&log](std::exception_ptr e) -> Task<void> {
        co_await sleep(1ms);
        log.push_back(e ? "rollback:" + test::what_of(e) : "commit");
      };
      CHECK(co_await async_finally(body_ok(log), finish) == 7);
      auto e = co_await capture(async_finally(body_fails(log), finish));
      CHECK(exception_is<Boom>(e));
      CHECK(log == Log{"body", "commit", "body", "rollback:body failed"});
    };
    loop.run_until_complete(main());
  });
}

TEST_CASE("an exception thrown by the cleanup replaces the body's outcome") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Log log;
      auto bad_cleanup = []() -> Task<void> {
        co_await sleep(1ms);
        throw OtherError("cleanup failed");
      };
      auto e = co_await capture(async_finally(body_fails(log), bad_cleanup()));
      CHECK(exception_is<OtherError>(e));
      e = co_await capture(async_finally(body_ok(log), bad_cleanup()));
      CHECK(exception_is<OtherError>(e));
    };
    loop.run_until_complete(main());
  });
}
