// fetch: a small curl. Shows corio::http::Client end to end.
//
//   fetch http://127.0.0.1:8080/json
//   fetch -v -L -H 'Accept: application/json' http://127.0.0.1:8080/old-place
//   fetch -X POST -d 'name=value' -o reply.txt http://127.0.0.1:8080/form
//   fetch --cacert ca.pem https://127.0.0.1:8443/      fetch -k https://self-signed.test/
//
// The body goes to stdout (or -o FILE) as it arrives, in bounded memory.
// Exit status: 0 when a response arrived (any status; --fail: only 2xx/3xx),
// 1 with a one-line reason on stderr for every failure (refused, timed out,
// name not found, malformed response, TLS verification: "certificate has
// expired"), 2 for bad usage, 130/143 after Ctrl+C/SIGTERM.
#include <corio/corio.hpp>

#include <cerrno>
#include <chrono>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <typeinfo>
#include <string>
#include <vector>

#include "cli.hpp"

namespace http = corio::http;
using corio::Task;

namespace {

const char* kUsage =
    "usage: fetch [options] URL\n"
    "  -X, --request METHOD   request method (default GET, POST with -d)\n"
    "  -H, --header 'K: V'    add a request header (repeatable)\n"
    "  -d, --data DATA        request body (@FILE reads it from FILE)\n"
    "  -o, --output FILE      write the body to FILE instead of stdout\n"
    "  -L, --location         follow redirects\n"
    "      --max-redirs N     at most N redirects (default 10)\n"
    "  -k, --insecure         do not verify the server's certificate (dangerous)\n"
    "      --cacert FILE      trust the CAs in FILE instead of the system store\n"
    "  -m, --max-time SECS    give up after SECS seconds in total\n"
    "      --connect-timeout SECS\n"
    "  -f, --fail             on HTTP status >= 400: write no body, exit 1\n"
    "      --compressed       accept gzip/deflate and decode (on by default)\n"
    "  -v, --verbose          show the exchange and its timing on stderr\n"
    "      --backend io_uring|epoll\n";

struct Options {
  std::string url, method, data, output, cacert;
  bool data_set = false, location = false, insecure = false, verbose = false, fail = false;
  int max_redirs = 10;
  double max_time = 0, connect_timeout = 10;
  http::HeaderList headers;
};

[[noreturn]] void usage_error(const std::string& why) {
  std::fprintf(stderr, "fetch: %s (try --help)\n", why.c_str());
  std::exit(2);
}

// Seconds become nanoseconds in 64 bits, which overflow past about 292
// years; converting a larger (or infinite, or NaN) double is undefined.
constexpr double kMaxSeconds = 1e9;  // about 31 years

double seconds(const std::string& opt, const std::string& v) {
  char* end = nullptr;
  double d = std::strtod(v.c_str(), &end);
  // Written so that NaN fails it too.
  if (end == v.c_str() || *end || !(d >= 0 && d <= kMaxSeconds)) {
    usage_error(opt + " needs a number of seconds in 0.." + std::to_string(static_cast<long long>(kMaxSeconds)) +
                ", not '" + v + "'");
  }
  return d;
}

// A whole number in 0..INT_MAX, checked before any conversion: casting a
// double out of int's range is undefined (1e10 came out as INT_MIN).
int count(const std::string& opt, const std::string& v) {
  char* end = nullptr;
  errno = 0;
  long n = std::strtol(v.c_str(), &end, 10);
  if (end == v.c_str() || *end || errno || n < 0 || n > INT_MAX) {
    usage_error(opt + " needs a whole number in 0.." + std::to_string(INT_MAX) + ", not '" + v + "'");
  }
  return static_cast<int>(n);
}

std::string read_file(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) {
    std::fprintf(stderr, "fetch: cannot read %s: %s\n", path.c_str(), std::strerror(errno));
    std::exit(1);
  }
  std::string s;
  char buf[65536];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) s.append(buf, n);
  // A read error (a directory: EISDIR) is not an empty body.
  if (std::ferror(f)) {
    std::fprintf(stderr, "fetch: cannot read %s: %s\n", path.c_str(), std::strerror(errno));
    std::exit(1);
  }
  std::fclose(f);
  return s;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage_error(a + " needs a value");
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      std::printf("%s", kUsage);
      std::exit(0);
    } else if (a == "-X" || a == "--request") {
      o.method = value();
    } else if (a == "-H" || a == "--header") {
      std::string h = value();
      std::size_t colon = h.find(':');
      if (colon == std::string::npos || colon == 0) usage_error("header '" + h + "' is not 'Name: value'");
      std::string v = h.substr(colon + 1);
      while (!v.empty() && v.front() == ' ') v.erase(0, 1);
      o.headers.emplace_back(h.substr(0, colon), v);
    } else if (a == "-d" || a == "--data") {
      std::string d = value();
      o.data = d.rfind('@', 0) == 0 ? read_file(d.substr(1)) : d;
      o.data_set = true;
    } else if (a == "-o" || a == "--output") {
      o.output = value();
    } else if (a == "-L" || a == "--location") {
      o.location = true;
    } else if (a == "--max-redirs") {
      o.max_redirs = count(a, value());
    } else if (a == "-k" || a == "--insecure") {
      o.insecure = true;
    } else if (a == "--cacert") {
      o.cacert = value();
    } else if (a == "-m" || a == "--max-time") {
      o.max_time = seconds(a, value());
    } else if (a == "--connect-timeout") {
      o.connect_timeout = seconds(a, value());
    } else if (a == "-f" || a == "--fail") {
      o.fail = true;
    } else if (a == "--compressed") {
      // on by default
    } else if (a == "-v" || a == "--verbose") {
      o.verbose = true;
    } else if (a == "--backend") {
      std::string b = value();
      if (b != "io_uring" && b != "epoll") usage_error("--backend must be io_uring or epoll");
      setenv("CORIO_BACKEND", b.c_str(), 1);
    } else if (!a.empty() && a[0] == '-') {
      usage_error("unknown option " + a);
    } else if (o.url.empty()) {
      o.url = a;
    } else {
      usage_error("more than one URL");
    }
  }
  if (o.url.empty()) usage_error("no URL");
  if (o.url.find("://") == std::string::npos) o.url = "http://" + o.url;  // as curl does
  if (o.method.empty()) o.method = o.data_set ? "POST" : "GET";
  return o;
}

// "> " before each line of a request head, "< " before a response's.
void show_head(char mark, std::string_view head) {
  while (!head.empty()) {
    std::size_t nl = head.find("\r\n");
    std::string_view line = head.substr(0, nl);
    if (!line.empty()) std::fprintf(stderr, "%c %.*s\n", mark, static_cast<int>(line.size()), line.data());
    if (nl == std::string_view::npos) break;
    head.remove_prefix(nl + 2);
  }
}

Task<int> fetch(const Options* o) {
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  auto ms = [t0] { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); };
  http::ClientOptions co;
  co.follow_redirects = o->location;
  co.max_redirects = o->max_redirs;
  co.connect_timeout = std::chrono::duration_cast<corio::Duration>(std::chrono::duration<double>(o->connect_timeout));
  co.max_connections_per_host = 1;
  if (o->verbose) {
    co.trace = [ms](http::TraceEvent e, std::string_view text) {
      switch (e) {
        case http::TraceEvent::connecting:
          std::fprintf(stderr, "* [%7.2f ms] connecting to %.*s\n", ms(), static_cast<int>(text.size()), text.data());
          break;
        case http::TraceEvent::connected:
          std::fprintf(stderr, "* [%7.2f ms] connected\n", ms());
          break;
        case http::TraceEvent::reused:
          std::fprintf(stderr, "* [%7.2f ms] reusing the connection to %.*s\n", ms(), static_cast<int>(text.size()),
                       text.data());
          break;
        case http::TraceEvent::request_head:
          show_head('>', text);
          std::fprintf(stderr, ">\n");
          break;
        case http::TraceEvent::response_head:
          std::fprintf(stderr, "* [%7.2f ms] response head\n", ms());
          show_head('<', text);
          std::fprintf(stderr, "<\n");
          break;
        case http::TraceEvent::redirect:
          std::fprintf(stderr, "* [%7.2f ms] following the redirect to %.*s\n", ms(), static_cast<int>(text.size()),
                       text.data());
          break;
      }
    };
  }
  co.tls.ca_file = o->cacert;
  co.tls.insecure_skip_verify_dangerous = o->insecure;
  http::Client client(co);
  // -o FILE is created once a response arrived, as curl does: a failed
  // request leaves no empty file behind (nor truncates an existing one).
  FILE* out = o->output.empty() ? stdout : nullptr;
  const std::string out_name = o->output.empty() ? "standard output" : o->output;
  std::uint64_t bytes = 0;
  int status = 0;
  auto run = [](http::Client* c, const Options* o, FILE** outp, const std::string* out_name, std::uint64_t* bytes,
                int* status) -> Task<void> {
    auto r = co_await c->stream(o->method, o->url, o->headers, o->data);
    *status = r.status;
    if (o->fail && r.status >= 400) co_return;  // like curl -f: no body, no output file
    if (!*outp) {
      *outp = std::fopen(o->output.c_str(), "wb");
      if (!*outp) throw std::runtime_error("cannot write " + *out_name + ": " + std::strerror(errno));
    }
    FILE* const out = *outp;
    for (;;) {
      std::string piece = co_await r.read_chunk();
      if (piece.empty()) break;
      if (std::fwrite(piece.data(), 1, piece.size(), out) != piece.size()) {
        if (out == stdout) std::clearerr(stdout);  // reported here: check_stdout_at_exit need not repeat it
        throw std::runtime_error("cannot write " + *out_name + ": " + std::strerror(errno));
      }
      *bytes += piece.size();
    }
  };
  if (o->max_time > 0) {
    auto limit = std::chrono::duration_cast<corio::Duration>(std::chrono::duration<double>(o->max_time));
    bool timed_out = false;
    try {
      co_await corio::wait_for(run(&client, o, &out, &out_name, &bytes, &status), limit);
    } catch (const corio::TimeoutError& e) {
      if (typeid(e) != typeid(corio::TimeoutError)) throw;
      timed_out = true;
    }
    if (timed_out) throw corio::TimeoutError("no complete response within " + std::to_string(o->max_time) + " s");
  } else {
    co_await run(&client, o, &out, &out_name, &bytes, &status);
  }
  // fwrite only fills stdio's buffer: a full disk shows when it is flushed.
  // Exiting 0 then would lose the body silently (curl reports "Failure
  // writing output" and exits 23). Standard output is checked at exit by
  // check_stdout_at_exit, as in every example; -o FILE is checked here.
  if (out && out != stdout) {
    errno = 0;
    const bool flushed = std::fflush(out) == 0 && !std::ferror(out);
    const int flush_errno = errno;
    const bool closed = std::fclose(out) == 0;
    if (!flushed || !closed) {
      const int e = flush_errno ? flush_errno : errno;
      throw std::runtime_error("cannot write " + out_name + ": " + (e ? std::strerror(e) : "I/O error"));
    }
  }
  if (o->verbose) std::fprintf(stderr, "* [%7.2f ms] done: %llu body bytes\n", ms(), static_cast<unsigned long long>(bytes));
  if (o->fail && status >= 400) {
    std::fprintf(stderr, "fetch: the server answered %d\n", status);
    co_return 1;
  }
  co_return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // A reader that went away (fetch URL | head -c 10) is a failed write,
  // reported with exit status 1 as curl does, not a silent death by SIGPIPE.
  std::signal(SIGPIPE, SIG_IGN);
  example::check_stdout_at_exit("fetch");
  Options o = parse(argc, argv);
  try {
    return corio::run(fetch(&o));
  } catch (const corio::SignalExit& e) {
    return e.exit_status();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fetch: %s\n", e.what());
    return 1;
  }
}
