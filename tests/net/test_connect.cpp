#include "net/connect.hpp"

#include <dirent.h>
#include <doctest/doctest.h>

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

// Open file descriptors of this process (the directory stream's own fd included
// every time, so counts compare).
int open_fds() {
  int n = 0;
  DIR* d = ::opendir("/proc/self/fd");
  REQUIRE(d != nullptr);
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(d);
  return n;
}

Socket listen_on(const char* host, int backlog) {
  Socket s = Socket::create(AF_INET, SOCK_STREAM);
  s.bind(SocketAddress::parse(host, 0));
  s.listen(backlog);
  return s;
}

// A listener that never accepts, its queue filled: on loopback the kernel
// then drops new SYNs and a connect to it hangs (a black-holed address).
struct BlackHole {
  Socket listener = listen_on("127.0.0.1", 0);
  std::vector<Socket> fillers;
  SocketAddress addr() const { return listener.local_address(); }
};

Task<void> fill(BlackHole& bh) {
  for (int i = 0; i < 16; ++i) {
    bh.fillers.push_back(Socket::create(AF_INET, SOCK_STREAM));
    try {
      co_await bh.fillers.back().connect(bh.addr(), 100ms);
    } catch (const ConnectTimeoutError&) {
      bh.fillers.pop_back();  // this one hung: the queue is full
      co_return;
    }
  }
  FAIL("the listener's queue never filled");
}

// A port that refuses connections: bound, never listening.
Socket refusing() {
  Socket s = Socket::create(AF_INET, SOCK_STREAM);
  s.bind(SocketAddress::parse("127.0.0.1", 0));
  return s;
}

// A list built outside the coroutine: g++ 12 rejects braced lists inside co_await.
template <class... A>
std::vector<SocketAddress> addrs(const A&... a) {
  return std::vector<SocketAddress>{a...};
}

std::string what_of(const std::exception& e) { return e.what(); }

}  // namespace

TEST_CASE("interleave_addresses alternates families, starting with the first one's head start") {
  auto v6a = SocketAddress::parse("::1", 1), v6b = SocketAddress::parse("::1", 2), v6c = SocketAddress::parse("::1", 3);
  auto v4a = SocketAddress::parse("127.0.0.1", 1), v4b = SocketAddress::parse("127.0.0.1", 2);
  std::vector<SocketAddress> in{v6a, v6b, v4a, v4b, v6c};
  CHECK(interleave_addresses(in) == addrs(v6a, v4a, v6b, v4b, v6c));
  CHECK(interleave_addresses(in, 2) == addrs(v6a, v6b, v4a, v6c, v4b));
  CHECK(interleave_addresses({v4a, v4b, v6a}) == addrs(v4a, v6a, v4b));
  CHECK(interleave_addresses({v4a, v4b}) == addrs(v4a, v4b));
  CHECK(interleave_addresses({}).empty());
}

TEST_CASE("Happy Eyeballs: a black-holed first address loses to the second after the attempt delay, and is closed") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      BlackHole bh;
      co_await fill(bh);
      Socket good = listen_on("127.0.0.1", 16);
      const int fds0 = open_fds();
      ConnectOptions o;
      o.happy_eyeballs_delay = 200ms;
      o.timeout = 20s;
      auto t0 = Clock::now();
      Socket s = co_await connect_happy_eyeballs(addrs(bh.addr(), good.local_address()), o);
      auto took = Clock::now() - t0;
      CHECK(s.peer_address() == good.local_address());
      CHECK(took >= 190ms);  // the second attempt waited for the delay
      CHECK(took < 5s);      // and not for the black hole nor the overall timeout
      // Only the winner remains open: the black-holed attempt's socket is closed.
      CHECK(open_fds() == fds0 + 1);
      Accepted a = co_await good.accept();
      co_await s.send_all("hi");
      char buf[2];
      std::size_t n = co_await a.socket.recv(buf, 2);
      if (n == 1) n += co_await a.socket.recv(buf + 1, 1);  // a short read is legal
      CHECK(n == 2u);
      s.close();
      a.socket.close();
      CHECK(open_fds() == fds0);
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("Happy Eyeballs: a refused attempt starts the next one at once, without waiting for the delay") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Socket refuse = refusing();
      Socket good = listen_on("127.0.0.1", 16);
      ConnectOptions o;
      o.happy_eyeballs_delay = 3s;
      auto t0 = Clock::now();
      Socket s = co_await connect_happy_eyeballs(addrs(refuse.local_address(), good.local_address()), o);
      CHECK(Clock::now() - t0 < 2s);
      CHECK(s.peer_address() == good.local_address());
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("when every address refuses, ConnectionRefusedError names each address tried") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Socket r1 = refusing(), r2 = refusing();
      const std::string a1 = r1.local_address().to_string(), a2 = r2.local_address().to_string();
      std::string what;
      try {
        (void)co_await connect_happy_eyeballs(addrs(r1.local_address(), r2.local_address()), {}, "example.test:80");
      } catch (const ConnectionRefusedError& e) {
        what = e.what();
        CHECK(e.errno_value() == ECONNREFUSED);
      }
      CHECK(what == "connect example.test:80 (tried " + a1 + ", " + a2 + "): Connection refused");
      // Without a target, the addresses alone.
      try {
        (void)co_await connect_happy_eyeballs(addrs(r1.local_address(), r2.local_address()));
      } catch (const ConnectionRefusedError& e) {
        what = e.what();
      }
      CHECK(what == "connect " + a1 + ", " + a2 + ": Connection refused");
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("when attempts fail differently, ConnectAttemptsError lists each address with its error") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      BlackHole bh;
      co_await fill(bh);
      Socket refuse = refusing();
      ConnectOptions o;
      o.connect_timeout = 150ms;  // per attempt: the black hole times out
      o.happy_eyeballs_delay = 50ms;
      const int fds0 = open_fds();
      bool caught = false;
      try {
        (void)co_await connect_happy_eyeballs(addrs(bh.addr(), refuse.local_address()), o, "multi.test:1");
      } catch (const ConnectAttemptsError& e) {
        caught = true;
        const std::string what = e.what();
        CHECK(what.find("connect multi.test:1: every address failed (") == 0);
        CHECK(what.find(bh.addr().to_string() + ": timed out after 150 ms") != std::string::npos);
        CHECK(what.find(refuse.local_address().to_string() + ": Connection refused") != std::string::npos);
        REQUIRE(e.attempts().size() == 2u);
        CHECK(e.attempts()[0].address == bh.addr());
        CHECK_THROWS_AS(std::rethrow_exception(e.attempts()[0].error), ConnectTimeoutError);
        CHECK_THROWS_AS(std::rethrow_exception(e.attempts()[1].error), ConnectionRefusedError);
        const ConnectionError& base = e;  // caught by kind as any connection failure
        CHECK(what_of(base) == what);
      }
      CHECK(caught);
      CHECK(open_fds() == fds0);
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("the overall timeout ends every attempt with ConnectTimeoutError naming host:port") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      BlackHole bh;
      co_await fill(bh);
      const int fds0 = open_fds();
      ConnectOptions o;
      o.timeout = 300ms;
      o.happy_eyeballs_delay = 50ms;
      auto t0 = Clock::now();
      std::string what;
      try {
        (void)co_await connect_happy_eyeballs(addrs(bh.addr(), bh.addr(), bh.addr()), o, "slow.test:80");
      } catch (const ConnectTimeoutError& e) {
        what = e.what();
        CHECK(e.address() == "slow.test:80");
      }
      auto took = Clock::now() - t0;
      CHECK(what == "connect slow.test:80: timed out after 300 ms");
      CHECK(took >= 290ms);
      CHECK(took < 5s);
      CHECK(open_fds() == fds0);  // all three attempts closed
      // Through open_connection, by host and port.
      const std::string port = std::to_string(bh.addr().port());
      try {
        (void)co_await open_connection("127.0.0.1", bh.addr().port(), o);
      } catch (const TimeoutError& e) {
        what = e.what();
      }
      CHECK(what == "connect 127.0.0.1:" + port + ": timed out after 300 ms");
      CHECK(open_fds() == fds0);
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("with Happy Eyeballs off the addresses are tried one after the other") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      BlackHole bh;
      co_await fill(bh);
      Socket good = listen_on("127.0.0.1", 16);
      ConnectOptions o;
      o.happy_eyeballs_delay = std::nullopt;
      o.connect_timeout = 300ms;
      auto t0 = Clock::now();
      Socket s = co_await connect_happy_eyeballs(addrs(bh.addr(), good.local_address()), o);
      CHECK(Clock::now() - t0 >= 290ms);  // the second began only when the first timed out
      CHECK(s.peer_address() == good.local_address());
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("cancelling a connect in progress closes every attempt's socket") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      BlackHole bh;
      co_await fill(bh);
      const int fds0 = open_fds();
      ConnectOptions o;
      o.happy_eyeballs_delay = 20ms;
      auto connecting = [](SocketAddress a, ConnectOptions o) -> Task<void> {
        (void)co_await connect_happy_eyeballs(addrs(a, a, a), o);
      };
      auto t = create_task(connecting(bh.addr(), o));
      co_await sleep(150ms);  // all three attempts are waiting in the kernel
      CHECK(open_fds() == fds0 + 3);
      t.cancel();
      CHECK_THROWS_AS(co_await t, CancelledError);
      CHECK(open_fds() == fds0);
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("open_connection by name reaches a server that listens on one family only") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      // "localhost" may give ::1 first: that attempt is refused and IPv4 wins at once.
      Server server = co_await start_server(test::echo_lines, "127.0.0.1", 0);
      ConnectOptions o;
      o.happy_eyeballs_delay = 5s;
      auto t0 = Clock::now();
      auto [r, w] = co_await open_connection("localhost", server.port(), o);
      CHECK(Clock::now() - t0 < 3s);
      w.write("ping\n");
      CHECK(co_await r.readline() == "ping\n");
    };
    test::run_bounded(loop, main());
  });
}
