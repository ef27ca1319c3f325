#pragma once
// asyncio streams: StreamReader / StreamWriter over a connected socket.
//
//   auto [reader, writer] = co_await corio::open_connection("localhost", 8080);
//   writer.write("GET / HTTP/1.0\r\n\r\n");
//   co_await writer.drain();
//   std::string status = co_await reader.readline();
//   writer.close();
//   co_await writer.wait_closed();
//
// Bytes are std::string (asyncio's bytes). A reader and its writer share one
// connection; each may be moved into different tasks. Destroying both closes
// the connection (gracefully: bytes already written are still sent).
//
// Concurrency: one task at a time may read from a StreamReader (a second one
// gets InvalidStateError, like asyncio). write() never blocks and may be
// called from any task on the loop; several tasks may await drain().
//
// Errors: a reset connection makes reads throw ConnectionResetError once the
// bytes received before it were consumed; a failed send makes drain() throw
// (BrokenPipeError, ConnectionResetError). Messages name the peer.
#include <chrono>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "coro/task.hpp"
#include "net/address.hpp"
#include "net/connect.hpp"
#include "net/errors.hpp"
#include "net/socket.hpp"
#include "net/stream_conn.hpp"
#include "net/tls_ref.hpp"

namespace corio {

class StreamReader {
 public:
  StreamReader() noexcept = default;
  explicit StreamReader(detail::StreamConn* c) noexcept : c_(c) {
    if (c_) c_->add_handle();
  }
  StreamReader(StreamReader&& o) noexcept : c_(std::exchange(o.c_, nullptr)) {}
  StreamReader& operator=(StreamReader&& o) noexcept;
  StreamReader(const StreamReader&) = delete;
  StreamReader& operator=(const StreamReader&) = delete;
  ~StreamReader() {
    if (c_) c_->drop_handle();
  }
  explicit operator bool() const noexcept { return c_ != nullptr; }

  // Up to n bytes: whatever is buffered, else waits for the next arrival.
  // Returns "" at EOF (and for n == 0).
  // Cancellation: CancelledError; bytes that arrive later stay buffered for
  // the next read (nothing is lost).
  Task<std::string> read(std::size_t n);
  // Everything until EOF. Throws LimitOverrun (the data stays buffered) if
  // more than the stream's limit arrives first: use read(n) in a loop for
  // unbounded bodies.
  // Cancellation: CancelledError; the bytes read so far stay buffered.
  Task<std::string> read();
  // Like read(n), into caller memory; returns the count (0 at EOF).
  // Cancellation: as read(n).
  Task<std::size_t> readinto(std::span<std::byte> buf);
  // One line including its "\n". At EOF returns the partial last line (""
  // when nothing is left). A line longer than the limit throws LimitOverrun
  // and stays buffered. Cancellation: as readuntil.
  Task<std::string> readline();
  // Bytes up to and including `sep` (default "\n").
  // - EOF first: IncompleteRead with every buffered byte (consumed) as partial().
  // - No separator within limit bytes, or a separator found beyond the limit:
  //   LimitOverrun; the data stays buffered, consumed() tells how far it
  //   looked (asyncio's LimitOverrunError).
  // Cancellation: CancelledError; everything received stays buffered.
  Task<std::string> readuntil(std::string sep = "\n");
  // Exactly n bytes. EOF first: IncompleteRead carrying the partial bytes
  // (consumed) and expected() == n. n may exceed the limit.
  // Cancellation: CancelledError; the bytes received so far stay buffered.
  Task<std::string> readexactly(std::size_t n);
  // True once the peer sent EOF (or the stream closed) and the buffer is empty.
  bool at_eof() const noexcept { return c_->eof() && c_->rbuf().empty(); }
  // Bytes received and not yet read.
  std::size_t buffered() const noexcept { return c_->rbuf().size(); }
  // Memory the reader holds for received bytes. With io_uring's provided
  // buffers it is 0 whenever everything was read: an idle connection owns no
  // read buffer. With a plain recv it is the last buffer's size.
  std::size_t buffer_capacity() const noexcept { return c_->rbuf().capacity(); }
  std::size_t limit() const noexcept { return c_->limit(); }
  // The connection, for layers built on streams (start_tls, net/tls.hpp).
  detail::StreamConn* connection() const noexcept { return c_; }

 private:
  detail::StreamConn* c_ = nullptr;
};

class StreamWriter {
 public:
  StreamWriter() noexcept = default;
  explicit StreamWriter(detail::StreamConn* c) noexcept : c_(c) {
    if (c_) c_->add_handle();
  }
  StreamWriter(StreamWriter&& o) noexcept : c_(std::exchange(o.c_, nullptr)) {}
  StreamWriter& operator=(StreamWriter&& o) noexcept;
  StreamWriter(const StreamWriter&) = delete;
  StreamWriter& operator=(const StreamWriter&) = delete;
  ~StreamWriter() {
    if (c_) c_->drop_handle();
  }
  explicit operator bool() const noexcept { return c_ != nullptr; }

  // Queues bytes and starts sending them; never blocks. Pair with drain() to
  // respect flow control. After the connection failed the bytes are dropped
  // (drain() reports the failure). Throws InvalidStateError after close() or
  // write_eof().
  void write(std::string_view data) { c_->write(data.data(), data.size()); }
  void write(std::span<const std::byte> data) {
    c_->write(reinterpret_cast<const char*>(data.data()), data.size());
  }
  // Waits while more than the high-water mark is buffered, until it is at or
  // below the low-water mark: it really blocks while the peer does not read.
  // Returns at once below the high-water mark. Throws the connection's
  // error (BrokenPipeError, ConnectionResetError) if a send failed.
  // Cancellation: CancelledError; the buffered bytes are still sent.
  Task<void> drain();
  // Sends EOF (shutdown SHUT_WR) once the buffered bytes are out; the peer
  // reads EOF and can still answer. Further write() calls throw.
  void write_eof() { c_->write_eof(); }
  bool can_write_eof() const noexcept { return true; }
  // Closes the stream: reading stops (pending reads see EOF), buffered bytes
  // are still sent, then the socket is closed. Idempotent. A peer that never
  // reads keeps the socket open until abort() or the loop's shutdown.
  void close() noexcept { c_->close(); }
  // Closes at once, dropping unsent bytes (asyncio's transport.abort()).
  void abort() noexcept { c_->abort(); }
  bool is_closing() const noexcept { return c_->closing(); }
  // Waits until the socket is closed (after close(): once the buffer drained).
  // Cancellation: CancelledError; the close goes on.
  Task<void> wait_closed();

  // get_extra_info('peername') / ('sockname') / ('socket').
  SocketAddress peer_address() const noexcept { return c_->peer(); }
  SocketAddress local_address() const { return c_->socket().local_address(); }
  const Socket& socket() const noexcept { return c_->socket(); }
  // The transport's get_write_buffer_size() and set_write_buffer_limits().
  std::size_t write_buffer_size() const noexcept { return c_->buffered(); }
  void set_write_buffer_limits(std::size_t high, std::size_t low) { c_->set_write_limits(high, low); }
  // The connection, for layers built on streams (TLS details: tls_info() in net/tls.hpp).
  detail::StreamConn* connection() const noexcept { return c_; }

 private:
  detail::StreamConn* c_ = nullptr;
};

// What open_connection returns: `auto [reader, writer] = co_await open_connection(…)`.
struct StreamPair {
  StreamReader reader;
  StreamWriter writer;
};


// Connects to host:port. host is a numeric address or a name (resolved off
// the loop thread, net/dns.hpp). The addresses are tried with Happy Eyeballs
// (net/connect.hpp: staggered by opts.happy_eyeballs_delay, first success
// wins, the other attempts are cancelled and closed); if all fail, the one
// kind of error naming every address (or, when they differ,
// ConnectAttemptsError listing them) is thrown: ConnectionRefusedError,
// ConnectTimeoutError (also when opts.timeout passes), NameNotFoundError, ….
// Cancellation: CancelledError; every attempt's socket is closed.
Task<StreamPair> open_connection(std::string host, std::uint16_t port, ConnectOptions opts = {});
Task<StreamPair> open_connection(SocketAddress addr, ConnectOptions opts = {});
// A Unix stream socket ("@name" for the abstract namespace).
Task<StreamPair> open_unix_connection(std::string path, ConnectOptions opts = {});
// Wraps an already connected stream socket (asyncio's open_connection(sock=…)).
// Must be called on the loop thread.
StreamPair make_streams(Socket sock, const StreamOptions& opts = {});

}  // namespace corio
