// A small corio program driven by tests/loop/test_signals.cpp: it runs one
// scenario under corio::run, prints "ready" when its tasks are in place, and
// reports what its cleanup code did on stdout.
#include <corio/corio.hpp>

#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

using namespace std::chrono_literals;
using corio::Task;

namespace {

void say(const std::string& s) {
  std::printf("%s\n", s.c_str());
  std::fflush(stdout);
}

Task<void> worker(int i) {
  std::exception_ptr cancelled;
  try {
    co_await corio::sleep(1h);
  } catch (const corio::CancelledError&) {
    cancelled = std::current_exception();
  }
  co_await corio::sleep(1ms);  // cleanup that awaits
  say("worker " + std::to_string(i) + " cleaned up");
  std::rethrow_exception(cancelled);
}

struct Raii {
  ~Raii() { say("main RAII destructor ran"); }
};

Task<int> graceful() {
  Raii r;
  for (int i = 0; i < 3; ++i) (void)corio::create_task(worker(i), "worker-" + std::to_string(i));
  say("ready");
  std::exception_ptr cancelled;
  try {
    co_await corio::sleep(1h);
  } catch (const corio::CancelledError& e) {
    say(std::string("main cancelled: ") + e.what());
    cancelled = std::current_exception();
  }
  co_await corio::sleep(5ms);
  say("main cleanup finished");
  std::rethrow_exception(cancelled);
}

// A main that never yields: the loop never dispatches a signal.
Task<int> spin() {
  say("ready");
  auto end = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < end) {
  }
  say("spin ended");
  co_return 0;
}

Task<int> stuck_cleanup() {
  say("ready");
  try {
    co_await corio::sleep(1h);
  } catch (const corio::CancelledError&) {
    say("main cancelled; cleanup will hang");
  }
  std::this_thread::sleep_for(60s);  // a cleanup that never yields: only the escape hatch helps
  co_return 0;
}

Task<int> quit_dump() {
  auto sleeper = []() -> Task<void> { co_await corio::sleep(1h); };
  auto t = corio::create_task(sleeper(), "sleepy-task");
  say("ready");
  co_await corio::sleep(800ms);
  t.cancel();
  say("still running after SIGQUIT");
  co_return 0;
}

Task<int> slow_step() {
  auto busy = []() -> Task<void> {
    co_await corio::sleep(1ms);
    auto until = std::chrono::steady_clock::now() + 150ms;
    while (std::chrono::steady_clock::now() < until) {
    }
    co_await corio::sleep(1ms);
  };
  co_await corio::create_task(busy(), "busy-loop");
  co_return 0;
}

Task<int> unretrieved() {
  auto fails = []() -> Task<void> {
    co_await corio::sleep(1ms);
    throw std::runtime_error("nobody looks at me");
  };
  { auto t = corio::create_task(fails(), "lonely-failure"); }
  co_await corio::sleep(20ms);
  co_return 0;
}

Task<int> never_awaited() {
  auto coro = []() -> Task<void> { co_return; };
  { Task<void> t = coro(); }  // created, never awaited
  co_return 0;
}

// A server-like main that drains on the shutdown token instead of being cancelled.
Task<int> drain() {
  say("ready");
  co_await corio::shutdown_event().wait();
  say("shutdown requested: finishing in-flight work");
  co_await corio::sleep(20ms);
  say("drained");
  co_return 0;
}

// Ignores the token: cancelled once the grace period is over.
Task<int> ignore_token() {
  say("ready");
  try {
    co_await corio::sleep(1h);
  } catch (const corio::CancelledError& e) {
    say(std::string("cancelled: ") + e.what());
    throw;
  }
  co_return 0;
}

// Blocked in a thread call that outlives any reasonable shutdown.
Task<int> blocking() {
  try {
    co_await corio::to_thread([] {
      say("ready");  // from the pool thread: the call is running
      std::this_thread::sleep_for(10s);
    });
  } catch (const corio::CancelledError&) {
    say("main cancelled while its thread still sleeps");
    throw;
  }
  co_return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: signal_child SCENARIO [epoll|io_uring]\n");
    return 2;
  }
  std::string mode = argv[1];
  corio::RunOptions opts;
  if (argc > 2) {
    opts.loop.backend = std::strcmp(argv[2], "epoll") == 0 ? corio::detail::BackendKind::epoll
                                                           : corio::detail::BackendKind::io_uring;
  }
  if (mode == "graceful") return corio::run(graceful(), opts);
  if (mode == "stuck") return corio::run(stuck_cleanup(), opts);
  if (mode == "spin") return corio::run(spin(), opts);
  if (mode == "quit") return corio::run(quit_dump(), opts);
  if (mode == "blocking") {
    opts.shutdown_grace = 500ms;
    return corio::run(blocking(), opts);
  }
  opts.on_signal = corio::SignalPolicy::request_shutdown;
  opts.shutdown_grace = 300ms;
  if (mode == "drain") return corio::run(drain(), opts);
  if (mode == "ignore-token") return corio::run(ignore_token(), opts);
  opts.loop.debug = true;
  if (mode == "slow") return corio::run(slow_step(), opts);
  if (mode == "unretrieved") return corio::run(unretrieved(), opts);
  if (mode == "never-awaited") return corio::run(never_awaited(), opts);
  std::fprintf(stderr, "signal_child: unknown scenario %s\n", mode.c_str());
  return 2;
}
