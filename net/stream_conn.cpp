#include "net/stream_conn.hpp"

#include <netinet/in.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "loop/fd_io.hpp"

namespace corio::detail {

namespace {
// A recv starts at kMinChunk and doubles (up to kMaxChunk) while the kernel
// fills it completely: small exchanges keep small buffers, bulk transfers
// get few large recvs.
constexpr std::uint32_t kMinChunk = 8 * 1024;
constexpr std::uint32_t kMaxChunk = 256 * 1024;
constexpr std::uint32_t kMaxLen = 0x7ffff000u;
// A multishot recv is paused once this much (or what the reader waits for,
// if more) is buffered and unread.
constexpr std::size_t kPauseAbove = 256 * 1024;
}  // namespace

StreamConn::StreamConn(Socket sock, const StreamOptions& opts)
    : owner_(reinterpret_cast<std::uintptr_t>(&EventLoop::current())),
      limit_(saturate(opts.limit)),
      high_(saturate(opts.write_high_water)),
      low_(saturate(opts.write_low_water)) {
  if (limit_ == 0) throw std::invalid_argument("StreamOptions::limit must be positive");
  if (opts.write_low_water > opts.write_high_water) throw std::invalid_argument("StreamOptions: write_low_water must not exceed write_high_water");
  SocketAddress peer;
  try {
    peer = sock.peer_address();  // cached from now on: messages name the peer after a reset too
  } catch (const OSError&) {
    // Not connected (any more): messages fall back to the socket's description.
  }
  const bool ip = peer.is_ipv4() || peer.is_ipv6();
  if (opts.nodelay && ip) {
    try {
      sock.set_nodelay(true);
    } catch (const OSError&) {
    }
  }
  if (peer.is_ipv4()) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(peer.data());
    peer_.family = AF_INET;
    peer_.port = a->sin_port;
    peer_.v4 = a->sin_addr;
  } else if (peer.is_ipv6()) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(peer.data());
    peer_.family = AF_INET6;
    peer_.port = a->sin6_port;
    peer_.scope_id = a->sin6_scope_id;
    peer_.v6 = a->sin6_addr;
  }
  else extras().view = std::make_unique<SocketView>(sock.fd(), peer);
  const bool pooled = loop().backend().provided_buffers() != nullptr;
  if (!pooled) read_chunk_ = kMinChunk;
  read_op_.kind = pooled ? OpKind::recv_multishot : OpKind::recv;
  // The first read completes once: a connection that sends one request and
  // is closed after the answer (HTTP "Connection: close") then has no armed
  // recv to cancel before its close. Later reads stay armed (multishot).
  read_op_.oneshot = pooled;
  read_op_.stream = true;  // a byte stream: a short recv emptied the socket (epoll skips a doomed retry)
  read_op_.fd = sock.release();  // nothing below throws
  read_op_.complete = &StreamConn::read_done;
  read_op_.ctx = this;
}

SocketAddress StreamConn::peer() const noexcept {
  switch (peer_.family) {
    case AF_INET: {
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = peer_.port;
      a.sin_addr = peer_.v4;
      return SocketAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&a), sizeof a);
    }
    case AF_INET6: {
      sockaddr_in6 a{};
      a.sin6_family = AF_INET6;
      a.sin6_port = peer_.port;
      a.sin6_scope_id = peer_.scope_id;
      a.sin6_addr = peer_.v6;
      return SocketAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&a), sizeof a);
    }
    default:
      break;
  }
  if (SocketView* v = view()) {
    try {
      return v->sock.peer_address();
    } catch (...) {
    }
  }
  return SocketAddress();
}

StreamConn::Extras& StreamConn::extras() const {
  if (!x_) x_ = std::make_unique<Extras>();
  return *x_;
}

const Socket& StreamConn::socket() const {
  if (!view()) extras().view = std::make_unique<SocketView>(fd(), peer());
  return x_->view->sock;
}

SocketAddress StreamConn::local_address() const {
  if (x_ && x_->local) return *x_->local;
  SocketAddress a;
  socklen_t len = SocketAddress::capacity();
  if (::getsockname(fd(), a.data(), &len) < 0) throw_os_error(errno, "getsockname", "fd " + std::to_string(fd()));
  a.set_size(len);
  extras().local = a;
  return a;
}

std::string StreamConn::describe() const {
  SocketAddress p = peer();
  if (!p.empty()) return p.to_string();
  return socket().describe();
}

StreamConn::~StreamConn() {
  // Only reached with nothing in flight (each op holds a reference).
  close_socket();
}

void StreamConn::destroy() noexcept {
  TaskBase* h = host();
  if (!h) {
    delete this;
    return;
  }
  this->~StreamConn();
  h->release();  // may free the memory this object lived in
}

void StreamConn::close_socket() noexcept {
  // No recv is in flight (the invariant above): read_op_.fd is free to change.
  if (read_op_.fd < 0) return;
  // Last chance for getsockname: a StreamWriter may still ask after the
  // close. With no handle left nobody can, so the usual server connection
  // (closed when its handler returns) pays nothing.
  if (handles_ > 0) {
    try {
      (void)local_address();
    } catch (...) {
      // No memory, or the kernel refused: local_address() throws later.
    }
  }
  if (SocketView* v = view()) (void)v->sock.release();
  corio::close_fd(std::exchange(read_op_.fd, -1));
}

StreamConn::WriteState& StreamConn::write_state() {
  if (!w_) {
    w_ = std::make_unique<WriteState>();
    w_->op.kind = OpKind::send;
    w_->op.fd = fd();
    w_->op.complete = &StreamConn::write_done;
    w_->op.ctx = this;
  }
  return *w_;
}

// ---- read side --------------------------------------------------------------

void StreamConn::throw_read_error() const {
  if (StreamFilter* f = filter()) f->rethrow_error();
  throw_os_error(read_err_, "recv", describe());
}

void StreamConn::begin_read(const char* what) {
  if (reader_busy_) {
    throw InvalidStateError(std::string("StreamReader.") + what +
                            "() called while another task is already waiting for incoming data");
  }
  reader_busy_ = true;
}

Waiter StreamConn::wait_data(std::size_t want) {
  if (!reading_) {
    if (eof()) return read_waiters_.wait("StreamReader read", true);
    start_read(want);
    if (!reading_) return read_waiters_.wait("StreamReader read", true);  // completed synchronously
  } else if (multishot()) {
    pause_at_ = saturate(std::max(widen(pause_at_), rbuf_.size() + want));
  }
  return read_waiters_.wait("StreamReader read");
}

bool StreamConn::need_data(std::size_t want) {
  if (!reading_) {
    if (eof()) return false;
    start_read(want);
    return reading_;  // false: completed synchronously
  }
  if (multishot()) pause_at_ = saturate(std::max(widen(pause_at_), rbuf_.size() + want));
  return true;
}

void StreamConn::notify_reader() noexcept {
  // A recv started here may complete synchronously (epoll) and call back in:
  // the nested call returns at once and this loop looks again, so a burst of
  // synchronous completions does not grow the stack.
  if (!reader_ || notifying_) return;
  notifying_ = true;
  while (TaskBase* t = reader_) {
    ReadWaiter* w = static_cast<ReadWaiter*>(t->hook());
    if (w->ready(*this)) {
      reader_ = nullptr;
      t->wake();
      break;
    }
    if (reading_ || eof()) break;  // the recv in flight calls again
    try {
      start_read(w->want(*this));
    } catch (...) {
      fail_read(ENOMEM);  // the receive buffer could not grow: the reader sees the error
    }
    if (reading_) break;
  }
  notifying_ = false;
}

void StreamConn::start_read(std::size_t want) {
  if (multishot()) {
    pause_at_ = saturate(std::max({limit(), kPauseAbove, rbuf_.size() + want}));
    pausing_ = false;
    if (loop().backend().submit(read_op_)) {  // not on io_uring; handled for completeness
      on_multishot_result(read_op_.result, read_op_.cqe_flags, true);
      return;
    }
    reading_ = true;
    add_ref();
    return;
  }
  std::size_t chunk = std::max<std::size_t>(read_chunk_, std::min<std::size_t>(want, kMaxChunk * 4));
  ByteBuffer& dst = filter() ? filter()->raw_input() : rbuf_;
  std::uint32_t scratch_len = 0;
  char* scratch = dst.empty() ? loop().backend().read_scratch(&scratch_len) : nullptr;
  in_scratch_ = scratch != nullptr;
  if (in_scratch_) {
    read_op_.buf = scratch;  // shared: on_read_result copies the bytes out at once
    read_op_.len = static_cast<std::uint32_t>(std::min<std::size_t>(scratch_len, chunk));
  } else {
    char* tail = dst.prepare(chunk);
    read_op_.buf = tail;
    read_op_.len = static_cast<std::uint32_t>(std::min<std::size_t>(dst.free_tail(), kMaxLen));
  }
  if (loop().backend().submit(read_op_)) {
    on_read_result(read_op_.result);
    return;
  }
  reading_ = true;
  add_ref();
}

void StreamConn::on_read_result(int r) noexcept {
  if (r > 0) {
    // No recv is in flight any more: prepare() may move the buffer.
    ByteBuffer& dst = filter() ? filter()->raw_input() : rbuf_;
    if (in_scratch_) receive(dst, static_cast<const char*>(read_op_.buf), static_cast<std::size_t>(r));
    else dst.commit(static_cast<std::size_t>(r));
    if (static_cast<std::uint32_t>(r) == read_op_.len && read_chunk_ < kMaxChunk) read_chunk_ *= 2;
  } else if (r == 0 || r == -ECANCELED) {
    eof_ = true;  // the peer's FIN, or our own close() cancelled the recv
  } else if (r != -EAGAIN && r != -EINTR) {
    read_err_ = static_cast<std::uint8_t>(-r);
    eof_ = true;
  }
  if (StreamFilter* f = filter()) f->on_input(*this);
  read_side_changed();
}

void StreamConn::on_multishot_result(int r, std::uint32_t cqe_flags, bool final) noexcept {
  // The first read (oneshot) is over: the next one, which the reader may
  // start from in here (read_side_changed), stays armed.
  const bool oneshot = read_op_.oneshot;
  read_op_.oneshot = false;
  if (cqe_flags & kCqeBuffer) {
    if (r > 0) {
      // The receive buffer is ours alone in this mode: prepare() may move it.
      receive(filter() ? filter()->raw_input() : rbuf_, pool().data(cqe_flags), static_cast<std::size_t>(r));
      if (!oneshot) delivered_ = true;  // the kernel does have multishot recv
    }
    pool().recycle(cqe_flags);  // at once: the pool is shared by every socket
    if (filter() && r > 0) filter()->on_input(*this);  // decoded bytes count for the pause below
  }
  if (r > 0) {
    if (!final && !pausing_ && rbuf_.size() >= widen(pause_at_)) {
      pausing_ = true;  // the reader is behind: stop until it asks again
      loop().backend().cancel(read_op_);
    }
  } else if (r == 0) {
    eof_ = true;
  } else if (r == -ECANCELED) {
    if (!pausing_) eof_ = true;  // close() cancelled it (or the loop's teardown)
  } else if (r == -ENOBUFS) {
    // The pool ran dry within one batch; every buffer is back by now. The
    // woken reader re-arms (a reader-less stream stays idle and costs nothing).
  } else if (r == -EINVAL && !delivered_ && !oneshot) {
    // A kernel without multishot recv: plain recv from now on. Not after the
    // one-shot first read, a plain recv: its EINVAL is the socket's (a Unix
    // stream socket that is not connected) and ends this stream like any error.
    pool().disable();
    read_op_.kind = OpKind::recv;
    read_chunk_ = kMinChunk;  // shares storage with pause_at_
  } else if (r != -EAGAIN && r != -EINTR) {
    read_err_ = static_cast<std::uint8_t>(-r);
    eof_ = true;
  }
  if (filter() && r <= 0) filter()->on_input(*this);  // the raw stream's end or failure
  read_side_changed();
}

void StreamConn::receive(ByteBuffer& dst, const char* p, std::size_t n) {
  std::size_t k = 0;
  // Only in front of nothing: bytes stay in order.
  if (reader_ && &dst == &rbuf_ && rbuf_.empty()) k = static_cast<ReadWaiter*>(reader_->hook())->take(p, n);
  dst.append(p + k, n - k);
}

void StreamConn::read_done(IoOp* op) noexcept {
  auto* self = static_cast<StreamConn*>(op->ctx);
  // A multishot recv completes many times; only its last completion ends
  // the op (and drops its reference).
  const bool final = !(op->cqe_flags & kCqeMore);
  if (final) self->reading_ = false;
  if (op->kind == OpKind::recv_multishot) self->on_multishot_result(op->result, op->cqe_flags, final);
  else self->on_read_result(op->result);
  if (!final) return;
  self->maybe_finish_close();
  self->release();  // the recv's reference; may free self
}

// ---- write side -------------------------------------------------------------

void StreamConn::throw_write_error() const {
  if (filter_write_err_) {
    if (StreamFilter* f = filter()) f->rethrow_error();
  }
  throw_os_error(write_err_, "send", describe());
}

void StreamConn::fail_write(int err) noexcept {
  if (write_err_) return;  // a send failed first: drain() reports that
  write_err_ = static_cast<std::uint8_t>(err);
  filter_write_err_ = true;
  // What is queued was encoded before the failure (and, before a filter
  // was attached, written in plain): it still goes out, so the peer reads
  // the filter's last word (TLS's fatal alert) instead of a reset or a bare
  // EOF, also when a send is in flight or the kernel cannot take it yet.
  // write() and append_raw() take nothing more (sends_stopped() stays false
  // until a send fails or abort()).
  if (!writing_) pump_writes();  // frees the write state if nothing is queued
  update_pause();
}

void StreamConn::throw_aborted() const {
  throw ConnectionResetError(ECONNRESET, "drain " + describe() + ": connection lost (aborted)");
}

void StreamConn::write(const char* p, std::size_t n) {
  if (closing_) throw InvalidStateError("StreamWriter.write() after close()");
  if (eof_requested_) throw InvalidStateError("StreamWriter.write() after write_eof()");
  // After a failed send the connection is lost: drop the bytes, drain() reports it.
  if (write_err_ || n == 0) return;
  if (StreamFilter* f = filter()) {
    f->write(*this, p, n);
    return;
  }
  if (!w_ && !aborted_) {
    // Nothing buffered and no send in flight: send straight from the
    // caller's bytes where the backend can do it at once (epoll; io_uring
    // answers -EAGAIN), as asyncio's transports do. Only what the kernel
    // did not take is copied into the write buffer.
    IoOp op;
    op.kind = OpKind::send;
    op.fd = fd();
    op.buf = const_cast<char*>(p);
    op.len = static_cast<std::uint32_t>(std::min<std::size_t>(n, kMaxLen));
    int r = loop().backend().try_now(op);
    if (r > 0) {
      p += r;
      n -= static_cast<std::size_t>(r);
      if (n == 0) return;
    } else if (r < 0 && r != -EAGAIN && r != -EINTR) {
      write_err_ = static_cast<std::uint8_t>(-r);  // the connection is lost: drain() reports it
      return;
    }
  }
  write_state().pending.append(p, n);
  if (!writing_) pump_writes();
  if (buffered() > high_water()) paused_ = true;
}

void StreamConn::set_write_limits(std::size_t high, std::size_t low) {
  if (low > high) throw std::invalid_argument("set_write_buffer_limits: low must not exceed high");
  high_ = saturate(high);
  low_ = saturate(low);
  if (buffered() > high_water()) paused_ = true;
  update_pause();
}

void StreamConn::pump_writes() noexcept {
  // A send completing during loop teardown (partly sent, not cancelled) must
  // not start another: the loop waits for every op in flight to finish and
  // a peer that does not read would hold it for its whole grace period.
  if (EventLoop::current_or_null() != &loop() && !writing_) {
    aborted_ = true;
    drop_write_buffers();
  }
  while (w_ && !writing_ && !sends_stopped()) {
    WriteState& w = *w_;
    if (w.sending.empty()) {
      if (w.pending.empty()) break;
      std::swap(w.sending, w.pending);  // the emptied block takes the next writes
    }
    w.op.buf = const_cast<char*>(w.sending.data());
    w.op.len = static_cast<std::uint32_t>(std::min<std::size_t>(w.sending.size(), kMaxLen));
    if (!loop().backend().submit(w.op)) {
      writing_ = true;
      add_ref();
      break;
    }
    on_send_result(w.op.result);  // epoll sent at once
  }
  if (!writing_) {
    if (buffered() == 0 && eof_requested_ && !eof_sent_ && !write_err_ && fd() >= 0) {
      eof_sent_ = true;
      ::shutdown(fd(), SHUT_WR);  // an error here means the peer is gone: nothing to tell
    }
    // Everything sent: give the send op and buffers back, so that an idle
    // connection owns no write state (with thousands of idle keep-alive
    // connections the last response's capacity would otherwise stay pinned
    // in each). The next write() allocates again; the frame allocator's and
    // malloc's per-thread caches make that cheap.
    if (buffered() == 0) w_.reset();
  }
  update_pause();
  maybe_finish_close();
}

void StreamConn::on_send_result(int r) noexcept {
  if (r >= 0) {
    w_->sending.consume(static_cast<std::size_t>(r));
  } else if (r == -ECANCELED) {
    aborted_ = true;  // abort() or loop teardown: the rest is dropped, nobody failed
    drop_write_buffers();
  } else if (r != -EAGAIN && r != -EINTR) {
    // EPIPE, ECONNRESET, …: the connection is lost. After a filter's
    // failure its error stays the story (throw_write_error); either way the
    // rest of its flush is dropped (no send in flight: w_ goes now).
    write_err_ = static_cast<std::uint8_t>(-r);
    drop_write_buffers();
  }
}

void StreamConn::drop_write_buffers() noexcept {
  // Only with no send in flight: the kernel may still read the buffers.
  if (writing_) return;
  w_.reset();
}

void StreamConn::update_pause() noexcept {
  if (!paused_) return;
  if (buffered() <= low_water() || write_err_ || aborted_ || closed_) {
    paused_ = false;
    writer_waiters_.wake_all();
  }
}

void StreamConn::write_done(IoOp* op) noexcept {
  auto* self = static_cast<StreamConn*>(op->ctx);
  self->writing_ = false;
  self->on_send_result(op->result);
  // Nothing more will be sent (pump_writes stops): what is left goes now.
  // (A filter's failure, fail_write, alone does not stop the sends: what it
  // encoded before is still flushed.)
  if (self->sends_stopped()) self->drop_write_buffers();
  self->pump_writes();
  self->release();  // the send's reference; may free self
}

void StreamConn::write_eof() {
  if (closing_) return;
  if (eof_requested_) return;
  eof_requested_ = true;
  if (StreamFilter* f = filter()) f->on_write_eof(*this);  // queued before the FIN
  if (!writing_) pump_writes();  // shuts down at once when nothing is queued
}

void StreamConn::set_filter(std::unique_ptr<StreamFilter> f) {
  Extras& x = extras();
  x.filter = std::move(f);
  std::swap(x.filter->raw_input(), rbuf_);
}

void StreamConn::flush_raw() noexcept {
  if (!writing_) pump_writes();
  if (buffered() > high_water()) paused_ = true;
}

// ---- closing ------------------------------------------------------------------

void StreamConn::close() noexcept {
  if (closing_) return;
  if (filter() && !aborted_) filter()->on_close(*this);  // its goodbye goes out before the socket closes
  closing_ = true;
  if (reading_) loop().backend().cancel(read_op_);  // its completion reads as EOF
  read_side_changed();
  maybe_finish_close();
}

void StreamConn::abort() noexcept {
  if (closed_) return;
  // Marked before close(), so that close() queues no goodbye (a filter's
  // on_close: TLS's close_notify) and append_raw() takes nothing more: abort
  // sends nothing beyond what the kernel already has, as asyncio's
  // transport.abort(). A close_notify queued by an earlier close() or
  // write_eof() is dropped with the rest, unless its send is in flight.
  const bool was_aborted = aborted_;  // by an earlier abort(), or the loop's teardown
  aborted_ = true;
  close();
  if (was_aborted) return;
  drop_write_buffers();
  if (writing_) loop().backend().cancel(w_->op);
  update_pause();
  maybe_finish_close();
}

void StreamConn::maybe_finish_close() noexcept {
  if (!closing_ || closed_ || reading_ || writing_) return;
  if (buffered() > 0 && !sends_stopped()) return;  // still flushing; the next completion calls again
  closed_ = true;
  close_socket();
  read_side_changed();
  paused_ = false;
  writer_waiters_.wake_all();  // drain() and wait_closed() waiters
}

}  // namespace corio::detail
