// The HTTP client against a scripted server on loopback: every framing, the
// pool's limits and reuse, redirects, and servers that lie.
#include "net/http/client.hpp"

#include <doctest/doctest.h>
#include <sys/resource.h>
#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "coro/sleep.hpp"
#include "coro/task_handle.hpp"
#include "coro/timeout.hpp"
#include "coro/gather.hpp"
#include "loop/event_loop.hpp"
#include "net/server.hpp"
#include "tests/net/net_support.hpp"
#include "tests/support.hpp"

using namespace corio;
using namespace std::chrono_literals;
namespace http = corio::http;

namespace {

struct ScriptStats {
  int connections = 0;
  int active = 0;
  int max_active = 0;
  std::vector<std::string> seen;  // "METHOD path body-bytes auth-header"
};
ScriptStats g_stats;

std::string gzip(const std::string& in) {
  z_stream z{};
  deflateInit2(&z, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&z, in.size()) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

// 256 MiB of zeros gzipped, then gzipped again: about 600 bytes on the wire.
// Deflated a megabyte at a time, so making it costs no more than it should
// cost the client to refuse it.
const std::string& gzip_bomb() {
  static const std::string bomb = [] {
    z_stream z{};
    deflateInit2(&z, 9, Z_DEFLATED, 31, 9, Z_DEFAULT_STRATEGY);
    const std::string zeros(1 << 20, '\0');
    std::string inner;
    char buf[64 * 1024];
    for (int i = 0; i < 256; ++i) {
      z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(zeros.data()));
      z.avail_in = static_cast<uInt>(zeros.size());
      int flush = i == 255 ? Z_FINISH : Z_NO_FLUSH;
      do {
        z.next_out = reinterpret_cast<Bytef*>(buf);
        z.avail_out = sizeof buf;
        deflate(&z, flush);
        inner.append(buf, sizeof buf - z.avail_out);
      } while (z.avail_out == 0);
    }
    deflateEnd(&z);
    return gzip(inner);
  }();
  return bomb;
}

// About 1.5 MiB that compresses about tenfold: one 64 KiB read of it decodes
// to far more than one streamed piece may hold.
const std::string& text_body() {
  static const std::string text = [] {
    std::string t;
    for (int i = 0; i < 80000; ++i) t += "line " + std::to_string(i * 7919 % 100000) + " of the body\n";
    return t;
  }();
  return text;
}

std::size_t peak_rss_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<std::size_t>(u.ru_maxrss) * 1024;  // Linux counts KiB
}

std::string field(const std::string& head, const std::string& name) {
  std::string key = "\r\n" + name + ": ";
  std::size_t i = head.find(key);
  if (i == std::string::npos) return {};
  i += key.size();
  return head.substr(i, head.find("\r\n", i) - i);
}

std::string ok(const std::string& body, const std::string& extra = "") {
  return "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" + extra + "\r\n" + body;
}

// One connection of the scripted server: answers by path, request after request.
Task<void> script(StreamReader& r, StreamWriter& w) {
  const int conn_id = ++g_stats.connections;
  for (int nreq = 1;; ++nreq) {
    std::string head;
    bool eof = false;
    try {
      head = co_await r.readuntil("\r\n\r\n");
    } catch (const std::exception&) {
      eof = true;
    }
    if (eof) break;
    std::size_t sp1 = head.find(' '), sp2 = head.find(' ', sp1 + 1);
    std::string method = head.substr(0, sp1), path = head.substr(sp1 + 1, sp2 - sp1 - 1);
    std::string body;
    if (std::string cl = field(head, "Content-Length"); !cl.empty()) body = co_await r.readexactly(std::stoul(cl));
    g_stats.seen.push_back(method + " " + path + " " + std::to_string(body.size()) + " " +
                           field(head, "Authorization"));
    ++g_stats.active;
    g_stats.max_active = std::max(g_stats.max_active, g_stats.active);
    bool close_after = false;
    if (path == "/ok") {
      w.write(ok("hello"));
    } else if (path == "/conn") {  // which connection, and its how-many-th request
      w.write(ok(std::to_string(conn_id) + "/" + std::to_string(nreq)));
    } else if (path == "/slow") {
      co_await sleep(30ms);
      w.write(ok("slow"));
    } else if (path == "/head-ok") {
      w.write("HTTP/1.1 200 OK\r\nContent-Length: 12345\r\n\r\n");  // HEAD: no body follows
    } else if (path == "/interim") {
      w.write("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" + ok("final"));
    } else if (path == "/chunked") {
      w.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1;ext=1\r\n,\r\n6\r\n world\r\n0\r\n"
              "X-Trailer: t\r\n\r\n");
    } else if (path == "/gzip") {
      std::string z = gzip(std::string(100000, 'z') + "end");
      w.write(ok(z, "Content-Encoding: gzip\r\n"));
    } else if (path == "/gzip-bomb") {
      w.write(ok(gzip_bomb(), "Content-Encoding: gzip, gzip\r\n"));
    } else if (path == "/gzip-text") {
      w.write(ok(gzip(text_body()), "Content-Encoding: gzip\r\n"));
    } else if (path == "/gzip-text-chunked") {  // chunk boundaries fall anywhere in the gzip stream
      std::string z = gzip(text_body()), framed;
      for (std::size_t i = 0; i < z.size(); i += 1000) {
        std::string part = z.substr(i, 1000);
        char size[16];
        std::snprintf(size, sizeof size, "%zx\r\n", part.size());
        framed += size + part + "\r\n";
      }
      w.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n\r\n" + framed +
              "0\r\n\r\n");
    } else if (path == "/te-gzip-chunked" || path == "/te-gzip-ce-gzip") {
      // A transfer coding under chunked: the gzip is the message's, not the
      // content's (RFC 9112 §7), so it must come off whatever Accept-Encoding said.
      const bool both = path == "/te-gzip-ce-gzip";
      std::string z = gzip(both ? gzip(text_body()) : text_body()), framed;
      for (std::size_t i = 0; i < z.size(); i += 1000) {
        std::string part = z.substr(i, 1000);
        char size[16];
        std::snprintf(size, sizeof size, "%zx\r\n", part.size());
        framed += size + part + "\r\n";
      }
      w.write(std::string("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n") +
              (both ? "Content-Encoding: gzip\r\n" : "") + "\r\n" + framed + "0\r\n\r\n");
    } else if (path == "/te-gzip-close") {  // gzip without chunked: delimited by the close
      w.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nConnection: close\r\n\r\n" + gzip("closed gzip"));
      close_after = true;
    } else if (path == "/te-bomb") {
      std::string framed = [] {
        char size[16];
        std::snprintf(size, sizeof size, "%zx\r\n", gzip_bomb().size());
        return size + gzip_bomb() + "\r\n0\r\n\r\n";
      }();
      w.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Encoding: gzip\r\n\r\n" + framed);
    } else if (path == "/te-br") {
      w.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: br, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
    } else if (path == "/upgrade") {
      // Switches to another protocol, which then waits for the client to
      // speak first; HTTP sent on it gets a WebSocket close frame.
      w.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
      co_await w.drain();
      bool gone = false;
      try {
        (void)co_await r.read(4096);
      } catch (const std::exception&) {
        gone = true;
      }
      if (!gone) w.write(std::string("\x88\x02\x03\xea", 4));
      close_after = true;
    } else if (path == "/close-delimited") {
      w.write("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end");
      close_after = true;
    } else if (path == "/short") {  // Content-Length promises more than comes
      w.write("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this");
      close_after = true;
    } else if (path == "/short-chunked") {
      w.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc");
      close_after = true;
    } else if (path == "/bad-chunk") {
      w.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n");
    } else if (path == "/bad-status") {
      w.write("HTTP/1.1 2000 Whatever\r\nContent-Length: 0\r\n\r\n");
    } else if (path == "/bad-gzip") {
      w.write(ok("this is not gzip data", "Content-Encoding: gzip\r\n"));
    } else if (path == "/endless-head") {  // a header section that never ends
      w.write("HTTP/1.1 200 OK\r\n");
      for (int i = 0; i < 20000 && !w.is_closing(); ++i) {
        w.write("X-Filler: " + std::string(100, 'f') + "\r\n");
        co_await w.drain();
      }
      close_after = true;
    } else if (path == "/huge") {  // claims 1 GiB and sends until the client leaves
      w.write("HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n");
      std::string block(64 * 1024, 'h');
      for (int i = 0; i < 16384; ++i) {
        w.write(block);
        bool gone = false;
        try {
          co_await w.drain();
        } catch (const std::exception&) {
          gone = true;
        }
        if (gone) break;
      }
      close_after = true;
    } else if (path == "/stall") {
      co_await sleep(5s);
      close_after = true;
    } else if (path == "/stall-body") {  // the head, then 3 of 100 bytes
      w.write("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc");
      co_await w.drain();
      co_await sleep(5s);
      close_after = true;
    } else if (path == "/loop") {
      w.write("HTTP/1.1 302 Found\r\nLocation: /loop\r\nContent-Length: 0\r\n\r\n");
    } else if (path.rfind("/redirect/", 0) == 0) {
      int n = std::stoi(path.substr(10));
      if (n == 0) {
        w.write(ok("arrived"));
      } else {
        w.write("HTTP/1.1 301 Moved\r\nLocation: /redirect/" + std::to_string(n - 1) +
                "\r\nContent-Length: 7\r\n\r\nmoved!\n");
      }
    } else if (path == "/303" || path == "/307" || path == "/302") {
      w.write("HTTP/1.1 " + path.substr(1) + " See\r\nLocation: /method\r\nContent-Length: 0\r\n\r\n");
    } else if (path == "/method") {
      w.write(ok(method + " " + std::to_string(body.size())));
    } else if (path.rfind("/to/", 0) == 0) {  // /to/<absolute url>
      w.write("HTTP/1.1 302 Found\r\nLocation: " + path.substr(4) + "\r\nContent-Length: 0\r\n\r\n");
    } else if (path == "/auth") {
      w.write(ok(field(head, "Authorization")));
    } else if (path == "/bye") {  // answers, then closes as servers do with idle connections
      w.write(ok("bye"));
      co_await w.drain();
      close_after = true;
    } else if (path == "/404") {
      w.write("HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope");
    } else {
      w.write("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n");
    }
    --g_stats.active;
    bool gone = false;
    try {
      co_await w.drain();
    } catch (const std::exception&) {
      gone = true;  // the client left first (the lying-server cases)
    }
    if (close_after || gone) break;
  }
}

struct Fixture {
  Server server;
  std::string base;
};

Task<Fixture> start() {
  g_stats = ScriptStats{};
  Fixture f;
  f.server = co_await start_server(script, "127.0.0.1", 0);
  f.base = "http://127.0.0.1:" + std::to_string(f.server.port());
  co_return f;
}

template <class E>
Task<std::string> expect_error(http::Client& c, std::string url) {
  std::string what;
  bool thrown = false;
  try {
    co_await c.get(url);
  } catch (const E& e) {
    thrown = true;
    what = e.what();
  }
  CHECK_MESSAGE(thrown, url);
  co_return what;
}

Task<void> framings() {
  Fixture f = co_await start();
  http::Client c;
  auto r = co_await c.get(f.base + "/ok");
  CHECK(r.status == 200);
  CHECK(r.reason == "OK");
  CHECK(r.body == "hello");
  CHECK(r.header("content-length") == "5");
  CHECK(r.url.str() == f.base + "/ok");
  CHECK((co_await c.get(f.base + "/chunked")).body == "hello, world");
  CHECK((co_await c.get(f.base + "/gzip")).body == std::string(100000, 'z') + "end");
  CHECK((co_await c.get(f.base + "/interim")).body == "final");
  auto h = co_await c.request("HEAD", f.base + "/head-ok");
  CHECK(h.status == 200);
  CHECK(h.body.empty());
  CHECK((co_await c.get(f.base + "/ok")).body == "hello");  // the HEAD left the connection usable
  auto cd = co_await c.get(f.base + "/close-delimited");
  CHECK(cd.body == "until the end");
  auto p = co_await c.post(f.base + "/method", "payload");
  CHECK(p.body == "POST 7");
  auto nf = co_await c.get(f.base + "/404");
  CHECK(nf.status == 404);
  CHECK_FALSE(nf.ok());
  bool raised = false;
  try {
    nf.raise_for_status();
  } catch (const http::HttpStatusError& e) {
    raised = true;
    CHECK(e.status() == 404);
    CHECK(std::string(e.what()) == "404 Not Found for " + f.base + "/404");
  }
  CHECK(raised);
  f.server.close();
}

Task<void> keep_alive_reuse() {
  Fixture f = co_await start();
  http::ClientOptions o;
  o.max_connections_per_host = 3;
  http::Client c(o);
  for (int i = 0; i < 10; ++i) CHECK((co_await c.get(f.base + "/conn")).body == "1/" + std::to_string(i + 1));
  CHECK(c.stats().created == 1);
  CHECK(c.stats().reused == 9);
  // 12 at once through 3 slots: never more than 3 at the server, 3 connections.
  std::vector<Task<http::ClientResponse>> many;
  for (int i = 0; i < 12; ++i) many.push_back(c.get(f.base + "/slow"));
  auto all = co_await gather(std::move(many));
  for (auto& r : all) CHECK(r.body == "slow");
  CHECK(g_stats.max_active <= 3);
  CHECK(c.stats().created <= 3);
  CHECK(c.stats().open <= 3);
  CHECK(g_stats.connections == static_cast<int>(c.stats().created));
  f.server.close();
}

Task<void> stale_connection_retried() {
  Fixture f = co_await start();
  http::Client c;
  CHECK((co_await c.get(f.base + "/bye")).body == "bye");  // the server closes after answering
  co_await sleep(50ms);
  CHECK((co_await c.get(f.base + "/ok")).body == "hello");  // sent again on a fresh connection
  CHECK(c.stats().created == 2);
  f.server.close();
}

Task<void> redirects() {
  Fixture f = co_await start();
  http::ClientOptions o;
  o.max_redirects = 5;
  http::Client c(o);
  auto r = co_await c.get(f.base + "/redirect/3");
  CHECK(r.body == "arrived");
  CHECK(r.url.str() == f.base + "/redirect/0");
  REQUIRE(r.history.size() == 3);
  CHECK(r.history[0].str() == f.base + "/redirect/3");
  CHECK(c.stats().created == 1);  // redirect bodies were read: one connection throughout
  std::string what = co_await expect_error<http::TooManyRedirects>(c, f.base + "/loop");
  CHECK(what.find("more than 5 redirects") != std::string::npos);
  CHECK((co_await c.post(f.base + "/303", "data")).body == "GET 0");
  CHECK((co_await c.post(f.base + "/302", "data")).body == "GET 0");
  CHECK((co_await c.post(f.base + "/307", "data")).body == "POST 4");
  // Credentials stay with their origin.
  Server other = co_await start_server(script, "127.0.0.1", 0);
  std::string other_base = "http://127.0.0.1:" + std::to_string(other.port());
  http::HeaderList auth;  // named: GCC 12 mishandles braced temporaries in co_await
  auth.emplace_back("Authorization", "Bearer s3cret");
  auto same = co_await c.get(f.base + "/to/" + f.base + "/auth", auth);
  CHECK(same.body == "Bearer s3cret");
  auto cross = co_await c.get(f.base + "/to/" + other_base + "/auth", auth);
  CHECK(cross.status == 200);
  CHECK(cross.body.empty());
  http::ClientOptions no;
  no.follow_redirects = false;
  http::Client c2(no);
  auto raw = co_await c2.get(f.base + "/redirect/2");
  CHECK(raw.status == 301);
  CHECK(raw.header("Location") == "/redirect/1");
  other.close();
  f.server.close();
}

Task<void> lying_servers() {
  Fixture f = co_await start();
  http::ClientOptions o;
  o.max_body_size = 1 << 20;
  o.read_timeout = 300ms;
  http::Client c(o);
  std::string w1 = co_await expect_error<http::IncompleteBody>(c, f.base + "/short");
  CHECK(w1.find("91 bytes before the end of the body") != std::string::npos);
  co_await expect_error<http::IncompleteBody>(c, f.base + "/short-chunked");
  std::string w2 = co_await expect_error<http::MalformedResponse>(c, f.base + "/bad-chunk");
  CHECK(w2.find("malformed body") != std::string::npos);
  co_await expect_error<http::MalformedResponse>(c, f.base + "/bad-status");
  std::string w3 = co_await expect_error<http::MalformedResponse>(c, f.base + "/bad-gzip");
  CHECK(w3.find("gzip") != std::string::npos);
  co_await expect_error<http::MalformedResponse>(c, f.base + "/endless-head");
  std::string w4 = co_await expect_error<http::BodyTooLarge>(c, f.base + "/huge");
  CHECK(w4.find("exceeds the limit of 1048576 bytes") != std::string::npos);
  std::string w5 = co_await expect_error<http::ReadTimeout>(c, f.base + "/stall");
  CHECK(w5.find("no data from 127.0.0.1:") != std::string::npos);
  // The same in the middle of the body, which request() reads in its own frame.
  std::string w6 = co_await expect_error<http::ReadTimeout>(c, f.base + "/stall-body");
  CHECK(w6.find("no data from 127.0.0.1:") != std::string::npos);
  // Through all of that the client and server keep working.
  CHECK((co_await c.get(f.base + "/ok")).body == "hello");
  f.server.close();
}

Task<void> streaming_is_bounded() {
  Fixture f = co_await start();
  http::Client c;
  auto s = co_await c.stream("GET", f.base + "/huge");
  std::size_t total = 0, biggest = 0;
  while (total < (64u << 20)) {  // read 64 MiB of the 1 GiB, piece by piece
    std::string piece = co_await s.read_chunk();
    REQUIRE_FALSE(piece.empty());
    total += piece.size();
    biggest = std::max(biggest, piece.size());
  }
  CHECK(biggest <= 64 * 1024);
  s.close();  // the rest is abandoned: the connection is closed, not reused
  CHECK(c.stats().open == 0);
  f.server.close();
}

// 600 bytes that decode to 256 MiB: request() must refuse them at
// max_body_size with memory near that cap, and a stream must hand them out in
// bounded pieces, never the whole decoded body of one read at once.
Task<void> gzip_bomb_is_refused_in_bounded_memory() {
  Fixture f = co_await start();
  REQUIRE(gzip_bomb().size() < 4096);
  http::ClientOptions o;
  o.max_body_size = 1 << 20;
  http::Client c(o);
  const std::size_t rss_before = peak_rss_bytes();
  std::string what = co_await expect_error<http::BodyTooLarge>(c, f.base + "/gzip-bomb");
  CHECK(what == "the decoded body of " + f.base + "/gzip-bomb exceeds the limit of 1048576 bytes" +
                    " (Content-Encoding: gzip, gzip)");
  // The peak only ever rises; a decoded body held whole would add 256 MiB.
  CHECK(peak_rss_bytes() - rss_before < (32u << 20));

  auto s = co_await c.stream("GET", f.base + "/gzip-bomb");
  std::size_t total = 0, biggest = 0;
  bool zeros = true;
  while (total < (8u << 20)) {
    std::string piece = co_await s.read_chunk();
    REQUIRE_FALSE(piece.empty());
    total += piece.size();
    biggest = std::max(biggest, piece.size());
    zeros = zeros && piece.find_first_not_of('\0') == std::string::npos;
  }
  CHECK(biggest <= 64 * 1024);
  CHECK(zeros);
  s.close();

  auto s2 = co_await c.stream("GET", f.base + "/gzip-bomb");
  bool too_big = false;
  try {
    co_await s2.read_body(100000);
  } catch (const http::BodyTooLarge& e) {
    too_big = true;
    CHECK(std::string(e.what()).find("exceeds the limit of 100000 bytes") != std::string::npos);
  }
  CHECK(too_big);
  CHECK(peak_rss_bytes() - rss_before < (32u << 20));
  CHECK(c.stats().open == 0);  // refused bodies close their connections
  CHECK((co_await c.get(f.base + "/ok")).body == "hello");
  f.server.close();
}

// The decoder keeps what it has not handed out yet between reads: no byte
// may be lost or repeated, whatever the framing, and a body read to its end
// leaves the connection reusable.
Task<void> gzip_bodies_round_trip_in_pieces() {
  Fixture f = co_await start();
  http::Client c;
  for (const char* path : {"/gzip-text", "/gzip-text-chunked"}) {
    std::string where = path;
    CAPTURE(where);
    CHECK((co_await c.get(f.base + path)).body == text_body());
    auto s = co_await c.stream("GET", f.base + path);
    std::string got;
    std::size_t pieces = 0, biggest = 0;
    for (;;) {
      std::string piece = co_await s.read_chunk();
      if (piece.empty()) break;
      ++pieces;
      biggest = std::max(biggest, piece.size());
      got += piece;
    }
    CHECK(got == text_body());
    CHECK(biggest <= 64 * 1024);
    CHECK(pieces >= text_body().size() / (64 * 1024));
    CHECK(s.body_done());
    CHECK(co_await s.read_chunk() == "");
  }
  CHECK(c.stats().created == 1);  // every body ended cleanly, so one connection served all four
  f.server.close();
}

// Transfer codings other than chunked (RFC 9112 §7) are the message's, not
// the content's: they come off even with decompress off, under the same
// max_body_size as Content-Encoding, and one the client cannot decode is an
// error naming it, never a body returned still encoded.
Task<void> transfer_codings_are_decoded() {
  Fixture f = co_await start();
  http::ClientOptions o;
  o.max_body_size = 2 << 20;
  http::Client c(o);
  CHECK((co_await c.get(f.base + "/te-gzip-chunked")).body == text_body());
  CHECK((co_await c.get(f.base + "/te-gzip-ce-gzip")).body == text_body());
  CHECK((co_await c.get(f.base + "/te-gzip-close")).body == "closed gzip");
  auto s = co_await c.stream("GET", f.base + "/te-gzip-chunked");
  std::string got;
  std::size_t biggest = 0;
  for (;;) {
    std::string piece = co_await s.read_chunk();
    if (piece.empty()) break;
    biggest = std::max(biggest, piece.size());
    got += piece;
  }
  CHECK(got == text_body());
  CHECK(biggest <= 64 * 1024);
  // The content coding stays for the caller; the transfer coding does not.
  http::ClientOptions raw_opts = o;
  raw_opts.decompress = false;
  http::Client raw(raw_opts);
  CHECK((co_await raw.get(f.base + "/te-gzip-chunked")).body == text_body());
  auto both = co_await raw.get(f.base + "/te-gzip-ce-gzip");
  CHECK(both.header("Content-Encoding") == "gzip");
  CHECK(both.body == gzip(text_body()));
  // Bounded like Content-Encoding: a bomb stops at max_body_size.
  const std::size_t rss_before = peak_rss_bytes();
  std::string big = co_await expect_error<http::BodyTooLarge>(c, f.base + "/te-bomb");
  CHECK(big == "the decoded body of " + f.base + "/te-bomb exceeds the limit of 2097152 bytes" +
                   " (Content-Encoding: gzip; Transfer-Encoding: gzip, chunked)");
  CHECK(peak_rss_bytes() - rss_before < (32u << 20));
  std::string br = co_await expect_error<http::MalformedResponse>(c, f.base + "/te-br");
  CHECK(br.find("unsupported transfer coding 'br'") != std::string::npos);
  CHECK((co_await c.get(f.base + "/ok")).body == "hello");
  f.server.close();
}

// After 101 the connection speaks another protocol: an HTTP request sent on
// it would be read as that protocol's data, so it never goes back to the pool.
Task<void> switching_protocols_is_not_pooled() {
  Fixture f = co_await start();
  http::Client c;
  auto up = co_await c.get(f.base + "/upgrade");
  CHECK(up.status == 101);
  CHECK(up.body.empty());
  CHECK(c.stats().idle == 0);
  CHECK(c.stats().open == 0);
  CHECK((co_await c.get(f.base + "/ok")).body == "hello");
  CHECK(c.stats().created == 2);
  CHECK(c.stats().reused == 0);
  // Streamed: the body "ends" at once, and the connection (the pooled /ok
  // one, upgraded) closes all the same.
  auto s = co_await c.stream("GET", f.base + "/upgrade");
  CHECK(s.status == 101);
  CHECK(c.stats().reused == 1);
  CHECK(co_await s.read_chunk() == "");
  CHECK(s.body_done());
  CHECK(c.stats().idle == 0);
  CHECK(c.stats().open == 0);
  CHECK((co_await c.get(f.base + "/conn")).body == "3/1");
  f.server.close();
}

Task<void> bad_requests() {
  http::Client c;
  bool bad_scheme = false, bad_header = false, refused = false;
  try {
    co_await c.get("ftp://127.0.0.1/x");
  } catch (const http::UnsupportedScheme&) {
    bad_scheme = true;
  }
  try {
    http::HeaderList evil;
    evil.emplace_back("X-Evil", "a\r\nInjected: 1");
    co_await c.get("http://127.0.0.1:1/x", evil);
  } catch (const ValueError&) {
    bad_header = true;
  }
  try {
    co_await c.get("http://127.0.0.1:1/x");
  } catch (const ConnectionRefusedError&) {
    refused = true;
  }
  CHECK(bad_scheme);
  CHECK(bad_header);
  CHECK(refused);
  CHECK(c.stats().open == 0);
}

Task<void> total_timeout() {
  Fixture f = co_await start();
  http::ClientOptions o;
  o.total_timeout = 200ms;
  http::Client c(o);
  std::string what = co_await expect_error<TimeoutError>(c, f.base + "/stall");
  CHECK(what.find("no complete response within 0.2 s") != std::string::npos);
  CHECK((co_await c.get(f.base + "/ok")).body == "hello");
  f.server.close();
}

// A crawler visits many origins once: their records and idle connections
// must not pile up.
Task<void> pool_forgets_origins() {
  http::ClientOptions o;
  // Long enough that three requests in a row (a slow sanitizer build on a
  // busy machine) finish while the first connection is still idle.
  o.idle_timeout = 500ms;
  http::Client c(o);
  std::vector<Fixture> servers;
  for (int i = 0; i < 3; ++i) servers.push_back(co_await start());
  for (auto& f : servers) CHECK((co_await c.get(f.base + "/ok")).body == "hello");
  CHECK(c.stats().origins == 3);
  CHECK(c.stats().idle == 3);
  c.close_idle();
  CHECK(c.stats().origins == 0);
  // Not reusable (Connection: close): the origin's record goes with it.
  CHECK((co_await c.get(servers[0].base + "/close-delimited")).body == "until the end");
  CHECK(c.stats().open == 0);
  CHECK(c.stats().origins == 0);
  // Failed connects and refused origins leave nothing behind.
  bool refused = false;
  try {
    co_await c.get("http://127.0.0.1:1/x");
  } catch (const ConnectionRefusedError&) {
    refused = true;
  }
  CHECK(refused);
  CHECK(c.stats().origins == 0);
  // Idle past idle_timeout: the next request anywhere sweeps them.
  for (auto& f : servers) CHECK((co_await c.get(f.base + "/ok")).body == "hello");
  CHECK(c.stats().idle == 3);
  co_await sleep(600ms);
  CHECK((co_await c.get(servers[1].base + "/ok")).body == "hello");
  CHECK(c.stats().origins == 1);
  CHECK(c.stats().open == 1);
  CHECK(c.stats().idle == 1);
  // A request cancelled while it waits for its origin's slot leaves the
  // record to the request that holds it, and then nothing.
  http::ClientOptions one;
  one.max_connections_per_host = 1;
  http::Client c1(one);
  auto slow = create_task(c1.get(servers[2].base + "/slow"));
  auto waiting = create_task(c1.get(servers[2].base + "/ok"));
  co_await sleep(5ms);
  waiting.cancel();
  bool cancelled = false;
  try {
    co_await waiting;
  } catch (const CancelledError&) {
    cancelled = true;
  }
  CHECK(cancelled);
  CHECK(c1.stats().origins == 1);
  CHECK((co_await slow).body == "slow");
  c1.close_idle();
  CHECK(c1.stats().origins == 0);
  for (auto& f : servers) f.server.close();
}

}  // namespace

// The crawler's --user-agent once put "Evil: 1" into every request.
TEST_CASE("a User-Agent option that would add header lines is refused when the client is made") {
  for (const char* ua : {"x\r\nEvil: 1", "x\nEvil: 1", "x\rEvil: 1"}) {
    CAPTURE(ua);
    http::ClientOptions o;
    o.user_agent = ua;
    CHECK_THROWS_WITH_AS(http::Client{o}, "invalid character (CR, LF or NUL) in the value of header 'User-Agent'",
                         ValueError);
  }
  http::ClientOptions nul;
  nul.user_agent = std::string("x\0y", 3);
  CHECK_THROWS_AS(http::Client{nul}, ValueError);
  http::ClientOptions ok;
  ok.user_agent = "crawler/1.0 (+https://example.com/bot)";
  CHECK_NOTHROW(http::Client{ok});
}

TEST_CASE("the client reads every framing: length, chunked, gzip, interim, HEAD, close-delimited") {
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, framings()); });
}

TEST_CASE("the pool reuses keep-alive connections and never exceeds its per-host limit") {
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, keep_alive_reuse()); });
}

TEST_CASE("a pooled connection the server closed is replaced transparently") {
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, stale_connection_retried()); });
}

TEST_CASE("redirects are followed, capped, and change method and credentials as they should") {
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, redirects()); });
}

TEST_CASE("servers that lie get errors or bounded reads, never hangs") {
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, lying_servers()); });
}

TEST_CASE("a streamed body is read in bounded pieces") {
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, streaming_is_bounded()); });
}

TEST_CASE("a gzip bomb is refused at max_body_size in bounded memory and streams in bounded pieces") {
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, gzip_bomb_is_refused_in_bounded_memory()); });
}

TEST_CASE("gzip bodies decode exactly, whole and streamed in bounded pieces, over any framing") {
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, gzip_bodies_round_trip_in_pieces()); });
}

TEST_CASE("bad URLs, bad headers and refused connections are clear errors") {
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, bad_requests()); });
}

TEST_CASE("total_timeout bounds a whole request") {
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, total_timeout()); });
}

TEST_CASE("the pool forgets origins nobody uses and closes connections idle past idle_timeout") {
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, pool_forgets_origins()); });
}

TEST_CASE("transfer codings under chunked are decoded within max_body_size, and unknown ones named in an error") {
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, transfer_codings_are_decoded()); });
}

TEST_CASE("a 101 Switching Protocols connection never returns to the pool") {
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, switching_protocols_is_not_pooled()); });
}

// ---- a canned server: the i-th request (over all its connections) gets responses[i] ----

namespace {

struct Canned {
  std::vector<std::string> responses;  // the last one answers every later request
  bool close_after = true;             // close each connection after its answer
  std::chrono::milliseconds delay{0};  // before answering
  int requests = 0;
  std::vector<std::string> heads;  // the request heads received
};
Canned g_canned;

Task<void> canned(StreamReader& r, StreamWriter& w) {
  for (;;) {
    std::string head;
    try {
      head = co_await r.readuntil("\r\n\r\n");
    } catch (const std::exception&) {
      break;  // the client left
    }
    g_canned.heads.push_back(head);
    const auto i = static_cast<std::size_t>(g_canned.requests++);
    if (g_canned.delay.count() > 0) co_await sleep(g_canned.delay);
    bool gone = false;
    try {
      w.write(g_canned.responses[std::min(i, g_canned.responses.size() - 1)]);
      co_await w.drain();
    } catch (const std::exception&) {
      gone = true;
    }
    if (gone || g_canned.close_after) break;
  }
}

Task<Fixture> start_canned(std::vector<std::string> responses, bool close_after) {
  g_canned = Canned{};
  g_canned.responses = std::move(responses);
  g_canned.close_after = close_after;
  Fixture f;
  f.server = co_await start_server(canned, "127.0.0.1", 0);
  f.base = "http://127.0.0.1:" + std::to_string(f.server.port());
  co_return f;
}

// "ok:<status>:<body>", or the error's message (HttpError, DecodeError, BodyTooLarge).
Task<std::string> outcome(http::Client& c, std::string method, std::string url) {
  try {
    auto r = co_await c.request(method, url);
    co_return "ok:" + std::to_string(r.status) + ":" + r.body;
  } catch (const http::HttpError& e) {
    co_return std::string("error: ") + e.what();
  } catch (const http::DecodeError& e) {
    co_return std::string("error: ") + e.what();
  } catch (const http::BodyTooLarge& e) {
    co_return std::string("error: ") + e.what();
  }
}

Task<void> stale_pool_is_skipped() {
  // Both answers are delayed, so the two requests take two connections;
  // the server closes each after its answer, as a server whose keep-alive
  // timeout passed while they sat in the pool.
  std::vector<std::string> answers{ok("hi")};
  Fixture f = co_await start_canned(std::move(answers), true);
  g_canned.delay = 50ms;
  http::Client c;
  std::vector<Task<http::ClientResponse>> two;
  two.push_back(c.get(f.base + "/a"));
  two.push_back(c.get(f.base + "/b"));
  auto rs = co_await gather(std::move(two));
  CHECK(rs[1].body == "hi");
  CHECK(c.stats().idle == 2);
  g_canned.delay = 0ms;
  co_await sleep(100ms);  // both closed by now
  // The first pooled connection is stale: the retry takes a new one, not the other stale one.
  CHECK(co_await outcome(c, "GET", f.base + "/c") == "ok:200:hi");
  f.server.close();
}

Task<void> declared_length_without_body() {
  // (A named vector: GCC 12 rejects a braced list of literals inside co_await.)
  std::vector<std::string> answers{"HTTP/1.1 200 OK\r\nContent-Length: 5000000\r\n\r\n",
                                   "HTTP/1.1 304 Not Modified\r\nContent-Length: 5000000\r\nETag: \"x\"\r\n\r\n",
                                   "HTTP/1.1 200 OK\r\nContent-Length: ,5\r\n\r\nhello",
                                   "HTTP/1.1 200 OK\r\nContent-Length: 5000000\r\n\r\n"};
  Fixture f = co_await start_canned(std::move(answers), false);
  http::ClientOptions o;
  o.max_body_size = 1 << 20;
  http::Client c(o);
  // The framing of a HEAD answer and a 304 is "no body", whatever Content-Length says.
  CHECK(co_await outcome(c, "HEAD", f.base + "/big.iso") == "ok:200:");
  CHECK(co_await outcome(c, "GET", f.base + "/big.iso") == "ok:304:");
  // A list the parser accepts (an empty element is skipped) is not a std::invalid_argument.
  CHECK(co_await outcome(c, "GET", f.base + "/list") == "ok:200:hello");
  // A GET whose length is over the cap still fails before reading it.
  const std::string big = co_await outcome(c, "GET", f.base + "/big.iso");
  CHECK(big.find("(5000000 bytes) exceeds the limit of 1048576 bytes") != std::string::npos);
  f.server.close();
}

Task<void> failed_stream_stays_failed() {
  // The head and 5 of 100 bytes, then silence.
  std::vector<std::string> answers{"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhello"};
  Fixture f = co_await start_canned(std::move(answers), false);
  http::ClientOptions o;
  o.read_timeout = 200ms;
  http::Client c(o);
  auto r = co_await c.stream("GET", f.base + "/x");
  CHECK(co_await r.read_chunk() == "hello");
  for (int k = 0; k < 2; ++k) {  // the error again, never "" (the end of a complete body)
    bool timed_out = false;
    try {
      (void)co_await r.read_chunk();
    } catch (const http::ReadTimeout&) {
      timed_out = true;
    }
    CHECK(timed_out);
    CHECK_FALSE(r.body_done());
  }
  // A read cancelled (here by wait_for) cuts the body off: later reads say so.
  auto r2 = co_await c.stream("GET", f.base + "/y");
  CHECK(co_await r2.read_chunk() == "hello");
  bool cancelled = false;
  try {
    (void)co_await wait_for(r2.read_chunk(), 50ms);
  } catch (const TimeoutError&) {
    cancelled = true;
  }
  CHECK(cancelled);
  bool cut = false;
  try {
    (void)co_await r2.read_chunk();
  } catch (const http::IncompleteBody& e) {
    cut = std::string(e.what()).find("was cancelled") != std::string::npos;
  }
  CHECK(cut);
  f.server.close();
}

Task<void> garbage_after_gzip(StreamReader& r, StreamWriter& w) {
  (void)co_await r.readuntil("\r\n\r\n");
  w.write("HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nConnection: close\r\n\r\n" + gzip("hi"));
  const std::string junk(1 << 20, 'J');
  try {
    for (int mb = 0; mb < 16; ++mb) {
      w.write(junk);
      co_await w.drain();
    }
  } catch (const std::exception&) {
    // the client gave up, as it should
  }
}

Task<void> interim_flood(StreamReader& r, StreamWriter& w) {
  (void)co_await r.readuntil("\r\n\r\n");
  std::string many;
  for (int i = 0; i < 20000; ++i) many += "HTTP/1.1 100 Continue\r\n\r\n";
  try {
    for (int k = 0; k < 4; ++k) {
      w.write(many);
      co_await w.drain();
    }
    w.write(ok("hi"));
    co_await w.drain();
  } catch (const std::exception&) {
  }
}

Task<void> endless_responses_are_bounded() {
  http::ClientOptions o;
  o.max_body_size = 1 << 20;
  o.max_header_bytes = 8 << 10;
  http::Client c(o);
  // 16 MiB after the end of a gzip stream, against a 1 MiB cap.
  Server g = co_await start_server(garbage_after_gzip, "127.0.0.1", 0);
  std::string res = co_await outcome(c, "GET", "http://127.0.0.1:" + std::to_string(g.port()) + "/x");
  CHECK(res.find("after the end of the stream") != std::string::npos);
  g.close();
  // 2 MB of 100 Continue heads against an 8 KiB head limit.
  Server i = co_await start_server(interim_flood, "127.0.0.1", 0);
  res = co_await outcome(c, "GET", "http://127.0.0.1:" + std::to_string(i.port()) + "/x");
  CHECK(res.find("bytes of 1xx interim responses from") != std::string::npos);
  i.close();
  // A status line longer than the limit, arriving with its LF in one read.
  std::vector<std::string> answers{"HTTP/1.1 200 " + std::string(100000, 'a') + "\r\nContent-Length: 0\r\n\r\n"};
  Fixture f = co_await start_canned(std::move(answers), true);
  res = co_await outcome(c, "GET", f.base + "/x");
  CHECK(res.find("status line longer than the limit") != std::string::npos);
  f.server.close();
}

Task<void> credentials_in_the_url() {
  std::vector<std::string> answers{ok("hi")};
  Fixture f = co_await start_canned(std::move(answers), true);
  const std::string port = std::to_string(f.server.port());
  http::Client c;
  auto r = co_await c.get("http://user:s3cr%65t@127.0.0.1:" + port + "/x");
  CHECK(r.status == 200);
  // base64("user:s3cret"); the password is in no URL the caller gets back.
  CHECK(field(g_canned.heads.back(), "Authorization") == "Basic dXNlcjpzM2NyZXQ=");
  CHECK(r.url.str() == "http://127.0.0.1:" + port + "/x");
  // An Authorization field of the caller's own wins.
  http::HeaderList h;
  h.emplace_back("Authorization", "Bearer t");
  (void)co_await c.get("http://user:pw@127.0.0.1:" + port + "/y", h);
  CHECK(field(g_canned.heads.back(), "Authorization") == "Bearer t");
  f.server.close();
}

}  // namespace

TEST_CASE("credentials in a URL are sent as Basic authorization and kept out of the response's URL") {
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, credentials_in_the_url()); });
}

TEST_CASE("a GET finding every pooled connection closed by the server is retried on a new one") {
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, stale_pool_is_skipped()); });
}

TEST_CASE("HEAD and 304 answers declaring a length over max_body_size have no body to refuse") {
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, declared_length_without_body()); });
}

TEST_CASE("a streamed body that failed keeps failing; read_chunk never reports a clean end") {
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, failed_stream_stays_failed()); });
}

TEST_CASE("endless bytes after a gzip body, endless 1xx heads and an overlong status line are refused") {
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, endless_responses_are_bounded()); });
}
