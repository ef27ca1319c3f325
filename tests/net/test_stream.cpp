#include "net/stream.hpp"

#include <doctest/doctest.h>
#include <netdb.h>

#include <array>
#include <cstring>
#include <string>
#include <vector>

#include "coro/gather.hpp"
#include "coro/sleep.hpp"
#include "coro/task_handle.hpp"
#include "coro/timeout.hpp"
#include "tests/net/net_support.hpp"
#include "tests/support.hpp"

using namespace corio;
using namespace std::chrono_literals;

namespace {

// A TCP connection on loopback as {client streams, server-side raw socket}.
struct TcpPeers {
  StreamPair streams;
  Socket peer;
};

Task<TcpPeers> tcp_peers(StreamOptions opts = {}) {
  Socket l = Socket::create(AF_INET, SOCK_STREAM);
  l.bind(SocketAddress::parse("127.0.0.1", 0));
  l.listen();
  Socket c = Socket::create(AF_INET, SOCK_STREAM);
  co_await c.connect(l.local_address());
  Accepted a = co_await l.accept();
  co_return TcpPeers{make_streams(std::move(c), opts), std::move(a.socket)};
}

Task<std::string> recv_all(Socket& s) {
  std::string out;
  char buf[65536];
  for (;;) {
    std::size_t n = co_await s.recv(buf, sizeof buf);
    if (n == 0) break;
    out.append(buf, n);
  }
  co_return out;
}

}  // namespace

TEST_CASE("readline, readuntil, readexactly and read(n) split a byte stream as asyncio does") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto [a, b] = Socket::pair();
      auto [reader, writer] = make_streams(std::move(a));
      co_await b.send_all("line one\nline two\r\nfield1;field2;12345678rest");
      CHECK(co_await reader.readline() == "line one\n");
      CHECK(co_await reader.readuntil("\r\n") == "line two\r\n");
      CHECK(co_await reader.readuntil(";") == "field1;");
      CHECK(co_await reader.readuntil(";") == "field2;");
      CHECK(co_await reader.readexactly(8) == "12345678");
      CHECK(co_await reader.read(2) == "re");
      CHECK(reader.buffered() == 2u);
      CHECK(co_await reader.read(100) == "st");
      CHECK_FALSE(reader.at_eof());
      b.shutdown(SHUT_WR);
      CHECK(co_await reader.read(100) == "");
      CHECK(reader.at_eof());
      CHECK(co_await reader.readline() == "");
      CHECK(co_await reader.read(0) == "");
      CHECK(co_await reader.readexactly(0) == "");
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("a read can be spawned as its own task, as asyncio.create_task(reader.readline()) does") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto [a, b] = Socket::pair();
      auto [reader, writer] = make_streams(std::move(a));
      TaskHandle<std::string> line = create_task(reader.readline(), "reader");
      co_await sleep(0s);
      CHECK_FALSE(line.done());
      co_await b.send_all("spawned\n");
      CHECK(co_await line == "spawned\n");
      CHECK(line.name() == "reader");
      TaskHandle<std::string> never = create_task(reader.readexactly(1000));  // a cancel ends it
      co_await sleep(0s);
      never.cancel();
      CHECK_THROWS_AS(co_await never, CancelledError);
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("a message split across many small sends is reassembled by readexactly and readuntil") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto [a, b] = Socket::pair();
      auto [reader, writer] = make_streams(std::move(a));
      auto trickle = [](Socket& s) -> Task<void> {
        std::string msg = "0123456789abcdefghij|tail\n";
        for (char ch : msg) {
          co_await s.send_all(std::string_view(&ch, 1));
          co_await sleep(1ms);
        }
      };
      auto t = create_task(trickle(b));
      CHECK(co_await reader.readexactly(10) == "0123456789");
      CHECK(co_await reader.readuntil("|") == "abcdefghij|");
      CHECK(co_await reader.readline() == "tail\n");
      co_await t;
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("read() returns everything until EOF, and LimitOverrun past the limit keeps the data") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      {
        auto [a, b] = Socket::pair();
        auto [reader, writer] = make_streams(std::move(a));
        co_await b.send_all(std::string(1000, 'x'));
        b.close();
        CHECK(co_await reader.read() == std::string(1000, 'x'));
        CHECK(reader.at_eof());
      }
      {
        StreamOptions o;
        o.limit = 100;
        auto [a, b] = Socket::pair();
        auto [reader, writer] = make_streams(std::move(a), o);
        co_await b.send_all(std::string(300, 'y'));
        bool overrun = false;
        try {
          (void)co_await reader.read();
        } catch (const LimitOverrun& e) {
          overrun = true;
          CHECK(e.consumed() > 100u);
        }
        CHECK(overrun);
        CHECK(reader.buffered() > 100u);
        b.close();
        std::string rest;
        for (;;) {
          std::string chunk = co_await reader.read(64);
          if (chunk.empty()) break;
          rest += chunk;
        }
        CHECK(rest == std::string(300, 'y'));
      }
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("readuntil past the limit throws LimitOverrun with consumed, and keeps the data buffered") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      StreamOptions o;
      o.limit = 16;
      auto [a, b] = Socket::pair();
      auto [reader, writer] = make_streams(std::move(a), o);
      // No separator within the limit.
      co_await b.send_all(std::string(40, 'a'));
      std::size_t consumed = 0;
      try {
        (void)co_await reader.readuntil("\n");
        FAIL("no LimitOverrun");
      } catch (const LimitOverrun& e) {
        consumed = e.consumed();
        CHECK(std::string(e.what()) == "Separator is not found, and chunk exceed the limit");
      }
      CHECK(consumed > 16u);
      CHECK(reader.buffered() == 40u);
      CHECK(co_await reader.read(40) == std::string(40, 'a'));

      // A separator that is there, but beyond the limit.
      co_await b.send_all(std::string(20, 'b') + "\nshort\n");
      try {
        (void)co_await reader.readline();
        FAIL("no LimitOverrun");
      } catch (const LimitOverrun& e) {
        CHECK(e.consumed() == 20u);
        CHECK(std::string(e.what()) == "Separator is found, but chunk is longer than limit");
      }
      CHECK(co_await reader.readexactly(21) == std::string(20, 'b') + "\n");
      CHECK(co_await reader.readline() == "short\n");

      // A line exactly at the limit is fine.
      co_await b.send_all(std::string(15, 'c') + "\n");
      CHECK(co_await reader.readline() == std::string(15, 'c') + "\n");
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("readexactly and readuntil at EOF throw IncompleteRead carrying the partial data") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      {
        auto [a, b] = Socket::pair();
        auto [reader, writer] = make_streams(std::move(a));
        co_await b.send_all("partial");
        b.close();
        bool thrown = false;
        try {
          (void)co_await reader.readexactly(100);
        } catch (const IncompleteRead& e) {
          thrown = true;
          CHECK(e.partial() == "partial");
          CHECK(e.expected() == 100u);
          CHECK(std::string(e.what()) == "7 bytes read on a total of 100 expected bytes");
        }
        CHECK(thrown);
        CHECK(reader.at_eof());
      }
      {
        auto [a, b] = Socket::pair();
        auto [reader, writer] = make_streams(std::move(a));
        co_await b.send_all("no separator");
        b.close();
        bool thrown = false;
        try {
          (void)co_await reader.readuntil("\r\n");
        } catch (const IncompleteRead& e) {
          thrown = true;
          CHECK(e.partial() == "no separator");
          CHECK_FALSE(e.expected());
        }
        CHECK(thrown);
      }
      {
        auto [a, b] = Socket::pair();
        auto [reader, writer] = make_streams(std::move(a));
        co_await b.send_all("last line without newline");
        b.close();
        CHECK(co_await reader.readline() == "last line without newline");
        CHECK(co_await reader.readline() == "");
      }
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("drain really blocks while the peer does not read, and resumes when it reads") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      StreamOptions o;
      o.write_high_water = 64 * 1024;
      o.write_low_water = 16 * 1024;
      TcpPeers p = co_await tcp_peers(o);
      StreamWriter& w = p.streams.writer;
      struct Progress {
        std::size_t written = 0;
        bool done = false;
      } prog;
      auto writer = [](StreamWriter& w, Progress& prog) -> Task<void> {
        std::string chunk(256 * 1024, 'z');
        for (int i = 0; i < 64; ++i) {  // 16 MiB: far more than the kernel buffers
          w.write(chunk);
          prog.written += chunk.size();
          co_await w.drain();
        }
        w.write_eof();
        prog.done = true;
      };
      auto t = create_task(writer(w, prog));
      co_await sleep(200ms);
      // Blocked: the kernel buffers are full and the peer reads nothing.
      CHECK_FALSE(prog.done);
      CHECK(prog.written < 16u * 1024 * 1024);
      CHECK(w.write_buffer_size() > 16u * 1024);
      std::size_t stalled_at = prog.written;
      co_await sleep(100ms);
      CHECK(prog.written == stalled_at);
      // The peer reads: the writer resumes and finishes.
      std::string got = co_await recv_all(p.peer);
      co_await t;
      CHECK(prog.done);
      CHECK(got.size() == 64u * 256 * 1024);
      CHECK(got.find_first_not_of('z') == std::string::npos);
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("drain() as a Task, in create_task and in wait_for: returns at once below the mark, times out while blocked") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      TcpPeers p = co_await tcp_peers();
      StreamWriter& w = p.streams.writer;
      w.set_write_buffer_limits(64 * 1024, 16 * 1024);
      w.write("small");
      Task<void> t = w.drain();  // below the high-water mark: done without waiting
      co_await std::move(t);
      co_await create_task(w.drain());
      co_await wait_for(w.drain(), 1s);
      // Past the mark, with a peer that does not read: it blocks (wait_for
      // times out) once the kernel's buffers are full too.
      std::string chunk(256 * 1024, 'd');
      std::size_t written = 5;
      bool timed_out = false;
      for (int i = 0; i < 64 && !timed_out; ++i) {  // 16 MiB: far more than the kernel buffers
        w.write(chunk);
        written += chunk.size();
        try {
          co_await wait_for(w.drain(), 50ms);
        } catch (const TimeoutError&) {
          timed_out = true;
        }
      }
      REQUIRE(timed_out);
      auto blocked = create_task(w.drain());
      co_await sleep(20ms);
      CHECK_FALSE(blocked.done());
      // The peer reads everything: the spawned drain finishes.
      auto r = create_task(recv_all(p.peer));
      co_await blocked;
      CHECK(w.write_buffer_size() <= 16u * 1024);
      w.close();
      co_await w.wait_closed();
      CHECK((co_await r).size() == written);
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("gather() takes stream reads and drain() as they are, as asyncio.gather takes any awaitable") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto [a, b] = Socket::pair();
      auto [reader, writer] = make_streams(std::move(a));
      auto [peer_reader, peer_writer] = make_streams(std::move(b));
      writer.write(std::string_view("ping\n"));
      peer_writer.write(std::string_view("pong\n"));
      auto [line, drained, answer] = co_await gather(peer_reader.readline(), writer.drain(), reader.readexactly(5));
      CHECK(line == "ping\n");
      CHECK(answer == "pong\n");
      (void)drained;  // std::monostate: drain() returns nothing
      // With return_exceptions a read that fails comes back as its Outcome.
      peer_writer.write(std::string_view("abc"));
      peer_writer.close();
      auto [partial] = co_await gather(return_exceptions, reader.readexactly(10));
      REQUIRE(partial.has_exception<IncompleteRead>());
      try {
        std::rethrow_exception(partial.exception());
      } catch (const IncompleteRead& e) {
        CHECK(e.partial() == "abc");
      }
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("write_eof half-closes: the peer reads EOF and can still answer") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      TcpPeers p = co_await tcp_peers();
      auto& [reader, writer] = p.streams;
      writer.write("request");
      writer.write_eof();
      CHECK(writer.can_write_eof());
      CHECK_THROWS_AS(writer.write("more"), InvalidStateError);
      CHECK(co_await recv_all(p.peer) == "request");
      co_await p.peer.send_all("response");
      p.peer.shutdown(SHUT_WR);
      CHECK(co_await reader.read() == "response");
      CHECK(reader.at_eof());
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("close sends what was buffered, then closes; wait_closed returns once closed") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      TcpPeers p = co_await tcp_peers();
      auto& [reader, writer] = p.streams;
      std::string big(3 << 20, 'q');
      writer.write(big);
      writer.close();
      CHECK(writer.is_closing());
      CHECK_THROWS_AS(writer.write("late"), InvalidStateError);
      auto drainer = [](Socket& s) -> Task<std::string> { co_return co_await recv_all(s); };
      auto d = create_task(drainer(p.peer));
      co_await writer.wait_closed();
      CHECK(writer.socket().fd() == -1);
      std::string got = co_await d;
      CHECK(got.size() == big.size());
      // Reading after close is EOF.
      CHECK(co_await reader.read(10) == "");
      CHECK(reader.at_eof());
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("closing the writer wakes a task blocked reading the same stream with EOF") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      TcpPeers p = co_await tcp_peers();
      auto reader_task = [](StreamReader& r) -> Task<std::string> { co_return co_await r.read(100); };
      auto t = create_task(reader_task(p.streams.reader));
      co_await sleep(10ms);
      p.streams.writer.close();
      CHECK(co_await t == "");
      co_await p.streams.writer.wait_closed();
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("abort drops unsent data and closes at once, even when the peer never reads") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      TcpPeers p = co_await tcp_peers();
      StreamWriter& w = p.streams.writer;
      w.write(std::string(32 << 20, 'a'));  // far more than the kernel will take
      co_await sleep(20ms);
      CHECK(w.write_buffer_size() > 0u);
      w.abort();
      co_await w.wait_closed();
      CHECK(w.write_buffer_size() == 0u);
      // Nothing left to wait for, but the bytes were dropped, not flushed.
      CHECK_THROWS_AS(co_await w.drain(), ConnectionResetError);
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("drain() blocked on a full buffer throws ConnectionResetError naming the peer when the stream is aborted") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      TcpPeers p = co_await tcp_peers();
      StreamWriter& w = p.streams.writer;
      w.write(std::string(32 << 20, 'a'));  // far more than the kernel will take: drain() blocks
      auto drainer = [](StreamWriter& w) -> Task<std::string> {
        try {
          co_await w.drain();
        } catch (const ConnectionResetError& e) {
          co_return e.what();
        }
        co_return "drain() returned normally";
      };
      auto t = create_task(drainer(w));
      co_await sleep(20ms);
      REQUIRE_FALSE(t.done());
      w.abort();  // another task drops the unsent bytes: they were not flushed
      std::string what = co_await wait_for(t, 2s);
      CHECK(what.find(w.peer_address().to_string()) != std::string::npos);
      CHECK(what.find("aborted") != std::string::npos);
      // Once closed it stays so: the bytes were never sent.
      co_await wait_for(w.wait_closed(), 2s);
      CHECK_THROWS_AS(co_await w.drain(), ConnectionResetError);
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("drain() after close() returns once everything was sent, and throws ConnectionResetError if it never was") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      {
        // Everything reaches the peer: nothing was lost, drain() has nothing to report.
        TcpPeers p = co_await tcp_peers();
        StreamWriter& w = p.streams.writer;
        w.write(std::string(4 << 20, 'a'));
        w.close();
        auto peer = create_task(recv_all(p.peer));
        co_await wait_for(w.wait_closed(), 5s);
        co_await w.drain();
        CHECK((co_await wait_for(peer, 5s)).size() == std::size_t(4 << 20));
      }
      {
        // The peer never reads; closing gives up (abort) with bytes unsent.
        TcpPeers p = co_await tcp_peers();
        StreamWriter& w = p.streams.writer;
        w.write(std::string(32 << 20, 'a'));
        w.close();
        co_await sleep(20ms);
        REQUIRE_FALSE(w.connection()->closed());
        w.abort();
        co_await wait_for(w.wait_closed(), 2s);
        std::string what;
        try {
          co_await w.drain();
        } catch (const ConnectionResetError& e) {
          what = e.what();
        }
        CHECK(what.find(w.peer_address().to_string()) != std::string::npos);
      }
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("a second concurrent reader gets InvalidStateError") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto [a, b] = Socket::pair();
      auto [reader, writer] = make_streams(std::move(a));
      auto first = [](StreamReader& r) -> Task<std::string> { co_return co_await r.readline(); };
      auto t = create_task(first(reader));
      co_await sleep(5ms);
      bool refused = false;
      try {
        (void)co_await reader.read(1);
      } catch (const InvalidStateError& e) {
        refused = std::string(e.what()).find("another task") != std::string::npos;
      }
      CHECK(refused);
      co_await b.send_all("x\n");
      CHECK(co_await t == "x\n");
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("cancelling a task blocked in a stream read loses no bytes") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto [a, b] = Socket::pair();
      auto [reader, writer] = make_streams(std::move(a));
      auto blocked = [](StreamReader& r) -> Task<std::string> { co_return co_await r.readexactly(10); };
      auto t = create_task(blocked(reader));
      co_await sleep(5ms);
      co_await b.send_all("12345");  // half of what the reader waits for
      co_await sleep(5ms);
      auto t0 = Clock::now();
      t.cancel();
      CHECK(co_await test::ends_cancelled(t));
      CHECK(Clock::now() - t0 < 1s);
      co_await b.send_all("67890");
      CHECK(co_await reader.readexactly(10) == "1234567890");
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("readinto takes arriving bytes straight into its buffer, and gives them back when cancelled before it ran") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto [a, b] = Socket::pair();
      auto [reader, writer] = make_streams(std::move(a));
      std::array<std::byte, 64> buf{};
      bool resumed = false;
      auto blocked = [&]() -> Task<std::size_t> {
        std::size_t n = co_await reader.readinto(buf);
        resumed = true;
        co_return n;
      };

      // The plain case: the bytes land in the waiting read's buffer.
      auto t1 = create_task(blocked());
      co_await sleep(5ms);
      co_await b.send_all("hello");
      CHECK(co_await t1 == 5u);
      CHECK(std::memcmp(buf.data(), "hello", 5) == 0);
      CHECK(reader.buffered() == 0u);

      // Cancelled after the bytes reached its buffer but before the task
      // ran: this task runs first in the round where the completion wakes
      // the reader (sleep(0) queued it ahead), sees the bytes and cancels.
      buf.fill(std::byte{0});
      resumed = false;
      auto t2 = create_task(blocked());
      co_await sleep(5ms);
      CHECK(::send(b.fd(), "abc", 3, MSG_NOSIGNAL) == 3);
      bool taken = false;
      for (int i = 0; i < 10'000 && !taken && !resumed; ++i) {
        co_await sleep(0ms);
        taken = buf[0] == std::byte{'a'};
      }
      REQUIRE(taken);  // both backends deliver a waiting readinto directly
      CHECK_FALSE(resumed);
      t2.cancel();
      CHECK(co_await test::ends_cancelled(t2));
      CHECK_FALSE(resumed);
      // The bytes are back in the stream, ahead of those sent later.
      co_await b.send_all("def");
      CHECK(co_await reader.readexactly(6) == "abcdef");
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("local_address() and peer_address() still answer after close(), as asyncio's get_extra_info does") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      {
        TcpPeers p = co_await tcp_peers();
        StreamWriter& w = p.streams.writer;
        // Not asked before the close: the answer must not depend on an
        // earlier call having cached it.
        const SocketAddress local = p.peer.peer_address();
        const SocketAddress peer = p.peer.local_address();
        w.close();
        co_await wait_for(w.wait_closed(), 5s);
        REQUIRE(w.socket().fd() == -1);
        CHECK(w.local_address() == local);
        CHECK(w.peer_address() == peer);
      }
      {
        // A Unix server's side: its local address is the path it listens on.
        char dir[] = "/tmp/corio-stream-XXXXXX";
        REQUIRE(::mkdtemp(dir) != nullptr);
        const std::string path = std::string(dir) + "/s";
        Socket l = Socket::create(AF_UNIX, SOCK_STREAM);
        l.bind(SocketAddress::unix_path(path));
        l.listen();
        auto [cr, cw] = co_await open_unix_connection(path);
        Accepted a = co_await l.accept();
        auto [r, w] = make_streams(std::move(a.socket));
        w.abort();
        co_await wait_for(w.wait_closed(), 5s);
        CHECK(w.local_address().to_string() == path);
        CHECK(cw.peer_address().to_string() == path);
        cw.close();
        co_await wait_for(cw.wait_closed(), 5s);
        CHECK(cw.peer_address().to_string() == path);
        ::unlink(path.c_str());
        ::rmdir(dir);
      }
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("a peer reset mid-read is a ConnectionResetError after the bytes that came first") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      TcpPeers p = co_await tcp_peers();
      auto& [reader, writer] = p.streams;
      co_await p.peer.send_all("head");
      co_await sleep(5ms);
      p.peer.set_linger(0);
      p.peer.close();
      CHECK(co_await reader.read(4) == "head");
      bool reset = false;
      try {
        (void)co_await reader.readexactly(10);
      } catch (const ConnectionResetError& e) {
        reset = true;
        CHECK(std::string(e.what()).find(writer.peer_address().to_string()) != std::string::npos);
      }
      CHECK(reset);
      CHECK(reader.at_eof());
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("once the reader saw the peer's reset, is_closing() is true and drain() throws it, as asyncio's do") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      TcpPeers p = co_await tcp_peers();
      auto& [reader, writer] = p.streams;
      CHECK_FALSE(writer.is_closing());
      p.peer.set_linger(0);
      p.peer.close();
      std::string read_what;
      try {
        (void)co_await reader.read(10);
      } catch (const ConnectionResetError& e) {
        read_what = e.what();
      }
      REQUIRE(!read_what.empty());
      // asyncio: the transport is lost (is_closing() is True), and drain()
      // raises the reader's exception rather than report bytes as sent.
      CHECK(writer.is_closing());
      writer.write("nobody will read this");
      std::string drain_what;
      try {
        co_await writer.drain();
      } catch (const ConnectionResetError& e) {
        drain_what = e.what();
      }
      CHECK(drain_what == read_what);
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("once a send failed, is_closing() is true") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      TcpPeers p = co_await tcp_peers();
      StreamWriter& w = p.streams.writer;
      w.write(std::string(8 << 20, 'w'));  // more than the kernel takes: a send is pending
      co_await sleep(20ms);
      p.peer.set_linger(0);
      p.peer.close();
      CHECK_THROWS_AS(co_await wait_for(w.drain(), 5s), ConnectionError);
      CHECK(w.is_closing());
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("a peer reset mid-write makes drain throw a ConnectionError, never SIGPIPE") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      TcpPeers p = co_await tcp_peers();
      StreamWriter& w = p.streams.writer;
      auto writer = [](StreamWriter& w) -> Task<int> {
        std::string chunk(64 * 1024, 'w');
        try {
          for (int i = 0; i < 100000; ++i) {
            w.write(chunk);
            co_await w.drain();
          }
        } catch (const ConnectionError& e) {
          co_return e.errno_value();
        }
        co_return 0;
      };
      auto t = create_task(writer(w));
      co_await sleep(50ms);  // the writer is blocked in drain: the peer reads nothing
      p.peer.set_linger(0);
      p.peer.close();
      int err = co_await t;
      CHECK((err == ECONNRESET || err == EPIPE));
      // Later writes are dropped quietly; drain keeps reporting the failure.
      w.write("more");
      CHECK_THROWS_AS(co_await w.drain(), ConnectionError);
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("open_connection connects by address and by name, and reports refusal and unknown names") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Socket l = Socket::create(AF_INET, SOCK_STREAM);
      l.bind(SocketAddress::parse("127.0.0.1", 0));
      l.listen();
      std::uint16_t port = l.local_address().port();
      {
        auto [r, w] = co_await open_connection("127.0.0.1", port);
        Accepted a = co_await l.accept();
        CHECK(w.peer_address() == l.local_address());
        CHECK(w.local_address() == a.peer);
        w.write("hi");
        co_await w.drain();
        char buf[8];
        CHECK(co_await a.socket.recv(buf, sizeof buf) == 2u);
      }
      {
        ConnectOptions o;
        o.family = AF_INET;
        o.connect_timeout = 5s;
        auto [r, w] = co_await open_connection("localhost", port, o);
        Accepted a = co_await l.accept();
        CHECK(w.peer_address().to_string() == "127.0.0.1:" + std::to_string(port));
      }
      l.close();  // nothing listens any more
      std::string what;
      try {
        (void)co_await open_connection(SocketAddress::parse("127.0.0.1", port));
      } catch (const ConnectionRefusedError& e) {
        what = e.what();
      }
      CHECK(what == "connect 127.0.0.1:" + std::to_string(port) + ": Connection refused");
      bool not_found = false;
      try {
        (void)co_await open_connection("no-such-host.invalid", 80);
      } catch (const NameNotFoundError& e) {
        not_found = true;
        CHECK(e.host() == "no-such-host.invalid");
        CHECK(std::string(e.what()).find("getaddrinfo no-such-host.invalid: ") == 0);
      }
      CHECK(not_found);
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("open_connection honours its connect timeout against a full backlog") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      Socket l = Socket::create(AF_INET, SOCK_STREAM);
      l.bind(SocketAddress::parse("127.0.0.1", 0));
      l.listen(0);
      ConnectOptions o;
      o.connect_timeout = 100ms;
      std::vector<StreamPair> fillers;
      bool timed_out = false;
      for (int i = 0; i < 5 && !timed_out; ++i) {
        try {
          fillers.push_back(co_await open_connection(l.local_address(), o));
        } catch (const ConnectTimeoutError& e) {
          timed_out = true;
          CHECK(e.address() == l.local_address().to_string());
        }
      }
      CHECK(timed_out);
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("io_uring: a stream's first read completes once (nothing left armed to cancel); later reads stay armed") {
  // Injected faults (a failed first recv is retried as a multishot one)
  // change what is in flight; the reads themselves are tested elsewhere.
  if (test::started_with_faults()) return;
  test::on_each_backend([](EventLoop& loop) {
    auto main = [](EventLoop& lp) -> Task<void> {
      auto [a, b] = Socket::pair();
      auto [reader, writer] = make_streams(std::move(a));
      const std::size_t base = lp.backend().in_flight();
      co_await b.send_all("first");
      CHECK(co_await reader.read(100) == "first");
      // One-shot on io_uring; a plain recv on epoll: nothing in flight now,
      // so closing this stream would cancel nothing.
      CHECK(lp.backend().in_flight() == base);
      auto second = create_task(reader.read(100));
      co_await sleep(5ms);
      CHECK(lp.backend().in_flight() == base + 1);  // the second read waits in the kernel
      co_await b.send_all("second");
      CHECK(co_await second == "second");
      if (reader.connection()->uses_provided_buffers()) {
        CHECK(lp.backend().in_flight() == base + 1);  // a multishot recv: still armed
      }
      writer.close();
      co_await writer.wait_closed();
      CHECK(lp.backend().in_flight() == base);
    };
    test::run_bounded(loop, main(loop));
  });
}

TEST_CASE("streams work over Unix sockets and IPv6") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      std::string path = "@corio-stream-test-" + std::to_string(::getpid());
      Socket ul = Socket::create(AF_UNIX, SOCK_STREAM);
      ul.bind(SocketAddress::unix_path(path));
      ul.listen();
      {
        auto [r, w] = co_await open_unix_connection(path);
        Accepted a = co_await ul.accept();
        auto [sr, sw] = make_streams(std::move(a.socket));
        w.write("unix line\n");
        CHECK(co_await sr.readline() == "unix line\n");
        sw.write("back\n");
        CHECK(co_await r.readline() == "back\n");
      }
      Socket l6 = Socket::create(AF_INET6, SOCK_STREAM);
      l6.bind(SocketAddress::parse("::1", 0));
      l6.listen();
      auto [r, w] = co_await open_connection("::1", l6.local_address().port());
      Accepted a = co_await l6.accept();
      CHECK(a.peer.is_ipv6());
      CHECK(w.peer_address().to_string() == "[::1]:" + std::to_string(l6.local_address().port()));
      auto [sr, sw] = make_streams(std::move(a.socket));
      w.write("v6\n");
      CHECK(co_await sr.readline() == "v6\n");
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("an idle stream waiting for data owns no read buffer (io_uring provided buffers, epoll scratch)") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<std::size_t> {
      auto [a, b] = Socket::pair();
      auto [reader, writer] = make_streams(std::move(a));
      co_await b.send_all("first line\n");
      CHECK(co_await reader.readline() == "first line\n");
      auto idle = [](StreamReader& r) -> Task<std::string> { co_return co_await r.readline(); };
      auto t = create_task(idle(reader));
      co_await sleep(5ms);  // the reader waits for data that does not come
      std::size_t held = reader.buffer_capacity();
      co_await b.send_all("second\n");
      CHECK(co_await t == "second\n");
      co_return held;
    };
    std::size_t held = test::run_bounded(loop, main());
    if (loop.backend_kind() == detail::BackendKind::epoll || loop.backend().provided_buffers()) {
      CHECK(held == 0u);
    } else {
      MESSAGE("plain recv: an idle reader keeps a " << held << "-byte buffer");
    }
  });
}

TEST_CASE("reads after short reads still get the bytes that arrive later, with or without a read waiting") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      auto [a, b] = Socket::pair();
      auto [reader, writer] = make_streams(std::move(a));
      // Each readline's recv is short (the socket is emptied), so epoll waits
      // for the next edge before the next recv: the reply must still come.
      for (int i = 0; i < 50; ++i) {
        std::string line = "ping " + std::to_string(i) + "\n";
        co_await b.send_all(line);
        CHECK(co_await reader.readline() == line);
      }
      // Bytes that arrive while no read is waiting: their edge finds nothing
      // queued and must still mark the socket readable for the next read.
      co_await b.send_all("late\n");
      co_await sleep(5ms);
      CHECK(co_await reader.readline() == "late\n");
      // And EOF after a short read. (read(100) returns what is there: the
      // fault-injection layer may deliver "last" in pieces.)
      co_await b.send_all("last");
      b.shutdown(SHUT_WR);
      std::string rest;
      for (int i = 0; i < 8; ++i) {
        std::string piece = co_await reader.read(100);
        if (piece.empty()) break;
        rest += piece;
      }
      CHECK(rest == "last");
      CHECK(co_await reader.read(100) == "");
      CHECK(reader.at_eof());
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("a reader that stops reading makes the stream stop receiving, and nothing is lost") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      TcpPeers p = co_await tcp_peers();
      auto& [reader, writer] = p.streams;
      co_await p.peer.send_all("x");
      CHECK(co_await reader.readexactly(1) == "x");  // a receive is now armed (multishot on io_uring)
      std::string big(16 << 20, '\0');
      for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i % 251);
      auto sender = [](Socket& s, const std::string& data) -> Task<void> {
        co_await s.send_all(data);
        s.shutdown(SHUT_WR);
      };
      auto t = create_task(sender(p.peer, big));
      co_await sleep(100ms);  // nobody reads: the stream buffers a bounded amount, the kernel the rest
      // Bound: the pause threshold (256 KiB) plus what one batch can bring
      // from the provided-buffer pool before the pause lands (4 MiB).
      CHECK(reader.buffered() < (5u << 20));
      std::string got = co_await reader.read(big.size());
      while (got.size() < big.size()) {
        std::string more = co_await reader.read(big.size());
        if (more.empty()) break;
        got += more;
      }
      co_await t;
      CHECK(got.size() == big.size());
      CHECK(got == big);
      CHECK(co_await reader.read(1) == "");
    };
    test::run_bounded(loop, main());
  });
}

namespace {
// n streams whose readers all wait, then n peers that write in the same instant.
Task<void> many_streams_at_once(int n) {
  std::vector<Socket> peers;
  std::vector<StreamPair> streams;
  for (int i = 0; i < n; ++i) {
    auto [a, b] = Socket::pair();
    streams.push_back(make_streams(std::move(a)));
    peers.push_back(std::move(b));
  }
  auto read_one = [](StreamReader& r, int i) -> Task<void> {
    CHECK(co_await r.readline() == "hello " + std::to_string(i) + "\n");
  };
  std::vector<TaskHandle<void>> readers;
  for (int i = 0; i < n; ++i) readers.push_back(create_task(read_one(streams[i].reader, i)));
  co_await sleep(10ms);  // every reader waits, a receive armed for each
  // All peers write without yielding: the completions arrive together.
  for (int i = 0; i < n; ++i) {
    std::string line = "hello " + std::to_string(i) + "\n";
    REQUIRE(::send(peers[i].fd(), line.data(), line.size(), 0) == static_cast<ssize_t>(line.size()));
  }
  for (auto& r : readers) co_await r;
}
}  // namespace

TEST_CASE("hundreds of streams receiving in the same instant all get their bytes") {
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, many_streams_at_once(600)); });
}

// The loops are made here: they need a tiny provided-buffer pool (or none).
TEST_CASE("io_uring: streams re-arm after the provided-buffer pool ran dry (-ENOBUFS), and work without a pool") {
  for (unsigned pool : {4u, 0u}) {
    CAPTURE(pool);
    LoopOptions o = test::options_for(detail::BackendKind::io_uring);
    o.provided_buffers = pool;
    EventLoop loop(o);
    if (loop.backend_kind() != detail::BackendKind::io_uring) {
      MESSAGE("io_uring refused here; ran on epoll: " << loop.fallback_notice());
    } else {
      CHECK((loop.backend().provided_buffers() != nullptr) == (pool != 0));
    }
    test::run_bounded(loop, many_streams_at_once(64));
    auto echo = []() -> Task<void> {
      auto [a, b] = Socket::pair();
      auto [reader, writer] = make_streams(std::move(a));
      std::string big(1 << 20, 'e');
      auto t = create_task([](Socket& s, const std::string& d) -> Task<void> {
        co_await s.send_all(d);
        s.shutdown(SHUT_WR);
      }(b, big));
      CHECK(co_await reader.readexactly(big.size()) == big);
      CHECK(co_await reader.read() == "");
      co_await t;
    };
    test::run_bounded(loop, echo());
  }
}

// A pending read, drain() or wait_closed() may outlive the StreamReader and
// StreamWriter that made it (a task made from it; a server handler that
// returns while one is pending): it ends as on the closed stream, and never
// touches a freed connection (ASan in the sanitizer pass).
TEST_CASE("a read or drain or wait_closed still pending when its StreamReader and StreamWriter go ends cleanly") {
  test::on_each_backend([](EventLoop& loop) {
    auto main = []() -> Task<void> {
      {  // a read, parked with a recv in flight: EOF, the stream was closed
        auto [a, b] = Socket::pair();
        TaskHandle<std::string> t;
        {
          auto [reader, writer] = make_streams(std::move(a));
          t = create_task(reader.readline());
          co_await sleep(2ms);
          REQUIRE_FALSE(t.done());
        }
        CHECK(co_await wait_for(t, 5s) == "");
      }
      {  // a read made into a task that has not started yet
        auto [a, b] = Socket::pair();
        TaskHandle<std::string> t;
        {
          auto [reader, writer] = make_streams(std::move(a));
          t = create_task(reader.read(100));
        }
        CHECK(co_await wait_for(t, 5s) == "");
      }
      {  // wait_closed: the stream closes when its handles go
        auto [a, b] = Socket::pair();
        TaskHandle<void> t;
        {
          auto [reader, writer] = make_streams(std::move(a));
          t = create_task(writer.wait_closed());
          co_await sleep(2ms);
        }
        co_await wait_for(t, 5s);
        CHECK(t.done());
      }
      {  // a drain above the high-water mark: the bytes still go out, then it ends
        TcpPeers p = co_await tcp_peers();
        TaskHandle<void> t;
        {
          StreamPair s = std::move(p.streams);
          s.writer.write(std::string(8 << 20, 'a'));
          t = create_task(s.writer.drain());
          co_await sleep(5ms);
          REQUIRE_FALSE(t.done());
        }
        auto r = create_task(recv_all(p.peer));
        try {
          co_await wait_for(t, 10s);
        } catch (const ConnectionError&) {
          // also an honest end for a drain whose stream was closed under it
        }
        CHECK((co_await r).size() == std::size_t(8 << 20));
      }
    };
    test::run_bounded(loop, main());
  });
}

TEST_CASE("a recv that fails with EINVAL on one socket leaves the loop's provided-buffer pool to the others") {
  // recv on a Unix stream socket that is not connected fails with EINVAL.
  // On io_uring the first read of a stream is a plain recv that picks a
  // provided buffer (IoOp::oneshot): its EINVAL says nothing about multishot
  // recv support, so it must not turn the pool off for every stream of the
  // loop (each would then hold a read buffer while idle).
  if (test::started_with_faults()) return;
  test::on_each_backend([](EventLoop& loop) {
    const bool pooled = loop.backend().provided_buffers() != nullptr;
    auto main = []() -> Task<int> {
      int err = 0;
      {
        auto [reader, writer] = make_streams(Socket::create(AF_UNIX, SOCK_STREAM));
        try {
          (void)co_await reader.read(10);
        } catch (const OSError& e) {
          err = e.errno_value();
        }
      }
      co_return err;
    };
    CHECK(test::run_bounded(loop, main()) == EINVAL);
    CHECK((loop.backend().provided_buffers() != nullptr) == pooled);
  });
}
