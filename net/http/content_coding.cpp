#include "net/http/content_coding.hpp"

#include <zlib.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <vector>

namespace corio::http {

namespace {

std::string lower_trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c | 0x20);
  }
  return out;
}

// How much a stage decodes into its successor's input at a time (so what a
// stage holds), and how much a stacked coding drops after its stream's end
// before that is an error.
constexpr std::size_t kStagePiece = 64 * 1024;

}  // namespace

// One coding's decoder, with the input it has not decoded yet: in[in_off..].
// Invariants: `z` is initialised iff started; for deflate, the window bits
// are decided by the first two bytes (zlib header or not), so up to one byte
// waits in `in` unstarted. decode() returns 0 only when it has taken all it
// can from `in`: then `in` is empty, or holds that one byte.
struct ContentDecoder::Stage {
  enum class Kind { identity, gzip, deflate } kind = Kind::identity;
  z_stream z{};
  bool started = false;
  bool ended = false;        // Z_STREAM_END seen (gzip: of the last member so far)
  bool ignoring = false;     // past the stream's end: the rest is not ours
  bool got_input = false;
  std::string in;
  std::size_t in_off = 0;
  std::size_t dropped = 0;   // bytes ignored after the end

  ~Stage() {
    if (started) inflateEnd(&z);
  }

  const char* name() const { return kind == Kind::gzip ? "gzip" : "deflate"; }
  std::size_t held() const noexcept { return in.size() - in_off; }

  void start(int window_bits) {
    if (inflateInit2(&z, window_bits) != Z_OK) throw DecodeError(std::string(name()) + ": out of memory");
    started = true;
  }

  // Drops the decoded prefix of `in`, so appending to it keeps it at most
  // what is held plus the new piece.
  void compact() {
    in.erase(0, in_off);
    in_off = 0;
  }

  void take(std::string_view more) {
    if (more.empty()) return;
    got_input = true;
    compact();
    in.append(more);
  }

  // Appends at most `max` decoded bytes to `dst`; returns how many.
  std::size_t decode(std::string& dst, std::size_t max) {
    if (kind == Kind::identity) {
      std::size_t n = std::min(max, held());
      dst.append(in, in_off, n);
      in_off += n;
      return n;
    }
    std::size_t total = 0;
    while (total < max) {
      if (ignoring) {
        dropped += held();
        in_off = in.size();
        break;
      }
      if (ended) {
        if (held() == 0) break;
        // gzip allows several members back to back (RFC 1952 §2.2); after
        // a deflate stream, what follows is not ours to decode.
        // Anything else after a member (padding some servers add) is
        // ignored, as browsers and zlib's own gunzip do.
        if (kind != Kind::gzip || in[in_off] != '\x1f') {
          ignoring = true;
          continue;
        }
        if (inflateReset(&z) != Z_OK) throw DecodeError("gzip: cannot restart");
        ended = false;
      }
      if (!started) {
        if (kind == Kind::gzip) {
          if (held() == 0) break;
          start(16 + MAX_WBITS);
        } else {
          // "deflate" is RFC 1950 zlib data, but servers long sent raw RFC
          // 1951 deflate under that name; a zlib header is recognisable (CM
          // 8, check bits), so look before choosing.
          if (held() < 2) break;
          auto cmf = static_cast<unsigned char>(in[in_off]), flg = static_cast<unsigned char>(in[in_off + 1]);
          bool zlib_header = (cmf & 0x0f) == 8 && (cmf >> 4) <= 7 && ((cmf << 8) | flg) % 31 == 0;
          start(zlib_header ? MAX_WBITS : -MAX_WBITS);
        }
      }
      // Output goes straight into `dst`, never more than asked for: what
      // zlib cannot write now stays in its state and in `in` for next time.
      const std::size_t room = std::min(max - total, kStagePiece);
      const std::size_t avail = std::min<std::size_t>(held(), UINT_MAX);
      const std::size_t old = dst.size();
      dst.resize(old + room);
      z.next_in = reinterpret_cast<Bytef*>(in.data() + in_off);
      z.avail_in = static_cast<uInt>(avail);
      z.next_out = reinterpret_cast<Bytef*>(dst.data() + old);
      z.avail_out = static_cast<uInt>(room);
      int rc = inflate(&z, Z_NO_FLUSH);
      const std::size_t consumed = avail - z.avail_in, produced = room - z.avail_out;
      dst.resize(old + produced);
      in_off += consumed;
      total += produced;
      if (rc == Z_STREAM_END) {
        ended = true;
      } else if (rc == Z_NEED_DICT) {
        throw DecodeError(std::string(name()) + ": preset dictionary required");
      } else if (rc == Z_DATA_ERROR) {
        throw DecodeError(std::string(name()) + ": " + (z.msg ? z.msg : "invalid data"));
      } else if (rc == Z_MEM_ERROR) {
        throw DecodeError(std::string(name()) + ": out of memory");
      } else if (consumed == 0 && produced == 0) {
        break;  // Z_BUF_ERROR: all input taken and zlib's own buffer flushed
      }
    }
    if (in_off == in.size()) {
      in.clear();
      in_off = 0;
    }
    return total;
  }

  void finish() {
    if (kind == Kind::identity || !got_input) return;  // an empty body is fine (HEAD, 204, 304)
    if (!started) throw DecodeError("deflate: stream ends early");
    if (!ended) throw DecodeError(std::string(name()) + ": stream ends early (truncated body)");
  }
};

ContentDecoder::ContentDecoder(std::string_view coding, std::size_t max_output) : max_output_(max_output) {
  // "gzip, deflate" means gzip was applied first: decode from the last.
  std::vector<Stage::Kind> kinds;
  while (!coding.empty()) {
    std::size_t comma = coding.find(',');
    std::string c = lower_trim(coding.substr(0, comma));
    coding.remove_prefix(comma == std::string_view::npos ? coding.size() : comma + 1);
    if (c.empty() || c == "identity") continue;
    if (c == "gzip" || c == "x-gzip") {
      kinds.push_back(Stage::Kind::gzip);
    } else if (c == "deflate") {
      kinds.push_back(Stage::Kind::deflate);
    } else {
      throw UnsupportedEncoding("unsupported Content-Encoding '" + c + "' (supported: gzip, deflate)");
    }
  }
  if (kinds.empty()) kinds.push_back(Stage::Kind::identity);
  n_stages_ = static_cast<int>(kinds.size());
  stages_ = std::make_unique<Stage[]>(kinds.size());
  for (int i = 0; i < n_stages_; ++i) stages_[i].kind = kinds[static_cast<std::size_t>(n_stages_ - 1 - i)];
}

ContentDecoder::~ContentDecoder() = default;
ContentDecoder::ContentDecoder(ContentDecoder&&) noexcept = default;
ContentDecoder& ContentDecoder::operator=(ContentDecoder&&) noexcept = default;

bool ContentDecoder::identity() const noexcept { return stages_ && stages_[0].kind == Stage::Kind::identity; }

std::size_t ContentDecoder::buffered() const noexcept {
  std::size_t n = 0;
  for (int i = 0; i < n_stages_; ++i) n += stages_[i].held();
  return n;
}

void ContentDecoder::feed(std::string_view in) { stages_[0].take(in); }

std::size_t ContentDecoder::pull(int i, std::string& dst, std::size_t max) {
  Stage& s = stages_[i];
  std::size_t total = 0;
  while (total < max) {
    std::size_t n = s.decode(dst, max - total);
    total += n;
    if (n > 0) continue;
    // Past the end of a coding's stream, whatever still comes is dropped; a
    // bomb there would cost time, not memory, so take only a little before
    // calling it what it is.
    if (s.dropped > kStagePiece) {
      throw DecodeError(std::string(s.name()) + ": more than " + std::to_string(kStagePiece) +
                        " bytes after the end of the stream");
    }
    if (i == 0) break;  // wants what feed() has not given yet
    // Stage i took all it held: give it the next piece of stage i-1's
    // output, never more, so no stage holds more than kStagePiece.
    s.compact();
    std::size_t got = pull(i - 1, s.in, kStagePiece);
    if (got == 0) break;
    s.got_input = true;
  }
  return total;
}

std::size_t ContentDecoder::read(std::string& out, std::size_t max) {
  // One byte past the cap is enough to know it was passed; decoding more
  // would only spend memory on a body that is refused anyway.
  const std::size_t left = max_output_ - std::min(total_out_, max_output_);
  const std::size_t n = pull(n_stages_ - 1, out, std::min(max, left == SIZE_MAX ? left : left + 1));
  total_out_ += n;
  if (total_out_ > max_output_) {
    out.resize(out.size() - (total_out_ - max_output_));  // `out` keeps to the cap
    throw BodyTooLarge("decoded body larger than the limit of " + std::to_string(max_output_) + " bytes");
  }
  return n;
}

void ContentDecoder::feed(std::string_view in, std::string& out) {
  feed(in);
  while (read(out, kStagePiece) > 0) {
  }
}

void ContentDecoder::finish() {
  for (int i = 0; i < n_stages_; ++i) stages_[i].finish();
}

}  // namespace corio::http
