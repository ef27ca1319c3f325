#pragma once
// A strict, incremental, zero-copy HTTP/1.1 parser (RFC 9110 / 9112).
//
//   RequestParser p;                      // one per connection, reused
//   switch (p.parse(buf)) {               // buf: everything received so far
//     case ParseResult::incomplete: ...   // receive more, call again with the
//                                         // same start and more bytes
//     case ParseResult::done: ...         // p.head() views into buf;
//                                         // p.head().head_size bytes are the head
//     case ParseResult::error: ...        // p.error_status() (400/413/414/431/501/505),
//                                         // p.error_message(); close after answering
//   }
//
// Incremental: the parser remembers how far it has scanned, so a head that
// arrives one byte at a time costs O(n) in total, not O(n²); it rejects a bad
// request line as soon as that line is complete and an oversized head as soon
// as the limit is passed, without waiting for the rest.
//
// Strict on purpose (request smuggling lives in the lenient corners): CRLF
// line endings only (a bare CR or LF is an error), no obs-fold, no whitespace
// between a field name and its colon, no control bytes, Content-Length and
// Transfer-Encoding never together, identical Content-Length values only,
// chunked exactly once and last, exactly one valid Host in HTTP/1.1, no
// HTTP/0.9. What a recipient may tolerate and this parser does: empty lines
// before the request line (RFC 9112 §2.2), HTTP/1.x with x > 1 (treated as
// 1.1, RFC 9110 §2.5), a list of equal Content-Length values, a status line
// without a reason phrase.
//
// The body is not part of the head: feed the bytes after head_size to a
// BodyDecoder built from the head.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "net/http/message.hpp"

namespace corio::http {

struct ParseLimits {
  std::size_t max_target = 8 * 1024;          // request-target bytes → 414
  std::size_t max_header_bytes = 8 * 1024;    // field lines after the start line → 431
  std::size_t max_headers = 100;              // field lines → 431
  std::uint64_t max_body = 8u * 1024 * 1024;  // Content-Length or decoded chunked bytes → 413
};

enum class ParseResult : std::uint8_t { incomplete, done, error };

namespace detail {
// Shared by both parsers: finds the end of the head incrementally and parses
// the field lines.
class HeadScanner {
 public:
  void reset() noexcept {
    scanned_ = 0;
    line_end_ = 0;
    skip_ = 0;
  }
  std::size_t scanned_ = 0;   // bytes known to hold no "\r\n\r\n" end (from skip_)
  std::size_t line_end_ = 0;  // end of the start line (after its CRLF), 0: not found yet
  std::size_t skip_ = 0;      // leading empty lines skipped (requests)
};
}  // namespace detail

class RequestParser {
 public:
  explicit RequestParser(ParseLimits limits = {}) : limits_(limits) { head_.headers.reserve(16); }

  // Parses the request head at the start of buf. After `incomplete`, call again
  // with the same bytes plus more (they may have moved: a receive buffer
  // that grew or compacted; views already taken are moved along). After `done` or `error`, call reset() before
  // the next request.
  ParseResult parse(std::string_view buf);
  void reset() noexcept;

  const RequestHead& head() const noexcept { return head_; }
  RequestHead& head() noexcept { return head_; }
  int error_status() const noexcept { return error_status_; }
  const std::string& error_message() const noexcept { return error_message_; }
  const ParseLimits& limits() const noexcept { return limits_; }
  ParseLimits& limits() noexcept { return limits_; }

 private:
  ParseResult fail(int status, std::string msg);
  ParseResult parse_request_line(std::string_view line);
  ParseResult finish(std::string_view buf, std::size_t end);

  ParseLimits limits_;
  RequestHead head_;
  detail::HeadScanner scan_;
  const char* base_ = nullptr;  // where buf started when the request line was parsed
  bool line_done_ = false;
  int error_status_ = 0;
  std::string error_message_;
};

class ResponseParser {
 public:
  explicit ResponseParser(ParseLimits limits = {}) : limits_(limits) { head_.headers.reserve(16); }

  // Parses the response head at the start of buf. `request_method` decides
  // framing: a response to HEAD has no body, a 2xx to CONNECT becomes a tunnel
  // (BodyKind::until_close with keep_alive false). 1xx heads are returned
  // like any other (a client skips them and parses again).
  ParseResult parse(std::string_view buf, Method request_method = Method::get);
  void reset() noexcept;

  const ResponseHead& head() const noexcept { return head_; }
  ResponseHead& head() noexcept { return head_; }
  // For responses this is a description of what is wrong (status is always 502-ish
  // from a client's point of view; error_status() reports 400 or 431 for symmetry).
  int error_status() const noexcept { return error_status_; }
  const std::string& error_message() const noexcept { return error_message_; }

 private:
  ParseResult fail(int status, std::string msg);

  ParseLimits limits_;
  ResponseHead head_;
  detail::HeadScanner scan_;
  const char* base_ = nullptr;  // where buf started when the status line was parsed
  int error_status_ = 0;
  std::string error_message_;
};

// Decodes a chunked body incrementally (RFC 9112 §7.1): chunk sizes in hex
// (at most 16 digits, no overflow, no sign or whitespace before them),
// chunk extensions (validated, ignored), trailer fields (validated, kept).
//
//   std::string_view data;
//   std::size_t used = dec.decode(input, data);   // consumed bytes of input
//   // data: body bytes inside input (maybe empty); call again with input.substr(used)
//   // until dec.done() or dec.failed(), or input is exhausted (need more bytes).
//
// Each call returns at most one contiguous piece of body data, so no copy is
// made; a caller loops while used < input.size().
class ChunkedDecoder {
 public:
  explicit ChunkedDecoder(std::uint64_t max_body = UINT64_MAX, std::size_t max_trailer_bytes = 8 * 1024)
      : max_body_(max_body), max_trailer_(max_trailer_bytes) {}

  std::size_t decode(std::string_view in, std::string_view& data);
  bool done() const noexcept { return state_ == State::done; }
  bool failed() const noexcept { return state_ == State::failed; }
  int error_status() const noexcept { return error_status_; }
  const std::string& error_message() const noexcept { return error_message_; }
  std::uint64_t body_bytes() const noexcept { return total_; }
  // Trailer fields, copied (a trailer may straddle reads; it is rare and small).
  const std::vector<std::pair<std::string, std::string>>& trailers() const noexcept { return trailers_; }
  void reset(std::uint64_t max_body = UINT64_MAX);

 private:
  enum class State : std::uint8_t { size, size_ws, ext, ext_quoted, ext_quoted_escape, size_lf,
                                    data, data_cr, data_lf, trailer, trailer_lf, done, failed };
  std::size_t fail(std::size_t used, int status, std::string msg);
  bool finish_trailer_line();

  std::uint64_t max_body_;
  std::size_t max_trailer_;
  State state_ = State::size;
  std::uint64_t chunk_left_ = 0;
  std::uint64_t total_ = 0;
  unsigned size_digits_ = 0;
  std::size_t line_bytes_ = 0;   // bytes of the current size line (bounded)
  std::size_t trailer_bytes_ = 0;
  std::string line_;             // the trailer line being assembled
  std::vector<std::pair<std::string, std::string>> trailers_;
  int error_status_ = 0;
  std::string error_message_;
};

// Any body by its framing: Content-Length, chunked, or until close.
class BodyDecoder {
 public:
  BodyDecoder() = default;
  void start(BodyKind kind, std::uint64_t content_length, std::uint64_t max_body = UINT64_MAX);
  // As ChunkedDecoder::decode. For until_close bodies call finish_eof() at EOF.
  std::size_t decode(std::string_view in, std::string_view& data);
  bool done() const noexcept {  // inline: the server asks after every request
    switch (kind_) {
      case BodyKind::none: return true;
      case BodyKind::content_length: return left_ == 0;
      case BodyKind::chunked: return chunked_.done();
      case BodyKind::until_close: return eof_;
    }
    return true;
  }
  bool failed() const noexcept { return kind_ == BodyKind::chunked && chunked_.failed(); }
  int error_status() const noexcept { return chunked_.error_status(); }
  const std::string& error_message() const noexcept { return chunked_.error_message(); }
  // The connection ended: completes an until_close body; other unfinished
  // bodies stay incomplete (the caller reports a truncated message).
  void finish_eof() noexcept { eof_ = true; }
  BodyKind kind() const noexcept { return kind_; }
  std::uint64_t remaining() const noexcept { return left_; }  // content_length bodies
  const ChunkedDecoder& chunked() const noexcept { return chunked_; }

 private:
  BodyKind kind_ = BodyKind::none;
  bool eof_ = false;  // beside kind_: start() writes both, and only they and left_, per request
  std::uint64_t left_ = 0;
  ChunkedDecoder chunked_;
};

}  // namespace corio::http
