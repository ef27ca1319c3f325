#include "net/http/content_coding.hpp"

#include <doctest/doctest.h>
#include <zlib.h>

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
