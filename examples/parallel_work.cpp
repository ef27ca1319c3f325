// parallel_work: many coroutines doing I/O while CPU-heavy steps run on the
// thread pool — the event loop stays responsive throughout.
//
//   build/examples/parallel_work [--jobs N] [--size BYTES] [--workers W] [--level 1-9]
//                                [--backend io_uring|epoll] [--quiet]
//
// Each job is a pair of coroutines joined by a pipe: a producer writes
// generated text into it (pausing on timers, like a slow peer), a consumer
// reads it all. Then the CPU-heavy steps go to the pool with
// corio::to_thread: SHA-256 (OpenSSL EVP), deflate (zlib), and a check that
// inflating gives the same digest. Meanwhile a ticker task measures how late
// a 10 ms timer fires: it stays on time because the loop never runs the
// hashing or compression itself. A progress line goes to stderr; one line
// per job and a summary go to stdout.
//
// Exit status: 0 success, 1 runtime failure (reason on stderr), 2 bad usage.
#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <corio/corio.hpp>

#include "cli.hpp"

using namespace std::chrono_literals;
using corio::Task;

namespace {

struct Options {
  int jobs = 32;
  std::size_t size = 1 << 20;
  int workers = 0;  // 0: one per core
  int level = 6;
  bool quiet = false;
  corio::RunOptions run;
};

// Counters shared by the coroutines (loop thread only) for the progress line.
struct Progress {
  int jobs = 0;
  int done = 0;
  std::size_t bytes_read = 0;
  std::size_t bytes_hashed = 0;
  std::size_t bytes_packed_in = 0;
  std::size_t bytes_packed_out = 0;
};

struct JobResult {
  int id = 0;
  std::size_t bytes = 0;
  std::size_t packed = 0;
  std::string sha256;
};

// ---- CPU-heavy steps: run on pool threads, never on the loop ------------------------

std::string sha256_hex(const unsigned char* p, std::size_t n) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(p, n, md, &len, EVP_sha256(), nullptr) != 1) throw std::runtime_error("EVP_Digest(sha256) failed");
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out.push_back(hex[md[i] >> 4]);
    out.push_back(hex[md[i] & 15]);
  }
  return out;
}

// The data is shared (shared_ptr to const) rather than referenced: if the
// awaiting task were cancelled, to_thread abandons the running call, and a
// reference into the task's frame would dangle.
std::string hash_data(std::shared_ptr<const std::string> data) {
  return sha256_hex(reinterpret_cast<const unsigned char*>(data->data()), data->size());
}

std::string deflate_data(std::shared_ptr<const std::string> data, int level) {
  uLongf cap = compressBound(static_cast<uLong>(data->size()));
  std::string out(cap, '\0');
  int rc = compress2(reinterpret_cast<Bytef*>(out.data()), &cap, reinterpret_cast<const Bytef*>(data->data()),
                     static_cast<uLong>(data->size()), level);
  if (rc != Z_OK) throw std::runtime_error(std::string("zlib compress2: ") + zError(rc));
  out.resize(cap);
  return out;
}

std::string inflate_and_hash(std::shared_ptr<const std::string> packed, std::size_t size) {
  std::string out(size, '\0');
  uLongf len = static_cast<uLongf>(size);
  int rc = uncompress(reinterpret_cast<Bytef*>(out.data()), &len, reinterpret_cast<const Bytef*>(packed->data()),
                      static_cast<uLong>(packed->size()));
  if (rc != Z_OK) throw std::runtime_error(std::string("zlib uncompress: ") + zError(rc));
  if (len != size) throw std::runtime_error("zlib uncompress: wrong size");
  return sha256_hex(reinterpret_cast<const unsigned char*>(out.data()), out.size());
}

// ---- I/O: coroutines on the loop ---------------------------------------------------------

// Deterministic, compressible text: words from a small dictionary.
class TextGen {
 public:
  explicit TextGen(std::uint64_t seed) : s_(seed * 0x9E3779B97F4A7C15ull + 1) {}
  void fill(std::string& buf, std::size_t n) {
    static const char* words[] = {"corio ",  "asyncio ", "thread ", "pool ",   "hash ",  "deflate ", "pipe ",
                                  "event ",  "loop ",    "task ",   "await ",  "ring ",  "uring ",   "epoll ",
                                  "cancel ", "timer ",   "future ", "bridge ", "queue ", "io "};
    buf.clear();
    while (buf.size() < n) {
      s_ ^= s_ << 13;
      s_ ^= s_ >> 7;
      s_ ^= s_ << 17;
      buf += words[s_ % 20];
      if (s_ % 11 == 0) buf += '\n';
    }
    buf.resize(n);
  }

 private:
  std::uint64_t s_;
};

Task<void> produce(int fd, int id, std::size_t size) {
  TextGen gen(static_cast<std::uint64_t>(id));
  std::string chunk;
  std::size_t sent = 0;
  int n = 0;
  while (sent < size) {
    gen.fill(chunk, std::min<std::size_t>(64 * 1024, size - sent));
    co_await corio::write_all(fd, chunk.data(), chunk.size());
    sent += chunk.size();
    if (++n % 4 == 0) co_await corio::sleep(std::chrono::milliseconds(1 + id % 3));  // a slow peer
  }
  corio::close_fd(fd);
}

Task<JobResult> job(int id, const Options& o, Progress& p) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category(), "pipe2");
  auto writer = corio::create_task(produce(fds[1], id, o.size), "producer-" + std::to_string(id));
  auto data = std::make_shared<std::string>();
  data->reserve(o.size);
  std::vector<char> buf(64 * 1024);
  for (;;) {
    std::size_t n = co_await corio::read(fds[0], buf.data(), buf.size());
    if (n == 0) break;  // EOF: the producer closed its end
    data->append(buf.data(), n);
    p.bytes_read += n;
  }
  corio::close_fd(fds[0]);
  co_await writer;

  std::shared_ptr<const std::string> shared = std::move(data);
  JobResult r;
  r.id = id;
  r.bytes = shared->size();
  r.sha256 = co_await corio::to_thread(hash_data, shared);
  p.bytes_hashed += r.bytes;
  auto packed = std::make_shared<const std::string>(co_await corio::to_thread(deflate_data, shared, o.level));
  r.packed = packed->size();
  p.bytes_packed_in += r.bytes;
  p.bytes_packed_out += r.packed;
  std::string check = co_await corio::to_thread(inflate_and_hash, packed, r.bytes);
  if (check != r.sha256) throw std::runtime_error("job " + std::to_string(id) + ": inflated data does not match");
  ++p.done;
  co_return r;
}

// Measures how late a 10 ms timer fires while the jobs run.
Task<void> ticker(std::vector<double>& lateness_ms, const bool& stop) {
  while (!stop) {
    auto due = corio::Clock::now() + 10ms;
    co_await corio::sleep_until(due);
    lateness_ms.push_back(std::chrono::duration<double, std::milli>(corio::Clock::now() - due).count());
  }
}

double mib(std::size_t b) { return static_cast<double>(b) / (1024.0 * 1024.0); }

Task<void> progress_line(const Progress& p, const bool& stop, bool tty) {
  auto print = [&p] {
    std::fprintf(stderr, "[%3d/%d jobs] read %.1f MiB, hashed %.1f MiB, deflated %.1f -> %.1f MiB", p.done, p.jobs,
                 mib(p.bytes_read), mib(p.bytes_hashed), mib(p.bytes_packed_in), mib(p.bytes_packed_out));
  };
  int ticks = 0;
  while (!stop) {
    co_await corio::sleep(100ms);
    if (tty) {
      std::fputs("\r", stderr);
      print();
      std::fflush(stderr);
    } else if (++ticks % 10 == 0) {  // not a terminal: one line a second
      print();
      std::fputs("\n", stderr);
    }
  }
  if (tty) {
    std::fputs("\r", stderr);
    print();
    std::fputs("\n", stderr);
  }
}

Task<int> parallel_main(const Options& o) {
  corio::EventLoop& loop = corio::EventLoop::current();
  // CPU-bound steps: about one thread per core. The default executor's
  // cores + 4 suits blocking calls; for hashing, threads beyond the cores only
  // compete with the loop's thread for the CPU (its timers then run late).
  std::size_t workers = o.workers > 0 ? static_cast<std::size_t>(o.workers)
                                      : std::max(1u, std::thread::hardware_concurrency());
  loop.set_default_executor(std::make_shared<corio::ThreadPoolExecutor>(workers));
  Progress p;
  p.jobs = o.jobs;
  bool stop = false;
  std::vector<double> lateness;
  auto tick = corio::create_task(ticker(lateness, stop), "ticker");
  corio::TaskHandle<void> progress;
  if (!o.quiet) progress = corio::create_task(progress_line(p, stop, ::isatty(2) == 1), "progress");

  auto t0 = corio::Clock::now();
  std::vector<corio::TaskHandle<JobResult>> jobs;
  for (int i = 0; i < o.jobs; ++i) jobs.push_back(corio::create_task(job(i, o, p), "job-" + std::to_string(i)));
  std::vector<JobResult> results;
  std::exception_ptr failure;
  for (auto& j : jobs) {
    try {
      results.push_back(co_await j);
    } catch (...) {
      if (!failure) failure = std::current_exception();
    }
  }
  double secs = std::chrono::duration<double>(corio::Clock::now() - t0).count();
  stop = true;
  co_await tick;
  if (progress) co_await progress;
  if (failure) {
    for (auto& j : jobs) j.cancel();
    std::rethrow_exception(failure);
  }

  std::size_t total = 0, packed = 0;
  for (const auto& r : results) {
    std::printf("job %2d: %zu bytes  sha256 %s  deflate %zu bytes (%.1f%%)\n", r.id, r.bytes, r.sha256.c_str(),
                r.packed, 100.0 * static_cast<double>(r.packed) / static_cast<double>(r.bytes));
    total += r.bytes;
    packed += r.packed;
  }
  std::sort(lateness.begin(), lateness.end());
  double worst = lateness.empty() ? 0 : lateness.back();
  double median = lateness.empty() ? 0 : lateness[lateness.size() / 2];
  std::printf("%d jobs, %.1f MiB read through pipes, hashed and deflated to %.1f MiB in %.2f s (%.0f MiB/s) on %zu "
              "pool threads, %s backend\n",
              o.jobs, mib(total), mib(packed), secs, mib(total) / secs, loop.default_executor().thread_count(),
              loop.backend_name());
  std::printf("loop responsiveness: a 10 ms timer fired %zu times, median %.2f ms late, worst %.2f ms\n",
              lateness.size(), median, worst);
  co_return 0;
}

[[noreturn]] void usage(int code) {
  std::fprintf(code ? stderr : stdout,
               "usage: parallel_work [--jobs N] [--size BYTES] [--workers W] [--level 1-9]\n"
               "                     [--backend io_uring|epoll] [--quiet]\n"
               "Runs N jobs at once: each streams BYTES of generated text through a pipe between two\n"
               "coroutines, then hashes (SHA-256) and deflates it on the thread pool and checks the\n"
               "round trip. Defaults: 32 jobs of 1 MiB (K/M suffixes accepted), one pool thread per\n"
               "core, zlib level 6, io_uring.\n");
  std::exit(code);
}

bool parse_size(const std::string& s, std::size_t& out) {
  // Digits only: strtoull takes "-N" as 2^64 - N (so a negative size could
  // wrap to a valid one) and skips leading blanks.
  if (s.empty() || s[0] < '0' || s[0] > '9') return false;
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  if (errno || end == s.c_str() || v > (1ull << 30)) return false;  // bounded before the shift: it cannot wrap
  std::string suffix(end);
  if (suffix == "K" || suffix == "k") v <<= 10;
  else if (suffix == "M" || suffix == "m") v <<= 20;
  else if (!suffix.empty()) return false;
  if (v == 0 || v > (1ull << 30)) return false;
  out = static_cast<std::size_t>(v);
  return true;
}

bool parse_int(const std::string& s, int lo, int hi, int& out) {
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(s.c_str(), &end, 10);
  if (errno || end == s.c_str() || *end || v < lo || v > hi) return false;
  out = static_cast<int>(v);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  example::check_stdout_at_exit("parallel_work");
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "parallel_work: %s needs a value (try --help)\n", arg.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    auto bad = [&](const std::string& v) {
      std::fprintf(stderr, "parallel_work: bad value '%s' for %s (try --help)\n", v.c_str(), arg.c_str());
      std::exit(2);
    };
    if (arg == "--help" || arg == "-h") usage(0);
    if (arg == "--quiet") {
      o.quiet = true;
    } else if (arg == "--jobs") {
      std::string v = value();
      if (!parse_int(v, 1, 4096, o.jobs)) bad(v);
    } else if (arg == "--size") {
      std::string v = value();
      if (!parse_size(v, o.size)) bad(v);
    } else if (arg == "--workers") {
      std::string v = value();
      if (!parse_int(v, 1, 1024, o.workers)) bad(v);
    } else if (arg == "--level") {
      std::string v = value();
      if (!parse_int(v, 1, 9, o.level)) bad(v);
    } else if (arg == "--backend") {
      std::string v = value();
      if (v == "io_uring") o.run.loop.backend = corio::detail::BackendKind::io_uring;
      else if (v == "epoll") o.run.loop.backend = corio::detail::BackendKind::epoll;
      else bad(v);
    } else {
      std::fprintf(stderr, "parallel_work: unknown argument '%s' (try --help)\n", arg.c_str());
      return 2;
    }
  }
  try {
    return corio::run(parallel_main(o), o.run);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "parallel_work: %s\n", e.what());
    return 1;
  } catch (const corio::CancelledError& e) {
    std::fprintf(stderr, "parallel_work: cancelled: %s\n", e.what());
    return 1;
  }
}
