#include "net/http/url.hpp"

#include <arpa/inet.h>

#include <cstring>

namespace corio::http {

namespace {

bool is_alpha(unsigned char c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }
bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
bool is_hex(unsigned char c) { return is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'); }
int hex_value(unsigned char c) { return is_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10; }
bool is_unreserved(unsigned char c) {
  return is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_' || c == '~';
}
bool is_sub_delim(unsigned char c) { return std::strchr("!$&'()*+,;=", c) != nullptr && c != 0; }

enum class Part { userinfo, host, path, query, fragment };

// What RFC 3986's grammar allows unescaped in each component.
bool allowed(Part p, unsigned char c) {
  if (is_unreserved(c) || is_sub_delim(c)) return true;
  switch (p) {
    case Part::userinfo: return c == ':';
    case Part::host: return false;
    case Part::path: return c == ':' || c == '@' || c == '/';
    case Part::query:
    case Part::fragment: return c == ':' || c == '@' || c == '/' || c == '?';
  }
  return false;
}

constexpr char kHex[] = "0123456789ABCDEF";

void append_escaped(std::string& out, unsigned char c) {
  out += '%';
  out += kHex[c >> 4];
  out += kHex[c & 15];
}

[[noreturn]] void fail(std::string_view url, const std::string& why) {
  throw UrlError("invalid URL '" + std::string(url) + "': " + why);
}

// Normalises one component: characters not allowed there are percent-encoded
// (a '%' that starts no valid escape included), valid escapes get upper-case
// hex, and escapes of unreserved characters are decoded (RFC 3986 §6.2.2).
std::string encode_component(std::string_view s, Part p) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c == '%' && i + 2 < s.size() && is_hex(static_cast<unsigned char>(s[i + 1])) &&
        is_hex(static_cast<unsigned char>(s[i + 2]))) {
      auto v = static_cast<unsigned char>(hex_value(static_cast<unsigned char>(s[i + 1])) * 16 +
                                          hex_value(static_cast<unsigned char>(s[i + 2])));
      if (is_unreserved(v)) {
        out += static_cast<char>(v);
      } else {
        append_escaped(out, v);
      }
      i += 2;
    } else if (c != '%' && allowed(p, c)) {
      out += static_cast<char>(c);
    } else {
      append_escaped(out, c);
    }
  }
  return out;
}

bool valid_scheme(std::string_view s) {
  if (s.empty() || !is_alpha(static_cast<unsigned char>(s[0]))) return false;
  for (unsigned char c : s) {
    if (!is_alpha(c) && !is_digit(c) && c != '+' && c != '-' && c != '.') return false;
  }
  return true;
}

std::uint16_t default_port(std::string_view scheme) {
  if (scheme == "http" || scheme == "ws") return 80;
  if (scheme == "https" || scheme == "wss") return 443;
  return 0;
}

bool needs_host(std::string_view scheme) { return default_port(scheme) != 0; }

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c | 0x20);
  }
  return out;
}

// Drops leading/trailing C0 controls and spaces; removes tabs and newlines.
std::string clean_input(std::string_view s) {
  while (!s.empty() && static_cast<unsigned char>(s.front()) <= 0x20) s.remove_prefix(1);
  while (!s.empty() && static_cast<unsigned char>(s.back()) <= 0x20) s.remove_suffix(1);
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c != '\t' && c != '\n' && c != '\r') out += c;
  }
  return out;
}

}  // namespace

// A URI reference split per RFC 3986 Appendix B, each part still as written.
struct UrlParts {
  std::optional<std::string> scheme;
  std::optional<std::string> authority;
  std::string path;
  std::optional<std::string> query;
  std::optional<std::string> fragment;

  static UrlParts split(std::string_view s) {
    UrlParts r;
    std::size_t i = s.find_first_of(":/?#");
    if (i != std::string_view::npos && s[i] == ':' && valid_scheme(s.substr(0, i))) {
      r.scheme = lower(s.substr(0, i));
      s.remove_prefix(i + 1);
    }
    if (s.size() >= 2 && s[0] == '/' && s[1] == '/') {
      s.remove_prefix(2);
      std::size_t end = s.find_first_of("/?#");
      r.authority = std::string(s.substr(0, end));
      s.remove_prefix(end == std::string_view::npos ? s.size() : end);
    }
    std::size_t hash = s.find('#');
    if (hash != std::string_view::npos) {
      r.fragment = std::string(s.substr(hash + 1));
      s = s.substr(0, hash);
    }
    std::size_t q = s.find('?');
    if (q != std::string_view::npos) {
      r.query = std::string(s.substr(q + 1));
      s = s.substr(0, q);
    }
    r.path = std::string(s);
    return r;
  }

  // Builds a Url from absolute parts (scheme present); `input` names the URL in errors.
  Url build(std::string_view input) const {
    Url u;
    if (!scheme) fail(input, "no scheme (an absolute URL starts with e.g. \"http://\")");
    u.scheme_ = *scheme;
    if (authority) {
      u.has_authority_ = true;
      parse_authority(u, *authority, input);
    }
    if (needs_host(u.scheme_) && u.host_.empty()) fail(input, "missing host");
    u.path_ = encode_component(path, Part::path);
    if (u.has_authority_) {
      u.path_ = remove_dot_segments(u.path_);
      if (!u.path_.empty() && u.path_[0] != '/') u.path_.insert(0, 1, '/');
    }
    if (u.path_.empty() && needs_host(u.scheme_)) u.path_ = "/";
    if (query) u.query_ = encode_component(*query, Part::query);
    if (fragment) u.fragment_ = encode_component(*fragment, Part::fragment);
    return u;
  }

  static void parse_authority(Url& u, std::string_view a, std::string_view input) {
    std::size_t at = a.rfind('@');
    if (at != std::string_view::npos) {
      u.userinfo_ = encode_component(a.substr(0, at), Part::userinfo);
      a.remove_prefix(at + 1);
    }
    std::string_view host = a, port;
    if (!a.empty() && a[0] == '[') {
      std::size_t close = a.find(']');
      if (close == std::string_view::npos) fail(input, "unterminated '[' in host");
      std::string v6(a.substr(1, close - 1));
      if (!v6.empty() && (v6[0] == 'v' || v6[0] == 'V')) fail(input, "IPvFuture addresses are not supported");
      in6_addr addr{};
      if (inet_pton(AF_INET6, v6.c_str(), &addr) != 1) fail(input, "invalid IPv6 address '" + v6 + "'");
      char text[INET6_ADDRSTRLEN];
      inet_ntop(AF_INET6, &addr, text, sizeof text);  // canonical form (RFC 5952)
      u.host_ = text;
      u.ipv6_ = true;
      std::string_view rest = a.substr(close + 1);
      if (!rest.empty()) {
        if (rest[0] != ':') fail(input, "unexpected text after ']' in host");
        port = rest.substr(1);
      }
    } else {
      std::size_t colon = a.rfind(':');
      if (colon != std::string_view::npos) {
        host = a.substr(0, colon);
        port = a.substr(colon + 1);
      }
      for (unsigned char c : host) {
        if (c >= 0x80) fail(input, "non-ASCII host name (IDNA is not supported: use its xn-- form)");
        if (c != '%' && !allowed(Part::host, c)) {
          std::string shown = c < 0x20 || c == 0x7f ? "\\x" + std::string(1, kHex[c >> 4]) + kHex[c & 15]
                                                    : std::string(1, static_cast<char>(c));
          fail(input, "invalid character '" + shown + "' in host");
        }
      }
      u.host_ = lower(encode_component(host, Part::host));
    }
    if (!port.empty()) {
      unsigned long v = 0;
      for (unsigned char c : port) {
        if (!is_digit(c)) fail(input, "invalid port '" + std::string(port) + "'");
        v = v * 10 + (c - '0');
        if (v > 65535) fail(input, "port " + std::string(port) + " is out of range");
      }
      if (v != default_port(u.scheme_) || default_port(u.scheme_) == 0) u.port_ = static_cast<std::uint16_t>(v);
    }
  }
};

Url Url::parse(std::string_view text) {
  std::string clean = clean_input(text);
  return UrlParts::split(clean).build(text);
}

std::optional<Url> Url::try_parse(std::string_view text) noexcept {
  try {
    return parse(text);
  } catch (...) {
    return std::nullopt;
  }
}

Url Url::resolve(std::string_view reference) const {
  std::string clean = clean_input(reference);
  UrlParts r = UrlParts::split(clean);
  // RFC 3986 §5.2.2 ("strict"), except that "http:g" against an http base
  // is taken as relative, as browsers and §5.4.2's backward-compatible
  // parsers do.
  if (r.scheme && *r.scheme == scheme_ && !r.authority && needs_host(scheme_)) r.scheme.reset();
  UrlParts t;
  if (r.scheme) {
    t = std::move(r);
  } else {
    t.scheme = scheme_;
    t.fragment = std::move(r.fragment);
    if (r.authority) {
      t.authority = std::move(r.authority);
      t.path = std::move(r.path);
      t.query = std::move(r.query);
    } else {
      // Keep the base's authority as written after normalisation.
      if (has_authority_) {
        std::string a = userinfo_.empty() ? "" : userinfo_ + "@";
        a += ipv6_ ? "[" + host_ + "]" : host_;
        if (port_) a += ":" + std::to_string(*port_);
        t.authority = std::move(a);
      }
      if (r.path.empty()) {
        t.path = path_;
        t.query = r.query ? std::move(r.query) : query_;
      } else {
        if (r.path[0] == '/') {
          t.path = std::move(r.path);
        } else if (has_authority_ && path_.empty()) {
          t.path = "/" + r.path;  // §5.2.3 merge
        } else {
          std::size_t slash = path_.rfind('/');
          t.path = (slash == std::string::npos ? std::string() : path_.substr(0, slash + 1)) + r.path;
        }
        t.path = remove_dot_segments(t.path);
        t.query = std::move(r.query);
      }
    }
  }
  return t.build(reference);
}

std::uint16_t Url::port() const noexcept { return port_ ? *port_ : default_port(scheme_); }

std::string Url::host_header() const {
  std::string h = ipv6_ ? "[" + host_ + "]" : host_;
  if (port_) h += ":" + std::to_string(*port_);
  return h;
}

std::string Url::target() const {
  std::string t = path_.empty() ? "/" : path_;
  if (query_) t += "?" + *query_;
  return t;
}

std::string Url::origin() const { return scheme_ + "://" + host_header(); }

Url Url::without_fragment() const {
  Url u = *this;
  u.fragment_.reset();
  return u;
}

Url Url::without_userinfo() const {
  Url u = *this;
  u.userinfo_.clear();
  return u;
}

std::string Url::str() const {
  if (scheme_.empty()) return {};
  std::string s = scheme_ + ":";
  if (has_authority_) {
    s += "//";
    if (!userinfo_.empty()) s += userinfo_ + "@";
    s += host_header();
  } else if (path_.size() >= 2 && path_[0] == '/' && path_[1] == '/') {
    s += "/.";  // §5.3: a path starting "//" would read as an authority
  }
  s += path_;
  if (query_) s += "?" + *query_;
  if (fragment_) s += "#" + *fragment_;
  return s;
}

std::string remove_dot_segments(std::string_view in) {
  // §5.2.4, with the output as a stack of segments ("/x" pieces).
  std::string out;
  while (!in.empty()) {
    if (in.substr(0, 3) == "../") {
      in.remove_prefix(3);
    } else if (in.substr(0, 2) == "./") {
      in.remove_prefix(2);
    } else if (in.substr(0, 3) == "/./") {
      in.remove_prefix(2);
    } else if (in == "/.") {
      in = "/";
    } else if (in.substr(0, 4) == "/../" || in == "/..") {
      in = in.size() == 3 ? std::string_view("/") : in.substr(3);
      std::size_t last = out.rfind('/');
      out.resize(last == std::string::npos ? 0 : last);
    } else if (in == "." || in == "..") {
      in = {};
    } else {
      std::size_t next = in.find('/', in[0] == '/' ? 1 : 0);
      std::size_t n = next == std::string_view::npos ? in.size() : next;
      out.append(in.substr(0, n));
      in.remove_prefix(n);
    }
  }
  return out;
}

std::string percent_decode(std::string_view s, bool plus_as_space) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size() || !is_hex(static_cast<unsigned char>(s[i + 1])) ||
          !is_hex(static_cast<unsigned char>(s[i + 2]))) {
        throw UrlError("malformed percent-escape in '" + std::string(s) + "'");
      }
      out += static_cast<char>(hex_value(static_cast<unsigned char>(s[i + 1])) * 16 +
                               hex_value(static_cast<unsigned char>(s[i + 2])));
      i += 2;
    } else if (c == '+' && plus_as_space) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace corio::http
