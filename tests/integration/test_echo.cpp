// Integration: an echo server built from start_server and streams, driven by
// many real clients on loopback, under both backends.
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

Task<void> echo(StreamReader& r, StreamWriter& w) {
  std::vector<std::byte> buf(64 * 1024);
  for (;;) {
    std::size_t n = co_await r.readinto(buf);
    if (n == 0) break;
    w.write(std::span<const std::byte>(buf.data(), n));
    co_await w.drain();
  }
}

std::string pattern(std::size_t n, unsigned seed) {
  std::string s(n, '\0');
  std::uint32_t x = seed * 2654435761u + 1;
  for (std::size_t i = 0; i < n; ++i) {
    x = x * 1664525u + 1013904223u;
    s[i] = static_cast<char>(x >> 24);
  }
  return s;
}

// Sends `msg` (while reading concurrently, so neither side's buffers
// deadlock), half-closes, and returns everything echoed until EOF.
Task<std::string> echo_roundtrip(std::string host, std::uint16_t port, const std::string& msg) {
  auto [r, w] = co_await open_connection(host, port);
  auto sender = [](StreamWriter& w, const std::string& msg) -> Task<void> {
    const std::size_t chunk = 1 << 20;
    for (std::size_t off = 0; off < msg.size(); off += chunk) {
      w.write(std::string_view(msg).substr(off, chunk));
      co_await w.drain();
    }
    w.write_eof();
  };
  auto s = create_task(sender(w, msg));
  std::string got = co_await r.readexactly(msg.size());
  CHECK(co_await r.read(1) == "");  // the server closes after our EOF
  CHECK(r.at_eof());
  co_await s;
  co_return got;
}

void ensure_fd_limit(rlim_t want) {
  rlimit rl{};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &rl) == 0);
  if (rl.rlim_cur >= want) return;
  rl.rlim_cur = std::min(want, rl.rlim_max);
  REQUIRE(::setrlimit(RLIMIT_NOFILE, &rl) == 0);
  REQUIRE(rl.rlim_cur >= want);
}

}  // namespace

TEST_CASE("echo of 1 byte to 16 MiB comes back intact, over IPv4 and IPv6") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Server v4 = co_await start_server(echo, "127.0.0.1", 0);
      Server v6 = co_await start_server(echo, "::1", 0);
      unsigned seed = 1;
      for (std::size_t size : {std::size_t(1), std::size_t(100), std::size_t(4096), std::size_t(65536),
                               std::size_t(65537), std::size_t(1) << 20, std::size_t(16) << 20}) {
        CAPTURE(size);
        std::string msg = pattern(size, seed++);
        std::string got = co_await echo_roundtrip("127.0.0.1", v4.port(), msg);
        CHECK(got.size() == msg.size());
        CHECK(got == msg);
        if (size <= (1u << 20)) {
          got = co_await echo_roundtrip("::1", v6.port(), msg);
          CHECK(got == msg);
        }
      }
    };
    test::run_bounded(loop, main(), std::chrono::seconds(120));
  });
}

namespace {

struct Crowd {
  std::vector<StreamWriter*> writers;  // each client's writer, to release them all at once
  int echoed = 0;
  int finished = 0;
};

Task<void> crowd_client(std::uint16_t port, int id, Crowd& crowd) {
  auto [r, w] = co_await open_connection("127.0.0.1", port);
  std::string line = "client " + std::to_string(id) + "\n";
  w.write(line);
  CHECK(co_await r.readline() == line);
  ++crowd.echoed;
  crowd.writers.push_back(&w);
  // Stay connected until every client is: main then half-closes us all.
  CHECK(co_await r.read(1) == "");
  ++crowd.finished;
}

}  // namespace

TEST_CASE("1,000 concurrent clients are all connected at once and all echoed") {
  ensure_fd_limit(4096);
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      constexpr int kClients = 1000;
      ServerOptions so;
      so.backlog = 2048;  // a full accept queue would cost the clients SYN retransmits
      Server server = co_await start_server(
          [](StreamReader& r, StreamWriter& w) -> Task<void> {
            for (;;) {
              std::string line = co_await r.readline();
              if (line.empty()) break;
              w.write(line);
              co_await w.drain();
            }
          },
          "127.0.0.1", 0, so);
      Crowd crowd;
      std::vector<TaskHandle<void>> clients;
      for (int i = 0; i < kClients; ++i) clients.push_back(create_task(crowd_client(server.port(), i, crowd)));
      auto end = Clock::now() + 60s;
      while (crowd.echoed < kClients && Clock::now() < end) co_await sleep(5ms);
      REQUIRE(crowd.echoed == kClients);
      CHECK(server.connection_count() == static_cast<std::size_t>(kClients));
      for (StreamWriter* w : crowd.writers) w->write_eof();
      for (auto& c : clients) co_await c;
      CHECK(crowd.finished == kClients);
      server.close();
      co_await server.wait_closed();
      CHECK(server.connection_count() == 0u);
    };
    test::run_bounded(loop, main(), std::chrono::seconds(120));
  });
}

TEST_CASE("half-close through the server: the client's EOF ends the echo, the reply still arrives") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto summing = [](StreamReader& r, StreamWriter& w) -> Task<void> {
        // Reads numbers until EOF, then answers with their sum: needs the half-close.
        long sum = 0;
        for (;;) {
          std::string line = co_await r.readline();
          if (line.empty()) break;
          sum += std::stol(line);
        }
        w.write("sum " + std::to_string(sum) + "\n");
      };
      Server server = co_await start_server(summing, "127.0.0.1", 0);
      auto [r, w] = co_await open_connection("127.0.0.1", server.port());
      for (int i = 1; i <= 100; ++i) w.write(std::to_string(i) + "\n");
      w.write_eof();
      CHECK(co_await r.readline() == "sum 5050\n");
      CHECK(co_await r.read() == "");
      CHECK(r.at_eof());
    };
    test::run_bounded(loop, main());
  });
}

namespace {

struct Seen {
  std::vector<std::string> errors;  // what each handler ended with
};

// Reads lines; "flood\n" makes it write without end (blocking in drain).
Task<void> reset_witness(StreamReader& r, StreamWriter& w, Seen& seen) {
  std::exception_ptr e;
  try {
    for (;;) {
      std::string line = co_await r.readline();
      if (line.empty()) break;
      if (line == "flood\n") {
        std::string chunk(64 * 1024, 'f');
        for (;;) {
          w.write(chunk);
          co_await w.drain();
        }
      }
      w.write(line);
      co_await w.drain();
    }
    seen.errors.push_back("EOF");
  } catch (const ConnectionError& x) {
    seen.errors.push_back(x.errno_value() == ECONNRESET ? "reset" : x.errno_value() == EPIPE ? "pipe" : x.what());
  }
}

}  // namespace

TEST_CASE("a peer reset while the server is blocked reading, or blocked in drain, ends that handler only") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Seen seen;
      Server server = co_await start_server(
          [&seen](StreamReader& r, StreamWriter& w) { return reset_witness(r, w, seen); }, "127.0.0.1", 0);
      SocketAddress addr = server.addresses().front();
      // Mid-read: the handler waits in readline when the reset arrives.
      {
        Socket c = Socket::create(AF_INET, SOCK_STREAM);
        co_await c.connect(addr);
        co_await c.send_all("a\n");
        char buf[2];
        std::size_t n = co_await c.recv(buf, 2);
        if (n == 1) n += co_await c.recv(buf + 1, 1);  // a short read is legal
        CHECK(n == 2u);
        co_await sleep(20ms);
        c.set_linger(0);
        c.close();
      }
      auto end = Clock::now() + 5s;
      while (seen.errors.size() < 1 && Clock::now() < end) co_await sleep(5ms);
      REQUIRE(seen.errors.size() == 1u);
      CHECK(seen.errors[0] == "reset");
      // Mid-write: the handler is blocked in drain (we never read) when the reset arrives.
      {
        Socket c = Socket::create(AF_INET, SOCK_STREAM);
        co_await c.connect(addr);
        co_await c.send_all("flood\n");
        co_await sleep(100ms);
        c.set_linger(0);
        c.close();
      }
      while (seen.errors.size() < 2 && Clock::now() < end) co_await sleep(5ms);
      REQUIRE(seen.errors.size() == 2u);
      CHECK((seen.errors[1] == "reset" || seen.errors[1] == "pipe"));
      // Everyone else is still served.
      auto [r, w] = co_await open_connection(addr);
      w.write("still here\n");
      CHECK(co_await r.readline() == "still here\n");
      CHECK(server.connection_count() == 1u);
    };
    test::run_bounded(loop, main());
  });
}
