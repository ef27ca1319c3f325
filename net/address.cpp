#include "net/address.hpp"

#include <arpa/inet.h>
#include <net/if.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>

namespace corio {

SocketAddress::SocketAddress() noexcept { std::memset(&u_, 0, sizeof u_); }

std::optional<SocketAddress> SocketAddress::try_parse(std::string_view host, std::uint16_t port) noexcept {
  // inet_pton needs a NUL-terminated string; hosts longer than any numeric
  // address cannot be one.
  char buf[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
  if (host.empty() || host.size() >= sizeof buf) return std::nullopt;
  // inet_pton would stop at an embedded NUL and accept "127.0.0.1\0junk".
  if (host.find('\0') != std::string_view::npos) return std::nullopt;
  std::memcpy(buf, host.data(), host.size());
  buf[host.size()] = '\0';
  SocketAddress a;
  if (::inet_pton(AF_INET, buf, &a.u_.in4.sin_addr) == 1) {
    a.u_.in4.sin_family = AF_INET;
    a.u_.in4.sin_port = htons(port);
    a.size_ = sizeof(sockaddr_in);
    return a;
  }
  // IPv6, optionally with a zone: "fe80::1%2" or "fe80::1%eth0".
  std::uint32_t scope = 0;
  if (char* pct = std::strchr(buf, '%')) {
    *pct = '\0';
    const char* zone = pct + 1;
    if (!*zone) return std::nullopt;
    // A numeric zone is digits only and fits the 32-bit scope id (strtoul
    // would take "-1", " 2" or "+2", and wrap 4294967296 to 0).
    bool numeric = true;
    std::uint64_t n = 0;
    for (const char* z = zone; *z && numeric; ++z) {
      if (*z < '0' || *z > '9') numeric = false;
      else if ((n = n * 10 + static_cast<unsigned>(*z - '0')) > UINT32_MAX) return std::nullopt;
    }
    if (numeric) {
      scope = static_cast<std::uint32_t>(n);
    } else {
      scope = ::if_nametoindex(zone);
      if (scope == 0) return std::nullopt;
    }
  }
  if (::inet_pton(AF_INET6, buf, &a.u_.in6.sin6_addr) == 1) {
    a.u_.in6.sin6_family = AF_INET6;
    a.u_.in6.sin6_port = htons(port);
    a.u_.in6.sin6_scope_id = scope;
    a.size_ = sizeof(sockaddr_in6);
    return a;
  }
  return std::nullopt;
}

SocketAddress SocketAddress::parse(std::string_view host, std::uint16_t port) {
  if (auto a = try_parse(host, port)) return *a;
  throw std::invalid_argument("not a numeric IPv4 or IPv6 address: '" + std::string(host) + "'");
}

SocketAddress SocketAddress::parse_endpoint(std::string_view text) {
  if (!text.empty() && (text.front() == '@' || text.find('/') != std::string_view::npos)) return unix_path(text);
  auto bad = [&](const char* why) {
    return std::invalid_argument("bad endpoint '" + std::string(text) + "': " + why + " (expected HOST:PORT or [V6]:PORT)");
  };
  std::string_view host, port;
  if (!text.empty() && text.front() == '[') {
    std::size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') throw bad("missing ]:");
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) throw bad("missing port");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) throw bad("IPv6 hosts need brackets");
  }
  if (port.empty() || port.size() > 5) throw bad("bad port");
  unsigned long p = 0;
  for (char c : port) {
    if (c < '0' || c > '9') throw bad("bad port");
    p = p * 10 + static_cast<unsigned long>(c - '0');
  }
  if (p > 65535) throw bad("port out of range");
  auto a = try_parse(host, static_cast<std::uint16_t>(p));
  if (!a) throw bad("host is not a numeric address");
  return *a;
}

SocketAddress SocketAddress::unix_path(std::string_view path) {
  SocketAddress a;
  a.u_.un.sun_family = AF_UNIX;
  const bool abstract = !path.empty() && path.front() == '@';
  // A filesystem path needs its terminating NUL inside sun_path; an abstract
  // name is counted by length and has none.
  if (abstract && path.size() > sizeof(a.u_.un.sun_path)) {
    throw std::invalid_argument("abstract Unix socket name must be at most " +
                                std::to_string(sizeof(a.u_.un.sun_path)) + " bytes with its '@': '" +
                                std::string(path) + "'");
  }
  if (path.empty() || path.size() + (abstract ? 0 : 1) > sizeof(a.u_.un.sun_path)) {
    throw std::invalid_argument("Unix socket path must be 1.." + std::to_string(sizeof(a.u_.un.sun_path) - 1) +
                                " bytes: '" + std::string(path) + "'");
  }
  // The kernel would end a filesystem path at its first NUL (another file).
  if (!abstract && path.find('\0') != std::string_view::npos) {
    throw std::invalid_argument("Unix socket path contains a NUL byte");
  }
  std::memcpy(a.u_.un.sun_path, path.data(), path.size());
  if (abstract) a.u_.un.sun_path[0] = '\0';
  a.size_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + (abstract ? 0 : 1));
  return a;
}

SocketAddress SocketAddress::any(int family, std::uint16_t port) {
  if (family == AF_INET) return parse("0.0.0.0", port);
  if (family == AF_INET6) return parse("::", port);
  throw std::invalid_argument("SocketAddress::any: family must be AF_INET or AF_INET6");
}

SocketAddress SocketAddress::loopback(int family, std::uint16_t port) {
  if (family == AF_INET) return parse("127.0.0.1", port);
  if (family == AF_INET6) return parse("::1", port);
  throw std::invalid_argument("SocketAddress::loopback: family must be AF_INET or AF_INET6");
}

SocketAddress SocketAddress::from_sockaddr(const sockaddr* sa, socklen_t len) noexcept {
  SocketAddress a;
  if (!sa) return a;
  if (len > capacity()) len = capacity();
  std::memcpy(&a.u_, sa, len);
  a.size_ = len;
  return a;
}

std::uint16_t SocketAddress::port() const noexcept {
  switch (family()) {
    case AF_INET: return ntohs(u_.in4.sin_port);
    case AF_INET6: return ntohs(u_.in6.sin6_port);
    default: return 0;
  }
}

void SocketAddress::set_port(std::uint16_t port) noexcept {
  if (family() == AF_INET) u_.in4.sin_port = htons(port);
  else if (family() == AF_INET6) u_.in6.sin6_port = htons(port);
}

std::string SocketAddress::host() const {
  char buf[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
  switch (family()) {
    case AF_INET:
      ::inet_ntop(AF_INET, &u_.in4.sin_addr, buf, sizeof buf);
      return buf;
    case AF_INET6: {
      ::inet_ntop(AF_INET6, &u_.in6.sin6_addr, buf, sizeof buf);
      std::string s = buf;
      if (u_.in6.sin6_scope_id != 0) s += "%" + std::to_string(u_.in6.sin6_scope_id);
      return s;
    }
    case AF_UNIX: {
      // An unnamed socket reports only the family; an abstract one starts with NUL.
      std::size_t n = size_ > offsetof(sockaddr_un, sun_path) ? size_ - offsetof(sockaddr_un, sun_path) : 0;
      if (n == 0) return {};
      if (u_.un.sun_path[0] == '\0') return "@" + std::string(u_.un.sun_path + 1, n - 1);
      return std::string(u_.un.sun_path, strnlen(u_.un.sun_path, n));
    }
    default:
      return {};
  }
}

std::string SocketAddress::to_string() const {
  switch (family()) {
    case AF_INET: return host() + ":" + std::to_string(port());
    case AF_INET6: return "[" + host() + "]:" + std::to_string(port());
    case AF_UNIX: {
      std::string h = host();
      return h.empty() ? "<unnamed unix socket>" : h;
    }
    case AF_UNSPEC: return "<no address>";
    default: return "<address family " + std::to_string(family()) + ">";
  }
}

bool operator==(const SocketAddress& a, const SocketAddress& b) noexcept {
  if (a.family() != b.family()) return false;
  switch (a.family()) {
    case AF_UNSPEC: return true;
    case AF_INET:
      return a.u_.in4.sin_port == b.u_.in4.sin_port && a.u_.in4.sin_addr.s_addr == b.u_.in4.sin_addr.s_addr;
    case AF_INET6:
      return a.u_.in6.sin6_port == b.u_.in6.sin6_port && a.u_.in6.sin6_scope_id == b.u_.in6.sin6_scope_id &&
             std::memcmp(&a.u_.in6.sin6_addr, &b.u_.in6.sin6_addr, sizeof(in6_addr)) == 0;
    default:
      return a.size_ == b.size_ && std::memcmp(&a.u_, &b.u_, a.size_) == 0;
  }
}

}  // namespace corio
