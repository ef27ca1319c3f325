// The event loop and its thread bridge held to asyncio's semantics: timers at the
// edges, handles, stop(), nested runs, signals counted per arrival and owned by
// their handler, run_coroutine_threadsafe at loop close (CPython 3.11 checked).
#include <doctest/doctest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "coro/errors.hpp"
#include "coro/sleep.hpp"
#include "coro/task_handle.hpp"
#include "loop/event_loop.hpp"
#include "loop/future.hpp"
#include "loop/run.hpp"
#include "loop/run_coroutine_threadsafe.hpp"
#include "loop/thread_pool.hpp"
#include "loop/to_thread.hpp"
#include "tests/child_process.hpp"
#include "tests/support.hpp"

using namespace corio;
using namespace std::chrono_literals;

namespace {
std::string self_exe() {
  char self[4096];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  REQUIRE(n > 0);
  return std::string(self, static_cast<std::size_t>(n));
}
}  // namespace

// ---- timers -------------------------------------------------------------------

TEST_CASE("call_later with the largest delay never fires") {
  test::on_each_backend([](EventLoop& loop) {
    bool fired = false;
    auto h = loop.call_later(Duration::max(), [&] { fired = true; });
    loop.call_later(20ms, [&] { loop.stop(); });
    loop.run_forever();
    CHECK_FALSE(fired);
    h.cancel();
  });
}

TEST_CASE("a handle run normally does not report cancelled") {
  test::on_each_backend([](EventLoop& loop) {
    int n = 0;
    auto h1 = loop.call_soon([&] { ++n; });
    auto h2 = loop.call_later(1ms, [&] { ++n; });
    loop.call_later(20ms, [&] { loop.stop(); });
    loop.run_forever();
    CHECK(n == 2);
    CHECK_FALSE(h1.cancelled());  // asyncio: Handle.cancelled() is False after it ran
    CHECK_FALSE(h2.cancelled());
  });
}

TEST_CASE("cancel of a due timer from an earlier callback in the same tick") {
  test::on_each_backend([](EventLoop& loop) {
    std::vector<int> order;
    CallbackHandle hb;
    auto t = loop.time() + 5ms;
    loop.call_at(t, [&] { order.push_back(1); hb.cancel(); });
    hb = loop.call_at(t, [&] { order.push_back(2); });
    loop.call_at(t, [&] { order.push_back(3); });
    loop.call_later(30ms, [&] { loop.stop(); });
    loop.run_forever();
    CHECK(order == std::vector<int>{1, 3});
  });
}

// ---- running ------------------------------------------------------------------

TEST_CASE("stop before run_forever runs one iteration") {
  test::on_each_backend([](EventLoop& loop) {
    bool ran = false;
    loop.call_soon([&] { ran = true; });
    loop.stop();
    loop.run_forever();
    CHECK(ran);  // asyncio: stop() before run_forever() runs the callbacks already scheduled once
  });
}

TEST_CASE("run_until_complete inside a running loop fails without running the task") {
  test::on_each_backend([](EventLoop& loop) {
    bool body_ran = false;
    bool threw = false;
    auto body = [&]() -> Task<void> {
      body_ran = true;
      co_return;
    };
    loop.call_soon([&] {
      try {
        loop.run_until_complete(body());
      } catch (const InvalidStateError&) {
        threw = true;
      }
    });
    loop.call_later(20ms, [&] { loop.stop(); });
    loop.run_forever();
    CHECK(threw);
    CHECK_FALSE(body_ran);  // asyncio checks "already running" before it wraps the coroutine
  });
}

// ---- signals ------------------------------------------------------------------

namespace {
Task<int> user_sigint_main() {
  EventLoop& loop = EventLoop::current();
  auto hits = std::make_shared<int>(0);
  auto done = std::make_shared<Event>();
  loop.add_signal_handler(SIGINT, [hits, done] {
    std::printf("hit %d\n", ++*hits);
    std::fflush(stdout);
    if (*hits == 3) done->set();
  });
  std::printf("ready\n");
  std::fflush(stdout);
  co_await done->wait();
  co_return 7;
}
}  // namespace

TEST_CASE("child: a user SIGINT handler under corio::run" * doctest::skip()) {
  if (!std::getenv("CORIO_LOOP_TEST_CHILD")) return;
  std::fflush(stdout);
  int rc = corio::run(user_sigint_main());
  std::fflush(stdout);
  ::_exit(rc);
}

TEST_CASE("a user SIGINT handler under corio::run receives every SIGINT") {
  ::setenv("CORIO_LOOP_TEST_CHILD", "1", 1);
  test::ChildProcess child({self_exe(), "-tc=child: a user SIGINT handler under corio::run", "--no-skip"});
  ::unsetenv("CORIO_LOOP_TEST_CHILD");
  REQUIRE(child.wait_for_stdout("ready", 5s));
  for (int i = 1; i <= 3; ++i) {
    child.signal(SIGINT);
    if (!child.wait_for_stdout("hit " + std::to_string(i), 2s)) break;
  }
  int st = child.wait_exit(5s);
  INFO("stdout: " << child.out() << " stderr: " << child.err());
  CHECK(st == 7);
}

// ---- bridge -------------------------------------------------------------------

namespace {
struct Boom : std::runtime_error {
  Boom(const std::string& m, int c) : std::runtime_error(m), code(c) {}
  int code;
};
int throws_boom(int c) { throw Boom("boom", c); }
}  // namespace

TEST_CASE("to_thread exception type and run_in_executor on a custom pool") {
  test::on_each_backend([](EventLoop& loop) {
    ThreadPoolExecutor pool(2);
    auto body = [&]() -> Task<int> {
      int code = 0;
      try {
        co_await to_thread(throws_boom, 5);
      } catch (const Boom& b) {
        code = b.code;
      }
      int v = co_await run_in_executor(pool, [](int x) { return x * 2; }, 21);
      co_return code + v;
    };
    CHECK(loop.run_until_complete(body()) == 47);
    loop.shutdown_default_executor();
  });
}

TEST_CASE("cancelling a running to_thread: thread finishes later without harm") {
  test::on_each_backend([](EventLoop& loop) {
    auto started = std::make_shared<std::atomic<bool>>(false);
    auto finished = std::make_shared<std::atomic<bool>>(false);
    auto slow = [started, finished] {
      started->store(true);
      std::this_thread::sleep_for(100ms);
      finished->store(true);
      return std::string(1000, 'x');
    };
    auto body = [&]() -> Task<int> {
      auto h = create_task([](auto fn) -> Task<std::string> { co_return co_await to_thread(fn); }(slow));
      while (!started->load()) co_await sleep(1ms);
      h.cancel("stop");
      int r = 0;
      try {
        co_await h;
      } catch (const CancelledError& e) {
        r = e.message() == "stop" ? 1 : 2;
      }
      CHECK_FALSE(finished->load());
      co_await sleep(200ms);
      CHECK(finished->load());
      co_return r;
    };
    CHECK(loop.run_until_complete(body()) == 1);
    loop.shutdown_default_executor();
  });
}

TEST_CASE("run_coroutine_threadsafe result exception and cancel from a thread") {
  test::on_each_backend([](EventLoop& loop) {
    std::atomic<int> stage{0};
    std::thread th([&] {
      auto f1 = run_coroutine_threadsafe(loop, []() -> Task<int> { co_return 5; }());
      CHECK(f1.result(5s) == 5);
      auto f2 = run_coroutine_threadsafe(loop, []() -> Task<int> {
        throw Boom("x", 3);
        co_return 0;
      }());
      try {
        f2.result(5s);
        CHECK(false);
      } catch (const Boom& b) {
        CHECK(b.code == 3);
      }
      auto f3 = run_coroutine_threadsafe(loop, []() -> Task<int> {
        co_await sleep(1h);
        co_return 1;
      }());
      std::this_thread::sleep_for(20ms);
      CHECK(f3.cancel("bye"));
      CHECK(f3.cancelled());
      try {
        f3.result(5s);
        CHECK(false);
      } catch (const CancelledError& e) {
        CHECK(e.message() == "bye");
      }
      stage = 1;
      loop.call_soon_threadsafe([&] { loop.stop(); });
    });
    loop.call_later(10s, [&] { loop.stop(); });
    loop.run_forever();
    th.join();
    CHECK(stage == 1);
    CHECK(loop.task_count() <= 1);
  });
}

TEST_CASE("run_coroutine_threadsafe future cancelled while the loop is stopped, then the loop closes") {
  // ASan/LSan: the state must not leak.
  std::optional<futures::Future<int>> f;
  {
    EventLoop loop;
    std::thread th([&] {
      f = run_coroutine_threadsafe(loop, []() -> Task<int> {
        co_await sleep(1h);
        co_return 1;
      }());
    });
    th.join();
    loop.call_later(20ms, [&] { loop.stop(); });
    loop.run_forever();
    CHECK(loop.task_count() == 1);
    CHECK(f->cancel());
  }
  CHECK(f->cancelled());
}

TEST_CASE("corio::run nested in a running loop raises a clear error and the outer loop goes on") {
  test::on_each_backend([](EventLoop& loop) {
    auto inner = []() -> Task<int> { co_return 1; };
    auto body = [&]() -> Task<int> {
      int r = 0;
      // With or without signal handling (which the outer loop may own: the
      // error must still name the nesting).
      const bool modes[] = {false, true};
      for (bool signals : modes) {
        try {
          RunOptions o;
          o.handle_signals = signals;
          r = corio::run(inner(), o);
        } catch (const InvalidStateError& e) {
          CHECK(std::string(e.what()) == "corio::run() cannot be called from a running event loop");
          r = 2;
        }
      }
      co_await sleep(1ms);
      co_return r;
    };
    loop.add_signal_handler(SIGUSR1, [] {});  // the outer loop handles signals
    CHECK(loop.run_until_complete(body()) == 2);
    loop.remove_signal_handler(SIGUSR1);
  });
}

TEST_CASE("call_soon_threadsafe after stop runs on the next run") {
  test::on_each_backend([](EventLoop& loop) {
    loop.call_soon([&] { loop.stop(); });
    loop.run_forever();
    std::atomic<int> n{0};
    std::vector<std::thread> ts;
    for (int i = 0; i < 4; ++i)
      ts.emplace_back([&] {
        for (int j = 0; j < 1000; ++j) loop.call_soon_threadsafe([&] { ++n; });
      });
    for (auto& t : ts) t.join();
    for (int i = 0; i < 100 && n < 4000; ++i) {
      loop.call_soon([&] { loop.stop(); });
      loop.run_forever();
    }
    CHECK(n == 4000);
  });
}

#include <linux/capability.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <system_error>

TEST_CASE("corio::run with an unprivileged realtime_priority raises system_error") {
  std::thread([] {
    __user_cap_header_struct h{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct d[2]{};
    REQUIRE(::syscall(SYS_capget, &h, d) == 0);
    d[0].effective &= ~(1u << CAP_SYS_NICE);
    REQUIRE(::syscall(SYS_capset, &h, d) == 0);
    rlimit rt{};
    ::getrlimit(RLIMIT_RTPRIO, &rt);
    if (rt.rlim_cur >= 99) return;
    RunOptions o;
    o.handle_signals = false;
    o.loop.realtime_priority = 99;
    bool ran = false;
    auto body = [](bool& r) -> Task<int> {
      r = true;
      co_return 1;
    };
    CHECK_THROWS_AS(corio::run(body(ran), o), std::system_error);
    CHECK_FALSE(ran);
  }).join();
}

TEST_CASE("a signal raised three times runs its handler three times") {
  test::on_each_backend([](EventLoop& loop) {
    int n = 0;
    loop.add_signal_handler(SIGUSR2, [&] { ++n; });
    ::raise(SIGUSR2);  // synchronous: each one reaches the C handler
    ::raise(SIGUSR2);
    ::raise(SIGUSR2);
    loop.call_later(50ms, [&] { loop.stop(); });
    loop.run_forever();
    CHECK(n == 3);  // asyncio: 3 ("each time sig arrives", event_loop.hpp)
    loop.remove_signal_handler(SIGUSR2);
  });
}

TEST_CASE("a zero shutdown grace does not abandon idle executor threads") {
  test::on_each_backend([](EventLoop& loop) {
    loop.set_shutdown_grace(std::chrono::nanoseconds(0));
    auto body = []() -> Task<int> { co_return co_await to_thread([] { return 3; }); };
    CHECK(loop.run_until_complete(body()) == 3);
    loop.shutdown_default_executor();  // nothing runs: every thread is idle
    CHECK(loop.threads_abandoned() == 0);
  });
}

TEST_CASE("call_soon_threadsafe and call_soon from the loop thread keep registration order") {
  test::on_each_backend([](EventLoop& loop) {
    std::vector<int> order;
    loop.call_soon([&] {
      loop.call_soon_threadsafe([&] { order.push_back(1); });
      loop.call_soon([&] { order.push_back(2); });
      loop.call_soon([&] { loop.stop(); });
    });
    loop.call_later(1s, [&] { loop.stop(); });
    loop.run_forever();
    CHECK(order == std::vector<int>{1, 2});  // asyncio: both append to the same ready queue
  });
}

namespace {
Task<int> wait_forever_main() {
  std::printf("ready\n");
  std::fflush(stdout);
  co_await sleep(1h);
  co_return 0;
}
}  // namespace

TEST_CASE("child: corio::run twice" * doctest::skip()) {
  if (!std::getenv("CORIO_LOOP_TEST_CHILD2")) return;
  RunOptions o;
  o.exit_on_signal = false;
  for (int i = 1; i <= 2; ++i) {
    try {
      corio::run(wait_forever_main(), o);
    } catch (const SignalExit& e) {
      std::printf("exit %d %d\n", i, e.exit_status());
      std::fflush(stdout);
    }
  }
  ::_exit(0);
}

TEST_CASE("corio::run twice in a process: each SIGINT is a first one") {
  ::setenv("CORIO_LOOP_TEST_CHILD2", "1", 1);
  test::ChildProcess child({self_exe(), "-tc=child: corio::run twice", "--no-skip"});
  ::unsetenv("CORIO_LOOP_TEST_CHILD2");
  REQUIRE(child.wait_for_stdout("ready", 5s));
  child.signal(SIGINT);
  REQUIRE(child.wait_for_stdout("exit 1 130", 5s));
  std::this_thread::sleep_for(100ms);
  child.signal(SIGINT);
  CHECK(child.wait_for_stdout("exit 2 130", 5s));
  int st = child.wait_exit(5s);
  INFO("stdout: " << child.out() << " stderr: " << child.err());
  CHECK(st == 0);
}
