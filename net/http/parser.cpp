#include "net/http/parser.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace corio::http {

namespace {

// RFC 9110 §5.6.2 tchar.
constexpr bool is_tchar(unsigned char c) noexcept {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
    case '-': case '.': case '^': case '_': case '`': case '|': case '~':
      return true;
    default:
      return false;
  }
}

struct CharTables {
  bool tchar[256];
  bool value[256];  // field-content bytes: HTAB, SP, VCHAR, obs-text
  bool vchar[256];  // request-target bytes: VCHAR
  bool path[256];   // request-target bytes before a query or fragment: VCHAR but '?' and '#'
  constexpr CharTables() : tchar(), value(), vchar(), path() {
    for (int c = 0; c < 256; ++c) {
      tchar[c] = is_tchar(static_cast<unsigned char>(c));
      value[c] = c == '\t' || (c >= 0x20 && c != 0x7f);
      vchar[c] = c > 0x20 && c < 0x7f;
      path[c] = vchar[c] && c != '?' && c != '#';
    }
  }
};
constexpr CharTables kChars;

inline bool ows(char c) noexcept { return c == ' ' || c == '\t'; }

// Sixteen bytes at a time where SSE2 has them (every x86-64): the length of
// the run of bytes at p that are field-content (HTAB, SP, VCHAR, obs-text;
// kChars.value), or of request-target path bytes (VCHAR but '?' and '#';
// kChars.path), within [p, end). The same verdicts as the tables, which
// finish what is left of fewer than 16 bytes.
inline std::size_t value_run(const unsigned char* p, const unsigned char* end) noexcept {
  const unsigned char* q = p;
#if defined(__SSE2__)
  for (; end - q >= 16; q += 16) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
    // Signed compares: obs-text (0x80-0xff) is negative, so "control" is 0 <= x < 0x20.
    const __m128i ctl = _mm_and_si128(_mm_cmpgt_epi8(x, _mm_set1_epi8(-1)), _mm_cmplt_epi8(x, _mm_set1_epi8(0x20)));
    const __m128i bad = _mm_or_si128(_mm_andnot_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('\t')), ctl),
                                     _mm_cmpeq_epi8(x, _mm_set1_epi8(0x7f)));
    if (const int m = _mm_movemask_epi8(bad)) return static_cast<std::size_t>(q - p) + __builtin_ctz(m);
  }
#endif
  while (q != end && kChars.value[*q]) ++q;
  return static_cast<std::size_t>(q - p);
}

inline std::size_t path_run(const unsigned char* p, const unsigned char* end) noexcept {
  const unsigned char* q = p;
#if defined(__SSE2__)
  for (; end - q >= 16; q += 16) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
    // VCHAR is 0x21-0x7e: signed, obs-text is negative and fails the first compare.
    const __m128i vchar = _mm_and_si128(_mm_cmpgt_epi8(x, _mm_set1_epi8(0x20)), _mm_cmplt_epi8(x, _mm_set1_epi8(0x7f)));
    const __m128i stop = _mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('?')), _mm_cmpeq_epi8(x, _mm_set1_epi8('#')));
    const int m = _mm_movemask_epi8(_mm_andnot_si128(stop, vchar)) ^ 0xffff;
    if (m) return static_cast<std::size_t>(q - p) + __builtin_ctz(m);
  }
#endif
  while (q != end && kChars.path[*q]) ++q;
  return static_cast<std::size_t>(q - p);
}

std::string_view trim(std::string_view v) noexcept {
  while (!v.empty() && ows(v.front())) v.remove_prefix(1);
  while (!v.empty() && ows(v.back())) v.remove_suffix(1);
  return v;
}

// Parses one field line (without its CRLF) into h. Returns nullptr or what is wrong.
const char* parse_field_line(std::string_view line, Header& h) noexcept {
  if (line.empty()) return "empty field line";
  if (ows(line[0])) return "obsolete line folding (a field line starting with whitespace)";
  std::size_t i = 0;
  while (i < line.size() && kChars.tchar[static_cast<unsigned char>(line[i])]) ++i;
  if (i == line.size()) return "field line without a colon";
  if (line[i] != ':') {
    if (ows(line[i])) return "whitespace between a field name and its colon";
    return "invalid character in a field name";
  }
  if (i == 0) return "empty field name";
  h.name = line.substr(0, i);
  std::string_view v = line.substr(i + 1);
  if (!valid_field_value(v)) {
    for (char c : v) {
      if (c == '\r') return "bare CR in a field value";
    }
    return "control character in a field value";
  }
  h.value = trim(v);
  return nullptr;
}

// Iterates the elements of a comma-separated list, trimmed; empty ones skipped.
template <class F>
bool for_each_element(std::string_view list, F&& f) {
  while (true) {
    std::size_t comma = list.find(',');
    std::string_view e = trim(list.substr(0, comma));
    if (!e.empty() && !f(e)) return false;
    if (comma == std::string_view::npos) return true;
    list.remove_prefix(comma + 1);
  }
}

// Content-Length (a list of equal values is tolerated, RFC 9110 §8.6).
// Returns false if malformed; *value keeps the first one seen, *mismatch
// is set when values differ (from each other or from a previous field).
bool parse_content_length(std::string_view v, bool& seen, std::uint64_t& value, bool& mismatch) {
  bool any = false;
  bool ok = for_each_element(v, [&](std::string_view e) {
    if (e.size() > 19) return false;  // past 10^19 - 1 it could overflow
    std::uint64_t n = 0;
    for (char c : e) {
      if (c < '0' || c > '9') return false;
      n = n * 10 + static_cast<std::uint64_t>(c - '0');
    }
    if (seen && n != value) mismatch = true;
    seen = true;
    value = n;
    any = true;
    return true;
  });
  return ok && any;
}

struct TeInfo {
  int codings = 0;
  bool chunked_last = false;
  bool chunked_twice = false;
  bool chunked_not_last = false;
  bool malformed = false;
};

void parse_transfer_encoding(std::string_view v, TeInfo& te) {
  bool any = false;
  for_each_element(v, [&](std::string_view e) {
    any = true;
    std::string_view name = trim(e.substr(0, e.find(';')));
    for (char c : name) {
      if (!kChars.tchar[static_cast<unsigned char>(c)]) {
        te.malformed = true;
        return false;
      }
    }
    if (name.empty()) {
      te.malformed = true;
      return false;
    }
    if (te.chunked_last) te.chunked_not_last = true;  // something follows chunked
    bool chunked = iequals(name, "chunked");
    if (chunked && (te.chunked_last || te.chunked_not_last)) te.chunked_twice = true;
    te.chunked_last = chunked;
    ++te.codings;
    return true;
  });
  if (!any) te.malformed = true;
}

bool valid_port(std::string_view p) noexcept {
  if (p.size() > 5) return false;
  for (char c : p)
    if (c < '0' || c > '9') return false;
  return true;
}

// reg-name bytes of a Host (RFC 3986 unreserved, sub-delims; '%' starts a
// pct-encoded triple, checked apart), as a table: every request's Host is checked.
struct HostChars {
  bool ok[256];
  constexpr HostChars() : ok() {
    for (int c = 0; c < 256; ++c) {
      ok[c] = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
      switch (c) {
        case '-': case '.': case '_': case '~': case '!': case '$': case '&': case '\'':
        case '(': case ')': case '*': case '+': case ',': case ';': case '=':
          ok[c] = true;
          break;
        default:
          break;
      }
    }
  }
};
constexpr HostChars kHostChars;

#if defined(__SSE2__)
// Per byte of a 16-byte block: bit i of .ok for a letter, digit, '-', '.' or
// ':', of .colon for ':', of .digit for a digit.
struct HostMasks {
  unsigned ok, colon, digit;
};
inline HostMasks host_block(const char* s) noexcept {
  const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s));
  // Signed compares: bytes >= 0x80 are negative and fail every range.
  const __m128i l = _mm_or_si128(x, _mm_set1_epi8(0x20));  // only letters land in 'a'..'z'
  const __m128i alpha = _mm_and_si128(_mm_cmpgt_epi8(l, _mm_set1_epi8('a' - 1)), _mm_cmplt_epi8(l, _mm_set1_epi8('z' + 1)));
  // '-' '.' '/' '0'-'9' ':' are 0x2d-0x3a; '/' is not a host byte.
  const __m128i range = _mm_and_si128(_mm_cmpgt_epi8(x, _mm_set1_epi8(0x2c)), _mm_cmplt_epi8(x, _mm_set1_epi8(0x3b)));
  const __m128i ok = _mm_or_si128(alpha, _mm_andnot_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('/')), range));
  const __m128i dig = _mm_and_si128(_mm_cmpgt_epi8(x, _mm_set1_epi8('0' - 1)), _mm_cmplt_epi8(x, _mm_set1_epi8('9' + 1)));
  return {static_cast<unsigned>(_mm_movemask_epi8(ok)),
          static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(x, _mm_set1_epi8(':')))),
          static_cast<unsigned>(_mm_movemask_epi8(dig))};
}

// The usual Host, up to 32 bytes, in one or two blocks: letters, digits, '-'
// and '.', then optionally ':' and a port. 1 valid, 0 invalid (the table loop
// in valid_host gives the same verdicts), -1 anything else (other bytes,
// longer, or fewer than 16 readable bytes per block), left to that loop.
inline int host_fast(const char* s, std::size_t n, const char* readable_end) noexcept {
  if (n > 32 || !readable_end || static_cast<std::size_t>(readable_end - s) < (n > 16 ? 32u : 16u)) return -1;
  HostMasks m = host_block(s);
  if (n > 16) {
    const HostMasks hi = host_block(s + 16);
    m.ok |= hi.ok << 16;
    m.colon |= hi.colon << 16;
    m.digit |= hi.digit << 16;
  }
  const unsigned lanes = n == 32 ? ~0u : (1u << n) - 1;
  if ((m.ok & lanes) != lanes) return -1;
  const unsigned colon = m.colon & lanes;
  if (!colon) return 1;  // a name (not empty: the caller checked)
  const int k = __builtin_ctz(colon);
  if (k == 0) return 0;                                     // no name before the ':'
  if (n - static_cast<std::size_t>(k) - 1 > 5) return 0;  // a port of more than five digits
  const unsigned port = k == 31 ? 0u : lanes & ~((2u << k) - 1);  // the bytes after the first ':'
  return (m.digit & port) == port ? 1 : 0;                        // a second ':' is not a digit
}
#endif

inline int hex_digit(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// What is inside the brackets of an IP-literal (RFC 3986 §3.2.2): an
// IPv6address, or an IPvFuture ("v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )).
bool valid_ip_literal(std::string_view a) noexcept {
  if (a.empty()) return false;
  if (a[0] == 'v' || a[0] == 'V') {
    std::size_t i = 1;
    while (i < a.size() && hex_digit(a[i]) >= 0) ++i;
    if (i == 1 || i + 1 >= a.size() || a[i] != '.') return false;
    for (char c : a.substr(i + 1))
      if (!kHostChars.ok[static_cast<unsigned char>(c)] && c != ':') return false;
    return true;
  }
  char text[INET6_ADDRSTRLEN];
  if (a.size() >= sizeof text) return false;
  std::memcpy(text, a.data(), a.size());
  text[a.size()] = '\0';
  in6_addr addr;
  return inet_pton(AF_INET6, text, &addr) == 1;
}

// Host = uri-host [ ":" port ] (RFC 9110 §7.2); empty is allowed.
// readable_end: how far past h bytes may be read (SSE2 loads), or nullptr.
bool valid_host(std::string_view h, const char* readable_end = nullptr) noexcept {
  if (h.empty()) return true;
#if defined(__SSE2__)
  if (const int v = host_fast(h.data(), h.size(), readable_end); v >= 0) return v == 1;
#endif
  if (h[0] == '[') {
    std::size_t close = h.find(']');
    if (close == std::string_view::npos || !valid_ip_literal(h.substr(1, close - 1))) return false;
    std::string_view rest = h.substr(close + 1);
    if (rest.empty()) return true;
    return rest[0] == ':' && valid_port(rest.substr(1));
  }
  // One pass: the name up to the first ':' (which is not a reg-name byte),
  // then the port.
  const auto* p = reinterpret_cast<const unsigned char*>(h.data());
  const auto* const e = p + h.size();
  const auto* q = p;
  // Four at a time (one branch per four bytes), then one by one.
  while (e - q >= 4 && (kHostChars.ok[q[0]] & kHostChars.ok[q[1]] & kHostChars.ok[q[2]] & kHostChars.ok[q[3]])) q += 4;
  for (;;) {
    while (q != e && kHostChars.ok[*q]) ++q;
    if (e - q < 3 || q[0] != '%' || hex_digit(static_cast<char>(q[1])) < 0 || hex_digit(static_cast<char>(q[2])) < 0)
      break;
    q += 3;  // pct-encoded
  }
  if (q == p) return false;
  if (q == e) return true;
  if (*q != ':') return false;
  ++q;
  return valid_port({reinterpret_cast<const char*>(q), static_cast<std::size_t>(e - q)});
}

// Fixed-length compares, byte by byte: GCC calls the library's memcmp for a
// 3-byte std::memcmp, and string_view's operator== always does.
inline bool eq3(const char* p, const char (&lit)[4]) noexcept {
  return p[0] == lit[0] && p[1] == lit[1] && p[2] == lit[2];
}
inline bool eq4(const char* p, const char (&lit)[5]) noexcept {
  std::uint32_t a, b;
  std::memcpy(&a, p, 4);
  std::memcpy(&b, lit, 4);
  return a == b;
}

Method method_from(std::string_view m) noexcept {
  const char* p = m.data();
  switch (m.size()) {
    case 3:
      if (eq3(p, "GET")) return Method::get;
      if (eq3(p, "PUT")) return Method::put;
      break;
    case 4:
      if (eq4(p, "HEAD")) return Method::head;
      if (eq4(p, "POST")) return Method::post;
      break;
    case 5:
      if (std::memcmp(p, "PATCH", 5) == 0) return Method::patch;
      if (std::memcmp(p, "TRACE", 5) == 0) return Method::trace;
      break;
    case 6:
      if (std::memcmp(p, "DELETE", 6) == 0) return Method::delete_;
      break;
    case 7:
      if (std::memcmp(p, "OPTIONS", 7) == 0) return Method::options;
      if (std::memcmp(p, "CONNECT", 7) == 0) return Method::connect;
      break;
    default:
      break;
  }
  return Method::other;
}

// "HTTP/d.d" → the minor version (x > 1 becomes 1), -1 malformed, -2 another major.
int parse_version(std::string_view v) noexcept {
  if (v.size() == 8) {  // the usual two first, one 8-byte compare each
    std::uint64_t w, v11, v10;
    std::memcpy(&w, v.data(), 8);
    std::memcpy(&v11, "HTTP/1.1", 8);
    std::memcpy(&v10, "HTTP/1.0", 8);
    if (w == v11) return 1;
    if (w == v10) return 0;
  }
  if (v.size() != 8 || std::memcmp(v.data(), "HTTP/", 5) != 0 || v[6] != '.') return -1;
  char major = v[5], minor = v[7];
  if (major < '0' || major > '9' || minor < '0' || minor > '9') return -1;
  if (major != '1') return -2;
  return minor == '0' ? 0 : 1;
}

// Splits the head's field lines [from, end) into h.headers.
// Returns nullptr or the error; sets *too_many when over max_headers.
//
// One pass per line, name then value, with no bounds checks: the section
// ends with CRLF CRLF (find_head_end found it), and CR is neither a tchar
// nor a field-content byte, so both scans stop at the final CRLF at the
// latest. Same verdicts as splitting at each LF and calling
// parse_field_line (which trailers still use): a CR or LF that does not end
// its line is an error either way.
const char* parse_fields(std::string_view buf, std::size_t from, std::size_t end, std::vector<Header>& out,
                         std::size_t max_headers, bool& too_many) {
  // end points past the final CRLF CRLF; the field lines stop before the last CRLF.
  const auto* const base = reinterpret_cast<const unsigned char*>(buf.data());
  const unsigned char* const stop = base + end - 2;
  const unsigned char* p = base + from;
  while (p < stop) {
    const unsigned char* const name = p;
    while (kChars.tchar[*p]) ++p;
    if (*p != ':') {
      if (p == name && ows(static_cast<char>(*p)))
        return "obsolete line folding (a field line starting with whitespace)";
      if (ows(static_cast<char>(*p))) return "whitespace between a field name and its colon";
      if (*p == '\n' || (*p == '\r' && p[1] != '\n')) return "bare LF or CR in the header section";
      if (*p == '\r') return "field line without a colon";
      return "invalid character in a field name";
    }
    if (p == name) return "empty field name";
    const unsigned char* const name_end = p++;
    while (ows(static_cast<char>(*p))) ++p;
    const unsigned char* const value = p;
    p += value_run(p, stop + 2);
    if (*p != '\r' || p[1] != '\n') {
      if (*p == '\r') return "bare CR in a field value";
      if (*p == '\n') return "bare LF in the header section";
      return "control character in a field value";
    }
    const unsigned char* value_end = p;
    while (value_end > value && ows(static_cast<char>(value_end[-1]))) --value_end;
    if (out.size() == max_headers) {
      too_many = true;
      return "too many header fields";
    }
    out.push_back(Header{{reinterpret_cast<const char*>(name), static_cast<std::size_t>(name_end - name)},
                         {reinterpret_cast<const char*>(value), static_cast<std::size_t>(value_end - value)}});
    p += 2;
  }
  return nullptr;
}

// Whether a field name (tchar bytes only) is `lower` (lower-case letters and
// '-') in any case. OR-ing 0x20 folds A-Z onto a-z; among tchar bytes only
// those two ranges land on a letter, and only '-' itself on '-'.
template <std::size_t N>
inline bool name_is(std::string_view name, const char (&lower)[N]) noexcept {
  if (name.size() != N - 1) return false;
  for (std::size_t i = 0; i < N - 1; ++i)
    if ((static_cast<unsigned char>(name[i]) | 0x20) != static_cast<unsigned char>(lower[i])) return false;
  return true;
}

// The first '\n' at or after `from`, or nullptr. (An empty view may have a
// null data(): memchr must not see it.)
const char* find_lf(std::string_view buf, std::size_t from) noexcept {
  if (from >= buf.size()) return nullptr;
  return static_cast<const char*>(std::memchr(buf.data() + from, '\n', buf.size() - from));
}

// Finds the end of a head (past CRLF CRLF) whose start line ends at line_end,
// scanning only bytes not seen before; 0 if not there yet. A bare CR or LF in
// the field lines is caught later by parse_fields. Looks for each LF and
// checks the three bytes around it: string_view::find would memchr for each
// CR and then memcmp, two calls per line.
std::size_t find_head_end(std::string_view buf, detail::HeadScanner& s) {
  if (buf.size() >= s.line_end_ + 2 && buf[s.line_end_] == '\r' && buf[s.line_end_ + 1] == '\n')
    return s.line_end_ + 2;  // no fields at all
  std::size_t from = s.scanned_ > s.line_end_ + 3 ? s.scanned_ - 3 : s.line_end_;
  // The pattern's first LF is at k >= from + 1; k + 2 must be inside buf.
  const char* b = buf.data();
  std::size_t k = from + 1;
  while (k + 2 < buf.size()) {
    const void* nl = std::memchr(b + k, '\n', buf.size() - 2 - k);
    if (!nl) break;
    k = static_cast<std::size_t>(static_cast<const char*>(nl) - b);
    if (b[k - 1] == '\r' && b[k + 1] == '\r' && b[k + 2] == '\n') return k + 3;
    ++k;
  }
  s.scanned_ = buf.size();
  return 0;
}

}  // namespace

// ---- message.hpp helpers -------------------------------------------------------

// Eight bytes at a time (every field value of every request and response
// passes here): a word with no byte below 0x20 and none equal to 0x7f is
// fine (bytes >= 0x80, obs-text, are never flagged); a flagged word (a tab,
// or a real error) is checked byte by byte.
bool valid_field_value(std::string_view value) noexcept {
  constexpr std::uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
  std::size_t i = 0;
  for (; i + 8 <= value.size(); i += 8) {
    std::uint64_t x;
    std::memcpy(&x, value.data() + i, 8);
    const std::uint64_t below_20 = (x - ones * 0x20) & ~x & highs;
    const std::uint64_t y = x ^ (ones * 0x7f);
    const std::uint64_t is_7f = (y - ones) & ~y & highs;
    if ((below_20 | is_7f) != 0) {
      for (std::size_t k = i; k < i + 8; ++k)
        if (!kChars.value[static_cast<unsigned char>(value[k])]) return false;
    }
  }
  for (; i < value.size(); ++i)
    if (!kChars.value[static_cast<unsigned char>(value[i])]) return false;
  return true;
}

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    unsigned char x = static_cast<unsigned char>(a[i]), y = static_cast<unsigned char>(b[i]);
    if (x >= 'A' && x <= 'Z') x = static_cast<unsigned char>(x + 32);
    if (y >= 'A' && y <= 'Z') y = static_cast<unsigned char>(y + 32);
    if (x != y) return false;
  }
  return true;
}

bool has_token(std::string_view list, std::string_view token) noexcept {
  bool found = false;
  for_each_element(list, [&](std::string_view e) {
    if (iequals(e, token)) found = true;
    return !found;
  });
  return found;
}

std::string_view reason_phrase(int status) noexcept {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

std::string_view method_name(Method m) noexcept {
  switch (m) {
    case Method::get: return "GET";
    case Method::head: return "HEAD";
    case Method::post: return "POST";
    case Method::put: return "PUT";
    case Method::delete_: return "DELETE";
    case Method::connect: return "CONNECT";
    case Method::options: return "OPTIONS";
    case Method::trace: return "TRACE";
    case Method::patch: return "PATCH";
    case Method::other: break;
  }
  return "";
}

std::string_view MessageHead::header(std::string_view name) const noexcept {
  for (const Header& h : headers)
    if (iequals(h.name, name)) return h.value;
  return {};
}

bool MessageHead::has_header(std::string_view name) const noexcept {
  for (const Header& h : headers)
    if (iequals(h.name, name)) return true;
  return false;
}

void MessageHead::clear() noexcept {
  version_minor = 1;
  headers.clear();
  body_kind = BodyKind::none;
  content_length = 0;
  keep_alive = true;
  head_size = 0;
}

namespace {
inline void move_view(std::string_view& v, const char* old_base, const char* new_base) noexcept {
  if (v.data() != nullptr) v = std::string_view(new_base + (v.data() - old_base), v.size());
}
}  // namespace

void MessageHead::rebase_headers(const char* old_base, const char* new_base) noexcept {
  for (Header& h : headers) {
    move_view(h.name, old_base, new_base);
    move_view(h.value, old_base, new_base);
  }
}

std::string_view RequestHead::path_slow() const noexcept {
  std::string_view t = target;
  if (form == TargetForm::absolute) {
    // The authority ends at the first '/', '?' or '#' (RFC 3986 §3.2): in
    // "http://x?/admin" the path is empty ("/"), and "/admin" is the query,
    // not a path to route on.
    std::size_t s = t.find("://");
    std::size_t end = t.find_first_of("/?#", s + 3);
    if (end == std::string_view::npos || t[end] != '/') return "/";
    t.remove_prefix(end);
  } else if (form != TargetForm::origin) {
    return {};
  }
  // An origin-form target whose path end is recorded never gets here (path()).
  // One pass over the target: find_first_of("?#") runs a memchr per character.
  std::size_t i = 0;
  while (i < t.size() && t[i] != '?' && t[i] != '#') ++i;
  return t.substr(0, i);
}

std::string_view RequestHead::query() const noexcept {
  if (form != TargetForm::origin && form != TargetForm::absolute) return {};
  std::size_t q;
  if (form == TargetForm::origin && path_size <= target.size()) {
    if (path_size == target.size()) return {};
    if (target[path_size] != '?') return {};  // '#' came first: a '?' after it is the fragment's
    q = path_size;
  } else {
    q = target.find_first_of("?#");  // a '?' after a '#' is the fragment's
  }
  if (q == std::string_view::npos || target[q] != '?') return {};
  std::string_view rest = target.substr(q + 1);
  return rest.substr(0, rest.find('#'));
}

void RequestHead::clear() noexcept {
  MessageHead::clear();
  method = {};
  method_id = Method::other;
  target = {};
  form = TargetForm::origin;
  host = {};
  expect_continue = false;
  path_size = std::string_view::npos;
}

void RequestHead::rebase(const char* old_base, const char* new_base) noexcept {
  move_view(method, old_base, new_base);
  move_view(target, old_base, new_base);
  move_view(host, old_base, new_base);
  rebase_headers(old_base, new_base);
}

void ResponseHead::clear() noexcept {
  MessageHead::clear();
  status = 0;
  reason = {};
}

void ResponseHead::rebase(const char* old_base, const char* new_base) noexcept {
  move_view(reason, old_base, new_base);
  rebase_headers(old_base, new_base);
}

// ---- RequestParser ------------------------------------------------------------

void RequestParser::reset() noexcept {
  head_.clear();
  base_ = nullptr;
  scan_.reset();
  line_done_ = false;
  error_status_ = 0;
  error_message_.clear();
}

ParseResult RequestParser::fail(int status, std::string msg) {
  error_status_ = status;
  error_message_ = std::move(msg);
  return ParseResult::error;
}

ParseResult RequestParser::parse_request_line(std::string_view line) {
  std::size_t i = 0;
  // Most requests are GETs: one 4-byte compare instead of the tchar loop
  // (the same verdict: "GET" is tchar, ' ' ends it).
  if (line.size() >= 4 && eq4(line.data(), "GET ")) i = 3;
  else
    while (i < line.size() && kChars.tchar[static_cast<unsigned char>(line[i])]) ++i;
  if (i == 0) return fail(400, "missing method");
  if (i == line.size() || line[i] != ' ') {
    if (i == line.size()) return fail(400, "request line without a target (HTTP/0.9 is not supported)");
    return fail(400, "invalid character in the method");
  }
  head_.method = std::string_view(line.data(), i);  // i <= size
  // Known from here on, also when the rest of the line fails: an error
  // answer to HEAD has no content (the server asks).
  head_.method_id = method_from(head_.method);
  std::size_t t0 = ++i;
  // The path up to the first '?' or '#' (path_size), then the rest of the
  // target; one table lookup per byte.
  {
    const auto* l = reinterpret_cast<const unsigned char*>(line.data());
    i += path_run(l + i, l + line.size());
  }
  const std::size_t path_end = i;
  if (i < line.size() && (line[i] == '?' || line[i] == '#')) {
    while (i < line.size() && kChars.vchar[static_cast<unsigned char>(line[i])]) ++i;
  }
  if (i < line.size() && line[i] != ' ') return fail(400, "invalid character in the request target");
  head_.target = std::string_view(line.data() + t0, i - t0);  // t0 <= i <= size
  if (head_.target.size() > limits_.max_target) return fail(414, "request target longer than the limit");
  if (head_.target.empty()) return fail(400, "empty request target");
  if (i == line.size()) return fail(400, "request line without an HTTP version (HTTP/0.9 is not supported)");
  int minor = parse_version(std::string_view(line.data() + i + 1, line.size() - i - 1));  // i < size
  if (minor == -1) return fail(400, "malformed HTTP version");
  if (minor == -2) return fail(505, "unsupported HTTP version");
  head_.version_minor = minor;
  if (head_.method_id == Method::other) return fail(501, "unknown method");

  std::string_view t = head_.target;
  if (head_.method_id == Method::connect) {
    // authority-form: host ":" port, nothing else (the port is not optional,
    // and a ':' inside an IPv6 literal is not the one before it).
    std::size_t colon = t.rfind(':');
    if (t[0] == '/' || colon == std::string_view::npos || colon + 1 == t.size() ||
        (t[0] == '[' && colon < t.find(']')) || !valid_host(t))
      return fail(400, "CONNECT needs an authority-form target (host:port)");
    head_.form = TargetForm::authority;
  } else if (t[0] == '/') {
    head_.form = TargetForm::origin;
    head_.path_size = path_end - t0;
  } else if (t == "*") {
    if (head_.method_id != Method::options) return fail(400, "asterisk-form target is only for OPTIONS");
    head_.form = TargetForm::asterisk;
  } else {
    std::size_t s = t.find("://");
    if (s == std::string_view::npos || s == 0) return fail(400, "malformed request target");
    for (std::size_t k = 0; k < s; ++k) {
      char c = t[k];
      bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                (k > 0 && ((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.'));
      if (!ok) return fail(400, "malformed scheme in an absolute-form target");
    }
    // An http(s) URI's authority is the target host (RFC 9112 §3.2.2): not
    // empty (RFC 9110 §4.2.1), no userinfo (§4.2.4), valid as Host is.
    if (iequals(t.substr(0, s), "http") || iequals(t.substr(0, s), "https")) {
      std::string_view authority = t.substr(s + 3);
      authority = authority.substr(0, authority.find_first_of("/?#"));
      if (authority.empty() || !valid_host(authority)) return fail(400, "invalid host in an absolute-form target");
      // The request's host: a Host field is still required (and checked) in
      // HTTP/1.1, but an origin server MUST use this one instead (§3.2.2).
      head_.host = authority;
    }
    head_.form = TargetForm::absolute;
  }
  return ParseResult::done;
}

ParseResult RequestParser::parse(std::string_view buf) {
  if (line_done_ && buf.data() != base_) {
    head_.rebase(base_, buf.data());  // the caller's buffer moved since the request line
    base_ = buf.data();
  }
  if (!line_done_) {
    // Empty lines before the request line are ignored (RFC 9112 §2.2), a few.
    std::size_t skip = scan_.skip_;
    while (buf.size() >= skip + 2 && buf[skip] == '\r' && buf[skip + 1] == '\n') {
      skip += 2;
      if (skip > 16) return fail(400, "too many empty lines before the request line");
    }
    scan_.skip_ = skip;
    if (scan_.scanned_ < skip) scan_.scanned_ = skip;
    const char* nl = find_lf(buf, scan_.scanned_);
    if (!nl) {
      scan_.scanned_ = buf.size();
      // The request line cannot be valid past the target limit plus a method and version.
      if (buf.size() - skip > limits_.max_target + 32) return fail(414, "request line longer than the limit");
      return ParseResult::incomplete;
    }
    std::size_t e = static_cast<std::size_t>(nl - buf.data());
    if (e == skip || buf[e - 1] != '\r') return fail(400, "bare LF in the request line");
    std::string_view line(buf.data() + skip, e - 1 - skip);  // skip < e
    // A bare CR is rejected by parse_request_line: it is neither a method
    // (tchar), target (VCHAR) nor version byte.
    if (parse_request_line(line) == ParseResult::error) return ParseResult::error;
    line_done_ = true;
    base_ = buf.data();
    scan_.line_end_ = e + 1;
    scan_.scanned_ = e + 1;
  }
  std::size_t end = find_head_end(buf, scan_);
  if (end == 0) {
    if (buf.size() - scan_.line_end_ > limits_.max_header_bytes + 2)
      return fail(431, "header section larger than the limit");
    return ParseResult::incomplete;
  }
  return finish(buf, end);
}

ParseResult RequestParser::finish(std::string_view buf, std::size_t end) {
  if (end - scan_.line_end_ > limits_.max_header_bytes + 2) return fail(431, "header section larger than the limit");
  bool too_many = false;
  if (const char* err = parse_fields(buf, scan_.line_end_, end, head_.headers, limits_.max_headers, too_many))
    return fail(too_many ? 431 : 400, err);

  bool host_seen = false, cl_seen = false, cl_mismatch = false, te_seen = false;
  std::uint64_t cl = 0;
  TeInfo te;
  bool close = false, keep_alive_token = false;
  for (const Header& h : head_.headers) {
    switch (h.name.size()) {
      case 4:
        if (name_is(h.name, "host")) {
          if (host_seen) return fail(400, "duplicate Host");
          host_seen = true;
          if (!valid_host(h.value, buf.data() + buf.size())) return fail(400, "malformed Host");
          if (head_.form != TargetForm::absolute || head_.host.empty()) head_.host = h.value;
        }
        break;
      case 6:
        if (name_is(h.name, "expect")) {
          // A list (RFC 9110 §10.1.1): its empty elements are ignored (§5.6.1.2).
          bool cont = false;
          if (!for_each_element(h.value, [&](std::string_view e) { return cont = iequals(e, "100-continue"); }))
            return fail(417, "unsupported expectation");
          // HTTP/1.0 clients do not know 100 (RFC 9110 §10.1.1): ignore it for them.
          if (cont && head_.version_minor >= 1) head_.expect_continue = true;
        }
        break;
      case 10:
        if (name_is(h.name, "connection")) {
          if (has_token(h.value, "close")) close = true;
          if (has_token(h.value, "keep-alive")) keep_alive_token = true;
        }
        break;
      case 14:
        if (name_is(h.name, "content-length")) {
          if (!parse_content_length(h.value, cl_seen, cl, cl_mismatch)) return fail(400, "malformed Content-Length");
          if (cl_mismatch) return fail(400, "differing Content-Length values");
        }
        break;
      case 17:
        if (name_is(h.name, "transfer-encoding")) {
          te_seen = true;
          parse_transfer_encoding(h.value, te);
          if (te.malformed) return fail(400, "malformed Transfer-Encoding");
        }
        break;
      default:
        break;
    }
  }
  if (head_.version_minor >= 1 && !host_seen) return fail(400, "missing Host (required in HTTP/1.1)");
  if (te_seen) {
    if (cl_seen) return fail(400, "both Content-Length and Transfer-Encoding");
    if (head_.version_minor == 0) return fail(400, "Transfer-Encoding in an HTTP/1.0 request");
    if (te.chunked_twice) return fail(400, "chunked applied more than once");
    if (!te.chunked_last) return fail(400, "chunked is not the final transfer coding");
    if (te.codings > 1) return fail(501, "unsupported transfer coding");
    head_.body_kind = BodyKind::chunked;
  } else if (cl_seen && cl > 0) {
    if (cl > limits_.max_body) return fail(413, "Content-Length larger than the limit");
    head_.body_kind = BodyKind::content_length;
    head_.content_length = cl;
  }
  head_.keep_alive = head_.version_minor >= 1 ? !close : (keep_alive_token && !close);
  head_.head_size = end;
  return ParseResult::done;
}

// ---- ResponseParser -----------------------------------------------------------

void ResponseParser::reset() noexcept {
  head_.clear();
  base_ = nullptr;
  scan_.reset();
  error_status_ = 0;
  error_message_.clear();
}

ParseResult ResponseParser::fail(int status, std::string msg) {
  error_status_ = status;
  error_message_ = std::move(msg);
  return ParseResult::error;
}

ParseResult ResponseParser::parse(std::string_view buf, Method request_method) {
  if (scan_.line_end_ != 0 && buf.data() != base_) {
    head_.rebase(base_, buf.data());  // the caller's buffer moved since the status line
    base_ = buf.data();
  }
  if (scan_.line_end_ == 0) {
    const char* nl = find_lf(buf, scan_.scanned_);
    if (!nl) {
      scan_.scanned_ = buf.size();
      if (buf.size() > limits_.max_header_bytes) return fail(431, "status line longer than the limit");
      return ParseResult::incomplete;
    }
    std::size_t e = static_cast<std::size_t>(nl - buf.data());
    if (e > limits_.max_header_bytes) return fail(431, "status line longer than the limit");
    if (e == 0 || buf[e - 1] != '\r') return fail(400, "bare LF in the status line");
    std::string_view line = buf.substr(0, e - 1);
    if (line.size() < 12 || line[8] != ' ') return fail(400, "malformed status line");
    int minor = parse_version(line.substr(0, 8));
    if (minor == -1) return fail(400, "malformed HTTP version");
    if (minor == -2) return fail(505, "unsupported HTTP version");
    head_.version_minor = minor;
    int status = 0;
    for (std::size_t k = 9; k < 12; ++k) {
      if (line[k] < '0' || line[k] > '9') return fail(400, "malformed status code");
      status = status * 10 + (line[k] - '0');
    }
    if (status < 100) return fail(400, "status code below 100");
    head_.status = status;
    if (line.size() > 12) {
      if (line[12] != ' ') return fail(400, "malformed status line");
      std::string_view reason = line.substr(13);
      for (char c : reason)
        if (!kChars.value[static_cast<unsigned char>(c)]) return fail(400, "control character in the reason phrase");
      head_.reason = reason;
    }
    scan_.line_end_ = e + 1;
    scan_.scanned_ = e + 1;
    base_ = buf.data();
  }
  std::size_t end = find_head_end(buf, scan_);
  if (end == 0) {
    if (buf.size() - scan_.line_end_ > limits_.max_header_bytes + 2)
      return fail(431, "header section larger than the limit");
    return ParseResult::incomplete;
  }
  if (end - scan_.line_end_ > limits_.max_header_bytes + 2) return fail(431, "header section larger than the limit");
  bool too_many = false;
  if (const char* err = parse_fields(buf, scan_.line_end_, end, head_.headers, limits_.max_headers, too_many))
    return fail(too_many ? 431 : 400, err);

  bool cl_seen = false, cl_mismatch = false, te_seen = false, close = false, keep_alive_token = false;
  std::uint64_t cl = 0;
  TeInfo te;
  const int s = head_.status;
  // A 2xx to CONNECT is a tunnel from its empty line on: its Content-Length
  // and Transfer-Encoding frame nothing and MUST be ignored (RFC 9112 §6.3).
  const bool tunnel = request_method == Method::connect && s >= 200 && s < 300;
  for (const Header& h : head_.headers) {
    if (!tunnel && name_is(h.name, "content-length")) {
      if (!parse_content_length(h.value, cl_seen, cl, cl_mismatch)) return fail(400, "malformed Content-Length");
      if (cl_mismatch) return fail(400, "differing Content-Length values");
    } else if (!tunnel && name_is(h.name, "transfer-encoding")) {
      te_seen = true;
      parse_transfer_encoding(h.value, te);
      if (te.malformed) return fail(400, "malformed Transfer-Encoding");
    } else if (name_is(h.name, "connection")) {
      if (has_token(h.value, "close")) close = true;
      if (has_token(h.value, "keep-alive")) keep_alive_token = true;
    }
  }
  head_.keep_alive = head_.version_minor >= 1 ? !close : (keep_alive_token && !close);
  if (te_seen && cl_seen) return fail(400, "both Content-Length and Transfer-Encoding");
  if (te_seen && head_.version_minor == 0) return fail(400, "Transfer-Encoding in an HTTP/1.0 response");
  if (te_seen && te.chunked_twice) return fail(400, "chunked applied more than once");
  if (request_method == Method::head || (s >= 100 && s < 200) || s == 204 || s == 304) {
    head_.body_kind = BodyKind::none;
  } else if (request_method == Method::connect && s >= 200 && s < 300) {
    head_.body_kind = BodyKind::until_close;  // a tunnel
    head_.keep_alive = false;
  } else if (te_seen) {
    if (te.chunked_last) {
      head_.body_kind = BodyKind::chunked;
    } else {
      head_.body_kind = BodyKind::until_close;  // RFC 9112 §6.3 item 4
      head_.keep_alive = false;
    }
  } else if (cl_seen) {
    if (cl > limits_.max_body) return fail(413, "Content-Length larger than the limit");
    head_.body_kind = cl ? BodyKind::content_length : BodyKind::none;
    head_.content_length = cl;
  } else {
    head_.body_kind = BodyKind::until_close;
    head_.keep_alive = false;
  }
  head_.head_size = end;
  return ParseResult::done;
}

// ---- ChunkedDecoder -------------------------------------------------------------

namespace {
constexpr std::size_t kMaxSizeLine = 4096;  // chunk size plus extensions

}  // namespace

void ChunkedDecoder::reset(std::uint64_t max_body) {
  max_body_ = max_body;
  state_ = State::size;
  chunk_left_ = 0;
  total_ = 0;
  size_digits_ = 0;
  line_bytes_ = 0;
  trailer_bytes_ = 0;
  line_.clear();
  trailers_.clear();
  error_status_ = 0;
  error_message_.clear();
}

std::size_t ChunkedDecoder::fail(std::size_t used, int status, std::string msg) {
  state_ = State::failed;
  error_status_ = status;
  error_message_ = std::move(msg);
  return used;
}

bool ChunkedDecoder::finish_trailer_line() {
  Header h;
  if (parse_field_line(line_, h)) return false;
  trailers_.emplace_back(std::string(h.name), std::string(h.value));
  return true;
}

std::size_t ChunkedDecoder::decode(std::string_view in, std::string_view& data) {
  data = {};
  std::size_t i = 0;
  while (i < in.size()) {
    const char c = in[i];
    switch (state_) {
      case State::size: {
        int v = hex_digit(c);
        if (v >= 0) {
          if (size_digits_ == 16) return fail(i, 400, "chunk size overflows");
          chunk_left_ = chunk_left_ * 16 + static_cast<std::uint64_t>(v);
          ++size_digits_;
        } else if (size_digits_ == 0) {
          return fail(i, 400, "malformed chunk size");
        } else if (c == ';') {
          state_ = State::ext;
        } else if (ows(c)) {
          state_ = State::size_ws;
        } else if (c == '\r') {
          state_ = State::size_lf;
        } else {
          return fail(i, 400, "malformed chunk size");
        }
        break;
      }
      case State::size_ws:
        // BWS is allowed only before a chunk extension.
        if (c == ';') state_ = State::ext;
        else if (!ows(c)) return fail(i, 400, "malformed chunk size line");
        break;
      case State::ext:
        if (c == '\r') state_ = State::size_lf;
        else if (c == '"') state_ = State::ext_quoted;
        else if (!(kChars.tchar[static_cast<unsigned char>(c)] || c == '=' || c == ';' || ows(c)))
          return fail(i, 400, "invalid character in a chunk extension");
        break;
      case State::ext_quoted:
        if (c == '"') state_ = State::ext;
        else if (c == '\\') state_ = State::ext_quoted_escape;
        else if (!kChars.value[static_cast<unsigned char>(c)])
          return fail(i, 400, "control character in a chunk extension");
        break;
      case State::ext_quoted_escape:
        if (!kChars.value[static_cast<unsigned char>(c)])
          return fail(i, 400, "control character in a chunk extension");
        state_ = State::ext_quoted;
        break;
      case State::size_lf:
        if (c != '\n') return fail(i, 400, "bare CR in a chunk size line");
        line_bytes_ = 0;
        if (chunk_left_ == 0) {
          state_ = State::trailer;
          line_.clear();
        } else {
          if (chunk_left_ > max_body_ - total_) return fail(i, 413, "chunked body larger than the limit");
          state_ = State::data;
        }
        ++i;
        continue;
      case State::data: {
        std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(chunk_left_, in.size() - i));
        data = in.substr(i, n);
        chunk_left_ -= n;
        total_ += n;
        i += n;
        if (chunk_left_ == 0) state_ = State::data_cr;
        return i;  // one contiguous piece per call
      }
      case State::data_cr:
        if (c != '\r') return fail(i, 400, "chunk data not followed by CRLF");
        state_ = State::data_lf;
        ++i;
        continue;
      case State::data_lf:
        if (c != '\n') return fail(i, 400, "chunk data not followed by CRLF");
        state_ = State::size;
        size_digits_ = 0;
        chunk_left_ = 0;
        ++i;
        continue;
      case State::trailer:
        if (c == '\r') {
          state_ = State::trailer_lf;
        } else if (c == '\n') {
          return fail(i, 400, "bare LF in the trailer section");
        } else {
          if (++trailer_bytes_ > max_trailer_) return fail(i, 431, "trailer section larger than the limit");
          line_.push_back(c);
        }
        ++i;
        continue;
      case State::trailer_lf:
        if (c != '\n') return fail(i, 400, "bare CR in the trailer section");
        ++i;
        if (line_.empty()) {
          state_ = State::done;
          return i;
        }
        if (!finish_trailer_line()) return fail(i, 400, "malformed trailer field");
        line_.clear();
        state_ = State::trailer;
        continue;
      case State::done:
      case State::failed:
        return i;
    }
    // size line states
    if (++line_bytes_ > kMaxSizeLine) return fail(i, 400, "chunk size line longer than the limit");
    ++i;
  }
  return i;
}

// ---- BodyDecoder ------------------------------------------------------------------

void BodyDecoder::start(BodyKind kind, std::uint64_t content_length, std::uint64_t max_body) {
  kind_ = kind;
  left_ = kind == BodyKind::content_length ? content_length : 0;
  eof_ = false;
  if (kind == BodyKind::chunked) chunked_.reset(max_body);
}

std::size_t BodyDecoder::decode(std::string_view in, std::string_view& data) {
  data = {};
  switch (kind_) {
    case BodyKind::none:
      return 0;
    case BodyKind::content_length: {
      std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(left_, in.size()));
      data = in.substr(0, n);
      left_ -= n;
      return n;
    }
    case BodyKind::chunked:
      return chunked_.decode(in, data);
    case BodyKind::until_close:
      data = in;
      return in.size();
  }
  return 0;
}

}  // namespace corio::http
