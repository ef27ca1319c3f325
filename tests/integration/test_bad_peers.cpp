// Integration: peers that misbehave — garbage, resets mid-read and mid-write,
// connect-and-vanish — never crash a server, which keeps serving the others.
#include <doctest/doctest.h>

#include <algorithm>
#include <stdexcept>
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

// A tiny line protocol: "ADD a b" -> "= a+b", "BIG n" -> n bytes of 'b',
// anything else is a protocol error (the handler throws).
Task<void> calculator(StreamReader& r, StreamWriter& w) {
  for (;;) {
    std::string line = co_await r.readline();
    if (line.empty()) co_return;
    if (line.rfind("ADD ", 0) == 0) {
      std::size_t used = 0;
      long a = std::stol(line.substr(4), &used);
      long b = std::stol(line.substr(4 + used));
      w.write("= " + std::to_string(a + b) + "\n");
    } else if (line.rfind("BIG ", 0) == 0) {
      w.write(std::string(std::stoul(line.substr(4)), 'b'));
    } else {
      throw std::invalid_argument("bad command");
    }
    co_await w.drain();
  }
}

Task<void> good_client(std::uint16_t port, int rounds) {
  auto [r, w] = co_await open_connection("127.0.0.1", port);
  for (int i = 0; i < rounds; ++i) {
    w.write("ADD " + std::to_string(i) + " 1\n");
    CHECK(co_await r.readline() == "= " + std::to_string(i + 1) + "\n");
  }
}

Task<void> raw_send_then_reset(std::uint16_t port, std::string bytes, std::chrono::milliseconds wait) {
  Socket s = Socket::create(AF_INET, SOCK_STREAM);
  co_await s.connect(SocketAddress::parse("127.0.0.1", port));
  co_await s.send_all(bytes);
  co_await sleep(wait);
  s.set_linger(0);
  s.close();  // RST
}

}  // namespace

TEST_CASE("garbage, resets and vanishing peers never stop the server from serving others") {
  test::on_each_backend([](EventLoop& loop) {
    int reports = 0;
    std::vector<std::string> kinds;
    loop.set_exception_handler([&](std::exception_ptr e, std::string_view) {
      ++reports;
      try {
        std::rethrow_exception(e);
      } catch (const ConnectionError&) {
        kinds.push_back("connection");
      } catch (const std::invalid_argument&) {
        kinds.push_back("protocol");
      } catch (const LimitOverrun&) {
        kinds.push_back("limit");
      } catch (...) {
        kinds.push_back("other");
      }
    });
    auto main = []() -> Task<void> {
      Server server = co_await start_server(calculator, "127.0.0.1", 0);
      std::uint16_t port = server.port();
      std::vector<TaskHandle<void>> peers;
      // Binary garbage, an unknown command, a non-number, a line too long for the limit.
      std::string binary;
      for (int i = 0; i < 256; ++i) binary += static_cast<char>(i);
      peers.push_back(create_task(raw_send_then_reset(port, binary + "\n", 20ms)));
      peers.push_back(create_task(raw_send_then_reset(port, "HELLO\n", 20ms)));
      peers.push_back(create_task(raw_send_then_reset(port, "ADD x y\n", 20ms)));
      peers.push_back(create_task(raw_send_then_reset(port, std::string(200000, 'A'), 20ms)));
      // Reset mid-read: half a line, then RST.
      peers.push_back(create_task(raw_send_then_reset(port, "ADD 1", 20ms)));
      // Reset mid-write: ask for 32 MiB and never read it.
      peers.push_back(create_task(raw_send_then_reset(port, "BIG 33554432\n", 100ms)));
      // Connect and vanish without a byte.
      peers.push_back(create_task(raw_send_then_reset(port, "", 0ms)));
      // Meanwhile, well-behaved clients are served.
      for (int i = 0; i < 10; ++i) peers.push_back(create_task(good_client(port, 20)));
      for (auto& p : peers) co_await p;
      // Every bad connection is over, and the server still answers.
      auto end = Clock::now() + 10s;
      while (server.connection_count() > 0 && Clock::now() < end) co_await sleep(5ms);
      CHECK(server.connection_count() == 0u);
      co_await good_client(port, 5);
    };
    test::run_bounded(loop, main());
    // Garbage lines and the reset peers end their handlers with an exception,
    // which the loop's handler receives — the process and the server go on.
    CHECK(reports >= 6);
    for (const std::string& k : kinds) CHECK(k != "other");
    CHECK(std::count(kinds.begin(), kinds.end(), "protocol") == 3);
    CHECK(std::count(kinds.begin(), kinds.end(), "limit") == 1);
    CHECK(std::count(kinds.begin(), kinds.end(), "connection") >= 2);
  });
}
