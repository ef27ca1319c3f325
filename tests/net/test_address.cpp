#include "net/address.hpp"

#include <doctest/doctest.h>

#include <stdexcept>

using corio::SocketAddress;

TEST_CASE("numeric IPv4 and IPv6 hosts parse and print as host:port") {
  auto v4 = SocketAddress::parse("127.0.0.1", 80);
  CHECK(v4.is_ipv4());
  CHECK(v4.family() == AF_INET);
  CHECK(v4.port() == 80);
  CHECK(v4.host() == "127.0.0.1");
  CHECK(v4.to_string() == "127.0.0.1:80");
  CHECK(v4.size() == sizeof(sockaddr_in));

  auto v6 = SocketAddress::parse("::1", 80);
  CHECK(v6.is_ipv6());
  CHECK(v6.host() == "::1");
  CHECK(v6.to_string() == "[::1]:80");
  CHECK(v6.size() == sizeof(sockaddr_in6));

  CHECK(SocketAddress::parse("2001:db8::1", 443).to_string() == "[2001:db8::1]:443");
  CHECK(SocketAddress::parse("::ffff:10.0.0.1", 1).to_string() == "[::ffff:10.0.0.1]:1");
  CHECK(SocketAddress::parse("fe80::1%1", 9).to_string() == "[fe80::1%1]:9");
  CHECK(SocketAddress::parse("fe80::1%lo", 9).host() == "fe80::1%1");
}

TEST_CASE("names and malformed hosts are rejected with the text in the message") {
  CHECK_FALSE(SocketAddress::try_parse("localhost", 80));
  CHECK_FALSE(SocketAddress::try_parse("", 80));
  CHECK_FALSE(SocketAddress::try_parse("1.2.3", 80));
  CHECK_FALSE(SocketAddress::try_parse("1.2.3.256", 80));
  CHECK_FALSE(SocketAddress::try_parse("::1::2", 80));
  CHECK_FALSE(SocketAddress::try_parse("fe80::1%", 80));
  CHECK_FALSE(SocketAddress::try_parse("fe80::1%no-such-interface", 80));
  CHECK_FALSE(SocketAddress::try_parse(std::string(200, '1'), 80));
  // inet_pton stops at a NUL: the text after it must not be ignored.
  CHECK_FALSE(SocketAddress::try_parse(std::string_view("127.0.0.1\0junk", 14), 80));
  CHECK_FALSE(SocketAddress::try_parse(std::string_view("::1\0x", 5), 80));
  // A numeric zone is digits that fit 32 bits: no sign, no blank, no wrap to 0.
  CHECK_FALSE(SocketAddress::try_parse("fe80::1%4294967296", 80));
  CHECK_FALSE(SocketAddress::try_parse("fe80::1%-1", 80));
  CHECK_FALSE(SocketAddress::try_parse("fe80::1%+1", 80));
  CHECK_FALSE(SocketAddress::try_parse("fe80::1% 1", 80));
  CHECK(SocketAddress::parse("fe80::1%4294967295", 9).to_string() == "[fe80::1%4294967295]:9");
  CHECK_THROWS_WITH_AS(SocketAddress::parse("example.com", 80), "not a numeric IPv4 or IPv6 address: 'example.com'",
                       std::invalid_argument);
}

TEST_CASE("endpoints parse from HOST:PORT, [V6]:PORT and Unix paths") {
  CHECK(SocketAddress::parse_endpoint("10.1.2.3:8080") == SocketAddress::parse("10.1.2.3", 8080));
  CHECK(SocketAddress::parse_endpoint("[::1]:0") == SocketAddress::parse("::1", 0));
  CHECK(SocketAddress::parse_endpoint("/tmp/x.sock").is_unix());
  CHECK(SocketAddress::parse_endpoint("@abstract").to_string() == "@abstract");
  for (const char* bad : {"10.1.2.3", "10.1.2.3:", "10.1.2.3:65536", "10.1.2.3:8x", "::1:80", "[::1]80", "[::1",
                          "host:80", ":80"}) {
    CAPTURE(bad);
    CHECK_THROWS_AS(SocketAddress::parse_endpoint(bad), std::invalid_argument);
  }
}

TEST_CASE("Unix addresses keep their path, abstract names print with @") {
  auto a = SocketAddress::unix_path("/run/corio.sock");
  CHECK(a.is_unix());
  CHECK(a.port() == 0);
  CHECK(a.host() == "/run/corio.sock");
  CHECK(a.to_string() == "/run/corio.sock");
  CHECK(a.size() == offsetof(sockaddr_un, sun_path) + sizeof("/run/corio.sock"));

  auto abs = SocketAddress::unix_path("@corio-test");
  CHECK(abs.data()->sa_family == AF_UNIX);
  CHECK(reinterpret_cast<const sockaddr_un*>(abs.data())->sun_path[0] == '\0');
  CHECK(abs.size() == offsetof(sockaddr_un, sun_path) + 11);
  CHECK(abs.to_string() == "@corio-test");

  CHECK_THROWS_AS(SocketAddress::unix_path(""), std::invalid_argument);
  CHECK_THROWS_AS(SocketAddress::unix_path(std::string(108, 'a')), std::invalid_argument);
  CHECK_NOTHROW(SocketAddress::unix_path(std::string(107, 'a')));
  // A filesystem path with a NUL would name another file; an abstract name may hold one.
  CHECK_THROWS_WITH_AS(SocketAddress::unix_path(std::string_view("/tmp/a\0b", 8)),
                       "Unix socket path contains a NUL byte", std::invalid_argument);
  CHECK(SocketAddress::unix_path(std::string_view("@a\0b", 4)).size() == offsetof(sockaddr_un, sun_path) + 4);
  // An abstract name has no terminating NUL: 108 bytes with its '@' fit, and the message says so.
  CHECK_NOTHROW(SocketAddress::unix_path("@" + std::string(107, 'a')));
  CHECK_THROWS_WITH_AS(SocketAddress::unix_path("@" + std::string(108, 'a')),
                       doctest::Contains("abstract Unix socket name must be at most 108 bytes with its '@'"),
                       std::invalid_argument);

  // What the kernel reports for an unnamed (unbound) Unix socket: the family alone.
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  auto unnamed = SocketAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&un), sizeof(sa_family_t));
  CHECK(unnamed.is_unix());
  CHECK(unnamed.host().empty());
  CHECK(unnamed.to_string() == "<unnamed unix socket>");
}

TEST_CASE("the empty address, wildcard and loopback helpers, and port changes") {
  SocketAddress e;
  CHECK(e.empty());
  CHECK(e.family() == AF_UNSPEC);
  CHECK(e.to_string() == "<no address>");
  CHECK(SocketAddress::any(AF_INET, 5).to_string() == "0.0.0.0:5");
  CHECK(SocketAddress::any(AF_INET6, 5).to_string() == "[::]:5");
  CHECK(SocketAddress::loopback(AF_INET6, 7).to_string() == "[::1]:7");
  CHECK_THROWS_AS(SocketAddress::any(AF_UNIX, 1), std::invalid_argument);
  auto a = SocketAddress::parse("127.0.0.1", 1);
  a.set_port(65535);
  CHECK(a.to_string() == "127.0.0.1:65535");
  CHECK(a != SocketAddress::parse("127.0.0.1", 1));
  CHECK(a != SocketAddress::parse("::ffff:127.0.0.1", 65535));
}
