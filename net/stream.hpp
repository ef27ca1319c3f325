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
// bytes received before it were consumed, and drain() throw it at once; a
// failed send makes drain() throw (BrokenPipeError, ConnectionResetError),
// and so do an aborted stream (ConnectionResetError) and a failed TLS
// session (TlsError). Either way is_closing() turns true. Messages name the
// peer.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
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

namespace detail {

// The awaitables StreamReader's reads return. A read has no coroutine frame
// of its own: this object, in the awaiting coroutine's frame, is all its
// state while it waits, and the connection wakes the task only once the read
// can finish (ReadWaiter). Each converts to a Task (`Task<std::string> t =
// reader.readline();`) where a Task is wanted — create_task, gather.
//
// Not movable once awaited; one read per object.
class StreamRead : public ReadWaiter {
 public:
  StreamRead(StreamRead&& o) noexcept : ReadWaiter(), c_(std::move(o.c_)) {}
  StreamRead& operator=(StreamRead&&) = delete;
  ~StreamRead() { finish(); }

  bool await_suspend(std::coroutine_handle<> h);
  bool on_cancel(TaskBase& t) noexcept final;

 protected:
  explicit StreamRead(StreamConn* c) noexcept : c_(c) {}
  // For await_ready: claims the reader (InvalidStateError if another task
  // reads), then starts recvs until ready() holds (true) or one is in flight
  // (false: suspend).
  bool start();
  // For await_resume: gives the reader back on every exit, and throws
  // CancelledError if the wait was cancelled (the bytes stay buffered).
  class Resume {
   public:
    explicit Resume(StreamRead& r);
    Resume(const Resume&) = delete;
    ~Resume() { r_.finish(); }

   private:
    StreamRead& r_;
  };
  // "readuntil", "read", … (messages and dump_tasks()).
  virtual const char* what() const noexcept = 0;
  // The wait was cancelled: bytes this read took (ReadWaiter::take) go back
  // to the connection, for the next read.
  virtual void give_back() noexcept {}
  void finish() noexcept;

  // Laid out for size (the object sits in the suspended frame; derived
  // reads use the tail padding): one pointer and three bits. A reference:
  // the read may outlive the StreamReader (a Task made from it, pending when
  // the reader goes), and then ends at the closed stream's EOF.
  ConnRef c_;
  bool busy_ : 1 = false;       // this read holds the reader (begin_read)
  bool cancelled_ : 1 = false;  // on_cancel ran
  bool suspended_ : 1 = false;  // await_suspend ran: the task may be parked, a cancel may be pending
};

template <class A>
Task<decltype(std::declval<A&>().await_resume())> read_task(A a) {
  co_return co_await a;
}

// read(n): up to n bytes.
class ReadSome final : public StreamRead {
 public:
  ReadSome(StreamConn* c, std::size_t n) noexcept : StreamRead(c), n_(n) {}
  bool await_ready();
  std::string await_resume();
  operator Task<std::string>() && { return read_task(std::move(*this)); }

 private:
  bool ready(StreamConn& c) noexcept override;
  std::size_t want(const StreamConn&) const noexcept override { return n_; }
  const char* what() const noexcept override { return "read"; }
  std::size_t n_;
};

// readinto(buf).
class ReadInto final : public StreamRead {
 public:
  ReadInto(StreamConn* c, std::span<std::byte> buf) noexcept : StreamRead(c), buf_(buf) {}
  bool await_ready();
  std::size_t await_resume();
  operator Task<std::size_t>() && { return read_task(std::move(*this)); }

 private:
  bool ready(StreamConn& c) noexcept override;
  std::size_t want(const StreamConn&) const noexcept override { return buf_.size(); }
  std::size_t take(const char* p, std::size_t n) noexcept override;
  void give_back() noexcept override;
  const char* what() const noexcept override { return "readinto"; }
  std::span<std::byte> buf_;
  std::size_t taken_ = 0;  // bytes the connection put straight into buf_
};

// read(): everything until EOF.
class ReadAll final : public StreamRead {
 public:
  explicit ReadAll(StreamConn* c) noexcept : StreamRead(c) {}
  bool await_ready();
  std::string await_resume();
  operator Task<std::string>() && { return read_task(std::move(*this)); }

 private:
  bool ready(StreamConn& c) noexcept override;
  std::size_t want(const StreamConn&) const noexcept override { return 0; }
  const char* what() const noexcept override { return "read"; }
};

// readexactly(n).
class ReadExactly final : public StreamRead {
 public:
  ReadExactly(StreamConn* c, std::size_t n) noexcept : StreamRead(c), n_(n) {}
  bool await_ready();
  std::string await_resume();
  operator Task<std::string>() && { return read_task(std::move(*this)); }

 private:
  bool ready(StreamConn& c) noexcept override;
  std::size_t want(const StreamConn& c) const noexcept override;
  const char* what() const noexcept override { return "readexactly"; }
  std::size_t n_;
};

// readuntil(sep) and readline().
class ReadUntil final : public StreamRead {
 public:
  ReadUntil(StreamConn* c, std::string_view sep, bool line);
  ReadUntil(ReadUntil&& o) noexcept;
  ~ReadUntil();
  bool await_ready();
  std::string await_resume();
  operator Task<std::string>() && { return read_task(std::move(*this)); }

 private:
  // One look at the buffer: through the separator's end (or, at EOF,
  // readline's partial line), kNeedMore, or one of the failures below.
  enum : std::size_t { kNeedMore = ~std::size_t(0), kOverrunFound = kNeedMore - 1, kOverrun = kNeedMore - 2,
                       kEof = kNeedMore - 3 };
  std::size_t scan(StreamConn& c) noexcept;
  bool ready(StreamConn& c) noexcept override { return scan(c) != kNeedMore; }
  std::size_t want(const StreamConn&) const noexcept override { return 0; }
  const char* what() const noexcept override { return line_ ? "readline" : "readuntil"; }
  std::string_view sep() const noexcept {
    return sep_inline_ != kOnHeap ? std::string_view(small_, sep_inline_)
                                  : std::string_view(big_ + sizeof(std::size_t), heap_size());
  }
  std::size_t heap_size() const noexcept {
    std::size_t n;
    std::memcpy(&n, big_, sizeof n);
    return n;
  }

  // This object sits in the awaiting frame for as long as the read waits
  // (a server's idle connection waits here), so it is kept to 32 bytes: the
  // separator inline up to kInline bytes ("\r\n\r\n", "\n", "\r\n", …),
  // else in a heap block [size][bytes]; the flags in the base's tail padding.
  static constexpr std::size_t kInline = 8;
  static constexpr std::uint8_t kOnHeap = 0xff;
  bool line_ : 1;
  std::uint8_t sep_inline_;  // the inline separator's size, or kOnHeap
  // Where the next search starts: the bytes before were examined. Saturates
  // (a search from an earlier start finds the same first separator).
  std::uint32_t offset_ = 0;
  union {
    char small_[kInline];
    char* big_;
  };
};

}  // namespace detail

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

  // The reads return awaitables (co_await them, or pass them to create_task
  // or gather as they are; each also converts to the Task named in its
  // comment, where a Task variable is wanted). A read that
  // must wait keeps its state in the awaiting coroutine's frame and
  // allocates nothing.

  // Up to n bytes: whatever is buffered, else waits for the next arrival.
  // Returns "" at EOF (and for n == 0). Task<std::string>.
  // Cancellation: CancelledError; bytes that arrive later stay buffered for
  // the next read (nothing is lost).
  detail::ReadSome read(std::size_t n) noexcept { return {c_, n}; }
  // Everything until EOF. Throws LimitOverrun (the data stays buffered) if
  // more than the stream's limit arrives first: use read(n) in a loop for
  // unbounded bodies. Task<std::string>.
  // Cancellation: CancelledError; the bytes read so far stay buffered.
  detail::ReadAll read() noexcept { return detail::ReadAll(c_); }
  // Like read(n), into caller memory; returns the count (0 at EOF).
  // Task<std::size_t>. Cancellation: as read(n).
  detail::ReadInto readinto(std::span<std::byte> buf) noexcept { return {c_, buf}; }
  // One line including its "\n". At EOF returns the partial last line (""
  // when nothing is left). A line longer than the limit throws LimitOverrun
  // and stays buffered. Task<std::string>. Cancellation: as readuntil.
  detail::ReadUntil readline() { return {c_, "\n", true}; }
  // Bytes up to and including `sep` (default "\n"; copied, so a temporary
  // is fine). Task<std::string>.
  // - EOF first: IncompleteRead with every buffered byte (consumed) as partial().
  // - No separator within limit bytes, or a separator found beyond the limit:
  //   LimitOverrun; the data stays buffered, consumed() tells how far it
  //   looked (asyncio's LimitOverrunError).
  // - An empty separator: std::invalid_argument.
  // Cancellation: CancelledError; everything received stays buffered.
  detail::ReadUntil readuntil(std::string_view sep = "\n") { return {c_, sep, false}; }
  // The same for a string literal (or a char array: up to its first NUL):
  // binds to the array, so an awaiting coroutine's frame keeps no
  // string_view temporary for the argument.
  template <std::size_t N>
  detail::ReadUntil readuntil(const char (&sep)[N]) {
    return {c_, std::string_view(sep, ::strnlen(sep, N)), false};
  }
  // Exactly n bytes. EOF first: IncompleteRead carrying the partial bytes
  // (consumed) and expected() == n. n may exceed the limit. Task<std::string>.
  // Cancellation: CancelledError; the bytes received so far stay buffered.
  detail::ReadExactly readexactly(std::size_t n) noexcept { return {c_, n}; }
  // True once a read has seen the peer's EOF (or the stream closed) and the
  // buffer is empty. Reads are started only when a reader wants bytes, so an
  // EOF that came after the last bytes read is seen by the next read (which
  // returns "" or raises IncompleteRead), not by at_eof() before it; asyncio,
  // whose transport reads ahead, may already say true there.
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

namespace detail {

// What StreamWriter::drain() returns. The usual case (below the high-water
// mark, no failed send or read, not aborted) is ready at once and costs no
// coroutine frame; only a drain that must wait (or throw) runs drain_wait()
// as a Task. Converts to a Task (`Task<void> t = writer.drain();`) where a
// Task is wanted.
class Drain {
 public:
  explicit Drain(StreamConn* c) noexcept : c_(c) {}
  Drain(Drain&& o) noexcept : c_(o.c_), wait_(std::move(o.wait_)) {}
  Drain& operator=(Drain&&) = delete;
  bool await_ready() {
    if (!c_->read_error() && !c_->write_error() && !c_->paused() && !c_->aborted()) return true;
    wait_ = drain_wait(ConnRef(c_));
    return false;
  }
  template <class P>
  void await_suspend(std::coroutine_handle<P> h) noexcept {
    typename Task<void>::Awaiter{wait_.handle()}.await_suspend(h);
  }
  void await_resume() {
    if (wait_.valid()) wait_.handle().promise().take();
  }
  operator Task<void>() && { return drain_wait(ConnRef(c_)); }

  // The waiting drain (and what a Task made from a Drain runs). It holds a
  // reference: it may outlive the StreamWriter.
  static Task<void> drain_wait(ConnRef c);

 private:
  StreamConn* c_;
  Task<void> wait_;
};

}  // namespace detail

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
  // (drain() reports the failure). Throws InvalidStateError after close(),
  // abort() or write_eof().
  void write(std::string_view data) { c_->write(data.data(), data.size()); }
  void write(std::span<const std::byte> data) {
    c_->write(reinterpret_cast<const char*>(data.data()), data.size());
  }
  // Waits while more than the high-water mark is buffered, until it is at or
  // below the low-water mark: it really blocks while the peer does not read.
  // Returns at once below the high-water mark. Throws, whether it waited or
  // not, when bytes written may not have been sent:
  // - a read failed (the reader saw a reset, or a failed TLS session): the
  //   exception that read threw, as asyncio's drain() raises the reader's
  //   exception (even before a send fails);
  // - a send failed: the connection's error (BrokenPipeError,
  //   ConnectionResetError); over TLS also a failed session: its TlsError
  //   (net/tls.hpp);
  // - the stream was aborted (abort(), here or in another task, also after
  //   a close() that had not finished sending): ConnectionResetError
  //   "drain <peer>: connection lost (aborted)", asyncio's
  //   ConnectionResetError('Connection lost'). (asyncio lets a drain that
  //   was already waiting return instead, as if the bytes had gone out.)
  // After a close() that sent everything it returns normally: nothing was
  // lost. (asyncio raises there too, as after any connection_lost; corio
  // keeps drain()'s answer to "did my bytes go out?".)
  // Cancellation: CancelledError; the buffered bytes are still sent.
  detail::Drain drain() noexcept { return detail::Drain(c_); }
  // Sends EOF (shutdown SHUT_WR) once the buffered bytes are out; the peer
  // reads EOF and can still answer. Further write() calls throw.
  void write_eof() { c_->write_eof(); }
  bool can_write_eof() const noexcept { return true; }
  // Closes the stream: reading stops (pending reads see EOF), buffered bytes
  // are still sent, then the socket is closed. Idempotent. A peer that never
  // reads keeps the socket open until abort() or the loop's shutdown.
  void close() noexcept { c_->close(); }
  // Closes at once, dropping unsent bytes (asyncio's transport.abort()): it
  // sends nothing more, not even TLS's close_notify (the peer sees the
  // stream end without it). From then on drain() throws
  // ConnectionResetError. Does nothing once a close() has finished.
  void abort() noexcept { c_->abort(); }
  // True once close() or abort() was called, and also once the connection
  // was lost (a read or a send failed: a reset, a failed TLS session), as
  // asyncio's is_closing() is once the transport is lost. The peer's EOF
  // alone does not count: the stream can still send (half-close).
  bool is_closing() const noexcept { return c_->closing() || c_->lost(); }
  // Waits until the socket is closed (after close(): once the buffer drained).
  // Cancellation: CancelledError; the close goes on.
  Task<void> wait_closed();

  // get_extra_info('peername') / ('sockname') / ('socket'). Both addresses
  // still answer after close() and after a reset, as asyncio's do: the peer
  // is kept from the start (empty if the socket never had one), the local
  // address from the first call or, at the latest, from just before the
  // socket closes. local_address() throws OSError only if the kernel
  // refused getsockname.
  SocketAddress peer_address() const noexcept { return c_->peer(); }
  SocketAddress local_address() const { return c_->local_address(); }
  // The Socket object is made on first use (a connection does not carry
  // one); its fd() is -1 once the connection closed.
  const Socket& socket() const { return c_->socket(); }
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
