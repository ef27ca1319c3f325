#include "net/tls.hpp"

#include <doctest/doctest.h>

#include <cstddef>
#if defined(__SANITIZE_ADDRESS__)
// libasan's (sanitizer/allocator_interface.h, which GCC 12 on Debian does not install).
extern "C" std::size_t __sanitizer_get_current_allocated_bytes();
#endif
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "coro/event.hpp"
#include "coro/sleep.hpp"
#include "coro/task_handle.hpp"
#include "coro/timeout.hpp"
#include "loop/to_thread.hpp"
#include "net/http/client.hpp"
#include "net/server.hpp"
#include "tests/child_process.hpp"
#include "tests/net/net_support.hpp"
#include "tests/net/tls_support.hpp"
#include "tests/support.hpp"

using namespace corio;
using namespace std::chrono_literals;

namespace {

using test::echo_lines;
using test::TestPki;

std::string pki(const std::string& name) { return TestPki::get().file(name); }

// No default arguments of class type here: g++ 12 mis-destroys such
// temporaries when the call sits inside a coroutine body.
std::shared_ptr<TlsContext> server_ctx(const std::string& cert, TlsServerOptions o) {
  o.cert_file = pki(cert + ".pem");
  o.key_file = pki(cert + ".key");
  return TlsContext::server(std::move(o));
}
std::shared_ptr<TlsContext> server_ctx(const std::string& cert) { return server_ctx(cert, TlsServerOptions()); }
std::shared_ptr<TlsContext> server_ctx() { return server_ctx("server"); }

std::shared_ptr<TlsContext> client_ctx(TlsClientOptions o) {
  if (o.ca_file.empty() && !o.insecure_skip_verify_dangerous) o.ca_file = pki("ca.pem");
  return TlsContext::client(std::move(o));
}
std::shared_ptr<TlsContext> client_ctx() { return client_ctx(TlsClientOptions()); }

// The options name the context without owning it: callers keep `ctx` alive.
ConnectOptions tls_to(const std::shared_ptr<TlsContext>& ctx, std::string_view name = "localhost") {
  return {.tls = ctx, .server_hostname = name};
}

ServerOptions tls_server(const std::shared_ptr<TlsContext>& ctx) { return {.tls = ctx}; }

// Says what was negotiated, then echoes lines.
Task<void> info_then_echo(StreamReader& r, StreamWriter& w) {
  std::optional<TlsInfo> info = tls_info(w);
  if (!info) throw std::runtime_error("the server connection has no TLS");
  w.write(info->version + " alpn=" + info->alpn + " sni=" + info->server_name + " peer=" + info->peer_subject + "\n");
  co_await echo_lines(r, w);
}

// ---- corio <-> corio ----------------------------------------------------------------

Task<void> exchange_lines(std::shared_ptr<TlsContext> sctx, std::shared_ptr<TlsContext> cctx) {
  Server server = co_await start_server(info_then_echo, "127.0.0.1", 0, tls_server(sctx));
  auto [r, w] = co_await open_connection("127.0.0.1", server.port(), tls_to(cctx));
  std::string hello = co_await r.readline();
  CHECK(hello == "TLSv1.3 alpn=http/1.1 sni=localhost peer=\n");
  std::optional<TlsInfo> info = tls_info(w);
  REQUIRE(info);
  CHECK(info->version == "TLSv1.3");
  CHECK(info->alpn == "http/1.1");
  CHECK(info->peer_subject == "CN=localhost");
  CHECK(info->peer_issuer == "CN=corio test CA");
  CHECK(!info->cipher.empty());
  for (int i = 0; i < 3; ++i) {
    std::string line = "line " + std::to_string(i) + "\n";
    w.write(line);
    CHECK(co_await r.readline() == line);
  }
  w.close();
  co_await w.wait_closed();
  CHECK(!tls_info(StreamWriter()).has_value());
}

TEST_CASE("a corio client and a corio server exchange lines over TLS and agree on ALPN, SNI and the peer") {
  test::on_each_backend([](EventLoop& loop) {
    TlsServerOptions so;
    so.alpn = {"http/1.1"};
    TlsClientOptions co;
    co.alpn = {"h2", "http/1.1"};
    test::run_bounded(loop, exchange_lines(server_ctx("server", so), client_ctx(co)));
  });
}

// The server reads the client's line, then must see a clean EOF (close_notify).
Task<void> expect_clean_eof(StreamReader& r, StreamWriter& w, std::string* log) {
  std::string line = co_await r.readline();
  *log += "got " + line;
  std::string rest = co_await r.read();  // throws on a truncated stream
  *log += "eof " + std::to_string(rest.size()) + "\n";
  w.write("late\n");  // after the peer's close_notify we may still answer, then close
}

Task<void> close_notify_both_ways(std::shared_ptr<TlsContext> sctx, std::shared_ptr<TlsContext> cctx) {
  std::string log;
  ClientHandler h = [&log](StreamReader& r, StreamWriter& w) { return expect_clean_eof(r, w, &log); };
  Server server = co_await start_server(h, "127.0.0.1", 0, tls_server(sctx));
  auto [r, w] = co_await open_connection("127.0.0.1", server.port(), tls_to(cctx));
  w.write("bye\n");
  w.write_eof();  // close_notify + FIN; reading goes on
  CHECK(co_await r.readline() == "late\n");
  CHECK(co_await r.read() == "");  // the server's close_notify: a clean EOF
  CHECK(r.at_eof());
  server.close();
  co_await server.wait_closed();
  CHECK(log == "got bye\neof 0\n");
}

TEST_CASE("close_notify goes both ways and reads as a clean EOF") {
  test::on_each_backend([](EventLoop& loop) {
    test::run_bounded(loop, close_notify_both_ways(server_ctx(), client_ctx()));
  });
}

// Echoes one line, then tells how the stream ended: "clean eof" (the
// peer's close_notify) or the TlsError's reason ("unexpected eof while
// reading": the TCP stream ended without one).
Task<void> echo_then_report_end(StreamReader& r, StreamWriter& w, std::string* end) {
  w.write(co_await r.readline());
  co_await w.drain();
  try {
    std::string rest = co_await r.read();
    *end = "clean eof after " + std::to_string(rest.size()) + " bytes";
  } catch (const TlsError& e) {
    *end = e.reason();
  }
}

Task<void> abort_sends_nothing(std::shared_ptr<TlsContext> sctx, std::shared_ptr<TlsContext> cctx) {
  std::string end;
  ClientHandler h = [&end](StreamReader& r, StreamWriter& w) { return echo_then_report_end(r, w, &end); };
  Server server = co_await start_server(h, "127.0.0.1", 0, tls_server(sctx));
  auto [r, w] = co_await open_connection("127.0.0.1", server.port(), tls_to(cctx));
  w.write("hi\n");
  CHECK(co_await r.readline() == "hi\n");  // everything written so far reached the server
  w.abort();  // asyncio's transport.abort(): no close_notify, the socket just closes
  co_await wait_for(w.wait_closed(), 5s);
  server.close();
  co_await wait_for(server.wait_closed(), 5s);
  CHECK(end == "unexpected eof while reading");
}

TEST_CASE("abort() on a TLS stream sends no close_notify: the peer sees a truncated stream") {
  test::on_each_backend([](EventLoop& loop) {
    test::run_bounded(loop, abort_sends_nothing(server_ctx(), client_ctx()));
  });
}

// Ends the TCP stream without close_notify.
Task<void> truncate_after_hello(StreamReader&, StreamWriter& w) {
  w.write("hello\n");
  co_await w.drain();
  co_await sleep(50ms);
  ::shutdown(w.socket().fd(), SHUT_WR);
  co_await sleep(200ms);
}

Task<void> truncation_is_an_error(std::shared_ptr<TlsContext> sctx) {
  Server server = co_await start_server(truncate_after_hello, "127.0.0.1", 0, tls_server(sctx));
  {
    auto cctx_local = client_ctx();
    auto [r, w] = co_await open_connection("127.0.0.1", server.port(), tls_to(cctx_local));
    CHECK(co_await r.readline() == "hello\n");
    std::string what;
    try {
      co_await r.read();
    } catch (const TlsError& e) {
      what = e.what();
    }
    CHECK(what.find("unexpected eof while reading") != std::string::npos);
  }
  {
    TlsClientOptions o;
    o.ignore_unexpected_eof = true;
    auto cctx_local = client_ctx(o);
    auto [r, w] = co_await open_connection("127.0.0.1", server.port(), tls_to(cctx_local));
    CHECK(co_await r.read() == "hello\n");
    CHECK(co_await r.read() == "");
  }
}

TEST_CASE("a TLS stream that ends without close_notify is reported as truncated unless told to ignore it") {
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, truncation_is_an_error(server_ctx())); });
}

// Sends `n` bytes of a pattern after reading a request line.
Task<void> send_bulk(StreamReader& r, StreamWriter& w) {
  std::size_t n = std::stoul(co_await r.readline());
  std::string chunk(64 * 1024, '\0');
  std::size_t sent = 0;
  while (sent < n) {
    std::size_t k = std::min(chunk.size(), n - sent);
    for (std::size_t i = 0; i < k; ++i) chunk[i] = static_cast<char>((sent + i) * 7 % 251);
    w.write(std::string_view(chunk.data(), k));
    co_await w.drain();
    sent += k;
  }
}

Task<void> bulk_transfer(std::shared_ptr<TlsContext> sctx) {
  Server server = co_await start_server(send_bulk, "127.0.0.1", 0, tls_server(sctx));
  auto cctx_local = client_ctx();
  auto [r, w] = co_await open_connection("127.0.0.1", server.port(), tls_to(cctx_local));
  const std::size_t n = 8 * 1024 * 1024 + 123;
  w.write(std::to_string(n) + "\n");
  std::size_t got = 0;
  bool intact = true;
  while (got < n) {
    std::string part = co_await r.read(256 * 1024);
    REQUIRE(!part.empty());
    for (std::size_t i = 0; i < part.size() && intact; ++i) {
      intact = part[i] == static_cast<char>((got + i) * 7 % 251);
    }
    got += part.size();
  }
  CHECK(intact);
  CHECK(got == n);
  CHECK(co_await r.read() == "");
}

TEST_CASE("megabytes cross a TLS connection intact and in order") {
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, bulk_transfer(server_ctx())); });
}

Task<void> resume_session(std::shared_ptr<TlsContext> sctx, std::shared_ptr<TlsContext> cctx) {
  Server server = co_await start_server(info_then_echo, "127.0.0.1", 0, tls_server(sctx));
  for (int i = 0; i < 2; ++i) {
    auto [r, w] = co_await open_connection("127.0.0.1", server.port(), tls_to(cctx));
    co_await r.readline();  // TLS 1.3 tickets arrive with (before) the first data
    w.write("x\n");
    CHECK(co_await r.readline() == "x\n");
    CHECK(tls_info(w)->session_reused == (i == 1));
    w.close();
    co_await w.wait_closed();
  }
  CHECK(cctx->session_cache_size() == 1);
}

TEST_CASE("a client context resumes its session with a server it talked to before") {
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, resume_session(server_ctx(), client_ctx())); });
}

// ---- SNI and mTLS -------------------------------------------------------------------

Task<void> sni_picks_certificate(std::shared_ptr<TlsContext> sctx) {
  Server server = co_await start_server(info_then_echo, "127.0.0.1", 0, tls_server(sctx));
  for (std::string name : {"a.test", "b.test"}) {
    auto cctx_local = client_ctx();
    auto [r, w] = co_await open_connection("127.0.0.1", server.port(), tls_to(cctx_local, name));
    CHECK(co_await r.readline() == "TLSv1.3 alpn= sni=" + name + " peer=\n");
    CHECK(tls_info(w)->peer_subject == "CN=" + name);
    CHECK(tls_info(w)->server_name == name);
  }
  // A name nobody has a certificate for gets the default one, which fails the check.
  bool refused = false;
  try {
    auto cctx_local = client_ctx();
    co_await open_connection("127.0.0.1", server.port(), tls_to(cctx_local, "c.test"));
  } catch (const TlsCertificateError& e) {
    refused = e.verify_message() == "hostname mismatch";
  }
  CHECK(refused);
}

TEST_CASE("the server's SNI callback chooses the certificate for the name the client asks for") {
  test::on_each_backend([](EventLoop& loop) {
    auto a = server_ctx("a");
    auto b = server_ctx("b");
    TlsServerOptions o;
    o.sni_callback = [a, b](std::string_view name) -> std::shared_ptr<TlsContext> {
      if (name == "a.test") return a;
      if (name == "b.test") return b;
      return nullptr;
    };
    test::run_bounded(loop, sni_picks_certificate(server_ctx("server", o)));
  });
}

Task<void> mutual_tls(std::shared_ptr<TlsContext> sctx) {
  Server server = co_await start_server(info_then_echo, "127.0.0.1", 0, tls_server(sctx));
  {
    TlsClientOptions o;
    o.cert_file = pki("client.pem");
    o.key_file = pki("client.key");
    auto cctx_local = client_ctx(o);
    auto [r, w] = co_await open_connection("127.0.0.1", server.port(), tls_to(cctx_local));
    CHECK(co_await r.readline() == "TLSv1.3 alpn= sni=localhost peer=CN=corio client\n");
  }
  // Without a certificate: TLS 1.3 finishes the client's handshake before
  // the server checks, so the refusal arrives as an alert on the first read.
  std::string what;
  try {
    auto cctx_local = client_ctx();
    auto [r, w] = co_await open_connection("127.0.0.1", server.port(), tls_to(cctx_local));
    w.write("hello\n");
    co_await r.readline();
  } catch (const TlsError& e) {
    what = e.what();
  }
  CHECK(what.find("certificate required") != std::string::npos);
  CHECK(server.connection_count() <= 1);
}

TEST_CASE("mutual TLS accepts a client with a certificate from the trusted CA and refuses one without") {
  test::on_each_backend([](EventLoop& loop) {
    TlsServerOptions o;
    o.verify_client = ClientCertMode::required;
    o.client_ca_file = pki("ca.pem");
    test::run_bounded(loop, mutual_tls(server_ctx("server", o)));
  });
}

// ---- bad certificates -----------------------------------------------------------------

Task<std::string> verify_failure(std::string cert, std::string host) {
  auto sctx = server_ctx(cert);
  Server server = co_await start_server(echo_lines, "127.0.0.1", 0, tls_server(sctx));
  std::string what;
  try {
    auto cctx_local = client_ctx();
    co_await open_connection("127.0.0.1", server.port(), tls_to(cctx_local, host));
    what = "connected";
  } catch (const TlsCertificateError& e) {
    what = e.verify_message() + " | " + e.what();
    CHECK(e.reason() == "certificate verify failed");
    CHECK(e.errno_value() == EPROTO);
  }
  co_return what;
}

TEST_CASE("expired, wrong-host, self-signed and unknown-CA certificates fail with the specific reason") {
  test::on_each_backend([](EventLoop& loop) {
    struct Case {
      const char* cert;
      const char* host;
      const char* reason;
    };
    for (Case c : {Case{"expired", "localhost", "certificate has expired"},
                   Case{"wronghost", "localhost", "hostname mismatch"},
                   Case{"a", "127.0.0.1", "IP address mismatch"},
                   Case{"selfsigned", "localhost", "self-signed certificate"},
                   Case{"unknown", "localhost", "unable to get local issuer certificate"}}) {
      std::string what = test::run_bounded(loop, verify_failure(c.cert, c.host));
      INFO(c.cert << ": " << what);
      CHECK(what.rfind(c.reason, 0) == 0);
      CHECK(what.find("TLS handshake with 127.0.0.1:") != std::string::npos);
      CHECK(what.find(std::string("certificate verify failed: ") + c.reason) != std::string::npos);
    }
  });
}

Task<void> defaults_are_safe(std::shared_ptr<TlsContext> sctx) {
  Server server = co_await start_server(echo_lines, "127.0.0.1", 0, tls_server(sctx));
  // The default context trusts the system store, which knows nothing of the test CA.
  auto system_only = TlsContext::client();
  std::string what;
  try {
    co_await open_connection("127.0.0.1", server.port(), tls_to(system_only));
  } catch (const TlsCertificateError& e) {
    what = e.verify_message();
  }
  CHECK(what == "unable to get local issuer certificate");
  // Without a name there is nothing to verify against: refused before connecting.
  auto cctx = client_ctx();
  StreamPair p = co_await open_connection("127.0.0.1", server.port());
  StartTlsOptions no_name;
  CHECK_THROWS_AS(co_await start_tls(p.reader, p.writer, cctx, no_name), std::invalid_argument);
}

TEST_CASE("a default client context verifies against the system store and needs a name to check") {
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, defaults_are_safe(server_ctx())); });
}

Task<void> tls12_session(std::shared_ptr<TlsContext> sctx, std::shared_ptr<TlsContext> cctx) {
  Server server = co_await start_server(echo_lines, "127.0.0.1", 0, tls_server(sctx));
  for (int i = 0; i < 2; ++i) {
    auto [r, w] = co_await open_connection("127.0.0.1", server.port(), tls_to(cctx));
    CHECK(tls_info(w)->version == "TLSv1.2");
    CHECK(tls_info(w)->session_reused == (i == 1));
    w.write("twelve\n");
    CHECK(co_await r.readline() == "twelve\n");
  }
}

TEST_CASE("TLS 1.2 works when the server goes no higher, and resumes too") {
  test::on_each_backend([](EventLoop& loop) {
    TlsServerOptions o;
    o.max_version = TlsVersion::tls1_2;
    test::run_bounded(loop, tls12_session(server_ctx("server", o), client_ctx()));
  });
}

// The documented spelling, braces inside the co_await: the name checked is
// the host connected to (a name, or an IP literal checked as an address).
Task<void> name_defaults_to_host(std::shared_ptr<TlsContext> sctx) {
  Server server = co_await start_server(echo_lines, "127.0.0.1", 0, {.tls = sctx});
  auto ctx = client_ctx();
  for (const char* host : {"localhost", "127.0.0.1"}) {
    auto [r, w] = co_await open_connection(host, server.port(), {.tls = ctx, .tls_handshake_timeout = 10s});
    w.write(std::string(host) + "\n");
    CHECK(co_await r.readline() == std::string(host) + "\n");
    CHECK(tls_info(w)->server_name == (std::string(host) == "localhost" ? "localhost" : ""));  // no SNI for IPs
  }
}

TEST_CASE("open_connection checks the certificate against the host it was given, name or IP") {
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, name_defaults_to_host(server_ctx())); });
}

Task<void> insecure_accepts_anything() {
  auto sctx = server_ctx("selfsigned");
  Server server = co_await start_server(echo_lines, "127.0.0.1", 0, tls_server(sctx));
  TlsClientOptions o;
  o.insecure_skip_verify_dangerous = true;
  auto cctx_local = client_ctx(o);
  auto [r, w] = co_await open_connection("127.0.0.1", server.port(), tls_to(cctx_local, "anything.invalid"));
  w.write("ok\n");
  CHECK(co_await r.readline() == "ok\n");
}

TEST_CASE("insecure_skip_verify_dangerous accepts a self-signed certificate for any name") {
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, insecure_accepts_anything()); });
}

TEST_CASE("bad context configuration throws TlsError with OpenSSL's reason") {
  TlsServerOptions o;
  o.cert_file = "/nonexistent/cert.pem";
  o.key_file = "/nonexistent/key.pem";
  CHECK_THROWS_AS(TlsContext::server(o), TlsError);
  TlsClientOptions c;
  c.ca_file = "/nonexistent/ca.pem";
  CHECK_THROWS_AS(TlsContext::client(c), TlsError);
  TlsServerOptions mismatched;
  mismatched.cert_file = pki("server.pem");
  mismatched.key_file = pki("client.key");
  try {
    TlsContext::server(mismatched);
    FAIL("a key that does not match the certificate was accepted");
  } catch (const TlsError& e) {
    CHECK(std::string(e.what()).find("key values mismatch") != std::string::npos);
  }
}

// ---- start_tls ------------------------------------------------------------------------

Task<void> starttls_server(StreamReader& r, StreamWriter& w, std::shared_ptr<TlsContext> ctx) {
  std::string command = co_await r.readline();
  if (command != "STARTTLS\n") co_return;
  w.write("OK\n");
  co_await start_tls(r, w, ctx);
  co_await echo_lines(r, w);
}

Task<void> upgrade_in_place(std::shared_ptr<TlsContext> sctx) {
  ClientHandler h = [sctx](StreamReader& r, StreamWriter& w) { return starttls_server(r, w, sctx); };
  Server server = co_await start_server(h, "127.0.0.1", 0);
  auto [r, w] = co_await open_connection("127.0.0.1", server.port());
  w.write("STARTTLS\n");
  CHECK(co_await r.readline() == "OK\n");
  CHECK(!tls_info(w));
  StartTlsOptions o;
  o.server_hostname = "localhost";
  co_await start_tls(r, w, client_ctx(), o);
  REQUIRE(tls_info(w));
  CHECK(tls_info(w)->peer_subject == "CN=localhost");
  w.write("secret\n");
  CHECK(co_await r.readline() == "secret\n");
}

TEST_CASE("start_tls upgrades a plain connection in place on both sides") {
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, upgrade_in_place(server_ctx())); });
}

// ---- bad peers --------------------------------------------------------------------------

Task<void> send_garbage(StreamReader&, StreamWriter& w) {
  w.write("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
  co_await w.drain();
}

Task<void> stall(StreamReader& r, StreamWriter&) {
  co_await sleep(5s);
  (void)r;
}

Task<void> client_meets_bad_servers() {
  Server garbage = co_await start_server(send_garbage, "127.0.0.1", 0);
  std::string what;
  try {
    auto cctx_local = client_ctx();
    co_await open_connection("127.0.0.1", garbage.port(), tls_to(cctx_local));
  } catch (const TlsError& e) {
    what = e.what();
  }
  CHECK(what.find("TLS handshake with 127.0.0.1:") != std::string::npos);
  CHECK(what.find("wrong version number") != std::string::npos);

  Server staller = co_await start_server(stall, "127.0.0.1", 0);
  auto cctx = client_ctx();
  ConnectOptions o = tls_to(cctx);
  o.tls_handshake_timeout = 300ms;
  auto t0 = Clock::now();
  bool timed_out = false;
  try {
    co_await open_connection("127.0.0.1", staller.port(), o);
  } catch (const TlsHandshakeTimeout& e) {
    timed_out = std::string(e.what()).find("timed out after 300 ms") != std::string::npos;
  }
  CHECK(timed_out);
  CHECK(Clock::now() - t0 < 4s);
}

TEST_CASE("a client gets TlsError from a server that answers garbage and a timeout from one that stalls") {
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, client_meets_bad_servers()); });
}

// After start_tls() failed, the connection must not pretend to work: a
// write() is not held back for a handshake that will never finish, and
// drain() and a read throw the handshake's error.
Task<void> expect_failed_session(StreamReader& r, StreamWriter& w, std::string* drain_what, std::string* read_what) {
  w.write("after the failed handshake\n");
  try {
    co_await wait_for(w.drain(), 5s);
    *drain_what = "drain returned";
  } catch (const TlsHandshakeTimeout& e) {  // the handshake's, not wait_for's
    *drain_what = e.what();
  } catch (const TimeoutError& e) {
    *drain_what = std::string("timeout: ") + e.what();
  } catch (const OSError& e) {
    *drain_what = e.what();
  }
  try {
    std::string got = co_await wait_for(r.read(100), 5s);
    *read_what = "read returned '" + got + "'";
  } catch (const TlsHandshakeTimeout& e) {
    *read_what = e.what();
  } catch (const TimeoutError& e) {
    *read_what = std::string("timeout: ") + e.what();
  } catch (const OSError& e) {
    *read_what = e.what();
  }
}

Task<void> writes_after_failed_start_tls() {
  Server garbage = co_await start_server(send_garbage, "127.0.0.1", 0);
  auto cctx = client_ctx();
  {
    auto [r, w] = co_await open_connection("127.0.0.1", garbage.port());
    std::string handshake_what;
    try {
      co_await start_tls(r, w, cctx, {.server_hostname = "localhost"});
    } catch (const TlsError& e) {
      handshake_what = e.what();
    }
    REQUIRE(handshake_what.find("TLS handshake with") != std::string::npos);
    std::string drain_what, read_what;
    co_await expect_failed_session(r, w, &drain_what, &read_what);
    CHECK(drain_what == handshake_what);
    CHECK(read_what == handshake_what);
    w.close();
    co_await wait_for(w.wait_closed(), 5s);
  }
  Server staller = co_await start_server(stall, "127.0.0.1", 0);
  {
    auto [r, w] = co_await open_connection("127.0.0.1", staller.port());
    std::string handshake_what;
    try {
      co_await start_tls(r, w, cctx, {.server_hostname = "localhost", .handshake_timeout = 200ms});
    } catch (const TlsHandshakeTimeout& e) {
      handshake_what = e.what();
    }
    REQUIRE(handshake_what.find("timed out after 200 ms") != std::string::npos);
    std::string drain_what, read_what;
    co_await expect_failed_session(r, w, &drain_what, &read_what);
    CHECK(drain_what == handshake_what);
    CHECK(read_what == handshake_what);
    w.abort();
  }
  {
    // Cancelled (here by wait_for): the CancelledError is the caller's; the
    // connection reports that its handshake was abandoned.
    auto [r, w] = co_await open_connection("127.0.0.1", staller.port());
    bool timed_out = false;
    try {
      co_await wait_for(start_tls(r, w, cctx, {.server_hostname = "localhost", .handshake_timeout = 60s}), 200ms);
    } catch (const TimeoutError&) {
      timed_out = true;
    }
    REQUIRE(timed_out);
    std::string drain_what, read_what;
    co_await expect_failed_session(r, w, &drain_what, &read_what);
    CHECK(drain_what.find("TLS handshake with 127.0.0.1:") != std::string::npos);
    CHECK(drain_what.find("cancelled; the connection is unusable") != std::string::npos);
    CHECK(read_what == drain_what);
    w.abort();
  }
}

TEST_CASE("after start_tls() failed, drain() and reads throw its error instead of holding writes for a handshake that never finishes") {
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, writes_after_failed_start_tls()); });
}

// A raw client: sends `bytes` then waits for the server to hang up.
Task<std::string> raw_client(std::uint16_t port, std::string bytes) {
  auto [r, w] = co_await open_connection("127.0.0.1", port);
  if (!bytes.empty()) w.write(bytes);
  std::string got;
  try {
    for (;;) {
      std::string part = co_await r.read(4096);
      if (part.empty()) break;
      got += part;
    }
  } catch (const ConnectionResetError&) {
    got += "[reset]";
  }
  co_return got;
}

Task<void> server_survives_bad_clients(std::shared_ptr<TlsContext> sctx) {
  ServerOptions so = tls_server(sctx);
  so.tls_handshake_timeout = 500ms;
  Server server = co_await start_server(echo_lines, "127.0.0.1", 0, so);
  auto t0 = Clock::now();
  // Garbage instead of a ClientHello, and a ClientHello cut short (then silence).
  TaskHandle<std::string> garbage = create_task(raw_client(server.port(), "GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  TaskHandle<std::string> staller = create_task(raw_client(server.port(), std::string("\x16\x03\x01\x02\x00\x01", 6)));
  // Meanwhile a real client is served.
  auto cctx_local = client_ctx();
  auto [r, w] = co_await open_connection("127.0.0.1", server.port(), tls_to(cctx_local));
  for (int i = 0; i < 5; ++i) {
    w.write("still here\n");
    CHECK(co_await r.readline() == "still here\n");
  }
  std::string g = co_await garbage;  // the server's alert (if any), then EOF
  CHECK(g.size() < 64);
  std::string s = co_await staller;  // EOF once the handshake timeout passed
  CHECK(s.size() < 64);
  auto elapsed = Clock::now() - t0;
  CHECK(elapsed >= 450ms);
  CHECK(elapsed < 10s);
  w.write("after\n");
  CHECK(co_await r.readline() == "after\n");
  CHECK(server.connection_count() == 1);
}

TEST_CASE("a server drops clients that send garbage or stall mid-handshake and keeps serving others") {
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, server_survives_bad_clients(server_ctx())); });
}

// After the handshake, answers the client's first line with bytes that are
// not a TLS record (straight on the socket), then counts the plaintext it
// still receives.
Task<void> garbage_after_handshake(StreamReader& r, StreamWriter& w, std::size_t* got) {
  (void)co_await r.readline();
  const std::string junk = "garbage garbage garbage garbage\n";
  CHECK(::send(w.socket().fd(), junk.data(), junk.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(junk.size()));
  try {
    for (;;) {
      std::string part = co_await r.read(65536);
      if (part.empty()) break;
      *got += part.size();
    }
  } catch (const OSError&) {
    // the client's alert, or its close
  }
}

Task<void> failed_session_fails_drain(std::shared_ptr<TlsContext> sctx, std::shared_ptr<TlsContext> cctx) {
  std::size_t server_got = 0;
  ClientHandler h = [&server_got](StreamReader& r, StreamWriter& w) {
    return garbage_after_handshake(r, w, &server_got);
  };
  Server server = co_await start_server(h, "127.0.0.1", 0, tls_server(sctx));
  auto [r, w] = co_await open_connection("127.0.0.1", server.port(), tls_to(cctx));
  w.write("hello\n");
  // OpenSSL's reason depends on how the garbage arrives ("wrong version
  // number" in one piece; short reads, as under fault injection, can give
  // "decryption failed or bad record mac"): drain() must give the same one.
  std::string read_reason;
  try {
    (void)co_await r.readline();
  } catch (const TlsError& e) {
    read_reason = e.reason();
  }
  CHECK(!read_reason.empty());
  // Nothing can be encrypted any more: the bytes go nowhere, and drain()
  // says so with the reason and the peer, every time it is asked.
  w.write(std::string(1000, 'x'));
  for (int i = 0; i < 2; ++i) {
    std::string what, reason;
    try {
      co_await w.drain();
    } catch (const TlsError& e) {
      what = e.what();
      reason = e.reason();
    }
    CHECK(!reason.empty());
    CHECK(reason == read_reason);
    CHECK(what.find(w.peer_address().to_string()) != std::string::npos);
  }
  w.close();
  co_await wait_for(w.wait_closed(), 5s);
  server.close();
  co_await wait_for(server.wait_closed(), 5s);
  CHECK(server_got == 0u);
}

TEST_CASE("after the session failed (garbage from the peer), drain() throws the TlsError instead of dropping writes silently") {
  test::on_each_backend([](EventLoop& loop) {
    test::run_bounded(loop, failed_session_fails_drain(server_ctx(), client_ctx()));
  });
}

// Makes the kernel hold little of what a socket sends or receives (a few
// hundred KiB between both ends), so that a bulk write keeps a send in
// flight until the peer reads. Not less: with 16 KiB, set before any data
// flowed, loopback TCP (its MSS is 64 KiB) moved the 8 MiB below at about
// 0.2 MB/s, 37 s a run.
void small_socket_buffers(const StreamWriter& w) {
  int n = 64 * 1024;
  CHECK(::setsockopt(w.socket().fd(), SOL_SOCKET, SO_SNDBUF, &n, sizeof n) == 0);
  CHECK(::setsockopt(w.socket().fd(), SOL_SOCKET, SO_RCVBUF, &n, sizeof n) == 0);
}

// A record header no TLS stack accepts (a 64 KiB record): the server's
// session fails with an alert as soon as these five bytes are read, and no
// byte is left unread (which would make the server's close a reset).
const std::string kBadRecordHeader("\x17\x03\x03\xff\xff", 5);
constexpr std::size_t kBulk = 8 * 1024 * 1024;

// Writes kBulk bytes at once (far more than the socket buffers hold: the
// client reads only one byte until told to), then reads until the client's
// bad record fails the session: the alert is queued behind a send in flight.
// `queued`: what was still buffered then (the premise: not 0).
Task<void> bulk_then_failed_session(StreamReader& r, StreamWriter& w, Event* failed, std::string* what,
                                    std::size_t* queued) {
  (void)co_await r.readline();
  small_socket_buffers(w);
  w.write(std::string(kBulk, 'b'));
  try {
    while (!(co_await r.read(100)).empty()) {
    }
    *what = "EOF";
  } catch (const TlsError& e) {
    *what = e.what();
  }
  *queued = w.write_buffer_size();
  failed->set();
}

Task<void> wait_set(Event* e) { co_await e->wait(); }

Task<void> alert_after_send_in_flight(std::shared_ptr<TlsContext> sctx, std::shared_ptr<TlsContext> cctx) {
  Event failed;
  std::string server_what;
  std::size_t queued = 0;
  ClientHandler h = [&failed, &server_what, &queued](StreamReader& r, StreamWriter& w) {
    return bulk_then_failed_session(r, w, &failed, &server_what, &queued);
  };
  Server server = co_await start_server(h, "127.0.0.1", 0, tls_server(sctx));
  auto [r, w] = co_await open_connection("127.0.0.1", server.port(), tls_to(cctx));
  small_socket_buffers(w);
  w.write("hello\n");
  co_await w.drain();
  std::size_t got = (co_await wait_for(r.readexactly(1), 5s)).size();  // the bulk send is under way
  CHECK(::send(w.socket().fd(), kBadRecordHeader.data(), kBadRecordHeader.size(), MSG_NOSIGNAL) == 5);
  co_await wait_for(wait_set(&failed), 5s);
  CHECK(server_what.find("TLS read from") != std::string::npos);
  CHECK(queued > 0u);  // the alert waits behind bytes the kernel has not taken
  // Everything encrypted before the failure arrives, then the alert.
  std::string reason;
  try {
    for (;;) {
      std::string part = co_await wait_for(r.read(65536), 5s);
      if (part.empty()) break;
      got += part.size();
    }
  } catch (const TlsError& e) {
    reason = e.reason();
  }
  CHECK(got == kBulk);
  CHECK(reason.find("alert") != std::string::npos);
  w.close();
  co_await wait_for(w.wait_closed(), 5s);
}

TEST_CASE("a TLS session that fails while a send is in flight still sends what it encrypted, then its alert") {
  test::on_each_backend([](EventLoop& loop) {
    test::run_bounded(loop, alert_after_send_in_flight(server_ctx(), client_ctx()));
  });
}

// Logs `closed` if w closes within d, else `open`.
Task<void> log_closed_within(StreamWriter& w, Duration d, std::vector<std::string>* log, const char* closed,
                             const char* open) {
  try {
    co_await wait_for(w.wait_closed(), d);
    log->push_back(closed);
  } catch (const TimeoutError&) {
    log->push_back(open);
  }
}

// As bulk_then_failed_session, but the client never reads on: close() waits
// for the failed session's flush as for any queued bytes (the peer may still
// read), and abort() is what ends it, at once.
Task<void> failed_session_close_then_abort(StreamReader& r, StreamWriter& w, Event* done,
                                           std::vector<std::string>* log) {
  (void)co_await r.readline();
  small_socket_buffers(w);
  w.write(std::string(kBulk, 'b'));
  try {
    while (!(co_await r.read(100)).empty()) {
    }
    log->push_back("EOF");
  } catch (const TlsError&) {
    log->push_back("failed");
  }
  w.close();
  co_await log_closed_within(w, 100ms, log, "closed by close()", "still flushing");
  w.abort();
  co_await log_closed_within(w, 2s, log, "closed by abort()", "abort() did not close");
  done->set();
}

Task<void> failed_session_abort_bounds_close(std::shared_ptr<TlsContext> sctx, std::shared_ptr<TlsContext> cctx) {
  Event done;
  std::vector<std::string> log;
  ClientHandler h = [&done, &log](StreamReader& r, StreamWriter& w) {
    return failed_session_close_then_abort(r, w, &done, &log);
  };
  Server server = co_await start_server(h, "127.0.0.1", 0, tls_server(sctx));
  auto [r, w] = co_await open_connection("127.0.0.1", server.port(), tls_to(cctx));
  small_socket_buffers(w);
  w.write("hello\n");
  co_await w.drain();
  (void)co_await wait_for(r.readexactly(1), 5s);  // the bulk send is under way
  CHECK(::send(w.socket().fd(), kBadRecordHeader.data(), kBadRecordHeader.size(), MSG_NOSIGNAL) == 5);
  co_await wait_for(wait_set(&done), 5s);
  CHECK(log == std::vector<std::string>{"failed", "still flushing", "closed by abort()"});
  w.abort();
}

TEST_CASE("a failed TLS session's close() waits for its flush like any queued bytes, and abort() ends it when the peer never reads") {
  test::on_each_backend([](EventLoop& loop) {
    test::run_bounded(loop, failed_session_abort_bounds_close(server_ctx(), client_ctx()));
  });
}

// A handshake record carrying a ServerHello, sent to a server: it fails the
// server's handshake with an unexpected_message alert once these nine bytes
// are read (none is left unread).
const std::string kServerHelloToServer("\x16\x03\x01\x00\x04\x02\x00\x00\x00", 9);

// Queues kBulk plain bytes the client does not read yet, then start_tls()
// as the server: the handshake fails while that send is in flight, so the
// alert waits behind it. Then writes and drains as a user would.
// `queued`: what was still buffered when start_tls() failed (the premise:
// not 0).
Task<void> bulk_then_failed_start_tls(StreamReader& r, StreamWriter& w, std::shared_ptr<TlsContext> ctx, Event* failed,
                                      std::vector<std::string>* whats, std::size_t* queued) {
  small_socket_buffers(w);
  w.write(std::string(kBulk, 'p'));
  std::string handshake_what;
  try {
    co_await start_tls(r, w, ctx);
  } catch (const TlsError& e) {
    handshake_what = e.what();
  }
  *queued = w.write_buffer_size();
  std::string drain_what, read_what;
  co_await expect_failed_session(r, w, &drain_what, &read_what);
  *whats = {handshake_what, drain_what, read_what};
  failed->set();
}

Task<void> failed_server_start_tls(std::shared_ptr<TlsContext> sctx) {
  Event failed;
  std::vector<std::string> whats;
  std::size_t queued = 0;
  ClientHandler h = [&failed, &whats, &queued, sctx](StreamReader& r, StreamWriter& w) {
    return bulk_then_failed_start_tls(r, w, sctx, &failed, &whats, &queued);
  };
  Server server = co_await start_server(h, "127.0.0.1", 0);
  auto [r, w] = co_await open_connection("127.0.0.1", server.port());
  small_socket_buffers(w);
  CHECK(::send(w.socket().fd(), kServerHelloToServer.data(), kServerHelloToServer.size(), MSG_NOSIGNAL) == 9);
  co_await wait_for(wait_set(&failed), 5s);
  REQUIRE(whats.size() == 3u);
  CHECK(queued > 0u);  // the alert waits behind bytes the kernel has not taken
  CHECK(whats[0].find("TLS handshake with 127.0.0.1:") != std::string::npos);
  CHECK(whats[1] == whats[0]);  // drain() after write()
  CHECK(whats[2] == whats[0]);  // a read
  // The plain bytes queued before start_tls(), then the server's alert
  // record (content type 21, length 2, level fatal), then the end.
  std::string got;
  try {
    for (;;) {
      std::string part = co_await wait_for(r.read(65536), 5s);
      if (part.empty()) break;
      got += part;
    }
  } catch (const ConnectionResetError&) {
    got += "[reset]";
  }
  REQUIRE(got.size() >= kBulk + 7);
  CHECK(got.compare(0, kBulk, std::string(kBulk, 'p')) == 0);
  std::string tail = got.substr(kBulk);
  CHECK(tail.size() == 7u);
  CHECK(tail[0] == '\x15');
  CHECK(tail.substr(3, 3) == std::string("\x00\x02\x02", 3));
}

TEST_CASE("a server whose start_tls() failed with a send in flight still sends its alert, and its drain() throws the handshake's error") {
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, failed_server_start_tls(server_ctx())); });
}

// ---- real peers: openssl s_server, curl ----------------------------------------------------

Task<void> talk_to_s_server(std::uint16_t port) {
  TlsClientOptions o;
  o.alpn = {"h2", "http/1.1"};
  auto cctx_local = client_ctx(o);
  auto [r, w] = co_await open_connection("127.0.0.1", port, tls_to(cctx_local));
  CHECK(tls_info(w)->alpn == "http/1.1");
  CHECK(tls_info(w)->peer_subject == "CN=localhost");
  w.write("corio\n");
  CHECK(co_await r.readline() == "oiroc\n");  // -rev answers each line reversed
}

TEST_CASE("a corio client talks to openssl s_server and negotiates ALPN") {
  test::on_each_backend([](EventLoop& loop) {
    std::uint16_t port = test::free_port();
    test::ChildProcess s({"/usr/bin/openssl", "s_server", "-accept", "127.0.0.1:" + std::to_string(port), "-cert",
                          pki("server.pem"), "-key", pki("server.key"), "-alpn", "http/1.1", "-rev"});
    REQUIRE(s.wait_for_stdout("ACCEPT", 10000ms));
    test::run_bounded(loop, talk_to_s_server(port));
  });
}

Task<void> refused_old_protocol(std::uint16_t port) {
  std::string what;
  try {
    auto cctx_local = client_ctx();
    co_await open_connection("127.0.0.1", port, tls_to(cctx_local));
  } catch (const TlsError& e) {
    what = e.what();
  }
  INFO(what);
  CHECK(what.find("TLS handshake with 127.0.0.1:") != std::string::npos);
  CHECK((what.find("protocol version") != std::string::npos || what.find("unsupported protocol") != std::string::npos));
}

TEST_CASE("a server that speaks only TLS 1.1 is refused") {
  test::on_each_backend([](EventLoop& loop) {
    std::uint16_t port = test::free_port();
    test::ChildProcess s({"/usr/bin/openssl", "s_server", "-accept", "127.0.0.1:" + std::to_string(port), "-cert",
                          pki("server.pem"), "-key", pki("server.key"), "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0",
                          "-rev"});
    REQUIRE(s.wait_for_stdout("ACCEPT", 10000ms));
    test::run_bounded(loop, refused_old_protocol(port));
  });
}

// A minimal HTTP/1.1 responder: the body says what TLS negotiated.
Task<void> http_hello(StreamReader& r, StreamWriter& w) {
  for (;;) {
    std::string line = co_await r.readline();
    if (line.empty() || line == "\r\n") break;
  }
  std::optional<TlsInfo> info = tls_info(w);
  std::string body = "alpn=" + info->alpn + " sni=" + info->server_name + " peer=" + info->peer_subject + "\n";
  w.write("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: " +
          std::to_string(body.size()) + "\r\n\r\n" + body);
  co_await w.drain();
}

Task<void> curl_fetches(std::shared_ptr<TlsContext> sctx, bool mtls) {
  Server server = co_await start_server(http_hello, "127.0.0.1", 0, tls_server(sctx));
  const std::string port = std::to_string(server.port());
  const std::string base = "timeout 20 curl -sS --cacert " + pki("ca.pem") + " --resolve localhost:" + port +
                           ":127.0.0.1 https://localhost:" + port + "/";
  // (Commands are built before the co_await: g++ 12 mishandles some
  // temporaries inside co_await expressions.)
  std::string cmd = base + (mtls ? " --cert " + pki("client.pem") + " --key " + pki("client.key") : "") + " 2>&1";
  auto [st, out] = co_await to_thread(test::run_command, cmd);
  CHECK(st == 0);
  CHECK(out == std::string("alpn=http/1.1 sni=localhost peer=") + (mtls ? "CN=corio client" : "") + "\n");
  if (mtls) {
    std::string without = base + " 2>&1";
    auto [st2, out2] = co_await to_thread(test::run_command, without);
    INFO(out2);
    CHECK(st2 != 0);  // no client certificate: refused
  }
}

TEST_CASE("curl fetches from a corio TLS server, with and without a required client certificate") {
  test::on_each_backend([](EventLoop& loop) {
    TlsServerOptions o;
    o.alpn = {"http/1.1"};
    test::run_bounded(loop, curl_fetches(server_ctx("server", o), false));
    o.verify_client = ClientCertMode::required;
    o.client_ca_file = pki("ca.pem");
    test::run_bounded(loop, curl_fetches(server_ctx("server", o), true));
  });
}

// Our close_notify reaches a strict peer: s_client reports no truncation.
Task<void> s_client_sees_close_notify(std::shared_ptr<TlsContext> sctx) {
  Server server = co_await start_server(http_hello, "127.0.0.1", 0, tls_server(sctx));
  const std::string cmd = "printf 'GET / HTTP/1.1\\r\\n\\r\\n' | timeout 20 openssl s_client -connect 127.0.0.1:" +
                          std::to_string(server.port()) + " -CAfile " + pki("ca.pem") +
                          " -verify_return_error -verify_hostname localhost -servername localhost -ign_eof 2>&1";
  auto [st, out] = co_await to_thread(test::run_command, cmd);
  INFO(out);
  CHECK(st == 0);
  CHECK(out.find("Verify return code: 0 (ok)") != std::string::npos);
  CHECK(out.find("alpn= sni=localhost") != std::string::npos);
  CHECK(out.find("unexpected eof") == std::string::npos);
}

TEST_CASE("openssl s_client verifies a corio server and sees its close_notify") {
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, s_client_sees_close_notify(server_ctx())); });
}

// ---- graceful shutdown, stale pooled connections, a peer flooding after close_notify, wrong roles ----

// Reads a line, answers, waits, then reads one more line (which the client
// sends after the graceful shutdown began).
Task<void> line_pause_line(StreamReader& r, StreamWriter& w, std::string* second) {
  std::string first = co_await r.readline();
  w.write("ack " + first);
  co_await w.drain();
  co_await sleep(400ms);
  try {
    std::string l = co_await r.readline();
    *second = l.empty() ? "eof" : "line of " + std::to_string(l.size());
  } catch (const std::exception& e) {
    *second = std::string("threw: ") + e.what();
  }
  w.close();
}

// end_idle_reads()'s soft EOF is not the raw stream's end: a record still
// arriving in pieces (a 40 KB write on io_uring) is decoded, not taken for a
// truncated stream ("unexpected eof while reading", then a fatal alert).
Task<void> graceful_shutdown_mid_record(EventLoop& loop) {
  auto sctx = server_ctx();
  auto cctx = client_ctx();
  std::string second;
  ClientHandler h = [&second](StreamReader& r, StreamWriter& w) { return line_pause_line(r, w, &second); };
  Server s = co_await start_server(h, "127.0.0.1", 0, tls_server(sctx));
  auto [r, w] = co_await open_connection("127.0.0.1", s.port(), tls_to(cctx));
  w.write("one\n");
  CHECK(co_await r.readline() == "ack one\n");
  co_await sleep(100ms);
  loop.request_shutdown();
  co_await sleep(50ms);
  w.write(std::string(40000, 'y') + "\n");
  std::string end;
  try {
    std::string rest = co_await wait_for(r.read(), 5s);
    end = "clean eof after " + std::to_string(rest.size());
  } catch (const std::exception& e) {
    end = std::string("threw: ") + e.what();
  }
  co_await wait_for(s.wait_closed(), 5s);
  // The line (io_uring: it was being received) or the shutdown's EOF (epoll:
  // nothing was read yet), as end_idle_reads() promises; never an error.
  CHECK((second == "line of 40001" || second == "eof"));
  CHECK(end == "clean eof after 0");
}

TEST_CASE("a graceful shutdown does not cut a TLS record that arrives in pieces") {
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, graceful_shutdown_mid_record(loop)); });
}

// One HTTP response, then the connection is dropped without close_notify
// (as many servers' idle timeouts do).
Task<void> one_response_then_drop(StreamReader& r, StreamWriter& w) {
  for (;;) {
    std::string l = co_await r.readline();
    if (l.empty() || l == "\r\n") break;
  }
  w.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  co_await w.drain();
  co_await sleep(100ms);
  w.abort();
}

Task<void> https_stale_pooled_connection() {
  auto sctx = server_ctx();
  Server s = co_await start_server(one_response_then_drop, "127.0.0.1", 0, tls_server(sctx));
  http::ClientOptions o;
  o.tls.ca_file = pki("ca.pem");
  http::Client c(o);
  const std::string url = "https://localhost:" + std::to_string(s.port()) + "/";
  CHECK((co_await c.get(url)).body == "ok");
  co_await sleep(300ms);
  std::string second;
  try {
    second = (co_await c.get(url)).body;  // the pooled connection is dead: a fresh one
  } catch (const std::exception& e) {
    second = std::string("threw: ") + e.what();
  }
  CHECK(second == "ok");
}

TEST_CASE("an https GET on a pooled connection closed without close_notify is retried on a new one") {
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, https_stale_pooled_connection()); });
}

// Memory the process holds, in MiB: its RSS, or under ASan (whose 256 MiB
// quarantine keeps freed blocks resident) the bytes its allocator has live.
long rss_mib() {
#if defined(__SANITIZE_ADDRESS__)
  return static_cast<long>(__sanitizer_get_current_allocated_bytes() >> 20);
#else
  std::ifstream f("/proc/self/statm");
  long size = 0, resident = 0;
  f >> size >> resident;
  return resident * ::sysconf(_SC_PAGESIZE) / (1 << 20);
#endif
}

// A blocking OpenSSL server on a thread: "hi\n", close_notify without FIN,
// then `mib` MiB of raw bytes.
struct FloodingTlsPeer {
  int lfd = -1;
  std::uint16_t port = 0;
  std::atomic<bool> done{false};
  std::atomic<long> sent_mib{0};
  std::thread th;

  FloodingTlsPeer(SSL_CTX* ctx, int mib) {
    lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    REQUIRE(::bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(lfd, 1) == 0);
    REQUIRE(::getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    port = ntohs(a.sin_port);
    th = std::thread([this, ctx, mib] {
      const int fd = ::accept(lfd, nullptr, nullptr);
      SSL* ssl = SSL_new(ctx);
      SSL_set_fd(ssl, fd);
      if (SSL_accept(ssl) == 1) {
        SSL_write(ssl, "hi\n", 3);
        SSL_shutdown(ssl);
        const std::string junk(1 << 20, 'j');
        for (int i = 0; i < mib; ++i, ++sent_mib) {
          for (std::size_t off = 0; off < junk.size();) {
            const ssize_t n = ::send(fd, junk.data() + off, junk.size() - off, MSG_NOSIGNAL);
            if (n <= 0) i = mib;
            if (n <= 0) break;
            off += static_cast<std::size_t>(n);
          }
        }
      }
      SSL_free(ssl);
      ::close(fd);
      done = true;
    });
  }
  ~FloodingTlsPeer() {
    if (th.joinable()) th.join();
    ::close(lfd);
  }
};

// Bytes after the peer's close_notify are never decoded: they are dropped,
// not kept (the connection stays open for our own sending).
Task<void> flood_after_close_notify() {
  auto sctx = server_ctx();
  auto cctx = client_ctx();
  FloodingTlsPeer peer(sctx->native_handle(), 128);
  {
    auto [r, w] = co_await open_connection("127.0.0.1", peer.port, tls_to(cctx));
    CHECK(co_await wait_for(r.readline(), 5s) == "hi\n");
    CHECK(co_await wait_for(r.read(), 5s) == "");
    const long before = rss_mib();
    for (int i = 0; i < 150 && !peer.done; ++i) co_await sleep(20ms);
    MESSAGE("the peer sent " << peer.sent_mib.load() << " MiB after its close_notify; RSS grew by "
                             << rss_mib() - before << " MiB (live heap under ASan)");
    CHECK(rss_mib() - before < 48);
    w.abort();
  }
  for (int i = 0; i < 250 && !peer.done; ++i) co_await sleep(20ms);
}

TEST_CASE("bytes a peer sends after its close_notify are dropped, not buffered without bound") {
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, flood_after_close_notify()); });
}

// A context of the wrong role is refused at once (Python: "Cannot create a
// client socket with a PROTOCOL_TLS_SERVER context"), not after a
// handshake timeout.
Task<void> wrong_role_contexts() {
  auto sctx = server_ctx();
  auto cctx = client_ctx();
  Server s = co_await start_server(echo_lines, "127.0.0.1", 0, tls_server(sctx));
  ConnectOptions o = tls_to(sctx);
  o.tls_handshake_timeout = 5s;
  const auto t0 = Clock::now();
  CHECK_THROWS_WITH_AS(co_await open_connection("127.0.0.1", s.port(), o),
                       doctest::Contains("is a server context"), std::invalid_argument);
  CHECK(Clock::now() - t0 < 1s);
  CHECK_THROWS_WITH_AS(co_await start_server(echo_lines, "127.0.0.1", 0, tls_server(cctx)),
                       doctest::Contains("is a client context"), std::invalid_argument);
}

TEST_CASE("open_connection refuses a server TLS context and start_server a client one") {
  test::on_each_backend([](EventLoop& loop) { test::run_bounded(loop, wrong_role_contexts()); });
}

}  // namespace
