// Integration: a server that runs out of file descriptors (EMFILE) reports it
// once, backs off instead of spinning on accept, keeps serving the
// connections it has, and accepts the waiting ones once fds are free again.
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

}  // namespace

TEST_CASE("EMFILE storm: the server reports once, backs off, keeps serving, and accepts again afterwards") {
  test::on_each_backend([](EventLoop& loop) {
    std::vector<std::string> warnings;
    loop.set_warning_handler([&warnings](std::string_view w) { warnings.emplace_back(w); });
    test::run_bounded(loop, scenario(warnings));
  });
}
