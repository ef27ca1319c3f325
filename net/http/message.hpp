#pragma once
// HTTP/1.1 message heads as the parser produces them: every string_view points
// into the caller's buffer (zero-copy), so a head is valid only as long as the
// bytes it was parsed from stay where they are. A server that must keep a head
// across a suspension copies the bytes once and calls rebase().
//
// Invariants of a parsed head:
// - method/target/reason/header names and values are views into one
//   contiguous range [base, base + head_size) of the parsed buffer;
// - header values have no leading or trailing whitespace;
// - body framing (body_kind, content_length) and persistence (keep_alive) are
//   already decided by RFC 9112 §6.3 / §9.3, and were validated against
//   smuggling (no Content-Length with Transfer-Encoding, no differing
//   Content-Length values, chunked last).
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace corio::http {

// An error the peer caused, with the status a server answers it with
// (400, 408, 413, 414, 431, 501, 505, …). Clients see it for malformed responses.
class HttpError : public std::runtime_error {
 public:
  HttpError(int status, const std::string& what) : std::runtime_error(what), status_(status) {}
  int status() const noexcept { return status_; }

 private:
  int status_;
};

struct Header {
  std::string_view name;
  std::string_view value;
};

enum class Method : std::uint8_t { get, head, post, put, delete_, connect, options, trace, patch, other };

// How the request-target was written (RFC 9112 §3.2).
enum class TargetForm : std::uint8_t { origin, absolute, authority, asterisk };

// How the body is delimited (RFC 9112 §6.3).
enum class BodyKind : std::uint8_t {
  none,            // no body at all
  content_length,  // exactly content_length bytes
  chunked,         // chunked transfer coding (ChunkedDecoder)
  until_close,     // responses only: everything until the connection closes
};

// ASCII case-insensitive comparison (field names, tokens).
bool iequals(std::string_view a, std::string_view b) noexcept;
// Whether a comma-separated list field value contains `token` (case-insensitive).
bool has_token(std::string_view list, std::string_view token) noexcept;
// Whether every byte is field-content (RFC 9110 §5.5): HTAB, SP, VCHAR or
// obs-text; no other control byte (CR and LF would split a message).
bool valid_field_value(std::string_view value) noexcept;
// The standard reason phrase ("Not Found"), or "Unknown".
std::string_view reason_phrase(int status) noexcept;
std::string_view method_name(Method m) noexcept;

namespace detail {
// The IMF-fixdate of `seconds` since the epoch ("Sun, 06 Nov 1994 08:49:37
// GMT"): exactly kHttpDateSize bytes at out, no NUL. English names whatever
// the C locale: strftime's %a and %b follow LC_TIME, so a program that calls
// setlocale(LC_ALL, "") would send "Sa, 28 Nov" in a German locale. Times
// outside years 0000-9999 are clamped to them.
inline constexpr std::size_t kHttpDateSize = 29;
void write_http_date(char* out, long long seconds) noexcept;
}  // namespace detail

// Fields common to requests and responses.
struct MessageHead {
  int version_minor = 1;  // HTTP/1.<minor>; the major is always 1
  std::vector<Header> headers;
  BodyKind body_kind = BodyKind::none;
  std::uint64_t content_length = 0;  // for BodyKind::content_length
  bool keep_alive = true;            // the connection may carry another message afterwards
  std::size_t head_size = 0;         // bytes of the head, including the blank line

  // The first field with this name (case-insensitive), or "" if absent.
  std::string_view header(std::string_view name) const noexcept;
  bool has_header(std::string_view name) const noexcept;
  void clear() noexcept;
  // The bytes the views point into moved from old_base to new_base.
  void rebase_headers(const char* old_base, const char* new_base) noexcept;
};

struct RequestHead : MessageHead {
  std::string_view method;
  Method method_id = Method::other;
  std::string_view target;
  TargetForm form = TargetForm::origin;
  // The request's host: the Host field ("" when absent, HTTP/1.0 only), or
  // an absolute-form http(s) target's authority, which RFC 9112 §3.2.2 says
  // an origin server uses instead of the field.
  std::string_view host;
  bool expect_continue = false;  // "Expect: 100-continue"
  // Set by the parser for an origin-form target: where its path ends (the
  // first '?' or '#', or the target's size), so that path() and query(),
  // which handlers call on every request, need not scan it again. npos:
  // not known (path() scans).
  std::size_t path_size = std::string_view::npos;

  // The path and query of an origin- or absolute-form target ("" for the others).
  std::string_view path() const noexcept {
    // Inline for what handlers meet on every request: an origin-form
    // target whose path end the parser recorded.
    if (form == TargetForm::origin && path_size <= target.size()) return {target.data(), path_size};
    return path_slow();
  }
  std::string_view query() const noexcept;
  void clear() noexcept;
  void rebase(const char* old_base, const char* new_base) noexcept;

 private:
  std::string_view path_slow() const noexcept;
};

struct ResponseHead : MessageHead {
  int status = 0;
  std::string_view reason;
  void clear() noexcept;
  void rebase(const char* old_base, const char* new_base) noexcept;
};

}  // namespace corio::http
