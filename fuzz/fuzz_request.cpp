// libFuzzer target: the request parser, on whole input and split in two at a
// point chosen by the first byte. Both must agree (incremental parsing is
// not allowed to change the verdict), every view must point into the input,
// and the body that follows the head goes through the body decoder.
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
  if (size == 0) return 0;
  std::size_t split = data[0] % (size);
  std::string_view buf(reinterpret_cast<const char*>(data) + 1, size - 1);
  ParseLimits limits;
  limits.max_target = 512;
  limits.max_header_bytes = 1024;
  limits.max_headers = 20;
  limits.max_body = 4096;

  RequestParser whole(limits);
  ParseResult r1 = whole.parse(buf);

  RequestParser parts(limits);
  // The prefix sits in another buffer, wiped before the rest arrives: the
  // parser must carry its views over to where the bytes are now.
  std::string prefix(buf.substr(0, split < buf.size() ? split : buf.size()));
  ParseResult r2 = parts.parse(prefix);
  const bool moved = r2 == ParseResult::incomplete;  // else parts' views point into prefix
  if (moved) {
    prefix.assign(prefix.size(), '#');
    r2 = parts.parse(buf);
  }
  if (r1 != r2) std::abort();
  if (r1 == ParseResult::error && whole.error_status() != parts.error_status()) std::abort();
  if (r1 != ParseResult::done) return 0;
  const RequestHead& h = whole.head();
  if (moved && (parts.head().method != h.method || parts.head().target != h.target ||
                parts.head().headers.size() != h.headers.size() || parts.head().method.data() != h.method.data()))
    std::abort();
  if (h.head_size > buf.size()) std::abort();
  std::string_view head = buf.substr(0, h.head_size);
  check_inside(h.method, head);
  check_inside(h.target, head);
  check_inside(h.host, head);
  for (const Header& f : h.headers) {
    check_inside(f.name, head);
    check_inside(f.value, head);
  }
  (void)h.path();
  (void)h.query();
  if (h.body_kind == BodyKind::content_length && h.content_length > limits.max_body) std::abort();

  BodyDecoder body;
  body.start(h.body_kind, h.content_length, limits.max_body);
  std::string_view rest = buf.substr(h.head_size);
  std::uint64_t got = 0;
  while (!rest.empty() && !body.done() && !body.failed()) {
    std::string_view piece;
    std::size_t used = body.decode(rest, piece);
    check_inside(piece, rest);
    got += piece.size();
    if (used == 0) break;
    rest.remove_prefix(used);
  }
  if (got > limits.max_body) std::abort();
  return 0;
}
