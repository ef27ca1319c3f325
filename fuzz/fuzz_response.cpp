// libFuzzer target: the response parser (framing depends on the request
// method, taken from the first byte), whole and split, then its body.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "net/http/parser.hpp"

using namespace corio::http;

namespace {
void check_inside(std::string_view v, std::string_view buf) {
  if (v.empty()) return;
  if (v.data() < buf.data() || v.data() + v.size() > buf.data() + buf.size()) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const Method methods[] = {Method::get, Method::head, Method::connect, Method::post};
  Method m = methods[data[0] & 3];
  std::size_t split = data[1] % size;
  std::string_view buf(reinterpret_cast<const char*>(data) + 2, size - 2);
  ParseLimits limits;
  limits.max_header_bytes = 2048;
  limits.max_headers = 32;
  limits.max_body = 1 << 20;

  ResponseParser whole(limits);
  ParseResult r1 = whole.parse(buf, m);
  ResponseParser parts(limits);
  std::string prefix(buf.substr(0, split < buf.size() ? split : buf.size()));
  ParseResult r2 = parts.parse(prefix, m);
  const bool moved = r2 == ParseResult::incomplete;  // else parts' views point into prefix
  if (moved) {
    prefix.assign(prefix.size(), '#');
    r2 = parts.parse(buf, m);
  }
  if (r1 != r2) std::abort();
  if (r1 == ParseResult::error && whole.error_status() != parts.error_status()) std::abort();
  if (r1 != ParseResult::done) return 0;
  const ResponseHead& h = whole.head();
  if (moved && (parts.head().reason != h.reason || parts.head().status != h.status ||
                (!h.reason.empty() && parts.head().reason.data() != h.reason.data())))
    std::abort();
  if (h.status < 100 || h.status > 999) std::abort();
  std::string_view head = buf.substr(0, h.head_size);
  check_inside(h.reason, head);
  for (const Header& f : h.headers) {
    check_inside(f.name, head);
    check_inside(f.value, head);
  }
  if (h.body_kind == BodyKind::until_close && h.keep_alive) std::abort();
  BodyDecoder body;
  body.start(h.body_kind, h.content_length, limits.max_body);
  std::string_view rest = buf.substr(h.head_size);
  while (!rest.empty() && !body.done() && !body.failed()) {
    std::string_view piece;
    std::size_t used = body.decode(rest, piece);
    check_inside(piece, rest);
    if (used == 0) break;
    rest.remove_prefix(used);
  }
  if (h.body_kind == BodyKind::until_close) {
    body.finish_eof();
    if (!body.done()) std::abort();
  }
  return 0;
}
