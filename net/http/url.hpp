#pragma once
// Url: an absolute URL, parsed and resolved per RFC 3986, for the HTTP client
// and the crawler.
//
//   Url base = Url::parse("http://Example.com:80/a/b/c?x#frag");
//   base.host()                 // "example.com"  (lower-cased)
//   base.port()                 // 80             (effective port: explicit or default)
//   base.target()               // "/a/b/c?x"     (origin-form request target)
//   base.resolve("../d").str()  // "http://example.com/a/d"
//
// Invariants of a Url object:
// - scheme is non-empty (except in an empty Url), lower-case, ALPHA *( ALPHA / DIGIT / "+" / "-" / "." );
// - host is lower-case; an IPv6 literal is kept without brackets (is_ipv6()),
//   http/https/ws/wss URLs always have a non-empty host;
// - every component holds only characters RFC 3986 allows there: what the
//   input had that is not allowed (spaces, non-ASCII bytes, '"', '<', …) was
//   percent-encoded on the way in, as browsers do with links in the wild, and
//   existing %XX escapes are kept (their hex upper-cased);
// - the path has no dot segments once the URL has an authority ("/a/./b/../c"
//   → "/a/c"), and an http(s) URL's empty path is "/".
// Everything else of the input is preserved: str() of a parsed URL differs from
// the input only by those normalisations, and by a default port being dropped
// ("http://h:80/" → "http://h/").
//
// Errors: UrlError (a ValueError) with the URL and what is wrong in it
// ("invalid URL 'http://exa mple.com/': invalid character ' ' in host").
//
// Not done: IDNA (a non-ASCII host is refused with a message saying so; pass
// its punycode "xn--" form instead), and the WHATWG URL standard's special
// cases beyond the lenient encoding described above (backslashes are encoded,
// not treated as slashes).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "coro/errors.hpp"

namespace corio::http {

class UrlError : public ValueError {
 public:
  using ValueError::ValueError;
};

class Url {
 public:
  // An empty URL (every component empty, str() == ""): a placeholder to
  // assign a parsed one to.
  Url() = default;

  // Parses an absolute URL (it must have a scheme). Leading and trailing
  // spaces and control characters are dropped, tabs and newlines inside are
  // removed (as browsers do with href values). Throws UrlError.
  static Url parse(std::string_view text);
  // Like parse, but nullopt instead of an exception.
  static std::optional<Url> try_parse(std::string_view text) noexcept;

  // The URL that `reference` (absolute, or relative to this one: "../x",
  // "//host/p", "?q", "#f", "") denotes; RFC 3986 §5.2. Throws UrlError when
  // the reference is malformed.
  Url resolve(std::string_view reference) const;

  const std::string& scheme() const noexcept { return scheme_; }
  // "user:password" before the '@', as written (percent-encoded); empty if none.
  const std::string& userinfo() const noexcept { return userinfo_; }
  const std::string& host() const noexcept { return host_; }
  bool is_ipv6() const noexcept { return ipv6_; }
  bool has_authority() const noexcept { return has_authority_; }
  // The port written in the URL, if any (a default port is dropped at parse).
  std::optional<std::uint16_t> explicit_port() const noexcept { return port_; }
  // The port to connect to: the explicit one, else the scheme's default
  // (http 80, https 443, ws 80, wss 443); 0 for a scheme without one.
  std::uint16_t port() const noexcept;
  const std::string& path() const noexcept { return path_; }
  const std::optional<std::string>& query() const noexcept { return query_; }
  const std::optional<std::string>& fragment() const noexcept { return fragment_; }

  // "https" (or "wss").
  bool is_secure() const noexcept { return scheme_ == "https" || scheme_ == "wss"; }
  // For the Host header: host, "[v6]" for IPv6, ":port" only when not the default.
  std::string host_header() const;
  // The origin-form request target: path (at least "/") and "?query".
  std::string target() const;
  // scheme "://" host_header — two URLs with equal origins share connections.
  std::string origin() const;

  // The same URL without its fragment (crawlers de-duplicate on this).
  Url without_fragment() const;
  // The same URL without "user:password@" (what may be shown or logged).
  Url without_userinfo() const;
  // The URL as text (RFC 3986 §5.3 recomposition).
  std::string str() const;

  friend bool operator==(const Url& a, const Url& b) { return a.str() == b.str(); }

 private:
  std::string scheme_;
  std::string userinfo_;
  std::string host_;
  bool ipv6_ = false;
  bool has_authority_ = false;
  std::optional<std::uint16_t> port_;
  std::string path_;
  std::optional<std::string> query_;
  std::optional<std::string> fragment_;

  friend struct UrlParts;
};

// RFC 3986 §5.2.4: "/a/b/../c/./d" → "/a/c/d". Exposed for tests and for
// servers normalising a request path.
std::string remove_dot_segments(std::string_view path);

// Percent-decodes `s` ("%2Fa%20b" → "/a b"). Throws UrlError on a malformed
// escape ("%G1", a lone '%'). plus_as_space: also '+' → ' ' (form data).
std::string percent_decode(std::string_view s, bool plus_as_space = false);

}  // namespace corio::http
