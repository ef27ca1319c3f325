// Integration: the crawler example as a child process.
// - Against a generated site served by corio's http_server and by nginx: the
//   set of URLs it finds equals the set an independent reference crawler finds
//   (bench/crawler/ref_crawler.py: Python's html.parser + aiohttp); robots.txt
//   is obeyed.
// - Against a server in this process that counts: the per-host limit is never
//   exceeded, a redirect loop ends, 5xx are retried, and Ctrl+C followed by a
//   --state resume fetches no page twice.
// Skipped when the examples are not built (CORIO_EXAMPLES_DIR unset).
#include <doctest/doctest.h>

#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "coro/sleep.hpp"
#include "coro/task_handle.hpp"
#include "loop/event_loop.hpp"
#include "loop/to_thread.hpp"
#include "net/http/server.hpp"
#include "tests/child_process.hpp"
#include "tests/peer_ports.hpp"
#include "tests/net/net_support.hpp"
#include "tests/support.hpp"

using namespace corio;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

std::string env(const char* name) {
  const char* d = std::getenv(name);
  return d ? d : "";
}

// The built examples' directory, or "" after a skip message when they (or,
// with need_source_root, the source tree's scripts) are not available.
std::string examples_dir(bool need_source_root = false) {
  std::string dir = env("CORIO_EXAMPLES_DIR");
  if (dir.empty() || (need_source_root && env("CORIO_SOURCE_ROOT").empty())) {
    MESSAGE("examples not built: skipped");
    return {};
  }
  return dir;
}

// Removes a crawl state file (--state) and the WAL and shared-memory files
// SQLite keeps beside it, so the next crawl starts anew.
void remove_state(const std::string& db) {
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(db + suffix);
}

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/corio-crawl-test-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path); }
};

// The "url" of every JSON line of a crawler output file.
std::vector<std::string> urls_of(const std::string& jsonl) {
  std::vector<std::string> out;
  std::ifstream f(jsonl);
  std::string line;
  while (std::getline(f, line)) {
    const std::string key = "{\"url\":\"";
    REQUIRE(line.rfind(key, 0) == 0);
    out.push_back(line.substr(key.size(), line.find('"', key.size()) - key.size()));
  }
  return out;
}

std::string line_for(const std::string& jsonl, const std::string& url) {
  std::ifstream f(jsonl);
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("{\"url\":\"" + url + "\"", 0) == 0) return line;
  }
  return {};
}

std::set<std::string> reference_set(const std::string& start) {
  test::ChildProcess ref({"/usr/bin/python3", env("CORIO_SOURCE_ROOT") + "/bench/crawler/ref_crawler.py", start});
  REQUIRE_MESSAGE(ref.wait_exit(120s) == 0, ref.err());
  std::set<std::string> s;
  std::istringstream in(ref.out());
  for (std::string u; in >> u;) s.insert(u);
  return s;
}

void crawl_and_compare(const std::string& dir, const std::string& base, const std::string& tmp, const char* server) {
  std::set<std::string> expected = reference_set(base + "/");
  REQUIRE(expected.size() > 300);
  for (const char* backend : {"io_uring", "epoll"}) {
    CAPTURE(server);
    CAPTURE(backend);
    std::string out = tmp + "/" + server + "-" + backend + ".jsonl";
    test::ChildProcess c({dir + "/crawler/crawler", base + "/", "--output", out, "--max-depth", "1000",
                          "--concurrency", "24", "--per-host", "8", "--quiet", "--backend", backend});
    REQUIRE_MESSAGE(c.wait_exit(120s) == 0, c.err());
    std::vector<std::string> found = urls_of(out);
    std::set<std::string> got(found.begin(), found.end());
    CHECK_MESSAGE(got.size() == found.size(), "a URL was recorded twice");
    std::vector<std::string> missing, extra;
    std::set_difference(expected.begin(), expected.end(), got.begin(), got.end(), std::back_inserter(missing));
    std::set_difference(got.begin(), got.end(), expected.begin(), expected.end(), std::back_inserter(extra));
    CHECK_MESSAGE(missing.empty(), missing.size() << " missing, first " << (missing.empty() ? "" : missing[0]));
    CHECK_MESSAGE(extra.empty(), extra.size() << " extra, first " << (extra.empty() ? "" : extra[0]));
    // robots.txt: the private page is recorded as disallowed and never fetched,
    // so what only it links to is never found.
    std::string secret = line_for(out, base + "/private/secret.html");
    CHECK(secret.find("\"status\":null") != std::string::npos);
    CHECK(secret.find("disallowed by robots.txt") != std::string::npos);
    CHECK(got.count(base + "/private/deeper.html") == 0);
    // A section linked without its slash was redirected and recorded so.
    std::string redirected = line_for(out, base + "/sec00");
    CHECK(redirected.find("\"final_url\":\"" + base + "/sec00/\"") != std::string::npos);
    CHECK(c.err().find("crawler: " + std::to_string(found.size()) + " pages") != std::string::npos);
  }
}

// ---- a counting server, in this process ---------------------------------------

struct Counts {
  int active = 0;
  int max_active = 0;
  std::map<std::string, int> fetches;
  int flaky_left = 2;
};
Counts g_counts;
// The URLs a whole crawl of the counting server from "/" finds: "/" itself;
// its links /p0../p59, /loop and /flaky, and /slow; /q0../q89, linked from
// the /p pages; /s0../s4, linked from /slow only. (/go, /away, /hop and
// /down are linked from nowhere.)
constexpr std::size_t kCountingSiteUrls = 1 + 60 + 90 + 2 + 1 + 5;
std::atomic<int> g_down_hits{0};  // read by run_child's thread
std::atomic<int> g_trickle_hits{0};  // the same, for /trickle
int g_robots_503 = 0;  // robots.txt answers 503 this many more times (-1: always)

Task<http::Response> counting_handler(http::Request& req) {
  std::string path(req.path());
  ++g_counts.fetches[path];
  ++g_counts.active;
  g_counts.max_active = std::max(g_counts.max_active, g_counts.active);
  // /slow is still in flight when the resume test's Ctrl+C arrives.
  co_await sleep(path == "/robots.txt" ? 0ms : path == "/slow" ? 1000ms : 15ms);
  --g_counts.active;
  if (path == "/robots.txt" && g_robots_503 != 0) {
    if (g_robots_503 > 0) --g_robots_503;
    co_return http::Response::error(503);
  }
  if (path == "/robots.txt") co_return http::Response::text("User-agent: *\nDisallow: /private\n");
  static const std::map<std::string, std::string> redirects{
      // Linked from nowhere. /q7 is a page without links, linked from /p2.
      {"/go", "/private/secret"}, {"/away", "http://elsewhere.test/x"}, {"/hop", "/p1"}, {"/to-q7", "/q7"}};
  if (auto it = redirects.find(path); it != redirects.end()) {
    http::Response r = http::Response::error(302);
    r.set_header("Location", it->second);
    co_return r;
  }
  if (path == "/trickle") {  // linked from nowhere: a body that takes 15 s, a byte at a time
    ++g_trickle_hits;
    http::Response r;
    r.content_type = "text/html";
    r.stream = [](http::BodyWriter& w) -> Task<void> {
      for (int i = 0; i < 150; ++i) {
        w.write("x");
        co_await w.drain();
        co_await sleep(100ms);
      }
    };
    co_return r;
  }
  if (path == "/down") {  // linked from nowhere
    ++g_down_hits;
    co_return http::Response::error(503);
  }
  if (path == "/loop") {
    http::Response r = http::Response::error(302);
    r.set_header("Location", "/loop");
    co_return r;
  }
  if (path == "/flaky") {
    if (g_counts.flaky_left-- > 0) co_return http::Response::error(503);
    http::Response r = http::Response::text("<html>recovered</html>");
    r.content_type = "text/html";
    co_return r;
  }
  std::string body = "<html><body>";
  if (path == "/") {
    body += "<a href='/slow'>slow</a>";
    for (int i = 0; i < 60; ++i) body += "<a href='/p" + std::to_string(i) + "'>p</a>";
    body += "<a href='/loop'>loop</a><a href='/flaky'>flaky</a>";
  } else if (path == "/slow") {  // the only page that links to /s0../s4
    for (int i = 0; i < 5; ++i) body += "<a href='/s" + std::to_string(i) + "'>s</a>";
  } else if (path.rfind("/p", 0) == 0) {
    int n = std::atoi(path.c_str() + 2);
    for (int k = 1; k <= 3; ++k) body += "<a href='/q" + std::to_string((n * 3 + k) % 90) + "'>q</a>";
  }
  body += "</body></html>";
  http::Response r = http::Response::text(std::move(body));
  r.content_type = "text/html";
  co_return r;
}

// Runs `argv` to its end on a pool thread (the loop keeps serving meanwhile);
// with interrupt_after > 0, sends SIGINT once the output has that many lines.
struct Run {
  std::vector<std::string> argv;
  std::string output;
  std::size_t interrupt_after = 0;
  int interrupt_after_down = 0;  // or SIGINT once /down was fetched this many times
  bool interrupt_after_trickle = false;  // or SIGINT once /trickle was asked for
  int robots_503 = 0;  // the counting server's robots.txt answers 503 this many times (-1: always)
  int status = -1;
  std::string err;
};

void run_child(Run& r) {
  test::ChildProcess c(r.argv);
  if (r.interrupt_after_down > 0) {
    for (int i = 0; i < 3000 && g_down_hits < r.interrupt_after_down; ++i) usleep(1'000);
    c.signal(SIGINT);
  } else if (r.interrupt_after_trickle) {
    for (int i = 0; i < 3000 && g_trickle_hits == 0; ++i) usleep(1'000);
    usleep(200'000);  // a few bytes of the body arrived: the fetch is in read_body
    c.signal(SIGINT);
  } else if (r.interrupt_after > 0) {
    for (int i = 0; i < 3000; ++i) {
      std::ifstream f(r.output);
      std::size_t lines = 0;
      for (std::string l; std::getline(f, l);) ++lines;
      if (lines >= r.interrupt_after) break;
      usleep(10'000);
    }
    c.signal(SIGINT);
  }
  r.status = c.wait_exit(120s);
  r.err = c.err();
}

// Serves `handler` on `port` of each address in `addresses` while the runs
// run, one after the other.
Task<void> with_server(http::Handler handler, int port, std::vector<std::string> addresses, std::vector<Run*> runs) {
  http::ServeOptions so;
  std::vector<TaskHandle<void>> servers;
  for (const std::string& a : addresses) {
    servers.push_back(create_task(http::serve(handler, a, static_cast<std::uint16_t>(port), so)));
  }
  co_await sleep(100ms);
  for (Run* r : runs) {
    g_robots_503 = r->robots_503;
    co_await to_thread(run_child, std::ref(*r));
  }
  g_robots_503 = 0;
  for (auto& server : servers) {
    server.cancel();
    bool cancelled = false;
    try {
      co_await server;
    } catch (const CancelledError&) {
      cancelled = true;
    }
    CHECK(cancelled);
  }
}

Task<void> with_counting_server(int port, std::vector<Run*> runs) {
  g_counts = Counts{};
  std::vector<std::string> addresses{"127.0.0.1"};
  co_await with_server(counting_handler, port, std::move(addresses), std::move(runs));
}

// ---- two hosts, for redirects from one to the other --------------------------

// What one host (by its Host field) saw of the crawler: the fetches in
// flight at once and when each arrived. robots.txt is not counted.
struct HostLog {
  int active = 0;
  int max_active = 0;
  std::vector<std::chrono::steady_clock::time_point> arrivals;
};
std::map<std::string, HostLog> g_hosts;
int g_two_host_port = 0;
constexpr int kTwoHostPages = 5;  // each: one page on B linked from A, one redirect from A to B

// Host A (127.0.0.1) serves "/", which links to kTwoHostPages pages on host B
// (127.0.0.2, /t<i>) and as many redirects of its own (/r<i>) to other pages
// on B (/u<i>). B's pages take a while, so that fetches there overlap.
Task<http::Response> two_host_handler(http::Request& req) {
  std::string path(req.path());
  if (path == "/robots.txt") co_return http::Response::text("User-agent: *\nDisallow: /private\n");
  const std::string b = "http://127.0.0.2:" + std::to_string(g_two_host_port);
  HostLog& h = g_hosts[std::string(req.header("Host"))];
  h.arrivals.push_back(std::chrono::steady_clock::now());
  h.max_active = std::max(h.max_active, ++h.active);
  co_await sleep(path == "/" || path[1] == 'r' ? 5ms : 150ms);
  --h.active;
  if (path[1] == 'r') {
    http::Response r = http::Response::error(302);
    r.set_header("Location", b + "/u" + path.substr(2));
    co_return r;
  }
  std::string body = "<html><body>";
  if (path == "/") {
    for (int i = 0; i < kTwoHostPages; ++i) {
      body += "<a href='" + b + "/t" + std::to_string(i) + "'>t</a><a href='/r" + std::to_string(i) + "'>r</a>";
    }
  }
  body += "</body></html>";
  http::Response r = http::Response::text(std::move(body));
  r.content_type = "text/html";
  co_return r;
}

Task<void> with_two_hosts(int port, std::vector<Run*> runs) {
  g_hosts.clear();
  g_two_host_port = port;
  std::vector<std::string> addresses{"127.0.0.1", "127.0.0.2"};
  co_await with_server(two_host_handler, port, std::move(addresses), std::move(runs));
}

}  // namespace

TEST_CASE("the crawler finds exactly the reference crawler's URLs on corio's server and on nginx") {
  std::string dir = examples_dir(true);
  if (dir.empty()) return;
  TempDir tmp;
  test::ChildProcess gen({"/usr/bin/python3", env("CORIO_SOURCE_ROOT") + "/scripts/gen_site.py", tmp.path + "/site",
                          "--pages", "400"});
  REQUIRE(gen.wait_exit(60s) == 0);

  test::ChildProcess server({dir + "/http_server", "--port", "0", "--root", tmp.path + "/site"});
  REQUIRE_MESSAGE(server.wait_for_stdout("\n", 20s), server.err());
  std::string first = server.out().substr(0, server.out().find('\n'));
  REQUIRE(first.rfind("listening on 127.0.0.1:", 0) == 0);
  crawl_and_compare(dir, "http://" + first.substr(13), tmp.path, "corio");

  int port = test::free_tcp_port();
  fs::create_directories(tmp.path + "/ngx");
  std::ofstream(tmp.path + "/ngx/nginx.conf")
      << "worker_processes 1;\ndaemon off;\nmaster_process off;\nerror_log " << tmp.path << "/ngx/error.log;\npid "
      << tmp.path << "/ngx/nginx.pid;\nevents { worker_connections 1024; }\nhttp {\n  access_log off;\n"
      << "  client_body_temp_path " << tmp.path << "/ngx;\n  proxy_temp_path " << tmp.path << "/ngx;\n"
      << "  fastcgi_temp_path " << tmp.path << "/ngx;\n  uwsgi_temp_path " << tmp.path << "/ngx;\n"
      << "  scgi_temp_path " << tmp.path << "/ngx;\n  types { text/html html; text/plain txt; }\n"
      << "  server { listen 127.0.0.1:" << port << "; root " << tmp.path << "/site; }\n}\n";
  test::ChildProcess ngx({"/usr/sbin/nginx", "-p", tmp.path + "/ngx", "-c", tmp.path + "/ngx/nginx.conf"});
  REQUIRE(test::wait_tcp_port(port));
  crawl_and_compare(dir, "http://127.0.0.1:" + std::to_string(port), tmp.path, "nginx");
  ngx.signal(SIGQUIT);
  ngx.wait_exit(10s);
}

TEST_CASE("the crawler keeps its per-host limit, ends redirect loops and retries 5xx") {
  std::string dir = examples_dir();
  if (dir.empty()) return;
  TempDir tmp;
  int port = test::free_tcp_port();
  Run r;
  r.output = tmp.path + "/out.jsonl";
  r.argv = {dir + "/crawler/crawler", "http://127.0.0.1:" + std::to_string(port) + "/", "--output", r.output,
            "--concurrency", "20", "--per-host", "3", "--quiet", "--retries", "2"};
  test::on_each_backend([&](EventLoop& loop) { test::run_bounded(loop, with_counting_server(port, {&r})); });
  REQUIRE_MESSAGE(r.status == 0, r.err);
  CHECK(g_counts.max_active <= 3);
  CHECK(g_counts.max_active >= 2);  // the limit, not a lack of concurrency
  std::vector<std::string> urls = urls_of(r.output);
  CHECK(urls.size() == kCountingSiteUrls);
  std::string base = "http://127.0.0.1:" + std::to_string(port);
  CHECK(line_for(r.output, base + "/loop").find("redirects") != std::string::npos);
  CHECK(line_for(r.output, base + "/flaky").find("\"status\":200") != std::string::npos);
  CHECK(g_counts.fetches["/flaky"] == 3);
}

TEST_CASE("Ctrl+C stops the crawler gracefully and --state resumes without fetching a page twice") {
  std::string dir = examples_dir();
  if (dir.empty()) return;
  TempDir tmp;
  int port = test::free_tcp_port();
  std::string start = "http://127.0.0.1:" + std::to_string(port) + "/";
  Run first, second;
  first.output = second.output = tmp.path + "/out.jsonl";
  first.argv = {dir + "/crawler/crawler", start, "--output", first.output, "--state", tmp.path + "/state.db",
                "--concurrency", "4", "--per-host", "2", "--quiet"};
  first.interrupt_after = 30;
  second.argv = first.argv;
  test::on_each_backend([&](EventLoop& loop) {
    // Left by an unrelated earlier crawl: a new --state starts the output
    // anew (it was appended to).
    std::ofstream(first.output) << "{\"url\":\"http://stale.test/\"}\n";
    remove_state(tmp.path + "/state.db");
    test::run_bounded(loop, with_counting_server(port, {&first, &second}));
    CHECK_MESSAGE(first.status == 130, first.err);
    CHECK(first.err.find("stopped early") != std::string::npos);
    CHECK_MESSAGE(second.status == 0, second.err);
    CHECK(second.err.find("resuming:") != std::string::npos);
    for (const auto& [path, n] : g_counts.fetches) {
      // robots.txt is fetched once per run; /flaky is retried and /loop
      // redirects to itself, by design.
      if (path == "/robots.txt" || path == "/flaky" || path == "/loop") continue;
      CHECK_MESSAGE(n == 1, path << " fetched " << n << " times");
    }
    std::vector<std::string> urls = urls_of(first.output);
    std::set<std::string> uniq(urls.begin(), urls.end());
    CHECK(uniq.size() == urls.size());
    CHECK(uniq.count("http://stale.test/") == 0);
    // Links found by a page still in flight at the Ctrl+C (/slow) are kept
    // for the resume: they were lost before.
    CHECK(urls.size() == kCountingSiteUrls);
    for (int i = 0; i < 5; ++i) CHECK_MESSAGE(uniq.count(start + "s" + std::to_string(i)) == 1, "/s" << i << " missing");
  });
}

TEST_CASE("a crawler whose output cannot be written stops and exits 1 naming it") {
  std::string dir = examples_dir();
  if (dir.empty()) return;
  int port = test::free_tcp_port();
  Run r;
  r.argv = {dir + "/crawler/crawler", "http://127.0.0.1:" + std::to_string(port) + "/", "--output", "/dev/full",
            "--quiet"};
  test::on_each_backend([&](EventLoop& loop) {
    test::run_bounded(loop, with_counting_server(port, {&r}));
    CHECK_MESSAGE(r.status == 1, r.err);  // it said "0 errors" and exited 0, every record lost
    CHECK(r.err.find("crawler: cannot write /dev/full: No space left on device") != std::string::npos);
    // It stopped at the failure instead of crawling the whole site.
    CHECK(g_counts.fetches.size() < kCountingSiteUrls);
  });
  // Its reader gone (crawler | head): the same failed write, not a death by
  // SIGPIPE (status 141) mid-record. env restores SIGPIPE's default in case
  // this test process ignores it; `true` has exited before the crawl starts.
  Run piped;
  piped.argv = {"/bin/sh", "-c",
                "(sleep 0.3; env --default-signal=PIPE '" + dir + "/crawler/crawler' http://127.0.0.1:" +
                    std::to_string(port) + "/ --quiet; echo \"status $?\" >&2) | true"};
  test::on_each_backend([&](EventLoop& loop) {
    test::run_bounded(loop, with_counting_server(port, {&piped}));
    CHECK_MESSAGE(piped.err.find("crawler: cannot write the output: Broken pipe") != std::string::npos, piped.err);
    CHECK_MESSAGE(piped.err.find("status 1\n") != std::string::npos, piped.err);
  });
}

TEST_CASE("a fetch still running when the shutdown grace period ends is cancelled before the crawler goes") {
  // The grace period (--timeout + 2 s) ends while /trickle's body still
  // arrives (each byte within --timeout). The main task was cancelled and
  // destroyed the crawler and its HTTP clients while the workers still ran;
  // the loop then cancelled the worker, whose streaming response checked its
  // connection into the freed client: a heap-use-after-free (ASan), or a
  // crash, instead of exit status 130.
  std::string dir = examples_dir();
  if (dir.empty()) return;
  int port = test::free_tcp_port();
  Run r;
  r.argv = {dir + "/crawler/crawler", "http://127.0.0.1:" + std::to_string(port) + "/trickle", "--timeout", "0.5",
            "--retries", "0", "--output", "/dev/null", "--quiet"};
  r.interrupt_after_trickle = true;
  test::on_each_backend([&](EventLoop& loop) {
    g_trickle_hits = 0;
    const auto t0 = std::chrono::steady_clock::now();
    test::run_bounded(loop, with_counting_server(port, {&r}));
    CHECK_MESSAGE(r.status == 130, r.err);
    CHECK_MESSAGE(r.err.find("Sanitizer") == std::string::npos, r.err);
    CHECK(r.err.find("crawler: stopping: finishing 1 fetches in flight") != std::string::npos);
    CHECK(std::chrono::steady_clock::now() - t0 < 12s);  // the grace period, not the 15 s body
  });
}

TEST_CASE("--timeout bounds a whole exchange: a body that trickles in is a timeout, not a stalled crawl") {
  // Each byte of /trickle arrives well within --timeout, so the client's
  // read timeout never fires: the page took the body's whole 15 s.
  std::string dir = examples_dir();
  if (dir.empty()) return;
  TempDir tmp;
  int port = test::free_tcp_port();
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/trickle";
  Run r;
  r.output = tmp.path + "/out.jsonl";
  r.argv = {dir + "/crawler/crawler", url, "--timeout", "0.5", "--retries", "1", "--output", r.output, "--quiet"};
  test::on_each_backend([&](EventLoop& loop) {
    g_trickle_hits = 0;
    const auto t0 = std::chrono::steady_clock::now();
    test::run_bounded(loop, with_counting_server(port, {&r}));
    CHECK(std::chrono::steady_clock::now() - t0 < 10s);
    CHECK_MESSAGE(r.status == 0, r.err);
    CHECK(g_trickle_hits == 2);  // a timeout is retried
    const std::string line = line_for(r.output, url);
    CHECK_MESSAGE(line.find("\"error\":\"request timed out\"") != std::string::npos, line);
  });
}

TEST_CASE("a page stopped between its retries is left for the resume, not recorded as failed") {
  std::string dir = examples_dir();
  if (dir.empty()) return;
  TempDir tmp;
  int port = test::free_tcp_port();
  std::string down = "http://127.0.0.1:" + std::to_string(port) + "/down";
  Run first, second;
  first.output = tmp.path + "/first.jsonl";
  second.output = tmp.path + "/second.jsonl";
  first.argv = {dir + "/crawler/crawler", down, "--output", first.output, "--state", tmp.path + "/state.db",
                "--retries", "2", "--quiet"};
  first.interrupt_after_down = 1;  // in the backoff after the first 503 (0.25 s)
  second.argv = {dir + "/crawler/crawler", down, "--output", second.output, "--state", tmp.path + "/state.db",
                 "--retries", "2", "--quiet"};
  test::on_each_backend([&](EventLoop& loop) {
    fs::remove(first.output);
    fs::remove(second.output);
    remove_state(tmp.path + "/state.db");
    g_down_hits = 0;
    test::run_bounded(loop, with_counting_server(port, {&first, &second}));
    CHECK_MESSAGE(first.status == 130, first.err);
    // Before: the 503 was recorded as the page's final result, and the
    // resume had nothing left to do.
    CHECK(line_for(first.output, down).empty());
    CHECK_MESSAGE(second.err.find("resuming: 0 fetched before, 1 queued") != std::string::npos, second.err);
    CHECK(line_for(second.output, down).find("\"status\":503") != std::string::npos);
    CHECK(g_counts.fetches["/down"] >= 4);  // at least 1 + 3 (the resume's attempts)
  });
}

TEST_CASE("a redirect is followed only where a link would be: robots.txt and the host list apply to each hop") {
  std::string dir = examples_dir();
  if (dir.empty()) return;
  TempDir tmp;
  int port = test::free_tcp_port();
  std::string base = "http://127.0.0.1:" + std::to_string(port);
  Run r;
  r.output = tmp.path + "/out.jsonl";
  r.argv = {dir + "/crawler/crawler", base + "/go", base + "/away", base + "/hop", "--output", r.output,
            "--max-depth", "0", "--quiet"};
  test::on_each_backend([&](EventLoop& loop) {
    fs::remove(r.output);
    test::run_bounded(loop, with_counting_server(port, {&r}));
    REQUIRE_MESSAGE(r.status == 0, r.err);
    // Before: the client followed /go to /private/secret, which robots.txt
    // disallows, and fetched it.
    CHECK(g_counts.fetches.count("/private/secret") == 0);
    std::string go = line_for(r.output, base + "/go");
    CHECK(go.find("\"status\":302") != std::string::npos);
    CHECK(go.find("redirect to " + base + "/private/secret disallowed by robots.txt") != std::string::npos);
    std::string away = line_for(r.output, base + "/away");
    CHECK(away.find("redirect to http://elsewhere.test/x: host not followed") != std::string::npos);
    std::string hop = line_for(r.output, base + "/hop");
    CHECK(hop.find("\"final_url\":\"" + base + "/p1\"") != std::string::npos);
    CHECK(hop.find("\"status\":200") != std::string::npos);
    CHECK(hop.find("\"redirects\":[\"" + base + "/hop\"]") != std::string::npos);
  });
}

TEST_CASE("a redirect to another host takes that host's per-host slot and politeness delay") {
  std::string dir = examples_dir();
  if (dir.empty()) return;
  TempDir tmp;
  int port = test::free_tcp_port();
  const std::string a = "127.0.0.1:" + std::to_string(port), b = "127.0.0.2:" + std::to_string(port);
  Run limited, polite;
  limited.output = tmp.path + "/limited.jsonl";
  limited.argv = {dir + "/crawler/crawler", "http://" + a + "/", "--allow-host", b, "--output", limited.output,
                  "--concurrency", "8", "--per-host", "2", "--quiet"};
  polite.output = tmp.path + "/polite.jsonl";
  polite.argv = {dir + "/crawler/crawler", "http://" + a + "/", "--allow-host", b, "--output", polite.output,
                 "--concurrency", "8", "--per-host", "8", "--delay", "0.2", "--quiet"};
  test::on_each_backend([&](EventLoop& loop) {
    test::run_bounded(loop, with_two_hosts(port, {&limited}));
    REQUIRE_MESSAGE(limited.status == 0, limited.err);
    CHECK(urls_of(limited.output).size() == 1 + 2 * kTwoHostPages);
    REQUIRE(g_hosts[b].arrivals.size() == 2 * kTwoHostPages);  // B's pages and the redirects' targets
    // A redirect's hop to B runs in one of B's slots. (It ran in A's before;
    // the pages client's pool, which also allows --per-host connections per
    // host, hid that here. The delay below shows it.)
    CHECK(g_hosts[b].max_active <= 2);
    CHECK(g_hosts[b].max_active == 2);  // the limit, not a lack of concurrency

    test::run_bounded(loop, with_two_hosts(port, {&polite}));
    REQUIRE_MESSAGE(polite.status == 0, polite.err);
    const auto& arrivals = g_hosts[b].arrivals;
    REQUIRE(arrivals.size() == 2 * kTwoHostPages);
    // Before: a hop to B waited out A's delay, not B's, and came as close
    // as a few milliseconds after B's last request. (0.2 s asked; 50 ms
    // for the loop's and the network's jitter.)
    for (std::size_t i = 1; i < arrivals.size(); ++i) {
      const double gap = std::chrono::duration<double>(arrivals[i] - arrivals[i - 1]).count();
      CHECK_MESSAGE(gap >= 0.15, "requests " << i - 1 << " and " << i << " to B " << gap << " s apart");
    }
  });
}

TEST_CASE("a redirect target that is also linked is fetched once, whichever comes first") {
  std::string dir = examples_dir();
  if (dir.empty()) return;
  TempDir tmp;
  int port = test::free_tcp_port();
  const std::string base = "http://127.0.0.1:" + std::to_string(port);
  // One worker, so the order is known. /to-q7 redirects to /q7, which /p2
  // links to (with /q8 and /q9); --max-depth 1 stops there.
  Run hop_first, link_first, stateful, resume;
  hop_first.output = tmp.path + "/hop-first.jsonl";
  hop_first.argv = {dir + "/crawler/crawler", base + "/to-q7", base + "/p2", "--output", hop_first.output,
                    "--concurrency", "1", "--max-depth", "1", "--quiet"};
  link_first.output = tmp.path + "/link-first.jsonl";
  link_first.argv = {dir + "/crawler/crawler", base + "/p2", base + "/to-q7", "--output", link_first.output,
                     "--concurrency", "1", "--max-depth", "1", "--quiet"};
  stateful.output = resume.output = tmp.path + "/stateful.jsonl";
  stateful.argv = {dir + "/crawler/crawler", base + "/to-q7", "--output", stateful.output, "--state",
                   tmp.path + "/state.db", "--max-depth", "0", "--quiet"};
  resume.argv = stateful.argv;
  test::on_each_backend([&](EventLoop& loop) {
    // The redirect first: /q7 is fetched as /to-q7's target and marked
    // seen, so the link to it from /p2 is not queued again.
    test::run_bounded(loop, with_counting_server(port, {&hop_first}));
    REQUIRE_MESSAGE(hop_first.status == 0, hop_first.err);
    CHECK(g_counts.fetches["/q7"] == 1);  // before: 2
    CHECK(g_counts.fetches["/q8"] == 1);
    std::string hop = line_for(hop_first.output, base + "/to-q7");
    CHECK(hop.find("\"final_url\":\"" + base + "/q7\"") != std::string::npos);
    CHECK(hop.find("\"status\":200") != std::string::npos);
    CHECK(line_for(hop_first.output, base + "/q7").empty());  // its content is /to-q7's record

    // The link first: /q7 is queued when /to-q7 redirects to it, so
    // /to-q7's answer is its 302, and /q7 has its own record.
    test::run_bounded(loop, with_counting_server(port, {&link_first}));
    REQUIRE_MESSAGE(link_first.status == 0, link_first.err);
    CHECK(g_counts.fetches["/q7"] == 1);  // before: 2
    hop = line_for(link_first.output, base + "/to-q7");
    CHECK(hop.find("\"status\":302") != std::string::npos);
    CHECK(hop.find("\"final_url\":\"" + base + "/to-q7\"") != std::string::npos);
    CHECK(hop.find("\"error\":null") != std::string::npos);
    CHECK(line_for(link_first.output, base + "/q7").find("\"status\":200") != std::string::npos);

    // --state records the target as done too, so a resume would not fetch it
    // from a link either: the state holds /to-q7 and /q7.
    remove_state(tmp.path + "/state.db");
    test::run_bounded(loop, with_counting_server(port, {&stateful, &resume}));
    REQUIRE_MESSAGE(stateful.status == 0, stateful.err);
    CHECK_MESSAGE(resume.err.find("resuming: 2 fetched before, 0 queued") != std::string::npos, resume.err);
  });
}

TEST_CASE("an unavailable robots.txt disallows for this run only: retried, and asked again by a --state resume") {
  std::string dir = examples_dir();
  if (dir.empty()) return;
  TempDir tmp;
  int port = test::free_tcp_port();
  const std::string base = "http://127.0.0.1:" + std::to_string(port);
  // The home page only (--max-depth 0): what matters is whether it is fetched.
  auto args = [&](std::vector<std::string> more) {
    std::vector<std::string> v{dir + "/crawler/crawler", base + "/", "--max-depth", "0", "--quiet"};
    v.insert(v.end(), more.begin(), more.end());
    return v;
  };
  Run down, back, once, plain;
  down.output = back.output = tmp.path + "/resumed.jsonl";
  down.argv = args({"--output", down.output, "--state", tmp.path + "/state.db", "--retries", "1"});
  down.robots_503 = -1;
  back.argv = down.argv;
  once.output = tmp.path + "/once.jsonl";
  once.argv = args({"--output", once.output, "--retries", "1"});
  once.robots_503 = 1;
  plain.output = tmp.path + "/plain.jsonl";
  plain.argv = args({"--output", plain.output, "--retries", "0"});
  plain.robots_503 = -1;
  test::on_each_backend([&](EventLoop& loop) {
    remove_state(tmp.path + "/state.db");
    test::run_bounded(loop, with_counting_server(port, {&down}));
    REQUIRE_MESSAGE(down.status == 0, down.err);
    CHECK(g_counts.fetches["/robots.txt"] == 2);  // one retry
    CHECK(g_counts.fetches["/"] == 0);             // complete disallow...
    // ...but not recorded as disallowed: before, the page was done for good.
    CHECK(line_for(down.output, base + "/").empty());
    CHECK_MESSAGE(down.err.find("1 left queued, their robots.txt unavailable") != std::string::npos, down.err);
    // The resume asks for robots.txt again, which now answers.
    test::run_bounded(loop, with_counting_server(port, {&back}));
    REQUIRE_MESSAGE(back.status == 0, back.err);
    CHECK_MESSAGE(back.err.find("resuming: 0 fetched before, 1 queued") != std::string::npos, back.err);
    CHECK(g_counts.fetches["/robots.txt"] == 1);
    CHECK(line_for(back.output, base + "/").find("\"status\":200") != std::string::npos);

    // A robots.txt that fails once is retried within the run, like a page.
    test::run_bounded(loop, with_counting_server(port, {&once}));
    REQUIRE_MESSAGE(once.status == 0, once.err);
    CHECK(g_counts.fetches["/robots.txt"] == 2);
    CHECK(line_for(once.output, base + "/").find("\"status\":200") != std::string::npos);

    // Without --state no run comes later: the page is recorded, with why.
    test::run_bounded(loop, with_counting_server(port, {&plain}));
    REQUIRE_MESSAGE(plain.status == 0, plain.err);
    CHECK(g_counts.fetches["/robots.txt"] == 1);
    std::string home = line_for(plain.output, base + "/");
    CHECK(home.find("\"status\":null") != std::string::npos);
    CHECK_MESSAGE(home.find("robots.txt unavailable (" + base + "/robots.txt answered 503)") != std::string::npos, home);
  });
}

// The numeric options were checked with `d < lo || d > hi`, which NaN passes:
// "--concurrency nan" became INT_MIN (exit 1, "Semaphore initial value must
// be >= 0"), "--timeout nan" timed out every request and "--max-pages nan"
// crawled nothing, all as if the value were fine. Each is a usage error.
TEST_CASE("the crawler rejects NaN for its numeric options with status 2") {
  std::string dir = examples_dir();
  if (dir.empty()) return;
  for (const char* opt : {"--concurrency", "--per-host", "--delay", "--max-depth", "--max-pages", "--max-bytes",
                          "--retries", "--timeout"}) {
    const std::string option = opt;
    CAPTURE(option);
    test::ChildProcess c({dir + "/crawler/crawler", "http://127.0.0.1:1/", opt, "nan", "--no-robots", "--quiet",
                          "--output", "/dev/null"});
    CHECK(c.wait_exit(20s) == 2);
    CHECK_MESSAGE(c.err() == std::string("crawler: ") + opt + ": 'nan' is not a valid value (try --help)\n", c.err());
  }
}

// The start URLs were checked after --output FILE was opened for writing:
// "crawler ftp://x/ --output pages.jsonl" exited 1 and left pages.jsonl
// empty, the records of an earlier crawl lost.
TEST_CASE("a bad start URL leaves --output FILE as it was") {
  std::string dir = examples_dir();
  if (dir.empty()) return;
  const fs::path out = fs::temp_directory_path() / ("corio_crawl_keep_" + std::to_string(::getpid()) + ".jsonl");
  for (const char* start : {"ftp://127.0.0.1/", "notaurl", "http://[::1/"}) {
    const std::string s = start;
    CAPTURE(s);
    { std::ofstream(out) << "{\"url\":\"earlier\"}\n"; }
    test::ChildProcess c({dir + "/crawler/crawler", s, "--output", out.string(), "--quiet"});
    CHECK(c.wait_exit(20s) == 1);
    CHECK(c.err().rfind("crawler: ", 0) == 0);
    std::ifstream in(out);
    std::stringstream got;
    got << in.rdbuf();
    CHECK(got.str() == "{\"url\":\"earlier\"}\n");
  }
  fs::remove(out);
}

// --user-agent went into every request as it was: "x\r\nEvil: 1" added a
// header of its own to each of them (http::Client does not check
// ClientOptions::user_agent, while it refuses such a value in a header).
TEST_CASE("the crawler refuses a --user-agent that would inject header lines") {
  std::string dir = examples_dir();
  if (dir.empty()) return;
  for (const char* ua : {"x\r\nEvil: 1", "x\nEvil: 1", "x\r"}) {
    test::ChildProcess c({dir + "/crawler/crawler", "http://127.0.0.1:1/", "--user-agent", ua, "--no-robots",
                          "--quiet", "--output", "/dev/null"});
    CHECK(c.wait_exit(20s) == 2);
    CHECK_MESSAGE(c.err() == "crawler: --user-agent must not hold CR, LF or NUL (try --help)\n", c.err());
  }
}

// json_string copied bytes >= 0x80 as they were: a Content-Type or Location
// with obs-text (here 0xFF) made the line invalid UTF-8, which JSON may not
// be (RFC 8259 §8.1), and JSON Lines readers rejected the whole output.
TEST_CASE("the crawler's records are UTF-8 whatever bytes the server's headers hold") {
  std::string dir = examples_dir();
  if (dir.empty()) return;
  const char* script =
      "import socket\n"
      "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(8)\n"
      "print(s.getsockname()[1], flush=True)\n"
      "while True:\n"
      "    c, _ = s.accept(); req = c.recv(65536)\n"
      "    c.sendall(b'HTTP/1.1 302 Found\\r\\nLocation: ftp://\\xff/x\\r\\n'\n"
      "              b'Content-Type: text/html; charset=\\xff\\xc3\\xa9\\r\\nContent-Length: 0\\r\\n'\n"
      "              b'Connection: close\\r\\n\\r\\n')\n"
      "    c.close()\n";
  test::ChildProcess server({"/usr/bin/python3", "-c", script});
  REQUIRE(server.wait_for_stdout("\n", 20s));
  const std::string port = server.out().substr(0, server.out().find('\n'));
  test::ChildProcess c({dir + "/crawler/crawler", "http://127.0.0.1:" + port + "/", "--no-robots", "--quiet"});
  CHECK(c.wait_exit(20s) == 0);
  const std::string& out = c.out();
  // Invalid bytes become the Latin-1 characters they would be; valid UTF-8 stays.
  CHECK_MESSAGE(out.find("\"content_type\":\"text/html; charset=\\u00ff\xc3\xa9\"") != std::string::npos, out);
  CHECK_MESSAGE(out.find("\"error\":\"invalid Location 'ftp://\\u00ff/x' in a 302\"") != std::string::npos, out);
  for (unsigned char ch : out) CHECK(ch != 0xff);
  server.signal(SIGTERM);
  server.wait_exit(10s);
}
