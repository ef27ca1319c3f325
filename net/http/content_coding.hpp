#pragma once
// Content-Encoding decoding for HTTP bodies: gzip, deflate (zlib-wrapped, or
// raw as some servers send it), identity; incremental, with an output cap.
//
//   ContentDecoder d("gzip", /*max_output=*/64 << 20);
//   d.feed(chunk, out);   // appends decoded bytes to out
//   d.finish();           // throws if the stream was cut short
//
// Bounded: feed() throws BodyTooLarge once the decoded total passes
// max_output, so a 10 MB "zip bomb" that inflates to 10 GB stops at the cap
// with at most one zlib window over it in memory.
// Errors: DecodeError ("gzip: invalid block type", "gzip: stream ends early")
// for malformed input; UnsupportedEncoding for codings it does not know (br,
// zstd, compress), raised by the constructor.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

namespace corio::http {

class DecodeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
class UnsupportedEncoding : public DecodeError {
 public:
  using DecodeError::DecodeError;
};
class BodyTooLarge : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class ContentDecoder {
 public:
  // coding: a Content-Encoding value ("gzip", "x-gzip", "deflate",
  // "identity", or a comma-separated list of those, applied in order).
  explicit ContentDecoder(std::string_view coding, std::size_t max_output = SIZE_MAX);
  ~ContentDecoder();
  ContentDecoder(ContentDecoder&&) noexcept;
  ContentDecoder& operator=(ContentDecoder&&) noexcept;

  // Decodes `in` and appends the result to `out`.
  void feed(std::string_view in, std::string& out);
  // The body ended: throws DecodeError if a compressed stream was incomplete.
  void finish();
  bool identity() const noexcept;
  std::size_t total_out() const noexcept { return total_out_; }

  // What a client puts in Accept-Encoding for the codings supported here.
  static constexpr const char* accept_encoding = "gzip, deflate";

 private:
  struct Stage;
  std::unique_ptr<Stage[]> stages_;
  int n_stages_ = 0;
  std::size_t max_output_;
  std::size_t total_out_ = 0;
};

}  // namespace corio::http
