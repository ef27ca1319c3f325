#pragma once
// SocketAddress: an IPv4, IPv6 or Unix-domain socket address, as the kernel
// takes it (a sockaddr and its length) plus parsing and printing.
//
//   SocketAddress::parse("127.0.0.1", 80).to_string()   -> "127.0.0.1:80"
//   SocketAddress::parse("::1", 80).to_string()         -> "[::1]:80"
//   SocketAddress::parse_endpoint("[::1]:80")           -> the same address
//   SocketAddress::unix_path("/tmp/s").to_string()      -> "/tmp/s"
//   SocketAddress::unix_path("@name")                   -> Linux abstract socket "\0name", printed "@name"
//
// Parsing accepts numeric hosts only (no DNS); names go through
// corio::resolve (net/dns.hpp). Bad input throws std::invalid_argument with
// the offending text in the message.
//
// Invariant: size_ is 0 for the empty address (family AF_UNSPEC), otherwise the
// exact length the kernel reported or expects for the family.
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace corio {

class SocketAddress {
 public:
  SocketAddress() noexcept;

  // A numeric IPv4 or IPv6 host ("127.0.0.1", "::1", "fe80::1%2" or "fe80::1%lo")
  // with a port. Throws std::invalid_argument for anything else.
  static SocketAddress parse(std::string_view host, std::uint16_t port);
  // The same, without throwing: nullopt for a name or malformed text.
  static std::optional<SocketAddress> try_parse(std::string_view host, std::uint16_t port) noexcept;
  // "127.0.0.1:80", "[::1]:80", or a Unix path (anything containing '/' or
  // starting with '@'). Throws std::invalid_argument.
  static SocketAddress parse_endpoint(std::string_view text);
  // A Unix-domain address; a leading '@' selects the Linux abstract namespace.
  // Throws std::invalid_argument if the path does not fit sun_path.
  static SocketAddress unix_path(std::string_view path);
  // The wildcard address of a family (0.0.0.0 or ::) with a port.
  static SocketAddress any(int family, std::uint16_t port);
  static SocketAddress loopback(int family, std::uint16_t port);
  // Copies what the kernel wrote (accept, recvfrom, getsockname).
  static SocketAddress from_sockaddr(const sockaddr* sa, socklen_t len) noexcept;

  int family() const noexcept { return size_ == 0 ? AF_UNSPEC : u_.sa.sa_family; }
  bool empty() const noexcept { return size_ == 0; }
  bool is_ipv4() const noexcept { return family() == AF_INET; }
  bool is_ipv6() const noexcept { return family() == AF_INET6; }
  bool is_unix() const noexcept { return family() == AF_UNIX; }

  // The port of an IP address (0 for Unix or empty).
  std::uint16_t port() const noexcept;
  void set_port(std::uint16_t port) noexcept;
  // "127.0.0.1", "::1" (no brackets), a Unix path ("@name" for abstract, "" when unnamed).
  std::string host() const;
  // "127.0.0.1:80", "[::1]:80", "/tmp/s", "@name", "<unnamed unix socket>" or "<no address>".
  std::string to_string() const;

  const sockaddr* data() const noexcept { return &u_.sa; }
  sockaddr* data() noexcept { return &u_.sa; }
  socklen_t size() const noexcept { return size_; }
  // Room for any address this type holds (for accept/recvfrom/getsockname).
  static constexpr socklen_t capacity() noexcept { return static_cast<socklen_t>(sizeof(Storage)); }
  // After the kernel filled data() (up to capacity()), record the length it reported.
  void set_size(socklen_t len) noexcept { size_ = len > capacity() ? capacity() : len; }

  friend bool operator==(const SocketAddress& a, const SocketAddress& b) noexcept;
  friend bool operator!=(const SocketAddress& a, const SocketAddress& b) noexcept { return !(a == b); }

 private:
  union Storage {
    sockaddr sa;
    sockaddr_in in4;
    sockaddr_in6 in6;
    sockaddr_un un;
  };
  Storage u_;
  socklen_t size_ = 0;
};

}  // namespace corio
