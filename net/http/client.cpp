#include "net/http/client.hpp"

#include <algorithm>
#include <cstdio>
#include <typeinfo>

#include "coro/exception_group.hpp"
#include "coro/timeout.hpp"
#include "net/http/redirect.hpp"
#include "net/tls.hpp"

namespace corio::http {

namespace detail {

// One pooled connection. Invariant: holds_slot is true exactly while a
// request is using it (its per-host and total slots are then taken).
struct ClientConn {
  StreamReader reader;
  StreamWriter writer;
  std::string rbuf;      // received, not yet parsed
  std::string key;       // origin: the pool it belongs to
  std::string peer;      // "host:port", for messages
  TimePoint idle_since{};
  bool reused = false;
  bool holds_slot = false;
};

class HostPool {
 public:
  explicit HostPool(std::size_t n) : slots(static_cast<std::ptrdiff_t>(n)) {}
  // No connection, holder or waiter: the record may go. Every per-host slot
  // free means no request holds one or was just handed one.
  bool unused(std::size_t per_host) const noexcept {
    return idle.empty() && slots.value() == per_host && slots.n_waiters() == 0;
  }
  Semaphore slots;
  std::deque<std::unique_ptr<ClientConn>> idle;  // most recently used at the back
};

}  // namespace detail

namespace {

using detail::ClientConn;

Method method_id(std::string_view m) {
  if (m == "GET") return Method::get;
  if (m == "HEAD") return Method::head;
  if (m == "POST") return Method::post;
  if (m == "PUT") return Method::put;
  if (m == "DELETE") return Method::delete_;
  if (m == "CONNECT") return Method::connect;
  if (m == "OPTIONS") return Method::options;
  if (m == "TRACE") return Method::trace;
  if (m == "PATCH") return Method::patch;
  return Method::other;
}

bool idempotent(std::string_view m) {
  return m == "GET" || m == "HEAD" || m == "PUT" || m == "DELETE" || m == "OPTIONS" || m == "TRACE";
}

bool is_tchar(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         (c != 0 && std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos);
}

void check_token(std::string_view what, std::string_view s) {
  if (s.empty()) throw ValueError("empty " + std::string(what));
  for (unsigned char c : s) {
    if (!is_tchar(c)) throw ValueError("invalid character in " + std::string(what) + " '" + std::string(s) + "'");
  }
}

// A header value must not smuggle a second header or request in.
void check_value(std::string_view name, std::string_view v) {
  for (unsigned char c : v) {
    if (c == '\r' || c == '\n' || c == 0) {
      throw ValueError("invalid character (CR, LF or NUL) in the value of header '" + std::string(name) + "'");
    }
  }
}

bool has(const HeaderList& h, std::string_view name) {
  for (const auto& [k, v] : h) {
    if (iequals(k, name)) return true;
  }
  return false;
}

std::string seconds_text(Duration d) {
  double s = std::chrono::duration<double>(d).count();
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g s", s);
  return buf;
}

// One read from the server, bounded by read_timeout. "" at EOF.
Task<std::string> timed_read(ClientConn& c, Duration limit) {
  std::string more;
  bool timed_out = false;
  try {
    more = co_await wait_for(c.reader.read(64 * 1024), limit);
  } catch (const TimeoutError&) {
    timed_out = true;
  }
  if (timed_out) throw ReadTimeout("no data from " + c.peer + " within " + seconds_text(limit));
  co_return more;
}

Url parse_http_url(std::string_view text) {
  Url u = Url::parse(text);
  if (u.scheme() != "http" && u.scheme() != "https") {
    throw UnsupportedScheme("unsupported URL scheme '" + u.scheme() + "' in " + u.str() + " (http and https only)");
  }
  return u;
}

// The transfer codings of a response before its final chunked (RFC 9112
// §7), as a list ContentDecoder takes ("gzip"); "" for chunked alone or none.
// `all` gets every coding, chunked too, for messages. Throws
// MalformedResponse for one it cannot decode: handing the body on still
// encoded would pass it off as the content.
std::string transfer_codings(const ResponseHead& h, const std::string& peer, std::string& all) {
  std::vector<std::string> names;
  for (const Header& f : h.headers) {
    if (!iequals(f.name, "Transfer-Encoding")) continue;
    std::string_view v = f.value;
    while (!v.empty()) {
      std::size_t comma = v.find(',');
      std::string_view e = v.substr(0, std::min(comma, v.find(';')));
      v.remove_prefix(comma == std::string_view::npos ? v.size() : comma + 1);
      while (!e.empty() && (e.front() == ' ' || e.front() == '\t')) e.remove_prefix(1);
      while (!e.empty() && (e.back() == ' ' || e.back() == '\t')) e.remove_suffix(1);
      if (!e.empty()) names.emplace_back(e);
    }
  }
  std::string list;
  for (std::size_t i = 0; i < names.size(); ++i) {
    const std::string& n = names[i];
    all += (i ? ", " : "") + n;
    if (i + 1 == names.size() && iequals(n, "chunked")) break;  // the framing, already removed
    // The parser frames "chunked, gzip" as close-delimited; chunked before
    // another coding cannot be undone by a decoder that runs after framing.
    // identity: RFC 2616's, dropped since, and harmless.
    if (!iequals(n, "gzip") && !iequals(n, "x-gzip") && !iequals(n, "deflate") && !iequals(n, "identity")) {
      throw MalformedResponse("unsupported transfer coding '" + n + "' in a response from " + peer +
                              " (supported: chunked last; gzip and deflate before it)");
    }
    list += (list.empty() ? "" : ", ") + n;
  }
  return list;
}

}  // namespace

// ---- ClientResponse ------------------------------------------------------------

// A response whose body is still to be read, and the connection it comes on.
struct ClientResponse::Stream {
  Client* client = nullptr;
  std::unique_ptr<ClientConn> conn;
  BodyDecoder body;
  std::optional<ContentDecoder> decoder;
  std::string coding;  // the codings decoded, as headers ("Content-Encoding: gzip"), for messages
  bool keep_alive = false;
  bool done = false;
  std::exception_ptr error;  // the failure that ended the body early, raised again
  std::string url;  // for messages

  ~Stream() { release(false); }
  void release(bool reusable) noexcept {
    if (conn) client->checkin(std::move(conn), reusable);
  }
};

ClientResponse::ClientResponse() = default;
ClientResponse::ClientResponse(ClientResponse&&) noexcept = default;
ClientResponse& ClientResponse::operator=(ClientResponse&&) noexcept = default;
ClientResponse::~ClientResponse() = default;

std::string_view ClientResponse::header(std::string_view name) const noexcept {
  for (const auto& [k, v] : headers) {
    if (iequals(k, name)) return v;
  }
  return {};
}

void ClientResponse::raise_for_status() const {
  if (status >= 400) {
    throw HttpStatusError(status, std::to_string(status) + " " + reason + " for " + url.str());
  }
}

bool ClientResponse::body_done() const noexcept { return !s_ || (s_->done && !s_->error); }

void ClientResponse::close() noexcept {
  if (s_) {
    s_->release(false);
    s_->done = true;
  }
}

// Decoded pieces are at most one read's size. A compressed body can inflate
// a thousandfold per coding, so the decoder hands its output out a piece at a
// time and keeps the rest of its input (hence its own memory, about 64 KiB a
// coding) for the next call; only once it has decoded everything it was
// given does more of the body go into it.
namespace {
constexpr std::size_t kMaxPiece = 64 * 1024;
}  // namespace

Task<std::string> ClientResponse::read_chunk() {
  if (s_ && s_->error) std::rethrow_exception(s_->error);
  if (!s_ || s_->done) co_return std::string();
  Stream& s = *s_;
  std::exception_ptr err;
  std::string out;
  try {
    for (;;) {
      ClientConn& c = *s.conn;
      if (s.decoder) {
        try {
          s.decoder->read(out, kMaxPiece);
        } catch (const DecodeError& e) {
          throw MalformedResponse("undecodable body from " + c.peer + ": " + e.what());
        }
        if (!out.empty()) break;
      }
      if (!c.rbuf.empty() || s.body.done()) {
        std::string_view data;
        std::size_t used = c.rbuf.empty() ? 0 : s.body.decode(c.rbuf, data);
        if (s.body.failed()) {
          throw MalformedResponse("malformed body from " + c.peer + ": " + s.body.error_message());
        }
        if (!data.empty()) {
          if (s.decoder) {
            s.decoder->feed(data);  // a copy: `data` may point into rbuf
          } else {
            out.assign(data);
          }
        }
        c.rbuf.erase(0, used);
        if (s.decoder && !data.empty()) continue;  // decode it before the body may end
        if (s.body.done()) {
          if (s.decoder) {
            try {
              s.decoder->finish();
            } catch (const DecodeError& e) {
              throw MalformedResponse("undecodable body from " + c.peer + ": " + e.what());
            }
          }
          s.done = true;
          // Bytes beyond the body that nobody asked for: the connection's
          // framing cannot be trusted for another request.
          s.release(s.keep_alive && c.rbuf.empty());
        }
        if (!out.empty() || s.done) break;
        if (used > 0) continue;
      }
      std::string more = co_await timed_read(c, s.client->opts_.read_timeout);
      if (more.empty()) {
        if (s.body.kind() == BodyKind::until_close) {
          s.body.finish_eof();  // a clean close ends this body
          s.keep_alive = false;
          continue;
        }
        if (s.body.kind() == BodyKind::content_length) {
          throw IncompleteBody("connection from " + c.peer + " closed " + std::to_string(s.body.remaining()) +
                               " bytes before the end of the body of " + s.url);
        }
        throw IncompleteBody("connection from " + c.peer + " closed in the middle of the chunked body of " + s.url);
      }
      c.rbuf += more;
    }
  } catch (...) {
    err = std::current_exception();
  }
  if (err) {
    close();  // the connection is mid-message: never reuse it
    // The body did not end: later calls raise the error again, never ""
    // (a cancelled read: the body is cut off, which is what they raise).
    s_->error = exception_is<CancelledError>(err)
                    ? std::make_exception_ptr(
                          IncompleteBody("the body of " + s_->url + " was cut off: a read of it was cancelled"))
                    : err;
    std::rethrow_exception(err);
  }
  co_return out;
}

Task<std::string> ClientResponse::read_body(std::size_t max) {
  std::string all;
  for (;;) {
    std::string piece = co_await read_chunk();
    if (piece.empty()) break;
    // Checked per piece, and pieces are bounded: a body over `max` is
    // refused holding at most max + 64 KiB, however far it would inflate.
    if (all.size() + piece.size() > max) {
      const bool decoded = s_ && s_->decoder;
      const std::string coding = decoded ? s_->coding : std::string();
      close();
      if (decoded) {
        throw BodyTooLarge("the decoded body of " + url.str() + " exceeds the limit of " + std::to_string(max) +
                           " bytes (" + coding + ")");
      }
      throw BodyTooLarge("the body of " + url.str() + " exceeds the limit of " + std::to_string(max) + " bytes");
    }
    if (all.empty()) {
      all = std::move(piece);
    } else {
      all += piece;
    }
  }
  co_return all;
}

// ---- Client ----------------------------------------------------------------------

Client::Client(ClientOptions options)
    : opts_(std::move(options)), total_slots_(static_cast<std::ptrdiff_t>(std::max<std::size_t>(1, opts_.max_connections))) {
  if (opts_.max_connections_per_host == 0) throw ValueError("ClientOptions::max_connections_per_host must be > 0");
  // Sent as a header line in every request: a CR or LF would add fields (or a request) of its own.
  check_value("User-Agent", opts_.user_agent);
}

Client::~Client() { close_idle(); }

PoolStats Client::stats() const noexcept { return PoolStats{open_, idle_, created_, reused_, pools_.size()}; }

void Client::close_idle() noexcept {
  for (auto it = pools_.begin(); it != pools_.end();) {
    detail::HostPool& p = *it->second;
    open_ -= p.idle.size();
    idle_ -= p.idle.size();
    p.idle.clear();  // destroying a connection closes it
    if (p.unused(opts_.max_connections_per_host)) {
      it = pools_.erase(it);
    } else {
      ++it;
    }
  }
}

void Client::forget_if_unused(const std::string& key) noexcept {
  auto it = pools_.find(key);
  if (it == pools_.end()) return;
  const detail::HostPool& p = *it->second;
  if (p.unused(opts_.max_connections_per_host)) {
    pools_.erase(it);
  }
}

void Client::expire_idle(TimePoint now) noexcept {
  for (auto it = pools_.begin(); it != pools_.end();) {
    detail::HostPool& p = *it->second;
    // Oldest at the front: stop at the first one still fresh.
    while (!p.idle.empty() && now - p.idle.front()->idle_since > opts_.idle_timeout) {
      p.idle.pop_front();
      --idle_;
      --open_;
    }
    if (p.unused(opts_.max_connections_per_host)) {
      it = pools_.erase(it);
    } else {
      ++it;
    }
  }
}

detail::HostPool& Client::pool_for(const std::string& key) {
  auto it = pools_.find(key);
  if (it == pools_.end()) {
    it = pools_.emplace(key, std::make_unique<detail::HostPool>(opts_.max_connections_per_host)).first;
  }
  return *it->second;
}

bool Client::evict_one_idle() noexcept {
  // The least recently used idle connection of any origin.
  auto victim = pools_.end();
  for (auto it = pools_.begin(); it != pools_.end(); ++it) {
    const auto& idle = it->second->idle;
    if (!idle.empty() && (victim == pools_.end() || idle.front()->idle_since < victim->second->idle.front()->idle_since)) {
      victim = it;
    }
  }
  if (victim == pools_.end()) return false;
  victim->second->idle.pop_front();
  --idle_;
  --open_;
  if (victim->second->idle.empty()) forget_if_unused(victim->first);
  return true;
}

Task<std::unique_ptr<ClientConn>> Client::checkout(const Url& url, bool fresh) {
  const std::string key = url.origin();
  TimePoint now = Clock::now();
  if (now >= next_sweep_) {
    expire_idle(now);
    next_sweep_ = now + std::min<Duration>(opts_.idle_timeout, std::chrono::seconds(1));
  }
  detail::HostPool& pool = pool_for(key);
  co_await pool.slots.acquire();
  // Both slots are ours from here until checkin (or the guard below). The
  // pool record cannot go while we hold its slot; the guard drops it if we
  // were its only user and give up (cancelled, connect failed).
  struct SlotGuard {
    Client* c;
    detail::HostPool* p;
    const std::string& key;
    bool host = true, total = false;
    ~SlotGuard() {
      if (total) c->total_slots_.release();
      if (host) {
        p->slots.release();
        c->forget_if_unused(key);
      }
    }
  } guard{this, &pool, key};
  co_await total_slots_.acquire();
  guard.total = true;

  now = Clock::now();
  while (!fresh && !pool.idle.empty()) {
    std::unique_ptr<ClientConn> c = std::move(pool.idle.back());
    pool.idle.pop_back();
    --idle_;
    // A connection the server closed while idle shows EOF (or data nobody
    // asked for); one idle too long may be closed by the server any moment.
    if (now - c->idle_since > opts_.idle_timeout || c->reader.at_eof() || !c->rbuf.empty()) {
      --open_;
      continue;
    }
    c->reused = true;
    c->holds_slot = true;
    ++reused_;
    if (opts_.trace) opts_.trace(TraceEvent::reused, c->peer);
    guard.host = guard.total = false;
    co_return c;
  }
  while (open_ >= opts_.max_connections && evict_one_idle()) {
  }
  std::string peer = url.host_header();
  if (!url.explicit_port()) peer += ":" + std::to_string(url.port());
  if (opts_.trace) opts_.trace(TraceEvent::connecting, peer);
  ConnectOptions co;
  co.connect_timeout = opts_.connect_timeout;
  if (url.is_secure()) {
    if (!tls_) tls_ = opts_.tls_context ? opts_.tls_context : TlsContext::client(opts_.tls);
    co.tls = tls_;
    co.server_hostname = url.host();  // checked against the certificate, sent as SNI
    co.tls_handshake_timeout = opts_.connect_timeout;
  }
  StreamPair sp = co_await open_connection(url.host(), url.port(), co);
  if (opts_.trace) opts_.trace(TraceEvent::connected, peer);
  auto c = std::make_unique<ClientConn>();
  c->reader = std::move(sp.reader);
  c->writer = std::move(sp.writer);
  c->key = key;
  c->peer = std::move(peer);
  c->holds_slot = true;
  ++open_;
  ++created_;
  guard.host = guard.total = false;
  co_return c;
}

void Client::checkin(std::unique_ptr<ClientConn> c, bool reusable) noexcept {
  if (!c) return;
  detail::HostPool& pool = *pools_.at(c->key);
  if (c->holds_slot) {
    c->holds_slot = false;
    pool.slots.release();
    total_slots_.release();
  }
  if (reusable && !c->reader.at_eof()) {
    c->idle_since = Clock::now();
    c->reused = false;
    pool.idle.push_back(std::move(c));
    ++idle_;
  } else {
    const std::string key = std::move(c->key);
    c.reset();  // the connection closes
    --open_;
    forget_if_unused(key);
  }
}

Task<ClientResponse> Client::exchange(const std::string& method, const Url& url, const HeaderList& headers,
                                      const std::string& body) {
  check_token("method", method);
  std::string req;
  req.reserve(256 + body.size());
  req.append(method).append(" ").append(url.target()).append(" HTTP/1.1\r\n");
  if (!has(headers, "Host")) req.append("Host: ").append(url.host_header()).append("\r\n");
  if (!has(headers, "User-Agent") && !opts_.user_agent.empty()) {
    req.append("User-Agent: ").append(opts_.user_agent).append("\r\n");
  }
  if (!has(headers, "Accept")) req.append("Accept: */*\r\n");
  const bool decode = opts_.decompress && !has(headers, "Accept-Encoding");
  if (decode) req.append("Accept-Encoding: ").append(ContentDecoder::accept_encoding).append("\r\n");
  for (const auto& [k, v] : headers) {
    check_token("header name", k);
    check_value(k, v);
    req.append(k).append(": ").append(v).append("\r\n");
  }
  const Method mid = method_id(method);
  if ((!body.empty() || mid == Method::post || mid == Method::put || mid == Method::patch) &&
      !has(headers, "Content-Length") && !has(headers, "Transfer-Encoding")) {
    req.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
  }
  req.append("\r\n").append(body);

  ParseLimits limits;
  limits.max_header_bytes = opts_.max_header_bytes;
  limits.max_body = UINT64_MAX;  // bodies are capped by the reader (read_body), not by framing
  for (int attempt = 0;; ++attempt) {
    std::unique_ptr<ClientConn> c = co_await checkout(url, attempt > 0);
    const bool reused = c->reused;
    bool got_bytes = false;
    std::exception_ptr err;
    ClientResponse r;
    try {
      if (opts_.trace) opts_.trace(TraceEvent::request_head, std::string_view(req).substr(0, req.size() - body.size()));
      c->writer.write(req);
      co_await c->writer.drain();
      ResponseParser parser(limits);
      std::size_t interim = 0;  // bytes of 1xx heads skipped: bounded like one head
      for (;;) {
        if (!c->rbuf.empty()) {
          ParseResult pr = parser.parse(c->rbuf, mid);
          if (pr == ParseResult::error) {
            throw MalformedResponse("malformed response from " + c->peer + ": " + parser.error_message());
          }
          if (pr == ParseResult::done) {
            const ResponseHead& h = parser.head();
            if (h.status >= 100 && h.status < 200 && h.status != 101) {  // interim: skip
              // A server sending 1xx heads without end would hold the
              // request forever (total_timeout is off by default).
              interim += h.head_size;
              if (interim > opts_.max_header_bytes) {
                throw MalformedResponse("more than " + std::to_string(opts_.max_header_bytes) +
                                        " bytes of 1xx interim responses from " + c->peer);
              }
              c->rbuf.erase(0, h.head_size);
              parser.reset();
              continue;
            }
            if (opts_.trace) opts_.trace(TraceEvent::response_head, std::string_view(c->rbuf).substr(0, h.head_size));
            r.status = h.status;
            r.reason = std::string(h.reason);
            r.version_minor = h.version_minor;
            r.headers.reserve(h.headers.size());
            for (const Header& f : h.headers) r.headers.emplace_back(std::string(f.name), std::string(f.value));
            auto s = std::make_unique<ClientResponse::Stream>();
            s->client = this;
            s->body.start(h.body_kind, h.content_length);
            // After 101 the connection speaks the protocol it switched to
            // (RFC 9110 §15.2.2), whatever Connection says: a request
            // pooled onto it would be read as that protocol's data.
            s->keep_alive = h.keep_alive && h.status != 101;
            s->url = url.str();
            // Content codings are decoded if the caller left that to us;
            // transfer codings always, being the message's, not the
            // content's. The body was encoded content codings first, then
            // transfer codings, which is the order of a coding list that
            // ContentDecoder undoes from the last.
            std::string codings;
            std::string_view content = h.header("Content-Encoding");
            if (decode && !content.empty() && mid != Method::head) {
              codings = std::string(content);
              s->coding = "Content-Encoding: " + codings;
            }
            if (h.body_kind != BodyKind::none) {
              std::string te_all;
              std::string te = transfer_codings(h, c->peer, te_all);
              if (!te.empty()) {
                codings += (codings.empty() ? "" : ", ") + te;
                s->coding += (s->coding.empty() ? "" : "; ") + ("Transfer-Encoding: " + te_all);
              }
            }
            if (!codings.empty()) {
              // No max_output: ClientResponse::read_body applies its own
              // max, and the decoder's bounded pieces are what keep memory
              // near it.
              try {
                s->decoder.emplace(codings);
              } catch (const UnsupportedEncoding& e) {
                throw MalformedResponse(std::string(e.what()) + " from " + c->peer);
              }
              if (s->decoder->identity()) s->decoder.reset();
            }
            c->rbuf.erase(0, h.head_size);
            s->conn = std::move(c);
            r.s_ = std::move(s);
            break;
          }
        }
        std::string more = co_await timed_read(*c, opts_.read_timeout);
        if (more.empty()) {
          if (!got_bytes) throw ServerDisconnected("server " + c->peer + " closed the connection without a response");
          throw IncompleteBody("connection from " + c->peer + " closed in the middle of the response head");
        }
        got_bytes = true;
        c->rbuf += more;
      }
    } catch (...) {
      err = std::current_exception();
    }
    if (!err) {
      r.url = url;
      co_return r;
    }
    checkin(std::move(c), false);
    // A pooled connection the server had closed: the request never reached
    // it, so an idempotent one is safe to send again, once.
    bool stale = false;
    if (reused && !got_bytes && attempt == 0 && idempotent(method)) {
      try {
        std::rethrow_exception(err);
      } catch (const ServerDisconnected&) {
        stale = true;
      } catch (const ConnectionError&) {
        stale = true;
      } catch (const TlsError&) {
        stale = true;  // closed without close_notify: "unexpected eof while reading"
      } catch (...) {
      }
    }
    if (!stale) std::rethrow_exception(err);
  }
}

namespace {

std::string base64(std::string_view in) {
  static constexpr char kDigits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    const unsigned v = static_cast<unsigned char>(in[i]) << 16 | static_cast<unsigned char>(in[i + 1]) << 8 |
                       static_cast<unsigned char>(in[i + 2]);
    for (int k = 18; k >= 0; k -= 6) out += kDigits[(v >> k) & 63];
  }
  if (const std::size_t rest = in.size() - i; rest > 0) {
    unsigned v = static_cast<unsigned char>(in[i]) << 16;
    if (rest == 2) v |= static_cast<unsigned char>(in[i + 1]) << 8;
    out += kDigits[(v >> 18) & 63];
    out += kDigits[(v >> 12) & 63];
    out += rest == 2 ? kDigits[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

// "user:password@" in a URL, as curl, requests and aiohttp take it: Basic
// credentials for that request (unless the caller set Authorization), and
// gone from the URL, so that neither the response's url nor a message shows
// the password.
void take_credentials(Url& url, HeaderList& headers) {
  if (url.userinfo().empty()) return;
  if (!has(headers, "Authorization"))
    headers.emplace_back("Authorization", "Basic " + base64(percent_decode(url.userinfo())));
  url = url.without_userinfo();
}

}  // namespace

Task<ClientResponse> Client::follow(std::string method, std::string url_text, HeaderList headers, std::string body,
                                    bool read_whole) {
  Url url = parse_http_url(url_text);
  take_credentials(url, headers);
  std::vector<Url> history;
  for (int redirects = 0;; ++redirects) {
    ClientResponse r = co_await exchange(method, url, headers, body);
    const int st = r.status;
    std::string_view location = r.header("Location");
    if (opts_.follow_redirects && is_redirect(st) && !location.empty()) {
      history.push_back(url);
      if (redirects >= opts_.max_redirects) {
        r.close();
        std::vector<std::string> chain;
        for (const Url& u : history) chain.push_back(u.str());
        throw TooManyRedirects(st, too_many_redirects_message(opts_.max_redirects, chain, location));
      }
      std::optional<Url> next;
      try {
        next = parse_http_url(url.resolve(location).str());
      } catch (const UrlError& e) {
        // Leave `next` empty: reported below, outside the handler.
        (void)e;
      }
      if (!next) {
        r.close();
        throw MalformedResponse("invalid Location '" + std::string(location) + "' in a " + std::to_string(st) +
                                " from " + url.str());
      }
      // Read a small redirect body so the connection can be reused.
      bool big = false;
      try {
        co_await r.read_body(64 * 1024);
      } catch (const BodyTooLarge&) {
        big = true;  // read_body closed it
      }
      (void)big;
      if (st == 303 || ((st == 301 || st == 302) && method == "POST")) {
        if (method != "HEAD") method = "GET";
        body.clear();
        std::erase_if(headers, [](const auto& h) {
          return iequals(h.first, "Content-Length") || iequals(h.first, "Content-Type") ||
                 iequals(h.first, "Transfer-Encoding");
        });
      }
      if (next->origin() != url.origin()) {
        std::erase_if(headers, [](const auto& h) {
          return iequals(h.first, "Authorization") || iequals(h.first, "Cookie") || iequals(h.first, "Host");
        });
      }
      take_credentials(*next, headers);
      if (opts_.trace) opts_.trace(TraceEvent::redirect, next->str());
      url = std::move(*next);
      continue;
    }
    r.history = std::move(history);
    if (read_whole) {
      // A declared length over the cap fails before any of it is read.
      if (r.s_ && !r.s_->done && r.s_->body.kind() == BodyKind::content_length && !r.s_->decoder &&
          r.s_->body.remaining() > opts_.max_body_size) {
        const std::uint64_t cl = r.s_->body.remaining();
        r.close();
        throw BodyTooLarge("the body of " + url.str() + " (" + std::to_string(cl) + " bytes) exceeds the limit of " +
                           std::to_string(opts_.max_body_size) + " bytes");
      }
      r.body = co_await r.read_body(opts_.max_body_size);
    }
    co_return r;
  }
}

Task<ClientResponse> Client::request(std::string method, std::string url, HeaderList headers, std::string body) {
  if (opts_.total_timeout <= Duration::zero()) {
    co_return co_await follow(std::move(method), std::move(url), std::move(headers), std::move(body), true);
  }
  std::string shown = url;  // for the message: without a password in it
  if (std::optional<Url> u = Url::try_parse(url)) shown = u->without_userinfo().str();
  std::string what = method + " " + shown;
  bool timed_out = false;
  std::optional<ClientResponse> r;
  try {
    r.emplace(co_await wait_for(follow(std::move(method), std::move(url), std::move(headers), std::move(body), true),
                                opts_.total_timeout));
  } catch (const TimeoutError& e) {
    if (typeid(e) != typeid(TimeoutError)) throw;  // a read or connect timeout: more specific
    timed_out = true;
  }
  if (timed_out) throw TimeoutError(what + ": no complete response within " + seconds_text(opts_.total_timeout));
  co_return std::move(*r);
}

Task<ClientResponse> Client::get(std::string url, HeaderList headers) {
  return request("GET", std::move(url), std::move(headers));
}

Task<ClientResponse> Client::post(std::string url, std::string body, HeaderList headers) {
  return request("POST", std::move(url), std::move(headers), std::move(body));
}

Task<ClientResponse> Client::stream(std::string method, std::string url, HeaderList headers, std::string body) {
  return follow(std::move(method), std::move(url), std::move(headers), std::move(body), false);
}

}  // namespace corio::http
