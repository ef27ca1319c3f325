#include "net/dns.hpp"

#include <doctest/doctest.h>
#include <netdb.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <thread>

#include "coro/sleep.hpp"
#include "coro/task_handle.hpp"
#include "loop/thread_pool.hpp"
#include "loop/to_thread.hpp"
#include "net/errors.hpp"
#include "tests/net/net_support.hpp"
#include "tests/support.hpp"

using namespace corio;
using namespace std::chrono_literals;

TEST_CASE("numeric hosts resolve at once, bracketed IPv6 too, without a lookup") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto v4 = co_await resolve("127.0.0.1", 80);
      REQUIRE(v4.size() == 1u);
      CHECK(v4[0].to_string() == "127.0.0.1:80");
      auto v6 = co_await resolve("[::1]", 443);
      REQUIRE(v6.size() == 1u);
      CHECK(v6[0].to_string() == "[::1]:443");
      ResolveOptions only6;
      only6.family = AF_INET6;
      CHECK_THROWS_AS(co_await resolve("127.0.0.1", 80, only6), NameNotFoundError);
      ResolveOptions passive;
      passive.passive = true;
      auto any = co_await resolve("", 8080, passive);
      REQUIRE(any.size() == 2u);
      CHECK(any[0].to_string() == "0.0.0.0:8080");
      CHECK(any[1].to_string() == "[::]:8080");
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("a numeric host of a family other than the one asked for is refused, bracketed IPv6 too") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      ResolveOptions only4;
      only4.family = AF_INET;
      // "[::1]" as copied from a URL must be refused as "::1" is, not connected over IPv6 anyway.
      for (const char* host : {"::1", "[::1]"}) {
        std::string what;
        int code = 0;
        try {
          (void)co_await resolve(host, 80, only4);
        } catch (const NameNotFoundError& e) {
          what = e.what();
          code = e.code().value();
          CHECK(e.host() == host);
        }
        const std::string shown = host;
        CAPTURE(shown);
        CHECK(code == EAI_ADDRFAMILY);
        CHECK(what.find(std::string("getaddrinfo ") + host) != std::string::npos);
      }
      ResolveOptions only6;
      only6.family = AF_INET6;
      auto v6 = co_await resolve("[::1]", 80, only6);
      REQUIRE(v6.size() == 1u);
      CHECK(v6[0].to_string() == "[::1]:80");
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("names are resolved off the loop thread while other tasks keep running") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto ticker = [](int& ticks) -> Task<void> {
        for (;;) {
          co_await sleep(0ms);
          ++ticks;
        }
      };
      int ticks = 0;
      auto t = create_task(ticker(ticks));
      auto addrs = co_await resolve("localhost", 8080);
      t.cancel();
      REQUIRE_FALSE(addrs.empty());
      bool has_loopback = std::any_of(addrs.begin(), addrs.end(), [](const SocketAddress& a) {
        return a.to_string() == "127.0.0.1:8080" || a.to_string() == "[::1]:8080";
      });
      CHECK(has_loopback);
      CHECK(ticks > 0);  // the loop ran other tasks while getaddrinfo worked
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("an unknown name throws NameNotFoundError with the host in the message") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      bool thrown = false;
      try {
        (void)co_await resolve("no-such-host.invalid", 80);
      } catch (const NameNotFoundError& e) {
        thrown = true;
        CHECK(e.host() == "no-such-host.invalid");
        CHECK(e.code().category() == gai_category());
        CHECK(std::string(e.what()).find("getaddrinfo no-such-host.invalid: ") == 0);
      }
      CHECK(thrown);
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("cancelling a lookup returns at once; the late answer is dropped safely") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto lookup = []() -> Task<void> { (void)co_await resolve("localhost", 1); };
      for (int i = 0; i < 20; ++i) {
        auto t = create_task(lookup());
        co_await sleep(0ms);  // the lookup thread is started and the task waits
        t.cancel();
        try {
          co_await t;
        } catch (const CancelledError&) {
        }
      }
      co_await sleep(50ms);  // late answers arrive and find nobody waiting
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("a loop destroyed while a lookup runs is never called back") {
  for (int i = 0; i < 5; ++i) {
    test::on_each_backend([](EventLoop& loop) {
      auto main = []() -> Task<void> {
        auto lookup = []() -> Task<void> { (void)co_await resolve("localhost", 2); };
        (void)create_task(lookup());
        co_await sleep(0ms);
      };
      test::run_bounded(loop, main());
    });  // the loop is gone here; the thread may still be in getaddrinfo
  }
}

TEST_CASE("lookups run on the loop's default executor: queued behind its work, and a cancelled one never runs") {
  test::on_each_backend([](EventLoop& loop) {
    // One worker, held busy: a lookup can only run after it.
    loop.set_default_executor(std::make_shared<ThreadPoolExecutor>(1));
    auto main = []() -> Task<void> {
      std::atomic<bool> release{false};
      auto blocker = [](std::atomic<bool>& release) -> Task<void> {
        co_await to_thread([&release] {
          auto end = std::chrono::steady_clock::now() + 10s;
          while (!release.load() && std::chrono::steady_clock::now() < end) std::this_thread::sleep_for(1ms);
        });
      };
      auto lookup = []() -> Task<std::size_t> { co_return (co_await resolve("localhost", 80)).size(); };
      auto b = create_task(blocker(release));
      co_await sleep(0ms);
      auto cancelled = create_task(lookup());
      auto waiting = create_task(lookup());
      co_await sleep(100ms);
      CHECK_FALSE(waiting.done());  // queued behind the blocker on the one worker
      cancelled.cancel();
      co_await sleep(0ms);
      CHECK(cancelled.cancelled());  // at once, although its call never started
      release = true;
      CHECK(co_await waiting > 0u);
      co_await b;
    };
    test::run_bounded(loop, main());
  });
}
