#include "net/http/content_coding.hpp"

#include <doctest/doctest.h>
#include <zlib.h>

#include <algorithm>
#include <string>

using corio::http::BodyTooLarge;
using corio::http::ContentDecoder;
using corio::http::DecodeError;
using corio::http::UnsupportedEncoding;

namespace {

// window_bits: 16+15 gzip, 15 zlib, -15 raw deflate.
std::string compress(const std::string& in, int window_bits) {
  z_stream z{};
  REQUIRE(deflateInit2(&z, 6, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::string out(deflateBound(&z, in.size()) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&z, Z_FINISH) == Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

std::string sample() {
  std::string s;
  for (int i = 0; i < 20000; ++i) s += "line " + std::to_string(i * 7919 % 1000) + " of the body\n";
  return s;
}

std::string decode(const char* coding, const std::string& body, std::size_t piece = 4096,
                   std::size_t cap = SIZE_MAX) {
  ContentDecoder d(coding, cap);
  std::string out;
  for (std::size_t i = 0; i < body.size(); i += piece) d.feed(std::string_view(body).substr(i, piece), out);
  d.finish();
  return out;
}

}  // namespace

TEST_CASE("gzip, zlib deflate and raw deflate bodies decode, whatever the chunking") {
  std::string text = sample();
  for (std::size_t piece : {std::size_t{1}, std::size_t{7}, std::size_t{4096}, std::size_t{1} << 20}) {
    CAPTURE(piece);
    CHECK(decode("gzip", compress(text, 16 + 15), piece) == text);
    CHECK(decode("x-gzip", compress(text, 16 + 15), piece) == text);
    CHECK(decode("deflate", compress(text, 15), piece) == text);
    CHECK(decode("Deflate", compress(text, -15), piece) == text);
  }
  CHECK(decode("identity", text) == text);
  CHECK(decode("", text) == text);
  CHECK(ContentDecoder("identity").identity());
  CHECK_FALSE(ContentDecoder("gzip").identity());
}

TEST_CASE("concatenated gzip members decode in order and trailing padding is ignored") {
  std::string a = "first member\n", b = "second member\n";
  std::string body = compress(a, 31) + compress(b, 31);
  CHECK(decode("gzip", body, 3) == a + b);
  CHECK(decode("gzip", compress(a, 31) + std::string(16, '\0')) == a);
}

TEST_CASE("stacked codings are undone in reverse order") {
  std::string text = sample();
  std::string twice = compress(compress(text, 31), 15);  // gzip applied, then deflate
  CHECK(decode("gzip, deflate", twice, 1000) == text);
}

TEST_CASE("a truncated compressed body is reported, not returned as complete") {
  std::string z = compress(sample(), 31);
  ContentDecoder d("gzip");
  std::string out;
  d.feed(std::string_view(z).substr(0, z.size() / 2), out);
  try {
    d.finish();
    FAIL("a half body passed");
  } catch (const DecodeError& e) {
    CHECK(std::string(e.what()) == "gzip: stream ends early (truncated body)");
  }
  ContentDecoder e("deflate");
  e.feed("x", out);
  CHECK_THROWS_AS(e.finish(), DecodeError);
}

TEST_CASE("corrupt data is a DecodeError naming the coding") {
  std::string z = compress(sample(), 31);
  z[z.size() / 2] ^= 0x55;
  z[z.size() / 2 + 1] ^= 0x55;
  CHECK_THROWS_AS(decode("gzip", z), DecodeError);
  try {
    decode("gzip", "this is not gzip at all");
    FAIL("garbage decoded");
  } catch (const DecodeError& e) {
    CHECK(std::string(e.what()).rfind("gzip: ", 0) == 0);
  }
}

TEST_CASE("an empty compressed body is accepted (HEAD, 204, 304)") {
  ContentDecoder d("gzip");
  std::string out;
  d.feed("", out);
  d.finish();
  CHECK(out.empty());
}

TEST_CASE("unknown codings are refused by name") {
  try {
    ContentDecoder d("br");
    FAIL("br accepted");
  } catch (const UnsupportedEncoding& e) {
    CHECK(std::string(e.what()) == "unsupported Content-Encoding 'br' (supported: gzip, deflate)");
  }
  CHECK(std::string(ContentDecoder::accept_encoding) == "gzip, deflate");
}

TEST_CASE("a compression bomb stops at the output cap") {
  std::string zeros(64 << 20, '\0');  // 64 MiB of zeros: about 64 KiB compressed
  std::string bomb = compress(zeros, 31);
  CHECK(bomb.size() < (1u << 20));
  ContentDecoder d("gzip", 1 << 20);
  std::string out;
  CHECK_THROWS_AS(d.feed(bomb, out), BodyTooLarge);
  CHECK(out.size() <= (1u << 20));
}

namespace {

// Feeds `body` a piece at a time and drains the decoder between feeds, `max`
// bytes per read, as the HTTP client does.
std::string decode_pulled(const char* coding, const std::string& body, std::size_t piece, std::size_t max) {
  ContentDecoder d(coding);
  std::string out;
  bool bounded = true;  // each read appended what it returned, and at most max
  for (std::size_t i = 0; i < body.size(); i += piece) {
    d.feed(std::string_view(body).substr(i, piece));
    for (;;) {
      std::size_t before = out.size();
      std::size_t n = d.read(out, max);
      bounded = bounded && n == out.size() - before && n <= max;
      if (n == 0) break;
    }
  }
  d.finish();
  CHECK(bounded);
  return out;
}

}  // namespace

TEST_CASE("bodies read out in bounded pieces lose and repeat no byte") {
  std::string text = sample();
  std::string gz = compress(text, 31);
  for (std::size_t max : {std::size_t{1}, std::size_t{7}, std::size_t{1000}, std::size_t{64} << 10}) {
    for (std::size_t piece : {std::size_t{3}, std::size_t{4096}, std::size_t{1} << 20}) {
      CAPTURE(max);
      CAPTURE(piece);
      CHECK(decode_pulled("gzip", gz, piece, max) == text);
      CHECK(decode_pulled("deflate", compress(text, 15), piece, max) == text);
      CHECK(decode_pulled("deflate", compress(text, -15), piece, max) == text);
      CHECK(decode_pulled("gzip, deflate", compress(gz, 15), piece, max) == text);
      CHECK(decode_pulled("gzip", gz + compress("second member\n", 31), piece, max) == text + "second member\n");
      CHECK(decode_pulled("identity", text, piece, max) == text);
    }
  }
}

TEST_CASE("a stacked gzip bomb is decoded a bounded piece at a time and stops at the cap") {
  std::string inner;
  {
    std::string zeros(64 << 20, '\0');  // 64 MiB of zeros: about 64 KiB gzipped,
    inner = compress(zeros, 31);
  }
  std::string bomb = compress(inner, 31);  // and a few hundred bytes gzipped twice
  CHECK(bomb.size() < 4096);

  // Uncapped, read as a stream: every piece is what was asked for at most,
  // the decoder holds no more than its input and one piece per coding, and
  // every byte arrives.
  ContentDecoder d("gzip, gzip");
  d.feed(bomb);
  std::size_t total = 0, biggest = 0, most_buffered = 0, reads = 0;
  bool zeros = true;
  std::string out;
  for (;;) {
    out.clear();
    std::size_t n = d.read(out, 64 * 1024);
    if (n == 0) break;
    ++reads;
    total += n;
    biggest = std::max(biggest, n);
    most_buffered = std::max(most_buffered, d.buffered());
    zeros = zeros && out.find_first_not_of('\0') == std::string::npos;
  }
  d.finish();
  CHECK(total == (64u << 20));
  CHECK(reads == 1024);
  CHECK(biggest == 64 * 1024);
  CHECK(most_buffered <= bomb.size() + 64 * 1024);
  CHECK(zeros);

  // Capped: read() refuses it having decoded only about the cap.
  ContentDecoder capped("gzip, gzip", 1 << 20);
  capped.feed(bomb);
  total = 0;
  bool refused = false;
  try {
    for (int i = 0; i < 100000; ++i) {
      out.clear();
      std::size_t n = capped.read(out, 64 * 1024);
      REQUIRE(n > 0);
      total += n;
    }
  } catch (const BodyTooLarge& e) {
    refused = true;
    CHECK(std::string(e.what()) == "decoded body larger than the limit of 1048576 bytes");
    total += out.size();
  }
  CHECK(refused);
  CHECK(total == (1u << 20));
  CHECK(capped.total_out() == (1u << 20) + 1);  // one byte past the cap, to know it was passed

  // The whole-input feed() stops there too, with `out` kept to the cap.
  ContentDecoder whole("gzip, gzip", 1 << 20);
  std::string all;
  CHECK_THROWS_AS(whole.feed(bomb, all), BodyTooLarge);
  CHECK(all.size() == (1u << 20));
  CHECK(whole.buffered() <= bomb.size() + 64 * 1024);
}

TEST_CASE("garbage after the end of a stacked coding's stream is dropped, but not without end") {
  std::string text = sample();
  // Padding after the inner member, inside the outer one: a little is ignored.
  std::string padded = compress(compress(text, 31) + std::string(100, '\0'), 31);
  CHECK(decode_pulled("gzip, gzip", padded, 4096, 64 * 1024) == text);
  // A megabyte of it would be inflated only to be thrown away.
  std::string flood = compress(compress(text, 31) + std::string(1 << 20, '\0'), 31);
  try {
    decode_pulled("gzip, gzip", flood, 4096, 64 * 1024);
    FAIL("a flood after the stream decoded");
  } catch (const DecodeError& e) {
    CHECK(std::string(e.what()) == "gzip: more than 65536 bytes after the end of the stream");
  }
}
