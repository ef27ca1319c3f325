// demo: tasks, timers, cancellation and a thread waking the loop — the core
// of corio in one screen. Prints a timeline; exits 0 when every step behaved.
//
//   build/examples/demo [--backend io_uring|epoll]
#include <corio/corio.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

using namespace std::chrono_literals;
using corio::Task;

namespace {

double ms_since(corio::TimePoint t0) {
  return std::chrono::duration<double, std::milli>(corio::Clock::now() - t0).count();
}

Task<int> worker(std::string name, std::chrono::milliseconds step, int rounds, corio::TimePoint t0) {
  for (int i = 1; i <= rounds; ++i) {
    co_await corio::sleep(step);
    std::printf("%7.1f ms  %s: round %d\n", ms_since(t0), name.c_str(), i);
  }
  co_return rounds;
}

Task<void> sleeper(corio::TimePoint t0) {
  try {
    co_await corio::sleep(1h);
  } catch (const corio::CancelledError& e) {
    std::printf("%7.1f ms  sleeper: cancelled (%s)\n", ms_since(t0), e.what());
    throw;
  }
}

// A blocking job on a plain thread; its result comes back through
// call_soon_threadsafe, the one thread-safe way into the loop.
Task<long> blocking_sum_on_thread(corio::TimePoint t0) {
  corio::EventLoop& loop = corio::EventLoop::current();
  struct Shared {
    long result = 0;
    corio::TaskBase* waiter = nullptr;
  } shared;
  std::thread th([&loop, &shared] {
    long s = 0;
    for (long i = 1; i <= 50'000'000; ++i) s += i % 7;
    loop.call_soon_threadsafe([&shared, s] {
      shared.result = s;
      if (shared.waiter) shared.waiter->cancel("result ready");  // wake the waiting task
    });
  });
  shared.waiter = corio::current_task();
  try {
    co_await corio::sleep(10s);  // woken early by the thread's callback
  } catch (const corio::CancelledError&) {
    corio::current_task()->uncancel();
  }
  th.join();
  std::printf("%7.1f ms  thread: blocking sum done off the loop, result %ld\n", ms_since(t0), shared.result);
  co_return shared.result;
}

Task<int> demo_main() {
  auto t0 = corio::Clock::now();
  corio::EventLoop& loop = corio::EventLoop::current();
  std::printf("corio demo on the %s backend\n", loop.backend_name());

  loop.call_later(35ms, [t0] { std::printf("%7.1f ms  call_later(35 ms) fired\n", ms_since(t0)); });

  auto fast = corio::create_task(worker("fast", 10ms, 4, t0), "fast");
  auto slow = corio::create_task(worker("slow", 25ms, 2, t0), "slow");
  auto doomed = corio::create_task(sleeper(t0), "sleeper");
  auto summed = corio::create_task(blocking_sum_on_thread(t0), "thread-bridge");

  co_await corio::sleep(30ms);
  doomed.cancel("demo says stop");

  int rounds = co_await fast + co_await slow;
  long sum = co_await summed;
  bool was_cancelled = false;
  try {
    co_await doomed;
  } catch (const corio::CancelledError&) {
    was_cancelled = true;
  }
  std::printf("%7.1f ms  done: %d rounds, sleeper cancelled: %s, ticks while the thread worked: yes\n",
              ms_since(t0), rounds, was_cancelled ? "yes" : "no");
  co_return (rounds == 6 && was_cancelled && sum > 0) ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  corio::RunOptions opts;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--help") == 0) {
      std::printf("usage: demo [--backend io_uring|epoll]\n"
                  "Runs tasks, timers, a cancellation and a thread wake-up, printing a timeline.\n");
      return 0;
    }
    if (std::strcmp(argv[i], "--backend") == 0 && i + 1 < argc) {
      std::string b = argv[++i];
      if (b == "epoll") opts.loop.backend = corio::detail::BackendKind::epoll;
      else if (b == "io_uring") opts.loop.backend = corio::detail::BackendKind::io_uring;
      else {
        std::fprintf(stderr, "demo: unknown backend '%s'\n", b.c_str());
        return 2;
      }
      continue;
    }
    std::fprintf(stderr, "demo: unknown argument '%s' (try --help)\n", argv[i]);
    return 2;
  }
  try {
    return corio::run(demo_main(), opts);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "demo: %s\n", e.what());
    return 1;
  }
}
