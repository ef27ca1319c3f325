// Integration: a server that runs out of file descriptors (EMFILE) reports it
// once, backs off instead of spinning on accept, keeps serving the
// connections it has, and accepts the waiting ones once fds are free again.
#include <doctest/doctest.h>
#include <sys/resource.h>

#include <string>
#include <vector>

#include "coro/sleep.hpp"
#include "coro/task_handle.hpp"
#include "net/server.hpp"
#include "net/stream.hpp"
#include "tests/net/net_support.hpp"
#include "tests/support.hpp"

using namespace corio;
using namespace std::chrono_literals;

namespace {

using test::echo_lines;

// Lowers the soft RLIMIT_NOFILE below the fds in use (so every new fd fails
// with EMFILE) until restore().
class FdLimit {
 public:
  FdLimit() { REQUIRE(::getrlimit(RLIMIT_NOFILE, &saved_) == 0); }
  ~FdLimit() { restore(); }
  void exhaust() {
    rlimit rl = saved_;
    rl.rlim_cur = 1;
    REQUIRE(::setrlimit(RLIMIT_NOFILE, &rl) == 0);
    lowered_ = true;
  }
  void restore() {
    if (lowered_) ::setrlimit(RLIMIT_NOFILE, &saved_);
    lowered_ = false;
  }

 private:
  rlimit saved_{};
  bool lowered_ = false;
};

Task<void> scenario(std::vector<std::string>& warnings) {
  Server server = co_await start_server(echo_lines, "127.0.0.1", 0);
  SocketAddress addr = server.addresses().front();
  auto [r, w] = co_await open_connection(addr);
  w.write("before\n");
  CHECK(co_await r.readline() == "before\n");
  // Client sockets made while fds remain; they connect during the shortage
  // (the kernel completes the handshake; the server's accept cannot).
  std::vector<Socket> waiting;
  for (int i = 0; i < 3; ++i) waiting.push_back(Socket::create(AF_INET, SOCK_STREAM));

  FdLimit limit;
  limit.exhaust();
  CHECK(::dup(0) < 0);
  for (Socket& s : waiting) co_await s.connect(addr);
  std::uint64_t iterations0 = EventLoop::current().iterations();
  co_await sleep(400ms);
  // The existing connection is still served during the shortage.
  w.write("during\n");
  CHECK(co_await r.readline() == "during\n");
  std::uint64_t spent = EventLoop::current().iterations() - iterations0;
  // io_uring reads the fd limit when an accept is prepared, so the accept
  // already in flight may still take one connection; none after it can.
  CHECK(server.connection_count() <= 2u);
  limit.restore();

  // Accepting resumes at the next retry: the waiting clients are served.
  for (Socket& s : waiting) {
    co_await s.send_all("after\n");
    char buf[16];
    std::size_t n = co_await s.recv(buf, sizeof buf);
    CHECK(std::string(buf, n) == "after\n");
  }
  CHECK(server.connection_count() == 4u);
  // A busy loop would have spun thousands of times; a 100 ms back-off costs a few.
  CHECK(spent < 100u);
  REQUIRE(warnings.size() == 1u);
  CHECK(warnings[0].find("accept on " + addr.to_string() + ": Too many open files; pausing accepts") == 0);
}

}  // namespace

TEST_CASE("EMFILE: the server reports once, backs off, keeps serving, and accepts again afterwards") {
  test::on_each_backend([](EventLoop& loop) {
    std::vector<std::string> warnings;
    loop.set_warning_handler([&warnings](std::string_view w) { warnings.emplace_back(w); });
    test::run_bounded(loop, scenario(warnings));
  });
}
