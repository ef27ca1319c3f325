#include "net/stream.hpp"

#include <algorithm>
#include <cstring>
#include <new>
#include <stdexcept>
#include <utility>
#include <vector>

#include "net/dns.hpp"
#include "net/tls.hpp"

namespace corio {

namespace detail {

// ---- StreamRead: what every read shares -----------------------------------

bool StreamRead::start() {
  c_->begin_read(what());
  busy_ = true;
  for (;;) {
    if (ready(*c_)) return true;
    if (c_->need_data(want(*c_))) return false;
  }
}

bool StreamRead::await_suspend(std::coroutine_handle<> h) {
  TaskBase& t = TaskBase::current_checked(what());
  suspended_ = true;
  if (t.take_pending_cancel()) {
    cancelled_ = true;
    return false;
  }
  t.suspend(h, this, what());
  c_->park_reader(t);  // after suspend(): the connection finds this object as t's hook
  return true;
}

bool StreamRead::on_cancel(TaskBase& t) noexcept {
  c_->unpark_reader(*this);
  cancelled_ = true;
  t.wake();
  return true;
}

StreamRead::Resume::Resume(StreamRead& r) : r_(r) {
  // Woken because the read can finish, but a cancel came first (or after
  // the wake-up, before the task ran): the bytes stay buffered for the next
  // read, as when the wait itself was interrupted.
  // (await_resume runs in the task that suspended.)
  if (r.suspended_ && (r.cancelled_ || TaskBase::current()->take_pending_cancel())) {
    r.give_back();
    r.finish();
    TaskBase::current()->throw_cancelled();
  }
}

void StreamRead::finish() noexcept {
  // Also the destructor's job: a frame destroyed while suspended here (loop
  // teardown) must leave the connection without a parked reader.
  if (suspended_) c_->unpark_reader(*this);
  if (busy_) {
    busy_ = false;
    c_->end_read();
  }
}

// ---- read(n) ------------------------------------------------------------------

bool ReadSome::ready(StreamConn& c) noexcept { return !c.rbuf().empty() || c.eof(); }

bool ReadSome::await_ready() { return n_ == 0 || start(); }

std::string ReadSome::await_resume() {
  if (!busy_) return std::string();  // n == 0
  Resume r(*this);
  if (c_->rbuf().empty()) {
    if (c_->read_error()) c_->throw_read_error();
    return std::string();
  }
  return c_->rbuf().take(std::min(n_, c_->rbuf().size()));
}

// ---- readinto(buf) ------------------------------------------------------------

bool ReadInto::ready(StreamConn& c) noexcept { return taken_ > 0 || !c.rbuf().empty() || c.eof(); }

bool ReadInto::await_ready() { return buf_.empty() || start(); }

std::size_t ReadInto::take(const char* p, std::size_t n) noexcept {
  if (taken_ > 0) return 0;  // woken already: later bytes queue behind these
  taken_ = std::min(n, buf_.size());
  std::memcpy(buf_.data(), p, taken_);
  return taken_;
}

void ReadInto::give_back() noexcept {
  if (taken_ == 0) return;
  try {
    c_->unread(reinterpret_cast<const char*>(buf_.data()), std::exchange(taken_, 0));
  } catch (const std::bad_alloc&) {
    c_->fail_read(ENOMEM);  // cannot keep them: the stream ends with an error rather than skip bytes
  }
}

std::size_t ReadInto::await_resume() {
  if (!busy_) return 0;  // an empty buffer
  Resume r(*this);
  if (taken_ > 0) return taken_;
  if (c_->rbuf().empty()) {
    if (c_->read_error()) c_->throw_read_error();
    return 0;
  }
  std::size_t n = std::min(buf_.size(), c_->rbuf().size());
  std::memcpy(buf_.data(), c_->rbuf().data(), n);
  c_->rbuf().consume(n);
  return n;
}

// ---- read() ---------------------------------------------------------------------

bool ReadAll::ready(StreamConn& c) noexcept { return c.eof() || c.rbuf().size() > c.limit(); }

bool ReadAll::await_ready() { return start(); }

std::string ReadAll::await_resume() {
  Resume r(*this);
  if (!c_->eof()) {
    throw LimitOverrun("read() reached the limit of " + std::to_string(c_->limit()) + " bytes before EOF",
                       c_->rbuf().size());
  }
  if (c_->read_error()) c_->throw_read_error();
  return c_->rbuf().take_all();
}

// ---- readexactly(n) ---------------------------------------------------------------

bool ReadExactly::ready(StreamConn& c) noexcept { return c.rbuf().size() >= n_ || c.eof(); }

std::size_t ReadExactly::want(const StreamConn& c) const noexcept {
  std::size_t have = c.rbuf().size();
  return have < n_ ? n_ - have : 0;
}

bool ReadExactly::await_ready() { return n_ == 0 || start(); }

std::string ReadExactly::await_resume() {
  if (!busy_) return std::string();  // n == 0
  Resume r(*this);
  if (c_->rbuf().size() >= n_) return c_->rbuf().take(n_);
  if (c_->read_error()) c_->throw_read_error();
  throw IncompleteRead(c_->rbuf().take_all(), n_);
}

// ---- readuntil(sep) / readline() --------------------------------------------------

namespace {
// A separator longer than ReadUntil's inline space: [size][bytes] on the heap.
// Out of line: rare, and once inlined into a caller whose separator is a
// short literal, GCC 12 (with LTO) warns about this dead branch reading past it.
[[gnu::noinline, gnu::cold]] char* heap_separator(std::string_view sep) {
  char* p = static_cast<char*>(::operator new(sizeof(std::size_t) + sep.size()));
  const std::size_t n = sep.size();
  std::memcpy(p, &n, sizeof n);
  std::memcpy(p + sizeof n, sep.data(), n);
  return p;
}
}  // namespace

ReadUntil::ReadUntil(StreamConn* c, std::string_view sep, bool line) : StreamRead(c), line_(line) {
  if (sep.size() <= kInline) {
    sep_inline_ = static_cast<std::uint8_t>(sep.size());
    if (!sep.empty()) std::memcpy(small_, sep.data(), sep.size());
  } else {
    big_ = heap_separator(sep);
    sep_inline_ = kOnHeap;
  }
}

ReadUntil::ReadUntil(ReadUntil&& o) noexcept
    : StreamRead(std::move(o)), line_(o.line_), sep_inline_(o.sep_inline_), offset_(o.offset_) {
  if (sep_inline_ == kOnHeap) {
    big_ = o.big_;
    o.sep_inline_ = 0;  // the moved-from object no longer owns the block
  } else {
    std::memcpy(small_, o.small_, sep_inline_);
  }
}

ReadUntil::~ReadUntil() {
  if (sep_inline_ == kOnHeap) ::operator delete(big_);
}

std::size_t ReadUntil::scan(StreamConn& c) noexcept {
  const std::string_view v = c.rbuf().view();
  const std::string_view s = sep();
  if (v.size() >= s.size()) {
    std::size_t pos = v.find(s, offset_);
    if (pos != std::string_view::npos) return pos > c.limit() ? kOverrunFound : pos + s.size();
    const std::size_t next = v.size() + 1 - s.size();
    offset_ = static_cast<std::uint32_t>(std::min<std::size_t>(next, UINT32_MAX));
    if (next > c.limit()) return kOverrun;
  }
  return c.eof() ? kEof : kNeedMore;
}

bool ReadUntil::await_ready() {
  if (sep().empty()) throw std::invalid_argument("readuntil: the separator must not be empty");
  return start();
}

std::string ReadUntil::await_resume() {
  Resume r(*this);
  const std::size_t n = scan(*c_);
  switch (n) {
    case kOverrunFound: {
      std::size_t pos = c_->rbuf().view().find(sep(), offset_);
      throw LimitOverrun("Separator is found, but chunk is longer than limit", pos);
    }
    case kOverrun:
      // scan() just looked at everything but the separator's length less one.
      throw LimitOverrun("Separator is not found, and chunk exceed the limit", c_->rbuf().size() + 1 - sep().size());
    case kEof:
      if (c_->read_error()) c_->throw_read_error();
      if (!line_) throw IncompleteRead(c_->rbuf().take_all(), std::nullopt);
      return c_->rbuf().take_all();  // the partial last line ("" when nothing is left)
    case kNeedMore:
      // Unreachable: the task is woken (or does not suspend) only once
      // scan() says something else, and nothing takes bytes meanwhile.
      throw InvalidStateError("readuntil resumed without a result");
    default:
      return c_->rbuf().take(n);
  }
}

}  // namespace detail

// ---- StreamReader ----------------------------------------------------------

StreamReader& StreamReader::operator=(StreamReader&& o) noexcept {
  if (this != &o) {
    if (c_) c_->drop_handle();
    c_ = std::exchange(o.c_, nullptr);
  }
  return *this;
}

// ---- StreamWriter ----------------------------------------------------------

StreamWriter& StreamWriter::operator=(StreamWriter&& o) noexcept {
  if (this != &o) {
    if (c_) c_->drop_handle();
    c_ = std::exchange(o.c_, nullptr);
  }
  return *this;
}

Task<void> detail::Drain::drain_wait(ConnRef c) {
  for (;;) {
    // The connection was lost under the reader (a reset, a failed TLS
    // session): asyncio's drain() raises the reader's exception first.
    if (c->read_error()) c->throw_read_error();
    if (c->write_error()) c->throw_write_error();
    // abort() wakes a drain blocked here as the buffer empties; the bytes were
    // dropped, not flushed, and returning would say they went out.
    if (c->aborted()) c->throw_aborted();
    if (!c->paused()) co_return;
    co_await c->wait_drain();
  }
}

namespace {
// A reference, taken when wait_closed() is called: the wait may outlive the
// StreamWriter (a task made from it, still waiting when the writer goes).
Task<void> wait_closed_of(detail::ConnRef c) {
  while (!c->closed()) co_await c->wait_closed();
}
}  // namespace

Task<void> StreamWriter::wait_closed() { return wait_closed_of(detail::ConnRef(c_)); }

// ---- opening connections -----------------------------------------------------

StreamPair make_streams(Socket sock, const StreamOptions& opts) {
  auto* c = new detail::StreamConn(std::move(sock), opts);
  return StreamPair{StreamReader(c), StreamWriter(c)};
}

namespace {

// Python: "Cannot create a client socket with a PROTOCOL_TLS_SERVER context".
void check_client_context(const ConnectOptions& opts) {
  if (opts.tls && opts.tls.get()->is_server())
    throw std::invalid_argument(
        "open_connection: ConnectOptions::tls is a server context (make it with TlsContext::client)");
}

}  // namespace

Task<StreamPair> open_connection(SocketAddress addr, ConnectOptions opts) {
  check_client_context(opts);
  std::vector<SocketAddress> one(1, addr);
  Socket s = co_await connect_happy_eyeballs(std::move(one), opts);
  StreamPair p = make_streams(std::move(s), opts);
  if (opts.tls) {
    std::string name = opts.server_hostname.empty() ? addr.host() : std::string(opts.server_hostname);
    co_await detail::tls_handshake(p.writer.connection(), opts.tls.lock(), std::move(name), opts.tls_handshake_timeout);
  }
  co_return p;
}

Task<StreamPair> open_unix_connection(std::string path, ConnectOptions opts) {
  return open_connection(SocketAddress::unix_path(path), std::move(opts));
}

Task<StreamPair> open_connection(std::string host, std::uint16_t port, ConnectOptions opts) {
  check_client_context(opts);
  std::string name = opts.tls && opts.server_hostname.empty() ? host : std::string(opts.server_hostname);
  Socket s = co_await create_connection(std::move(host), port, opts);
  StreamPair p = make_streams(std::move(s), opts);
  if (opts.tls) {
    co_await detail::tls_handshake(p.writer.connection(), opts.tls.lock(), std::move(name), opts.tls_handshake_timeout);
  }
  co_return p;
}

}  // namespace corio
