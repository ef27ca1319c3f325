// demo: tasks, timers, cancellation and work on a thread pool (to_thread) —
// the core of corio in one screen. Prints a timeline; exits 0 when every step behaved.
//
//   build/examples/demo [--backend io_uring|epoll]
#include <corio/corio.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

#include "cli.hpp"

using namespace std::chrono_literals;
using corio::Task;

namespace {

double ms_since(corio::TimePoint t0) {
  return std::chrono::duration<double, std::milli>(corio::Clock::now() - t0).count();
}

int g_rounds_done = 0;  // by all workers, for the timeline's last line

Task<int> worker(std::string name, std::chrono::milliseconds step, int rounds, corio::TimePoint t0) {
  for (int i = 1; i <= rounds; ++i) {
    co_await corio::sleep(step);
    ++g_rounds_done;
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

// A blocking job off the loop: corio::to_thread runs it on the default
// executor's pool and brings its result back to this task, while the other
// tasks and timers keep running.
long blocking_sum() {
  long s = 0;
  for (long i = 1; i <= 50'000'000; ++i) s += i % 7;
  return s;
}

Task<long> blocking_sum_on_thread(corio::TimePoint t0, int& rounds_meanwhile) {
  int before = g_rounds_done;
  long result = co_await corio::to_thread(blocking_sum);
  rounds_meanwhile = g_rounds_done - before;
  std::printf("%7.1f ms  thread: blocking sum done off the loop, result %ld\n", ms_since(t0), result);
  co_return result;
}

Task<int> demo_main() {
  auto t0 = corio::Clock::now();
  corio::EventLoop& loop = corio::EventLoop::current();
  std::printf("corio demo on the %s backend\n", loop.backend_name());

  loop.call_later(35ms, [t0] { std::printf("%7.1f ms  call_later(35 ms) fired\n", ms_since(t0)); });

  auto fast = corio::create_task(worker("fast", 10ms, 4, t0), "fast");
  auto slow = corio::create_task(worker("slow", 25ms, 2, t0), "slow");
  auto doomed = corio::create_task(sleeper(t0), "sleeper");
  int rounds_meanwhile = 0;
  auto summed = corio::create_task(blocking_sum_on_thread(t0, rounds_meanwhile), "to_thread");

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
  std::printf("%7.1f ms  done: %d rounds, sleeper cancelled: %s, worker rounds while the thread worked: %d\n",
              ms_since(t0), rounds, was_cancelled ? "yes" : "no", rounds_meanwhile);
  co_return (rounds == 6 && was_cancelled && sum > 0) ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  example::check_stdout_at_exit("demo");
  corio::RunOptions opts;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--help") == 0) {
      std::printf("usage: demo [--backend io_uring|epoll]\n"
                  "Runs tasks, timers, a cancellation and a to_thread call, printing a timeline.\n");
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
