#include "net/http/content_coding.hpp"

#include <zlib.h>

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

}  // namespace

// One coding's decoder. Invariant: `z` is initialised iff started; for
// deflate, `raw` is decided by the first two bytes (zlib header or not).
struct ContentDecoder::Stage {
  enum class Kind { identity, gzip, deflate } kind = Kind::identity;
  z_stream z{};
  bool started = false;
  bool ended = false;        // Z_STREAM_END seen (gzip: of the last member so far)
  bool got_input = false;
  std::string pending;       // deflate: bytes held until the header can be judged

  ~Stage() {
    if (started) inflateEnd(&z);
  }

  const char* name() const { return kind == Kind::gzip ? "gzip" : "deflate"; }

  void start(int window_bits) {
    if (inflateInit2(&z, window_bits) != Z_OK) throw DecodeError(std::string(name()) + ": out of memory");
    started = true;
  }

  // Decodes `in`, calling sink(bytes) with each piece of output.
  template <class Sink>
  void feed(std::string_view in, Sink&& sink) {
    if (kind == Kind::identity) {
      if (!in.empty()) sink(in);
      return;
    }
    if (in.empty()) return;
    got_input = true;
    if (!started) {
      if (kind == Kind::gzip) {
        start(16 + MAX_WBITS);
      } else {
        // "deflate" is RFC 1950 zlib data, but servers long sent raw RFC 1951
        // deflate under that name; a zlib header is recognisable (CM 8,
        // check bits), so look before choosing.
        pending.append(in);
        if (pending.size() < 2) return;
        auto cmf = static_cast<unsigned char>(pending[0]), flg = static_cast<unsigned char>(pending[1]);
        bool zlib_header = (cmf & 0x0f) == 8 && (cmf >> 4) <= 7 && ((cmf << 8) | flg) % 31 == 0;
        start(zlib_header ? MAX_WBITS : -MAX_WBITS);
        std::string held = std::move(pending);
        pending.clear();
        run(held, sink);
        return;
      }
    }
    run(in, sink);
  }

  template <class Sink>
  void run(std::string_view in, Sink&& sink) {
    unsigned char buf[16384];
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z.avail_in = static_cast<uInt>(in.size());
    while (z.avail_in > 0) {
      if (ended) {
        // gzip allows several members back to back (RFC 1952 §2.2); after
        // a deflate stream, what follows is not ours to decode.
        // Anything else after a member (padding some servers add) is
        // ignored, as browsers and zlib's own gunzip do.
        if (kind != Kind::gzip || z.next_in[0] != 0x1f) return;
        if (inflateReset(&z) != Z_OK) throw DecodeError("gzip: cannot restart");
        ended = false;
      }
      z.next_out = buf;
      z.avail_out = sizeof buf;
      int rc = inflate(&z, Z_NO_FLUSH);
      std::size_t produced = sizeof buf - z.avail_out;
      if (produced) sink(std::string_view(reinterpret_cast<char*>(buf), produced));
      if (rc == Z_STREAM_END) {
        ended = true;
      } else if (rc == Z_NEED_DICT) {
        throw DecodeError(std::string(name()) + ": preset dictionary required");
      } else if (rc == Z_DATA_ERROR) {
        throw DecodeError(std::string(name()) + ": " + (z.msg ? z.msg : "invalid data"));
      } else if (rc == Z_MEM_ERROR) {
        throw DecodeError(std::string(name()) + ": out of memory");
      } else if (rc == Z_BUF_ERROR && produced == 0) {
        break;  // needs more input
      }
    }
    // Flush what is still buffered inside zlib (output space ran out above).
    while (!ended && started) {
      z.next_out = buf;
      z.avail_out = sizeof buf;
      int rc = inflate(&z, Z_NO_FLUSH);
      std::size_t produced = sizeof buf - z.avail_out;
      if (produced) sink(std::string_view(reinterpret_cast<char*>(buf), produced));
      if (rc == Z_STREAM_END) ended = true;
      if (rc == Z_DATA_ERROR) throw DecodeError(std::string(name()) + ": " + (z.msg ? z.msg : "invalid data"));
      if (produced == 0) break;
    }
  }

  void finish() {
    if (kind == Kind::identity || !got_input) return;  // an empty body is fine (HEAD, 204, 304)
    if (!pending.empty() && !started) throw DecodeError("deflate: stream ends early");
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
  n_stages_ = static_cast<int>(kinds.size());
  if (n_stages_ > 0) {
    stages_ = std::make_unique<Stage[]>(static_cast<std::size_t>(n_stages_));
    for (int i = 0; i < n_stages_; ++i) stages_[i].kind = kinds[static_cast<std::size_t>(n_stages_ - 1 - i)];
  }
}

ContentDecoder::~ContentDecoder() = default;
ContentDecoder::ContentDecoder(ContentDecoder&&) noexcept = default;
ContentDecoder& ContentDecoder::operator=(ContentDecoder&&) noexcept = default;

bool ContentDecoder::identity() const noexcept { return n_stages_ == 0; }

void ContentDecoder::feed(std::string_view in, std::string& out) {
  auto emit = [&](std::string_view piece) {
    total_out_ += piece.size();
    if (total_out_ > max_output_) {
      throw BodyTooLarge("decoded body exceeds the limit of " + std::to_string(max_output_) + " bytes");
    }
    out.append(piece);
  };
  if (n_stages_ == 0) {
    emit(in);
    return;
  }
  // Stage i's output feeds stage i+1; the last one's goes to `out`.
  std::vector<std::string> mid(static_cast<std::size_t>(n_stages_));
  std::string_view cur = in;
  for (int i = 0; i < n_stages_; ++i) {
    if (i == n_stages_ - 1) {
      stages_[i].feed(cur, emit);
    } else {
      std::string& m = mid[static_cast<std::size_t>(i)];
      stages_[i].feed(cur, [&m, this](std::string_view p) {
        if (m.size() + p.size() > max_output_) throw BodyTooLarge("decoded body exceeds the limit");
        m.append(p);
      });
      cur = m;
    }
  }
}

void ContentDecoder::finish() {
  for (int i = 0; i < n_stages_; ++i) stages_[i].finish();
}

}  // namespace corio::http
