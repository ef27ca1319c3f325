// libFuzzer target: the chunked decoder fed in pieces whose sizes come from
// the first byte, against the same input fed whole. Both must decode the same
// bytes and reach the same verdict, and never exceed the body limit.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "net/http/parser.hpp"

using namespace corio::http;

namespace {
struct Outcome {
  std::string body;
  bool done = false;
  bool failed = false;
  int status = 0;
  std::size_t consumed = 0;
};

Outcome run(std::string_view in, std::size_t step) {
  ChunkedDecoder d(1 << 16, 512);
  Outcome o;
  std::size_t fed = 0;
  while (fed < in.size() && !d.done() && !d.failed()) {
    std::string_view piece = in.substr(fed, step);
    std::size_t base = fed;
    std::size_t off = 0;
    while (off < piece.size() && !d.done() && !d.failed()) {
      std::string_view data;
      std::size_t used = d.decode(piece.substr(off), data);
      if (used > piece.size() - off) std::abort();
      if (!data.empty() && (data.data() < piece.data() + off || data.data() + data.size() > piece.data() + piece.size()))
        std::abort();
      o.body.append(data);
      off += used;
      if (used == 0) break;
    }
    o.consumed = base + off;
    fed += piece.size();
    if (off < piece.size() && !d.done() && !d.failed()) std::abort();  // stalled without a verdict
  }
  o.done = d.done();
  o.failed = d.failed();
  o.status = d.error_status();
  if (o.body.size() != d.body_bytes()) std::abort();
  if (d.body_bytes() > (1 << 16)) std::abort();
  return o;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::size_t step = (data[0] % 16) + 1;
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  Outcome a = run(in, in.size() ? in.size() : 1);
  Outcome b = run(in, step);
  if (a.done != b.done || a.failed != b.failed || a.status != b.status) std::abort();
  if (a.done && (a.body != b.body || a.consumed != b.consumed)) std::abort();
  if (!a.failed && !b.failed && a.body != b.body) std::abort();
  return 0;
}
