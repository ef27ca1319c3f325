#pragma once
// corio::http::Client: an HTTP/1.1 client with a per-host connection pool
// (aiohttp's ClientSession, requests' Session).
//
//   corio::http::Client client;                                  // one per program, reused
//   auto r = co_await client.get("http://example.test/data.json");
//   r.raise_for_status();                                         // HttpStatusError for 4xx/5xx
//   use(r.body);
//
//   auto s = co_await client.stream("GET", "http://example.test/big.iso");
//   while (true) {                                                // bounded memory
//     std::string piece = co_await s.read_chunk();
//     if (piece.empty()) break;
//     out.write(piece);
//   }
//
// Pool: idle keep-alive connections are kept per origin (scheme, host, port)
// and reused most-recently-used first; at most max_connections_per_host
// requests run per origin and max_connections overall, and callers beyond
// that wait in FIFO order. The total of open connections (busy + idle) never
// passes max_connections: an idle connection of another origin is closed to
// make room. Idle connections older than idle_timeout are closed by a sweep
// that runs (at most once a second) when a request starts, and an origin's
// record is dropped once it has no connection and nobody waits for it, so a
// crawler that visits a million hosts holds only the hosts it is using. A request that fails on a reused connection before any response
// byte arrived (the server closed it while idle) is retried once on a new
// connection when the method is idempotent. Credentials in a URL
// ("http://user:pass@host/") are sent as Basic authorization unless the
// request has an Authorization field, and are not kept in the URL
// (ClientResponse::url, messages); like that field, they are dropped on a
// redirect to another origin. A connection that answered 101
// Switching Protocols speaks another protocol from then on: it is closed
// once its response is done with, never pooled.
//
// Redirects (301, 302, 303, 307, 308) are followed up to max_redirects: 303,
// and 301/302 after a POST, become GET without a body; 307/308 keep method and
// body. Authorization and Cookie headers are not sent to another origin.
// ClientResponse::history lists the URLs that redirected.
//
// Bodies: Content-Length, chunked and close-delimited; gzip/deflate decoded
// (Accept-Encoding is sent) unless ClientOptions::decompress is false.
// Transfer codings before chunked ("Transfer-Encoding: gzip, chunked") are
// always decoded, under the same caps; any other is a MalformedResponse. A body
// that ends early is an IncompleteBody error, never a short "complete" body;
// request() caps a whole body at max_body_size (BodyTooLarge); a response
// head without an end is a MalformedResponse once it passes max_header_bytes.
//
// Timeouts: connect_timeout per address tried (ConnectTimeoutError),
// read_timeout per read while waiting for the server (ReadTimeout), and
// total_timeout for a whole request() including redirects (TimeoutError).
//
// Errors, by kind: HttpStatusError (raise_for_status), TooManyRedirects,
// MalformedResponse and IncompleteBody (what was wrong), BodyTooLarge,
// ReadTimeout/ConnectTimeoutError, TlsError/TlsCertificateError (with
// OpenSSL's reason: "certificate has expired"), ConnectionRefusedError /
// ConnectionResetError / NameNotFoundError from net/errors.hpp, UrlError for
// a bad URL, UnsupportedScheme for other than http/https.
//
// Concurrency: any number of tasks on the client's loop may use one Client at
// once. Cancellation: a cancelled request closes its connection (a half-read
// response cannot be reused) and releases its slot.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "coro/errors.hpp"
#include "coro/semaphore.hpp"
#include "coro/task.hpp"
#include "loop/event_loop.hpp"
#include "net/http/content_coding.hpp"
#include "net/http/message.hpp"
#include "net/http/parser.hpp"
#include "net/http/url.hpp"
#include "net/stream.hpp"
#include "net/tls.hpp"

namespace corio::http {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

// raise_for_status(): a 4xx or 5xx answer ("404 Not Found for http://h/x").
class HttpStatusError : public HttpError {
 public:
  using HttpError::HttpError;
};
// More redirects than allowed; the message lists the chain.
class TooManyRedirects : public HttpError {
 public:
  using HttpError::HttpError;
};
// The server's response broke HTTP/1.1 (what is wrong is in the message).
class MalformedResponse : public HttpError {
 public:
  explicit MalformedResponse(const std::string& what) : HttpError(502, what) {}
};
// The connection ended before the body did.
class IncompleteBody : public MalformedResponse {
 public:
  using MalformedResponse::MalformedResponse;
};
// The server closed the connection without sending a response head.
class ServerDisconnected : public MalformedResponse {
 public:
  using MalformedResponse::MalformedResponse;
};
// No byte from the server within read_timeout.
class ReadTimeout : public TimeoutError {
 public:
  using TimeoutError::TimeoutError;
};
class UnsupportedScheme : public ValueError {
 public:
  using ValueError::ValueError;
};

// What ClientOptions::trace reports, in order, for each exchange.
enum class TraceEvent : std::uint8_t {
  connecting,     // text: "host:port"
  connected,      // text: "host:port" (a new connection is ready)
  reused,         // text: "host:port" (a pooled connection is used)
  request_head,   // text: the request head as sent (without the body)
  response_head,  // text: the final response head as received
  redirect,       // text: the URL being redirected to
};

struct ClientOptions {
  std::size_t max_connections_per_host = 10;
  std::size_t max_connections = 100;
  Duration connect_timeout = std::chrono::seconds(10);
  Duration read_timeout = std::chrono::seconds(30);
  Duration total_timeout = Duration::zero();  // zero: none
  Duration idle_timeout = std::chrono::seconds(30);  // pooled connections older than this are closed
  bool follow_redirects = true;
  int max_redirects = 10;
  bool decompress = true;
  std::size_t max_body_size = 64u << 20;     // request(): whole bodies (decoded)
  std::size_t max_header_bytes = 64u << 10;  // a response head
  std::string user_agent = "corio/0.1";       // no CR, LF or NUL (the constructor throws ValueError)
  // https: the TLS issue's secure defaults (system CA store, hostname check,
  // SNI, TLS >= 1.2). Set tls.ca_file for a private CA, tls.cert_file and
  // key_file for a client certificate, and only in tests
  // tls.insecure_skip_verify_dangerous. A context made elsewhere may be
  // given instead (tls_context), e.g. to share its session cache.
  TlsClientOptions tls;
  std::shared_ptr<TlsContext> tls_context;
  // Called on the loop thread as an exchange progresses (fetch -v uses it).
  std::function<void(TraceEvent, std::string_view)> trace;
};

namespace detail {
struct ClientConn;
class HostPool;
}  // namespace detail

class Client;

class ClientResponse {
 public:
  ClientResponse();
  ClientResponse(ClientResponse&&) noexcept;
  ClientResponse& operator=(ClientResponse&&) noexcept;
  ~ClientResponse();  // a body not read to its end closes the connection

  int status = 0;
  std::string reason;
  int version_minor = 1;
  HeaderList headers;  // as received, in order
  Url url;                // the URL that answered (after redirects)
  std::vector<Url> history;                        // the URLs that redirected, in order
  std::string body;                                // filled by request()/get()/post()

  // The first header with this name (case-insensitive), "" if absent.
  std::string_view header(std::string_view name) const noexcept;
  bool ok() const noexcept { return status < 400; }
  // Throws HttpStatusError for 4xx and 5xx.
  void raise_for_status() const;

  // Streaming (responses from Client::stream): the next piece of the decoded
  // body, at most 64 KiB however far the body inflates, "" once it ended. IncompleteBody if the connection ends first,
  // ReadTimeout, MalformedResponse (bad chunking, bad compression); once one
  // was raised, every later call raises it again (the body did not end, so
  // never "") and body_done() stays false.
  // Not concurrently. Cancellation: CancelledError; the connection is closed
  // and later calls raise IncompleteBody.
  Task<std::string> read_chunk();
  // The rest of the body, at most `max` decoded bytes (BodyTooLarge, raised
  // holding no more than max + 64 KiB).
  Task<std::string> read_body(std::size_t max = SIZE_MAX);
  bool body_done() const noexcept;
  // Gives the connection up without reading the rest (it is closed).
  void close() noexcept;

 private:
  friend class Client;
  struct Stream;
  std::unique_ptr<Stream> s_;
};

struct PoolStats {
  std::size_t open = 0;     // connections open now (busy + idle)
  std::size_t idle = 0;     // of which idle in the pool
  std::size_t created = 0;  // connections opened so far
  std::size_t reused = 0;   // requests sent on a pooled connection
  std::size_t origins = 0;  // origins with a pool record (busy or idle connections, or waiters)
};

class Client {
 public:
  explicit Client(ClientOptions options = {});
  // Closes the idle connections. Responses still streaming must not outlive
  // the client.
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // A whole exchange: redirects followed, body read (at most max_body_size).
  Task<ClientResponse> request(std::string method, std::string url, HeaderList headers = {},
                               std::string body = {});
  Task<ClientResponse> get(std::string url, HeaderList headers = {});
  Task<ClientResponse> post(std::string url, std::string body, HeaderList headers = {});
  // Like request(), but returns once the final response's head arrived; read
  // its body with read_chunk()/read_body(). No total_timeout applies.
  Task<ClientResponse> stream(std::string method, std::string url, HeaderList headers = {},
                              std::string body = {});

  PoolStats stats() const noexcept;
  const ClientOptions& options() const noexcept { return opts_; }
  // Closes every idle connection now.
  void close_idle() noexcept;

 private:
  friend class ClientResponse;
  friend struct ClientResponse::Stream;
  Task<ClientResponse> follow(std::string method, std::string url, HeaderList headers, std::string body,
                              bool read_whole);
  Task<ClientResponse> exchange(const std::string& method, const Url& url, const HeaderList& headers,
                                const std::string& body);
  Task<std::unique_ptr<detail::ClientConn>> checkout(const Url& url, bool fresh = false);
  // A connection whose exchange ended: back to the idle pool if it can carry
  // another request, else closed. Either way its slots are released.
  void checkin(std::unique_ptr<detail::ClientConn> c, bool reusable) noexcept;
  detail::HostPool& pool_for(const std::string& key);
  bool evict_one_idle() noexcept;
  // Drops the record of `key`'s origin if nothing uses it any more.
  void forget_if_unused(const std::string& key) noexcept;
  // Closes idle connections older than idle_timeout, in every origin.
  void expire_idle(TimePoint now) noexcept;

  ClientOptions opts_;
  std::shared_ptr<TlsContext> tls_;  // made on the first https request
  std::unordered_map<std::string, std::unique_ptr<detail::HostPool>> pools_;
  Semaphore total_slots_;
  std::size_t open_ = 0;
  std::size_t idle_ = 0;
  std::size_t created_ = 0;
  std::size_t reused_ = 0;
  TimePoint next_sweep_{};  // expire_idle runs when a request starts after this
};

}  // namespace corio::http
