// Cancellation torture on real sockets (loopback), on both backends.
//
// Drivers run one socket operation at a time as a small task, and a
// controller cancels those tasks at random moments — before they start,
// mid-connect, mid-accept, mid-recv, mid-send, mid-readline, mid-TLS
// handshake:
// - connect/accept: connections to a plain listener, whose acceptor is
//   cancelled and restarted too; every accepted socket is closed;
// - raw pairs: TCP connections with one writer and one reader each, sending
//   large chunks (so sends block) of a numbered byte pattern; the reader checks
//   every byte, so a cancelled send that sent something, or a cancelled recv
//   that lost something, shows up as a wrong byte;
// - streams: StreamReader/Writer connections to an echo server (one over
//   TLS): numbered lines, readlines cancelled while waiting; every line comes
//   back once and in order;
// - TLS: fresh TLS connections cancelled mid-handshake.
// Afterwards: every surviving connection still works (bytes flow both ways),
// no task is left, and the process has exactly the fds it had before.
// Under ASan+UBSan (CI) this also proves no leak and no use after free.
//
// Size: CORIO_SOCKET_TORTURE_OPS operations per backend (default below, sized
// for CI under ASan). The full run:
//   CORIO_SOCKET_TORTURE_OPS=1000000 build-asan/tests/integration_test_socket_torture -s
#include <doctest/doctest.h>
#include <dirent.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "coro/sleep.hpp"
#include "coro/task_handle.hpp"
#include "coro/timeout.hpp"
#include "net/server.hpp"
#include "net/socket.hpp"
#include "net/stream.hpp"
#include "net/tls.hpp"
#include "tests/net/net_support.hpp"
#include "tests/net/tls_support.hpp"
#include "tests/support.hpp"

using namespace corio;
using namespace std::chrono_literals;

namespace {

constexpr std::int64_t kDefaultOps = 50'000;

std::int64_t ops_wanted() {
  const char* e = std::getenv("CORIO_SOCKET_TORTURE_OPS");
  if (!e || !*e) return kDefaultOps;
  return std::max<std::int64_t>(100, std::strtoll(e, nullptr, 10));
}

int open_fds() {
  int n = 0;
  DIR* d = ::opendir("/proc/self/fd");
  while (dirent* e = ::readdir(d))
    if (e->d_name[0] != '.') ++n;
  ::closedir(d);
  return n - 1;
}

// The byte at position i of raw pair p's stream.
char pattern(int p, std::uint64_t i) { return static_cast<char>((i * 131 + static_cast<std::uint64_t>(p) * 7) & 0xff); }

struct World {
  std::mt19937 rng;
  std::int64_t target = 0;
  std::int64_t ops = 0;          // operations started
  std::int64_t cancels = 0;      // op tasks that ended in CancelledError
  std::int64_t cancel_calls = 0; // cancel() calls made by the controller
  std::int64_t completed = 0;    // op tasks that ran to completion
  std::int64_t accepted = 0, connected = 0, handshakes = 0, lines = 0;
  std::uint64_t bytes = 0;
  bool stop = false;
  // The op task each driver is awaiting now (the controller's targets).
  std::vector<TaskBase*> current;
  SocketAddress plain;   // raw listener (connect/accept)
  std::uint16_t echo_port = 0, tls_port = 0;
  std::shared_ptr<TlsContext> client_tls;

  bool more() const noexcept { return !stop && ops < target; }
};

// Runs one op task for driver slot `slot`, exposed to the controller while it
// runs. Returns true if it completed, false if it was cancelled.
template <class T>
Task<bool> run_op(World& w, std::size_t slot, Task<T> op, T* out) {
  ++w.ops;
  TaskHandle<T> h = create_task(std::move(op));
  w.current[slot] = &h.base();
  bool ok = true;
  try {
    *out = co_await h;
    ++w.completed;
  } catch (const CancelledError&) {
    ++w.cancels;
    ok = false;
  }
  w.current[slot] = nullptr;
  co_return ok;
}

// ---- connect / accept ---------------------------------------------------------------

Task<int> connect_op(World& w) {
  Socket s = Socket::create(AF_INET, SOCK_STREAM);
  co_await s.connect(w.plain, 5s);
  ++w.connected;
  co_return 1;  // closed here: the acceptor sees the connection and EOF
}

Task<void> connector(World& w, std::size_t slot) {
  while (w.more()) {
    int r = 0;
    co_await run_op(w, slot, connect_op(w), &r);
  }
}

Task<int> accept_op(World& w, Socket& listener) {
  Accepted a = co_await listener.accept();
  ++w.accepted;
  co_return a.socket.fd() >= 0 ? 1 : 0;  // the accepted socket closes here
}

Task<void> acceptor(World& w, std::size_t slot, Socket& listener) {
  // Keeps accepting after the others stop, until every connector is done.
  while (!w.stop) {
    int r = 0;
    co_await run_op(w, slot, accept_op(w, listener), &r);
  }
}

// ---- raw pairs ----------------------------------------------------------------------

struct RawPair {
  Socket a, b;  // a writes, b reads (and the reverse in the final check)
  std::uint64_t sent = 0, received = 0;
  bool corrupt = false;
};

// Each op task books its own result before it returns: a task whose cancel
// arrives after its last await ends as cancelled (asyncio's rule) and its
// return value is dropped, but what it did must still be counted.
Task<std::size_t> send_op(RawPair& pr, const char* p, std::size_t n) {
  std::size_t done = co_await pr.a.send(p, n);
  pr.sent += done;
  co_return done;
}

void check_bytes(RawPair& pr, int idx, const char* p, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i)
    if (p[i] != pattern(idx, pr.received + i)) pr.corrupt = true;
  pr.received += n;
}

Task<std::size_t> recv_op(RawPair& pr, int idx, char* p, std::size_t n) {
  std::size_t got = co_await pr.b.recv(p, n);
  if (got == 0) pr.corrupt = true;  // nobody closes the writer before the end
  check_bytes(pr, idx, p, got);
  co_return got;
}

Task<std::size_t> plain_recv(Socket& s, char* p, std::size_t n) { co_return co_await s.recv(p, n); }

Task<void> pair_writer(World& w, std::size_t slot, RawPair& pr, int idx) {
  std::vector<char> buf(256 * 1024);
  while (w.more()) {
    std::size_t n = 1 + w.rng() % buf.size();
    for (std::size_t i = 0; i < n; ++i) buf[i] = pattern(idx, pr.sent + i);
    std::size_t done = 0;
    co_await run_op(w, slot, send_op(pr, buf.data(), n), &done);
  }
}

Task<void> pair_reader(World& w, std::size_t slot, RawPair& pr, int idx) {
  std::vector<char> buf(64 * 1024);
  while (w.more()) {
    std::size_t n = 0;
    const std::uint64_t before = pr.received;
    co_await run_op(w, slot, recv_op(pr, idx, buf.data(), 1 + w.rng() % buf.size()), &n);
    w.bytes += pr.received - before;
    if (pr.corrupt) co_return;
  }
}

// After the storm: read what is still in flight, check it, then one byte
// each way.
Task<void> pair_check(RawPair& pr, int idx) {
  std::vector<char> buf(64 * 1024);
  while (pr.received < pr.sent && !pr.corrupt) {
    std::size_t n = co_await wait_for(plain_recv(pr.b, buf.data(), buf.size()), 10s);
    REQUIRE(n > 0);
    check_bytes(pr, idx, buf.data(), n);
  }
  CHECK_FALSE(pr.corrupt);
  CHECK(pr.received == pr.sent);
  co_await pr.b.send_all("!");
  char c = 0;
  CHECK(co_await wait_for(plain_recv(pr.a, &c, 1), 10s) == 1);
  CHECK(c == '!');
}

// ---- streams (plain and TLS) ---------------------------------------------------------------

struct LineConn {
  StreamReader r;
  StreamWriter w;
  std::uint64_t next_send = 0, next_recv = 0;
  bool bad = false;
};

std::string line_for(std::uint64_t i) { return "line " + std::to_string(i) + std::string(i % 97, '.') + "\n"; }

Task<std::string> readline_op(StreamReader& r) { co_return co_await r.readline(); }

Task<int> next_line_op(World& w, LineConn& c) {
  std::string got = co_await c.r.readline();
  if (got != line_for(c.next_recv)) c.bad = true;
  ++c.next_recv;
  ++w.lines;
  co_return 1;
}

Task<void> line_driver(World& w, std::size_t slot, LineConn& c) {
  while (w.more()) {
    // Keep a few lines in flight so cancelled readlines have data racing in.
    while (c.next_send < c.next_recv + 3) c.w.write(line_for(c.next_send++));
    int one = 0;
    co_await run_op(w, slot, next_line_op(w, c), &one);
  }
}

Task<void> line_check(LineConn& c) {
  while (c.next_recv < c.next_send && !c.bad) {
    std::string got = co_await wait_for(readline_op(c.r), 10s);
    if (got != line_for(c.next_recv)) c.bad = true;
    ++c.next_recv;
  }
  c.w.write("still there\n");
  CHECK(co_await wait_for(readline_op(c.r), 10s) == "still there\n");
  CHECK_FALSE(c.bad);
  c.w.close();
  co_await c.w.wait_closed();
}

// ---- TLS handshakes ---------------------------------------------------------------------

Task<int> tls_op(World& w) {
  ConnectOptions o{.tls = w.client_tls, .server_hostname = "localhost"};
  auto [r, wr] = co_await open_connection("127.0.0.1", w.tls_port, o);
  wr.write("hi\n");
  ++w.handshakes;
  std::string back = co_await r.readline();
  CHECK(back == "hi\n");
  wr.close();
  co_await wr.wait_closed();
  co_return back == "hi\n" ? 1 : 0;
}

Task<void> tls_driver(World& w, std::size_t slot) {
  while (w.more()) {
    int ok = 0;
    co_await run_op(w, slot, tls_op(w), &ok);
  }
}

// ---- the controller ----------------------------------------------------------------------

Task<void> controller(World& w) {
  while (w.more()) {
    std::size_t slot = w.rng() % w.current.size();
    if (TaskBase* t = w.current[slot]; t && !t->done() && w.rng() % 3 == 0) {
      t->cancel("torture");
      ++w.cancel_calls;
    }
    switch (w.rng() % 4) {
      case 0: co_await sleep(std::chrono::microseconds(w.rng() % 300)); break;
      default: co_await sleep(0s); break;
    }
  }
  w.stop = true;
  // A send to a reader that stopped, or a recv from a writer that stopped,
  // would wait for ever: end what is still running.
  for (TaskBase* t : w.current)
    if (t && !t->done()) t->cancel("torture over");
}

Task<void> torture(EventLoop& loop, std::int64_t target, std::uint32_t seed) {
  World w;
  w.rng.seed(seed);
  w.target = target;
  const auto t0 = std::chrono::steady_clock::now();

  auto sctx_opts = TlsServerOptions();
  sctx_opts.cert_file = test::TestPki::get().file("server.pem");
  sctx_opts.key_file = test::TestPki::get().file("server.key");
  auto sctx = TlsContext::server(std::move(sctx_opts));
  TlsClientOptions copts;
  copts.ca_file = test::TestPki::get().file("ca.pem");
  w.client_tls = TlsContext::client(std::move(copts));

  Socket listener = Socket::create(AF_INET, SOCK_STREAM);
  listener.bind(SocketAddress::parse("127.0.0.1", 0));
  listener.listen();
  w.plain = listener.local_address();
  Server echo = co_await start_server(test::echo_lines, "127.0.0.1", 0);
  Server tls_echo = co_await start_server(test::echo_lines, "127.0.0.1", 0, ServerOptions{.tls = sctx});
  w.echo_port = echo.port();
  w.tls_port = tls_echo.port();

  constexpr int kPairs = 3;
  std::vector<std::unique_ptr<RawPair>> pairs;
  for (int i = 0; i < kPairs; ++i) {
    auto p = std::make_unique<RawPair>();
    p->a = Socket::create(AF_INET, SOCK_STREAM);
    TaskHandle<Accepted> acc = create_task([](Socket& l) -> Task<Accepted> { co_return co_await l.accept(); }(listener));
    co_await p->a.connect(w.plain, 5s);
    p->b = std::move((co_await acc).socket);
    pairs.push_back(std::move(p));
  }
  std::vector<std::unique_ptr<LineConn>> streams;
  for (int i = 0; i < 3; ++i) {
    // Two plain streams and one over TLS. (No co_await inside ?: — g++ 12
    // mis-destroys the temporaries of such an expression in a coroutine.)
    StreamPair sp;
    if (i < 2) {
      sp = co_await open_connection("127.0.0.1", w.echo_port);
    } else {
      sp = co_await open_connection("127.0.0.1", w.tls_port,
                                    ConnectOptions{.tls = w.client_tls, .server_hostname = "localhost"});
    }
    auto c = std::make_unique<LineConn>();
    c->r = std::move(sp.reader);
    c->w = std::move(sp.writer);
    streams.push_back(std::move(c));
  }

  std::vector<TaskHandle<void>> drivers;
  auto slot = [&w] {
    w.current.push_back(nullptr);
    return w.current.size() - 1;
  };
  // Slots first: drivers index w.current, which must not grow under them.
  std::vector<std::size_t> slots;
  const int n_slots = 2 + 1 + 2 * kPairs + 3 + 1;
  for (int i = 0; i < n_slots; ++i) slots.push_back(slot());
  std::size_t s = 0;
  TaskHandle<void> acc = create_task(acceptor(w, slots[s++], listener));
  drivers.push_back(create_task(connector(w, slots[s++])));
  drivers.push_back(create_task(connector(w, slots[s++])));
  for (int i = 0; i < kPairs; ++i) {
    drivers.push_back(create_task(pair_writer(w, slots[s++], *pairs[i], i)));
    drivers.push_back(create_task(pair_reader(w, slots[s++], *pairs[i], i)));
  }
  for (auto& c : streams) drivers.push_back(create_task(line_driver(w, slots[s++], *c)));
  drivers.push_back(create_task(tls_driver(w, slots[s++])));
  co_await controller(w);
  for (auto& d : drivers) co_await d;
  // The connectors are done: let the acceptor take what is queued, then stop it.
  co_await sleep(20ms);
  acc.cancel();
  try {
    co_await acc;
  } catch (const CancelledError&) {
  }

  // Every surviving connection still works.
  for (int i = 0; i < kPairs; ++i) co_await pair_check(*pairs[i], i);
  for (auto& c : streams) co_await line_check(*c);
  for (auto& c : streams) CHECK_FALSE(c->bad);
  for (auto& p : pairs) CHECK_FALSE(p->corrupt);

  pairs.clear();
  streams.clear();
  listener.close();
  echo.close();
  tls_echo.close();
  co_await echo.wait_closed();
  co_await tls_echo.wait_closed();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  MESSAGE(std::string(loop.backend_name()) << ": " << w.ops << " operations, " << w.cancels << " cancelled (" << w.cancel_calls
                              << " cancel calls), " << w.completed << " completed; " << w.connected << " connects, "
                              << w.accepted << " accepts, " << w.bytes << " bytes checked, " << w.lines << " lines, "
                              << w.handshakes << " TLS handshakes; " << secs << " s");
  std::printf("socket torture (%s): ops=%lld cancels=%lld completed=%lld connects=%lld accepts=%lld bytes=%llu "
              "lines=%lld tls=%lld elapsed=%.1fs\n",
              loop.backend_name(), static_cast<long long>(w.ops), static_cast<long long>(w.cancels),
              static_cast<long long>(w.completed), static_cast<long long>(w.connected),
              static_cast<long long>(w.accepted), static_cast<unsigned long long>(w.bytes),
              static_cast<long long>(w.lines), static_cast<long long>(w.handshakes), secs);
  CHECK(w.ops >= target);
  CHECK(w.cancels > w.ops / 50);  // the cancels really landed
  CHECK(w.completed > 0);
  CHECK(w.accepted > 0);
  CHECK(w.handshakes > 0);
}

}  // namespace

TEST_CASE("random cancels of connect, accept, recv, send, readline and TLS handshakes leak nothing and break nothing") {
  const std::int64_t target = ops_wanted();
  (void)test::TestPki::get();  // its openssl child processes come and go before the fd count
  test::on_each_backend([target](EventLoop& loop) {
    const int fds_before = open_fds();
    test::run_bounded(loop, torture(loop, target, 20261126), std::chrono::seconds(120 + target / 200));
    CHECK(loop.task_count() == 0);
    // A stream dropped mid-send closes its socket once the kernel took its
    // last bytes (a graceful close): give those completions a moment.
    int fds_after = open_fds();
    for (int i = 0; i < 200 && fds_after != fds_before; ++i) {
      loop.run_until_complete([]() -> Task<void> { co_await sleep(std::chrono::milliseconds(10)); }());
      fds_after = open_fds();
    }
    std::printf("socket torture (%s): fds before=%d after=%d\n", loop.backend_name(), fds_before, fds_after);
    CHECK(fds_after == fds_before);
  });
}
