#include "loop/signals.hpp"

#include <doctest/doctest.h>
#include <pthread.h>

#include <atomic>
#include <cstdlib>
#include <string>
#include <thread>

#include "coro/sleep.hpp"
#include "loop/run.hpp"
#include "tests/child_process.hpp"
#include "tests/support.hpp"

using namespace corio;
using namespace std::chrono_literals;

namespace {

// meson passes the child's path; run by hand, it sits beside this test binary.
std::string child_path() {
  if (const char* p = std::getenv("CORIO_SIGNAL_CHILD")) return p;
  char self[4096];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  REQUIRE(n > 0);
  std::string dir(self, static_cast<std::size_t>(n));
  return dir.substr(0, dir.rfind('/')) + "/signal_child";
}

std::size_t count(const std::string& hay, const std::string& needle) {
  std::size_t n = 0;
  for (std::size_t at = hay.find(needle); at != std::string::npos; at = hay.find(needle, at + 1)) ++n;
  return n;
}

const char* backend_arg(detail::BackendKind k) { return k == detail::BackendKind::epoll ? "epoll" : "io_uring"; }

}  // namespace

TEST_CASE("a signal handler runs on the loop thread, whichever thread the signal hit") {
  test::on_each_backend([](EventLoop& loop) {
    std::atomic<int> hits{0};
    std::thread::id ran_on;
    loop.add_signal_handler(SIGUSR1, [&] {
      ran_on = std::this_thread::get_id();
      if (++hits == 2) loop.stop();
    });
    ::raise(SIGUSR1);  // delivered to this thread
    loop.call_later(5ms, [] {
      // From another thread, aimed at the process.
      std::thread([] { ::kill(::getpid(), SIGUSR1); }).join();
    });
    loop.call_later(5s, [&] { loop.stop(); });  // bound
    loop.run_forever();
    CHECK(hits == 2);
    CHECK(ran_on == std::this_thread::get_id());
    CHECK(loop.remove_signal_handler(SIGUSR1));
    CHECK_FALSE(loop.remove_signal_handler(SIGUSR1));
  });
}

TEST_CASE("several signals arriving together each reach their handler") {
  test::on_each_backend([](EventLoop& loop) {
    int usr1 = 0, usr2 = 0;
    loop.add_signal_handler(SIGUSR1, [&] { ++usr1; });
    loop.add_signal_handler(SIGUSR2, [&] { ++usr2; });
    ::raise(SIGUSR1);
    ::raise(SIGUSR2);
    loop.call_later(20ms, [&] { loop.stop(); });
    loop.run_forever();
    CHECK(usr1 == 1);
    CHECK(usr2 == 1);
    loop.remove_signal_handler(SIGUSR1);
    loop.remove_signal_handler(SIGUSR2);
  });
}

TEST_CASE("every real-time signal up to SIGRTMAX can be handled") {
  // Python's loop.add_signal_handler takes 1..NSIG-1, SIGRTMAX (64) included.
  test::on_each_backend([](EventLoop& loop) {
    int lo = 0, hi = 0;
    loop.add_signal_handler(SIGRTMIN, [&] { ++lo; });
    loop.add_signal_handler(SIGRTMAX, [&] { ++hi; });
    ::raise(SIGRTMIN);
    ::raise(SIGRTMAX);
    loop.call_later(20ms, [&] { loop.stop(); });
    loop.run_forever();
    CHECK(lo == 1);
    CHECK(hi == 1);
    CHECK(loop.remove_signal_handler(SIGRTMIN));
    CHECK(loop.remove_signal_handler(SIGRTMAX));
  });
  EventLoop loop;
  CHECK_THROWS_WITH_AS(loop.add_signal_handler(SIGRTMAX + 1, [] {}),
                       ("add_signal_handler: invalid signal number " + std::to_string(SIGRTMAX + 1)).c_str(),
                       std::invalid_argument);
}

TEST_CASE("remove_signal_handler gives back a signal mask that blocked the signal") {
  sigset_t set, was;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR2);
  REQUIRE(pthread_sigmask(SIG_BLOCK, &set, &was) == 0);
  auto blocked = [] {
    sigset_t now;
    pthread_sigmask(SIG_BLOCK, nullptr, &now);
    return sigismember(&now, SIGUSR2) == 1;
  };
  {
    EventLoop loop;
    loop.add_signal_handler(SIGUSR2, [] {});
    CHECK_FALSE(blocked());  // the loop thread must receive it
    CHECK(loop.remove_signal_handler(SIGUSR2));
    CHECK(blocked());
    // The same when the loop closes with the handler still in place.
    loop.add_signal_handler(SIGUSR2, [] {});
    CHECK_FALSE(blocked());
  }
  CHECK(blocked());
  pthread_sigmask(SIG_SETMASK, &was, nullptr);
  // A signal that was not blocked stays unblocked.
  {
    EventLoop loop;
    loop.add_signal_handler(SIGUSR2, [] {});
    loop.remove_signal_handler(SIGUSR2);
  }
  CHECK_FALSE(blocked());
}

TEST_CASE("add_signal_handler rejects signals that cannot be caught, naming them") {
  EventLoop loop;
  CHECK_THROWS_WITH_AS(loop.add_signal_handler(SIGKILL, [] {}), "add_signal_handler: SIGKILL cannot be caught",
                       std::invalid_argument);
  CHECK_THROWS_AS(loop.add_signal_handler(SIGSTOP, [] {}), std::invalid_argument);
  CHECK_THROWS_AS(loop.add_signal_handler(0, [] {}), std::invalid_argument);
  CHECK_THROWS_AS(loop.add_signal_handler(99, [] {}), std::invalid_argument);
}

TEST_CASE("only one loop at a time handles signals") {
  EventLoop a;
  EventLoop b;
  a.add_signal_handler(SIGUSR1, [] {});
  CHECK_THROWS_AS(b.add_signal_handler(SIGUSR2, [] {}), InvalidStateError);
  a.remove_signal_handler(SIGUSR1);
}

TEST_CASE("SIGINT once: main is cancelled, cleanup and awaits in cleanup run, exit status 130") {
  for (auto kind : {detail::BackendKind::io_uring, detail::BackendKind::epoll}) {
    CAPTURE(backend_arg(kind));
    test::ChildProcess child({child_path(), "graceful", backend_arg(kind)});
    REQUIRE(child.wait_for_stdout("ready", 10s));
    child.signal(SIGINT);
    CHECK(child.wait_exit(10s) == 130);
    const std::string& out = child.out();
    CHECK(out.find("main cancelled: interrupted by SIGINT") != std::string::npos);
    CHECK(out.find("main cleanup finished") != std::string::npos);
    CHECK(out.find("main RAII destructor ran") != std::string::npos);
    CHECK(count(out, "cleaned up") == 3);  // every worker task was cancelled and awaited
    CHECK(child.err().empty());
  }
}

TEST_CASE("SIGTERM takes the same graceful path and exits 143") {
  for (auto kind : {detail::BackendKind::io_uring, detail::BackendKind::epoll}) {
    CAPTURE(backend_arg(kind));
    test::ChildProcess child({child_path(), "graceful", backend_arg(kind)});
    REQUIRE(child.wait_for_stdout("ready", 10s));
    child.signal(SIGTERM);
    CHECK(child.wait_exit(10s) == 143);
    CHECK(child.out().find("main cancelled: interrupted by SIGTERM") != std::string::npos);
    CHECK(count(child.out(), "cleaned up") == 3);
  }
}

TEST_CASE("with SignalPolicy::request_shutdown the signal sets the shutdown token and main drains") {
  for (auto kind : {detail::BackendKind::io_uring, detail::BackendKind::epoll}) {
    CAPTURE(backend_arg(kind));
    test::ChildProcess child({child_path(), "drain", backend_arg(kind)});
    REQUIRE(child.wait_for_stdout("ready", 10s));
    child.signal(SIGTERM);
    CHECK(child.wait_exit(10s) == 143);
    CHECK(child.out().find("shutdown requested: finishing in-flight work\ndrained") != std::string::npos);
  }
}

TEST_CASE("a main that ignores the shutdown token is cancelled when the grace period ends") {
  test::ChildProcess child({child_path(), "ignore-token"});
  REQUIRE(child.wait_for_stdout("ready", 10s));
  auto t0 = std::chrono::steady_clock::now();
  child.signal(SIGINT);
  CHECK(child.wait_exit(10s) == 130);
  auto took = std::chrono::steady_clock::now() - t0;
  CHECK(took >= 250ms);  // the 300 ms grace
  CHECK(took < 5s);
  CHECK(child.out().find("cancelled: interrupted by SIGINT (shutdown grace period over)") != std::string::npos);
}

TEST_CASE("a task blocked in to_thread(sleep 10 s) does not hold the exit past the grace period") {
  for (auto kind : {detail::BackendKind::io_uring, detail::BackendKind::epoll}) {
    CAPTURE(backend_arg(kind));
    test::ChildProcess child({child_path(), "blocking", backend_arg(kind)});
    REQUIRE(child.wait_for_stdout("ready", 10s));  // printed by the call, on its thread
    auto t0 = std::chrono::steady_clock::now();
    child.signal(SIGINT);
    CHECK(child.wait_exit(8s) == 130);
    auto took = std::chrono::steady_clock::now() - t0;
    CHECK(took >= 450ms);  // the 500 ms grace was given
    CHECK(took < 4s);      // ... and not the thread's 10 s
    CHECK(child.out().find("main cancelled while its thread still sleeps") != std::string::npos);
    CHECK(child.err().find("1 thread(s) still running blocking work") != std::string::npos);
  }
}

TEST_CASE("a second SIGINT during a hung shutdown exits at once with one line") {
  for (auto kind : {detail::BackendKind::io_uring, detail::BackendKind::epoll}) {
    CAPTURE(backend_arg(kind));
    test::ChildProcess child({child_path(), "stuck", backend_arg(kind)});
    REQUIRE(child.wait_for_stdout("ready", 10s));
    child.signal(SIGINT);
    REQUIRE(child.wait_for_stdout("cleanup will hang", 10s));
    auto t0 = std::chrono::steady_clock::now();
    child.signal(SIGINT);
    CHECK(child.wait_exit(5s) == 130);
    CHECK(std::chrono::steady_clock::now() - t0 < 2s);
    CHECK(child.err() == "\ncorio: second SIGINT during shutdown, exiting now\n");
  }
}

// The loop is stuck in a task that never yields, so it never dispatches the
// first SIGINT (which arms the escape hatch): the C handler counts the
// arrivals itself, and Ctrl+C twice still ends the program.
TEST_CASE("a second SIGINT exits at once even when the loop never dispatched the first") {
  for (auto kind : {detail::BackendKind::io_uring, detail::BackendKind::epoll}) {
    CAPTURE(backend_arg(kind));
    test::ChildProcess child({child_path(), "spin", backend_arg(kind)});
    REQUIRE(child.wait_for_stdout("ready", 10s));
    child.signal(SIGINT);
    std::this_thread::sleep_for(200ms);
    auto t0 = std::chrono::steady_clock::now();
    child.signal(SIGINT);
    CHECK(child.wait_exit(5s) == 130);
    CHECK(std::chrono::steady_clock::now() - t0 < 2s);
    CHECK(child.err() == "\ncorio: second SIGINT during shutdown, exiting now\n");
    CHECK(child.out().find("spin ended") == std::string::npos);
  }
}

TEST_CASE("SIGQUIT prints every task with its await chain and the program goes on") {
  for (auto kind : {detail::BackendKind::io_uring, detail::BackendKind::epoll}) {
    CAPTURE(backend_arg(kind));
    test::ChildProcess child({child_path(), "quit", backend_arg(kind)});
    REQUIRE(child.wait_for_stdout("ready", 10s));
    child.signal(SIGQUIT);
    CHECK(child.wait_exit(10s) == 0);
    CHECK(child.out().find("still running after SIGQUIT") != std::string::npos);
    const std::string& err = child.err();
    CHECK(err.find("live task(s)") != std::string::npos);
    CHECK(err.find("Task 'main'") != std::string::npos);
    CHECK(err.find("Task 'sleepy-task'") != std::string::npos);
    CHECK(err.find("suspended in sleep") != std::string::npos);
    CHECK(err.find("quit_dump()") != std::string::npos);  // the await chain names the coroutine
    CHECK(err.find("signal_child.cpp:") != std::string::npos);
  }
}

TEST_CASE("debug mode: one slow step gives exactly one warning naming the task") {
  test::ChildProcess child({child_path(), "slow"});
  CHECK(child.wait_exit(10s) == 0);
  CHECK(count(child.err(), "slow step") == 1);
  CHECK(child.err().find("task 'busy-loop'") != std::string::npos);
}

TEST_CASE("debug mode: an unretrieved exception is reported with the task's name") {
  test::ChildProcess child({child_path(), "unretrieved"});
  CHECK(child.wait_exit(10s) == 0);
  CHECK(count(child.err(), "never retrieved") == 1);
  CHECK(child.err().find("lonely-failure") != std::string::npos);
  CHECK(child.err().find("nobody looks at me") != std::string::npos);
}

TEST_CASE("debug mode: a coroutine created and never awaited is reported") {
  test::ChildProcess child({child_path(), "never-awaited"});
  CHECK(child.wait_exit(10s) == 0);
  CHECK(count(child.err(), "was never awaited") == 1);
  CHECK(child.err().find("signal_child.cpp:") != std::string::npos);
}

TEST_CASE("dump_tasks describes states: suspended, ready, running") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = [](EventLoop& l) -> Task<std::string> {
      auto sleeper = []() -> Task<void> { co_await sleep(1h); };
      auto t = create_task(sleeper(), "napper");
      co_await sleep(1ms);
      std::string d = l.dump_tasks();
      t.cancel();
      co_return d;
    };
    std::string d = loop.run_until_complete(main(loop), "dumper");
    CHECK(d.find("Task 'dumper'") != std::string::npos);
    CHECK(d.find(": running") != std::string::npos);
    CHECK(d.find("Task 'napper'") != std::string::npos);
    CHECK(d.find("suspended in sleep") != std::string::npos);
  });
}
