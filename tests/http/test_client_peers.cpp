// The HTTP client against real servers: nginx (keep-alive reuse, chunked +
// gzip, redirects and a redirect loop, a body over 100 MiB in bounded memory)
// and Python's http.server (a close-delimited HTTP/1.0 body).
#include "net/http/client.hpp"

#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "coro/gather.hpp"
#include "net/tls.hpp"
#include "coro/sleep.hpp"
#include "loop/event_loop.hpp"
#include "tests/child_process.hpp"
#include "tests/peer_ports.hpp"
#include "tests/net/net_support.hpp"
#include "tests/support.hpp"

using namespace corio;
using namespace std::chrono_literals;
namespace http = corio::http;
namespace fs = std::filesystem;

namespace {

std::string text_file() {
  std::string s;
  for (int i = 0; i < 5000; ++i) s += "line " + std::to_string(i) + " of a compressible text file\n";
  return s;
}

constexpr std::uint64_t kBigSize = 110ull << 20;  // over 100 MiB

// One nginx for the whole test binary, on free ports, in a temp directory:
// plain HTTP on `port`; HTTPS with a certificate from the test CA on
// `tls_port`, and with an expired one on `expired_port`.
struct Nginx {
  std::string dir;
  int port = 0, tls_port = 0, expired_port = 0;
  std::unique_ptr<test::ChildProcess> proc;

  Nginx() {
    char tmpl[] = "/tmp/corio-nginx-XXXXXX";
    dir = mkdtemp(tmpl);
    fs::create_directories(dir + "/www/gz");
    fs::create_directories(dir + "/tmp");
    std::ofstream(dir + "/www/small.txt") << "small file\n";
    std::ofstream(dir + "/www/gz/text.txt") << text_file();
    {
      std::ofstream big(dir + "/www/big.bin", std::ios::binary);
      std::string block(1 << 20, '\0');
      for (std::size_t i = 0; i < block.size(); ++i) block[i] = static_cast<char>('a' + i % 26);
      for (std::uint64_t i = 0; i < kBigSize / block.size(); ++i) big << block;
    }
    port = test::free_tcp_port();
    tls_port = test::free_tcp_port();
    expired_port = test::free_tcp_port();
    const char* script = std::getenv("CORIO_TLS_CERT_SCRIPT");
    REQUIRE(script);
    test::ChildProcess certs({"/bin/bash", script, dir + "/pki"});
    REQUIRE_MESSAGE(certs.wait_exit(60000ms) == 0, certs.err());
    std::ofstream(dir + "/nginx.conf")
        << "worker_processes 1;\ndaemon off;\nmaster_process off;\nerror_log " << dir << "/error.log;\npid " << dir
        << "/nginx.pid;\nevents { worker_connections 1024; }\nhttp {\n  access_log off;\n  keepalive_requests 100000;\n"
        << "  client_body_temp_path " << dir << "/tmp;\n  proxy_temp_path " << dir << "/tmp;\n  fastcgi_temp_path " << dir
        << "/tmp;\n  uwsgi_temp_path " << dir << "/tmp;\n  scgi_temp_path " << dir << "/tmp;\n"
        << "  types { text/plain txt; application/octet-stream bin; }\n"
        << "  server {\n    listen 127.0.0.1:" << port << ";\n    root " << dir << "/www;\n"
        << "    add_header X-Conn $connection always;\n"
        << "    location /gz/ { gzip on; gzip_min_length 1; gzip_types text/plain; }\n"
        << "    location = /redir { return 301 /small.txt; }\n"
        << "    location = /loop { return 302 /loop; }\n  }\n"
        << "  server {\n    listen 127.0.0.1:" << tls_port << " ssl;\n    root " << dir << "/www;\n"
        << "    ssl_certificate " << dir << "/pki/server.pem;\n    ssl_certificate_key " << dir << "/pki/server.key;\n  }\n"
        << "  server {\n    listen 127.0.0.1:" << expired_port << " ssl;\n    root " << dir << "/www;\n"
        << "    ssl_certificate " << dir << "/pki/expired.pem;\n    ssl_certificate_key " << dir
        << "/pki/expired.key;\n  }\n}\n";
    proc = std::make_unique<test::ChildProcess>(
        std::vector<std::string>{"/usr/sbin/nginx", "-p", dir, "-c", dir + "/nginx.conf"});
    if (!test::wait_tcp_port(port)) {
      std::ifstream log(dir + "/error.log");
      std::string s((std::istreambuf_iterator<char>(log)), {});
      FAIL("nginx did not start: " << s);
    }
  }
  ~Nginx() {
    proc->signal(SIGQUIT);
    proc->wait_exit(5000ms);
    fs::remove_all(dir);
  }
  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port) + path; }
};

Nginx& nginx() {
  static Nginx n;
  return n;
}

Task<void> reuse(const Nginx* n) {
  http::ClientOptions o;
  o.max_connections_per_host = 4;
  http::Client c(o);
  std::set<std::string> conns;
  for (int round = 0; round < 5; ++round) {
    std::vector<Task<http::ClientResponse>> batch;
    for (int i = 0; i < 64; ++i) batch.push_back(c.get(n->url("/small.txt")));
    auto all = co_await gather(std::move(batch));
    for (auto& r : all) {
      CHECK(r.status == 200);
      CHECK(r.body == "small file\n");
      conns.insert(std::string(r.header("X-Conn")));
    }
  }
  // nginx numbered every connection it accepted: the pool used 4, 320 times.
  CHECK(conns.size() == 4);
  CHECK(c.stats().created == 4);
  CHECK(c.stats().reused == 316);
}

Task<void> gzip_chunked(const Nginx* n) {
  http::Client c;
  auto r = co_await c.get(n->url("/gz/text.txt"));
  CHECK(r.status == 200);
  CHECK(r.header("Content-Encoding") == "gzip");
  CHECK(r.header("Transfer-Encoding") == "chunked");
  CHECK(r.body == text_file());
  http::ClientOptions raw;
  raw.decompress = false;
  http::Client c2(raw);
  auto plain = co_await c2.get(n->url("/gz/text.txt"));
  CHECK(plain.header("Content-Encoding").empty());
  CHECK(plain.body == text_file());
}

Task<void> redirects(const Nginx* n) {
  http::Client c;
  auto r = co_await c.get(n->url("/redir"));
  CHECK(r.status == 200);
  CHECK(r.body == "small file\n");
  REQUIRE(r.history.size() == 1);
  CHECK(r.url.path() == "/small.txt");
  bool looped = false;
  try {
    co_await c.get(n->url("/loop"));
  } catch (const http::TooManyRedirects& e) {
    looped = true;
    CHECK(e.status() == 302);
  }
  CHECK(looped);
}

long rss_kib() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return 0;
}

Task<void> big_body(const Nginx* n) {
  http::Client c;
  long before = rss_kib();
  auto s = co_await c.stream("GET", n->url("/big.bin"));
  CHECK(s.header("Content-Length") == std::to_string(kBigSize));
  std::uint64_t total = 0;
  std::size_t biggest = 0;
  bool pattern_ok = true;
  for (;;) {
    std::string piece = co_await s.read_chunk();
    if (piece.empty()) break;
    if (static_cast<char>('a' + (total % (1 << 20)) % 26) != piece[0]) pattern_ok = false;
    total += piece.size();
    biggest = std::max(biggest, piece.size());
  }
  long grown = rss_kib() - before;
  CHECK(total == kBigSize);
  CHECK(pattern_ok);
  CHECK(biggest <= 64 * 1024);
#if defined(__SANITIZE_ADDRESS__)
  // ASan keeps freed blocks in a 256 MiB quarantine: RSS says nothing here.
  (void)grown;
#else
  CHECK_MESSAGE(grown < 32 * 1024, "RSS grew by " << grown << " KiB while streaming 110 MiB");
#endif
  CHECK(s.body_done());
  CHECK(c.stats().idle == 1);  // read to its end: the connection went back to the pool
  bool too_big = false;
  http::ClientOptions capped;
  capped.max_body_size = 1 << 20;
  http::Client c2(capped);
  try {
    co_await c2.get(n->url("/big.bin"));
  } catch (const http::BodyTooLarge&) {
    too_big = true;
  }
  CHECK(too_big);
}

template <class E>
Task<std::string> tls_failure(http::Client& c, std::string url) {
  std::string what = "(no error)";
  try {
    co_await c.get(url);
  } catch (const E& e) {
    what = e.what();
  }
  co_return what;
}

Task<void> https(const Nginx* n) {
  const std::string ca = n->dir + "/pki/ca.pem";
  const std::string ok_url = "https://127.0.0.1:" + std::to_string(n->tls_port) + "/small.txt";
  const std::string expired_url = "https://127.0.0.1:" + std::to_string(n->expired_port) + "/small.txt";
  http::ClientOptions o;
  o.tls.ca_file = ca;
  http::Client c(o);
  for (int i = 0; i < 3; ++i) {
    auto r = co_await c.get(ok_url);
    CHECK(r.status == 200);
    CHECK(r.body == "small file\n");
  }
  CHECK(c.stats().created == 1);  // kept alive over TLS
  std::string expired = co_await tls_failure<TlsCertificateError>(c, expired_url);
  CHECK_MESSAGE(expired.find("certificate has expired") != std::string::npos, expired);
  http::Client system_store;  // the test CA is not in the system store
  std::string unknown = co_await tls_failure<TlsCertificateError>(system_store, ok_url);
  CHECK_MESSAGE(unknown.find("unable to get local issuer certificate") != std::string::npos, unknown);
  http::ClientOptions dangerous;
  dangerous.tls.insecure_skip_verify_dangerous = true;
  http::Client insecure(dangerous);
  CHECK((co_await insecure.get(expired_url)).status == 200);
  // By name: the certificate's DNS name is checked (and sent as SNI).
  auto by_name = co_await c.get("https://localhost:" + std::to_string(n->tls_port) + "/small.txt");
  CHECK(by_name.status == 200);
}

// An HTTP/1.0 server that ends its bodies by closing the connection.
const char* kCloseDelimitedServer = R"PY(
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"x" * 300000 + b"end")
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H)
print("listening", flush=True)
s.serve_forever()
)PY";

Task<void> close_delimited(int port) {
  http::Client c;
  for (int i = 0; i < 3; ++i) {
    auto r = co_await c.get("http://127.0.0.1:" + std::to_string(port) + "/");
    CHECK(r.status == 200);
    CHECK(r.version_minor == 0);
    CHECK(r.header("Content-Length").empty());
    CHECK(r.body.size() == 300003);
    CHECK(r.body.substr(r.body.size() - 3) == "end");
  }
  CHECK(c.stats().created == 3);  // each body ended with its connection
  CHECK(c.stats().open == 0);
}

}  // namespace

TEST_CASE("against nginx the pool keeps to its size and reuses keep-alive connections") {
  const Nginx* n = &nginx();
  test::on_each_backend([n](EventLoop& loop) { test::run_bounded(loop, reuse(n)); });
}

TEST_CASE("nginx's chunked gzip responses are decoded") {
  const Nginx* n = &nginx();
  test::on_each_backend([n](EventLoop& loop) { test::run_bounded(loop, gzip_chunked(n)); });
}

TEST_CASE("nginx's redirects are followed and its redirect loop ends") {
  const Nginx* n = &nginx();
  test::on_each_backend([n](EventLoop& loop) { test::run_bounded(loop, redirects(n)); });
}

TEST_CASE("a body over 100 MiB from nginx streams through in bounded memory") {
  const Nginx* n = &nginx();
  test::on_each_backend([n](EventLoop& loop) { test::run_bounded(loop, big_body(n)); });
}

TEST_CASE("https against nginx: the test CA verifies, expired and unknown certificates are refused by reason") {
  const Nginx* n = &nginx();
  test::on_each_backend([n](EventLoop& loop) { test::run_bounded(loop, https(n)); });
}

TEST_CASE("examples/fetch exits 1 with the verification failure's reason, 0 with the right CA") {
  const char* dir = std::getenv("CORIO_EXAMPLES_DIR");
  if (!dir) {
    MESSAGE("examples not built: skipped");
    return;
  }
  const Nginx* n = &nginx();
  std::string fetch = std::string(dir) + "/fetch";
  std::string ca = n->dir + "/pki/ca.pem";
  test::ChildProcess expired({fetch, "--cacert", ca, "https://localhost:" + std::to_string(n->expired_port) + "/small.txt"});
  CHECK(expired.wait_exit(30000ms) == 1);
  CHECK_MESSAGE(expired.err().find("certificate verify failed: certificate has expired") != std::string::npos,
                expired.err());
  test::ChildProcess unknown({fetch, "https://localhost:" + std::to_string(n->tls_port) + "/small.txt"});
  CHECK(unknown.wait_exit(30000ms) == 1);
  CHECK_MESSAGE(unknown.err().find("unable to get local issuer certificate") != std::string::npos, unknown.err());
  test::ChildProcess good({fetch, "--cacert", ca, "https://localhost:" + std::to_string(n->tls_port) + "/small.txt"});
  CHECK(good.wait_exit(30000ms) == 0);
  CHECK(good.out() == "small file\n");
  test::ChildProcess insecure({fetch, "-k", "https://localhost:" + std::to_string(n->expired_port) + "/small.txt"});
  CHECK(insecure.wait_exit(30000ms) == 0);
  CHECK(insecure.out() == "small file\n");
}

TEST_CASE("a close-delimited body from Python's http.server is read to the close") {
  int port = test::free_tcp_port();
  test::ChildProcess py({"/usr/bin/python3", "-c", kCloseDelimitedServer, std::to_string(port)});
  REQUIRE(py.wait_for_stdout("listening", 10000ms));
  REQUIRE(test::wait_tcp_port(port));
  test::on_each_backend([port](EventLoop& loop) { test::run_bounded(loop, close_delimited(port)); });
  py.signal(SIGTERM);
  py.wait_exit(5000ms);
}
