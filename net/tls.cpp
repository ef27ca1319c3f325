#include "net/tls.hpp"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <type_traits>

#include "coro/timeout.hpp"
#include "net/stream_conn.hpp"
#include "net/stream_filter.hpp"
#include "net/server.hpp"

namespace corio {

// net/tls_ref.hpp: g++ 12 destroys aggregate temporaries passed inside
// co_await expressions twice; these must not care.
static_assert(std::is_trivially_destructible_v<ConnectOptions>);
static_assert(std::is_trivially_destructible_v<ServerOptions>);
static_assert(std::is_trivially_destructible_v<StartTlsOptions>);

std::shared_ptr<TlsContext> TlsRef::lock() const { return p_ ? p_->shared_from_this() : nullptr; }

namespace {

// Sessions kept per client context; past this, the first key by name goes (a
// bound on memory, not an LRU: a resumption it costs is one full handshake).
constexpr std::size_t kMaxSessions = 512;
// Decrypted bytes are produced one record (<= 16 KiB) at a time.
constexpr std::size_t kRecordRoom = 16 * 1024 + 256;

int to_openssl(TlsVersion v) noexcept { return v == TlsVersion::tls1_3 ? TLS1_3_VERSION : TLS1_2_VERSION; }

// OpenSSL's reason for the first error queued (the one that caused the
// others), and whether it was a failed certificate check. Clears the queue.
struct QueuedError {
  std::string reason;
  bool verify_failed = false;
};

QueuedError take_errors() {
  QueuedError q;
  unsigned long first = ERR_get_error();
  if (first != 0) {
    const char* r = ERR_reason_error_string(first);
    q.reason = r ? r : ("OpenSSL error " + std::to_string(ERR_GET_REASON(first)));
    q.verify_failed = ERR_GET_LIB(first) == ERR_LIB_SSL && ERR_GET_REASON(first) == SSL_R_CERTIFICATE_VERIFY_FAILED;
  }
  ERR_clear_error();
  return q;
}

[[noreturn]] void throw_config_error(const std::string& what) {
  QueuedError q = take_errors();
  if (q.reason.empty()) q.reason = "failed";
  throw TlsError(what + ": " + q.reason, q.reason);
}

bool is_ip_literal(const std::string& host) {
  unsigned char buf[16];
  std::string h = host;
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  return ::inet_pton(AF_INET, h.c_str(), buf) == 1 || ::inet_pton(AF_INET6, h.c_str(), buf) == 1;
}

std::vector<unsigned char> alpn_wire(const std::vector<std::string>& protos) {
  std::vector<unsigned char> w;
  for (const std::string& p : protos) {
    if (p.empty() || p.size() > 255) throw std::invalid_argument("ALPN protocol names are 1 to 255 bytes: '" + p + "'");
    w.push_back(static_cast<unsigned char>(p.size()));
    w.insert(w.end(), p.begin(), p.end());
  }
  return w;
}

std::string name_text(X509_NAME* name) {
  if (!name) return {};
  BIO* b = BIO_new(BIO_s_mem());
  if (!b) return {};
  X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
  char* p = nullptr;
  long n = BIO_get_mem_data(b, &p);
  std::string s(p, n > 0 ? static_cast<std::size_t>(n) : 0);
  BIO_free(b);
  return s;
}

void apply_versions(SSL_CTX* ctx, TlsVersion min, const std::optional<TlsVersion>& max) {
  if (!SSL_CTX_set_min_proto_version(ctx, to_openssl(min))) throw_config_error("TLS minimum version");
  if (max) {
    if (*max < min) throw std::invalid_argument("TLS max_version is below min_version");
    if (!SSL_CTX_set_max_proto_version(ctx, to_openssl(*max))) throw_config_error("TLS maximum version");
  }
}

void apply_ciphers(SSL_CTX* ctx, const std::string& ciphers, const std::string& suites) {
  if (!ciphers.empty() && !SSL_CTX_set_cipher_list(ctx, ciphers.c_str())) throw_config_error("TLS ciphers '" + ciphers + "'");
  if (!suites.empty() && !SSL_CTX_set_ciphersuites(ctx, suites.c_str())) {
    throw_config_error("TLS 1.3 cipher suites '" + suites + "'");
  }
}

void load_chain(SSL_CTX* ctx, const std::string& cert, const std::string& key) {
  if (cert.empty() != key.empty()) throw std::invalid_argument("TLS: cert_file and key_file go together");
  if (cert.empty()) return;
  if (SSL_CTX_use_certificate_chain_file(ctx, cert.c_str()) != 1) throw_config_error("load certificate chain " + cert);
  if (SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1) throw_config_error("load private key " + key);
  if (SSL_CTX_check_private_key(ctx) != 1) throw_config_error("private key " + key + " vs certificate " + cert);
}

}  // namespace

// ---- errors -------------------------------------------------------------------

TlsError::TlsError(std::string what, std::string reason, long verify_result, std::string verify_message)
    : OSError(EPROTO, what),
      what_(std::move(what)),
      reason_(std::move(reason)),
      verify_result_(verify_result),
      verify_message_(std::move(verify_message)) {}

// ---- the filter: one TLS connection -----------------------------------------------

namespace detail {

// TLS between a StreamConn's socket and its user buffers.
//
// Invariants:
// - ssl_ reads ciphertext only from raw_ and writes only through
//   conn_->append_raw() (the BIO below); nothing else touches the socket.
// - Before the handshake completes (state_ == handshaking) on_input() only
//   lets the handshake task run; user writes are held in early_ and
//   encrypted, in order, right after it.
// - After a failure (failed_) no record is produced any more: close() sends
//   no close_notify (the alert OpenSSL queued was the goodbye). A failure
//   ends both sides of the connection (fail(); for a handshake that failed,
//   timed out or was cancelled, abandon()): reads and drain() throw it, so
//   no write is dropped unnoticed, nor held for a handshake that will never
//   finish.
class TlsFilter final : public StreamFilter {
 public:
  TlsFilter(StreamConn& c, std::shared_ptr<TlsContext> ctx, SSL* ssl) : conn_(&c), ctx_(std::move(ctx)), ssl_(ssl) {}
  ~TlsFilter() override {
    SSL_free(ssl_);  // frees the BIO too
  }

  static BIO_METHOD* bio_method();
  SSL* ssl() const noexcept { return ssl_; }
  bool established() const noexcept { return state_ == State::established; }
  void set_session_key(std::string k) { session_key_ = std::move(k); }
  const std::string& session_key() const noexcept { return session_key_; }
  // The context the SNI callback switched to: kept alive with the connection.
  void keep_context(std::shared_ptr<TlsContext> c) { sni_ctx_ = std::move(c); }
  TlsContext& context() const noexcept { return *ctx_; }

  // One handshake step: true when done. Throws TlsError, or the socket's
  // OSError when the connection itself failed.
  bool handshake_step();
  // The handshake will never finish (it failed, timed out or was
  // cancelled; `e` says so): the bytes written meanwhile (early_, never
  // encrypted) are dropped, and reads and drain() throw `e` from now on.
  // What is already queued for the socket, ending with the alert of a
  // failed handshake, is still sent (fail()).
  void abandon(std::exception_ptr e) noexcept;

  ByteBuffer& raw_input() noexcept override { return raw_; }
  void on_input(StreamConn& conn) noexcept override;
  void write(StreamConn& conn, const char* p, std::size_t n) override;
  void on_write_eof(StreamConn& conn) noexcept override { send_close_notify(conn); }
  void on_close(StreamConn& conn) noexcept override { send_close_notify(conn); }
  void rethrow_error() const override {
    if (error_) std::rethrow_exception(error_);
  }

 private:
  enum class State { handshaking, established };

  static int bio_write(BIO* b, const char* data, std::size_t len, std::size_t* written);
  static int bio_read(BIO* b, char* data, std::size_t len, std::size_t* got);
  static long bio_ctrl(BIO* b, int cmd, long num, void* ptr);

  void send_close_notify(StreamConn& conn) noexcept;
  void fail(StreamConn& conn, int err) noexcept;
  std::string describe() const;
  std::exception_ptr make_error(const char* op, int ssl_err) const;
  void encrypt(const char* p, std::size_t n) noexcept;

  StreamConn* conn_;
  std::shared_ptr<TlsContext> ctx_;
  std::shared_ptr<TlsContext> sni_ctx_;
  SSL* ssl_;
  ByteBuffer raw_;
  std::string early_;
  std::string session_key_;
  std::exception_ptr error_;  // a failure of TLS's own (not the socket's), for both sides
  State state_ = State::handshaking;
  bool failed_ = false;
  bool tls_eof_ = false;
  bool shutdown_sent_ = false;
};

// The BIO: reads consume raw_, writes append to the connection's send
// buffer. "Would block" is an empty raw_ while the socket is still open.
BIO_METHOD* TlsFilter::bio_method() {
  struct Holder {
    BIO_METHOD* m;
    Holder() : m(BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "corio stream")) {
      if (!m) return;
      BIO_meth_set_write_ex(m, &TlsFilter::bio_write);
      BIO_meth_set_read_ex(m, &TlsFilter::bio_read);
      BIO_meth_set_ctrl(m, &TlsFilter::bio_ctrl);
    }
    ~Holder() { BIO_meth_free(m); }
  };
  static Holder h;
  return h.m;
}

int TlsFilter::bio_write(BIO* b, const char* data, std::size_t len, std::size_t* written) {
  auto* f = static_cast<TlsFilter*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  try {
    f->conn_->append_raw(data, len);
  } catch (...) {
    return 0;  // out of memory: OpenSSL reports a write failure
  }
  *written = len;
  return 1;
}

int TlsFilter::bio_read(BIO* b, char* data, std::size_t len, std::size_t* got) {
  auto* f = static_cast<TlsFilter*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  std::size_t n = std::min(len, f->raw_.size());
  if (n == 0) {
    *got = 0;
    if (!f->conn_->raw_eof()) BIO_set_retry_read(b);  // more may come; else it is EOF
    return 0;
  }
  std::memcpy(data, f->raw_.data(), n);
  f->raw_.consume(n);
  *got = n;
  return 1;
}

long TlsFilter::bio_ctrl(BIO* b, int cmd, long, void*) {
  auto* f = static_cast<TlsFilter*>(BIO_get_data(b));
  switch (cmd) {
    case BIO_CTRL_FLUSH: return 1;  // sends start at flush_raw(), after each OpenSSL call
    case BIO_CTRL_PENDING: return static_cast<long>(f->raw_.size());
    case BIO_CTRL_WPENDING: return 0;
    case BIO_CTRL_EOF: return f->raw_.empty() && f->conn_->raw_eof();
    default: return 0;
  }
}

std::string TlsFilter::describe() const {
  std::string s = conn_->peer().empty() ? conn_->socket().describe() : conn_->peer().to_string();
  if (!ctx_->is_server()) {
    const char* host = SSL_get_servername(ssl_, TLSEXT_NAMETYPE_host_name);
    const X509_VERIFY_PARAM* p = SSL_get0_param(ssl_);
    const char* checked = X509_VERIFY_PARAM_get0_host(const_cast<X509_VERIFY_PARAM*>(p), 0);
    if (checked) s += std::string(" (") + checked + ")";
    else if (host) s += std::string(" (") + host + ")";
  }
  return s;
}

std::exception_ptr TlsFilter::make_error(const char* op, int ssl_err) const {
  QueuedError q = take_errors();
  long vr = SSL_get_verify_result(ssl_);
  std::string what = std::string(op) + " " + describe() + ": ";
  if (q.reason.empty()) {
    q.reason = ssl_err == SSL_ERROR_SYSCALL ? "unexpected eof while reading" : "TLS failure " + std::to_string(ssl_err);
  }
  what += q.reason;
  if (q.verify_failed && vr != X509_V_OK) {
    std::string vm = X509_verify_cert_error_string(vr);
    what += ": " + vm;
    return std::make_exception_ptr(TlsCertificateError(what, q.reason, vr, vm));
  }
  return std::make_exception_ptr(TlsError(what, q.reason));
}

bool TlsFilter::handshake_step() {
  ERR_clear_error();
  int r = SSL_do_handshake(ssl_);
  int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl_, r);
  conn_->flush_raw();
  if (r == 1) {
    state_ = State::established;
    if (!early_.empty()) {
      std::string pending;
      pending.swap(early_);
      encrypt(pending.data(), pending.size());
    }
    on_input(*conn_);  // application data that came with the last flight
    return true;
  }
  if (e == SSL_ERROR_WANT_READ && !conn_->raw_eof()) return false;
  failed_ = true;
  // The connection failed underneath: that is the story, not "unexpected eof".
  if (int err = conn_->read_error() ? conn_->read_error() : conn_->write_error()) {
    ERR_clear_error();
    throw_os_error(err, "TLS handshake with", describe());
  }
  std::rethrow_exception(make_error("TLS handshake with", e));
}

void TlsFilter::on_input(StreamConn& conn) noexcept {
  if (state_ != State::established || tls_eof_ || failed_ || conn.closing()) {
    // Nothing after close_notify or a failure is ever decoded: drop it, or a
    // peer that goes on sending (no FIN) would grow this buffer without end.
    if (tls_eof_ || failed_) raw_.clear();
    if (conn.uses_provided_buffers() && raw_.empty()) raw_.release_memory();
    return;
  }
  ERR_clear_error();
  ByteBuffer& out = conn.rbuf();
  for (;;) {
    std::size_t got = 0;
    char* dst;
    try {
      dst = out.prepare(kRecordRoom);
    } catch (...) {
      error_ = std::make_exception_ptr(std::bad_alloc());
      fail(conn, ENOMEM);
      break;
    }
    int r = SSL_read_ex(ssl_, dst, out.free_tail(), &got);
    if (r == 1) {
      out.commit(got);
      continue;
    }
    int e = SSL_get_error(ssl_, r);
    if (e == SSL_ERROR_WANT_READ) break;
    if (e == SSL_ERROR_ZERO_RETURN) {
      tls_eof_ = true;  // close_notify: a clean end
      conn.mark_eof();
      break;
    }
    if (conn.read_error()) {
      ERR_clear_error();  // the socket's own error tells what happened (fail() keeps it)
    } else {
      error_ = make_error("TLS read from", e);
    }
    fail(conn, EPROTO);
    break;
  }
  if (conn.uses_provided_buffers() && raw_.empty()) raw_.release_memory();
  conn.flush_raw();  // alerts, key update answers
}

void TlsFilter::encrypt(const char* p, std::size_t n) noexcept {
  while (n > 0 && !failed_) {
    std::size_t done = 0;
    int r = SSL_write_ex(ssl_, p, n, &done);
    if (r != 1) {
      // A failed session never gets here (fail() stopped the writes) and
      // write() is refused after a shutdown: this is OpenSSL's own failure
      // or no memory for the record. The session is lost; the bytes are
      // dropped, drain() says why, and so does a read (one waiting now at
      // its recv's completion).
      error_ = make_error("TLS write to", SSL_get_error(ssl_, r));
      fail(*conn_, EPROTO);
      break;
    }
    p += done;
    n -= done;
  }
  conn_->flush_raw();
}

void TlsFilter::write(StreamConn& conn, const char* p, std::size_t n) {
  if (state_ != State::established) {
    early_.append(p, n);  // start_tls still shaking hands: sent right after
    return;
  }
  (void)conn;
  encrypt(p, n);
}

void TlsFilter::abandon(std::exception_ptr e) noexcept {
  if (state_ == State::established) return;  // only a handshake is abandoned
  std::string().swap(early_);
  if (!error_) error_ = std::move(e);
  fail(*conn_, EPROTO);
}

void TlsFilter::fail(StreamConn& conn, int err) noexcept {
  failed_ = true;
  conn.fail_read(err);  // keeps the socket's error if it came first
  conn.flush_raw();
  // No record can be encoded any more: without this, write() would hand
  // bytes to encrypt(), which drops them, and drain() would return normally.
  // The records already queued, ending with the alert OpenSSL queued, are
  // still sent, also when a send is in flight or delayed (fail_write keeps
  // them): the peer's error names the alert instead of a reset or an EOF.
  conn.fail_write(conn.read_error());
}

void TlsFilter::send_close_notify(StreamConn& conn) noexcept {
  if (shutdown_sent_ || failed_ || state_ != State::established) return;
  shutdown_sent_ = true;
  ERR_clear_error();
  SSL_shutdown(ssl_);  // queues close_notify; the peer's is read (or not) by on_input
  ERR_clear_error();
  conn.flush_raw();
}

}  // namespace detail

// ---- TlsContext ------------------------------------------------------------------

struct TlsContext::Private {
  static detail::TlsFilter* filter_of(SSL* ssl) { return static_cast<detail::TlsFilter*>(SSL_get_app_data(ssl)); }

  static int new_session(SSL* ssl, SSL_SESSION* sess) {
    detail::TlsFilter* f = filter_of(ssl);
    if (!f || f->session_key().empty()) return 0;
    TlsContext& c = f->context();
    auto it = c.sessions_.find(f->session_key());
    if (it != c.sessions_.end()) {
      SSL_SESSION_free(it->second);
      it->second = sess;
    } else {
      if (c.sessions_.size() >= kMaxSessions) {
        SSL_SESSION_free(c.sessions_.begin()->second);
        c.sessions_.erase(c.sessions_.begin());
      }
      c.sessions_.emplace(f->session_key(), sess);
    }
    return 1;  // we keep the reference
  }

  static int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                         unsigned int inlen, void* arg) {
    auto* c = static_cast<TlsContext*>(arg);
    // The server's preference wins: the first of ours the client offers.
    const std::vector<unsigned char>& ours = c->alpn_wire_;
    for (std::size_t i = 0; i < ours.size(); i += 1 + ours[i]) {
      for (unsigned int j = 0; j < inlen; j += 1u + in[j]) {
        if (j + 1u + in[j] > inlen) break;
        if (in[j] == ours[i] && std::memcmp(in + j + 1, ours.data() + i + 1, ours[i]) == 0) {
          *out = in + j + 1;
          *outlen = in[j];
          return SSL_TLSEXT_ERR_OK;
        }
      }
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL;  // RFC 7301: no_application_protocol
  }

  static int servername(SSL* ssl, int* alert, void* arg) {
    auto* c = static_cast<TlsContext*>(arg);
    const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (!name || !c->server_opts_.sni_callback) return SSL_TLSEXT_ERR_OK;
    try {
      std::shared_ptr<TlsContext> other = c->server_opts_.sni_callback(name);
      if (other && other.get() != c) {
        if (!other->is_server()) throw std::invalid_argument("the SNI callback returned a client context");
        if (!SSL_set_SSL_CTX(ssl, other->ctx_)) return SSL_TLSEXT_ERR_ALERT_FATAL;
        if (detail::TlsFilter* f = filter_of(ssl)) f->keep_context(std::move(other));
      }
      return SSL_TLSEXT_ERR_OK;
    } catch (...) {
      *alert = SSL_AD_INTERNAL_ERROR;
      return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
  }
};

TlsContext::TlsContext(bool server) : server_(server) {
  ctx_ = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (!ctx_) throw_config_error("SSL_CTX_new");
  SSL_CTX_set_app_data(ctx_, this);
  // Renegotiation would let a read need a write and a write need a read;
  // nobody should use it (TLS 1.3 removed it).
  SSL_CTX_set_options(ctx_, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
}

TlsContext::~TlsContext() {
  for (auto& kv : sessions_) SSL_SESSION_free(kv.second);
  SSL_CTX_free(ctx_);
}

std::shared_ptr<TlsContext> TlsContext::client(TlsClientOptions opts) {
  std::shared_ptr<TlsContext> c(new TlsContext(false));
  SSL_CTX* ctx = c->ctx_;
  apply_versions(ctx, opts.min_version, opts.max_version);
  apply_ciphers(ctx, opts.ciphers, opts.ciphersuites);
  if (opts.insecure_skip_verify_dangerous) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    if (!opts.ca_file.empty() || !opts.ca_path.empty()) {
      if (SSL_CTX_load_verify_locations(ctx, opts.ca_file.empty() ? nullptr : opts.ca_file.c_str(),
                                        opts.ca_path.empty() ? nullptr : opts.ca_path.c_str()) != 1) {
        throw_config_error("load CA " + (opts.ca_file.empty() ? opts.ca_path : opts.ca_file));
      }
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
      throw_config_error("load the system CA store");
    }
  }
  load_chain(ctx, opts.cert_file, opts.key_file);
  if (!opts.alpn.empty()) {
    c->alpn_wire_ = alpn_wire(opts.alpn);
    if (SSL_CTX_set_alpn_protos(ctx, c->alpn_wire_.data(), static_cast<unsigned>(c->alpn_wire_.size())) != 0) {
      throw_config_error("ALPN");
    }
  }
  if (opts.ignore_unexpected_eof) SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
  if (opts.session_resumption) {
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, &Private::new_session);
  } else {
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  }
  c->client_opts_ = std::move(opts);
  return c;
}

std::shared_ptr<TlsContext> TlsContext::server(TlsServerOptions opts) {
  if (opts.cert_file.empty()) throw std::invalid_argument("TlsContext::server needs cert_file and key_file");
  std::shared_ptr<TlsContext> c(new TlsContext(true));
  SSL_CTX* ctx = c->ctx_;
  apply_versions(ctx, opts.min_version, opts.max_version);
  apply_ciphers(ctx, opts.ciphers, opts.ciphersuites);
  load_chain(ctx, opts.cert_file, opts.key_file);
  // Resumed sessions must match this context (required with client certs).
  static const unsigned char kSidCtx[] = "corio";
  SSL_CTX_set_session_id_context(ctx, kSidCtx, sizeof kSidCtx - 1);
  if (opts.verify_client != ClientCertMode::none) {
    const bool file = !opts.client_ca_file.empty();
    if (!file && opts.client_ca_path.empty()) {
      throw std::invalid_argument("TLS: verify_client needs client_ca_file or client_ca_path");
    }
    if (SSL_CTX_load_verify_locations(ctx, file ? opts.client_ca_file.c_str() : nullptr,
                                      opts.client_ca_path.empty() ? nullptr : opts.client_ca_path.c_str()) != 1) {
      throw_config_error("load client CA " + (file ? opts.client_ca_file : opts.client_ca_path));
    }
    if (file) {
      // Tell clients which CAs we accept (so they pick the right certificate).
      STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(opts.client_ca_file.c_str());
      if (names) SSL_CTX_set_client_CA_list(ctx, names);
    }
    int mode = SSL_VERIFY_PEER;
    if (opts.verify_client == ClientCertMode::required) mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(ctx, mode, nullptr);
  }
  if (!opts.alpn.empty()) {
    c->alpn_wire_ = alpn_wire(opts.alpn);
    SSL_CTX_set_alpn_select_cb(ctx, &Private::select_alpn, c.get());
  }
  if (opts.sni_callback) {
    SSL_CTX_set_tlsext_servername_callback(ctx, &Private::servername);
    SSL_CTX_set_tlsext_servername_arg(ctx, c.get());
  }
  if (!opts.session_tickets) SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  if (opts.ignore_unexpected_eof) SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
  c->server_opts_ = std::move(opts);
  return c;
}

// ---- handshakes ---------------------------------------------------------------------

namespace detail {

namespace {

// Attaches a TlsFilter for `ctx` to c (client: checking server_hostname).
TlsFilter* attach(StreamConn* c, const std::shared_ptr<TlsContext>& ctx, const std::string& server_hostname) {
  if (c->filter()) throw InvalidStateError("start_tls: the connection already uses TLS");
  if (c->closing()) throw InvalidStateError("start_tls: the connection is closed");
  SSL* ssl = SSL_new(ctx->native_handle());
  if (!ssl) throw_config_error("SSL_new");
  BIO* bio = BIO_new(TlsFilter::bio_method());
  if (!bio) {
    SSL_free(ssl);
    throw_config_error("BIO_new");
  }
  SSL_set_bio(ssl, bio, bio);  // one reference, owned by ssl
  auto f = std::make_unique<TlsFilter>(*c, ctx, ssl);
  BIO_set_data(bio, f.get());
  BIO_set_init(bio, 1);
  SSL_set_app_data(ssl, f.get());
  if (ctx->is_server()) {
    SSL_set_accept_state(ssl);
  } else {
    SSL_set_connect_state(ssl);
    const bool verify = SSL_CTX_get_verify_mode(ctx->native_handle()) != SSL_VERIFY_NONE;
    std::string host = server_hostname;
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    if (host.empty() && verify) {
      throw std::invalid_argument("TLS client: server_hostname is needed to verify the server's certificate");
    }
    if (!host.empty()) {
      if (is_ip_literal(host)) {
        // RFC 6066: no SNI for addresses; the certificate must name the IP.
        if (verify && X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str()) != 1) {
          throw_config_error("TLS: IP address " + host);
        }
      } else {
        if (SSL_set_tlsext_host_name(ssl, host.c_str()) != 1) throw_config_error("TLS: SNI name " + host);
        SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (verify && SSL_set1_host(ssl, host.c_str()) != 1) throw_config_error("TLS: host name " + host);
      }
      if (SSL_CTX_get_session_cache_mode(ctx->native_handle()) & SSL_SESS_CACHE_CLIENT) {
        std::string key = host + ":" + std::to_string(c->peer().empty() ? 0 : c->peer().port());
        f->set_session_key(key);
        if (ssl_session_st* s = ctx->cached_session(key)) SSL_set_session(ssl, s);
      }
    }
  }
  TlsFilter* raw = f.get();
  c->set_filter(std::move(f));
  return raw;
}

Task<void> run_handshake(StreamConn* c, TlsFilter* f) {
  StreamWriter keep(c);  // the connection lives while we shake hands
  while (!f->handshake_step()) {
    if (c->closing()) throw ConnectionAbortedError(ECONNABORTED, "TLS handshake: the connection was closed");
    co_await c->wait_data(1);
  }
}

}  // namespace

Task<void> tls_handshake(StreamConn* c, std::shared_ptr<TlsContext> ctx, std::string server_hostname,
                         Duration timeout) {
  TlsFilter* f = attach(c, ctx, server_hostname);  // lives as long as c, which the caller holds
  bool timed_out = false;
  // Whatever ends the handshake early also ends the session (abandon()), so
  // that a write() after a failed start_tls() is not held for a handshake
  // that never comes and drain() does not report it sent.
  try {
    co_await corio::timeout(timeout).run(run_handshake(c, f));
  } catch (const TimeoutError&) {
    timed_out = true;
  } catch (const CancelledError&) {
    std::string peer = c->peer().empty() ? c->socket().describe() : c->peer().to_string();
    f->abandon(std::make_exception_ptr(
        ConnectionAbortedError(ECONNABORTED, "TLS handshake with " + peer + ": cancelled; the connection is unusable")));
    throw;
  } catch (...) {
    f->abandon(std::current_exception());
    throw;
  }
  if (timed_out) {
    std::string peer = c->peer().empty() ? c->socket().describe() : c->peer().to_string();
    if (!server_hostname.empty()) peer += " (" + server_hostname + ")";
    TlsHandshakeTimeout e("TLS handshake with " + peer + ": timed out after " +
                          std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count()) +
                          " ms");
    f->abandon(std::make_exception_ptr(e));
    throw e;
  }
}

}  // namespace detail

ssl_session_st* TlsContext::cached_session(const std::string& key) const noexcept {
  auto it = sessions_.find(key);
  return it == sessions_.end() ? nullptr : it->second;
}

Task<void> start_tls(StreamReader& reader, StreamWriter& writer, std::shared_ptr<TlsContext> ctx, StartTlsOptions opts) {
  if (!ctx) throw std::invalid_argument("start_tls: no TlsContext");
  detail::StreamConn* c = writer.connection();
  if (!c || reader.connection() != c) throw std::invalid_argument("start_tls: the reader and writer must be one connection's");
  co_await detail::tls_handshake(c, std::move(ctx), std::string(opts.server_hostname), opts.handshake_timeout);
}

std::optional<TlsInfo> tls_info(const StreamWriter& writer) {
  detail::StreamConn* c = writer.connection();
  auto* f = c ? dynamic_cast<detail::TlsFilter*>(c->filter()) : nullptr;
  if (!f) return std::nullopt;
  SSL* ssl = f->ssl();
  TlsInfo info;
  info.version = SSL_get_version(ssl);
  if (const SSL_CIPHER* ci = SSL_get_current_cipher(ssl)) info.cipher = SSL_CIPHER_get_name(ci);
  const unsigned char* alpn = nullptr;
  unsigned int alpn_len = 0;
  SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
  if (alpn) info.alpn.assign(reinterpret_cast<const char*>(alpn), alpn_len);
  if (const char* sn = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name)) info.server_name = sn;
  if (X509* peer = SSL_get0_peer_certificate(ssl)) {
    info.peer_subject = name_text(X509_get_subject_name(peer));
    info.peer_issuer = name_text(X509_get_issuer_name(peer));
  }
  info.session_reused = SSL_session_reused(ssl) == 1;
  return info;
}

}  // namespace corio
