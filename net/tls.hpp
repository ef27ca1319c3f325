#pragma once
// TLS over corio's streams (OpenSSL 3), on both backends: OpenSSL works on
// memory (a BIO over the connection's own buffers), corio's connection
// engine moves the bytes, so nothing blocks the loop and the kernel side is
// the same as for plain streams.
//
//   auto ctx = corio::TlsContext::client();                       // system CAs, TLS >= 1.2
//   auto [r, w] = co_await corio::open_connection("example.com", 443, {.tls = ctx});
//
//   auto sctx = corio::TlsContext::server({.cert_file = "chain.pem", .key_file = "key.pem"});
//   Server s = co_await corio::start_server(handler, "0.0.0.0", 8443, {.tls = sctx});
//
// Client defaults are safe (Python's ssl.create_default_context): the peer's
// certificate is verified against the system CA store (or ca_file/ca_path),
// the name is checked (server_hostname, default: the host connected to; an
// IP literal is checked against the certificate's IP addresses), SNI is
// sent for names, and TLS 1.2 is the minimum. Only
// `insecure_skip_verify_dangerous` turns verification off.
//
// After the handshake the StreamReader/StreamWriter pair is used exactly as a
// plain one; reads return decrypted bytes, write() encrypts.
// - EOF: the peer's close_notify is EOF (read() returns ""). A connection
//   that ends without close_notify makes reads throw TlsError ("unexpected
//   eof while reading": the data may have been truncated by an attacker)
//   unless ignore_unexpected_eof is set.
// - close() sends close_notify before closing the socket; write_eof()
//   sends close_notify and then the FIN, and reading goes on (TLS 1.3
//   half-close); abort() sends nothing.
// - Failures are TlsError (an OSError, errno EPROTO) whose message names
//   the peer, OpenSSL's reason and, for certificates, the verification
//   result: "TLS handshake with 127.0.0.1:443 (localhost): certificate
//   verify failed: certificate has expired". A failed certificate check is
//   the subclass TlsCertificateError. A handshake past its deadline throws
//   TlsHandshakeTimeout (a TimeoutError).
// - A failure after the handshake (a bad record, a truncated stream, a
//   fatal alert) ends the session both ways: reads throw the TlsError, and
//   so does drain(), since nothing written can be encrypted any more (write()
//   drops the bytes, as after a failed send).
#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "coro/scheduler.hpp"
#include "coro/task.hpp"
#include "net/errors.hpp"
#include "net/stream.hpp"
#include "net/tls_ref.hpp"

struct ssl_ctx_st;      // OpenSSL's SSL_CTX
struct ssl_session_st;  // OpenSSL's SSL_SESSION

namespace corio {

enum class TlsVersion { tls1_2, tls1_3 };

// Whether a server asks clients for a certificate (mutual TLS).
enum class ClientCertMode {
  none,      // never asks
  optional,  // asks; a client without one is accepted, a bad one refused
  required,  // a client without a valid certificate is refused
};

struct TlsClientOptions {
  // Trust these CAs instead of the system store (PEM file / hashed directory).
  std::string ca_file;
  std::string ca_path;
  // A client certificate (chain, leaf first) and its key, for mutual TLS.
  std::string cert_file;
  std::string key_file;
  // ALPN protocols offered, most preferred first ("h2", "http/1.1").
  std::vector<std::string> alpn;
  TlsVersion min_version = TlsVersion::tls1_2;
  std::optional<TlsVersion> max_version;
  // OpenSSL cipher strings: TLS 1.2 ciphers / TLS 1.3 suites ("" = default).
  std::string ciphers;
  std::string ciphersuites;
  // Resume sessions (TLS 1.3 tickets, TLS 1.2 tickets or ids) with a server
  // this context already talked to, keyed by "host:port".
  bool session_resumption = true;
  // Treat a connection that ends without close_notify as a plain EOF.
  bool ignore_unexpected_eof = false;
  // Accept ANY certificate from ANY peer: no chain, no name, no expiry
  // check. Anyone on the path can read and change the traffic. Tests only.
  bool insecure_skip_verify_dangerous = false;
};

class TlsContext;

struct TlsServerOptions {
  // The certificate chain (PEM, leaf first) and its private key.
  std::string cert_file;
  std::string key_file;
  // ALPN protocols this server speaks, most preferred first. A client that
  // offers ALPN but none of these is refused (no_application_protocol).
  std::vector<std::string> alpn;
  // Client certificates (mutual TLS), verified against these CAs.
  ClientCertMode verify_client = ClientCertMode::none;
  std::string client_ca_file;
  std::string client_ca_path;
  // Chooses the context (certificate) for the name a client asked for (SNI).
  // Return nullptr to keep this one. Runs inside the handshake: it must not
  // block. An exception refuses the handshake.
  std::function<std::shared_ptr<TlsContext>(std::string_view server_name)> sni_callback;
  TlsVersion min_version = TlsVersion::tls1_2;
  std::optional<TlsVersion> max_version;
  std::string ciphers;
  std::string ciphersuites;
  // Issue session tickets so that clients can resume.
  bool session_tickets = true;
  bool ignore_unexpected_eof = false;
};

// The TLS configuration shared by many connections (Python's SSLContext).
// Created once, shared through shared_ptr; connections keep it alive.
// Invariants: ctx_ is a valid SSL_CTX for the whole life of the object;
// its app data points back here (callbacks find the options and the
// session cache through it). Used on one loop thread at a time.
class TlsContext : public std::enable_shared_from_this<TlsContext> {
 public:
  // Throws TlsError when a file cannot be loaded (OpenSSL's reason) and
  // std::invalid_argument for inconsistent options.
  static std::shared_ptr<TlsContext> client(TlsClientOptions opts = TlsClientOptions());
  static std::shared_ptr<TlsContext> server(TlsServerOptions opts);

  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;
  ~TlsContext();

  bool is_server() const noexcept { return server_; }
  // The OpenSSL context, for settings corio does not wrap (set them before
  // the first connection).
  ssl_ctx_st* native_handle() const noexcept { return ctx_; }
  // Client sessions kept for resumption.
  std::size_t session_cache_size() const noexcept { return sessions_.size(); }
  // Client: the session kept for "host:port" (still owned here), or nullptr.
  ssl_session_st* cached_session(const std::string& key) const noexcept;

 private:
  struct Private;
  friend struct Private;
  explicit TlsContext(bool server);

  ssl_ctx_st* ctx_ = nullptr;
  bool server_;
  TlsClientOptions client_opts_;
  TlsServerOptions server_opts_;
  std::vector<unsigned char> alpn_wire_;  // ALPN list in wire format
  std::map<std::string, ssl_session_st*> sessions_;  // client: "host:port" -> one reference
};

class TlsError : public OSError {
 public:
  // what: the whole message; reason: OpenSSL's reason ("certificate verify
  // failed"); verify_result: X509_V_* (0 when it was not about the chain).
  TlsError(std::string what, std::string reason, long verify_result = 0, std::string verify_message = {});
  const char* what() const noexcept override { return what_.c_str(); }
  const std::string& reason() const noexcept { return reason_; }
  long verify_result() const noexcept { return verify_result_; }
  // X509's text for verify_result ("hostname mismatch"), or "".
  const std::string& verify_message() const noexcept { return verify_message_; }

 private:
  std::string what_;
  std::string reason_;
  long verify_result_;
  std::string verify_message_;
};

// The peer's certificate was refused (Python's SSLCertVerificationError).
class TlsCertificateError : public TlsError {
 public:
  using TlsError::TlsError;
};

class TlsHandshakeTimeout : public TimeoutError {
 public:
  using TimeoutError::TimeoutError;
};

// What was negotiated (asyncio's get_extra_info('ssl_object'), flattened).
struct TlsInfo {
  std::string version;       // "TLSv1.3"
  std::string cipher;        // "TLS_AES_256_GCM_SHA384"
  std::string alpn;          // the protocol chosen, "" if none
  std::string server_name;   // the SNI name sent (client) or received (server)
  std::string peer_subject;  // RFC 2253: "CN=localhost,O=corio"; "" without a peer certificate
  std::string peer_issuer;
  bool session_reused = false;
};

// The TLS details of a connection; nullopt for a plain one.
std::optional<TlsInfo> tls_info(const StreamWriter& writer);

// Trivially destructible, as ConnectOptions (net/tls_ref.hpp says why).
struct StartTlsOptions {
  // Client: the name to verify and send as SNI (required unless the
  // context skips verification; may be an IP literal). Valid during the call.
  std::string_view server_hostname;
  Duration handshake_timeout = std::chrono::seconds(60);
};

// Upgrades a plain connection to TLS in place (asyncio's
// StreamWriter.start_tls), e.g. after STARTTLS: a client context makes this
// side the client, a server context the server. Bytes already buffered by
// the reader are taken as the start of the handshake; bytes already written
// are sent before it. Afterwards the same reader and writer carry TLS.
// On failure (TlsError, an OSError, TlsHandshakeTimeout) the connection is
// unusable: close it. Until then reads and drain() throw that same error
// (write() drops its bytes, as after a failed session; so are bytes written
// during the handshake): nothing written is held back for a handshake that
// will never finish. What was already queued for the socket (bytes written
// before start_tls(), the handshake's records and the alert that ends it)
// is still sent, so the peer's handshake error names the alert; close()
// waits for it, abort() drops it. Must not be called twice or while a read
// is waiting.
// Cancellation: CancelledError; the connection is unusable (close it):
// reads and drain() throw ConnectionAbortedError "TLS handshake with <peer>:
// cancelled; the connection is unusable".
Task<void> start_tls(StreamReader& reader, StreamWriter& writer, std::shared_ptr<TlsContext> ctx,
                     StartTlsOptions opts = StartTlsOptions());

namespace detail {
// open_connection / start_server: attaches TLS to a fresh connection and
// runs the handshake. server_hostname: the client's name to check; port:
// the peer's port (the session cache key is "server_hostname:port").
Task<void> tls_handshake(StreamConn* c, std::shared_ptr<TlsContext> ctx, std::string server_hostname,
                         Duration timeout);
}  // namespace detail

}  // namespace corio
