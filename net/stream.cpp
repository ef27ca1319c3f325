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

// readuntil() and readline(): at EOF, readline returns the partial line where
// readuntil throws IncompleteRead.
Task<std::string> read_until(detail::StreamConn* c, std::string sep, bool line) {
  if (sep.empty()) throw std::invalid_argument("readuntil: the separator must not be empty");
  ReadGuard guard(c, line ? "readline" : "readuntil");
  const std::size_t limit = c->limit();
  std::size_t offset = 0;  // where the next search starts: bytes before it were examined
  for (;;) {
    std::string_view v = c->rbuf().view();
    if (v.size() >= sep.size()) {
      std::size_t pos = v.find(sep, offset);
      if (pos != std::string_view::npos) {
        if (pos > limit) throw LimitOverrun("Separator is found, but chunk is longer than limit", pos);
        co_return c->rbuf().take(pos + sep.size());
      }
      offset = v.size() + 1 - sep.size();
      if (offset > limit) throw LimitOverrun("Separator is not found, and chunk exceed the limit", offset);
    }
    if (c->eof()) {
      if (c->read_error()) c->throw_read_error();
      std::string partial = c->rbuf().take_all();
      if (line) co_return partial;
      throw IncompleteRead(std::move(partial), std::nullopt);
    }
    co_await c->wait_data(0);
  }
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
  Socket s = Socket::create(addr.family(), SOCK_STREAM);
  if (opts.local_address) s.bind(*opts.local_address);
  if (opts.connect_timeout) co_await s.connect(addr, *opts.connect_timeout);
  else co_await s.connect(addr);
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
  ResolveOptions ro;
  ro.family = opts.family;
  if (opts.tls && opts.server_hostname.empty()) opts.server_hostname = host;  // what TLS verifies
  std::vector<SocketAddress> addrs = co_await resolve(host, port, ro);
  // Try each address in order; keep every failure to report them together.
  std::vector<std::exception_ptr> errors;
  std::vector<std::string> messages;
  std::vector<int> kinds;  // errno, or -1 for a timeout
  for (const SocketAddress& a : addrs) {
    try {
      co_return co_await open_connection(a, opts);
    } catch (const OSError& e) {
      errors.push_back(std::current_exception());
      messages.push_back(e.what());
      kinds.push_back(e.errno_value());
    } catch (const TimeoutError& e) {
      errors.push_back(std::current_exception());
      messages.push_back(e.what());
      kinds.push_back(-1);
    }
  }
  bool same = std::all_of(kinds.begin(), kinds.end(), [&](int k) { return k == kinds.front(); });
  if (same) std::rethrow_exception(errors.front());
  std::string what = "connect " + host + ":" + std::to_string(port) + " (every address failed: ";
  for (std::size_t i = 0; i < messages.size(); ++i) what += (i ? "; " : "") + messages[i];
  what += ")";
  int err = 0;
  for (int k : kinds) {
    if (k > 0) {
      err = k;
      break;
    }
  }
  throw OSError(err ? err : ETIMEDOUT, what);
}

}  // namespace corio
