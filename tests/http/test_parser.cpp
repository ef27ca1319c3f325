#include "net/http/parser.hpp"

#include <doctest/doctest.h>

#include <cctype>
#include <string>
#include <vector>

using namespace corio::http;

namespace {

// Parses a whole request; returns 0 when done, the error status otherwise, -1 if incomplete.
int request_status(std::string_view raw, ParseLimits limits = {}) {
  RequestParser p(limits);
  ParseResult r = p.parse(raw);
  if (r == ParseResult::done) return 0;
  if (r == ParseResult::error) return p.error_status();
  return -1;
}

// Feeds the bytes one at a time, as a slow client would; same result codes.
int request_status_bytewise(std::string_view raw, ParseLimits limits = {}) {
  RequestParser p(limits);
  for (std::size_t n = 1; n <= raw.size(); ++n) {
    ParseResult r = p.parse(raw.substr(0, n));
    if (r == ParseResult::done) return 0;
    if (r == ParseResult::error) return p.error_status();
  }
  return -1;
}

struct Case {
  const char* raw;
  int status;  // 0: valid, -1: incomplete
};

std::string decode_all(ChunkedDecoder& d, std::string_view in, std::size_t step) {
  std::string out;
  std::string_view rest = in;
  std::string pending;  // the decoder consumes what it is given; feed step bytes at a time
  std::size_t fed = 0;
  while (!d.done() && !d.failed() && fed < in.size()) {
    std::string_view piece = in.substr(fed, step);
    fed += piece.size();
    while (!piece.empty() && !d.done() && !d.failed()) {
      std::string_view data;
      std::size_t used = d.decode(piece, data);
      out.append(data);
      piece.remove_prefix(used);
      if (used == 0) break;
    }
  }
  (void)rest;
  return out;
}

}  // namespace

TEST_CASE("a simple GET parses into views of the buffer") {
  std::string raw = "GET /index.html?x=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\n\r\nNEXT";
  RequestParser p;
  REQUIRE(p.parse(raw) == ParseResult::done);
  const RequestHead& h = p.head();
  CHECK(h.method == "GET");
  CHECK(h.method_id == Method::get);
  CHECK(h.target == "/index.html?x=1");
  CHECK(h.path() == "/index.html");
  CHECK(h.query() == "x=1");
  CHECK(h.version_minor == 1);
  CHECK(h.host == "example.com");
  CHECK(h.header("user-agent") == "t");
  CHECK(h.headers.size() == 2);
  CHECK(h.keep_alive);
  CHECK(h.body_kind == BodyKind::none);
  CHECK(h.head_size == raw.size() - 4);
  // Views, not copies.
  CHECK(h.method.data() == raw.data());
  CHECK(h.header("host").data() >= raw.data());
  CHECK(h.header("host").data() < raw.data() + raw.size());
}

TEST_CASE("field values are trimmed of surrounding whitespace but keep inner spaces") {
  RequestParser p;
  REQUIRE(p.parse("GET / HTTP/1.1\r\nHost: a\r\nX-A: \t one  two \t\r\nX-B:\r\n\r\n") == ParseResult::done);
  CHECK(p.head().header("x-a") == "one  two");
  CHECK(p.head().header("x-b") == "");
  CHECK(p.head().has_header("X-B"));
  CHECK_FALSE(p.head().has_header("X-C"));
}

TEST_CASE("valid and invalid request heads map to the right status") {
  const std::vector<Case> cases = {
      // valid
      {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 0},
      {"GET / HTTP/1.0\r\n\r\n", 0},
      {"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 0},
      {"GET http://a.example/x HTTP/1.1\r\nHost: a\r\n\r\n", 0},
      {"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", 0},
      {"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n", 0},
      {"CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n", 0},
      {"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", 0},
      {"GET / HTTP/1.1\r\nHost: 127.0.0.1:80\r\n\r\n", 0},
      {"GET / HTTP/1.1\r\nHost:\r\n\r\n", 0},
      {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n", 0},
      {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", 0},
      {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 0},
      {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", 0},
      {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n", 0},
      {"GET / HTTP/1.2\r\nHost: a\r\n\r\n", 0},
      {"PATCH / HTTP/1.1\r\nHost: a\r\n\r\n", 0},
      {"DELETE / HTTP/1.1\r\nHost: a\r\n\r\n", 0},
      {"GET / HTTP/1.1\r\nHost: a\r\nX: \x80\xff\r\n\r\n", 0},
      {"GET / HTTP/1.1\r\nHost: a\r\nX!#$%&'*+-.^_`|~: v\r\n\r\n", 0},
      // incomplete
      {"GET / HTTP/1.1\r\nHost: a\r\n", -1},
      {"GET / HTTP/1.1\r\n", -1},
      {"GET / HTTP/1.1", -1},
      // method
      {"GE(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {" GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"FOO / HTTP/1.1\r\nHost: a\r\n\r\n", 501},
      {"get / HTTP/1.1\r\nHost: a\r\n\r\n", 501},
      // request line shape
      {"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400},
      {"GET /\r\n\r\n", 400},  // HTTP/0.9
      {"GET\r\n\r\n", 400},
      {"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"GET /\x80 HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"GET /\tx HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"GET a HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"GET 1http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"CONNECT a.example HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      // version
      {"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505},
      {"GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505},
      {"GET / HTTP/3.0\r\nHost: a\r\n\r\n", 505},
      {"GET / http/1.1\r\nHost: a\r\n\r\n", 400},
      {"GET / HTTP/1.10\r\nHost: a\r\n\r\n", 400},
      {"GET / HTTP/1\r\nHost: a\r\n\r\n", 400},
      {"GET / HTTP/a.b\r\nHost: a\r\n\r\n", 400},
      // line endings
      {"GET / HTTP/1.1\nHost: a\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nHost: a\n\r\n", -1},  // never ends with CRLF CRLF: waits (then times out)
      {"GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400},
      {"GET / HT\rTP/1.1\r\nHost: a\r\n\r\n", 400},
      // field syntax
      {"GET / HTTP/1.1\r\nHost: a\r\nX : y\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nHost: a\r\nX\t: y\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nHost: a\r\n: y\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nHost: a\r\nX y: z\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n folded\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n\tfolded\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nHost: a\r\nX: a\x01\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nHost: a\r\nX(y): z\r\n\r\n", 400},
      // Host
      {"GET / HTTP/1.1\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nHost: a:80x\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nHost: a@b\r\n\r\n", 400},
      {"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400},
      // Content-Length
      {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 5\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9999999999999999999\r\n\r\n", 413},
      // Transfer-Encoding
      {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
      {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\"\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", 400},
      {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      // Expect
      {"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n", 0},
      {"POST / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", 417},
  };
  for (const Case& c : cases) {
    INFO("request: " << c.raw);
    CHECK(request_status(c.raw) == c.status);
    CHECK(request_status_bytewise(c.raw) == c.status);
  }
}

TEST_CASE("a NUL byte in a field value is rejected") {
  std::string raw("GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", 35);
  CHECK(request_status(raw) == 400);
}

TEST_CASE("limits reject long targets with 414 and large header sections with 431") {
  ParseLimits l;
  l.max_target = 64;
  l.max_header_bytes = 256;
  l.max_headers = 4;
  std::string long_target = "GET /" + std::string(100, 'a') + " HTTP/1.1\r\nHost: a\r\n\r\n";
  CHECK(request_status(long_target, l) == 414);
  // Rejected before the line ends: the client never gets to send the rest.
  CHECK(request_status("GET /" + std::string(200, 'a'), l) == 414);
  std::string big = "GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(300, 'b') + "\r\n\r\n";
  CHECK(request_status(big, l) == 431);
  CHECK(request_status("GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(300, 'b'), l) == 431);
  std::string many = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
  CHECK(request_status(many, l) == 431);
  l.max_body = 10;
  CHECK(request_status("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n", l) == 413);
  CHECK(request_status("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n", l) == 0);
}

TEST_CASE("the default limits are 8 KiB of target and of header section") {
  std::string ok_target = "GET /" + std::string(8 * 1024 - 1, 'a') + " HTTP/1.1\r\nHost: a\r\n\r\n";
  CHECK(request_status(ok_target) == 0);
  std::string long_target = "GET /" + std::string(8 * 1024, 'a') + " HTTP/1.1\r\nHost: a\r\n\r\n";
  CHECK(request_status(long_target) == 414);
  std::string big = "GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(9000, 'b') + "\r\n\r\n";
  CHECK(request_status(big) == 431);
}

TEST_CASE("persistence follows the HTTP/1.0 and HTTP/1.1 rules") {
  auto ka = [](std::string_view raw) {
    RequestParser p;
    REQUIRE(p.parse(raw) == ParseResult::done);
    return p.head().keep_alive;
  };
  CHECK(ka("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
  CHECK_FALSE(ka("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"));
  CHECK_FALSE(ka("GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade, Close\r\n\r\n"));
  CHECK_FALSE(ka("GET / HTTP/1.0\r\n\r\n"));
  CHECK(ka("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
  CHECK(ka("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
  CHECK_FALSE(ka("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"));
}

TEST_CASE("a control byte anywhere in a field value is rejected, HTAB and obs-text are not") {
  const std::string base = "abcdefghijklmnopqrstu";  // 21 bytes: two words and a tail
  for (std::size_t at = 0; at <= base.size(); ++at) {
    for (char c : {'\0', '\x01', '\x1f', '\x7f', '\r', '\x0b', '\t', '\x80', '\xff', ' '}) {
      std::string v = base.substr(0, at) + c + base.substr(at);
      CAPTURE(at);
      CAPTURE(static_cast<int>(static_cast<unsigned char>(c)));
      const bool ok = c == '\t' || c == ' ' || static_cast<unsigned char>(c) >= 0x80;
      CHECK(valid_field_value(v) == ok);
      CHECK(request_status("GET / HTTP/1.1\r\nHost: a\r\nX: " + v + "\r\n\r\n") == (ok ? 0 : 400));
    }
  }
  CHECK(valid_field_value(""));
}

TEST_CASE("path and query of a parsed origin-form target match a head built by hand") {
  const char* targets[] = {"/", "/a/b", "/a?x=1", "/a?x=1#f", "/a#f?x", "/a#f", "/?", "/a??b", "/a?#"};
  for (const char* t : targets) {
    CAPTURE(t);
    RequestParser p;
    std::string raw = std::string("GET ") + t + " HTTP/1.1\r\nHost: a\r\n\r\n";
    REQUIRE(p.parse(raw) == ParseResult::done);
    RequestHead by_hand;  // no path_size: path() and query() scan the target
    by_hand.target = p.head().target;
    CHECK(p.head().path() == by_hand.path());
    CHECK(p.head().query() == by_hand.query());
  }
  RequestParser p;
  REQUIRE(p.parse("GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: a\r\n\r\n") == ParseResult::done);
  CHECK(p.head().path() == "/a/b");
  CHECK(p.head().query() == "x=1&y=2");
}

// The authority of an absolute-form target ends at the first '/', '?' or
// '#': "http://x?/admin" has the path "/" and the query "/admin". Taking the
// path from the query would route the request somewhere other than where a
// proxy in front checked it.
TEST_CASE("an absolute-form target's path never comes from its query or fragment") {
  struct Case {
    const char* target;
    const char* path;
    const char* query;
  };
  const Case cases[] = {
      {"http://x?/ten.txt", "/", "/ten.txt"},
      {"http://x#/ten.txt", "/", ""},
      {"http://x:80?a=/b/c", "/", "a=/b/c"},
      {"http://x", "/", ""},
      {"http://x/p?q=/r#/s", "/p", "q=/r"},
      {"http://x/p#f?g", "/p", ""},
  };
  for (const Case& c : cases) {
    CAPTURE(c.target);
    RequestParser p;
    std::string raw = std::string("GET ") + c.target + " HTTP/1.1\r\nHost: x\r\n\r\n";
    REQUIRE(p.parse(raw) == ParseResult::done);
    REQUIRE(p.head().form == TargetForm::absolute);
    CHECK(p.head().path() == c.path);
    CHECK(p.head().query() == c.query);
  }
}

TEST_CASE("request forms, body framing and Expect are reported") {
  RequestParser p;
  REQUIRE(p.parse("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n") == ParseResult::done);
  CHECK(p.head().form == TargetForm::asterisk);
  p.reset();
  REQUIRE(p.parse("GET http://h.example:8080/p/q?z=2 HTTP/1.1\r\nHost: x\r\n\r\n") == ParseResult::done);
  CHECK(p.head().form == TargetForm::absolute);
  CHECK(p.head().path() == "/p/q");
  CHECK(p.head().query() == "z=2");
  p.reset();
  REQUIRE(p.parse("CONNECT h.example:443 HTTP/1.1\r\nHost: h.example:443\r\n\r\n") == ParseResult::done);
  CHECK(p.head().form == TargetForm::authority);
  p.reset();
  REQUIRE(p.parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\nExpect: 100-Continue\r\n\r\n") ==
          ParseResult::done);
  CHECK(p.head().body_kind == BodyKind::content_length);
  CHECK(p.head().content_length == 12);
  CHECK(p.head().expect_continue);
  p.reset();
  REQUIRE(p.parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n") == ParseResult::done);
  CHECK(p.head().body_kind == BodyKind::none);
  p.reset();
  REQUIRE(p.parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n") == ParseResult::done);
  CHECK(p.head().body_kind == BodyKind::chunked);
  p.reset();
  // HTTP/1.0 clients do not understand 100 Continue: the expectation is ignored.
  REQUIRE(p.parse("POST / HTTP/1.0\r\nContent-Length: 1\r\nExpect: 100-continue\r\n\r\n") == ParseResult::done);
  CHECK_FALSE(p.head().expect_continue);
}

TEST_CASE("pipelined requests parse one after another from one buffer") {
  std::string raw =
      "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
      "POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
      "GET /3 HTTP/1.1\r\nHost: a\r\n\r\n";
  std::string_view rest = raw;
  RequestParser p;
  std::vector<std::string> targets;
  while (!rest.empty()) {
    REQUIRE(p.parse(rest) == ParseResult::done);
    targets.emplace_back(p.head().target);
    rest.remove_prefix(p.head().head_size);
    BodyDecoder b;
    b.start(p.head().body_kind, p.head().content_length);
    std::string_view data;
    rest.remove_prefix(b.decode(rest, data));
    CHECK(b.done());
    p.reset();
  }
  CHECK(targets == std::vector<std::string>{"/1", "/2", "/3"});
}

TEST_CASE("a head split anywhere parses the same") {
  std::string raw = "POST /upload HTTP/1.1\r\nHost: a.example\r\nContent-Length: 10\r\nX-Y: z\r\n\r\n";
  for (std::size_t split = 1; split < raw.size(); ++split) {
    RequestParser p;
    ParseResult r = p.parse(std::string_view(raw).substr(0, split));
    CHECK(r == ParseResult::incomplete);
    REQUIRE(p.parse(raw) == ParseResult::done);
    CHECK(p.head().content_length == 10);
    CHECK(p.head().header("x-y") == "z");
  }
}

TEST_CASE("rebase moves every view to a copy of the bytes") {
  std::string raw = "GET /a HTTP/1.1\r\nHost: h\r\nX: y\r\n\r\n";
  RequestParser p;
  REQUIRE(p.parse(raw) == ParseResult::done);
  std::string copy = raw;
  p.head().rebase(raw.data(), copy.data());
  raw.assign(raw.size(), '#');
  CHECK(p.head().method == "GET");
  CHECK(p.head().target == "/a");
  CHECK(p.head().host == "h");
  CHECK(p.head().header("x") == "y");
}

TEST_CASE("responses parse with their framing") {
  ResponseParser p;
  REQUIRE(p.parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello") == ParseResult::done);
  CHECK(p.head().status == 200);
  CHECK(p.head().reason == "OK");
  CHECK(p.head().body_kind == BodyKind::content_length);
  CHECK(p.head().keep_alive);
  p.reset();
  REQUIRE(p.parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n") == ParseResult::done);
  CHECK(p.head().body_kind == BodyKind::chunked);
  p.reset();
  REQUIRE(p.parse("HTTP/1.1 200 OK\r\n\r\n") == ParseResult::done);
  CHECK(p.head().body_kind == BodyKind::until_close);
  CHECK_FALSE(p.head().keep_alive);
  p.reset();
  REQUIRE(p.parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n") == ParseResult::done);
  CHECK(p.head().body_kind == BodyKind::until_close);
  p.reset();
  REQUIRE(p.parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", Method::head) == ParseResult::done);
  CHECK(p.head().body_kind == BodyKind::none);
  p.reset();
  REQUIRE(p.parse("HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n") == ParseResult::done);
  CHECK(p.head().body_kind == BodyKind::none);
  p.reset();
  REQUIRE(p.parse("HTTP/1.1 204\r\n\r\n") == ParseResult::done);
  CHECK(p.head().status == 204);
  CHECK(p.head().reason == "");
  p.reset();
  REQUIRE(p.parse("HTTP/1.1 100 Continue\r\n\r\n") == ParseResult::done);
  CHECK(p.head().body_kind == BodyKind::none);
  p.reset();
  REQUIRE(p.parse("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n") == ParseResult::done);
  CHECK_FALSE(p.head().keep_alive);
  p.reset();
  REQUIRE(p.parse("HTTP/1.1 200 Connection established\r\n\r\n", Method::connect) == ParseResult::done);
  CHECK(p.head().body_kind == BodyKind::until_close);
}

TEST_CASE("malformed responses are rejected") {
  const char* bad[] = {
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
      "HTTP/1.1 2000 OK\r\n\r\n",
      "HTTP/1.1 20 OK\r\n\r\n",
      "HTTP/1.1 abc OK\r\n\r\n",
      "HTTP/1.1 200 OK\nX: y\r\n\r\n",
      "HTTP/1.1 200 O\x01K\r\n\r\n",
      "HTTP/1.1 200 OK\r\nX : y\r\n\r\n",
      "HTTP/1.1 200 OK\r\n folded\r\n\r\n",
      "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
      "HTTX/1.1 200 OK\r\n\r\n",
      "HTTP/1.1 099 Low\r\n\r\n",
      "HTTP/1.1 200OK\r\n\r\n",
  };
  for (const char* raw : bad) {
    INFO("response: " << raw);
    ResponseParser p;
    CHECK(p.parse(raw) == ParseResult::error);
  }
  ResponseParser p;
  CHECK(p.parse("HTTP/2.0 200 OK\r\n\r\n") == ParseResult::error);
  CHECK(p.error_status() == 505);
}

TEST_CASE("the chunked decoder handles extensions, trailers and any split") {
  std::string body =
      "5;name=value;q=\"a \\\"quoted\\\" one\"\r\nhello\r\n"
      "6 ; ext\r\n world\r\n"
      "A\r\n0123456789\r\n"
      "0\r\nX-Checksum: abc\r\nX-Other:  2 \r\n\r\n"
      "AFTER";
  for (std::size_t step : {std::size_t(1), std::size_t(2), std::size_t(3), std::size_t(7), body.size()}) {
    ChunkedDecoder d;
    std::string out = decode_all(d, body, step);
    INFO("step " << step);
    REQUIRE(d.done());
    CHECK(out == "hello world0123456789");
    CHECK(d.body_bytes() == 21);
    REQUIRE(d.trailers().size() == 2);
    CHECK(d.trailers()[0].first == "X-Checksum");
    CHECK(d.trailers()[1].second == "2");
  }
  // It stops right after the last CRLF: the next message is not consumed.
  ChunkedDecoder d;
  std::string_view in = body;
  std::size_t total = 0;
  while (!d.done()) {
    std::string_view data;
    std::size_t used = d.decode(in, data);
    in.remove_prefix(used);
    total += used;
  }
  CHECK(in == "AFTER");
  CHECK(total == body.size() - 5);
}

TEST_CASE("the chunked decoder rejects malformed or oversized chunks") {
  struct Bad {
    const char* in;
    int status;
  };
  const Bad bad[] = {
      {"x\r\n", 400},
      {"\r\n", 400},
      {"-1\r\n", 400},
      {"+1\r\n", 400},
      {" 1\r\n", 400},
      {"1 \r\na\r\n", 400},
      {"10000000000000000\r\n", 400},  // 17 hex digits overflow 64 bits
      {"1\na\r\n", 400},
      {"1\r\nab\r\n", 400},
      {"1\r\na\n", 400},
      {"1\r\na\rX", 400},
      {"1;a\x01\r\n", 400},
      {"1;a=\"\x01\"\r\n", 400},
      {"1;a,b\r\n", 400},
      {"0\r\nX : y\r\n\r\n", 400},
      {"0\r\nX: y\n", 400},
      {"0\r\n folded\r\n\r\n", 400},
      {"0\r\nX: y\rz\r\n\r\n", 400},
  };
  for (const Bad& b : bad) {
    INFO("chunked: " << b.in);
    ChunkedDecoder d;
    decode_all(d, b.in, 1);
    CHECK(d.failed());
    CHECK(d.error_status() == b.status);
  }
  ChunkedDecoder small(10);
  decode_all(small, "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", 100);
  CHECK(small.failed());
  CHECK(small.error_status() == 413);
  ChunkedDecoder ok16;
  std::string_view data;
  ok16.decode("FFFFFFFFFFFFFFFF\r\nab", data);
  CHECK_FALSE(ok16.failed());
  CHECK(data == "ab");
  ChunkedDecoder long_ext;
  decode_all(long_ext, "1;" + std::string(5000, 'a') + "\r\n", 4096);
  CHECK(long_ext.failed());
  ChunkedDecoder big_trailer(UINT64_MAX, 16);
  decode_all(big_trailer, "0\r\nX: " + std::string(40, 'a') + "\r\n\r\n", 64);
  CHECK(big_trailer.failed());
  CHECK(big_trailer.error_status() == 431);
}

TEST_CASE("content-length and close-delimited bodies decode their bytes") {
  BodyDecoder b;
  b.start(BodyKind::content_length, 5);
  std::string_view data;
  CHECK(b.decode("hel", data) == 3);
  CHECK(data == "hel");
  CHECK_FALSE(b.done());
  CHECK(b.decode("loEXTRA", data) == 2);
  CHECK(data == "lo");
  CHECK(b.done());
  b.start(BodyKind::until_close, 0);
  CHECK(b.decode("everything", data) == 10);
  CHECK(data == "everything");
  CHECK_FALSE(b.done());
  b.finish_eof();
  CHECK(b.done());
  b.start(BodyKind::none, 0);
  CHECK(b.done());
  CHECK(b.decode("x", data) == 0);
}

TEST_CASE("an empty buffer without storage is simply incomplete") {
  RequestParser p;
  CHECK(p.parse(std::string_view()) == ParseResult::incomplete);
  CHECK(p.parse(std::string_view()) == ParseResult::incomplete);
  ResponseParser r;
  CHECK(r.parse(std::string_view()) == ParseResult::incomplete);
  ChunkedDecoder d;
  std::string_view data;
  CHECK(d.decode(std::string_view(), data) == 0);
}

TEST_CASE("a head whose bytes moved between calls keeps views into the new place") {
  const std::string full = "GET /moved/target HTTP/1.1\r\nHost: h\r\nX: y\r\n\r\n";
  for (std::size_t split = 1; split < full.size(); ++split) {
    std::string first = full.substr(0, split);
    RequestParser p;
    REQUIRE(p.parse(first) == ParseResult::incomplete);
    std::string second = full;  // another buffer: the receive buffer grew
    first.assign(first.size(), '#');
    REQUIRE(p.parse(second) == ParseResult::done);
    CHECK(p.head().method == "GET");
    CHECK(p.head().target == "/moved/target");
    CHECK(p.head().header("x") == "y");
  }
  const std::string resp = "HTTP/1.1 404 Not Here\r\nContent-Length: 0\r\n\r\n";
  for (std::size_t split = 1; split < resp.size(); ++split) {
    std::string first = resp.substr(0, split);
    ResponseParser p;
    REQUIRE(p.parse(first) == ParseResult::incomplete);
    std::string second = resp;
    first.assign(first.size(), '#');
    REQUIRE(p.parse(second) == ParseResult::done);
    CHECK(p.head().status == 404);
    CHECK(p.head().reason == "Not Here");
  }
}

// The parser scans field values and target paths 16 bytes at a time where
// it can, and byte by byte for the rest: one bad byte must be caught at every
// offset (inside a 16-byte block, at its edges, in the tail), and a good one
// must never stop the scan early.
TEST_CASE("one byte of every class at every offset of a long field value and a long path") {
  const std::string host = "Host: h\r\n";
  for (std::size_t len : {15u, 16u, 17u, 31u, 32u, 33u, 47u}) {
    for (std::size_t at = 0; at < len; ++at) {
      CAPTURE(len);
      CAPTURE(at);
      struct Byte {
        char c;
        bool ok_in_value;
        bool ok_in_path;  // before the query: '?' and '#' end the path, ' ' the target
      };
      for (Byte b : {Byte{'a', true, true}, Byte{'\t', true, false}, Byte{' ', true, false}, Byte{'\x00', false, false},
                     Byte{'\x08', false, false}, Byte{'\x0b', false, false}, Byte{'\x1f', false, false},
                     Byte{'\x7f', false, false}, Byte{'\x7e', true, true}, Byte{'\x21', true, true},
                     Byte{'\x80', true, false}, Byte{'\xff', true, false}, Byte{'\r', false, false},
                     Byte{'\n', false, false}, Byte{'?', true, true}, Byte{'#', true, true}}) {
        CAPTURE(static_cast<int>(static_cast<unsigned char>(b.c)));
        std::string value(len, 'v');
        value[at] = b.c;
        // A value's leading and trailing whitespace is not part of it: keep
        // the probe inside.
        value.front() = value.back() = 'v';
        if (at == 0 || at == len - 1) continue;
        std::string req = "GET / HTTP/1.1\r\n" + host + "X-Probe: " + value + "\r\n\r\n";
        RequestParser p;
        ParseResult r = p.parse(req);
        if (b.ok_in_value) {
          REQUIRE(r == ParseResult::done);
          CHECK(p.head().header("x-probe") == value);
        } else {
          CHECK(r == ParseResult::error);
          CHECK(p.error_status() == 400);
        }

        std::string path = "/" + std::string(len, 'p');
        path[at + 1] = b.c;
        std::string line = "GET " + path + " HTTP/1.1\r\n" + host + "\r\n";
        RequestParser q;
        ParseResult rq = q.parse(line);
        if (b.ok_in_path) {
          REQUIRE(rq == ParseResult::done);
          CHECK(q.head().target == path);
          const std::size_t cut = path.find_first_of("?#");
          CHECK(q.head().path() == path.substr(0, cut));
        } else {
          CHECK(rq == ParseResult::error);
        }
      }
    }
  }
}

TEST_CASE("Host values: reg-names, IPv4 and IPv6 literals, ports of up to five digits") {
  for (Case c : std::vector<Case>{
           {"GET / HTTP/1.1\r\nHost: 127.0.0.1:19080\r\n\r\n", 0},
           {"GET / HTTP/1.1\r\nHost: a-very-long-host-name.example.org\r\n\r\n", 0},
           {"GET / HTTP/1.1\r\nHost: a-very-long-host-name.example.org:65535\r\n\r\n", 0},
           {"GET / HTTP/1.1\r\nHost: x%41!$&'()*+,;=~_.-\r\n\r\n", 0},
           {"GET / HTTP/1.1\r\nHost: host:\r\n\r\n", 0},
           {"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", 0},
           {"GET / HTTP/1.1\r\nHost: host:123456\r\n\r\n", 400},
           {"GET / HTTP/1.1\r\nHost: host:80a\r\n\r\n", 400},
           {"GET / HTTP/1.1\r\nHost: hostname/path\r\n\r\n", 400},
           {"GET / HTTP/1.1\r\nHost: abcdefg@h\r\n\r\n", 400},
           {"GET / HTTP/1.1\r\nHost: abc\"def\r\n\r\n", 400},
           {"GET / HTTP/1.1\r\nHost: :80\r\n\r\n", 400},
           {"GET / HTTP/1.1\r\nHost: a:b:80\r\n\r\n", 400},
       }) {
    CAPTURE(c.raw);
    CHECK(request_status(c.raw) == c.status);
    CHECK(request_status_bytewise(c.raw) == c.status);
  }
}

namespace {

// What RFC 9110 §7.2 and RFC 3986 allow in a Host that is not an IP literal:
// a reg-name (unreserved, sub-delims, pct-encoded), then optionally ':' and up to five
// digits. Written plainly, to check the parser's block-wise scan against.
bool reference_host(std::string_view h) {
  if (h.empty()) return true;
  const std::string_view reg = "-._~!$&'()*+,;=%";
  std::size_t i = 0;
  for (; i < h.size() && h[i] != ':'; ++i) {
    const char c = h[i];
    if (c == '%') {  // pct-encoded = "%" HEXDIG HEXDIG
      if (i + 2 >= h.size() || !std::isxdigit(static_cast<unsigned char>(h[i + 1])) ||
          !std::isxdigit(static_cast<unsigned char>(h[i + 2])))
        return false;
      i += 2;
      continue;
    }
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    reg.find(c) != std::string_view::npos;
    if (!ok) return false;
  }
  if (i == 0) return false;
  if (i == h.size()) return true;
  std::string_view port = h.substr(i + 1);
  if (port.size() > 5) return false;
  for (char c : port)
    if (c < '0' || c > '9') return false;
  return true;
}

}  // namespace

TEST_CASE("every byte at every offset of a Host, short and long, last field or not, with and without a port") {
  int checked = 0;
  for (std::size_t len : {1u, 2u, 3u, 5u, 11u, 12u, 14u, 15u, 16u, 17u, 20u, 31u, 32u, 33u, 48u, 63u, 64u, 65u, 70u}) {
    // Shapes: a name; a name and a port; an IPv4 address and a port.
    std::vector<std::string> shapes = {std::string(len, 'h')};
    if (len >= 3) shapes.push_back(std::string(len - 2, 'h') + ":8");
    if (len >= 6) shapes.push_back(std::string(len - 6, '1') + ":19080");
    if (len >= 7) shapes.push_back(std::string(len - 7, '1') + ":190801");  // a six-digit port
    for (const std::string& base : shapes) {
      for (std::size_t at = 0; at < len; ++at) {
        for (int b = 0x21; b <= 0xff; ++b) {
          if (b == 0x7f) b = 0x80;  // DEL is rejected as a field byte before Host is looked at
          if (b > 0x81 && b < 0xfe) continue;
          const char c = static_cast<char>(b);
          if (at == 0 && c == '[') continue;  // an IPv6 literal: the other test
          std::string host = base;
          host[at] = c;
          const bool want = reference_host(host);
          for (bool last : {true, false}) {
            std::string req = "GET / HTTP/1.1\r\nHost: " + host + (last ? "\r\n\r\n" : "\r\nX-After: 1\r\n\r\n");
            RequestParser p;
            const ParseResult r = p.parse(req);
            if ((r == ParseResult::done) != want || (!want && p.error_status() != 400)) {
              CAPTURE(host);
              CAPTURE(last);
              CHECK(r == (want ? ParseResult::done : ParseResult::error));
            }
            if (want && r == ParseResult::done && p.head().host != host) CHECK(p.head().host == host);
            ++checked;
          }
        }
      }
    }
  }
  CHECK(checked > 100000);
}

// RFC 9110 §10.1.1: Expect = #expectation, and §5.6.1.2: a recipient MUST
// parse and ignore empty list elements. "100-continue," is 100-continue, not
// an unknown expectation (417); an empty Expect carries no expectation at all.
TEST_CASE("Expect is a list: empty elements are ignored, any other member is 417") {
  for (std::string v : {"100-continue,", ", 100-continue", "100-continue , ,", "100-continue, 100-Continue"}) {
    CAPTURE(v);
    RequestParser p;
    const std::string raw = "POST / HTTP/1.1\r\nHost: a\r\nExpect: " + v + "\r\nContent-Length: 1\r\n\r\n";
    REQUIRE(p.parse(raw) == ParseResult::done);
    CHECK(p.head().expect_continue);
  }
  RequestParser p;
  REQUIRE(p.parse("POST / HTTP/1.1\r\nHost: a\r\nExpect:\r\nContent-Length: 1\r\n\r\n") == ParseResult::done);
  CHECK_FALSE(p.head().expect_continue);
  CHECK(request_status("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue, x\r\n\r\n") == 417);
  CHECK(request_status("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue;a=b\r\n\r\n") == 417);
}

// Host = uri-host [ ":" port ] (RFC 9110 §7.2), uri-host as RFC 3986 §3.2.2:
// a '%' starts pct-encoded ("%" HEXDIG HEXDIG), and an IP-literal holds an
// IPv6 address or an IPvFuture ("v" 1*HEXDIG "." 1*(unreserved / sub-delims
// / ":")). Anything else is an invalid Host: 400 (RFC 9112 §3.2, a MUST).
TEST_CASE("a Host with a bad percent-encoding or a bad IP literal is 400") {
  for (Case c : std::vector<Case>{
           {"GET / HTTP/1.1\r\nHost: a%41b\r\n\r\n", 0},
           {"GET / HTTP/1.1\r\nHost: %4a%4B:80\r\n\r\n", 0},
           {"GET / HTTP/1.1\r\nHost: [2001:db8::1]\r\n\r\n", 0},
           {"GET / HTTP/1.1\r\nHost: [::ffff:192.0.2.1]:443\r\n\r\n", 0},
           {"GET / HTTP/1.1\r\nHost: [v1.x:y]\r\n\r\n", 0},
           {"GET / HTTP/1.1\r\nHost: a%zz\r\n\r\n", 400},
           {"GET / HTTP/1.1\r\nHost: a%4\r\n\r\n", 400},
           {"GET / HTTP/1.1\r\nHost: a%\r\n\r\n", 400},
           {"GET / HTTP/1.1\r\nHost: %:80\r\n\r\n", 400},
           {"GET / HTTP/1.1\r\nHost: [1]\r\n\r\n", 400},
           {"GET / HTTP/1.1\r\nHost: [:::::]\r\n\r\n", 400},
           {"GET / HTTP/1.1\r\nHost: [1:2:3:4:5:6:7:8:9]\r\n\r\n", 400},
           {"GET / HTTP/1.1\r\nHost: [v]\r\n\r\n", 400},
           {"GET / HTTP/1.1\r\nHost: [v1.]\r\n\r\n", 400},
           {"CONNECT [1]:443 HTTP/1.1\r\nHost: a\r\n\r\n", 400},
       }) {
    const std::string raw = c.raw;
    CAPTURE(raw);
    CHECK(request_status(c.raw) == c.status);
    CHECK(request_status_bytewise(c.raw) == c.status);
  }
}

// authority-form = uri-host ":" port (RFC 9112 §3.2.3); a CONNECT request
// always names its port (RFC 9110 §9.3.6: there are no default ports). The
// ':' inside an IPv6 literal is not the one before a port.
TEST_CASE("a CONNECT target without a port is 400, IPv6 literals included") {
  CHECK(request_status("CONNECT [::1]:443 HTTP/1.1\r\nHost: a\r\n\r\n") == 0);
  CHECK(request_status("CONNECT a.example HTTP/1.1\r\nHost: a\r\n\r\n") == 400);
  CHECK(request_status("CONNECT [::1] HTTP/1.1\r\nHost: a\r\n\r\n") == 400);
  CHECK(request_status("CONNECT [2001:db8::443] HTTP/1.1\r\nHost: a\r\n\r\n") == 400);
  CHECK(request_status("CONNECT [::1]: HTTP/1.1\r\nHost: a\r\n\r\n") == 400);
}

// An "http" or "https" URI with an empty host is invalid and a recipient MUST
// reject it (RFC 9110 §4.2.1, §4.2.2); its authority is what an origin server
// uses instead of Host (RFC 9112 §3.2.2), so it is a uri-host [":" port] like
// Host, without userinfo (RFC 9110 §4.2.4: treat userinfo as an error).
TEST_CASE("an absolute-form http(s) target needs a valid, non-empty authority") {
  for (Case c : std::vector<Case>{
           {"GET http://a.example/x HTTP/1.1\r\nHost: a\r\n\r\n", 0},
           {"GET HTTPS://a.example:8443?q HTTP/1.1\r\nHost: a\r\n\r\n", 0},
           {"GET http://[::1]:80/x HTTP/1.1\r\nHost: a\r\n\r\n", 0},
           {"GET http://a HTTP/1.1\r\nHost: a\r\n\r\n", 0},
           {"GET urn://x HTTP/1.1\r\nHost: a\r\n\r\n", 0},  // other schemes: not ours to judge
           {"GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n", 400},
           {"GET http:// HTTP/1.1\r\nHost: a\r\n\r\n", 400},
           {"GET https://?q HTTP/1.1\r\nHost: a\r\n\r\n", 400},
           {"GET http://:80/x HTTP/1.1\r\nHost: a\r\n\r\n", 400},
           {"GET http://u@a/x HTTP/1.1\r\nHost: a\r\n\r\n", 400},
           {"GET http://a:8x/ HTTP/1.1\r\nHost: a\r\n\r\n", 400},
       }) {
    const std::string raw = c.raw;
    CAPTURE(raw);
    CHECK(request_status(c.raw) == c.status);
    CHECK(request_status_bytewise(c.raw) == c.status);
  }
}

// RFC 9112 §3.2.2: with an absolute-form target an origin server MUST
// ignore the Host field and use the target's host; the field must still be
// there and valid in HTTP/1.1.
TEST_CASE("an absolute-form http(s) target's authority is the request's host, not the Host field") {
  const std::string raw = "GET http://a.example:8080/x?q HTTP/1.1\r\nHost: other.example\r\n\r\n";
  {
    RequestParser p;
    REQUIRE(p.parse(raw) == ParseResult::done);
    CHECK(p.head().host == "a.example:8080");
    CHECK(p.head().header("host") == "other.example");
  }
  {
    // Fed a byte at a time into a buffer that moves (the views are rebased).
    RequestParser p;
    std::string buf;
    ParseResult r = ParseResult::incomplete;
    for (char ch : raw) {
      buf.push_back(ch);
      buf.shrink_to_fit();
      r = p.parse(buf);
      if (r != ParseResult::incomplete) break;
    }
    REQUIRE(r == ParseResult::done);
    CHECK(p.head().host == "a.example:8080");
  }
  RequestParser o;  // other schemes and origin-form: the Host field
  REQUIRE(o.parse("GET urn://x HTTP/1.1\r\nHost: h\r\n\r\n") == ParseResult::done);
  CHECK(o.head().host == "h");
  CHECK(request_status("GET http://a/ HTTP/1.1\r\n\r\n") == 400);  // Host still required
}

// RFC 9112 §6.3 item 2: a 2xx response to CONNECT becomes a tunnel right
// after its empty line, and a client MUST ignore any Content-Length or
// Transfer-Encoding field in it (whatever they say, they frame nothing).
TEST_CASE("a 2xx response to CONNECT is a tunnel whatever its Content-Length or Transfer-Encoding") {
  for (std::string fields : {"Content-Length: 5\r\n", "Content-Length: x\r\n", "Content-Length: 1, 2\r\n",
                             "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
                             "Transfer-Encoding: chunked, chunked\r\n", "Transfer-Encoding: ,\r\n"}) {
    CAPTURE(fields);
    ResponseParser p;
    const std::string raw = "HTTP/1.1 200 Connection established\r\n" + fields + "\r\nTUNNEL";
    REQUIRE(p.parse(raw, Method::connect) == ParseResult::done);
    CHECK(p.head().body_kind == BodyKind::until_close);
    CHECK_FALSE(p.head().keep_alive);
    CHECK(raw.substr(p.head().head_size) == "TUNNEL");
    // Not a tunnel: the same fields are still judged.
    ResponseParser q;
    if (fields != "Content-Length: 5\r\n") CHECK(q.parse(raw, Method::get) == ParseResult::error);
  }
  ResponseParser p;  // a refused CONNECT is framed as usual
  REQUIRE(p.parse("HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 2\r\n\r\nno", Method::connect) ==
          ParseResult::done);
  CHECK(p.head().body_kind == BodyKind::content_length);
}
