#include "net/http/server.hpp"

#include <doctest/doctest.h>

#include <ctime>
#include <string>
#include <vector>

#include "coro/event.hpp"
#include "coro/gather.hpp"
#include "coro/sleep.hpp"
#include "coro/task_handle.hpp"
#include "coro/timeout.hpp"
#include "loop/event_loop.hpp"
#include "net/http/parser.hpp"
#include "net/stream.hpp"
#include "tests/net/net_support.hpp"
#include "tests/support.hpp"

using namespace corio;
using namespace std::chrono_literals;
namespace http = corio::http;

namespace {

// /held: a request that is in its handler until the test says so (the
// graceful-shutdown test holds one in flight). held_entered counts entries.
corio::Event* held_gate = nullptr;
int held_entered = 0;

// The handler every conformance case talks to.
Task<http::Response> test_handler(http::Request& req) {
  if (req.method_id() == http::Method::connect) {  // a handler that says yes to CONNECT
    if (req.target() == "s:443") {
      http::Response r;
      r.stream = [](http::BodyWriter& w) -> Task<void> {
        w.write("streamed");
        co_return;
      };
      co_return r;
    }
    co_return http::Response::text("tunnel");
  }
  std::string_view p = req.path();
  if (p == "/held" && held_gate) {
    ++held_entered;
    co_await held_gate->wait();
    co_return http::Response::text("held");
  }
  if (p == "/ok") co_return http::Response::text("ok");
  if (p == "/echo") co_return http::Response::text(co_await req.body());
  if (p == "/len") {
    std::size_t n = 0;
    for (;;) {
      std::string piece = co_await req.read_body_chunk();
      if (piece.empty()) break;
      n += piece.size();
    }
    co_return http::Response::text(std::to_string(n));
  }
  if (p == "/noread") co_return http::Response::text("ignored your body");
  if (p == "/slow") {
    co_await sleep(30ms);
    co_return http::Response::text("slow");
  }
  if (p == "/target") co_return http::Response::text(std::string(req.target()));
  if (p == "/method") co_return http::Response::text(std::string(req.method()));
  if (p == "/ctype") {  // Content-Type "x/QUERY", body QUERY, 201 when QUERY starts with 'c'
    http::Response r = http::Response::text(std::string(req.query()));
    r.content_type = "x/" + std::string(req.query());
    if (req.query().substr(0, 1) == "c") r.status = 201;
    co_return r;
  }
  if (p == "/rawtype") {  // Content-Type: the query with %XX decoded (control bytes included)
    std::string t;
    std::string_view q = req.query();
    for (std::size_t i = 0; i < q.size(); ++i) {
      if (q[i] == '%' && i + 2 < q.size()) {
        t += static_cast<char>(std::stoi(std::string(q.substr(i + 1, 2)), nullptr, 16));
        i += 2;
      } else {
        t += q[i];
      }
    }
    http::Response r = http::Response::text("typed");
    r.content_type = t;
    co_return r;
  }
  if (p == "/stream") {
    http::Response r;
    r.content_type = "text/plain";
    r.stream = [](http::BodyWriter& w) -> Task<void> {
      w.write("one,");
      co_await w.drain();
      w.write("two,");
      w.write("three");
    };
    co_return r;
  }
  // The handler's own I/O failed (an upstream): a 500, not a dead connection.
  if (p == "/oserror") throw ConnectionRefusedError(ECONNREFUSED, "connect upstream 127.0.0.1:1 (expected by the test)");
  if (p == "/stream-oserror") {
    http::Response r;
    r.content_type = "text/plain";
    r.stream = [](http::BodyWriter& w) -> Task<void> {
      w.write("part1,");
      co_await w.drain();
      throw ConnectionRefusedError(ECONNREFUSED, "upstream (expected by the test)");
    };
    co_return r;
  }
  if (p == "/echo-stream") {  // streams the request body back as it arrives
    http::Response r;
    r.content_type = "text/plain";
    r.stream = [req](http::BodyWriter& w) mutable -> Task<void> {
      for (;;) {
        std::string piece = co_await req.read_body_chunk();
        if (piece.empty()) break;
        w.write(piece);
        co_await w.drain();
      }
    };
    co_return r;
  }
  if (p == "/framed") {  // a handler's own framing fields, chosen by the query
    const std::string q(req.query());
    http::Response r = http::Response::text(q == "head" ? "" : "abc");
    if (q == "same" || q == "wrong" || q == "two" || q == "head") {
      r.set_header("content-length", q == "same" ? "3" : q == "head" ? "1234" : "5");
      if (q == "two") r.set_header("Content-Length", "3");
    }
    if (q == "te") r.set_header("Transfer-Encoding", "chunked");
    if (q == "close") r.set_header("Connection", "close");
    if (q.rfind("stream", 0) == 0) {  // stream-N: 10 bytes declared, N written
      const int n = std::stoi(q.substr(7));
      r.set_header("Content-Length", "10");
      r.stream = [n](http::BodyWriter& w) -> Task<void> {
        for (int i = 0; i < n; ++i) {
          w.write(std::string(1, static_cast<char>('0' + i % 10)));
          co_await w.drain();
        }
      };
    }
    co_return r;
  }
  if (p == "/throw") throw std::runtime_error("handler failure (expected by the test)");
  if (p == "/teapot") throw http::HttpError(418, "teapot");
  if (p == "/status") {  // the status given in the query, as a handler might compute it
    http::Response r = http::Response::text("body");
    r.status = std::stoi(std::string(req.query()));
    co_return r;
  }
  if (p == "/huge") co_return http::Response::text(std::string(32u << 20, 'h'));  // more than any socket buffers
  if (p == "/huge-stream") {
    http::Response r;
    r.stream = [](http::BodyWriter& w) -> Task<void> {
      const std::string piece(1u << 20, 's');
      for (int i = 0; i < 32; ++i) {
        w.write(piece);
        co_await w.drain();
      }
    };
    co_return r;
  }
  if (p == "/nocontent") {
    http::Response r;
    r.status = 204;
    co_return r;
  }
  if (p == "/close") {
    http::Response r = http::Response::text("bye");
    r.close = true;
    co_return r;
  }
  co_return http::Response::error(404);
}

http::ServeOptions test_options(std::uint16_t* port) {
  http::ServeOptions o;
  o.limits.max_target = 256;
  o.limits.max_header_bytes = 1024;
  o.limits.max_headers = 20;
  o.limits.max_body = 1000;
  o.header_timeout = 500ms;
  o.body_timeout = 500ms;
  o.send_timeout = 400ms;
  o.keep_alive_timeout = 3000ms;
  o.on_listening = [port](const SocketAddress& a) { *port = a.port(); };
  return o;
}

struct Reply {
  int status = 0;
  std::string body;
  std::string head;  // raw head text, for header checks
};

struct Exchange {
  std::vector<Reply> replies;
  bool closed = false;  // EOF after the replies
  std::string extra;    // bytes after the replies (with close_wait: up to the close)
};

// Sends raw, reads `want` responses (1xx included), then whether the server
// closes within `close_wait` (only checked when close_wait > 0).
Task<Exchange> exchange(std::uint16_t port, std::string raw, std::size_t want, http::Method m,
                        std::chrono::milliseconds close_wait) {
  auto [reader, writer] = co_await open_connection("127.0.0.1", port);
  writer.write(raw);
  co_await writer.drain();
  Exchange ex;
  std::string buf;
  http::ResponseParser parser;
  while (ex.replies.size() < want) {
    http::ParseResult r = parser.parse(buf, m);
    if (r == http::ParseResult::error) FAIL("bad response: " << parser.error_message() << "\n" << buf);
    if (r == http::ParseResult::incomplete) {
      std::string more = co_await wait_for(reader.read(65536), 5s);
      if (more.empty()) {
        ex.closed = true;
        co_return ex;
      }
      buf += more;
      continue;
    }
    Reply rep;
    rep.status = parser.head().status;
    rep.head = buf.substr(0, parser.head().head_size);
    http::BodyDecoder body;
    body.start(parser.head().body_kind, parser.head().content_length);
    buf.erase(0, parser.head().head_size);
    for (;;) {
      while (!buf.empty() && !body.done()) {
        std::string_view data;
        std::size_t used = body.decode(buf, data);
        REQUIRE_FALSE(body.failed());
        rep.body.append(data);
        buf.erase(0, used);
      }
      if (body.done()) break;
      std::string more = co_await wait_for(reader.read(65536), 5s);
      if (more.empty()) {
        body.finish_eof();
        ex.closed = true;
        break;
      }
      buf += more;
    }
    ex.replies.push_back(std::move(rep));
    parser.reset();
    if (ex.closed) co_return ex;
  }
  ex.extra = buf;
  if (close_wait.count() > 0) {
    try {
      std::string more = co_await wait_for(reader.read(65536), close_wait);
      ex.extra += more;
      ex.closed = more.empty();
    } catch (const TimeoutError&) {
      ex.closed = false;
    } catch (const ConnectionResetError&) {
      ex.closed = true;
    }
  }
  co_return ex;
}

struct ServerRun {
  TaskHandle<void> task;
  std::uint16_t port = 0;
};

// Starts the test server with test_options(), changed first by `adjust`.
Task<void> start(ServerRun* run, void (*adjust)(http::ServeOptions&) = nullptr) {
  http::ServeOptions o = test_options(&run->port);
  if (adjust) adjust(o);
  run->task = create_task(http::serve(test_handler, "127.0.0.1", 0, std::move(o)), "http server");
  for (int i = 0; i < 500 && run->port == 0; ++i) co_await sleep(2ms);
  REQUIRE(run->port != 0);
}

Task<void> stop(ServerRun* run) {
  EventLoop::current().request_shutdown();
  co_await wait_for(run->task, 5s);
}

// Expected outcome of a raw request: the statuses in order, then whether the
// connection is closed by the server (if not, it must answer one more request).
struct Case {
  std::string name;
  std::string raw;
  std::vector<int> statuses;
  bool closes;
  http::Method method = http::Method::get;
  std::string body = "\x01";  // "\x01": not checked
};

std::vector<Case> cases() {
  const std::string H = "Host: t\r\n";
  std::vector<Case> c = {
      // ---- valid requests, connection kept
      {"simple GET", "GET /ok HTTP/1.1\r\n" + H + "\r\n", {200}, false, http::Method::get, "ok"},
      {"HEAD has no body", "HEAD /ok HTTP/1.1\r\n" + H + "\r\n", {200}, false, http::Method::head, ""},
      {"unknown path", "GET /nothing HTTP/1.1\r\n" + H + "\r\n", {404}, false},
      {"leading empty line", "\r\nGET /ok HTTP/1.1\r\n" + H + "\r\n", {200}, false},
      {"absolute-form", "GET http://t/target?q=1 HTTP/1.1\r\n" + H + "\r\n", {200}, false, http::Method::get,
       "http://t/target?q=1"},
      {"OPTIONS *", "OPTIONS * HTTP/1.1\r\n" + H + "\r\n", {200}, false, http::Method::get, ""},
      {"POST with Content-Length", "POST /echo HTTP/1.1\r\n" + H + "Content-Length: 5\r\n\r\nhello", {200}, false,
       http::Method::get, "hello"},
      {"POST Content-Length list of equal values",
       "POST /echo HTTP/1.1\r\n" + H + "Content-Length: 3, 3\r\n\r\nabc", {200}, false, http::Method::get, "abc"},
      {"POST chunked", "POST /echo HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
       {200}, false, http::Method::get, "abcde"},
      {"chunked with extensions and trailers",
       "POST /echo HTTP/1.1\r\n" + H +
           "Transfer-Encoding: chunked\r\n\r\n3;a=b;c=\"d e\"\r\nabc\r\n0\r\nX-Sum: 1\r\n\r\n",
       {200}, false, http::Method::get, "abc"},
      {"streamed body length", "POST /len HTTP/1.1\r\n" + H + "Content-Length: 10\r\n\r\n0123456789", {200}, false,
       http::Method::get, "10"},
      {"body not read by the handler is skipped",
       "POST /noread HTTP/1.1\r\n" + H + "Content-Length: 4\r\n\r\nabcd", {200}, false},
      {"unread chunked body is skipped",
       "POST /noread HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n", {200}, false},
      {"HTTP/1.0 keep-alive", "GET /ok HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", {200}, false},
      {"HTTP/1.2 is served as 1.1", "GET /ok HTTP/1.2\r\n" + H + "\r\n", {200}, false},
      {"streaming response", "GET /stream HTTP/1.1\r\n" + H + "\r\n", {200}, false, http::Method::get,
       "one,two,three"},
      {"HEAD of a streaming response", "HEAD /stream HTTP/1.1\r\n" + H + "\r\n", {200}, false, http::Method::head,
       ""},
      {"204 has no body", "GET /nocontent HTTP/1.1\r\n" + H + "\r\n", {204}, false},
      {"methods pass through", "DELETE /method HTTP/1.1\r\n" + H + "\r\n", {200}, false, http::Method::get,
       "DELETE"},
      {"PATCH", "PATCH /method HTTP/1.1\r\n" + H + "\r\n", {200}, false, http::Method::get, "PATCH"},
      {"PUT with body", "PUT /echo HTTP/1.1\r\n" + H + "Content-Length: 2\r\n\r\nhi", {200}, false,
       http::Method::get, "hi"},
      {"obs-text in a value", "GET /ok HTTP/1.1\r\n" + H + "X: caf\xc3\xa9\r\n\r\n", {200}, false},
      {"empty Host value", "GET /ok HTTP/1.1\r\nHost:\r\n\r\n", {200}, false},
      {"IPv6 Host", "GET /ok HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", {200}, false},
      {"handler HttpError status", "GET /teapot HTTP/1.1\r\n" + H + "\r\n", {418}, true},
      // ---- pipelining: answered in order
      {"pipelined three", "GET /slow HTTP/1.1\r\n" + H + "\r\nGET /ok HTTP/1.1\r\n" + H +
                              "\r\nGET /target?x HTTP/1.1\r\n" + H + "\r\n",
       {200, 200, 200}, false},
      {"pipelined with bodies", "POST /echo HTTP/1.1\r\n" + H + "Content-Length: 1\r\n\r\naPOST /echo HTTP/1.1\r\n" +
                                    H + "Transfer-Encoding: chunked\r\n\r\n1\r\nb\r\n0\r\n\r\nGET /ok HTTP/1.1\r\n" +
                                    H + "\r\n",
       {200, 200, 200}, false},
      {"pipelined error stops the rest", "GET /ok HTTP/1.1\r\n" + H + "\r\nGET /ok HTTP/9.9\r\n" + H +
                                             "\r\nGET /ok HTTP/1.1\r\n" + H + "\r\n",
       {200, 505}, true},
      {"pipelined close stops the rest", "GET /close HTTP/1.1\r\n" + H + "\r\nGET /ok HTTP/1.1\r\n" + H + "\r\n",
       {200}, true},
      // ---- connection closes after a valid answer
      {"Connection: close", "GET /ok HTTP/1.1\r\n" + H + "Connection: close\r\n\r\n", {200}, true},
      {"HTTP/1.0 without keep-alive", "GET /ok HTTP/1.0\r\n\r\n", {200}, true},
      {"HTTP/1.0 streaming response is close-delimited",
       "GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", {200}, true, http::Method::get, "one,two,three"},
      {"handler exception is 500", "GET /throw HTTP/1.1\r\n" + H + "\r\n", {500}, true},
      {"response asks to close", "GET /close HTTP/1.1\r\n" + H + "\r\n", {200}, true},
      // ---- Expect: 100-continue
      {"100-continue then body", "POST /echo HTTP/1.1\r\n" + H + "Expect: 100-continue\r\nContent-Length: 2\r\n\r\nok",
       {100, 200}, false},
      {"100-continue not read: no 100, close",
       "POST /noread HTTP/1.1\r\n" + H + "Expect: 100-continue\r\nContent-Length: 5\r\n\r\n", {200}, true},
      {"unknown expectation", "POST /echo HTTP/1.1\r\n" + H + "Expect: something\r\n\r\n", {417}, true},
      // ---- body errors seen by the handler
      {"chunked body over the limit", "POST /echo HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n3E9\r\n" +
                                          std::string(1001, 'x') + "\r\n0\r\n\r\n",
       {413}, true},
      {"Content-Length over the limit", "POST /echo HTTP/1.1\r\n" + H + "Content-Length: 1001\r\n\r\n", {413}, true},
      {"malformed chunk size", "POST /echo HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\nzz\r\n", {400}, true},
      {"chunk size overflow", "POST /echo HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n" +
                                  "FFFFFFFFFFFFFFFFF\r\n",
       {400}, true},
      {"chunk data without CRLF", "POST /echo HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n1\r\nabc",
       {400}, true},
      {"bare LF in a chunk size line", "POST /echo HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n1\na\r\n",
       {400}, true},
      {"bad trailer", "POST /echo HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n0\r\nX : y\r\n\r\n", {400},
       true},
      {"stalled body", "POST /echo HTTP/1.1\r\n" + H + "Content-Length: 50\r\n\r\nshort", {408}, true},
  };
  // ---- every parser rejection, each closing the connection
  struct Bad {
    const char* name;
    std::string raw;
    int status;
  };
  const std::vector<Bad> bad = {
      {"invalid method character", "GE(T / HTTP/1.1\r\n" + H + "\r\n", 400},
      {"unknown method", "BREW / HTTP/1.1\r\n" + H + "\r\n", 501},
      {"lower-case method", "get / HTTP/1.1\r\n" + H + "\r\n", 501},
      {"HTTP/0.9 request", "GET /\r\n\r\n", 400},
      {"double space", "GET  / HTTP/1.1\r\n" + H + "\r\n", 400},
      {"trailing space in request line", "GET / HTTP/1.1 \r\n" + H + "\r\n", 400},
      {"control byte in target", "GET /\x01 HTTP/1.1\r\n" + H + "\r\n", 400},
      {"non-ASCII target", "GET /\xc3\xa9 HTTP/1.1\r\n" + H + "\r\n", 400},
      {"relative target", "GET ok HTTP/1.1\r\n" + H + "\r\n", 400},
      {"asterisk with GET", "GET * HTTP/1.1\r\n" + H + "\r\n", 400},
      {"CONNECT without authority", "CONNECT /x HTTP/1.1\r\n" + H + "\r\n", 400},
      {"HTTP/2.0", "GET / HTTP/2.0\r\n" + H + "\r\n", 505},
      {"HTTP/0.9 version", "GET / HTTP/0.9\r\n" + H + "\r\n", 505},
      {"lower-case version", "GET / http/1.1\r\n" + H + "\r\n", 400},
      {"two-digit minor", "GET / HTTP/1.10\r\n" + H + "\r\n", 400},
      {"bare LF after request line", "GET / HTTP/1.1\n" + H + "\r\n", 400},
      {"bare LF between fields", "GET / HTTP/1.1\r\nHost: t\nX: y\r\n\r\n", 400},
      {"bare CR in a value", "GET / HTTP/1.1\r\n" + H + "X: a\rb\r\n\r\n", 400},
      {"bare CR in request line", "GET /\r HTTP/1.1\r\n" + H + "\r\n", 400},
      {"space before colon", "GET / HTTP/1.1\r\n" + H + "X : y\r\n\r\n", 400},
      {"tab before colon", "GET / HTTP/1.1\r\n" + H + "X\t: y\r\n\r\n", 400},
      {"empty field name", "GET / HTTP/1.1\r\n" + H + ": y\r\n\r\n", 400},
      {"field without colon", "GET / HTTP/1.1\r\n" + H + "NoColon\r\n\r\n", 400},
      {"obs-fold", "GET / HTTP/1.1\r\n" + H + "X: a\r\n b\r\n\r\n", 400},
      {"first field folded", "GET / HTTP/1.1\r\n Host: t\r\n\r\n", 400},
      {"control byte in value", "GET / HTTP/1.1\r\n" + H + "X: a\x02\r\n\r\n", 400},
      {"DEL in value", "GET / HTTP/1.1\r\n" + H + "X: a\x7f\r\n\r\n", 400},
      {"NUL in value", std::string("GET / HTTP/1.1\r\nHost: t\r\nX: a\0b\r\n\r\n", 35), 400},
      {"missing Host", "GET / HTTP/1.1\r\n\r\n", 400},
      {"duplicate Host", "GET / HTTP/1.1\r\n" + H + H + "\r\n", 400},
      {"malformed Host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
      {"Host with path", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400},
      {"Host with userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400},
      {"Host with bad port", "GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n", 400},
      {"CL and TE", "POST / HTTP/1.1\r\n" + H + "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      {"TE and CL", "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400},
      {"differing Content-Length", "POST / HTTP/1.1\r\n" + H + "Content-Length: 3\r\nContent-Length: 4\r\n\r\n", 400},
      {"differing Content-Length list", "POST / HTTP/1.1\r\n" + H + "Content-Length: 3, 4\r\n\r\n", 400},
      {"negative Content-Length", "POST / HTTP/1.1\r\n" + H + "Content-Length: -1\r\n\r\n", 400},
      {"signed Content-Length", "POST / HTTP/1.1\r\n" + H + "Content-Length: +1\r\n\r\n", 400},
      {"hex Content-Length", "POST / HTTP/1.1\r\n" + H + "Content-Length: 0x1\r\n\r\n", 400},
      {"overflowing Content-Length", "POST / HTTP/1.1\r\n" + H + "Content-Length: 99999999999999999999\r\n\r\n",
       400},
      {"chunked not last", "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked, gzip\r\n\r\n", 400},
      {"only gzip", "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: gzip\r\n\r\n", 400},
      {"chunked twice", "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked, chunked\r\n\r\n", 400},
      {"chunked in two fields", "POST / HTTP/1.1\r\n" + H +
                                    "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
       400},
      {"unsupported coding before chunked", "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: gzip, chunked\r\n\r\n",
       501},
      {"TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      {"TE look-alike", "POST / HTTP/1.1\r\n" + H + "Transfer-Encoding: xchunked\r\n\r\n", 400},
      {"target too long", "GET /" + std::string(300, 'a') + " HTTP/1.1\r\n" + H + "\r\n", 414},
      {"header section too large", "GET / HTTP/1.1\r\n" + H + "X: " + std::string(1100, 'a') + "\r\n\r\n", 431},
      {"too many fields", [&] {
         std::string r = "GET / HTTP/1.1\r\n" + H;
         for (int i = 0; i < 25; ++i) r += "X" + std::to_string(i) + ": v\r\n";
         return r + "\r\n";
       }(),
       431},
  };
  for (const Bad& b : bad) c.push_back({b.name, b.raw, {b.status}, true});
  // A rejected HEAD request is still answered without content (RFC 9110 §9.3.2):
  // bytes after its head would be read by the client as the next response.
  c.push_back({"HEAD without Host", "HEAD /ok HTTP/1.1\r\n\r\n", {400}, true, http::Method::head, ""});
  c.push_back({"HEAD with a target over the limit", "HEAD /" + std::string(300, 'a') + " HTTP/1.1\r\n" + H + "\r\n",
               {414}, true, http::Method::head, ""});
  c.push_back({"HEAD with a bad byte in its target", "HEAD /\x01 HTTP/1.1\r\n" + H + "\r\n", {400}, true,
               http::Method::head, ""});
  c.push_back({"HEAD with an unknown expectation", "HEAD /ok HTTP/1.1\r\n" + H + "Expect: x\r\n\r\n", {417}, true,
               http::Method::head, ""});
  return c;
}

Task<void> conformance_main() {
  ServerRun run;
  co_await start(&run);
  const std::vector<Case> all = cases();
  CHECK(all.size() >= 80);
  std::size_t n = 0;
  for (const Case& c : all) {
    INFO("case: " << c.name);
    Exchange ex = co_await exchange(run.port, c.raw, c.statuses.size(), c.method, c.closes ? 3000ms : 0ms);
    std::vector<int> got;
    for (const Reply& r : ex.replies) got.push_back(r.status);
    CHECK(got == c.statuses);
    if (c.body != "\x01" && !ex.replies.empty()) CHECK(ex.replies.back().body == c.body);
    if (c.closes) {
      CHECK(ex.closed);
      CHECK(ex.extra == "");  // nothing after the last answer
    } else {
      // Kept alive: the same connection answers one more request.
      CHECK_FALSE(ex.closed);
    }
    ++n;
  }
  CHECK(n == all.size());
  co_await stop(&run);
}

// The seconds since the epoch that a response head's Date names, or -1.
std::time_t date_of(const std::string& head) {
  std::size_t at = head.find("\r\nDate: ");
  if (at == std::string::npos) return -1;
  std::tm t{};
  const char* end = strptime(head.c_str() + at + 8, "%a, %d %b %Y %H:%M:%S GMT", &t);
  if (!end || std::string_view(end, 2) != "\r\n") return -1;
  return timegm(&t);
}

// The Date of cached heads is checked against the wall clock once per
// second (the loop's clock says when), not per response: it must still
// move on with the clock, on a connection that stays open across seconds.
Task<void> date_main() {
  ServerRun run;
  co_await start(&run);
  auto [reader, writer] = co_await open_connection("127.0.0.1", run.port);
  std::time_t last = -1;
  for (int i = 0; i < 3; ++i) {
    if (i > 0) co_await corio::sleep(1100ms);  // the second changes in between
    const std::time_t before = std::time(nullptr);
    writer.write("GET /target HTTP/1.1\r\nHost: t\r\n\r\n");
    std::string head = co_await wait_for(reader.readuntil("\r\n\r\n"), 5s);
    const std::time_t after = std::time(nullptr);
    CHECK(co_await wait_for(reader.readexactly(7), 5s) == "/target");
    const std::time_t d = date_of(head);
    INFO("response " << i << ": " << head);
    // The coarse clock may lag the precise one by a tick.
    CHECK(d >= before - 1);
    CHECK(d <= after);
    CHECK(d > last);
    last = d;
  }
  co_await stop(&run);
}

// Keep-alive check on one connection: several requests one after another.
Task<void> keep_alive_main() {
  ServerRun run;
  co_await start(&run);
  auto [reader, writer] = co_await open_connection("127.0.0.1", run.port);
  for (int i = 0; i < 5; ++i) {
    writer.write("GET /target?i=" + std::to_string(i) + " HTTP/1.1\r\nHost: t\r\n\r\n");
    std::string head = co_await wait_for(reader.readuntil("\r\n\r\n"), 5s);
    CHECK(head.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
    CHECK(head.find("\r\nDate: ") != std::string::npos);
    CHECK(head.find("\r\nServer: corio\r\n") != std::string::npos);
    std::string want = "/target?i=" + std::to_string(i);
    CHECK(head.find("Content-Length: " + std::to_string(want.size()) + "\r\n") != std::string::npos);
    CHECK(co_await wait_for(reader.readexactly(want.size()), 5s) == want);
  }
  // Expect: 100-continue, step by step: the 100 comes before the body is sent.
  writer.write("POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
  CHECK(co_await wait_for(reader.readuntil("\r\n\r\n"), 5s) == "HTTP/1.1 100 Continue\r\n\r\n");
  writer.write("data");
  std::string head = co_await wait_for(reader.readuntil("\r\n\r\n"), 5s);
  CHECK(head.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(co_await wait_for(reader.readexactly(4), 5s) == "data");
  writer.close();
  co_await stop(&run);
}

// Pipelined requests that arrive together are answered in one send: the
// client receives all three responses in its first read.
Task<void> pipelined_batch_main() {
  ServerRun run;
  co_await start(&run);
  auto [reader, writer] = co_await open_connection("127.0.0.1", run.port);
  std::string req = "GET /ok HTTP/1.1\r\nHost: t\r\n\r\n";
  writer.write(req + req + req);
  std::string got;
  while (got.size() < 3 * 100) {
    std::string more = co_await wait_for(reader.read(65536), 5s);
    if (more.empty()) break;
    got += more;
    std::size_t count = 0;
    for (std::size_t p = 0; (p = got.find("HTTP/1.1 200", p)) != std::string::npos; ++p) ++count;
    if (count == 3) break;
  }
  std::size_t count = 0;
  for (std::size_t p = 0; (p = got.find("HTTP/1.1 200", p)) != std::string::npos; ++p) ++count;
  CHECK(count == 3);
  writer.close();
  co_await stop(&run);
}

// The server builds response heads from a small cache keyed by status and
// Content-Type: more distinct pairs than it holds, pipelined and repeated,
// each answered with its own status, type and length, and Connection: close
// only on the last.
Task<void> head_cache_main() {
  ServerRun run;
  co_await start(&run);
  const std::vector<std::string> qs = {"a", "bb", "c1", "d", "eee", "a", "c22", "f", "bb", "g", "a"};
  std::string raw;
  for (std::size_t i = 0; i < qs.size(); ++i) {
    raw += "GET /ctype?" + qs[i] + " HTTP/1.1\r\nHost: t\r\n";
    if (i + 1 == qs.size()) raw += "Connection: close\r\n";
    raw += "\r\n";
  }
  Exchange ex = co_await exchange(run.port, raw, qs.size(), http::Method::get, 2s);
  REQUIRE(ex.replies.size() == qs.size());
  for (std::size_t i = 0; i < qs.size(); ++i) {
    const Reply& r = ex.replies[i];
    CAPTURE(i);
    CHECK(r.status == (qs[i][0] == 'c' ? 201 : 200));
    CHECK(r.body == qs[i]);
    CHECK(r.head.find("\r\nContent-Type: x/" + qs[i] + "\r\n") != std::string::npos);
    CHECK(r.head.find("\r\nContent-Length: " + std::to_string(qs[i].size()) + "\r\n") != std::string::npos);
    CHECK(r.head.find("\r\nDate: ") != std::string::npos);
    CHECK((r.head.find("\r\nConnection: close\r\n") != std::string::npos) == (i + 1 == qs.size()));
  }
  CHECK(ex.closed);
  co_await stop(&run);
}

// A Content-Type with a control byte (but HTAB) would split the response:
// 500 instead, wherever the byte sits (the check reads eight bytes at a time).
Task<void> bad_content_type_main() {
  ServerRun run;
  co_await start(&run);
  const std::string base = "text/plain;a=b;c=d";  // 18 bytes: two words and a tail
  for (std::size_t at = 0; at <= base.size(); ++at) {
    for (const char* bad : {"%0a", "%0d", "%00", "%7f", "%1f", "%09"}) {
      std::string q = base.substr(0, at) + bad + base.substr(at);
      CAPTURE(q);
      Exchange ex = co_await exchange(run.port, "GET /rawtype?" + q + " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                                      1, http::Method::get, 0ms);
      REQUIRE(ex.replies.size() == 1);
      const bool tab = std::string_view(bad) == "%09";
      CHECK(ex.replies[0].status == (tab ? 200 : 500));
      if (tab) CHECK(ex.replies[0].body == "typed");
    }
  }
  co_await stop(&run);
}

// A handler's status that is not a final one (a 1xx, or outside 100-599)
// becomes a framed 500 and the connection closes, instead of a "500" line
// without a length or a bare 101 that leave the client waiting for the
// close; 200-599 pass as given.
Task<void> bad_status_main() {
  ServerRun run;
  co_await start(&run);
  for (int st : {0, 99, 100, 101, 199, 600, 1000, -1}) {
    CAPTURE(st);
    Exchange ex = co_await exchange(run.port, "GET /status?" + std::to_string(st) + " HTTP/1.1\r\nHost: t\r\n\r\n", 1,
                                    http::Method::get, 2000ms);
    REQUIRE(ex.replies.size() == 1);
    CHECK(ex.replies[0].status == 500);
    CHECK(ex.closed);
  }
  for (int st : {200, 299, 404, 599}) {
    CAPTURE(st);
    Exchange ex = co_await exchange(run.port, "GET /status?" + std::to_string(st) + " HTTP/1.1\r\nHost: t\r\n\r\n", 1,
                                    http::Method::get, 0ms);
    REQUIRE(ex.replies.size() == 1);
    CHECK(ex.replies[0].status == st);
    CHECK(ex.replies[0].body == "body");
  }
  co_await stop(&run);
}

// A client that stops reading its response is disconnected send_timeout
// after it last took a byte, whether the response is in memory or streamed,
// while another client is served; one that reads gets the whole response.
Task<void> send_timeout_main() {
  ServerRun run;
  co_await start(&run);
  for (const char* path : {"/huge", "/huge-stream"}) {
    CAPTURE(path);
    auto [reader, writer] = co_await open_connection("127.0.0.1", run.port);
    writer.write(std::string("GET ") + path + " HTTP/1.1\r\nHost: t\r\n\r\n");
    co_await writer.drain();
    co_await sleep(1500ms);  // reads nothing: the socket buffers fill and the server waits
    // Meanwhile another client is answered.
    Exchange other = co_await exchange(run.port, "GET /ok HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 1,
                                       http::Method::get, 0ms);
    REQUIRE(other.replies.size() == 1);
    CHECK(other.replies[0].status == 200);
    // What the kernel buffered still arrives, then the connection ends
    // (EOF or reset) well short of the 32 MiB.
    std::size_t got = 0;
    bool ended = false;
    try {
      for (;;) {
        std::string piece = co_await wait_for(reader.read(1 << 20), 3s);
        if (piece.empty()) break;
        got += piece.size();
      }
      ended = true;
    } catch (const ConnectionResetError&) {
      ended = true;
    } catch (const TimeoutError&) {
    }
    CHECK(ended);
    CHECK(got < (32u << 20));
  }
  // A client that reads gets all of it.
  auto [reader, writer] = co_await open_connection("127.0.0.1", run.port);
  writer.write("GET /huge HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  co_await writer.drain();
  std::size_t got = 0;
  for (;;) {
    std::string piece = co_await wait_for(reader.read(1 << 20), 5s);
    if (piece.empty()) break;
    got += piece.size();
  }
  CHECK(got > (32u << 20));  // the head and the whole body
  co_await stop(&run);
}

// Sixteen pipelined requests cut at awkward places (mid request line, mid
// CRLF CRLF) and sent in pieces: the receive buffer grows and moves between
// the pieces, and every request is still answered, in order, with its own target.
Task<void> pipelined_cuts_main() {
  ServerRun run;
  co_await start(&run);
  std::string blob;
  for (int i = 0; i < 16; ++i) blob += "GET /target?n=" + std::to_string(i) + " HTTP/1.1\r\nHost: t\r\n\r\n";
  const std::size_t n = blob.size() / 16;
  const std::size_t cuts[] = {0, 7, 60, n * 3 - 2, n * 3 + 1, n * 9 + 5, blob.size()};
  auto [reader, writer] = co_await open_connection("127.0.0.1", run.port);
  for (std::size_t i = 0; i + 1 < std::size(cuts); ++i) {
    writer.write(blob.substr(cuts[i], cuts[i + 1] - cuts[i]));
    co_await writer.drain();
    co_await sleep(10ms);
  }
  for (int i = 0; i < 16; ++i) {
    std::string head = co_await wait_for(reader.readuntil("\r\n\r\n"), 5s);
    CHECK(head.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
    std::string want = "/target?n=" + std::to_string(i);
    CHECK(co_await wait_for(reader.readexactly(want.size()), 5s) == want);
  }
  writer.close();
  co_await stop(&run);
}

// A client that trickles its head one byte at a time gets 408 once the
// header timeout (500 ms here) passes, however steadily it sends; meanwhile
// other clients are served normally.
Task<void> slowloris_client(std::uint16_t port, int* status, bool* closed) {
  auto [reader, writer] = co_await open_connection("127.0.0.1", port);
  std::string head = "GET /ok HTTP/1.1\r\nHost: t\r\nX-Slow: " + std::string(100, 'z') + "\r\n\r\n";
  for (char ch : head) {
    if (writer.is_closing()) break;
    writer.write(std::string(1, ch));
    try {
      co_await writer.drain();
    } catch (const OSError&) {
      break;
    }
    if (reader.buffered() > 0) break;
    co_await sleep(40ms);
    if (reader.at_eof()) break;
  }
  std::string all;
  for (;;) {
    std::string more;
    try {
      more = co_await wait_for(reader.read(65536), 5s);
    } catch (const ConnectionResetError&) {
    }
    if (more.empty()) break;
    all += more;
  }
  *closed = true;
  if (all.rfind("HTTP/1.1 ", 0) == 0) *status = std::stoi(all.substr(9, 3));
}

Task<void> busy_client(std::uint16_t port, int* served) {
  auto [reader, writer] = co_await open_connection("127.0.0.1", port);
  for (int i = 0; i < 20; ++i) {
    writer.write("GET /ok HTTP/1.1\r\nHost: t\r\n\r\n");
    std::string head = co_await wait_for(reader.readuntil("\r\n\r\n"), 5s);
    if (head.rfind("HTTP/1.1 200", 0) == 0) ++*served;
    co_await wait_for(reader.readexactly(2), 5s);
    co_await sleep(30ms);
  }
}

Task<void> slowloris_main() {
  ServerRun run;
  co_await start(&run);
  int status = 0, served = 0;
  bool closed = false;
  auto t0 = Clock::now();
  co_await gather(slowloris_client(run.port, &status, &closed), busy_client(run.port, &served));
  CHECK(status == 408);
  CHECK(closed);
  CHECK(served == 20);
  CHECK(Clock::now() - t0 < 10s);
  co_await stop(&run);
}

// A body that stalls gets 408 after the body timeout; an idle keep-alive
// connection is closed after keep_alive_timeout, without a response.
Task<void> body_timeout_main() {
  ServerRun run;
  co_await start(&run);
  Exchange ex = co_await exchange(run.port, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc", 1,
                                  http::Method::get, 3000ms);
  REQUIRE(ex.replies.size() == 1);
  CHECK(ex.replies[0].status == 408);
  CHECK(ex.closed);
  co_await stop(&run);
}

Task<void> idle_timeout_main() {
  ServerRun run;
  co_await start(&run, [](http::ServeOptions& o) { o.keep_alive_timeout = 300ms; });
  auto [reader, writer] = co_await open_connection("127.0.0.1", run.port);
  writer.write("GET /ok HTTP/1.1\r\nHost: t\r\n\r\n");
  co_await wait_for(reader.readuntil("\r\n\r\n"), 5s);
  co_await wait_for(reader.readexactly(2), 5s);
  auto t0 = Clock::now();
  std::string more = co_await wait_for(reader.read(100), 5s);
  CHECK(more.empty());  // closed without a word
  CHECK(Clock::now() - t0 >= 250ms);
  co_await stop(&run);
}

// Graceful shutdown: idle connections are closed (one kept alive after a
// request, and one that never spoke, accepted at once with defer_accept off),
// a request in flight is answered (with Connection: close), and serve()
// returns.
Task<void> shutdown_main() {
  ServerRun run;
  co_await start(&run, [](http::ServeOptions& o) { o.defer_accept = 0s; });
  auto [idle_r, idle_w] = co_await open_connection("127.0.0.1", run.port);
  auto [kept_r, kept_w] = co_await open_connection("127.0.0.1", run.port);
  kept_w.write("GET /ok HTTP/1.1\r\nHost: t\r\n\r\n");
  co_await wait_for(kept_r.readuntil("\r\n\r\n"), 5s);
  co_await wait_for(kept_r.readexactly(2), 5s);
  // A request in its handler when the shutdown begins: it stays there until
  // the server stopped listening, so the shutdown must wait for it.
  corio::Event gate;
  held_gate = &gate;
  held_entered = 0;
  auto [r, w] = co_await open_connection("127.0.0.1", run.port);
  w.write("GET /held HTTP/1.1\r\nHost: t\r\n\r\n");
  for (int i = 0; i < 5000 && held_entered == 0; ++i) co_await sleep(1ms);
  REQUIRE(held_entered == 1);
  EventLoop::current().request_shutdown();
  for (int i = 0; i < 5000; ++i) {
    try {
      auto c = co_await open_connection("127.0.0.1", run.port);
      c.writer.close();
    } catch (const ConnectionRefusedError&) {
      break;
    }
    co_await sleep(1ms);
  }
  gate.set();
  std::string head = co_await wait_for(r.readuntil("\r\n\r\n"), 5s);
  CHECK(head.rfind("HTTP/1.1 200", 0) == 0);
  CHECK(head.find("Connection: close\r\n") != std::string::npos);
  CHECK(co_await wait_for(idle_r.read(10), 5s) == "");
  CHECK(co_await wait_for(kept_r.read(10), 5s) == "");
  co_await wait_for(run.task, 5s);
  CHECK(run.task.done());
  // Nobody listens any more.
  bool refused = false;
  try {
    co_await open_connection("127.0.0.1", run.port);
  } catch (const ConnectionRefusedError&) {
    refused = true;
  }
  CHECK(refused);
  held_gate = nullptr;
}

// True when no response head arrives on r within d: its request waits.
Task<bool> no_head_within(StreamReader& r, std::chrono::milliseconds d) {
  try {
    co_await wait_for(r.readuntil("\r\n\r\n"), d);
  } catch (const TimeoutError&) {
    co_return true;
  }
  co_return false;
}

// max_connections: the third client waits until one of the first two leaves
// (silent ones: defer_accept is off, so they are accepted at once).
Task<void> max_connections_main() {
  ServerRun run;
  co_await start(&run, [](http::ServeOptions& o) {
    o.max_connections = 2;
    o.defer_accept = 0s;
  });
  auto [r1, w1] = co_await open_connection("127.0.0.1", run.port);
  auto [r2, w2] = co_await open_connection("127.0.0.1", run.port);
  auto [r3, w3] = co_await open_connection("127.0.0.1", run.port);  // queued by the kernel
  w3.write("GET /ok HTTP/1.1\r\nHost: t\r\n\r\n");
  CHECK(co_await no_head_within(r3, 300ms));
  w1.close();
  std::string head = co_await wait_for(r3.readuntil("\r\n\r\n"), 5s);
  CHECK(head.rfind("HTTP/1.1 200", 0) == 0);
  co_await stop(&run);
}

// defer_accept (on by default): a client that connects and says nothing is
// not handed to the server yet, so with max_connections = 1 it holds no slot
// and a client that sends a request is answered at once. Handed over after
// about a second, the silent one then waits for the slot like any other
// connection and is answered once the first one leaves.
Task<void> defer_accept_main() {
  ServerRun run;
  CHECK(http::ServeOptions{}.defer_accept == 1s);  // the default, which this test keeps
  co_await start(&run, [](http::ServeOptions& o) { o.max_connections = 1; });
  auto [silent_r, silent_w] = co_await open_connection("127.0.0.1", run.port);
  auto [r, w] = co_await open_connection("127.0.0.1", run.port);
  w.write("GET /ok HTTP/1.1\r\nHost: t\r\n\r\n");
  // Well before the kernel hands the silent connection over (about 1 s).
  std::string head = co_await wait_for(r.readuntil("\r\n\r\n"), 700ms);
  CHECK(head.rfind("HTTP/1.1 200", 0) == 0);
  CHECK(co_await wait_for(r.readexactly(2), 5s) == "ok");
  co_await sleep(1500ms);  // the silent connection is handed over and waits for the slot
  silent_w.write("GET /ok HTTP/1.1\r\nHost: t\r\n\r\n");
  CHECK(co_await no_head_within(silent_r, 300ms));  // the slot is still taken
  w.close();
  head = co_await wait_for(silent_r.readuntil("\r\n\r\n"), 5s);
  CHECK(head.rfind("HTTP/1.1 200", 0) == 0);
  co_await stop(&run);
}

// workers = 2: two loops on two threads share the port and both answer.
Task<void> workers_main() {
  std::uint16_t port = 0;
  http::ServeOptions o = test_options(&port);
  o.workers = 2;
  TaskHandle<void> server = create_task(http::serve(test_handler, "127.0.0.1", 0, o), "http server");
  for (int i = 0; i < 500 && port == 0; ++i) co_await sleep(2ms);
  REQUIRE(port != 0);
  for (int i = 0; i < 20; ++i) {
    Exchange ex = co_await exchange(port, "GET /ok HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 1,
                                    http::Method::get, 3000ms);
    REQUIRE(ex.replies.size() == 1);
    CHECK(ex.replies[0].status == 200);
  }
  EventLoop::current().request_shutdown();
  co_await wait_for(server, 10s);
}

}  // namespace

TEST_CASE("the server answers every conformance case with the exact status and connection outcome") {
  test::on_each_backend([](EventLoop& loop) {
    loop.set_exception_handler([](std::exception_ptr, std::string_view) {});  // /throw reports here
    test::run_bounded(loop, conformance_main(), std::chrono::seconds(240));
  });
}

TEST_CASE("a keep-alive connection serves requests in turn and answers Expect: 100-continue") {
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, keep_alive_main()); });
}

TEST_CASE("the Date of cached response heads follows the wall clock across seconds") {
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, date_main()); });
}

TEST_CASE("pipelined requests that arrive together are answered together") {
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, pipelined_batch_main()); });
}

TEST_CASE("cached response heads carry each response's own status, type and length") {
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, head_cache_main()); });
}

TEST_CASE("a response Content-Type with a control byte becomes 500, a tab is kept") {
  test::on_each_backend([](EventLoop& loop) {
    loop.set_exception_handler([](std::exception_ptr, std::string_view) {});  // the 500s report here
    test::run_bounded(loop, bad_content_type_main());
  });
}

TEST_CASE("a handler's status outside 200-599 becomes a framed 500 and closes the connection") {
  test::on_each_backend([](EventLoop& loop) {
    loop.set_exception_handler([](std::exception_ptr, std::string_view) {});  // the 500s report here
    test::run_bounded(loop, bad_status_main());
  });
}

TEST_CASE("a client that stops reading its response is disconnected after the send timeout") {
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, send_timeout_main()); });
}

TEST_CASE("pipelined requests cut at awkward places are all answered in order") {
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, pipelined_cuts_main()); });
}

TEST_CASE("slowloris headers get 408 after the header timeout while others are served") {
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, slowloris_main()); });
}

TEST_CASE("a stalled body gets 408 after the body timeout") {
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, body_timeout_main()); });
}

TEST_CASE("an idle keep-alive connection is closed after the keep-alive timeout") {
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, idle_timeout_main()); });
}

TEST_CASE("shutdown closes idle connections, finishes requests in flight and stops listening") {
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, shutdown_main()); });
}

TEST_CASE("accepting pauses at max_connections and resumes when a connection ends") {
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, max_connections_main()); });
}

TEST_CASE("defer_accept: a client that says nothing holds no connection slot until the kernel hands it over") {
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, defer_accept_main()); });
}

TEST_CASE("workers run several loops on one port") {
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, workers_main()); });
}

// ---- handler failures, 100-continue after the final head, unread bodies ----------------

namespace {

// Sends raw bytes, then reads until EOF, a reset, or `quiet` without a byte.
struct RawReply {
  std::string bytes;
  bool closed = false;  // FIN or reset
};
Task<RawReply> raw_talk(std::uint16_t port, std::string raw, std::chrono::milliseconds quiet = 700ms) {
  auto [reader, writer] = co_await open_connection("127.0.0.1", port);
  writer.write(raw);
  co_await writer.drain();
  RawReply r;
  for (;;) {
    try {
      std::string more = co_await wait_for(reader.read(65536), quiet);
      if (more.empty()) {
        r.closed = true;
        break;
      }
      r.bytes += more;
    } catch (const TimeoutError&) {
      break;
    } catch (const ConnectionResetError&) {
      r.closed = true;
      break;
    }
  }
  co_return r;
}

// RFC 9110 §9.3.6: a server MUST NOT send Content-Length or Transfer-Encoding
// in a 2xx answer to CONNECT; the connection is a tunnel after its head
// (RFC 9112 §6.3), so it can carry no further request: it closes.
int count_field(const std::string& bytes, std::string_view field);
Task<void> connect_2xx_is_unframed() {
  ServerRun run;
  co_await start(&run);
  for (std::string target : {"t:443", "s:443"}) {
    CAPTURE(target);
    RawReply r = co_await raw_talk(
        run.port, "CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n\r\nGET /ok HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK(r.bytes.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
    CHECK(count_field(r.bytes, "Content-Length: ") == 0);
    CHECK(count_field(r.bytes, "Transfer-Encoding: ") == 0);
    CHECK(r.bytes.find("HTTP/1.1 200", 1) == std::string::npos);  // the next "request" is tunnel data
    CHECK(r.closed);
  }
  // Not 2xx: an ordinary, framed answer on a connection that goes on.
  RawReply r = co_await raw_talk(run.port, "CONNECT t:1 HTTP/1.1\r\nHost: t\r\nExpect: x\r\n\r\n");
  CHECK(r.bytes.rfind("HTTP/1.1 417", 0) == 0);
  CHECK(count_field(r.bytes, "Content-Length: ") == 1);
  co_await stop(&run);
}

Task<void> handler_oserror_is_a_500() {
  ServerRun run;
  co_await start(&run);
  // Alone, and after a pipelined request whose answer was queued but not yet flushed.
  RawReply r = co_await raw_talk(run.port, "GET /oserror HTTP/1.1\r\nHost: t\r\n\r\n");
  CHECK(r.bytes.rfind("HTTP/1.1 500 Internal Server Error\r\n", 0) == 0);
  CHECK(r.bytes.find("Connection: close\r\n") != std::string::npos);
  CHECK(r.closed);
  r = co_await raw_talk(run.port, "GET /ok HTTP/1.1\r\nHost: t\r\n\r\nGET /oserror HTTP/1.1\r\nHost: t\r\n\r\n");
  CHECK(r.bytes.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  const std::size_t first_end = r.bytes.find("\r\n\r\nok");
  REQUIRE(first_end != std::string::npos);
  CHECK(r.bytes.substr(first_end + 6).rfind("HTTP/1.1 500 Internal Server Error\r\n", 0) == 0);
  // A stream's own OSError after its head: the body is cut off, never
  // terminated. (The connection is aborted: bytes not yet sent, the head
  // included when a send was short or deferred, are dropped with it.)
  r = co_await raw_talk(run.port, "GET /stream-oserror HTTP/1.1\r\nHost: t\r\n\r\n");
  if (!r.bytes.empty()) CHECK(r.bytes.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(r.bytes.find("0\r\n\r\n") == std::string::npos);
  CHECK(r.closed);
  co_await stop(&run);
}

Task<void> no_continue_inside_a_body() {
  ServerRun run;
  co_await start(&run);
  RawReply r = co_await raw_talk(
      run.port, "POST /echo-stream HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello");
  CHECK(r.bytes.find("100 Continue") == std::string::npos);
  const std::size_t end = r.bytes.find("\r\n\r\n");
  REQUIRE(end != std::string::npos);
  CHECK(r.bytes.substr(end + 4) == "5\r\nhello\r\n0\r\n\r\n");
  co_await stop(&run);
}

Task<void> answer_before_unread_body() {
  ServerRun run;
  co_await start(&run, [](http::ServeOptions& o) { o.body_timeout = 30s; });
  auto [reader, writer] = co_await open_connection("127.0.0.1", run.port);
  writer.write("POST /noread HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123456789");
  co_await writer.drain();
  // The answer comes while 90 bytes of the body are still missing (the
  // server skips them afterwards), not once body_timeout (30 s) ends it.
  std::string got = co_await wait_for(reader.read(65536), 10s);
  CHECK(got.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(got.find("\r\n\r\nignored your body") != std::string::npos);
  // The rest of the body, then another request on the same connection.
  writer.write(std::string(90, 'x') + "GET /ok HTTP/1.1\r\nHost: t\r\n\r\n");
  co_await writer.drain();
  std::string next = co_await wait_for(reader.read(65536), 10s);
  CHECK(next.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  co_await stop(&run);
}

// How many times `field` starts a line of r's head.
int count_field(const std::string& bytes, std::string_view field) {
  const std::string head = bytes.substr(0, bytes.find("\r\n\r\n") + 2);
  int n = 0;
  for (std::size_t at = head.find(field); at != std::string::npos; at = head.find(field, at + 1))
    n += at >= 2 && head.compare(at - 2, 2, "\r\n") == 0;
  return n;
}

Task<void> handler_framing_fields() {
  ServerRun run;
  co_await start(&run);
  const std::string next = "GET /ok HTTP/1.1\r\nHost: t\r\n\r\n";
  // The body's own length, given by the handler: sent once, and the
  // connection goes on (the next request is answered).
  RawReply r = co_await raw_talk(run.port, "GET /framed?same HTTP/1.1\r\nHost: t\r\n\r\n" + next);
  CHECK(count_field(r.bytes, "Content-Length: ") + count_field(r.bytes, "content-length: ") == 1);
  CHECK(r.bytes.find("\r\n\r\nabcHTTP/1.1 200 OK\r\n") != std::string::npos);
  // A wrong length, two lengths, Transfer-Encoding on a body in memory: 500.
  for (std::string q : {"wrong", "two", "te"}) {
    CAPTURE(q);
    r = co_await raw_talk(run.port, "GET /framed?" + q + " HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK(r.bytes.rfind("HTTP/1.1 500 Internal Server Error\r\n", 0) == 0);
    CHECK(count_field(r.bytes, "Content-Length: ") == 1);
  }
  // HEAD: the length a GET would have, as the handler gave it.
  r = co_await raw_talk(run.port, "HEAD /framed?head HTTP/1.1\r\nHost: t\r\n\r\n");
  CHECK(r.bytes.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(r.bytes.find("\r\nContent-Length: 1234\r\n") != std::string::npos);
  CHECK(count_field(r.bytes, "Content-Length: ") + count_field(r.bytes, "content-length: ") == 1);
  // Connection: close from the handler: one such field, and the connection ends.
  r = co_await raw_talk(run.port, "GET /framed?close HTTP/1.1\r\nHost: t\r\n\r\n" + next);
  CHECK(count_field(r.bytes, "Connection: ") == 1);
  CHECK(r.bytes.find("HTTP/1.1 200", 1) == std::string::npos);  // no answer to the next request
  CHECK(r.bytes.find("\r\n\r\nabc") == r.bytes.size() - 7);
  CHECK(r.closed);
  // A stream under the handler's Content-Length: length-framed, not chunked,
  // and kept alive; too short or too long, it is cut off.
  r = co_await raw_talk(run.port, "GET /framed?stream-10 HTTP/1.1\r\nHost: t\r\n\r\n" + next);
  CHECK(r.bytes.find("Transfer-Encoding") == std::string::npos);
  CHECK(count_field(r.bytes, "Content-Length: ") == 1);
  CHECK(r.bytes.find("\r\n\r\n0123456789HTTP/1.1 200 OK\r\n") != std::string::npos);
  for (std::string q : {"stream-4", "stream-11"}) {
    CAPTURE(q);
    r = co_await raw_talk(run.port, "GET /framed?" + q + " HTTP/1.1\r\nHost: t\r\n\r\n" + next);
    // At most the 10 bytes declared (the 11th write throws), and no more
    // answers on that connection.
    const std::size_t end = r.bytes.find("\r\n\r\n");
    if (end != std::string::npos) CHECK(r.bytes.size() - end - 4 <= (q == "stream-4" ? 4u : 10u));
    CHECK(r.bytes.find("HTTP/1.1 200", 1) == std::string::npos);  // no answer to the next request
    CHECK(r.closed);
  }
  co_await stop(&run);
}

}  // namespace

TEST_CASE("a handler's Content-Length, Transfer-Encoding and Connection fields frame the response once") {
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, handler_framing_fields()); });
}

TEST_CASE("a 2xx answer to CONNECT has no Content-Length or Transfer-Encoding and ends the connection") {
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, connect_2xx_is_unframed()); });
}

TEST_CASE("a handler's OSError (its own I/O) is a 500; answers queued before it still go out") {
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, handler_oserror_is_a_500()); });
}

TEST_CASE("100 Continue is never sent after the final head (a stream reading the request body)") {
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, no_continue_inside_a_body()); });
}

TEST_CASE("the answer to a request whose body the handler did not read leaves before the body ends") {
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, answer_before_unread_body()); });
}
