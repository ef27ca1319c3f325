#include "net/stream.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "net/dns.hpp"
#include "net/tls.hpp"

namespace corio {

namespace {

// Marks the one reader of a stream for the duration of a read call; released
// on every exit (return, throw, frame destroyed at loop teardown).
class ReadGuard {
 public:
  ReadGuard(detail::StreamConn* c, const char* what) : c_(c) { c_->begin_read(what); }
  ReadGuard(const ReadGuard&) = delete;
  ~ReadGuard() { c_->end_read(); }

 private:
  detail::StreamConn* c_;
};

constexpr std::size_t kNeedMore = static_cast<std::size_t>(-1);

// One look at the buffer for read_until: how many bytes the call returns
// (through the separator, or at EOF readline's partial line), or kNeedMore;
// throws LimitOverrun / IncompleteRead / the stream's error. Kept out of the
// coroutine so that its temporaries (views, the partial line, exception
// messages) do not live in the frame of every suspended reader: an idle
// connection's frame stays small.
std::size_t scan_until(detail::StreamConn* c, const std::string& sep, bool line, std::size_t& offset) {
  const std::size_t limit = c->limit();
  std::string_view v = c->rbuf().view();
  if (v.size() >= sep.size()) {
    std::size_t pos = v.find(sep, offset);
    if (pos != std::string_view::npos) {
      if (pos > limit) throw LimitOverrun("Separator is found, but chunk is longer than limit", pos);
      return pos + sep.size();
    }
    offset = v.size() + 1 - sep.size();  // bytes before it were examined
    if (offset > limit) throw LimitOverrun("Separator is not found, and chunk exceed the limit", offset);
  }
  if (!c->eof()) return kNeedMore;
  if (c->read_error()) c->throw_read_error();
  if (!line) throw IncompleteRead(c->rbuf().take_all(), std::nullopt);
  return v.size();  // the partial last line ("" when nothing is left)
}

// readuntil() and readline(): at EOF, readline returns the partial line where
// readuntil throws IncompleteRead.
Task<std::string> read_until(detail::StreamConn* c, std::string sep, bool line) {
  if (sep.empty()) throw std::invalid_argument("readuntil: the separator must not be empty");
  ReadGuard guard(c, line ? "readline" : "readuntil");
  std::size_t offset = 0;  // where the next search starts
  std::size_t n;
  while ((n = scan_until(c, sep, line, offset)) == kNeedMore) co_await c->wait_data(0);
  co_return c->rbuf().take(n);
}

}  // namespace

// ---- StreamReader ----------------------------------------------------------

StreamReader& StreamReader::operator=(StreamReader&& o) noexcept {
  if (this != &o) {
    if (c_) c_->drop_handle();
    c_ = std::exchange(o.c_, nullptr);
  }
  return *this;
}

Task<std::string> StreamReader::read(std::size_t n) {
  detail::StreamConn* c = c_;
  if (n == 0) co_return std::string();
  ReadGuard guard(c, "read");
  while (c->rbuf().empty() && !c->eof()) co_await c->wait_data(n);
  if (c->rbuf().empty()) {
    if (c->read_error()) c->throw_read_error();
    co_return std::string();
  }
  co_return c->rbuf().take(std::min(n, c->rbuf().size()));
}

Task<std::string> StreamReader::read() {
  detail::StreamConn* c = c_;
  ReadGuard guard(c, "read");
  while (!c->eof()) {
    if (c->rbuf().size() > c->limit()) {
      throw LimitOverrun("read() reached the limit of " + std::to_string(c->limit()) + " bytes before EOF",
                         c->rbuf().size());
    }
    co_await c->wait_data(0);
  }
  if (c->read_error()) c->throw_read_error();
  co_return c->rbuf().take_all();
}

Task<std::size_t> StreamReader::readinto(std::span<std::byte> buf) {
  detail::StreamConn* c = c_;
  if (buf.empty()) co_return 0;
  ReadGuard guard(c, "readinto");
  while (c->rbuf().empty() && !c->eof()) co_await c->wait_data(buf.size());
  if (c->rbuf().empty()) {
    if (c->read_error()) c->throw_read_error();
    co_return 0;
  }
  std::size_t n = std::min(buf.size(), c->rbuf().size());
  std::memcpy(buf.data(), c->rbuf().data(), n);
  c->rbuf().consume(n);
  co_return n;
}

Task<std::string> StreamReader::readline() { return read_until(c_, "\n", true); }

Task<std::string> StreamReader::readuntil(std::string sep) { return read_until(c_, std::move(sep), false); }

Task<std::string> StreamReader::readexactly(std::size_t n) {
  detail::StreamConn* c = c_;
  if (n == 0) co_return std::string();
  ReadGuard guard(c, "readexactly");
  while (c->rbuf().size() < n && !c->eof()) co_await c->wait_data(n - c->rbuf().size());
  if (c->rbuf().size() >= n) co_return c->rbuf().take(n);
  if (c->read_error()) c->throw_read_error();
  throw IncompleteRead(c->rbuf().take_all(), n);
}

// ---- StreamWriter ----------------------------------------------------------

StreamWriter& StreamWriter::operator=(StreamWriter&& o) noexcept {
  if (this != &o) {
    if (c_) c_->drop_handle();
    c_ = std::exchange(o.c_, nullptr);
  }
  return *this;
}

Task<void> StreamWriter::drain() {
  detail::StreamConn* c = c_;
  for (;;) {
    if (c->write_error()) c->throw_write_error();
    if (!c->paused()) co_return;
    co_await c->wait_drain();
  }
}

Task<void> StreamWriter::wait_closed() {
  detail::StreamConn* c = c_;
  while (!c->closed()) co_await c->wait_closed();
}

// ---- opening connections -----------------------------------------------------

StreamPair make_streams(Socket sock, const StreamOptions& opts) {
  auto* c = new detail::StreamConn(std::move(sock), opts);
  return StreamPair{StreamReader(c), StreamWriter(c)};
}

Task<StreamPair> open_connection(SocketAddress addr, ConnectOptions opts) {
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
  std::string name = opts.tls && opts.server_hostname.empty() ? host : std::string(opts.server_hostname);
  Socket s = co_await create_connection(std::move(host), port, opts);
  StreamPair p = make_streams(std::move(s), opts);
  if (opts.tls) {
    co_await detail::tls_handshake(p.writer.connection(), opts.tls.lock(), std::move(name), opts.tls_handshake_timeout);
  }
  co_return p;
}

}  // namespace corio
