#pragma once
// Establishing TCP connections: Happy Eyeballs (RFC 8305) over the addresses
// a name resolves to.
//
//   Socket s = co_await corio::create_connection("example.org", 80);
//
// A name with IPv6 and IPv4 addresses must not make users wait for a
// black-holed family: the attempts are staggered instead of sequential.
// - Order: the addresses are interleaved by family, starting with the family
//   getaddrinfo put first (RFC 6724 preference): `interleave` addresses of
//   it, then one of each family in turn (RFC 8305 §4, asyncio's interleave).
// - The first attempt starts at once; each next one starts when the previous
//   attempt failed or `happy_eyeballs_delay` after it started, whichever
//   comes first. Earlier attempts keep running meanwhile.
// - The first connection to succeed wins. Every other attempt is cancelled,
//   and its socket closed, before the call returns (no fd outlives it).
// - Without a delay (happy_eyeballs_delay = nullopt) the addresses are tried
//   one after the other, in getaddrinfo's order.
//
// Failure, once every attempt failed:
// - the same errno everywhere: that kind is thrown (ConnectionRefusedError,
//   ConnectTimeoutError, …) naming every address tried:
//   "connect localhost:8080 (tried [::1]:8080, 127.0.0.1:8080): Connection refused";
// - different errors: ConnectAttemptsError (a ConnectionError) listing each
//   address with its error; attempts() has them all.
// - `timeout` passed first: ConnectTimeoutError naming host:port
//   ("connect example.org:80: timed out after 5000 ms").
#include <sys/socket.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "coro/scheduler.hpp"
#include "coro/task.hpp"
#include "net/address.hpp"
#include "net/errors.hpp"
#include "net/socket.hpp"
#include "net/stream_conn.hpp"
#include "net/tls_ref.hpp"

namespace corio {

// How open_connection() and create_connection() connect. The StreamOptions
// part only matters to open_connection (the streams it makes).
struct ConnectOptions : StreamOptions {
  // Limit for each address tried. None by default (the kernel gives up after
  // about 2 minutes of SYN retransmits).
  std::optional<Duration> connect_timeout;
  // Limit for the whole call: name resolution and every attempt. None by default.
  std::optional<Duration> timeout;
  // RFC 8305's Connection Attempt Delay; nullopt turns Happy Eyeballs off
  // (one address after the other).
  std::optional<Duration> happy_eyeballs_delay = std::chrono::milliseconds(250);
  // RFC 8305's First Address Family Count: addresses of the preferred family
  // tried before alternating families (with Happy Eyeballs on). At least 1.
  std::size_t interleave = 1;
  // AF_INET or AF_INET6 to restrict name resolution.
  int family = AF_UNSPEC;
  // Bind the socket here before connecting (source address / port).
  std::optional<SocketAddress> local_address;
  // TLS (net/tls.hpp): a client TlsContext makes this a TLS connection; the
  // handshake is done (and the certificate verified) before it is returned.
  // The caller's shared_ptr must keep the context alive during the call.
  TlsRef tls;
  // The name to verify the certificate against and send as SNI; empty: the
  // host passed to open_connection (an IP literal is checked as an address).
  // Must stay valid during the call.
  std::string_view server_hostname;
  // The handshake's deadline (asyncio's ssl_handshake_timeout): TlsHandshakeTimeout.
  Duration tls_handshake_timeout = std::chrono::seconds(60);
};

// Every attempt failed, not all the same way. what() lists each address with
// its error ("connect h:80: every address failed ([::1]:80: Network is
// unreachable; 127.0.0.1:80: Connection refused)"); code() is the first
// attempt's errno.
class ConnectAttemptsError : public ConnectionError {
 public:
  struct Attempt {
    SocketAddress address;
    std::exception_ptr error;
  };
  ConnectAttemptsError(int err, const std::string& what, std::vector<Attempt> attempts)
      : ConnectionError(err, what), attempts_(std::move(attempts)) {}
  // In the order the attempts were started.
  const std::vector<Attempt>& attempts() const noexcept { return attempts_; }

 private:
  std::vector<Attempt> attempts_;
};

// RFC 8305 §4 ordering: `first_family_count` addresses of the first
// family (as ordered in `addrs`), then one address of each family in turn.
// Stable within a family.
std::vector<SocketAddress> interleave_addresses(std::vector<SocketAddress> addrs, std::size_t first_family_count = 1);

// The Happy Eyeballs core: connects a TCP socket to one of `addrs`, tried in
// this order (no reordering here; open_connection interleaves first), with
// opts.connect_timeout, opts.timeout, opts.happy_eyeballs_delay and
// opts.local_address. `target` names what is being connected to in error
// messages ("example.org:80"); empty: the address list. Throws
// std::invalid_argument for an empty list; failures as the top of this header.
// Returns the connected socket (non-blocking, close-on-exec).
// Cancellation: every attempt is cancelled and its socket closed, then
// CancelledError is raised; a connection that won just before is closed too.
Task<Socket> connect_happy_eyeballs(std::vector<SocketAddress> addrs, ConnectOptions opts = {},
                                    std::string target = {});

// Resolves host (off the loop thread, net/dns.hpp) and connects with
// connect_happy_eyeballs over the interleaved addresses (Python's
// socket.create_connection, with Happy Eyeballs). Throws NameNotFoundError,
// the connect errors above, or ConnectTimeoutError naming host:port when
// opts.timeout passes (resolution included).
// Cancellation: as connect_happy_eyeballs.
Task<Socket> create_connection(std::string host, std::uint16_t port, ConnectOptions opts = {});

}  // namespace corio
