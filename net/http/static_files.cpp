#include "net/http/static_files.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <climits>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace corio::http {

namespace {

int hex_digit(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decodes a path; false if malformed or unsafe (NUL, "..", backslash games).
bool decode_path(std::string_view in, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return false;
      int hi = hex_digit(in[i + 1]), lo = hex_digit(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
    }
    if (c == '\0') return false;
    out += c;
  }
  if (out.empty() || out[0] != '/') return false;
  // No segment may be "." or ".." (after decoding: "%2e%2e" counts).
  std::size_t p = 0;
  while (p < out.size()) {
    std::size_t q = out.find('/', p + 1);
    std::string_view seg = std::string_view(out).substr(p + 1, (q == std::string::npos ? out.size() : q) - p - 1);
    if (seg == ".." || seg == ".") return false;
    if (q == std::string::npos) break;
    p = q;
  }
  return true;
}

// Opens rel ("/a/b.html") for reading under root. A symbolic link is
// followed only while it stays beneath the root, so a link to /etc inside
// the root is not found, as with aiohttp's static routes by default; links
// within the root work (nginx would follow both). openat2's RESOLVE_BENEATH
// (Linux 5.6) settles most paths in one call; it also refuses absolute links
// and links through "..", so those (and every path, where openat2 itself is
// refused: an old kernel, a seccomp filter) are resolved with realpath(3),
// without opening anything, and opened only when they land under the root.
// -1 with errno on failure (EXDEV: it would leave the root).
int open_beneath(std::string_view root, const std::string& rel) {
  const std::string root_path = root.empty() ? std::string("/") : std::string(root);
  const int dir = ::open(root_path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return -1;
  const char* name = rel.c_str();
  while (*name == '/') ++name;  // relative to dir ("//a" is "/a")
  open_how how{};
  how.flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  int fd = static_cast<int>(::syscall(SYS_openat2, dir, name, &how, sizeof how));
  const bool no_openat2 = fd < 0 && (errno == ENOSYS || errno == EPERM);
  if (fd < 0 && (errno == EXDEV || no_openat2)) {
    char* base = ::realpath(root_path.c_str(), nullptr);
    char* file = base ? ::realpath((root_path + "/" + name).c_str(), nullptr) : nullptr;
    int e = errno;
    if (file) {
      const std::string_view f(file), b(base);
      const bool inside =
          b == "/" || (f.size() > b.size() && f.substr(0, b.size()) == b && f[b.size()] == '/');
      if (!inside) {
        e = EXDEV;
      } else if (no_openat2) {
        fd = ::open(file, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW);
        e = errno;
      } else {
        how.resolve = RESOLVE_NO_SYMLINKS;  // resolved already: a link now is a race
        fd = static_cast<int>(::syscall(SYS_openat2, AT_FDCWD, file, &how, sizeof how));
        e = errno;
      }
    }
    std::free(file);
    std::free(base);
    errno = e;
  }
  const int e = errno;
  ::close(dir);
  errno = e;
  return fd;
}

std::string make_etag(const struct stat& st) {
  char b[64];
  long long ns = static_cast<long long>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec;
  int n = std::snprintf(b, sizeof b, "\"%llx-%llx\"", static_cast<unsigned long long>(ns),
                        static_cast<unsigned long long>(st.st_size));
  return std::string(b, static_cast<std::size_t>(n));
}

std::string_view strip_weak(std::string_view t) noexcept {
  if (t.size() >= 2 && t[0] == 'W' && t[1] == '/') t.remove_prefix(2);
  return t;
}

// Whether an If-Match / If-None-Match value ("*" or a list of entity tags)
// names `etag`: weakly compared for If-None-Match (W/"x" matches "x"),
// strongly for If-Match (a weak tag matches nothing) (RFC 9110 §8.8.3.2).
bool tag_listed(std::string_view header, std::string_view etag, bool strong) noexcept {
  std::string_view h = header;
  while (!h.empty()) {
    std::size_t comma = h.find(',');
    std::string_view e = h.substr(0, comma);
    while (!e.empty() && (e.front() == ' ' || e.front() == '\t')) e.remove_prefix(1);
    while (!e.empty() && (e.back() == ' ' || e.back() == '\t')) e.remove_suffix(1);
    if (e == "*") return true;
    if (strong ? e == etag && strip_weak(e) == e : strip_weak(e) == strip_weak(etag)) return true;
    if (comma == std::string_view::npos) break;
    h.remove_prefix(comma + 1);
  }
  return false;
}

// tag_listed over every field line named `name`: a list may be split over
// several lines, which mean the same as one line joined with commas
// (RFC 9110 §5.3).
bool tag_listed_in(const Request& req, std::string_view name, std::string_view etag, bool strong) noexcept {
  for (const Header& h : req.headers())
    if (iequals(h.name, name) && tag_listed(h.value, etag, strong)) return true;
  return false;
}

bool parse_u64(std::string_view s, std::uint64_t& v) noexcept {
  if (s.empty() || s.size() > 19) return false;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

enum class RangeKind { none, ok, unsatisfiable };

// One "bytes=" range against a file of `size` bytes → [first, last].
RangeKind parse_range(std::string_view h, std::uint64_t size, std::uint64_t& first, std::uint64_t& last) {
  if (h.substr(0, 6) != "bytes=") return RangeKind::none;
  h.remove_prefix(6);
  if (h.find(',') != std::string_view::npos) return RangeKind::none;  // several: the whole file
  std::size_t dash = h.find('-');
  if (dash == std::string_view::npos) return RangeKind::none;
  std::string_view a = h.substr(0, dash), b = h.substr(dash + 1);
  if (a.empty()) {  // suffix: the last n bytes
    std::uint64_t n;
    if (!parse_u64(b, n)) return RangeKind::none;
    if (n == 0 || size == 0) return RangeKind::unsatisfiable;
    first = n >= size ? 0 : size - n;
    last = size - 1;
    return RangeKind::ok;
  }
  if (!parse_u64(a, first)) return RangeKind::none;
  if (b.empty()) {
    last = size ? size - 1 : 0;
  } else {
    if (!parse_u64(b, last) || last < first) return RangeKind::none;
    if (size && last >= size) last = size - 1;
  }
  if (first >= size) return RangeKind::unsatisfiable;
  return RangeKind::ok;
}

}  // namespace

std::string_view content_type_for(std::string_view path) noexcept {
  std::size_t dot = path.rfind('.');
  std::size_t slash = path.rfind('/');
  if (dot == std::string_view::npos || (slash != std::string_view::npos && dot < slash))
    return "application/octet-stream";
  std::string_view ext = path.substr(dot + 1);
  struct Entry {
    std::string_view ext, type;
  };
  static constexpr Entry table[] = {
      {"html", "text/html; charset=utf-8"}, {"htm", "text/html; charset=utf-8"},
      {"txt", "text/plain; charset=utf-8"}, {"css", "text/css; charset=utf-8"},
      {"js", "text/javascript; charset=utf-8"}, {"json", "application/json"},
      {"xml", "application/xml"}, {"svg", "image/svg+xml"}, {"png", "image/png"},
      {"jpg", "image/jpeg"}, {"jpeg", "image/jpeg"}, {"gif", "image/gif"},
      {"webp", "image/webp"}, {"ico", "image/x-icon"}, {"pdf", "application/pdf"},
      {"wasm", "application/wasm"}, {"mp4", "video/mp4"}, {"woff2", "font/woff2"},
      {"gz", "application/gzip"}, {"zip", "application/zip"},
  };
  for (const Entry& e : table)
    if (iequals(e.ext, ext)) return e.type;
  return "application/octet-stream";
}

std::string format_http_date(long long seconds) {
  char b[detail::kHttpDateSize];
  detail::write_http_date(b, seconds);
  return std::string(b, sizeof b);
}

namespace {

// RFC 9110 §5.6.7's names, which are case-sensitive.
constexpr std::string_view kDayNames[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
constexpr std::string_view kLongDayNames[] = {"Monday", "Tuesday", "Wednesday", "Thursday",
                                              "Friday", "Saturday", "Sunday"};
constexpr std::string_view kMonthNames[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

}  // namespace

void detail::write_http_date(char* out, long long seconds) noexcept {
  // -62167219200 is 0000-01-01T00:00:00Z, 253402300799 9999-12-31T23:59:59Z.
  seconds = std::clamp(seconds, -62167219200LL, 253402300799LL);
  const std::time_t t = static_cast<std::time_t>(seconds);
  std::tm tm;
  gmtime_r(&t, &tm);  // locale-independent; only the names below are not
  auto two = [](char* p, int v) {
    p[0] = static_cast<char>('0' + v / 10);
    p[1] = static_cast<char>('0' + v % 10);
  };
  const std::string_view day = kDayNames[(tm.tm_wday + 6) % 7];  // tm_wday 0 is Sunday
  const std::string_view month = kMonthNames[tm.tm_mon];
  const int year = tm.tm_year + 1900;
  char* p = out;
  std::memcpy(p, day.data(), 3);
  std::memcpy(p + 3, ", ", 2);
  two(p + 5, tm.tm_mday);
  p[7] = ' ';
  std::memcpy(p + 8, month.data(), 3);
  p[11] = ' ';
  two(p + 12, year / 100);
  two(p + 14, year % 100);
  p[16] = ' ';
  two(p + 17, tm.tm_hour);
  p[19] = ':';
  two(p + 20, tm.tm_min);
  p[22] = ':';
  two(p + 23, tm.tm_sec);
  std::memcpy(p + 25, " GMT", 4);
}

namespace {

// A cursor over a date's text: each step consumes what it matched, or
// fails and leaves the date unparsed (-1).
struct DateText {
  std::string_view s;

  bool lit(std::string_view l) noexcept {
    if (s.substr(0, l.size()) != l) return false;
    s.remove_prefix(l.size());
    return true;
  }
  bool digits(int n, int& v) noexcept {
    if (s.size() < static_cast<std::size_t>(n)) return false;
    v = 0;
    for (int i = 0; i < n; ++i) {
      if (s[i] < '0' || s[i] > '9') return false;
      v = v * 10 + (s[i] - '0');
    }
    s.remove_prefix(static_cast<std::size_t>(n));
    return true;
  }
  template <std::size_t N>
  bool one_of(const std::string_view (&names)[N], int* index = nullptr) noexcept {
    for (std::size_t i = 0; i < N; ++i) {
      if (lit(names[i])) {
        if (index) *index = static_cast<int>(i);
        return true;
      }
    }
    return false;
  }
  // time-of-day = hour ":" minute ":" second (second 60: a leap second)
  bool time_of_day(std::tm& tm) noexcept {
    return digits(2, tm.tm_hour) && lit(":") && digits(2, tm.tm_min) && lit(":") && digits(2, tm.tm_sec) &&
           tm.tm_hour <= 23 && tm.tm_min <= 59 && tm.tm_sec <= 60;
  }
};

// RFC 850's two-digit year, read as RFC 9110 §5.6.7 says: one that would be
// more than 50 years in the future is the latest past year ending in them.
int full_year(int yy) noexcept {
  std::time_t now = std::time(nullptr);
  std::tm tm;
  gmtime_r(&now, &tm);
  const int this_year = 1900 + tm.tm_year;
  int y = this_year - this_year % 100 + yy;
  if (y > this_year + 50) y -= 100;
  return y;
}

}  // namespace

std::optional<long long> parse_http_date(std::string_view text) noexcept {
  // Hand-made rather than strptime: strptime reads names in the process's
  // LC_TIME locale, case-insensitively, and its %y is not RFC 850's rule.
  DateText d{text};
  std::tm tm{};
  int year = 0;
  if (d.one_of(kLongDayNames)) {
    // rfc850-date: Sunday, 06-Nov-94 08:49:37 GMT
    if (!(d.lit(", ") && d.digits(2, tm.tm_mday) && d.lit("-") && d.one_of(kMonthNames, &tm.tm_mon) && d.lit("-") &&
          d.digits(2, year) && d.lit(" ") && d.time_of_day(tm) && d.lit(" GMT")))
      return std::nullopt;
    year = full_year(year);
  } else if (d.one_of(kDayNames)) {
    if (d.lit(", ")) {
      // IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
      if (!(d.digits(2, tm.tm_mday) && d.lit(" ") && d.one_of(kMonthNames, &tm.tm_mon) && d.lit(" ") &&
            d.digits(4, year) && d.lit(" ") && d.time_of_day(tm) && d.lit(" GMT")))
        return std::nullopt;
    } else {
      // asctime-date: Sun Nov  6 08:49:37 1994 (the day is "SP DIGIT" or 2DIGIT)
      if (!(d.lit(" ") && d.one_of(kMonthNames, &tm.tm_mon) && d.lit(" ") &&
            (d.lit(" ") ? d.digits(1, tm.tm_mday) : d.digits(2, tm.tm_mday)) && d.lit(" ") && d.time_of_day(tm) &&
            d.lit(" ") && d.digits(4, year)))
        return std::nullopt;
    }
  } else {
    return std::nullopt;
  }
  if (!d.s.empty() || tm.tm_mday < 1 || tm.tm_mday > 31) return std::nullopt;
  tm.tm_year = year - 1900;
  return static_cast<long long>(timegm(&tm));
}

Response file_response(const Request& req, std::string_view root) {
  if (req.method_id() != Method::get && req.method_id() != Method::head) {
    Response r = Response::error(405);
    r.set_header("Allow", "GET, HEAD");
    return r;
  }
  std::string rel;
  if (!decode_path(req.path(), rel)) return Response::error(404);
  std::string full = rel;
  if (full.back() == '/') full += "index.html";

  int fd = open_beneath(root, full);
  if (fd < 0) return Response::error(errno == EACCES ? 403 : 404);
  FileBody guard(fd, 0, 0);  // closes fd on every early return
  struct stat st;
  if (::fstat(fd, &st) != 0) return Response::error(404);
  if (S_ISDIR(st.st_mode)) {
    // A directory named index.html under a directory: not a file to serve,
    // and the redirect below would add a slash forever.
    if (rel.back() == '/') return Response::error(404);
    Response r = Response::error(301);
    // Same origin whatever the request's path looks like: "//dir" (empty
    // segments are accepted above) must not become "Location: //dir/", which
    // a browser reads as another host; nor may a backslash, which browsers
    // treat as '/'. The query goes along.
    std::string_view path = req.path();
    std::size_t lead = 0;
    while (lead < path.size() && (path[lead] == '/' || path[lead] == '\\')) ++lead;
    std::string loc = "/";
    for (char c : path.substr(lead)) {
      if (c == '\\') loc += "%5C";
      else loc += c;
    }
    loc += '/';
    if (std::string_view q = req.query(); !q.empty()) {
      loc += '?';
      loc += q;
    }
    r.set_header("Location", std::move(loc));
    return r;
  }
  if (!S_ISREG(st.st_mode)) return Response::error(404);

  const std::uint64_t size = static_cast<std::uint64_t>(st.st_size);
  std::string etag = make_etag(st);
  std::string last_modified = format_http_date(st.st_mtim.tv_sec);
  Response r;
  r.set_header("ETag", etag);
  r.set_header("Last-Modified", last_modified);
  r.set_header("Accept-Ranges", "bytes");

  // The preconditions in RFC 9110 §13.2.2's order. If-Match (or, without
  // it, If-Unmodified-Since) failing is 412: a client that made its request
  // depend on the version it holds must not get another one. Then
  // If-None-Match (or, without it, If-Modified-Since) → 304.
  bool failed = false;
  if (req.head().has_header("if-match")) {
    failed = !tag_listed_in(req, "if-match", etag, true);
  } else if (std::string_view ius = req.header("if-unmodified-since"); !ius.empty()) {
    const std::optional<long long> t = parse_http_date(ius);  // an invalid date is ignored (§13.1.4)
    failed = t && st.st_mtim.tv_sec > *t;
  }
  if (failed) {
    Response f = Response::error(412);
    f.set_header("ETag", etag);
    f.set_header("Last-Modified", last_modified);
    return f;
  }
  bool not_modified = false;
  if (req.head().has_header("if-none-match")) {
    not_modified = tag_listed_in(req, "if-none-match", etag, false);
  } else if (std::string_view ims = req.header("if-modified-since"); !ims.empty()) {
    const std::optional<long long> t = parse_http_date(ims);
    not_modified = t && st.st_mtim.tv_sec <= *t;
  }
  if (not_modified) {
    r.status = 304;
    return r;
  }
  r.content_type = std::string(content_type_for(full));

  std::uint64_t first = 0, last = size ? size - 1 : 0;
  RangeKind range = RangeKind::none;
  if (req.method_id() == Method::get) {
    if (std::string_view rh = req.header("range"); !rh.empty()) {
      std::string_view if_range = req.header("if-range");
      // If-Range with our ETag or Last-Modified keeps the range; anything else sends the whole file.
      if (if_range.empty() || if_range == etag || if_range == last_modified) range = parse_range(rh, size, first, last);
    }
  }
  if (range == RangeKind::unsatisfiable) {
    Response u = Response::error(416);
    u.set_header("Content-Range", "bytes */" + std::to_string(size));
    return u;
  }
  if (range == RangeKind::ok) {
    r.status = 206;
    r.set_header("Content-Range",
                 "bytes " + std::to_string(first) + "-" + std::to_string(last) + "/" + std::to_string(size));
    r.file.emplace(guard.release(), first, last - first + 1);
    return r;
  }
  r.file.emplace(guard.release(), 0, size);
  return r;
}

namespace {
Task<Response> file_task(Request& req, std::string root) { co_return file_response(req, root); }
}  // namespace

Handler static_files(std::string root) {
  // Not a coroutine lambda: its captures would dangle; root is copied into the task.
  return [root = std::move(root)](Request& req) { return file_task(req, root); };
}

}  // namespace corio::http
