#pragma once
// detail::StreamConn: the connection behind a StreamReader/StreamWriter pair
// (what asyncio calls the transport plus the reader's buffer).
//
// Reads are pulled: a receive is started only when a reader needs more bytes
// than are buffered, so the buffer never holds much more than the reader
// asked for (readuntil stops at the limit). Two ways, chosen per backend:
// - io_uring: one multishot recv into the loop's provided buffers (the
//   first read of a connection completes once, see IoOp::oneshot), each chunk
//   copied into the receive buffer and its provided buffer recycled at once.
//   It stays armed while data flows, is cancelled (paused) when the buffer
//   grows well past what the reader wants (an unread stream holds at most
//   that plus one batch from the pool), and is re-armed by the next
//   reader after EOF-free endings (-ENOBUFS, a pause). The receive buffer is
//   freed whenever a read empties it: an idle connection waiting for data
//   owns no read buffer at all.
// - epoll: a plain recv. Into the tail of the receive buffer while it holds
//   bytes (bulk transfers); into the backend's shared scratch buffer when it
//   is empty, the bytes copied out at completion — so a connection waiting
//   for its next request owns no read buffer on epoll either.
// - io_uring without provided-buffer rings (old kernels): a plain recv into
//   the tail of the receive buffer, which the kernel owns meanwhile.
// Writes are pushed: write() appends to the pending bytes and, if no send
// is in flight, hands them to the kernel without waiting for anyone; each
// send completion starts the next, so a writer never has to await to make
// progress. The send op and both buffers exist only while bytes are queued
// (WriteState), so an idle connection keeps nothing of its last response.
//
// Invariants:
// - At most one recv (read_op_) and one send (w_->op) in flight; each
//   holds a reference, so the connection outlives the kernel's use of its
//   buffers even when both user handles are gone. w_ is not freed while its
//   send is in flight.
// - The bytes a send points into (w_->sending) are never modified
//   until its completion arrives; write() appends to w_->pending, and the
//   two swap only when sending is fully sent. Bytes stay in order.
// - Queued bytes are dropped only once sends_stopped() (abort(), a failed
//   send). A filter's failure (fail_write) refuses new bytes but still
//   sends those queued: they carry its alert.
// - The receive buffer does not move while a plain recv is in flight
//   (ByteBuffer); a multishot recv never writes into it.
// - The socket is closed exactly once, only with no operation in flight:
//   close() cancels the recv and lets queued writes finish first.
// - Completion callbacks only record results, start the next send and wake
//   waiters; user code runs in the woken tasks.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "coro/frame_allocator.hpp"
#include "loop/backend.hpp"
#include "loop/event_loop.hpp"
#include "net/byte_buffer.hpp"
#include "net/socket.hpp"
#include "net/stream_filter.hpp"
#include "net/wait_list.hpp"

namespace corio {

// Per-connection settings shared by clients and servers (asyncio's limit and
// the transport's write buffer limits).
struct StreamOptions {
  // The most readuntil()/readline()/read() buffer while looking for a
  // separator or EOF before they throw LimitOverrun.
  std::size_t limit = 64 * 1024;
  // drain() blocks once more than write_high_water bytes are buffered, and
  // resumes when the kernel took all but write_low_water of them.
  std::size_t write_high_water = 64 * 1024;
  std::size_t write_low_water = 16 * 1024;
  // TCP_NODELAY on TCP connections (asyncio sets it too): write() sends at once.
  bool nodelay = true;
};

namespace detail {

class StreamConn;

// A StreamReader read waiting for its data (the awaitables of
// net/stream.hpp). At most one per connection (begin_read). The connection
// asks it at every change of the read side whether it can finish, so a
// request arriving in pieces wakes its task once, when it is complete; until
// then the connection keeps a recv going for it. The connection parks the
// waiting task, whose hook is this object (TaskBase::hook()): so the
// awaitable, which sits in the suspended frame, needs no task pointer.
class ReadWaiter : public CancelHook {
 public:
  // Whether the read can end now: enough bytes, EOF, an error, or a limit
  // overrun (the task resumes and the awaitable returns or throws). Called
  // from completions: no throwing, no allocation.
  virtual bool ready(StreamConn& c) noexcept = 0;
  // Bytes wanted beyond those buffered (sizes the next recv).
  virtual std::size_t want(const StreamConn& c) const noexcept = 0;
  // Bytes that arrive while this reader waits and nothing is buffered: how
  // many of them it copies straight to where it wants them (readinto's
  // buffer), saving a copy through the receive buffer. The rest is buffered.
  // Called from completions: no throwing, no allocation.
  virtual std::size_t take(const char*, std::size_t) noexcept { return 0; }

 protected:
  ReadWaiter() = default;
  ReadWaiter(const ReadWaiter&) = default;
  ~ReadWaiter() = default;
};

class StreamConn;

// Keeps a StreamConn's memory (not the connection: it may close meanwhile)
// alive: what a pending read, drain() or wait_closed() holds, since each may
// outlive the StreamReader/StreamWriter that made it (a read passed to
// create_task, a handler returning while one is pending). Such an operation
// then ends as on a closed stream (EOF, or the connection's error).
class ConnRef {
 public:
  explicit ConnRef(StreamConn* c) noexcept;
  ConnRef(ConnRef&& o) noexcept : c_(o.c_) { o.c_ = nullptr; }
  ConnRef& operator=(ConnRef&&) = delete;
  ~ConnRef();
  StreamConn* get() const noexcept { return c_; }
  StreamConn* operator->() const noexcept { return c_; }
  StreamConn& operator*() const noexcept { return *c_; }

 private:
  StreamConn* c_;
};

class StreamConn {
 public:
  StreamConn(Socket sock, const StreamOptions& opts);
  StreamConn(const StreamConn&) = delete;
  StreamConn& operator=(const StreamConn&) = delete;

  // For a StreamConn built inside another object's allocation (a server
  // connection's task record, net/server.cpp), where it saves a malloc
  // header and a pointer per connection: from now on the connection holds
  // a reference on `host` and, when its own last reference goes, destroys
  // itself in place and releases `host` instead of freeing its memory. The
  // host must be a task of the loop the connection was made on, and must not
  // destroy the StreamConn itself.
  void adopt_host(TaskBase& host) noexcept {
    host.add_ref();
    owner_ = reinterpret_cast<std::uintptr_t>(&host) | kHosted;
  }

  // ---- lifetime ---------------------------------------------------------
  // refs_ counts user handles and operations in flight; handles_ only the
  // StreamReader/StreamWriter objects. When the last handle goes, the stream
  // is closed (gracefully: queued writes are still sent).
  void add_handle() noexcept {
    ++handles_;
    ++refs_;
  }
  void drop_handle() noexcept {
    if (--handles_ == 0) close();
    release();
  }

  // ---- read side ----------------------------------------------------------
  ByteBuffer& rbuf() noexcept { return rbuf_; }
  const ByteBuffer& rbuf() const noexcept { return rbuf_; }
  // No more bytes will arrive: EOF, a read error, or the stream was closed;
  // or, after end_idle_reads(), nothing is buffered.
  bool eof() const noexcept { return eof_ || closing_ || (idle_eof_ && rbuf_.empty()); }
  // For a filter: the raw stream below it ended. Not end_idle_reads()'s soft
  // EOF, which eof() also reports while nothing decoded is buffered: a TLS
  // record still arriving in pieces is not truncated by a graceful shutdown.
  bool raw_eof() const noexcept { return eof_ || closing_; }
  // A server's graceful shutdown: from now on a read that finds nothing
  // buffered returns EOF instead of waiting (one holding part of a message
  // still waits for the rest), so a handler ends at its next read between
  // requests. Wakes a reader waiting now.
  void end_idle_reads() noexcept {
    idle_eof_ = true;
    read_waiters_.wake_all();
    notify_reader();
  }
  int read_error() const noexcept { return read_err_; }
  [[noreturn]] void throw_read_error() const;
  // Waits until a recv completed (more data, EOF or an error) — starting one
  // for at least `want` bytes if none is in flight. Returns at once if the
  // stream is at EOF or the recv completed synchronously. Callers re-check.
  Waiter wait_data(std::size_t want);
  // For a reader whose ready() is false: starts a recv for `want` more bytes
  // unless one is in flight. True if the reader must wait (park it); false
  // if the stream ended or a recv completed at once (ask ready() again).
  bool need_data(std::size_t want);
  // The reader waits until its ready() holds; then its task is woken. `t`
  // must be suspended with `w` as its hook (TaskBase::suspend before this).
  void park_reader(TaskBase& t) noexcept { reader_ = &t; }
  // Bytes a reader took (ReadWaiter::take) but gives back: its wait was
  // cancelled after they arrived. They go in front of what is buffered.
  void unread(const char* p, std::size_t n) { rbuf_.prepend(p, n); }
  void unpark_reader(ReadWaiter& w) noexcept {
    if (reader_ && reader_->hook() == &w) reader_ = nullptr;
  }
  std::size_t limit() const noexcept { return widen(limit_); }
  // One reader at a time (asyncio raises RuntimeError for a second one).
  void begin_read(const char* what);
  void end_read() noexcept {
    reader_busy_ = false;
    // Unless a recv in flight points into it, an empty buffer is given back:
    // an idle stream owns no read buffer.
    if (rbuf_.empty() && (multishot() || !reading_ || in_scratch_)) rbuf_.release_memory();
  }
  // Whether reads use the loop's provided buffers (multishot recv).
  bool uses_provided_buffers() const noexcept { return multishot(); }
  // Whether rbuf() may be swapped for another buffer now: no plain recv is
  // in flight into its tail (a multishot recv or one into the scratch buffer
  // never writes there).
  bool rbuf_movable() const noexcept { return !reading_ || multishot() || in_scratch_; }

  // ---- write side ---------------------------------------------------------
  void write(const char* p, std::size_t n);
  // For a writer that assembles bytes in place (the HTTP server): while
  // writes_open(), the queue's tail is free to append to (prepare/commit on
  // write_queue()); flush_raw() then starts sending. What is appended is
  // sent in order after everything queued before, once flushed or when a
  // send in flight completes. Not with a filter (its bytes must be encoded).
  bool writes_open() const noexcept {
    return !closing_ && !eof_requested_ && !write_err_ && !aborted_ && !filter();
  }
  ByteBuffer& write_queue() { return write_state().pending; }
  std::size_t buffered() const noexcept { return w_ ? w_->sending.size() + w_->pending.size() : 0; }
  bool paused() const noexcept { return paused_; }
  int write_error() const noexcept { return write_err_; }
  [[noreturn]] void throw_write_error() const;
  // Nothing more goes to the socket: abort() (or the loop's teardown), or a
  // failed send, dropped what was queued. After a filter's failure
  // (fail_write) write_error() is set, but what the filter had encoded
  // before it is still sent while w_ holds it; nothing can be queued after
  // it, so once w_ is gone (all sent, or a failed send dropped the rest:
  // write_err_ then holds the send's errno) the sends have stopped too.
  bool sends_stopped() const noexcept { return aborted_ || (write_err_ && !(filter_write_err_ && w_)); }
  // abort() (or the loop's teardown) dropped whatever was still queued: bytes
  // written may never have reached the peer. Not after a close that sent
  // everything (abort() then finds the stream closed and does nothing).
  bool aborted() const noexcept { return aborted_; }
  // What drain() throws then: ConnectionResetError naming the peer (asyncio's
  // "Connection lost").
  [[noreturn]] void throw_aborted() const;
  // drain() and wait_closed() share one list: both re-check their condition
  // when woken, and a stream closes once, so sharing costs nothing measurable
  // and keeps an idle connection a list smaller.
  Waiter wait_drain() noexcept { return writer_waiters_.wait("StreamWriter.drain"); }
  void set_write_limits(std::size_t high, std::size_t low);
  std::size_t high_water() const noexcept { return widen(high_); }
  std::size_t low_water() const noexcept { return widen(low_); }
  void write_eof();
  bool eof_requested() const noexcept { return eof_requested_; }

  // ---- closing --------------------------------------------------------------
  void close() noexcept;
  void abort() noexcept;
  // close() or abort() was called.
  bool closing() const noexcept { return closing_; }
  // The connection is lost without a close(): a recv or a send failed (also
  // a filter's failure: fail_read, fail_write), or the loop's teardown
  // dropped what was queued.
  bool lost() const noexcept { return read_err_ || write_err_ || aborted_; }
  bool closed() const noexcept { return closed_; }
  Waiter wait_closed() noexcept { return writer_waiters_.wait("StreamWriter.wait_closed", closed_); }

  // The socket as a Socket object (asyncio's get_extra_info('socket')),
  // made on first use; fd -1 once the connection closed.
  const Socket& socket() const;
  int fd() const noexcept { return read_op_.fd; }
  // getsockname, cached by the first call and, for a connection closed
  // while a StreamReader/StreamWriter still exists, just before its socket
  // closes: it answers after close() too (asyncio caches 'sockname' when
  // the transport is made; corio pays the syscall only for connections
  // that can still be asked). OSError if the kernel refused it.
  SocketAddress local_address() const;
  // The peer, cached at construction (accept's address or getpeername);
  // empty if the socket never had one.
  SocketAddress peer() const noexcept;
  // For messages: the peer, else what the socket can tell ("fd 7").
  std::string describe() const;

  // ---- layering (net/stream_filter.hpp; TLS) ------------------------------
  // Puts `f` between the socket and the user's buffers. Bytes received and
  // not yet read become its input (with the storage of a recv in flight:
  // the buffers swap, so the kernel's pointer stays valid).
  void set_filter(std::unique_ptr<StreamFilter> f);
  StreamFilter* filter() const noexcept { return x_ ? x_->filter.get() : nullptr; }
  // For the filter: queue encoded bytes / start sending them.
  void append_raw(const char* p, std::size_t n) {
    if (!write_err_ && !aborted_) write_state().pending.append(p, n);
  }
  void flush_raw() noexcept;
  // For the filter: the decoded stream ended (e.g. TLS close_notify), or
  // failed (err: an errno for read_error(); the filter throws the details).
  void mark_eof() noexcept { eof_ = true; }
  void fail_read(int err) noexcept {
    if (!read_err_) read_err_ = static_cast<std::uint8_t>(err);
    eof_ = true;
  }
  // For the filter: nothing more can be encoded (err: an errno for
  // write_error(); the filter throws the details). The connection is lost
  // for writing as after a failed send — write() drops new bytes, and
  // drain() throws, also one waiting now — except that the bytes already
  // queued (encoded before the failure: TLS's fatal alert) are still sent,
  // so the peer learns why. close() waits for them as for any queued bytes;
  // abort() or a failed send drops them.
  void fail_write(int err) noexcept;

 private:
  friend class ConnRef;
  ~StreamConn();
  void add_ref() noexcept { ++refs_; }
  void release() noexcept {
    if (--refs_ == 0) destroy();
  }
  // The last reference went: delete, or (adopt_host) end in place.
  void destroy() noexcept;

  // owner_: the loop, or the host task (adopt_host) with bit 0 set, whose
  // scheduler is the loop. Both are at least 8-byte aligned.
  static constexpr std::uintptr_t kHosted = 1;
  TaskBase* host() const noexcept {
    return (owner_ & kHosted) ? reinterpret_cast<TaskBase*>(owner_ & ~kHosted) : nullptr;
  }
  EventLoop& loop() const noexcept {
    if (TaskBase* h = host()) return static_cast<EventLoop&>(h->scheduler());
    return *reinterpret_cast<EventLoop*>(owner_);
  }
  // Reads use the loop's provided buffers: read_op_ is a multishot recv.
  bool multishot() const noexcept { return read_op_.kind == OpKind::recv_multishot; }
  // The pool a multishot recv draws from.
  ProvidedBuffers& pool() const noexcept { return *loop().backend().buffer_pool(); }

  void start_read(std::size_t want);
  // The read side changed: wake the parked reader if it can finish, else
  // make sure a recv is going for it.
  void notify_reader() noexcept;
  // Wakes every waiter of the read side.
  void read_side_changed() noexcept {
    read_waiters_.wake_all();
    notify_reader();
  }
  void on_read_result(int r) noexcept;
  void on_multishot_result(int r, std::uint32_t cqe_flags, bool final) noexcept;
  static void read_done(IoOp* op) noexcept;

  void pump_writes() noexcept;
  void on_send_result(int r) noexcept;
  void drop_write_buffers() noexcept;
  void update_pause() noexcept;
  static void write_done(IoOp* op) noexcept;

  static std::uint32_t saturate(std::size_t v) noexcept {
    return v >= UINT32_MAX ? UINT32_MAX : static_cast<std::uint32_t>(v);
  }
  static std::size_t widen(std::uint32_t v) noexcept { return v == UINT32_MAX ? SIZE_MAX : v; }

  void maybe_finish_close() noexcept;
  void close_socket() noexcept;

  // Sending: what exists only while bytes are queued or in flight, so an
  // idle connection carries no send op and no buffers (allocated by the
  // first write(), freed once everything was sent).
  struct WriteState {
    IoOp op;
    ByteBuffer sending;  // owned by the kernel while writing_ (sent bytes are consumed)
    ByteBuffer pending;
    static void* operator new(std::size_t n) { return frame_alloc(n); }
    static void operator delete(void* p, std::size_t n) noexcept { frame_free(p, n); }
  };
  // Bytes the kernel received into a provided buffer or the scratch buffer.
  void receive(ByteBuffer& dst, const char* p, std::size_t n);
  WriteState& write_state();

  // socket()'s object: shares the fd without owning it. For a non-IP socket it
  // exists from the start and caches the peer (a Unix address is 110 bytes,
  // too many to keep inline for the rare case).
  struct SocketView {
    Socket sock;
    SocketView(int fd, const SocketAddress& peer) noexcept : sock(fd, peer) {}
    ~SocketView() { (void)sock.release(); }
  };

  // What few connections have: a Socket object (socket(); a non-IP
  // socket's from the start), a filter (TLS) and the local address
  // (local_address(); kept here, not inline: no room in the 184 bytes).
  struct Extras {
    std::unique_ptr<SocketView> view;
    std::unique_ptr<StreamFilter> filter;
    std::optional<SocketAddress> local;
  };
  Extras& extras() const;
  SocketView* view() const noexcept { return x_ ? x_->view.get() : nullptr; }

  // Laid out for size: one of these lives as long as its connection, and a
  // server keeps tens of thousands of idle ones (184 bytes; a server puts it
  // in the connection's task record). The socket's fd is read_op_.fd (-1
  // once closed), and which reads are used is read_op_.kind, so neither is
  // kept twice.
  std::uintptr_t owner_;
  // 16 bits: the handles are the StreamReader/StreamWriter objects made on
  // this connection (two, a few more with TLS or an HTTP body), refs those
  // plus the (at most two) operations in flight.
  std::uint16_t refs_ = 0;
  std::uint16_t handles_ = 0;
  std::uint8_t read_err_ = 0;   // an errno (Linux's are below 256)
  std::uint8_t write_err_ = 0;  // an errno

  bool reading_ : 1 = false;      // read_op_ in flight (multishot: still armed)
  bool pausing_ : 1 = false;      // multishot cancelled for flow control, not for close
  bool delivered_ : 1 = false;    // multishot delivered data at least once
  bool in_scratch_ : 1 = false;   // plain recv into the backend's read_scratch(), not rbuf_
  bool eof_ : 1 = false;
  bool idle_eof_ : 1 = false;     // end_idle_reads() was called
  bool reader_busy_ : 1 = false;
  bool notifying_ : 1 = false;    // inside notify_reader()
  bool writing_ : 1 = false;      // w_->op in flight
  bool paused_ : 1 = false;
  bool eof_requested_ : 1 = false;
  bool eof_sent_ : 1 = false;
  bool closing_ : 1 = false;
  bool aborted_ : 1 = false;
  bool closed_ : 1 = false;
  // write_err_ is the filter's (fail_write): it has the details, and the
  // bytes queued before it are still sent (sends_stopped()).
  bool filter_write_err_ : 1 = false;

  // The peer of an IPv4/IPv6 connection (family 0 otherwise): messages
  // name it even after a reset, when the kernel no longer knows it. A
  // sockaddr_in6 less its flow label (which names no peer): 24 bytes.
  struct PeerAddr {
    sa_family_t family = 0;
    in_port_t port = 0;  // network order
    std::uint32_t scope_id = 0;
    union {
      in_addr v4;
      in6_addr v6;
    };
  } peer_{};
  mutable std::unique_ptr<Extras> x_;

  // Read side.
  IoOp read_op_;
  ByteBuffer rbuf_;
  // The sizes below are 32-bit, saturating: UINT32_MAX reads back as
  // SIZE_MAX ("no limit"), so a limit of 4 GiB or more means none. Four of
  // them share 16 bytes where size_t would take 32 (one StreamConn per idle
  // connection).
  union {
    std::uint32_t pause_at_ = 0;  // multishot: cancel it once this much is buffered
    std::uint32_t read_chunk_;    // plain recv: the next recv's size
  };
  std::uint32_t limit_;
  std::uint32_t high_;
  std::uint32_t low_;
  ParkList read_waiters_;  // wait_data() (HTTP server, TLS handshake)
  TaskBase* reader_ = nullptr;  // parked in a StreamReader read: its hook() is the ReadWaiter

  // Write side.
  std::unique_ptr<WriteState> w_;
  ParkList writer_waiters_;  // drain() and wait_closed()
};

inline ConnRef::ConnRef(StreamConn* c) noexcept : c_(c) {
  if (c_) c_->add_ref();
}
inline ConnRef::~ConnRef() {
  if (c_) c_->release();  // may free the connection
}

}  // namespace detail
}  // namespace corio
