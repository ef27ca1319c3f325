// Static files (net/http/static_files.hpp): the HTTP-date parser, and the
// conditional requests that use it, against the server on loopback.
#include "net/http/static_files.hpp"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <clocale>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "coro/sleep.hpp"
#include "coro/task_handle.hpp"
#include "coro/timeout.hpp"
#include "loop/event_loop.hpp"
#include "net/http/client.hpp"
#include "net/http/server.hpp"
#include "tests/net/net_support.hpp"
#include "tests/support.hpp"

using namespace corio;
using namespace std::chrono_literals;
namespace http = corio::http;

namespace {

// RFC 9110 §5.6.7's example instant, in its three formats.
constexpr long long kExample = 784111777;  // Sun, 06 Nov 1994 08:49:37 GMT

// A directory holding one file whose modification time is kExample.
struct Root {
  std::string dir;
  Root() {
    char tmpl[] = "/tmp/corio_static_XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    dir = tmpl;
    std::ofstream(dir + "/old.txt") << "old file\n";
    // A directory named like the index file it stands in for.
    std::filesystem::create_directories(dir + "/loop/index.html");
    timespec times[2] = {{kExample, 0}, {kExample, 0}};
    REQUIRE(::utimensat(AT_FDCWD, (dir + "/old.txt").c_str(), times, 0) == 0);
  }
  ~Root() { std::filesystem::remove_all(dir); }
};

Task<int> status_with(http::Client& c, const std::string& url, const std::string& name, const std::string& value) {
  http::HeaderList h;  // named: GCC 12 mishandles braced temporaries in co_await
  h.emplace_back(name, value);
  co_return (co_await c.get(url, h)).status;
}

// static_files(root) served on a free loopback port, and the URL of its
// old.txt. The caller ends it with request_shutdown() and awaits the task.
struct FileServer {
  TaskHandle<void> task;
  std::string url;
};

Task<FileServer> serve_old_txt(std::string root) {
  auto port = std::make_shared<std::uint16_t>(0);  // on_listening may outlive this frame
  http::ServeOptions o;
  o.on_listening = [port](const SocketAddress& a) { *port = a.port(); };
  FileServer s{create_task(http::serve(http::static_files(std::move(root)), "127.0.0.1", 0, o), "http server"), {}};
  for (int i = 0; i < 500 && *port == 0; ++i) co_await sleep(2ms);
  REQUIRE(*port != 0);
  s.url = "http://127.0.0.1:" + std::to_string(*port) + "/old.txt";
  co_return s;
}

// Every format a recipient must accept (RFC 9110 §5.6.7) makes the same
// comparison with the file's time: not modified since that second, modified
// since the one before; a date that fits no format is ignored.
Task<void> if_modified_since_in_every_format(std::string root) {
  FileServer server = co_await serve_old_txt(std::move(root));
  const std::string url = server.url;
  http::Client c;
  auto plain = co_await c.get(url);
  CHECK(plain.status == 200);
  CHECK(plain.header("Last-Modified") == "Sun, 06 Nov 1994 08:49:37 GMT");
  for (const char* same_text : {"Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT",
                           "Sun Nov  6 08:49:37 1994"}) {
    std::string same = same_text;
    CAPTURE(same);
    CHECK(co_await status_with(c, url, "If-Modified-Since", same) == 304);
  }
  for (const char* before_text : {"Sun, 06 Nov 1994 08:49:36 GMT", "Sunday, 06-Nov-94 08:49:36 GMT",
                             "Sun Nov  6 08:49:36 1994", "Sunday, 06-Nov-94 08:49:37"}) {
    std::string before = before_text;
    CAPTURE(before);
    CHECK(co_await status_with(c, url, "If-Modified-Since", before) == 200);
  }
  EventLoop::current().request_shutdown();
  co_await wait_for(server.task, 5s);
}

// If-Match and If-Unmodified-Since (RFC 9110 §13.2.2): a failed one is 412
// before anything else is looked at; If-Match takes precedence over
// If-Unmodified-Since, and both over If-None-Match's 304.
Task<void> preconditions_fail_with_412(std::string root) {
  FileServer server = co_await serve_old_txt(std::move(root));
  const std::string url = server.url;
  http::Client c;
  auto plain = co_await c.get(url);
  REQUIRE(plain.status == 200);
  const std::string etag(plain.header("ETag"));
  REQUIRE(etag.size() > 2);
  REQUIRE(etag.front() == '"');
  const std::string same = "Sun, 06 Nov 1994 08:49:37 GMT", before = "Sun, 06 Nov 1994 08:49:36 GMT";
  struct Case {
    std::vector<std::pair<std::string, std::string>> fields;
    int status;
  };
  const std::vector<Case> cases = {
      // If-Match: strong comparison; "*" matches the file that exists.
      {{{"If-Match", etag}}, 200},
      {{{"If-Match", "*"}}, 200},
      {{{"If-Match", "\"nope\", " + etag}}, 200},
      {{{"If-Match", "\"nope\""}}, 412},
      {{{"If-Match", "W/" + etag}}, 412},
      // If-Unmodified-Since: modified after the date fails; an invalid date is ignored.
      {{{"If-Unmodified-Since", same}}, 200},
      {{{"If-Unmodified-Since", before}}, 412},
      {{{"If-Unmodified-Since", "yesterday"}}, 200},
      // A date before 1970 is a date (the file is newer), not an invalid one.
      {{{"If-Unmodified-Since", "Wed, 31 Dec 1969 23:59:59 GMT"}}, 412},
      // Precedence: If-Match decides, If-Unmodified-Since is then not evaluated.
      {{{"If-Match", etag}, {"If-Unmodified-Since", before}}, 200},
      {{{"If-Match", "\"nope\""}, {"If-Unmodified-Since", same}}, 412},
      // 412 before 304; a precondition that holds leaves If-None-Match its 304.
      {{{"If-Match", "\"nope\""}, {"If-None-Match", etag}}, 412},
      {{{"If-Unmodified-Since", before}, {"If-Modified-Since", same}}, 412},
      {{{"If-Match", etag}, {"If-None-Match", etag}}, 304},
      // A list split over several field lines is one list (RFC 9110 §5.3).
      {{{"If-Match", "\"nope\""}, {"If-Match", etag}}, 200},
      {{{"If-None-Match", "\"nope\""}, {"If-None-Match", etag}}, 304},
      // A Range request whose precondition fails gets 412, not the range.
      {{{"If-Match", "\"nope\""}, {"Range", "bytes=0-2"}}, 412},
      {{{"If-Match", etag}, {"Range", "bytes=0-2"}}, 206},
  };
  for (const Case& k : cases) {
    http::HeaderList h;
    std::string shown;
    for (const auto& [n, v] : k.fields) {
      h.emplace_back(n, v);
      shown += n + ": " + v + "; ";
    }
    CAPTURE(shown);
    auto r = co_await c.get(url, h);
    CHECK(r.status == k.status);
    if (k.status == 412) CHECK(r.body.find("Precondition Failed") != std::string::npos);
  }
  EventLoop::current().request_shutdown();
  co_await wait_for(server.task, 5s);
}

// A directory whose index.html is itself a directory: not found, rather
// than a redirect that adds one more slash each time.
Task<void> index_directory_is_not_found(std::string root) {
  FileServer server = co_await serve_old_txt(std::move(root));
  const std::string base = server.url.substr(0, server.url.size() - std::string("/old.txt").size());
  http::Client c;
  auto r = co_await c.get(base + "/loop/");
  CHECK(r.status == 404);
  r = co_await c.get(base + "/loop");  // the slash added once, then the same 404
  CHECK(r.status == 404);
  CHECK(r.history.size() == 1);
  EventLoop::current().request_shutdown();
  co_await wait_for(server.task, 5s);
}

// Symbolic links: followed within the root, a 404 when they lead out of it
// (a file, a directory, a relative link climbing out, an absolute one).
Task<void> symlinks_stay_beneath_the_root(std::string root) {
  FileServer server = co_await serve_old_txt(std::move(root));
  const std::string base = server.url.substr(0, server.url.size() - std::string("/old.txt").size());
  http::Client c;
  for (std::string path : {"/inside.txt", "/inside-dir/old.txt", "/old.txt", "//old.txt", "/up/old.txt"}) {
    CAPTURE(path);
    auto r = co_await c.get(base + path);
    CHECK(r.status == 200);
    CHECK(r.body == "old file\n");
  }
  for (std::string path : {"/outside.txt", "/outside-dir/secret.txt", "/climb.txt", "/inside-dir/outside.txt"}) {
    CAPTURE(path);
    auto r = co_await c.get(base + path);
    CHECK(r.status == 404);
    CHECK(r.body.find("secret") == std::string::npos);
  }
  EventLoop::current().request_shutdown();
  co_await wait_for(server.task, 5s);
}

}  // namespace

TEST_CASE("symbolic links are followed only while they stay beneath the root") {
  Root root;
  Root outside;  // a sibling directory holding the secret
  std::ofstream(outside.dir + "/secret.txt") << "secret\n";
  namespace fs = std::filesystem;
  fs::create_symlink("old.txt", root.dir + "/inside.txt");
  fs::create_directory_symlink(root.dir, root.dir + "/inside-dir");  // absolute, inside
  fs::create_directory_symlink("loop/..", root.dir + "/up");          // through "..", inside
  fs::create_symlink(outside.dir + "/secret.txt", root.dir + "/outside.txt");
  fs::create_directory_symlink(outside.dir, root.dir + "/outside-dir");
  fs::create_symlink("../" + fs::path(outside.dir).filename().string() + "/secret.txt", root.dir + "/climb.txt");
  test::on_each_backend([&](EventLoop& loop) { test::run_bounded(loop, symlinks_stay_beneath_the_root(root.dir)); });
}

TEST_CASE("a directory named index.html is not found, not redirected without end") {
  Root root;
  test::on_each_backend([&](EventLoop& loop) { test::run_bounded(loop, index_directory_is_not_found(root.dir)); });
}

TEST_CASE("parse_http_date reads IMF-fixdate, RFC 850 and asctime dates and nothing else") {
  CHECK(http::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT") == kExample);
  CHECK(http::parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT") == kExample);
  CHECK(http::parse_http_date("Sun Nov  6 08:49:37 1994") == kExample);
  CHECK(http::parse_http_date("Sun Nov 16 08:49:37 1994") == kExample + 10 * 86400);
  CHECK(http::parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT") == 0);
  // Before the epoch: a valid date, not the "invalid" answer.
  CHECK(http::parse_http_date("Wed, 31 Dec 1969 23:59:59 GMT") == -1);
  CHECK(http::parse_http_date("Sat, 01 Jan 1966 00:00:00 GMT") == -126230400);
  CHECK(http::parse_http_date(http::format_http_date(1700000000)) == 1700000000);
  // A two-digit year more than 50 years ahead is the last such year past.
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  const int this_year = 1900 + tm.tm_year;
  const int ahead = (this_year + 49) % 100, behind = (this_year + 51) % 100;
  char text[64];
  std::snprintf(text, sizeof text, "Monday, 01-Jan-%02d 00:00:00 GMT", ahead);
  CHECK(http::format_http_date(http::parse_http_date(text).value()).substr(12, 4) == std::to_string(this_year + 49));
  std::snprintf(text, sizeof text, "Monday, 01-Jan-%02d 00:00:00 GMT", behind);
  CHECK(http::format_http_date(http::parse_http_date(text).value()).substr(12, 4) == std::to_string(this_year + 51 - 100));
  for (const char* bad_text : {"", "Sun, 06 Nov 1994 08:49:37", "Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 6 Nov 1994 08:49:37 GMT",
                          "sun, 06 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 94 08:49:37 GMT", "Sun, 32 Nov 1994 08:49:37 GMT",
                          "Sun, 06 Nov 1994 24:00:00 GMT", "Sun, 06 Xyz 1994 08:49:37 GMT",
                          "Sun, 06 Nov 1994 08:49:37 GMT ", "Sunday, 06-Nov-1994 08:49:37 GMT",
                          "Sun, 06-Nov-94 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37", "Sun Nov 6 08:49:37 1994",
                          "Sun Nov 06 08:49:37 1994x", "Sunday Nov  6 08:49:37 1994", "Sun Nov  6 08:49:37 94"}) {
    std::string bad = bad_text;
    CAPTURE(bad);
    CHECK_FALSE(http::parse_http_date(bad).has_value());
  }
}

// A program that calls setlocale(LC_ALL, "") must still send English day
// and month names: strftime's %a and %b follow LC_TIME ("Sa, 28 Nov" in
// German). The test builds a German locale with localedef (the locales
// package, which scripts/setup.sh installs) into a directory of its own.
TEST_CASE("HTTP dates are in English whatever the C locale") {
  char tmpl[] = "/tmp/corio_locale_XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  const std::string dir = tmpl;
  const std::string cmd = "localedef -i de_DE -f UTF-8 " + dir + "/de_DE.UTF-8 >/dev/null 2>&1";
  REQUIRE_MESSAGE(std::system(cmd.c_str()) == 0, "localedef could not build de_DE.UTF-8 (is the locales package installed?)");
  ::setenv("LOCPATH", dir.c_str(), 1);
  const char* set = std::setlocale(LC_ALL, "de_DE.UTF-8");
  std::string probe;
  if (set) {
    // The locale really is German: strftime says so.
    std::tm tm{};
    std::time_t t = kExample;
    gmtime_r(&t, &tm);
    char b[64];
    probe.assign(b, std::strftime(b, sizeof b, "%a %b", &tm));
  }
  const std::string formatted = http::format_http_date(kExample);
  const std::string formatted2 = http::format_http_date(1700000000);  // a Tuesday in November
  // Waits for the next second, so that the Date line is rebuilt under this locale.
  const std::time_t start = std::time(nullptr);
  while (std::time(nullptr) == start) ::usleep(10'000);
  ::usleep(20'000);  // the coarse clock may lag a few milliseconds
  const std::string date = std::string(http::date_line());
  std::setlocale(LC_ALL, "C");
  ::unsetenv("LOCPATH");
  std::filesystem::remove_all(dir);
  REQUIRE(set != nullptr);
  CHECK(probe == "So Nov");
  CHECK(formatted == "Sun, 06 Nov 1994 08:49:37 GMT");
  CHECK(formatted2 == "Tue, 14 Nov 2023 22:13:20 GMT");
  CAPTURE(date);
  REQUIRE(date.size() == 37);
  CHECK(date.substr(0, 6) == "Date: ");
  CHECK(http::parse_http_date(date.substr(6, 29)) > start);
  CHECK(date.substr(35) == "\r\n");
}

TEST_CASE("format_http_date writes every field with its leading zeros, and clamps out-of-range years") {
  CHECK(http::format_http_date(0) == "Thu, 01 Jan 1970 00:00:00 GMT");
  CHECK(http::format_http_date(951782400) == "Tue, 29 Feb 2000 00:00:00 GMT");
  CHECK(http::format_http_date(253402300799LL) == "Fri, 31 Dec 9999 23:59:59 GMT");
  CHECK(http::format_http_date(253402300800LL * 2) == "Fri, 31 Dec 9999 23:59:59 GMT");
  CHECK(http::format_http_date(-1) == "Wed, 31 Dec 1969 23:59:59 GMT");
  CHECK(http::format_http_date(-62167219200LL) == "Sat, 01 Jan 0000 00:00:00 GMT");
  CHECK(http::format_http_date(-62167219200LL - 86400) == "Sat, 01 Jan 0000 00:00:00 GMT");
  for (long long t = -86400LL * 366 * 3; t < 86400LL * 366 * 60; t += 86400LL * 37 + 3671) {
    CAPTURE(t);
    CHECK(http::parse_http_date(http::format_http_date(t)) == t);
  }
}

TEST_CASE("If-Modified-Since is honoured in the IMF-fixdate, RFC 850 and asctime formats") {
  Root root;
  test::on_each_backend([&](EventLoop& loop) { test::run_bounded(loop, if_modified_since_in_every_format(root.dir)); });
}

TEST_CASE("If-Match and If-Unmodified-Since that fail answer 412, in RFC 9110's order") {
  Root root;
  test::on_each_backend([&](EventLoop& loop) { test::run_bounded(loop, preconditions_fail_with_412(root.dir)); });
}
