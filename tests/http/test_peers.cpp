// Real peers against the HTTP server: curl and Python's http.client, run as
// child processes (on a pool thread, so the loop keeps serving meanwhile).
#include "net/http/static_files.hpp"

#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "coro/sleep.hpp"
#include "coro/task_handle.hpp"
#include "coro/timeout.hpp"
#include "loop/event_loop.hpp"
#include "loop/to_thread.hpp"
#include "net/http/server.hpp"
#include "tests/child_process.hpp"
#include "tests/net/net_support.hpp"
#include "tests/support.hpp"

using namespace corio;
using namespace std::chrono_literals;
namespace http = corio::http;

namespace {

std::string g_root;  // the static files' directory (set once per test binary)
struct RemoveRoot {
  ~RemoveRoot() {
    if (!g_root.empty()) std::filesystem::remove_all(g_root);
  }
} g_remove_root;

Task<http::Response> peer_handler(http::Request& req) {
  std::string_view p = req.path();
  if (p == "/ok") co_return http::Response::text("ok");
  if (p == "/echo") co_return http::Response::text(co_await req.body());
  if (p == "/len") {
    std::size_t n = 0;
    for (;;) {
      std::string piece = co_await req.read_body_chunk();
      if (piece.empty()) break;
      n += piece.size();
    }
    co_return http::Response::text(std::to_string(n));
  }
  if (p == "/stream") {
    http::Response r;
    r.stream = [](http::BodyWriter& w) -> Task<void> {
      w.write("one,");
      w.write("two,");
      co_await w.drain();
      w.write("three");
    };
    co_return r;
  }
  co_return http::file_response(req, g_root);
}

struct Ran {
  int status = -1;
  std::string out, err;
};

Ran run_child(std::vector<std::string> argv) {
  test::ChildProcess c(std::move(argv));
  Ran r;
  r.status = c.wait_exit(20s);
  r.out = c.out();
  r.err = c.err();
  return r;
}

// Builds an argv (a braced list inside co_await trips GCC 12's coroutine support).
template <class... A>
std::vector<std::string> args(A&&... a) {
  return std::vector<std::string>{std::string(std::forward<A>(a))...};
}

Task<Ran> child(std::vector<std::string> argv) { co_return co_await to_thread(run_child, std::move(argv)); }

std::string make_root() {
  char tmpl[] = "/tmp/corio_http_XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  std::string root = tmpl;
  std::ofstream(root + "/index.html") << "<h1>index</h1>\n";
  std::string big;
  for (int i = 0; i < 300000; ++i) big += static_cast<char>('a' + i % 26);
  std::ofstream(root + "/big.txt", std::ios::binary) << big;
  ::mkdir((root + "/dir").c_str(), 0755);
  std::ofstream(root + "/dir/index.html") << "dir index\n";
  return root;
}

struct Server {
  TaskHandle<void> task;
  std::uint16_t port = 0;
  std::string url(std::string_view path) const { return "http://127.0.0.1:" + std::to_string(port) + std::string(path); }
};

Task<void> start(Server* s) {
  http::ServeOptions o;
  o.on_listening = [s](const SocketAddress& a) { s->port = a.port(); };
  s->task = create_task(http::serve(peer_handler, "127.0.0.1", 0, o), "http server");
  for (int i = 0; i < 500 && s->port == 0; ++i) co_await sleep(2ms);
  REQUIRE(s->port != 0);
}

Task<void> stop(Server* s) {
  EventLoop::current().request_shutdown();
  co_await wait_for(s->task, 5s);
}

bool has_curl() { return ::access("/usr/bin/curl", X_OK) == 0; }

Task<void> curl_main() {
  Server s;
  co_await start(&s);
  // Keep-alive: curl reuses one connection for both URLs.
  Ran r = co_await child(args("/usr/bin/curl", "-sv", s.url("/ok"), s.url("/ok")));
  CHECK(r.status == 0);
  CHECK(r.out == "okok");
  CHECK(r.err.find("Re-using existing connection") != std::string::npos);

  // Chunked upload of a file, counted by a streaming handler.
  std::string file = g_root + "/big.txt";
  r = co_await child(args("/usr/bin/curl", "-s", "-H", "Transfer-Encoding: chunked", "--data-binary", "@" + file,
                      s.url("/len")));
  CHECK(r.status == 0);
  CHECK(r.out == "300000");

  // Expect: 100-continue: the server says 100 before curl sends the body.
  r = co_await child(args("/usr/bin/curl", "-sv", "-H", "Expect: 100-continue", "--data-binary", "@" + file,
                      s.url("/len")));
  CHECK(r.status == 0);
  CHECK(r.out == "300000");
  CHECK(r.err.find("< HTTP/1.1 100 Continue") != std::string::npos);

  // Range requests over sendfile.
  r = co_await child(args("/usr/bin/curl", "-s", "-D", "-", "-r", "26-51", s.url("/big.txt")));
  CHECK(r.status == 0);
  CHECK(r.out.find("HTTP/1.1 206 Partial Content\r\n") == 0);
  CHECK(r.out.find("Content-Range: bytes 26-51/300000\r\n") != std::string::npos);
  CHECK(r.out.substr(r.out.size() - 26) == "abcdefghijklmnopqrstuvwxyz");
  r = co_await child(args("/usr/bin/curl", "-s", "-r", "-5", s.url("/big.txt")));
  CHECK(r.out == "hijkl");  // the last 5 of 300000 bytes of a..z repeated
  r = co_await child(args("/usr/bin/curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-r", "400000-", s.url("/big.txt")));
  CHECK(r.out == "416");

  // The whole file, and conditional requests with its validators.
  r = co_await child(args("/usr/bin/curl", "-s", "-D", "-", s.url("/big.txt")));
  CHECK(r.out.find("HTTP/1.1 200 OK\r\n") == 0);
  CHECK(r.out.size() > 300000);
  std::size_t e = r.out.find("ETag: ");
  REQUIRE(e != std::string::npos);
  std::string etag = r.out.substr(e + 6, r.out.find("\r\n", e) - e - 6);
  std::size_t lm = r.out.find("Last-Modified: ");
  REQUIRE(lm != std::string::npos);
  std::string last_modified = r.out.substr(lm + 15, r.out.find("\r\n", lm) - lm - 15);
  r = co_await child(args("/usr/bin/curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "If-None-Match: " + etag,
                      s.url("/big.txt")));
  CHECK(r.out == "304");
  r = co_await child(args("/usr/bin/curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H",
                      "If-None-Match: \"other\"", s.url("/big.txt")));
  CHECK(r.out == "200");
  r = co_await child(args("/usr/bin/curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H",
                      "If-Modified-Since: " + last_modified, s.url("/big.txt")));
  CHECK(r.out == "304");
  r = co_await child(args("/usr/bin/curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H",
                      "If-Modified-Since: Sat, 01 Jan 2000 00:00:00 GMT", s.url("/big.txt")));
  CHECK(r.out == "200");

  // Directories, missing files, escapes from the root.
  r = co_await child(args("/usr/bin/curl", "-s", s.url("/")));
  CHECK(r.out == "<h1>index</h1>\n");
  r = co_await child(args("/usr/bin/curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", s.url("/dir")));
  CHECK(r.out == "301 " + s.url("/dir/"));
  r = co_await child(args("/usr/bin/curl", "-s", "-L", s.url("/dir")));
  CHECK(r.out == "dir index\n");
  // The redirect stays on this origin however the path starts ("//dir/"
  // would be another host to a browser) and keeps the query.
  r = co_await child(args("/usr/bin/curl", "-s", "--path-as-is", "-o", "/dev/null", "-w", "%{http_code} %header{location}",
                      s.url("//dir")));
  CHECK(r.out == "301 /dir/");
  r = co_await child(args("/usr/bin/curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %header{location}",
                      s.url("/dir?x=1")));
  CHECK(r.out == "301 /dir/?x=1");
  r = co_await child(args("/usr/bin/curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", s.url("/missing")));
  CHECK(r.out == "404");
  r = co_await child(args("/usr/bin/curl", "-s", "--path-as-is", "-o", "/dev/null", "-w", "%{http_code}",
                      s.url("/../../etc/passwd")));
  CHECK(r.out == "404");
  r = co_await child(args("/usr/bin/curl", "-s", "--path-as-is", "-o", "/dev/null", "-w", "%{http_code}",
                      s.url("/%2e%2e/%2e%2e/etc/passwd")));
  CHECK(r.out == "404");
  r = co_await child(args("/usr/bin/curl", "-s", "-I", s.url("/big.txt")));
  CHECK(r.out.find("Content-Length: 300000\r\n") != std::string::npos);
  CHECK(r.out.find("Content-Type: text/plain; charset=utf-8\r\n") != std::string::npos);
  co_await stop(&s);
}

const char* kPythonClient = R"(
import http.client, sys
c = http.client.HTTPConnection('127.0.0.1', int(sys.argv[1]), timeout=10)
c.request('GET', '/ok'); r = c.getresponse(); assert r.status == 200 and r.read() == b'ok'
c.request('POST', '/echo', body=b'x' * 50000); r = c.getresponse(); assert r.read() == b'x' * 50000
c.request('POST', '/echo', body=iter([b'ab', b'cd', b'ef']), encode_chunked=True,
          headers={'Transfer-Encoding': 'chunked'})
r = c.getresponse(); assert r.read() == b'abcdef', 'chunked upload'
c.request('HEAD', '/ok'); r = c.getresponse(); assert r.read() == b'' and r.getheader('Content-Length') == '2'
c.request('GET', '/stream'); r = c.getresponse(); assert r.getheader('Transfer-Encoding') == 'chunked'
assert r.read() == b'one,two,three'
c.request('GET', '/big.txt', headers={'Range': 'bytes=0-9'}); r = c.getresponse()
assert r.status == 206 and r.read() == b'abcdefghij'
c.request('GET', '/nope'); r = c.getresponse(); assert r.status == 404; r.read()
c.request('GET', '/ok'); r = c.getresponse(); assert r.read() == b'ok'
print('python ok')
)";

Task<void> python_main() {
  Server s;
  co_await start(&s);
  Ran r = co_await child(args("/usr/bin/python3", "-c", kPythonClient, std::to_string(s.port)));
  CHECK(r.status == 0);
  CHECK(r.out == "python ok\n");
  if (r.status != 0) MESSAGE("python stderr: " << r.err);
  co_await stop(&s);
}

}  // namespace

TEST_CASE("curl: keep-alive reuse, chunked upload, 100-continue, Range and conditional requests") {
  if (!has_curl()) {
    MESSAGE("curl is not installed (scripts/setup.sh installs it); skipped");
    return;
  }
  if (g_root.empty()) g_root = make_root();
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, curl_main(), std::chrono::seconds(120)); });
}

TEST_CASE("Python's http.client talks to the server") {
  if (g_root.empty()) g_root = make_root();
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, python_main(), std::chrono::seconds(120)); });
}

TEST_CASE("the http_server example serves /plaintext, /json and files, and exits 143 after a graceful SIGTERM") {
  const char* dir = std::getenv("CORIO_EXAMPLES_DIR");
  if (!dir || !has_curl()) {
    MESSAGE("examples not built or curl missing: skipped");
    return;
  }
  if (g_root.empty()) g_root = make_root();
  for (const char* backend : {"io_uring", "epoll"}) {
    for (const char* workers : {"1", "2"}) {
      CAPTURE(backend);
      CAPTURE(workers);
      test::ChildProcess server({std::string(dir) + "/http_server", "--port", "0", "--backend", backend, "--workers",
                                 workers, "--root", g_root});
      REQUIRE_MESSAGE(server.wait_for_stdout("\n", 20s), "no output; stderr: " << server.err());
      std::string first = server.out().substr(0, server.out().find('\n'));
      REQUIRE(first.rfind("listening on 127.0.0.1:", 0) == 0);
      std::string base = "http://" + first.substr(13);
      Ran r = run_child(args("/usr/bin/curl", "-s", "-D", "-", base + "/plaintext", base + "/json", base + "/"));
      CHECK(r.status == 0);
      CHECK(r.out.find("Content-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!") != std::string::npos);
      CHECK(r.out.find("Content-Type: application/json\r\nContent-Length: 27\r\n\r\n{\"message\":\"Hello, World!\"}") !=
            std::string::npos);
      CHECK(r.out.find("<h1>index</h1>\n") != std::string::npos);
      r = run_child(args("/usr/bin/curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", base + "/absent"));
      CHECK(r.out == "404");
      server.signal(SIGTERM);
      CHECK(server.wait_exit(20s) == 143);
    }
  }
  test::ChildProcess help({std::string(dir) + "/http_server", "--help"});
  CHECK(help.wait_exit(10s) == 0);
  CHECK(help.out().rfind("usage: http_server", 0) == 0);
  test::ChildProcess bad({std::string(dir) + "/http_server", "--workers", "0"});
  CHECK(bad.wait_exit(10s) == 2);
}
