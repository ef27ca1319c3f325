#pragma once
// An HTTP/1.1 server on corio's connection engine.
//
//   auto handler = [](http::Request& req) -> Task<http::Response> {
//     if (req.path() == "/plaintext") co_return http::Response::text("Hello, World!");
//     co_return http::Response::text("not found\n", 404);
//   };
//   co_await http::serve(handler, "127.0.0.1", 8080);   // until the loop's shutdown token
//
// Each connection is one task that reads requests, awaits handler(request) and
// writes the response. What it does for the handler:
// - keep-alive by HTTP/1.0 and 1.1 rules; pipelined requests are answered in
//   order, and the responses to requests that arrived together leave in one
//   send;
// - request bodies are streamed (Request::read_body_chunk) or collected
//   (Request::body); "Expect: 100-continue" is answered when the handler first
//   reads the body (a handler that answers without reading it never asks the
//   client for it); an unread body is skipped, or the connection closed;
// - HEAD (the head of the GET answer, no body), "OPTIONS *" (answered here);
// - streaming responses (Response::stream: chunked on 1.1, close-delimited on
//   1.0) and file bodies sent with sendfile(2) (Response::file, see
//   static_files.hpp);
// - every parser rejection answered with its status and the connection closed;
//   timeouts: a head not complete within header_timeout → 408 and close; an
//   idle keep-alive connection closed after keep_alive_timeout; a body stalled
//   for body_timeout → 408 and close; a client that takes no byte of its
//   response for send_timeout (it stopped reading) is disconnected;
// - at most max_connections at once (accepting pauses at the limit);
// - connections handed over by the kernel once their first bytes arrived
//   (defer_accept, TCP_DEFER_ACCEPT), so a connection costs one wake-up;
// - graceful shutdown on the loop's shutdown token (EventLoop::shutdown_event):
//   stop accepting, let requests in flight finish (their responses say
//   "Connection: close"), close idle connections; serve() then returns;
// - workers > 1: that many loops on as many threads, each with its own
//   SO_REUSEPORT listener (shared-nothing: the handler is copied per worker
//   and must not share unsynchronised state).
//
// A handler exception becomes 500 (HttpError: its own status) and closes the
// connection; the exception goes to the loop's exception handler (HttpError
// does not: it is the client's fault). An OSError is the same unless this
// connection itself failed (reset, broken pipe): then there is nobody to
// answer and the connection just ends.
#include <sys/socket.h>  // SOMAXCONN
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "coro/task.hpp"
#include "net/address.hpp"
#include "net/http/message.hpp"
#include "net/http/parser.hpp"

namespace corio::http {

namespace detail {
class Connection;
}

// The request a handler gets. Views (method, target, headers) are valid until
// the handler's response has been written.
// Concurrency: one task at a time may read the body.
class Request {
 public:
  const RequestHead& head() const noexcept { return *head_; }
  std::string_view method() const noexcept { return head_->method; }
  Method method_id() const noexcept { return head_->method_id; }
  std::string_view target() const noexcept { return head_->target; }
  std::string_view path() const noexcept { return head_->path(); }
  std::string_view query() const noexcept { return head_->query(); }
  int version_minor() const noexcept { return head_->version_minor; }
  std::string_view header(std::string_view name) const noexcept { return head_->header(name); }
  const std::vector<Header>& headers() const noexcept { return head_->headers; }
  bool keep_alive() const noexcept { return head_->keep_alive; }
  SocketAddress peer() const noexcept;
  bool has_body() const noexcept { return head_->body_kind != BodyKind::none; }

  // The next piece of the body as it arrives; "" once it is complete (or
  // when there is none). Sends "100 Continue" first if the client asked.
  // Throws HttpError: 400 malformed chunked body or the client closed
  // mid-body, 408 no byte within body_timeout, 413 over the body limit.
  // Cancellation: CancelledError; bytes not returned stay buffered.
  Task<std::string> read_body_chunk();
  // The whole body (up to ParseLimits::max_body; see read_body_chunk).
  // Cancellation: CancelledError; the bytes read so far are lost.
  Task<std::string> body();

 private:
  friend class detail::Connection;
  Request(detail::Connection* c, const RequestHead* h) noexcept : conn_(c), head_(h) {}
  detail::Connection* conn_;
  const RequestHead* head_;
};

// Streams a response body (Response::stream).
class BodyWriter {
 public:
  // Queues data (one chunk on HTTP/1.1); empty data is ignored. Never blocks.
  // Under a Content-Length the handler set (Response::headers), more bytes
  // than it leaves throw std::invalid_argument, and a stream that returns
  // short of it is a failure too: either way the body is cut off.
  void write(std::string_view data);
  // Waits while the connection's write buffer is above its high-water mark.
  // Throws the connection's error (BrokenPipeError, ConnectionResetError).
  // Cancellation: CancelledError; queued bytes are still sent.
  Task<void> drain();

 private:
  friend class detail::Connection;
  explicit BodyWriter(detail::Connection* c) noexcept : conn_(c) {}
  detail::Connection* conn_;
};

// A file region sent with sendfile(2); owns (closes) the descriptor.
class FileBody {
 public:
  FileBody() noexcept = default;
  FileBody(int fd, std::uint64_t offset, std::uint64_t length) noexcept : fd_(fd), offset_(offset), length_(length) {}
  FileBody(FileBody&& o) noexcept
      : fd_(std::exchange(o.fd_, -1)), offset_(o.offset_), length_(o.length_) {}
  FileBody& operator=(FileBody&& o) noexcept;
  FileBody(const FileBody&) = delete;
  FileBody& operator=(const FileBody&) = delete;
  ~FileBody();
  int fd() const noexcept { return fd_; }
  // Gives up ownership: returns the descriptor, which is no longer closed here.
  int release() noexcept { return std::exchange(fd_, -1); }
  std::uint64_t offset() const noexcept { return offset_; }
  std::uint64_t length() const noexcept { return length_; }

 private:
  int fd_ = -1;
  std::uint64_t offset_ = 0;
  std::uint64_t length_ = 0;
};

struct Response {
  int status = 200;
  std::string content_type;  // sent as Content-Type unless empty
  // More fields, sent as given, except the three that frame the message,
  // which the server writes once itself. Content-Length must be the body's
  // length (HEAD and 304: the length a GET would get); on a streamed body it
  // replaces chunked coding. Transfer-Encoding is only allowed as "chunked"
  // on a streamed body (where it is the default). "Connection: close" is the
  // same as `close`; other Connection values are dropped. A field that
  // breaks these rules, like one with CR or LF, makes the answer a 500.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // A streamed body instead of `body`: called once the head was sent.
  std::function<Task<void>(BodyWriter&)> stream;
  // A file body instead of `body` (Content-Length is its length).
  std::optional<FileBody> file;
  // Close the connection after this response.
  bool close = false;

  static Response text(std::string body, int status = 200);
  static Response json(std::string body, int status = 200);
  // A short text/plain body naming the status ("404 Not Found\n").
  static Response error(int status);
  Response& set_header(std::string name, std::string value) {
    headers.emplace_back(std::move(name), std::move(value));
    return *this;
  }
};

using Handler = std::function<Task<Response>(Request&)>;

struct ServeOptions {
  ParseLimits limits;                 // 414 / 431 / 413 limits of the parser
  std::size_t max_connections = 10000;
  std::chrono::milliseconds header_timeout{10'000};      // first byte of a head → its end: 408
  std::chrono::milliseconds keep_alive_timeout{75'000};  // idle between requests: closed
  std::chrono::milliseconds body_timeout{30'000};        // no body byte for this long: 408
  // The client takes no byte of a response that does not fit the socket's
  // buffers for this long: the connection is aborted (nginx's send_timeout),
  // so a client that stopped reading cannot hold its slot forever.
  std::chrono::milliseconds send_timeout{60'000};
  int workers = 1;                    // loops, each on its own thread (this one included)
  int backlog = SOMAXCONN;  // listen(2) queue (capped at net.core.somaxconn)
  // TCP_DEFER_ACCEPT, as Apache (AcceptFilter http data) and Bun do on Linux:
  // the kernel hands a connection over only once its first bytes arrived (an
  // HTTP client speaks first), so accepting it and reading its request is one
  // wake-up, not two. A client that connects and stays silent is handed over
  // after about this long (the kernel rounds up to its SYN-ACK retransmission
  // schedule: 1 s → about 1 s) and is then an idle connection like any other;
  // until then the server does not see it: it holds no slot under
  // max_connections, and a shutdown that closes the listener meanwhile leaves
  // it to the kernel, which resets it when it sends. 0 s: off (every
  // connection is accepted at once).
  std::chrono::seconds defer_accept{1};
  bool reuse_port = false;            // SO_REUSEPORT (always on with workers > 1)
  std::string server_name = "corio";  // the Server field ("" leaves it out)
  // Called on the calling loop's thread once listening, with the bound address.
  std::function<void(const SocketAddress&)> on_listening;
};

// Serves until the running loop's shutdown token is set (then drains as
// described above and returns) or until cancelled (then connections are
// closed at once and CancelledError propagates). Throws AddressInUseError,
// NameNotFoundError, OSError when it cannot listen.
// Cancellation: CancelledError, after the worker threads (if any) stopped.
Task<void> serve(Handler handler, std::string host, std::uint16_t port, ServeOptions options = {});

// The cached "Date: …\r\n" line of this thread, refreshed once a second.
std::string_view date_line() noexcept;

}  // namespace corio::http
