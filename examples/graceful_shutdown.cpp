// graceful_shutdown: what Ctrl+C does to a corio program.
//
// A producer feeds jobs into a queue; a pool of worker tasks takes them, and
// each job runs a blocking step on a thread (corio::to_thread). Press Ctrl+C
// (or send SIGTERM):
//   1. the loop's shutdown event is set and main is cancelled with
//      "interrupted by SIGINT";
//   2. main's cleanup runs and may await: it stops the producer and lets the
//      workers finish the job in hand (async_finally);
//   3. corio::run cancels the tasks still pending and awaits their cleanup,
//      shuts the default executor down (queued thread calls are cancelled;
//      a running one is waited for up to the grace period);
//   4. the process exits with 130 (SIGINT) or 143 (SIGTERM).
// A second Ctrl+C during that sequence exits at once. Ctrl+\ (SIGQUIT) prints
// every task and where it waits, and the program goes on.
//
//   graceful_shutdown [--workers N] [--seconds S] [--backend io_uring|epoll]
#include <corio/corio.hpp>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "cli.hpp"

using namespace std::chrono_literals;
using corio::Task;

namespace {

struct Stats {
  long produced = 0;
  long done = 0;
};

// The blocking part of a job: stands for a compressor, a database call, ...
long blocking_step(long job) {
  std::this_thread::sleep_for(20ms);
  long h = job;
  for (int i = 0; i < 100000; ++i) h = h * 6364136223846793005L + 1442695040888963407L;
  return h;
}

Task<void> producer(corio::Queue<long>& jobs, Stats& st) {
  for (long j = 0;; ++j) {
    co_await jobs.put(j);
    ++st.produced;
  }
}

Task<void> worker(int id, corio::Queue<long>& jobs, Stats& st) {
  for (;;) {
    long job;
    try {
      job = co_await jobs.get();
    } catch (const corio::QueueShutDown&) {
      co_return;  // drained: the queue was shut down and is empty
    }
    // The job in hand is finished even if we are cancelled meanwhile: the
    // cleanup of async_finally awaits the thread's result.
    co_await corio::to_thread(blocking_step, job);
    ++st.done;
    jobs.task_done();
    (void)id;
  }
}

Task<int> run_main(int n_workers, int seconds) {
  corio::Queue<long> jobs(2 * static_cast<std::size_t>(n_workers));
  Stats st;
  auto prod = corio::create_task(producer(jobs, st), "producer");
  std::vector<corio::TaskHandle<void>> workers;
  for (int i = 0; i < n_workers; ++i) workers.push_back(corio::create_task(worker(i, jobs, st), "worker-" + std::to_string(i)));
  std::printf("running %d workers for %d s; press Ctrl+C to stop early, Ctrl+\\ to see the tasks\n", n_workers,
              seconds);
  std::fflush(stdout);

  auto body = [](Stats& st, int seconds) -> Task<void> {
    for (int s = 0; s < seconds * 4; ++s) {
      co_await corio::sleep(250ms);
      std::printf("\r%ld jobs done, %ld produced", st.done, st.produced);
      std::fflush(stdout);
    }
  };
  auto cleanup = [](corio::TaskHandle<void> prod, corio::Queue<long>& jobs, Stats& st,
                    std::exception_ptr why) -> Task<void> {
    std::printf("\n%s: stopping the producer and draining the queue\n",
                why ? "interrupted" : "time is up");
    prod.cancel("shutting down");
    jobs.shutdown();  // workers finish what is queued, then see QueueShutDown
    co_await corio::sleep(50ms);
    std::printf("cleanup done: %ld jobs finished\n", st.done);
    std::fflush(stdout);
  };
  co_await corio::async_finally(body(st, seconds),
                                [&](std::exception_ptr e) { return cleanup(prod, jobs, st, e); });
  for (auto& w : workers) w.cancel();
  co_return 0;
}

}  // namespace

int main(int argc, char** argv) {
  example::check_stdout_at_exit("graceful_shutdown");
  int n_workers = 4, seconds = 30;
  corio::RunOptions opts;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help") {
      std::printf("usage: graceful_shutdown [--workers N] [--seconds S] [--backend io_uring|epoll]\n"
                  "Shows corio's Ctrl+C sequence: cancel main, await cleanup, drain, exit 130/143.\n");
      return 0;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "graceful_shutdown: %s needs a value\n", a.c_str());
      return 2;
    }
    std::string v = argv[++i];
    // A whole number in lo..hi, or a usage error: atoi took "5x" as 5, and
    // --seconds 600000000 overflowed seconds * 4 (the run ended at once).
    auto number = [&](long lo, long hi) {
      char* end = nullptr;
      errno = 0;
      long n = std::strtol(v.c_str(), &end, 10);
      if (errno || end == v.c_str() || *end || n < lo || n > hi) {
        std::fprintf(stderr, "graceful_shutdown: %s must be a number in %ld..%ld (try --help)\n", a.c_str(), lo, hi);
        std::exit(2);
      }
      return static_cast<int>(n);
    };
    if (a == "--workers") n_workers = number(1, 1024);
    else if (a == "--seconds") seconds = number(0, 100'000'000);
    else if (a == "--backend" && (v == "epoll" || v == "io_uring"))
      opts.loop.backend = v == "epoll" ? corio::detail::BackendKind::epoll : corio::detail::BackendKind::io_uring;
    else {
      std::fprintf(stderr, "graceful_shutdown: bad argument %s %s (try --help)\n", a.c_str(), v.c_str());
      return 2;
    }
  }
  if (n_workers < 1 || seconds < 0) {
    std::fprintf(stderr, "graceful_shutdown: --workers must be >= 1 and --seconds >= 0\n");
    return 2;
  }
  try {
    return corio::run(run_main(n_workers, seconds), opts);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "graceful_shutdown: %s\n", e.what());
    return 1;
  }
}
