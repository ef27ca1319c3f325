// bench_to_thread: the thread bridge, measured from a task.
//
//   bench_to_thread [--backend io_uring|epoll] [--only to_thread,timer_under_load,timer_floor]
//                   [--n N] [--calls N] [--in-flight K] [--timer-samples S] [--workers W]
//                   [--spin-us US]
//
// Prints one JSON object per line on stdout, with the keys of its Python peer
// (bench/peers/py_to_thread.py):
//
//   to_thread         N sequential `co_await corio::to_thread(f)` round trips
//                     (f trivial; after 200 warm-up calls): p50_us, p99_us,
//                     mean_us. Then `calls` round trips with K tasks each keeping
//                     one call in flight: calls_per_s. Both on the default
//                     executor (min(32, cores + 4) workers unless --workers).
//   timer_under_load  every worker runs CPU-bound work (a hashing loop) while the
//                     loop sleeps 10 ms at a time, S times: how late each wake-up
//                     is (p50/p99/max_lateness_us). The loop thread must get the
//                     CPU back promptly although W threads want it.
//   timer_under_load_background  the same with the load on a pool of
//                     WorkerPriority::background (SCHED_IDLE) workers.
//   timer_under_load_realtime  the first test again (default executor, normal
//                     workers) on a loop with LoopOptions::realtime_priority = 1
//                     (SCHED_FIFO; needs CAP_SYS_NICE or RLIMIT_RTPRIO, else
//                     the row carries the error).
//   timer_floor, timer_floor_background  the same measurement without corio,
//                     in the same run: W plain std::threads burn (at normal
//                     priority / SCHED_IDLE) while a plain thread sleeps with
//                     clock_nanosleep(TIMER_ABSTIME). This is what the kernel
//                     delivers on this machine; corio's rows are read against it.
//
// Timing is meaningful only in a release build, on a quiet machine.
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <pthread.h>
#include <sched.h>
#include <time.h>

#include "corio/corio.hpp"

using namespace std::chrono_literals;
using corio::Clock;
using corio::Task;

namespace {

struct Args {
  std::string backend = "io_uring";
  std::string only;
  long n = 20'000;
  long calls = 1'000'000;
  int in_flight = 64;
  int timer_samples = 500;
  int workers = 0;    // 0: the default executor's default size
  int spin_us = -1;   // -1: the pool's default idle spin
};

const char* g_backend = "io_uring";

double pct(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  std::size_t i = std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())));
  return v[i];
}

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0 : s / static_cast<double>(v.size());
}

int trivial() { return 1; }

Task<void> keep_one_in_flight(long n, long& sink) {
  for (long i = 0; i < n; ++i) sink += co_await corio::to_thread(trivial);
}

Task<void> bench_to_thread(const Args& a) {
  corio::EventLoop& loop = corio::EventLoop::current();
  std::size_t workers = loop.default_executor().max_workers();
  long sink = 0;
  for (int i = 0; i < 200; ++i) sink += co_await corio::to_thread(trivial);
  std::vector<double> lat;
  lat.reserve(static_cast<std::size_t>(a.n));
  for (long i = 0; i < a.n; ++i) {
    auto t0 = Clock::now();
    sink += co_await corio::to_thread(trivial);
    lat.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  double m = mean(lat), p50 = pct(lat, 0.50), p99 = pct(lat, 0.99);

  std::uint64_t wake0 = loop.wakeups();
  auto t0 = Clock::now();
  std::vector<corio::TaskHandle<void>> hs;
  long per = a.calls / a.in_flight;
  std::vector<long> sinks(static_cast<std::size_t>(a.in_flight), 0);
  for (int k = 0; k < a.in_flight; ++k) hs.push_back(corio::create_task(keep_one_in_flight(per, sinks[k])));
  for (auto& h : hs) co_await h;
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  long done = per * a.in_flight;
  for (long s : sinks) sink += s;
  std::printf(
      "{\"bench\": \"to_thread\", \"impl\": \"corio\", \"backend\": \"%s\", \"n\": %ld, \"p50_us\": %.2f, "
      "\"p99_us\": %.2f, \"mean_us\": %.2f, \"calls\": %ld, \"in_flight\": %d, \"calls_per_s\": %.0f, "
      "\"wakeups_per_call\": %.4f, \"workers\": %zu}\n",
      g_backend, a.n, p50, p99, m, done, a.in_flight, static_cast<double>(done) / secs,
      static_cast<double>(loop.wakeups() - wake0) / static_cast<double>(done), workers);
  std::fflush(stdout);
  if (sink == 42) std::printf("\n");  // keep the calls observable
}

// CPU-bound work: FNV-1a over a counter until told to stop.
std::uint64_t burn(const std::atomic<bool>& stop) {
  std::uint64_t h = 1469598103934665603ull;
  std::uint64_t i = 0;
  while (!stop.load(std::memory_order_relaxed)) {
    for (int k = 0; k < 4096; ++k) {
      h ^= i++;
      h *= 1099511628211ull;
    }
  }
  return h;
}

// key: the bench name printed; pool: where the burners run (its size).
Task<void> bench_timer_under_load(const Args& a, corio::ThreadPoolExecutor* pool, const char* key) {
  std::size_t workers = pool->max_workers();
  std::atomic<bool> stop{false};
  std::vector<corio::TaskHandle<std::uint64_t>> burners;
  for (std::size_t w = 0; w < workers; ++w) {
    burners.push_back(corio::create_task(
        [](corio::ThreadPoolExecutor& p, std::atomic<bool>& s) -> Task<std::uint64_t> {
          co_return co_await corio::run_in_executor(p, burn, std::cref(s));
        }(*pool, stop)));
  }
  co_await corio::sleep(50ms);  // every worker is busy now
  std::vector<double> late;
  late.reserve(static_cast<std::size_t>(a.timer_samples));
  for (int i = 0; i < a.timer_samples; ++i) {
    auto due = Clock::now() + 10ms;
    co_await corio::sleep_until(due);
    late.push_back(std::chrono::duration<double, std::micro>(Clock::now() - due).count());
  }
  stop = true;
  std::uint64_t sink = 0;
  for (auto& b : burners) sink += co_await b;
  double p50 = pct(late, 0.50), p99 = pct(late, 0.99), mx = late.empty() ? 0 : late.back();
  std::printf(
      "{\"bench\": \"%s\", \"impl\": \"corio\", \"backend\": \"%s\", \"timer_ms\": 10, \"n\": %d, "
      "\"p50_lateness_us\": %.1f, \"p99_lateness_us\": %.1f, \"max_lateness_us\": %.1f, \"workers\": %zu}\n",
      key, g_backend, a.timer_samples, p50, p99, mx, workers);
  std::fflush(stdout);
  if (sink == 42) std::printf("\n");
}

// The kernel's floor for the timer test: no loop, no pool, plain threads.
void timer_floor(const Args& a, std::size_t workers, bool background, const char* key) {
  std::atomic<bool> stop{false};
  std::vector<std::thread> burners;
  std::atomic<std::uint64_t> sink{0};
  for (std::size_t w = 0; w < workers; ++w) {
    burners.emplace_back([&stop, &sink, background] {
      if (background) {
        sched_param sp{};
        pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
      }
      sink += burn(stop);
    });
  }
  std::this_thread::sleep_for(50ms);
  std::vector<double> late;
  late.reserve(static_cast<std::size_t>(a.timer_samples));
  for (int i = 0; i < a.timer_samples; ++i) {
    timespec due{};
    clock_gettime(CLOCK_MONOTONIC, &due);
    due.tv_nsec += 10'000'000;
    if (due.tv_nsec >= 1'000'000'000) {
      due.tv_sec += 1;
      due.tv_nsec -= 1'000'000'000;
    }
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &due, nullptr) == EINTR) {
    }
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    late.push_back(static_cast<double>(now.tv_sec - due.tv_sec) * 1e6 +
                   static_cast<double>(now.tv_nsec - due.tv_nsec) / 1e3);
  }
  stop = true;
  for (auto& t : burners) t.join();
  double p50 = pct(late, 0.50), p99 = pct(late, 0.99), mx = late.empty() ? 0 : late.back();
  std::printf(
      "{\"bench\": \"%s\", \"impl\": \"threads\", \"timer_ms\": 10, \"n\": %d, "
      "\"p50_lateness_us\": %.1f, \"p99_lateness_us\": %.1f, \"max_lateness_us\": %.1f, \"workers\": %zu}\n",
      key, a.timer_samples, p50, p99, mx, workers);
  std::fflush(stdout);
  if (sink == 42) std::printf("\n");
}

bool wanted(const Args& a, const char* name) {
  if (a.only.empty()) return true;
  std::string list = "," + a.only + ",";
  return list.find(std::string(",") + name + ",") != std::string::npos;
}

Task<int> bench_main(const Args& a) {
  g_backend = corio::EventLoop::current().backend_name();  // what runs, after any fallback
  if (a.workers > 0) {
    corio::EventLoop::current().set_default_executor(
        std::make_shared<corio::ThreadPoolExecutor>(static_cast<std::size_t>(a.workers)));
  }
  if (a.spin_us >= 0) corio::EventLoop::current().default_executor().set_idle_spin(std::chrono::microseconds(a.spin_us));
  if (wanted(a, "to_thread")) co_await bench_to_thread(a);
  if (wanted(a, "timer_under_load")) {
    corio::ThreadPoolExecutor& def = corio::EventLoop::current().default_executor();
    co_await bench_timer_under_load(a, &def, "timer_under_load");
    // The same load on a pool of background (SCHED_IDLE) workers.
    corio::ThreadPoolExecutor bg(def.max_workers(), "corio-bg", corio::WorkerPriority::background);
    co_await bench_timer_under_load(a, &bg, "timer_under_load_background");
    bg.shutdown(true);
  }
  if (wanted(a, "timer_floor")) {
    // Blocks the loop thread on purpose: nothing else runs on it meanwhile.
    const std::size_t workers = corio::EventLoop::current().default_executor().max_workers();
    timer_floor(a, workers, false, "timer_floor");
    timer_floor(a, workers, true, "timer_floor_background");
  }
  co_return 0;
}

[[noreturn]] void usage(int code) {
  std::fprintf(code ? stderr : stdout,
               "usage: bench_to_thread [--backend io_uring|epoll] [--only to_thread,timer_under_load,timer_floor]\n"
               "                       [--n N] [--calls N] [--in-flight K] [--timer-samples S] [--workers W]\n"
               "                       [--spin-us US]   (how long idle pool workers spin; default the pool's)\n");
  std::exit(code);
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  corio::RunOptions opts;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(2);
      return argv[++i];
    };
    if (arg == "--help") usage(0);
    else if (arg == "--backend") a.backend = value();
    else if (arg == "--only") a.only = value();
    else if (arg == "--n") a.n = std::atol(value().c_str());
    else if (arg == "--calls") a.calls = std::atol(value().c_str());
    else if (arg == "--in-flight") a.in_flight = std::atoi(value().c_str());
    else if (arg == "--timer-samples") a.timer_samples = std::atoi(value().c_str());
    else if (arg == "--workers") a.workers = std::atoi(value().c_str());
    else if (arg == "--spin-us") a.spin_us = std::atoi(value().c_str());
    else usage(2);
  }
  if (a.backend == "epoll") opts.loop.backend = corio::detail::BackendKind::epoll;
  else if (a.backend == "io_uring") opts.loop.backend = corio::detail::BackendKind::io_uring;
  else usage(2);
  if (a.n <= 0 || a.calls <= 0 || a.in_flight <= 0 || a.timer_samples <= 0) usage(2);
  int rc = 0;
  try {
    rc = corio::run(bench_main(a), opts);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_to_thread: %s\n", e.what());
    return 1;
  }
  if (rc == 0 && wanted(a, "timer_under_load")) {
    // A second loop, real-time this time; its default executor is new, and
    // its workers start with the normal policy.
    opts.loop.realtime_priority = 1;
    try {
      rc = corio::run(
          [](const Args& args) -> Task<int> {
            co_await bench_timer_under_load(args, &corio::EventLoop::current().default_executor(),
                                            "timer_under_load_realtime");
            co_return 0;
          }(a),
          opts);
    } catch (const std::system_error& e) {
      std::printf("{\"bench\": \"timer_under_load_realtime\", \"impl\": \"corio\", \"backend\": \"%s\", "
                  "\"error\": \"%s\"}\n",
                  g_backend, e.what());
    }
  }
  return rc;
}
