#include "net/http/server.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/sendfile.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <mutex>
#include <new>
#include <thread>

#include "coro/errors.hpp"
#include "coro/sleep.hpp"
#include "coro/task_handle.hpp"
#include "loop/event_loop.hpp"
#include "loop/fd_io.hpp"
#include "loop/to_thread.hpp"
#include "net/byte_buffer.hpp"
#include "net/dns.hpp"
#include "net/errors.hpp"
#include "net/socket.hpp"
#include "net/stream_conn.hpp"
#include "net/wait_list.hpp"

namespace corio::http {

using namespace std::string_view_literals;

// ---- small pieces ----------------------------------------------------------------

namespace {

// "Date: …\r\n" for this thread, rebuilt when the second changes. The coarse
// clock is read through the vDSO: no syscall, ~nanoseconds.
struct DateCache {
  std::time_t sec = -1;
  std::size_t len = 0;
  char buf[64];
};
thread_local DateCache tls_date;

// "HTTP/1.1 200 OK\r\n" for every status from 100 to 599, built once.
class StatusLines {
 public:
  StatusLines() {
    for (int s = 100; s < 600; ++s) {
      std::string& l = lines_[s - 100];
      l = "HTTP/1.1 " + std::to_string(s) + " ";
      l += reason_phrase(s);
      l += "\r\n";
    }
  }
  std::string_view get(int status) const noexcept {
    if (status < 100 || status > 599) status = 500;
    return lines_[status - 100];
  }

 private:
  std::string lines_[500];
};
const StatusLines& status_lines() {
  static const StatusLines lines;
  return lines;
}

// Response bytes of a connection, written straight into its StreamConn's
// write queue (no copy through a buffer of our own), where they wait for
// flush(): responses to pipelined requests that arrived together leave in
// one send. Bytes written while the stream takes no more (closing, failed)
// are dropped, as a write() then would be.
class ConnOut {
 public:
  explicit ConnOut(corio::detail::StreamConn* c) noexcept : c_(c) {}
  ConnOut(const ConnOut&) = delete;
  ConnOut& operator=(const ConnOut&) = delete;

  std::size_t size() const noexcept { return n_; }  // since the last flush
  // Room for at least `more` bytes; write them, then commit(end).
  char* reserve_tail(std::size_t more) {
    dst_ = &target();
    tail_ = room(*dst_, more);
    return tail_;
  }
  void commit(const char* end) noexcept {
    const auto k = static_cast<std::size_t>(end - tail_);
    dst_->commit(k);
    if (dst_ != &dropped_) n_ += k;
  }
  void append(const char* d, std::size_t n) {
    if (n == 0) return;
    corio::detail::ByteBuffer& t = target();
    std::memcpy(room(t, n), d, n);
    t.commit(n);
    if (&t != &dropped_) n_ += n;
  }
  ConnOut& operator+=(std::string_view v) {
    append(v.data(), v.size());
    return *this;
  }
  // Starts sending what was written.
  void flush() noexcept {
    if (n_ == 0) return;
    n_ = 0;
    if (c_->writes_open()) c_->flush_raw();
  }

 private:
  // The first block of a write queue: the frame allocator's largest size
  // class (2,040 bytes, cached per thread, so no more costly than a small
  // one). The answers to a batch of pipelined requests then fill it without
  // growing it block by block (each step a copy); an idle connection owns
  // none (the StreamConn frees its write buffers once they are sent).
  static constexpr std::size_t kFirstBlock = 2040 - 3 * sizeof(std::size_t);
  static char* room(corio::detail::ByteBuffer& t, std::size_t n) {
    return t.prepare(t.capacity() ? n : std::max(n, kFirstBlock));
  }
  // Where the next bytes go: the write queue, or (emptied) dropped_.
  corio::detail::ByteBuffer& target() {
    if (c_->writes_open()) return c_->write_queue();
    dropped_.clear();
    return dropped_;
  }

  corio::detail::StreamConn* c_;
  corio::detail::ByteBuffer* dst_ = nullptr;
  char* tail_ = nullptr;
  std::size_t n_ = 0;
  corio::detail::ByteBuffer dropped_;
};

template <class Out>
void append_uint(Out& out, std::uint64_t v) {
  char* t = out.reserve_tail(24);
  out.commit(std::to_chars(t, t + 24, v).ptr);
}

template <class Out>
void append_hex(Out& out, std::uint64_t v) {
  char* t = out.reserve_tail(24);
  out.commit(std::to_chars(t, t + 24, v, 16).ptr);
}

// A response field a handler set must not split the response.
bool valid_field(std::string_view name, std::string_view value) noexcept {
  if (name.empty()) return false;
  for (char c : name) {
    if (c <= 0x20 || c >= 0x7f || c == ':') return false;
  }
  return valid_field_value(value);  // no control byte but HTAB
}

// Pre-built response heads for the answers a server sends most: the status
// line, Server, Date, Content-Type and "Content-Length: " of a response with
// no other fields, per (status, Content-Type). Entries are dropped when the
// Date second changes. An answer then costs one append of this prefix plus
// the length and the body, instead of a dozen small appends per response
// (pipelined requests are answered back to back from one buffer).
class HeadCache {
 public:
  // The prefix, or nullptr if content_type is not a valid field value.
  // `now` is the loop's iteration time: the Date in the prefixes is checked
  // only once the second it names may have ended, not per response.
  const std::string* get(int status, const std::string& content_type, std::string_view server_line, TimePoint now);

 private:
  struct Entry {
    int status = 0;  // 0: empty
    std::string content_type;
    std::string prefix;
  };
  Entry entries_[4];
  std::time_t sec_ = -1;
  TimePoint recheck_{};  // when the Date second may have changed (steady clock)
  unsigned next_ = 0;
};

}  // namespace

namespace {
// Brings this thread's Date line up to the current second; returns the
// nanoseconds left in that second.
long refresh_date() noexcept {
  DateCache& d = tls_date;
  timespec ts;
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  if (ts.tv_sec != d.sec) {
    std::memcpy(d.buf, "Date: ", 6);
    detail::write_http_date(d.buf + 6, ts.tv_sec);
    std::memcpy(d.buf + 6 + detail::kHttpDateSize, "\r\n", 2);
    d.len = 6 + detail::kHttpDateSize + 2;
    d.sec = ts.tv_sec;
  }
  return 1'000'000'000L - ts.tv_nsec;
}
}  // namespace

std::string_view date_line() noexcept {
  refresh_date();
  return {tls_date.buf, tls_date.len};
}

namespace {

// a == b for the short strings a Content-Type is, without a library memcmp
// call (std::string's == makes one for every length).
inline bool same_bytes(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  const char* p = a.data();
  const char* q = b.data();
  std::size_t n = a.size();
  for (; n >= 8; n -= 8, p += 8, q += 8) {
    std::uint64_t x, y;
    std::memcpy(&x, p, 8);
    std::memcpy(&y, q, 8);
    if (x != y) return false;
  }
  for (; n > 0; --n)
    if (*p++ != *q++) return false;
  return true;
}

const std::string* HeadCache::get(int status, const std::string& content_type, std::string_view server_line,
                                  TimePoint now) {
  if (now >= recheck_) {
    // The wall clock is read only here, about once a second: a response
    // between two checks may name the previous second for a few
    // milliseconds at most (an iteration's length; the coarse clock's tick).
    recheck_ = now + std::chrono::nanoseconds(refresh_date());
    if (tls_date.sec != sec_) {
      sec_ = tls_date.sec;
      for (Entry& e : entries_) e.status = 0;
    }
  }
  if (status < 100 || status > 599) status = 500;
  for (Entry& e : entries_) {
    if (e.status == status && same_bytes(e.content_type, content_type)) return &e.prefix;
  }
  if (!valid_field_value(content_type)) return nullptr;
  Entry& e = entries_[next_++ % std::size(entries_)];
  e.status = status;
  e.content_type = content_type;
  e.prefix.clear();
  e.prefix += status_lines().get(status);
  e.prefix += server_line;
  e.prefix += std::string_view(tls_date.buf, tls_date.len);
  if (!content_type.empty()) {
    e.prefix += "Content-Type: "sv;
    e.prefix += content_type;
    e.prefix += "\r\n"sv;
  }
  e.prefix += "Content-Length: "sv;
  return &e.prefix;
}

}  // namespace

FileBody& FileBody::operator=(FileBody&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(o.fd_, -1);
    offset_ = o.offset_;
    length_ = o.length_;
  }
  return *this;
}

FileBody::~FileBody() {
  // A regular file: no loop op is ever in flight on it (sendfile is synchronous).
  if (fd_ >= 0) ::close(fd_);
}

Response Response::text(std::string body, int status) {
  Response r;
  r.status = status;
  r.content_type = "text/plain";
  r.body = std::move(body);
  return r;
}

Response Response::json(std::string body, int status) {
  Response r;
  r.status = status;
  r.content_type = "application/json";
  r.body = std::move(body);
  return r;
}

Response Response::error(int status) {
  std::string body = std::to_string(status);
  body += ' ';
  body += reason_phrase(status);
  body += '\n';
  return text(std::move(body), status);
}

// ---- the server's per-loop state and its connections -----------------------------

namespace detail {

using corio::detail::ParkList;
using corio::detail::StreamConn;
using corio::detail::TimerNode;

class Connection;

// One per loop (worker). Shared by its connections, so it outlives every one
// of them even when serve() ends first (cancellation, loop teardown).
struct ServerState {
  ServerState(Handler h, const ServeOptions& o, Socket l)
      : handler(std::move(h)), opts(o), listener(std::move(l)), loop(&EventLoop::current()) {
    if (!opts.server_name.empty()) server_line = "Server: " + opts.server_name + "\r\n";
  }
  Handler handler;
  ServeOptions opts;
  Socket listener;
  EventLoop* loop;
  std::string server_line;
  HeadCache heads;
  std::size_t connections = 0;
  bool shutting_down = false;
  Connection* first = nullptr;  // live connections (intrusive, for shutdown)
  ParkList slot_waiters;        // the acceptor, at max_connections
  ParkList done_waiters;        // serve(), waiting for the last connection
};

// One client connection, living in its task's frame.
//
// Invariants:
// - head_buf_ holds a copy of the current request's head and every view of
//   parser_.head() points into it (the receive buffer may move while the
//   handler runs: a multishot recv appends to it at any completion).
// - out_ writes responses into the StreamConn's write queue, where they
//   start going out at flush(), which comes before any wait for input: so
//   pipelined requests that arrived together are answered with one send, and
//   nothing waits on a response that was not flushed. (A send in flight that
//   completes while a handler runs may take them along earlier; the order
//   of bytes never changes.)
// - The timer is armed only while phase_ != busy, or lazily past it: a fire
//   during `busy` does nothing and the next wait re-arms. The deadline moves
//   without touching the timer heap when it only moves later.
class Connection {
 public:
  enum class Phase : std::uint8_t { busy, idle, header, body, send, linger };

  Connection(std::shared_ptr<ServerState> s, Socket sock)
      : s_(std::move(s)), c_(open(std::move(sock))), parser_(s_->opts.limits), out_(c_) {
    c_->add_handle();
    timer_.fire = &Connection::fired;
    timer_.ctx = this;
    next_ = s_->first;
    if (next_) next_->prev_ = this;
    s_->first = this;
  }
  Connection(const Connection&) = delete;
  ~Connection() {
    s_->loop->cancel_timer(timer_);
    if (prev_) prev_->next_ = next_;
    else s_->first = next_;
    if (next_) next_->prev_ = prev_;
    c_->drop_handle();  // closes gracefully: queued bytes still go out
  }

  Task<void> run();
  Task<void> finish_sending();

  // ---- used by Request / BodyWriter ----
  Task<std::string> read_body_piece();
  void write_body(std::string_view data);
  Task<void> drain_body();
  SocketAddress peer() const noexcept { return c_->peer(); }

  // ---- used by the server ----
  Connection* next() const noexcept { return next_; }
  bool idle() const noexcept { return phase_ == Phase::idle; }
  void close_idle() noexcept { c_->close(); }  // its wait sees EOF and the task ends
  void cancel(const char* why) noexcept {
    if (task_) task_->cancel(why);
  }

 private:
  static StreamConn* open(Socket sock) {
    StreamOptions so;
    so.nodelay = false;  // set_nodelay(): only once a second send can follow an unacknowledged one
    return new StreamConn(std::move(sock), so);
  }
  static void fired(TimerNode* n) noexcept { static_cast<Connection*>(n->ctx)->on_timer(); }
  void on_timer() noexcept;
  void arm(Phase p, std::chrono::milliseconds d);
  class InputWait;
  InputWait wait_input();
  bool end_wait(bool cancelled);
  void flush();
  Task<void> wait_sent();
  template <class MakeWait>
  Task<bool> send_wait(MakeWait make_wait, Phase p, std::chrono::milliseconds d);
  [[noreturn]] void send_timed_out();
  void send_error(int status);
  Task<void> lingering_close();
  Task<bool> skip_body();
  bool begin(const RequestHead& h);
  static std::exception_ptr check(const Response& resp, bool head_only) noexcept;
  const std::string* cached_prefix(const Response& resp);
  bool answer(const RequestHead& h, const Response& resp, bool keep, const std::string* prefix);
  Task<bool> finish(RequestHead& h, Response& resp, bool keep, std::exception_ptr failure);
  void set_nodelay() noexcept;
  Task<void> send_file(const FileBody& f);
  void append_head(const RequestHead& h, const Response& r, bool keep, int framing, std::uint64_t length);

  std::shared_ptr<ServerState> s_;
  StreamConn* c_;
  TaskBase* task_ = nullptr;
  TaskBase* waiter_ = nullptr;  // the task in wait_input (the handler's, for bodies)
  Connection* prev_ = nullptr;
  Connection* next_ = nullptr;
  RequestParser parser_;
  // From the frame allocator, given back when the connection goes idle:
  // the next request takes a block that is still in the cache (a block kept
  // by each of a thousand idle connections would not be).
  corio::detail::ByteBuffer head_buf_;
  ConnOut out_;
  TimerNode timer_;
  TimePoint deadline_{};
  // A streamed body's bytes still due under the handler's Content-Length.
  static constexpr std::uint64_t kUnbounded = ~std::uint64_t{0};
  std::uint64_t body_left_ = kUnbounded;
  Phase phase_ = Phase::busy;
  bool timed_out_ = false;
  bool expect_continue_ = false;
  bool continue_sent_ = false;
  bool chunked_out_ = false;
  bool dead_ = false;  // the connection failed: stop at once
  bool nodelay_ = false;  // TCP_NODELAY was set
  // Last: its chunked decoder (160 bytes) is touched only by chunked
  // bodies, so between the parser and the fields above it would put two
  // more cache lines on every request's path (with a thousand connections
  // each of them a miss).
  BodyDecoder body_;
};

// Awaits a Task to its end without taking its result out: the caller reads
// it in place through the promise (Connection::run).
template <class T>
struct Finished : Task<T>::Awaiter {
  void await_resume() const noexcept {}
};

enum Framing : int { kLength = 0, kChunked = 1, kUntilClose = 2, kNoBody = 3 };

// Statuses whose responses never have a body (RFC 9110 §6.4.1): 1xx, 204, 304.
constexpr bool bodiless(int status) noexcept { return status < 200 || status == 204 || status == 304; }

// A 2xx answer to CONNECT makes the connection a tunnel right after its head
// (RFC 9112 §6.3): it has no Content-Length or Transfer-Encoding (RFC 9110
// §9.3.6), its body is close-delimited, and as this server tunnels nothing,
// the connection ends after it.
constexpr bool tunnel(const RequestHead& h, int status) noexcept {
  return h.method_id == Method::connect && status >= 200 && status < 300;
}

// Fields of a handler's response that frame the message. The server writes
// them itself, once: Content-Length (check() validated the handler's, see
// declared_length()), Transfer-Encoding, and Connection (asks_close()).
bool framing_field(std::string_view name) noexcept {
  return iequals(name, "content-length") || iequals(name, "transfer-encoding") || iequals(name, "connection");
}

// The handler's own Content-Length field, when it set one (check() made sure
// it is a number and that there is one at most).
std::optional<std::uint64_t> declared_length(const Response& r) noexcept {
  for (const auto& [n, v] : r.headers) {
    if (!iequals(n, "content-length")) continue;
    std::uint64_t x = 0;
    std::from_chars(v.data(), v.data() + v.size(), x);
    return x;
  }
  return std::nullopt;
}

// Response::close, or a "Connection: close" field among the handler's.
bool asks_close(const Response& r) noexcept {
  if (r.close) return true;
  for (const auto& [n, v] : r.headers) {
    if (iequals(n, "connection") && has_token(v, "close")) return true;
  }
  return false;
}

void Connection::on_timer() noexcept {
  if (phase_ == Phase::busy || waiter_ == nullptr) return;  // re-armed by the next wait
  TimePoint now = s_->loop->now();
  if (now < deadline_) {
    timer_.deadline = deadline_;
    s_->loop->add_timer(timer_);
    return;
  }
  timed_out_ = true;
  waiter_->cancel("http: timeout");
}

void Connection::arm(Phase p, std::chrono::milliseconds d) {
  phase_ = p;
  // The iteration's clock (no clock read per request): a timeout of seconds
  // may end the few microseconds this iteration has run early.
  deadline_ = s_->loop->iteration_time() + d;
  if (timer_.armed()) {
    if (timer_.deadline <= deadline_) return;  // fires early and re-arms itself for deadline_
    s_->loop->cancel_timer(timer_);
  }
  timer_.deadline = deadline_;
  s_->loop->add_timer(timer_);
}

// Waits for more input (or EOF) in the current phase; `co_await` gives
// false when the phase's deadline passed. An awaitable rather than a
// coroutine: the wait lives in the waiting frame, which is resumed anyway,
// instead of in a frame of its own per request (with a thousand connections
// each frame touched is a cache miss).
class Connection::InputWait {
 public:
  explicit InputWait(Connection* c) : c_(c), w_(c->c_->wait_data(0)) { c->waiter_ = TaskBase::current(); }
  InputWait(const InputWait&) = delete;
  bool await_ready() const noexcept { return w_.await_ready(); }
  bool await_suspend(std::coroutine_handle<> h) { return w_.await_suspend(h); }
  bool await_resume() {
    bool cancelled = false;
    try {
      w_.await_resume();
    } catch (const CancelledError&) {
      cancelled = true;
    }
    return c_->end_wait(cancelled);
  }

 private:
  Connection* c_;
  corio::detail::Waiter w_;
};

Connection::InputWait Connection::wait_input() { return InputWait(this); }

// Ends a wait begun with waiter_ set (the phase's timer may cancel it): false
// if the timer did, rethrows any other cancellation.
bool Connection::end_wait(bool cancelled) {
  phase_ = Phase::busy;
  TaskBase* t = std::exchange(waiter_, nullptr);
  if (timed_out_) {
    // Ours: take the request back (uncancel drops it if it was not delivered
    // yet because the awaited event woke the task first).
    timed_out_ = false;
    t->uncancel();
    return false;
  }
  if (cancelled) t->throw_cancelled();
  return true;
}

// Nagle's algorithm holds back a small send while an earlier one is not
// acknowledged, and the client's delayed ACK can make that 40 ms. Only a
// connection that sends twice can meet it: one kept alive (the next response
// may go out before the client acknowledged this one, e.g. pipelined requests
// arriving in separate segments), a streamed or file body, 100 Continue. A
// connection answered once and closed never pays the setsockopt (nginx, too,
// sets it only on keep-alive connections and before such bodies).
void Connection::set_nodelay() noexcept {
  if (nodelay_) return;
  nodelay_ = true;
  int one = 1;
  // Fails harmlessly (EOPNOTSUPP) on a Unix socket, or when already closed.
  (void)::setsockopt(c_->socket().fd(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

void Connection::flush() { out_.flush(); }

// Waits for the client to take response bytes (make_wait() gives a drain or
// a writable wait, made in place: awaiters do not move), for at most d in
// phase p (send_timeout while answering); false when it did not happen in
// that long. A drain wait ends once the buffer is below its low-water mark
// and a writable wait once the socket takes bytes, so each is one step of
// progress: the timeout runs between steps, not over the whole response.
template <class MakeWait>
Task<bool> Connection::send_wait(MakeWait make_wait, Phase p, std::chrono::milliseconds d) {
  arm(p, d);
  waiter_ = TaskBase::current();
  bool cancelled = false;
  try {
    co_await make_wait();
  } catch (const CancelledError&) {
    cancelled = true;
  }
  co_return end_wait(cancelled);
}

// The client stopped reading: nothing more can be sent, so the connection
// ends at once (its queued bytes are dropped).
void Connection::send_timed_out() {
  dead_ = true;
  c_->abort();
  throw OSError(ETIMEDOUT, "http: the client at " + c_->peer().to_string() + " took no response byte for " +
                               std::to_string(s_->opts.send_timeout.count()) + " ms (send_timeout)");
}

// Until the StreamConn handed every byte to the kernel (before sendfile).
Task<void> Connection::wait_sent() {
  flush();
  if (c_->buffered() == 0) co_return;
  const std::size_t high = c_->high_water(), low = c_->low_water();
  struct Restore {
    StreamConn* c;
    std::size_t high, low;
    ~Restore() { c->set_write_limits(high, low); }
  } restore{c_, high, low};
  c_->set_write_limits(0, 0);  // drain() then waits for an empty buffer
  while (c_->buffered() > 0 && !c_->write_error() && !c_->closed()) {
    if (!co_await send_wait([c = c_] { return c->wait_drain(); }, Phase::send, s_->opts.send_timeout)) send_timed_out();
  }
  if (c_->write_error()) c_->throw_write_error();
}

void Connection::append_head(const RequestHead& h, const Response& r, bool keep, int framing, std::uint64_t length) {
  out_ += status_lines().get(r.status);
  out_ += s_->server_line;
  out_ += date_line();
  if (!r.content_type.empty()) {
    out_ += "Content-Type: "sv;
    out_ += r.content_type;
    out_ += "\r\n"sv;
  }
  bool framing_fields = false;
  for (const auto& [name, value] : r.headers) {
    if (framing_field(name)) {
      framing_fields = true;
      continue;
    }
    out_ += name;
    out_ += ": "sv;
    out_ += value;
    out_ += "\r\n"sv;
  }
  // The handler's Content-Length is the body's (check()), or, for HEAD and
  // 304, the length a GET would have had (RFC 9110 §8.6): sent as given.
  const std::optional<std::uint64_t> declared = framing_fields ? declared_length(r) : std::nullopt;
  if (framing == kLength || (framing == kNoBody && declared)) {
    out_ += "Content-Length: "sv;
    append_uint(out_, declared.value_or(length));
    out_ += "\r\n"sv;
  } else if (framing == kChunked) {
    out_ += "Transfer-Encoding: chunked\r\n"sv;
  }
  if (!keep) out_ += "Connection: close\r\n"sv;
  else if (h.version_minor == 0) out_ += "Connection: keep-alive\r\n"sv;
  out_ += "\r\n"sv;
}

void Connection::send_error(int status) {
  Response r = Response::error(status);
  RequestHead h;  // the request could not be parsed: answer as HTTP/1.1
  append_head(h, r, false, kLength, r.body.size());
  // A HEAD request gets no content, even in an error (RFC 9110 §9.3.2): the
  // client would read it as the next response.
  if (parser_.head().method_id != Method::head) out_ += r.body;
}

// After an error the client may still be sending (the rest of a body, more
// pipelined requests). Closing with unread bytes makes the kernel send RST,
// which can destroy our answer before the client reads it; so: send, shut
// down our side, and read (and drop) until the client closes or 2 s pass.
Task<void> Connection::lingering_close() {
  flush();
  if (!c_->closing()) c_->write_eof();
  std::size_t dropped = 0;
  arm(Phase::linger, std::chrono::milliseconds(2000));
  phase_ = Phase::busy;
  while (!c_->eof() && dropped < (1u << 20)) {
    dropped += c_->rbuf().size();
    c_->rbuf().clear();
    phase_ = Phase::linger;
    if (!co_await wait_input()) break;
  }
  c_->rbuf().clear();
  c_->close();
}

// After run() closed the connection: close() sends what is still queued in
// the background, and the task (with its slot) lasts until that is done, so a
// graceful shutdown cannot end the loop, which cancels the sends in flight,
// under an answer half sent. A peer that stops reading gets the keep-alive
// timeout to take what is left (at most about the high-water mark: the
// answer's writers waited for the buffer to drain below it), then the
// connection is aborted.
Task<void> Connection::finish_sending() {
  if (!c_->closing() || c_->closed() || c_->buffered() == 0) co_return;
  c_->set_write_limits(0, 0);  // drain() then waits for an empty buffer (or the close)
  // sends_stopped(), not write_error(): this server's connections carry no
  // filter today, but after a filter's failure (TLS) write_error() is set
  // while what it queued, its alert last, is still being sent; that flush
  // gets the same bounded linger instead of going on unbounded after this
  // task.
  while (!c_->closed() && c_->buffered() > 0 && !c_->sends_stopped()) {
    if (!co_await send_wait([c = c_] { return c->wait_drain(); }, Phase::linger, s_->opts.keep_alive_timeout)) {
      c_->abort();
      co_return;
    }
  }
}

Task<std::string> Connection::read_body_piece() {
  if (body_.done() || dead_) co_return std::string();
  if (expect_continue_ && !continue_sent_) {
    continue_sent_ = true;
    set_nodelay();  // the final response follows in a second send
    out_ += "HTTP/1.1 100 Continue\r\n\r\n";
    flush();
  }
  for (;;) {
    std::string_view v = c_->rbuf().view();
    if (!v.empty()) {
      std::string_view data;
      std::size_t used = body_.decode(v, data);
      if (body_.failed()) throw HttpError(body_.error_status(), body_.error_message());
      std::string out(data);
      c_->rbuf().consume(used);
      if (!out.empty() || body_.done()) co_return out;
      if (used > 0) continue;
    }
    if (c_->eof()) throw HttpError(400, "the client closed the connection in the middle of the request body");
    arm(Phase::body, s_->opts.body_timeout);
    if (!co_await wait_input()) throw HttpError(408, "no request body bytes within the body timeout");
  }
}

// Reads past what the handler left unread so the next request can be parsed;
// false when that is not worth it (the connection is then closed).
Task<bool> Connection::skip_body() {
  flush();  // the answer goes out now, not once the rest of the body arrived
  std::uint64_t skipped = 0;
  try {
    while (!body_.done()) {
      std::string piece = co_await read_body_piece();
      skipped += piece.size();
      if (skipped > 1024 * 1024) co_return false;
    }
  } catch (const HttpError&) {
    co_return false;
  }
  co_return true;
}

void Connection::write_body(std::string_view data) {
  if (data.empty() || dead_) return;
  if (body_left_ != kUnbounded) {
    if (data.size() > body_left_)
      throw std::invalid_argument("BodyWriter::write: " + std::to_string(data.size()) + " bytes, but only " +
                                  std::to_string(body_left_) + " are left of the response's Content-Length");
    body_left_ -= data.size();
  }
  if (chunked_out_) {
    append_hex(out_, data.size());
    out_ += "\r\n";
    out_ += data;
    out_ += "\r\n";
  } else {
    out_ += data;
  }
  flush();
}

Task<void> Connection::drain_body() {
  flush();
  while (c_->paused() && !c_->write_error()) {
    if (!co_await send_wait([c = c_] { return c->wait_drain(); }, Phase::send, s_->opts.send_timeout)) send_timed_out();
  }
  if (c_->write_error()) c_->throw_write_error();
}

Task<void> Connection::send_file(const FileBody& f) {
  co_await wait_sent();
  const int fd = c_->socket().fd();
  off_t off = static_cast<off_t>(f.offset());
  std::uint64_t left = f.length();
  while (left > 0) {
    ssize_t n = ::sendfile(fd, f.fd(), &off, static_cast<std::size_t>(std::min<std::uint64_t>(left, 1u << 20)));
    if (n > 0) {
      left -= static_cast<std::uint64_t>(n);
    } else if (n < 0 && errno == EAGAIN) {
      if (!co_await send_wait([fd] { return wait_writable(fd); }, Phase::send, s_->opts.send_timeout)) send_timed_out();
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      // The peer is gone (EPIPE, ECONNRESET) or the file shrank under us
      // (n == 0): the promised length cannot be kept, so the connection ends.
      dead_ = true;
      c_->abort();
      co_return;
    }
  }
}

// Per-request state before run() calls the handler; returns whether the
// connection may stay open so far.
bool Connection::begin(const RequestHead& h) {
  body_.start(h.body_kind, h.content_length, s_->opts.limits.max_body);
  expect_continue_ = h.expect_continue;
  continue_sent_ = false;
  return h.keep_alive && !s_->shutting_down;
}

// What is wrong with the handler's answer (a field that would split the
// response, a Content-Length that would misframe it), or nullptr.
std::exception_ptr Connection::check(const Response& resp, bool head_only) noexcept {
  try {
    // A 1xx is never a final answer, and a status outside 100-599 has no
    // status line: sent as given, either would leave the client with a
    // response it cannot frame (a "500" line over a bodiless 99, a bare
    // 101 on a connection that does not switch protocols).
    if (resp.status < 200 || resp.status > 599)
      throw std::invalid_argument("response status " + std::to_string(resp.status) +
                                  " is not a final status (200-599)");
    bool length_seen = false, coding_seen = false;
    for (const auto& [n, v] : resp.headers) {
      if (!valid_field(n, v)) throw std::invalid_argument("response field '" + n + "' is not a valid field");
      if (iequals(n, "content-length")) {
        // The server frames every response. A Content-Length of the
        // handler's is sent once, as the body's length: it must be that
        // length, except on HEAD and 304 (the length a GET would get). On a
        // streamed body it replaces chunked coding, and BodyWriter holds the
        // stream to it.
        std::uint64_t x = 0;
        const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
        if (v.empty() || ec != std::errc() || end != v.data() + v.size())
          throw std::invalid_argument("response Content-Length '" + v + "' is not a number");
        if (length_seen) throw std::invalid_argument("response has more than one Content-Length field");
        length_seen = true;
        if (resp.status == 204) throw std::invalid_argument("a 204 response has no Content-Length (RFC 9110 §8.6)");
        if (!resp.stream && !head_only && resp.status != 304) {
          const std::uint64_t actual = resp.file ? resp.file->length() : resp.body.size();
          if (x != actual)
            throw std::invalid_argument("response Content-Length " + v + " does not match its body of " +
                                        std::to_string(actual) + " bytes");
        }
      } else if (iequals(n, "transfer-encoding")) {
        // The server's to choose: a streamed body without Content-Length is
        // chunked (HTTP/1.1) by itself; so "chunked" there is only redundant.
        if (!resp.stream || !iequals(v, "chunked"))
          throw std::invalid_argument("response field 'Transfer-Encoding: " + v +
                                      "' is the server's to set (a streamed body is chunked by itself)");
        coding_seen = true;
      }
    }
    if (length_seen && coding_seen)
      throw std::invalid_argument("response has both Content-Length and Transfer-Encoding");
    if (!valid_field_value(resp.content_type))
      throw std::invalid_argument("response Content-Type is not a valid field value");
  } catch (...) {
    return std::current_exception();
  }
  return nullptr;
}

// The cached head prefix for a response that has one (a body in memory or
// none, no extra fields, a status with a body), or nullptr. A prefix is
// only ever built for a valid Content-Type, so a response that has one
// needs no check().
const std::string* Connection::cached_prefix(const Response& resp) {
  const bool no_body = bodiless(resp.status);
  if (no_body || resp.status > 599 || !resp.headers.empty() || resp.stream || resp.file) return nullptr;
  return s_->heads.get(resp.status, resp.content_type, s_->server_line, s_->loop->iteration_time());
}

// The common answer, written without a suspension point: a body in memory
// (or none), the request's body fully read; `prefix` from cached_prefix().
// Returns keep.
bool Connection::answer(const RequestHead& h, const Response& resp, bool keep, const std::string* prefix) {
  if (asks_close(resp)) keep = false;
  const bool head_only = h.method_id == Method::head;
  const bool no_body = bodiless(resp.status);
  if (prefix) {
    // The whole answer in reserved room: prefix, length, end of head, body.
    // The end of the head is copied as a fixed 32 bytes (two moves, no
    // memcpy call) from a zero-padded table; only its length is kept.
    static constexpr char kTails[3][32] = {"\r\n\r\n", "\r\nConnection: close\r\n\r\n",
                                           "\r\nConnection: keep-alive\r\n\r\n"};
    // (A tail without room for its NUL in 32 bytes would not compile.)
    static constexpr std::size_t kTailSizes[3] = {std::char_traits<char>::length(kTails[0]),
                                                  std::char_traits<char>::length(kTails[1]),
                                                  std::char_traits<char>::length(kTails[2])};
    const int which = !keep ? 1 : h.version_minor == 0 ? 2 : 0;
    const std::size_t body = head_only ? 0 : resp.body.size();
    char* t = out_.reserve_tail(prefix->size() + 24 + 32 + body);
    std::memcpy(t, prefix->data(), prefix->size());
    t = std::to_chars(t + prefix->size(), t + prefix->size() + 24, resp.body.size()).ptr;
    std::memcpy(t, kTails[which], 32);
    t += kTailSizes[which];
    if (body) std::memcpy(t, resp.body.data(), body);
    out_.commit(t + body);
    return keep;
  }
  const bool tun = tunnel(h, resp.status);
  if (tun) keep = false;
  append_head(h, resp, keep, no_body ? kNoBody : tun ? kUntilClose : kLength, resp.body.size());
  if (!head_only && !no_body) out_ += resp.body;
  return keep;
}

// The rest of a request after its handler, when answer() does not cover it:
// a failed handler (500), streamed and file bodies, an unread request body.
// Returns keep.
Task<bool> Connection::finish(RequestHead& h, Response& resp, bool keep, std::exception_ptr failure) {
  if (dead_) co_return false;
  if (failure) {
    s_->loop->report_exception(failure, "http handler for " + c_->peer().to_string());
    resp = Response::error(500);
    resp.close = true;
    failure = nullptr;
  }
  if (asks_close(resp)) keep = false;
  const bool tun = tunnel(h, resp.status);
  if (tun) keep = false;
  // An unread body: the client still waits for our word before it sends a
  // body it announced with 100-continue, so it never comes; a body larger
  // than what skip_body() reads is not worth reading.
  if (!body_.done()) {
    if (expect_continue_ && !continue_sent_) keep = false;
    if (body_.kind() == BodyKind::content_length && body_.remaining() > 1024 * 1024) keep = false;
  }

  const bool head_only = h.method_id == Method::head;
  const bool no_body = bodiless(resp.status);
  if (resp.stream) {
    set_nodelay();  // the head and each chunk leave in separate sends
    // The handler's Content-Length, when it gave one, frames the stream.
    const std::optional<std::uint64_t> declared = declared_length(resp);
    int framing = no_body    ? kNoBody
                  : tun      ? kUntilClose
                  : declared ? kLength
                  : h.version_minor >= 1 ? kChunked
                                         : kUntilClose;
    if (framing == kUntilClose) keep = false;
    append_head(h, resp, keep, framing, 0);
    continue_sent_ = true;  // a 1xx can no longer precede the final answer (RFC 9110 §15.2)
    flush();
    if (!head_only && !no_body) {
      chunked_out_ = framing == kChunked;
      if (framing == kLength) body_left_ = *declared;
      BodyWriter w(this);
      try {
        co_await resp.stream(w);
      } catch (const OSError&) {
        // The connection's failure, or the stream's own I/O (reported below).
        if (c_->lost() || c_->closed()) dead_ = true;
        else failure = std::current_exception();
      } catch (const std::exception&) {
        failure = std::current_exception();
      }
      chunked_out_ = false;
      const std::uint64_t left = std::exchange(body_left_, kUnbounded);
      if (framing == kLength && left > 0 && !failure && !dead_)
        failure = std::make_exception_ptr(std::invalid_argument(
            "response stream ended " + std::to_string(left) + " bytes short of its Content-Length " +
            std::to_string(*declared)));
      if (failure) {
        // The head is gone already: the only honest signal left is a cut-off body.
        s_->loop->report_exception(failure, "http response stream for " + c_->peer().to_string());
        dead_ = true;
      }
      if (dead_) {
        c_->abort();
        co_return false;
      }
      if (framing == kChunked) out_ += "0\r\n\r\n";
    }
  } else if (resp.file) {
    set_nodelay();  // the head, then sendfile
    append_head(h, resp, keep, no_body ? kNoBody : tun ? kUntilClose : kLength, resp.file->length());
    if (!head_only && !no_body && resp.file->length() > 0) {
      co_await send_file(*resp.file);
      if (dead_) co_return false;
    }
  } else {
    append_head(h, resp, keep, no_body ? kNoBody : tun ? kUntilClose : kLength, resp.body.size());
    if (!head_only && !no_body) out_ += resp.body;
  }
  if (out_.size() >= 64 * 1024) {
    flush();
    if (c_->paused()) co_await drain_body();
  }
  if (keep && !body_.done()) keep = co_await skip_body();
  co_return keep;
}

Task<void> Connection::run() {
  task_ = TaskBase::current();
  const ServeOptions& o = s_->opts;
  bool head_started = false;
  for (;;) {
    ParseResult r;
    for (;;) {
      r = parser_.parse(c_->rbuf().view());
      if (r != ParseResult::incomplete) break;
      if (c_->eof()) {
        // The client left (between requests, or mid-head: nobody to answer).
        flush();
        c_->close();
        co_return;
      }
      const bool idle = c_->rbuf().empty();
      if (idle && s_->shutting_down) {
        flush();
        c_->close();
        co_return;
      }
      flush();
      if (idle) {
        // An idle connection owns no receive buffer (multishot recv: the
        // kernel's provided buffers hold whatever arrives next), and no
        // head copy (responses were flushed above into the StreamConn, which
        // frees its write buffers once they are sent).
        if (c_->uses_provided_buffers()) c_->rbuf().release_memory();
        head_buf_.clear();  // the last request's, answered
        head_buf_.release_memory();
        arm(Phase::idle, o.keep_alive_timeout);
      } else if (!head_started) {
        // The header timeout runs from the head's first byte, not from each
        // byte: a client trickling bytes (slowloris) cannot extend it.
        head_started = true;
        arm(Phase::header, o.header_timeout);
      } else {
        phase_ = Phase::header;
      }
      if (!co_await wait_input()) {
        if (!c_->rbuf().empty()) {
          send_error(408);
          co_await lingering_close();
        } else {
          flush();
          c_->close();
        }
        co_return;
      }
    }
    head_started = false;
    if (r == ParseResult::error) {
      send_error(parser_.error_status());
      co_await lingering_close();
      co_return;
    }
    // Keep the head out of the receive buffer, which may move while the
    // handler runs: take its block, or copy the head (a few hundred bytes)
    // when more bytes follow it (pipelined requests, a body).
    RequestHead& h = parser_.head();
    if (c_->rbuf().size() == h.head_size && c_->rbuf_movable()) {
      // The usual keep-alive case, the head and nothing after it: the
      // receive buffer's block becomes the head's, no copy (the views stay
      // where they are), and the connection receives into a new block.
      head_buf_.clear();
      std::swap(head_buf_, c_->rbuf());
      head_buf_.consume(h.head_size);  // the bytes stay; the block is just not a receive buffer
    } else {
      const char* base = c_->rbuf().data();
      head_buf_.clear();
      head_buf_.append(base, h.head_size);
      h.rebase(base, head_buf_.data());
      c_->rbuf().consume(h.head_size);
    }

    bool keep = begin(h);
    // The handler's Response is used where it lies, in the handler's
    // finished frame (kept until the answer is written): taking it out, as
    // `resp = co_await handler(req)` does, costs a move construction, a move
    // assignment and two more destructions of a Response per request.
    Task<Response> call;
    // The answer when the handler gave none (an error, OPTIONS *). Not a
    // std::optional: GCC zero-fills its storage in the coroutine frame on
    // every request (a rep stos over the whole Response, 8 % of run()).
    std::unique_ptr<Response> own;
    Response* resp = nullptr;
    std::exception_ptr failure;
    if (h.form == TargetForm::asterisk) {
      own = std::make_unique<Response>();
      resp = own.get();
      resp->set_header("Allow", "GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH");
    } else {
      // Awaited here rather than in a helper coroutine: one frame fewer per
      // request, which pipelined requests feel.
      try {
        Request req(this, &h);
        call = s_->handler(req);
        co_await Finished<Response>{{call.handle()}};
        resp = &call.handle().promise().ref();  // or rethrows the handler's exception
      } catch (const HttpError& e) {
        own = std::make_unique<Response>(Response::error(e.status()));
        resp = own.get();
        resp->close = true;
      } catch (const OSError&) {
        // Only the connection's own failure leaves nobody to answer; an
        // OSError of the handler's own I/O (an upstream, a file) is a 500.
        if (c_->lost() || c_->closed()) dead_ = true;
        else failure = std::current_exception();
      } catch (const std::exception&) {
        failure = std::current_exception();
      }
      if (!resp) {
        own = std::make_unique<Response>();
        resp = own.get();
      }
      if (s_->shutting_down) keep = false;  // the shutdown began while it ran
    }
    const std::string* prefix = nullptr;
    if (!dead_ && !failure) {
      prefix = h.method_id == Method::connect ? nullptr : cached_prefix(*resp);  // see tunnel()
      if (!prefix) failure = check(*resp, h.method_id == Method::head);
    }
    if (!dead_ && !failure && !resp->stream && !resp->file && body_.done()) {
      keep = answer(h, *resp, keep, prefix);
      if (out_.size() >= 64 * 1024) {
        flush();
        if (c_->paused()) co_await drain_body();
      }
    } else {
      keep = co_await finish(h, *resp, keep, failure);
    }
    parser_.reset();
    if (dead_) co_return;
    if (keep) set_nodelay();
    if (!keep) {
      if (!c_->rbuf().empty() || !body_.done()) {
        co_await lingering_close();
      } else {
        flush();
        c_->close();
      }
      co_return;
    }
  }
}

// A connection's place under max_connections, taken when it is accepted
// (before its task first runs, so the acceptor sees it at once) and given
// back when the task's frame goes, even if it never ran.
class Slot {
 public:
  explicit Slot(std::shared_ptr<ServerState> s) noexcept : s_(std::move(s)) { ++s_->connections; }
  Slot(Slot&& o) noexcept = default;
  Slot(const Slot&) = delete;
  ~Slot() {
    if (!s_) return;
    --s_->connections;
    s_->slot_waiters.wake_all();
    if (s_->connections == 0) s_->done_waiters.wake_all();
  }
  const std::shared_ptr<ServerState>& state() const noexcept { return s_; }

 private:
  std::shared_ptr<ServerState> s_;
};

Task<void> run_connection(Slot slot, Socket sock) {
  Connection conn(slot.state(), std::move(sock));
  try {
    co_await conn.run();
    co_await conn.finish_sending();
  } catch (const OSError&) {
    // A failed connection (reset, broken pipe) ends quietly.
  } catch (const InvalidStateError&) {
    // A write after the peer vanished and the stream closed.
  }
}

Task<void> accept_loop(std::shared_ptr<ServerState> s) {
  bool warned = false;
  for (;;) {
    while (s->connections >= s->opts.max_connections) co_await s->slot_waiters.wait("http accept (connection limit)");
    Accepted a;
    int err = 0;
    try {
      a = co_await s->listener.accept();
    } catch (const OSError& e) {
      err = e.errno_value();
    }
    if (err) {
      if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        if (!warned) {
          warned = true;
          std::string where;
          try {
            where = " on " + s->listener.local_address().to_string();
          } catch (const OSError&) {
          }
          s->loop->report_warning("http: accept" + where + ": " + std::strerror(err) +
                                  "; pausing accepts (retrying every 100 ms), existing connections are still served");
        }
        co_await sleep(std::chrono::milliseconds(100));
      }
      continue;  // ECONNABORTED and network errors passed on by accept(2)
    }
    create_task(run_connection(Slot(s), std::move(a.socket)));
  }
}

// Serves on the running loop until its shutdown token (graceful) or a cancel.
Task<void> serve_on_loop(std::shared_ptr<ServerState> s) {
  EventLoop& loop = EventLoop::current();
  TaskHandle<void> acceptor = create_task(accept_loop(s), "http accept");
  std::exception_ptr failure;
  try {
    co_await loop.shutdown_event().wait();
  } catch (...) {
    failure = std::current_exception();  // CancelledError
  }
  s->shutting_down = true;
  acceptor.cancel();
  try {
    co_await acceptor;
  } catch (const CancelledError&) {
  }
  s->listener.close();
  if (failure) {
    for (Connection* c = s->first; c; c = c->next()) c->cancel("http server cancelled");
    std::rethrow_exception(failure);
  }
  // Graceful: idle connections close now; busy ones after their response.
  for (Connection* c = s->first; c; c = c->next())
    if (c->idle()) c->close_idle();
  while (s->connections > 0) co_await s->done_waiters.wait("http shutdown");
}

Socket make_listener(const SocketAddress& addr, const ServeOptions& o, bool reuse_port) {
  Socket l = Socket::create(addr.family(), SOCK_STREAM);
  l.set_reuse_address(true);
  if (reuse_port) l.set_reuse_port(true);
  l.bind(addr);
  if (o.defer_accept.count() > 0) {  // TCP: serve() listens on a resolved host and port
    // Whole seconds; the kernel saturates what it cannot represent.
    const int secs = static_cast<int>(std::min<std::chrono::seconds::rep>(o.defer_accept.count(), 1 << 30));
    l.set_option(IPPROTO_TCP, TCP_DEFER_ACCEPT, secs);
  }
  l.listen(o.backlog);
  return l;
}

// The worker threads of serve(workers = N): each runs its own loop with its
// own listener on the same port (SO_REUSEPORT spreads the connections).
struct Workers {
  std::mutex mu;
  std::vector<EventLoop*> loops;  // live worker loops, for the shutdown request
  std::vector<std::thread> threads;
  std::vector<std::exception_ptr> errors;
  bool stopping = false;

  void stop() {
    std::lock_guard<std::mutex> g(mu);
    stopping = true;
    for (EventLoop* l : loops) l->call_soon_threadsafe([l] { l->request_shutdown(); });
  }
  void join() {
    for (std::thread& t : threads)
      if (t.joinable()) t.join();
  }
};

void join_workers(std::shared_ptr<Workers> w) { w->join(); }

// Passes this loop's shutdown on to the workers the moment it begins. Passing
// it only once this loop has drained would let the workers accept (and answer
// keep-alive) for as long as this loop's slowest request runs, and start their
// own drain that much later: past corio::run's grace period, which cancels the
// requests they accepted after the signal.
Task<void> stop_workers_on_shutdown(std::shared_ptr<Workers> w) {
  co_await EventLoop::current().shutdown_event().wait();
  w->stop();
}

}  // namespace detail

SocketAddress Request::peer() const noexcept { return conn_->peer(); }

Task<std::string> Request::read_body_chunk() { return conn_->read_body_piece(); }

Task<std::string> Request::body() {
  std::string all;
  for (;;) {
    std::string piece = co_await conn_->read_body_piece();
    if (piece.empty()) break;
    all += piece;
  }
  co_return all;
}

void BodyWriter::write(std::string_view data) { conn_->write_body(data); }

Task<void> BodyWriter::drain() { return conn_->drain_body(); }

Task<void> serve(Handler handler, std::string host, std::uint16_t port, ServeOptions options) {
  // sendfile(2) has no MSG_NOSIGNAL: a peer that vanished must not kill the
  // process with SIGPIPE. Only the default disposition is replaced.
  struct sigaction old {};
  if (sigaction(SIGPIPE, nullptr, &old) == 0 && old.sa_handler == SIG_DFL) std::signal(SIGPIPE, SIG_IGN);

  if (options.workers < 1) options.workers = 1;
  ResolveOptions ro;
  ro.passive = true;
  std::vector<SocketAddress> addrs = co_await resolve(host, port, ro);
  const bool reuse_port = options.reuse_port || options.workers > 1;
  Socket first = detail::make_listener(addrs.front(), options, reuse_port);
  const SocketAddress bound = first.local_address();
  // Every worker binds the port the first one got (port 0 picks it once).
  std::vector<Socket> more;
  for (int i = 1; i < options.workers; ++i) more.push_back(detail::make_listener(bound, options, true));
  if (options.on_listening) options.on_listening(bound);

  auto main_state = std::make_shared<detail::ServerState>(handler, options, std::move(first));
  if (options.workers == 1) {
    co_await detail::serve_on_loop(std::move(main_state));
    co_return;
  }

  auto workers = std::make_shared<detail::Workers>();
  LoopOptions lo;
  lo.backend = EventLoop::current().backend_kind();
  for (Socket& s : more) {
    workers->threads.emplace_back([workers, lo, handler, options, sock = std::move(s)]() mutable {
      try {
        EventLoop loop(lo);
        {
          std::lock_guard<std::mutex> g(workers->mu);
          workers->loops.push_back(&loop);
          if (workers->stopping) loop.request_shutdown();
        }
        struct Unlist {
          detail::Workers* w;
          EventLoop* l;
          ~Unlist() {
            std::lock_guard<std::mutex> g(w->mu);
            w->loops.erase(std::find(w->loops.begin(), w->loops.end(), l));
          }
        } unlist{workers.get(), &loop};
        auto run = [](Handler h, ServeOptions o, Socket l) -> Task<void> {
          co_await detail::serve_on_loop(std::make_shared<detail::ServerState>(std::move(h), o, std::move(l)));
        };
        loop.run_until_complete(run(std::move(handler), std::move(options), std::move(sock)));
      } catch (...) {
        std::lock_guard<std::mutex> g(workers->mu);
        workers->errors.push_back(std::current_exception());
      }
    });
  }
  TaskHandle<void> relay = create_task(detail::stop_workers_on_shutdown(workers), "http shutdown relay");
  std::exception_ptr failure;
  try {
    co_await detail::serve_on_loop(std::move(main_state));
  } catch (...) {
    failure = std::current_exception();
  }
  relay.cancel();
  try {
    co_await relay;
  } catch (const CancelledError&) {
  }
  workers->stop();
  // A named function and a copied shared_ptr, not a capturing lambda: GCC 12
  // destroys a lambda temporary inside a co_await expression twice.
  co_await to_thread(detail::join_workers, workers);
  if (failure) std::rethrow_exception(failure);
  if (!workers->errors.empty()) std::rethrow_exception(workers->errors.front());
}

}  // namespace corio::http
