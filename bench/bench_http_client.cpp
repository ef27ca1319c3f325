// bench_http_client: requests/s of corio::http::Client fetching one URL with
// K requests in flight on keep-alive connections (K connections, one per
// in-flight request, as wrk -cK does).
//
//   bench_http_client URL [--in-flight K] [--seconds S] [--warmup S]
//
// Prints one JSON line: {"impl": "corio", "backend": ..., "requests": N,
// "seconds": S, "req_per_s": R, "errors": E, "connections": C}.
#include <corio/corio.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

using corio::Task;
namespace http = corio::http;
using Clock = std::chrono::steady_clock;

struct Args {
  std::string url;
  int in_flight = 64;
  double seconds = 5;
  double warmup = 1;
};

struct Counts {
  long requests = 0;
  long errors = 0;
  bool counting = false;
  bool stop = false;
};

Task<void> worker(http::Client* c, const std::string* url, Counts* n) {
  while (!n->stop) {
    bool failed = false;
    try {
      auto r = co_await c->get(*url);
      if (r.status != 200) failed = true;
    } catch (const std::exception&) {
      failed = true;
    }
    if (n->counting) (failed ? n->errors : n->requests)++;
  }
}

Task<int> bench(const Args* a) {
  http::ClientOptions o;
  o.max_connections_per_host = static_cast<std::size_t>(a->in_flight);
  o.max_connections = static_cast<std::size_t>(a->in_flight);
  o.decompress = false;
  http::Client c(o);
  Counts n;
  std::vector<corio::TaskHandle<void>> ws;
  for (int i = 0; i < a->in_flight; ++i) ws.push_back(corio::create_task(worker(&c, &a->url, &n)));
  co_await corio::sleep(std::chrono::duration<double>(a->warmup));
  n.counting = true;
  auto t0 = Clock::now();
  co_await corio::sleep(std::chrono::duration<double>(a->seconds));
  n.counting = false;
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  n.stop = true;
  for (auto& w : ws) co_await w;
  std::printf("{\"impl\": \"corio\", \"backend\": \"%s\", \"requests\": %ld, \"seconds\": %.3f, \"req_per_s\": %.0f, "
              "\"errors\": %ld, \"connections\": %zu}\n",
              corio::EventLoop::current().backend_name(), n.requests, secs, static_cast<double>(n.requests) / secs,
              n.errors, c.stats().created);
  co_return n.errors == 0 ? 0 : 1;
}

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", s.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (s == "--in-flight") a.in_flight = std::atoi(next());
    else if (s == "--seconds") a.seconds = std::atof(next());
    else if (s == "--warmup") a.warmup = std::atof(next());
    else if (s == "--help") {
      std::printf("usage: bench_http_client URL [--in-flight K] [--seconds S] [--warmup S]\n");
      return 0;
    } else a.url = s;
  }
  if (a.url.empty() || a.in_flight <= 0) {
    std::fprintf(stderr, "usage: bench_http_client URL [--in-flight K] [--seconds S] [--warmup S]\n");
    return 2;
  }
  return corio::run(bench(&a));
}
