// Integration: a server that runs out of file descriptors (EMFILE) reports it
// once, backs off instead of spinning on accept, keeps serving the
// connections it has, and accepts the waiting ones once fds are free again.
// Both the stream server (start_server) and the HTTP server (http::serve).
#include <doctest/doctest.h>
#include <dirent.h>
#include <sys/resource.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>

#include <string>
#include <vector>

#include "coro/sleep.hpp"
#include "coro/task_handle.hpp"
#include "coro/timeout.hpp"
#include "net/http/server.hpp"
#include "net/server.hpp"
#include "net/stream.hpp"
#include "tests/net/net_support.hpp"
#include "tests/support.hpp"

using namespace corio;
using namespace std::chrono_literals;

namespace {

using test::echo_lines;

// Lowers the soft RLIMIT_NOFILE to a little above the fds in use, then fills
// the fd table up to it (exhaust()), so that every new fd fails with EMFILE
// as in a server that really runs out, until restore() frees them.
// The limit is lowered before the server starts: io_uring reads it when an
// accept is prepared, and a multishot accept keeps the value it read, so a
// limit lowered under an armed multishot accept would not be seen by it.
//
// Under UBSan, expect "runtime error: ... does not point to an object of type
// ... object has invalid vptr / <memory cannot be printed>" while the fds are
// exhausted. They are false reports: UBSan's vptr check probes memory through
// a pipe, and with no fd free the probe fails, so it reports any polymorphic
// object it has not checked before (reproduced with a 15-line program: a
// valid Derived reported the moment open() returns EMFILE; GCC 12's UBSan
// does not halt on them even with halt_on_error=1).
class FdLimit {
 public:
  FdLimit() {
    REQUIRE(::getrlimit(RLIMIT_NOFILE, &saved_) == 0);
    int highest = 0;
    DIR* d = ::opendir("/proc/self/fd");
    REQUIRE(d != nullptr);
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] != '.') highest = std::max(highest, std::atoi(e->d_name));
    }
    ::closedir(d);
    rlimit rl = saved_;
    rl.rlim_cur = static_cast<rlim_t>(highest) + kRoom;
    REQUIRE(rl.rlim_cur <= saved_.rlim_cur);
    REQUIRE(::setrlimit(RLIMIT_NOFILE, &rl) == 0);
  }
  ~FdLimit() {
    restore();
    ::setrlimit(RLIMIT_NOFILE, &saved_);
  }
  void exhaust() {
    for (;;) {
      int fd = ::dup(0);
      if (fd < 0) break;
      fillers_.push_back(fd);
    }
    REQUIRE(errno == EMFILE);
  }
  void restore() {
    for (int fd : fillers_) ::close(fd);
    fillers_.clear();
  }

  static constexpr int kRoom = 96;  // the server, its clients and the waiting ones fit

 private:
  rlimit saved_{};
  std::vector<int> fillers_;
};

constexpr int kWaiting = 24;  // clients that connect during the shortage

Task<void> scenario(std::vector<std::string>& warnings) {
  FdLimit limit;
  Server server = co_await start_server(echo_lines, "127.0.0.1", 0);
  SocketAddress addr = server.addresses().front();
  auto [r, w] = co_await open_connection(addr);
  w.write("before\n");
  CHECK(co_await r.readline() == "before\n");
  // Client sockets made while fds remain; they connect during the shortage
  // (the kernel completes the handshake; the server's accept cannot).
  std::vector<Socket> waiting;
  for (int i = 0; i < kWaiting; ++i) waiting.push_back(Socket::create(AF_INET, SOCK_STREAM));

  limit.exhaust();
  CHECK(::dup(0) < 0);
  for (Socket& s : waiting) co_await s.connect(addr);
  std::uint64_t iterations0 = EventLoop::current().iterations();
  co_await sleep(400ms);
  // The existing connection is still served during the shortage.
  w.write("during\n");
  CHECK(co_await r.readline() == "during\n");
  std::uint64_t spent = EventLoop::current().iterations() - iterations0;
  CHECK(server.connection_count() == 1u);  // nothing could be accepted
  limit.restore();

  // Accepting resumes at the next retry: the waiting clients are served.
  for (Socket& s : waiting) {
    co_await s.send_all("after\n");
    char buf[16];
    std::string got;
    while (got.size() < 6) {  // a short recv is legal: read the whole line
      std::size_t n = co_await s.recv(buf, sizeof buf);
      if (n == 0) break;
      got.append(buf, n);
    }
    CHECK(got == "after\n");
  }
  CHECK(server.connection_count() == 1u + kWaiting);
  // A busy loop would have spun thousands of times; a 100 ms back-off costs a few.
  CHECK(spent < 100u);
  REQUIRE(warnings.size() == 1u);
  CHECK(warnings[0].find("accept on " + addr.to_string() + ": Too many open files; pausing accepts") == 0);
}

Task<http::Response> hello(http::Request&) { co_return http::Response::text("hello"); }

// One GET on a connected socket; the status line and body, checked.
Task<void> get_hello(Socket& s) {
  co_await s.send_all("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  std::string got;
  char buf[512];
  while (got.find("hello") == std::string::npos) {
    std::size_t n = co_await s.recv(buf, sizeof buf);
    if (n == 0) break;
    got.append(buf, n);
  }
  CHECK(got.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(got.find("\r\n\r\nhello") != std::string::npos);
}

Task<void> http_scenario(std::vector<std::string>& warnings) {
  FdLimit limit;
  std::uint16_t port = 0;
  http::ServeOptions o;
  o.on_listening = [&port](const SocketAddress& a) { port = a.port(); };
  o.defer_accept = std::chrono::seconds(0);  // the silent clients below must reach accept(2)
  TaskHandle<void> server = create_task(http::serve(hello, "127.0.0.1", 0, o), "http server");
  for (int i = 0; i < 500 && port == 0; ++i) co_await sleep(2ms);
  REQUIRE(port != 0);
  SocketAddress addr = SocketAddress::parse("127.0.0.1", port);
  Socket first = Socket::create(AF_INET, SOCK_STREAM);
  co_await first.connect(addr);
  co_await get_hello(first);
  std::vector<Socket> waiting;
  for (int i = 0; i < kWaiting; ++i) waiting.push_back(Socket::create(AF_INET, SOCK_STREAM));

  limit.exhaust();
  for (Socket& s : waiting) co_await s.connect(addr);
  std::uint64_t iterations0 = EventLoop::current().iterations();
  co_await sleep(400ms);
  co_await get_hello(first);  // the kept-alive connection is served during the shortage
  std::uint64_t spent = EventLoop::current().iterations() - iterations0;
  limit.restore();

  for (Socket& s : waiting) co_await get_hello(s);
  CHECK(spent < 100u);
  REQUIRE(warnings.size() == 1u);
  CHECK(warnings[0].find("Too many open files") != std::string::npos);
  CHECK(warnings[0].find(addr.to_string()) != std::string::npos);
  server.cancel();
  try {
    co_await wait_for(server, 5s);
  } catch (const CancelledError&) {
  }
}

}  // namespace

TEST_CASE("EMFILE storm: the server reports once, backs off, keeps serving, and accepts again afterwards") {
  test::on_each_backend([](EventLoop& loop) {
    std::vector<std::string> warnings;
    loop.set_warning_handler([&warnings](std::string_view w) { warnings.emplace_back(w); });
    test::run_bounded(loop, scenario(warnings));
  });
}

TEST_CASE("EMFILE storm on the HTTP server: one warning, a back-off, kept-alive clients served, accepts resume") {
  test::on_each_backend([](EventLoop& loop) {
    std::vector<std::string> warnings;
    loop.set_warning_handler([&warnings](std::string_view w) { warnings.emplace_back(w); });
    test::run_bounded(loop, http_scenario(warnings));
  });
}
