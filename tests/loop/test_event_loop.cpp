#include "loop/event_loop.hpp"

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstddef>
#include <cstdio>

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

#include "coro/sleep.hpp"
#include "loop/run.hpp"
#include "tests/support.hpp"

using namespace corio;
using namespace std::chrono_literals;

TEST_CASE("call_soon callbacks run in FIFO order, in a later iteration") {
  test::on_each_backend([](EventLoop& loop) {
    std::vector<int> order;
    for (int i = 0; i < 5; ++i) loop.call_soon([&order, i] { order.push_back(i); });
    loop.call_soon([&] { loop.stop(); });
    CHECK(order.empty());
    loop.run_forever();
    CHECK(order == std::vector<int>{0, 1, 2, 3, 4});
  });
}

TEST_CASE("timers with equal deadlines fire in FIFO order") {
  test::on_each_backend([](EventLoop& loop) {
    std::vector<int> order;
    TimePoint when = Clock::now() + 5ms;
    for (int i = 0; i < 100; ++i) loop.call_at(when, [&order, i] { order.push_back(i); });
    loop.call_at(when + 1ms, [&] { loop.stop(); });
    loop.run_forever();
    REQUIRE(order.size() == 100);
    CHECK(std::is_sorted(order.begin(), order.end()));
  });
}

TEST_CASE("cancelled timers never fire") {
  test::on_each_backend([](EventLoop& loop) {
    int fired = 0;
    std::vector<CallbackHandle> hs;
    for (int i = 0; i < 1000; ++i) hs.push_back(loop.call_later(std::chrono::microseconds(i * 10), [&] { ++fired; }));
    for (int i = 0; i < 1000; i += 2) hs[i].cancel();
    // Cancel from inside a callback too, including a timer due in the same iteration.
    auto late = loop.call_later(30ms, [&] { fired += 1000; });
    loop.call_later(29ms, [&] { late.cancel(); });
    auto soon = loop.call_soon([&] { fired += 100000; });
    soon.cancel();
    loop.call_later(50ms, [&] { loop.stop(); });
    loop.run_forever();
    CHECK(fired == 500);
    CHECK(hs[0].cancelled());
    CHECK(late.cancelled());
  });
}

TEST_CASE("100,000 timers fire in deadline order") {
  test::on_each_backend([](EventLoop& loop) {
    std::mt19937 rng(12345);
    std::uniform_int_distribution<int> us(0, 50'000);
    std::vector<TimePoint> fired;
    fired.reserve(100'000);
    TimePoint base = Clock::now();
    std::vector<CallbackHandle> hs;
    hs.reserve(100'000);
    for (int i = 0; i < 100'000; ++i) {
      TimePoint when = base + std::chrono::microseconds(us(rng));
      hs.push_back(loop.call_at(when, [&fired, when] { fired.push_back(when); }));
    }
    loop.call_at(base + 60ms, [&] { loop.stop(); });
    loop.run_forever();
    REQUIRE(fired.size() == 100'000);
    CHECK(std::is_sorted(fired.begin(), fired.end()));
  });
}

TEST_CASE("an exception thrown by a callback goes to the exception handler and the loop goes on") {
  test::on_each_backend([](EventLoop& loop) {
    std::vector<std::string> reports;
    loop.set_exception_handler([&](std::exception_ptr e, std::string_view) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        reports.emplace_back(ex.what());
      }
    });
    bool after = false;
    loop.call_soon([] { throw std::runtime_error("bad callback"); });
    loop.call_soon([&] { after = true; loop.stop(); });
    loop.run_forever();
    CHECK(after);
    REQUIRE(reports.size() == 1);
    CHECK(reports[0] == "bad callback");
  });
}

TEST_CASE("run() returns main's value and rethrows main's exception") {
  for (auto kind : {detail::BackendKind::io_uring, detail::BackendKind::epoll}) {
    RunOptions opts;
    opts.loop = test::options_for(kind);
    auto ok = []() -> Task<int> {
      co_await sleep(1ms);
      co_return 42;
    };
    CHECK(run(ok(), opts) == 42);
    auto bad = []() -> Task<int> {
      co_await sleep(1ms);
      throw std::out_of_range("main failed");
    };
    CHECK_THROWS_WITH_AS(run(bad(), opts), "main failed", std::out_of_range);
  }
}

TEST_CASE("run() cancels and drains tasks left over when main returns") {
  for (auto kind : {detail::BackendKind::io_uring, detail::BackendKind::epoll}) {
    RunOptions opts;
    opts.loop = test::options_for(kind);
    static int cleaned;
    cleaned = 0;
    auto leftover = []() -> Task<void> {
      std::exception_ptr cancelled;
      try {
        co_await sleep(1h);
      } catch (const CancelledError&) {
        cancelled = std::current_exception();
      }
      co_await sleep(1ms);  // cleanup may await during shutdown
      ++cleaned;
      std::rethrow_exception(cancelled);
    };
    auto main = [leftover]() -> Task<int> {
      for (int i = 0; i < 10; ++i) (void)create_task(leftover());
      co_await sleep(1ms);
      co_return 1;
    };
    CHECK(run(main(), opts) == 1);
    CHECK(cleaned == 10);
  }
}

TEST_CASE("the loop falls back to epoll with a notice when io_uring is refused") {
  for (int err : {EPERM, ENOSYS, ENOMEM}) {
    LoopOptions o;
    o.backend = detail::BackendKind::io_uring;
    o.force_uring_error = err;
    EventLoop loop(o);
    CHECK(loop.backend_kind() == detail::BackendKind::epoll);
    CHECK(loop.fallback_notice().find("io_uring unavailable") != std::string::npos);
    CHECK(loop.fallback_notice().find("using epoll") != std::string::npos);
    auto main = []() -> Task<int> {
      co_await sleep(1ms);
      co_return 3;
    };
    CHECK(loop.run_until_complete(main()) == 3);
  }
}

#if defined(__x86_64__) && defined(__NR_epoll_pwait2)
// A container's seccomp policy as a real kernel applies it: io_uring_setup
// refused (EPERM), epoll_pwait2 unknown (ENOSYS, as on kernels before 5.11
// and under valgrind). Runs in a forked child, which the filter confines.
int run_under_seccomp() {
  sock_filter f[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_epoll_pwait2, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog prog{static_cast<unsigned short>(sizeof f / sizeof f[0]), f};
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
    std::perror("seccomp");
    return 10;
  }
  LoopOptions o;
  o.backend = detail::BackendKind::io_uring;
  EventLoop loop(o);
  if (loop.backend_kind() != detail::BackendKind::epoll) return 11;
  auto main = []() -> Task<int> {
    auto t0 = Clock::now();
    for (int i = 0; i < 20; ++i) co_await sleep(2ms);
    co_return static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count());
  };
  std::uint64_t it0 = loop.iterations();
  int ms = loop.run_until_complete(main());
  std::uint64_t spent = loop.iterations() - it0;
  // 20 timers: a few dozen turns of the loop. A loop that spins on the
  // failing call makes thousands.
  if (ms < 40 || spent > 400) {
    std::fprintf(stderr, "seccomp child: %d ms, %llu iterations\n", ms, static_cast<unsigned long long>(spent));
    return 12;
  }
  return 0;
}

TEST_CASE("under a seccomp policy that refuses io_uring and epoll_pwait2 the loop runs on epoll_pwait, without spinning") {
  std::fflush(nullptr);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) ::_exit(run_under_seccomp());
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}
#endif

TEST_CASE("CORIO_BACKEND chooses the backend") {
  ::setenv("CORIO_BACKEND", "epoll", 1);
  {
    EventLoop loop;
    CHECK(std::string(loop.backend_name()) == "epoll");
  }
  ::setenv("CORIO_BACKEND", "io_uring", 1);
  {
    EventLoop loop;
    CHECK(loop.fallback_notice().empty() == (loop.backend_kind() == detail::BackendKind::io_uring));
  }
  ::setenv("CORIO_BACKEND", "kqueue", 1);
  CHECK_THROWS_AS(EventLoop(), std::invalid_argument);
  ::unsetenv("CORIO_BACKEND");
}

TEST_CASE("stop() ends run_forever after the current iteration, and the loop can run again") {
  test::on_each_backend([](EventLoop& loop) {
    int n = 0;
    loop.call_soon([&] {
      ++n;
      loop.stop();
      loop.call_soon([&] { ++n; });  // runs in the next run_forever
    });
    loop.run_forever();
    CHECK(n == 1);
    CHECK_FALSE(loop.is_running());
    loop.call_soon([&] { loop.stop(); });
    loop.run_forever();
    CHECK(n == 2);
  });
}

TEST_CASE("closing a loop with suspended tasks destroys their frames without leaks") {
  test::on_each_backend([](EventLoop& loop) {
    static int destroyed;
    destroyed = 0;
    struct Probe {
      ~Probe() { ++destroyed; }
    };
    auto forever = []() -> Task<void> {
      Probe p;
      co_await sleep(1h);
    };
    auto main = [forever]() -> Task<void> {
      for (int i = 0; i < 5; ++i) (void)create_task(forever());
      co_await sleep(1ms);
    };
    {
      EventLoop inner(test::options_for(loop.backend_kind()));
      inner.run_until_complete(main());
      CHECK(inner.task_count() == 5);
    }
    CHECK(destroyed == 5);
  });
}
