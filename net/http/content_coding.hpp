#pragma once
// Content-Encoding decoding for HTTP bodies: gzip, deflate (zlib-wrapped, or
// raw as some servers send it), identity; incremental, with an output cap.
//
//   ContentDecoder d("gzip", /*max_output=*/64 << 20);
//   d.feed(chunk);                                // takes compressed bytes
//   while (d.read(out, 64 * 1024) > 0) use(out);  // hands them out decoded, a piece at a time
//   d.finish();                                   // throws if the stream was cut short
//
// Bounded: a decoder holds at most one input piece and 64 KiB per stacked
// coding besides zlib's window, and read() decodes no more than it was asked
// for, so "gzip, gzip" that inflates 600 bytes to 256 MiB costs a reader
// exactly the pieces it takes. read() throws BodyTooLarge once the decoded
// total passes max_output, having decoded at most one byte over it.
// Errors: DecodeError ("gzip: invalid block type", "gzip: stream ends early",
// "gzip: more than 65536 bytes after the end of the stream" inside a stacked
// coding, where such bytes could only be inflated to be thrown away) for
// malformed input; UnsupportedEncoding for codings it does not know (br,
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

  // Takes `in` (copied) to be decoded by read(). Feed again only once read()
  // returned 0: the decoder keeps whatever it was given until it is read.
  void feed(std::string_view in);
  // Appends at most `max` decoded bytes to `out` and returns how many; 0 means
  // all that was fed is decoded (feed more, or finish()). Undecoded input
  // stays for the next call. BodyTooLarge past max_output, DecodeError.
  std::size_t read(std::string& out, std::size_t max);
  // feed(in), then read() until it returns 0: all of `in`, decoded, appended
  // to `out`. Memory grows with the output, so keep a max_output.
  void feed(std::string_view in, std::string& out);
  // The body ended and read() returned 0: throws DecodeError if a compressed
  // stream was incomplete.
  void finish();
  bool identity() const noexcept;
  std::size_t total_out() const noexcept { return total_out_; }
  // Input bytes held undecoded, in every stage: what feed() gave and read()
  // has not yet taken, and each stacked coding's pending piece.
  std::size_t buffered() const noexcept;

  // What a client puts in Accept-Encoding for the codings supported here.
  static constexpr const char* accept_encoding = "gzip, deflate";

 private:
  struct Stage;
  // Appends at most `max` bytes of stage i's output to `dst`, pulling input
  // for it from stage i-1 a bounded piece at a time.
  std::size_t pull(int i, std::string& dst, std::size_t max);

  // stages_[0] decodes what feed() gives; each later one decodes its
  // predecessor's output; read() takes the last one's. Identity: one stage
  // that passes its input through.
  std::unique_ptr<Stage[]> stages_;
  int n_stages_ = 0;
  std::size_t max_output_;
  std::size_t total_out_ = 0;
};

}  // namespace corio::http
