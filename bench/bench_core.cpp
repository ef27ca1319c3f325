// bench_core: corio's core-runtime benchmarks — tasks, timers, cross-thread calls.
//
//   bench_core [--backend io_uring|epoll] [--only NAME,...] [--tasks N] [--batch N]
//              [--suspended N] [--timers N] [--sleep-tasks N] [--threadsafe N] [--threads N]
//
// Prints one JSON object per line on stdout, with the same keys as the Python
// peer (bench/peers/py_core.py); bench/run.py runs both in one invocation and
// reports ratios. Timing is meaningful only in a release build.
//
//   tasks         N trivial tasks: create_task x batch, then await each handle
//                 (asyncio.gather in batches); tasks_per_s. The same line carries
//                 bytes_per_suspended_task: S tasks all suspended in sleep(1h),
//                 heap growth / S, and what one costs (task record + frame blocks).
//   tasks_seq     N times `co_await create_task(trivial())`, one at a time.
//   gather        gather() over --fan children (default 100,000), repeated to N.
//   task_group    a TaskGroup of --fan children, repeated to N.
//   await_nested  N times `co_await trivial()` (a nested Task<T>, no spawn).
//   call_later    N loop.call_later callbacks with spread deadlines, all fired.
//   sleep_tasks   N tasks each in sleep(spread deadline), all awaited.
//   threadsafe    N call_soon_threadsafe calls from T threads, all delivered;
//                 calls_per_s and eventfd wake-ups per call.
#include <malloc.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "corio/corio.hpp"

// ---- allocation accounting ---------------------------------------------------
// Replacing the global operator new (everything, the library included, ends up
// here, frame_alloc's cache misses too) lets the memory benchmark name the
// blocks a suspended task costs, and the throughput benchmarks count
// allocations per task. Counting is switched on only while one thread runs,
// so the plain counters are not raced.
namespace {
bool g_count_allocs = false;
std::size_t g_alloc_calls = 0;
std::size_t g_alloc_bytes = 0;
constexpr std::size_t kHistGranule = 16;
std::array<std::size_t, 4096 / kHistGranule + 1> g_alloc_hist{};  // by size, up to 4 KiB

void reset_alloc_counts() {
  g_alloc_calls = g_alloc_bytes = 0;
  g_alloc_hist.fill(0);
}
}  // namespace

void* operator new(std::size_t n) {
  if (g_count_allocs) {
    ++g_alloc_calls;
    g_alloc_bytes += n;
    std::size_t b = (n + kHistGranule - 1) / kHistGranule;
    if (b < g_alloc_hist.size()) ++g_alloc_hist[b];
  }
  void* p = std::malloc(n ? n : 1);
  if (!p) throw std::bad_alloc();
  return p;
}
// GCC 12 sees through the replacement above and flags free() of memory from
// "operator new" (-Wmismatched-new-delete); both sides are malloc here.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

namespace {

using namespace std::chrono_literals;
using corio::EventLoop;
using corio::Task;
using corio::TaskHandle;
using SteadyClock = std::chrono::steady_clock;

// ---- options and output -------------------------------------------------------

struct Options {
  corio::LoopOptions loop;
  std::string backend = "io_uring";
  std::set<std::string> only;
  std::size_t tasks = 1'000'000;
  std::size_t batch = 1000;
  std::size_t fan = 100000;  // children per gather / TaskGroup
  std::size_t suspended = 100'000;
  std::size_t timers = 1'000'000;
  std::size_t sleep_tasks = 1'000'000;
  std::size_t threadsafe = 1'000'000;
  std::size_t threads = 4;

  bool wants(const char* name) const { return only.empty() || only.count(name) != 0; }
};

// One JSON object, printed as one line (flushed, so the harness sees each
// result even if a later benchmark dies).
class JsonLine {
 public:
  JsonLine(const char* bench, const Options& o) {
    str("bench", bench);
    str("impl", "corio");
    str("backend", o.backend.c_str());
  }
  JsonLine& str(const char* k, const char* v) {
    key(k);
    out_ += '"';
    out_ += v;
    out_ += '"';
    return *this;
  }
  JsonLine& num(const char* k, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6g", v);
    key(k);
    out_ += buf;
    return *this;
  }
  JsonLine& integer(const char* k, std::uint64_t v) {
    key(k);
    out_ += std::to_string(v);
    return *this;
  }
  JsonLine& int_list(const char* k, const std::vector<std::size_t>& v) {
    key(k);
    out_ += '[';
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (i) out_ += ',';
      out_ += std::to_string(v[i]);
    }
    out_ += ']';
    return *this;
  }
  void print() {
    std::printf("{%s}\n", out_.c_str());
    std::fflush(stdout);
  }

 private:
  void key(const char* k) {
    if (!out_.empty()) out_ += ',';
    out_ += '"';
    out_ += k;
    out_ += "\":";
  }
  std::string out_;
};

double seconds_since(SteadyClock::time_point t0) {
  return std::chrono::duration<double>(SteadyClock::now() - t0).count();
}

// Heap bytes in use: small chunks (uordblks) plus mmapped large ones (the timer
// heap's vector), counted with their malloc headers.
std::size_t heap_in_use() {
  struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

std::size_t rss_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  unsigned long size = 0, resident = 0;
  int got = std::fscanf(f, "%lu %lu", &size, &resident);
  std::fclose(f);
  return got == 2 ? resident * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE)) : 0;
}

// ---- coroutines under test ------------------------------------------------------

Task<int> trivial() { co_return 1; }

Task<void> sleeper(std::size_t* started) {
  ++*started;
  co_await corio::sleep(1h);
}

Task<void> timed_sleeper(std::chrono::nanoseconds d) { co_await corio::sleep(d); }

// Deadline spread used by call_later and sleep_tasks (and by the Python peer):
// distinct values in 0..1 ms in a scrambled order, so the heap really sorts.
std::chrono::nanoseconds spread(std::size_t i) { return std::chrono::nanoseconds((i * 7919) % 1'000'003); }

// ---- tasks ---------------------------------------------------------------------------

struct SuspendedResult {
  double heap_bytes = 0;
  double rss_bytes = 0;
  double alloc_bytes = 0;    // what operator new was asked for, per task
  double allocs = 0;         // operator new calls per task
  std::vector<std::size_t> per_task_sizes;  // block sizes requested once per task
  std::size_t started = 0;
};

Task<void> measure_suspended(std::size_t n, SuspendedResult* out) {
  std::vector<TaskHandle<void>> hs;
  hs.reserve(n);  // the caller's bookkeeping, not the task's cost
  std::size_t started = 0;
  // Blocks cached by the frame allocator are already counted as in use by
  // malloc; a task that takes one grows the heap by as much as a fresh block.
  const std::size_t cache0 = corio::detail::frame_cache_bytes();
  const std::size_t heap0 = heap_in_use();
  const std::size_t rss0 = rss_bytes();
  reset_alloc_counts();
  g_count_allocs = true;
  for (std::size_t i = 0; i < n; ++i) hs.push_back(corio::create_task(sleeper(&started)));
  co_await corio::sleep(0s);  // queued behind every new task: they all reach their sleep
  g_count_allocs = false;
  const std::size_t cache1 = corio::detail::frame_cache_bytes();
  const double nd = static_cast<double>(n);
  out->heap_bytes = (static_cast<double>(heap_in_use()) - static_cast<double>(heap0) + static_cast<double>(cache0) -
                     static_cast<double>(cache1)) /
                    nd;
  out->rss_bytes = (static_cast<double>(rss_bytes()) - static_cast<double>(rss0)) / nd;
  out->alloc_bytes = static_cast<double>(g_alloc_bytes) / nd;
  out->allocs = static_cast<double>(g_alloc_calls) / nd;
  for (std::size_t b = 0; b < g_alloc_hist.size(); ++b) {
    for (std::size_t k = 0; k < g_alloc_hist[b] / n; ++k) out->per_task_sizes.push_back(b * kHistGranule);
  }
  out->started = started;
  for (auto& h : hs) h.cancel();
  for (auto& h : hs) {
    try {
      co_await h;
    } catch (const corio::CancelledError&) {
    }
  }
}

struct Throughput {
  double secs = 0;
  double allocs_per_op = 0;
  long checksum = 0;
};

Task<void> gather_batches(std::size_t n, std::size_t batch, Throughput* out) {
  std::vector<TaskHandle<int>> hs;
  hs.reserve(batch);
  long sum = 0;
  // One untimed batch first, as the Python peer warms its free lists too.
  for (std::size_t i = 0; i < batch; ++i) hs.push_back(corio::create_task(trivial()));
  for (auto& h : hs) sum += co_await h;
  hs.clear();
  reset_alloc_counts();
  g_count_allocs = true;
  auto t0 = SteadyClock::now();
  for (std::size_t done = 0; done < n; done += batch) {
    for (std::size_t i = 0; i < batch; ++i) hs.push_back(corio::create_task(trivial()));
    for (auto& h : hs) sum += co_await h;
    hs.clear();
  }
  out->secs = seconds_since(t0);
  g_count_allocs = false;
  out->allocs_per_op = static_cast<double>(g_alloc_calls) / static_cast<double>(n);
  out->checksum = sum;
}

Task<void> await_each_spawned(std::size_t n, Throughput* out) {
  long sum = 0;
  reset_alloc_counts();
  g_count_allocs = true;
  auto t0 = SteadyClock::now();
  for (std::size_t i = 0; i < n; ++i) sum += co_await corio::create_task(trivial());
  out->secs = seconds_since(t0);
  g_count_allocs = false;
  out->allocs_per_op = static_cast<double>(g_alloc_calls) / static_cast<double>(n);
  out->checksum = sum;
}

Task<void> await_nested(std::size_t n, Throughput* out) {
  long sum = 0;
  reset_alloc_counts();
  g_count_allocs = true;
  auto t0 = SteadyClock::now();
  for (std::size_t i = 0; i < n; ++i) sum += co_await trivial();
  out->secs = seconds_since(t0);
  g_count_allocs = false;
  out->allocs_per_op = static_cast<double>(g_alloc_calls) / static_cast<double>(n);
  out->checksum = sum;
}

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "bench_core: %s\n", what);
    std::exit(1);
  }
}

void bench_tasks(const Options& o) {
  // Memory first, in a fresh process, before the throughput runs fill the
  // frame cache (the measurement corrects for the cache anyway).
  SuspendedResult mem;
  {
    EventLoop loop(o.loop);
    loop.run_until_complete(measure_suspended(o.suspended, &mem));
  }
  check(mem.started == o.suspended, "not every task reached its sleep");
  Throughput t;
  {
    EventLoop loop(o.loop);
    loop.run_until_complete(gather_batches(o.tasks, o.batch, &t));
  }
  check(t.checksum == static_cast<long>(o.tasks + o.batch), "tasks: wrong checksum");
  const double n = static_cast<double>(o.tasks);
  JsonLine("tasks", o)
      .integer("n", o.tasks)
      .integer("batch", o.batch)
      .num("tasks_per_s", n / t.secs)
      .num("ns_per_task", t.secs * 1e9 / n)
      .num("allocs_per_task", t.allocs_per_op)
      .integer("suspended_n", o.suspended)
      .num("bytes_per_suspended_task", mem.heap_bytes)
      .num("rss_bytes_per_suspended_task", mem.rss_bytes)
      .num("alloc_bytes_per_suspended_task", mem.alloc_bytes)
      .num("allocs_per_suspended_task", mem.allocs)
      .int_list("alloc_sizes_per_suspended_task", mem.per_task_sizes)
      .integer("task_record_sizeof", sizeof(corio::detail::TaskState<void>))
      .print();
}

// Issue 3's structured benchmarks: one gather / one TaskGroup over `fan`
// children, repeated until `n` children ran (asyncio peer: asyncio.gather and
// asyncio.TaskGroup over the same counts).
Task<void> gather_fan(std::size_t n, std::size_t fan, Throughput* out) {
  long sum = 0;
  auto t0 = SteadyClock::now();
  // The first round (untimed, like the peer's) touches the memory once.
  for (std::size_t done = 0; done < n + fan; done += fan) {
    if (done == fan) {
      t0 = SteadyClock::now();
      sum = 0;
    }
    std::vector<Task<int>> ts;
    ts.reserve(fan);
    for (std::size_t i = 0; i < fan; ++i) ts.push_back(trivial());
    std::vector<int> rs = co_await corio::gather(std::move(ts));
    for (int r : rs) sum += r;
  }
  out->secs = seconds_since(t0);
  out->checksum = sum;
}

Task<void> count_one(long* sum) {
  *sum += co_await trivial();
}

Task<void> group_fan(std::size_t n, std::size_t fan, Throughput* out) {
  long sum = 0;
  auto t0 = SteadyClock::now();
  for (std::size_t done = 0; done < n + fan; done += fan) {
    if (done == fan) {
      t0 = SteadyClock::now();
      sum = 0;
    }
    co_await corio::task_group([fan, &sum](corio::TaskGroup& tg) -> Task<void> {
      for (std::size_t i = 0; i < fan; ++i) tg.create_task(count_one(&sum));
      co_return;
    });
  }
  out->secs = seconds_since(t0);
  out->checksum = sum;
}

void bench_fan(const Options& o, const char* name) {
  Throughput t;
  EventLoop loop(o.loop);
  const std::size_t fan = o.fan;
  const std::size_t n = ((o.tasks + fan - 1) / fan) * fan;
  if (std::string(name) == "gather") loop.run_until_complete(gather_fan(n, fan, &t));
  else loop.run_until_complete(group_fan(n, fan, &t));
  check(t.checksum == static_cast<long>(n), "fan-out: wrong checksum");
  JsonLine(name, o)
      .integer("n", n)
      .integer("fan", fan)
      .num("tasks_per_s", static_cast<double>(n) / t.secs)
      .num("ns_per_task", t.secs * 1e9 / static_cast<double>(n))
      .print();
}

void bench_tasks_seq(const Options& o) {
  Throughput t;
  EventLoop loop(o.loop);
  loop.run_until_complete(await_each_spawned(o.tasks, &t));
  check(t.checksum == static_cast<long>(o.tasks), "tasks_seq: wrong checksum");
  const double n = static_cast<double>(o.tasks);
  JsonLine("tasks_seq", o)
      .integer("n", o.tasks)
      .num("tasks_per_s", n / t.secs)
      .num("ns_per_task", t.secs * 1e9 / n)
      .num("allocs_per_task", t.allocs_per_op)
      .print();
}

void bench_await_nested(const Options& o) {
  Throughput t;
  EventLoop loop(o.loop);
  loop.run_until_complete(await_nested(o.tasks, &t));
  check(t.checksum == static_cast<long>(o.tasks), "await_nested: wrong checksum");
  const double n = static_cast<double>(o.tasks);
  JsonLine("await_nested", o)
      .integer("n", o.tasks)
      .num("awaits_per_s", n / t.secs)
      .num("ns_per_await", t.secs * 1e9 / n)
      .num("allocs_per_await", t.allocs_per_op)
      .print();
}

// ---- timers --------------------------------------------------------------------------

void bench_call_later(const Options& o) {
  EventLoop loop(o.loop);
  struct State {
    std::size_t fired = 0;
    std::size_t n = 0;
    EventLoop* loop = nullptr;
  } st{0, o.timers, &loop};
  reset_alloc_counts();
  g_count_allocs = true;
  auto t0 = SteadyClock::now();
  for (std::size_t i = 0; i < o.timers; ++i) {
    loop.call_later(spread(i), [s = &st] {
      if (++s->fired == s->n) s->loop->stop();
    });
  }
  const double sched = seconds_since(t0);
  loop.run_forever();
  const double total = seconds_since(t0);
  g_count_allocs = false;
  check(st.fired == o.timers, "call_later: not every timer fired");
  const double n = static_cast<double>(o.timers);
  JsonLine("call_later", o)
      .integer("n", o.timers)
      .num("timers_per_s", n / total)
      .num("schedule_ns_per_timer", sched * 1e9 / n)
      .num("fire_ns_per_timer", (total - sched) * 1e9 / n)
      .num("allocs_per_timer", static_cast<double>(g_alloc_calls) / n)
      .print();
}

Task<void> spawn_sleepers(std::size_t n, double* secs) {
  std::vector<TaskHandle<void>> hs;
  hs.reserve(n);
  auto t0 = SteadyClock::now();
  for (std::size_t i = 0; i < n; ++i) hs.push_back(corio::create_task(timed_sleeper(spread(i))));
  for (auto& h : hs) co_await h;
  *secs = seconds_since(t0);
}

void bench_sleep_tasks(const Options& o) {
  double secs = 0;
  EventLoop loop(o.loop);
  loop.run_until_complete(spawn_sleepers(o.sleep_tasks, &secs));
  const double n = static_cast<double>(o.sleep_tasks);
  JsonLine("sleep_tasks", o)
      .integer("n", o.sleep_tasks)
      .num("timers_per_s", n / secs)
      .num("ns_per_task", secs * 1e9 / n)
      .print();
}

// ---- cross-thread calls ---------------------------------------------------------------

void bench_threadsafe(const Options& o) {
  EventLoop loop(o.loop);
  const std::size_t per = o.threadsafe / o.threads;
  struct State {
    std::size_t delivered = 0;  // loop thread only
    std::size_t total = 0;
    EventLoop* loop = nullptr;
    std::atomic<bool> go{false};
  } st;
  st.total = per * o.threads;
  st.loop = &loop;
  std::vector<std::thread> producers;
  for (std::size_t k = 0; k < o.threads; ++k) {
    producers.emplace_back([&st, per] {
      st.go.wait(false, std::memory_order_acquire);
      for (std::size_t j = 0; j < per; ++j) {
        st.loop->call_soon_threadsafe([s = &st] {
          if (++s->delivered == s->total) s->loop->stop();
        });
      }
    });
  }
  SteadyClock::time_point t0;
  // Start the producers from inside the running loop, so the clock includes
  // only delivery, and the loop is already waiting when the first call lands.
  loop.call_soon([&st, &t0] {
    t0 = SteadyClock::now();
    st.go.store(true, std::memory_order_release);
    st.go.notify_all();
  });
  const std::uint64_t wake0 = loop.wakeups();
  const std::uint64_t sleeps0 = loop.sleeps();
  const std::uint64_t iter0 = loop.iterations();
  loop.run_forever();
  const double secs = seconds_since(t0);
  for (auto& t : producers) t.join();
  check(st.delivered == st.total, "threadsafe: not every call was delivered");
  const double n = static_cast<double>(st.total);
  JsonLine("threadsafe", o)
      .integer("n", st.total)
      .integer("threads", o.threads)
      .num("calls_per_s", n / secs)
      .num("wakeups_per_call", static_cast<double>(loop.wakeups() - wake0) / n)
      .num("loop_sleeps_per_call", static_cast<double>(loop.sleeps() - sleeps0) / n)
      .num("calls_per_iteration", n / static_cast<double>(loop.iterations() - iter0))
      .print();
}

// ---- main --------------------------------------------------------------------------------

[[noreturn]] void usage(int code) {
  std::fprintf(code ? stderr : stdout,
               "usage: bench_core [--backend io_uring|epoll] [--only NAME,...] [--tasks N] [--batch N] [--fan N]\n"
               "                  [--suspended N] [--timers N] [--sleep-tasks N] [--threadsafe N] [--threads N]\n"
               "benchmarks: tasks tasks_seq await_nested call_later sleep_tasks threadsafe gather task_group\n"
               "Prints one JSON object per line (see bench/README.md).\n");
  std::exit(code);
}

std::size_t parse_count(const char* flag, const char* v) {
  char* end = nullptr;
  unsigned long long x = std::strtoull(v, &end, 10);
  if (!*v || *end || x == 0) {
    std::fprintf(stderr, "bench_core: %s needs a positive integer, not '%s'\n", flag, v);
    usage(2);
  }
  return static_cast<std::size_t>(x);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") usage(0);
    if (i + 1 >= argc) {
      std::fprintf(stderr, "bench_core: unknown or incomplete option '%s'\n", a.c_str());
      usage(2);
    }
    const char* v = argv[++i];
    if (a == "--backend") {
      o.backend = v;
      if (o.backend == "io_uring") o.loop.backend = corio::detail::BackendKind::io_uring;
      else if (o.backend == "epoll") o.loop.backend = corio::detail::BackendKind::epoll;
      else {
        std::fprintf(stderr, "bench_core: --backend must be io_uring or epoll\n");
        usage(2);
      }
    } else if (a == "--only") {
      std::string s = v;
      for (std::size_t p = 0; p <= s.size();) {
        std::size_t q = s.find(',', p);
        if (q == std::string::npos) q = s.size();
        if (q > p) o.only.insert(s.substr(p, q - p));
        p = q + 1;
      }
    } else if (a == "--tasks") o.tasks = parse_count(argv[i - 1], v);
    else if (a == "--batch") o.batch = parse_count(argv[i - 1], v);
    else if (a == "--fan") o.fan = parse_count(argv[i - 1], v);
    else if (a == "--suspended") o.suspended = parse_count(argv[i - 1], v);
    else if (a == "--timers") o.timers = parse_count(argv[i - 1], v);
    else if (a == "--sleep-tasks") o.sleep_tasks = parse_count(argv[i - 1], v);
    else if (a == "--threadsafe") o.threadsafe = parse_count(argv[i - 1], v);
    else if (a == "--threads") o.threads = parse_count(argv[i - 1], v);
    else {
      std::fprintf(stderr, "bench_core: unknown option '%s'\n", a.c_str());
      usage(2);
    }
  }
  static const std::set<std::string> known = {"tasks", "tasks_seq", "await_nested", "call_later", "sleep_tasks",
                                              "threadsafe", "gather", "task_group"};
  for (const auto& name : o.only) {
    if (!known.count(name)) {
      std::fprintf(stderr, "bench_core: unknown benchmark '%s'\n", name.c_str());
      usage(2);
    }
  }
  if (o.tasks % o.batch != 0) {
    std::fprintf(stderr, "bench_core: --tasks must be a multiple of --batch\n");
    usage(2);
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse(argc, argv);
  {
    EventLoop probe(o.loop);  // say so when io_uring was refused, not measure epoll twice
    if (o.backend == "io_uring" && probe.backend_kind() != corio::detail::BackendKind::io_uring) o.backend = "epoll";
  }
  try {
    if (o.wants("tasks")) bench_tasks(o);
    if (o.wants("tasks_seq")) bench_tasks_seq(o);
    if (o.wants("gather")) bench_fan(o, "gather");
    if (o.wants("task_group")) bench_fan(o, "task_group");
    if (o.wants("await_nested")) bench_await_nested(o);
    if (o.wants("call_later")) bench_call_later(o);
    if (o.wants("sleep_tasks")) bench_sleep_tasks(o);
    if (o.wants("threadsafe")) bench_threadsafe(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_core: %s\n", e.what());
    return 1;
  }
  return 0;
}
