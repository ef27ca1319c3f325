#include "options.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace crawler {

namespace {

const char* kUsage =
    "usage: crawler URL... [options]\n"
    "  --output FILE        JSON Lines, one object per URL (default: stdout)\n"
    "  --concurrency N      fetches in flight overall (default 16)\n"
    "  --per-host N         fetches in flight per host (default 4)\n"
    "  --delay SECS         at least this long between requests to one host (default 0;\n"
    "                       a robots.txt Crawl-delay raises it)\n"
    "  --max-depth N        links followed from the start URLs (default 5)\n"
    "  --max-pages N        stop after N URLs (default 10000)\n"
    "  --max-bytes N        largest body read, in bytes (default 5 MiB)\n"
    "  --allow-host HOST    also follow links to HOST (repeatable; default: the start hosts)\n"
    "  --retries N          retries after a timeout, a connection error or a 5xx, with\n"
    "                       backoff (default 2); for robots.txt too\n"
    "  --timeout SECS       per request: its whole head and body, each hop of a redirect\n"
    "                       on its own (default 15)\n"
    "  --state FILE         keep the frontier and results in FILE (SQLite); a stopped\n"
    "                       crawl started again with the same FILE resumes\n"
    "  --no-robots          do not fetch or obey robots.txt\n"
    "  --user-agent UA      (default corio-crawler/0.1)\n"
    "  --quiet              no progress line\n"
    "  --backend io_uring|epoll\n"
    "robots.txt (RFC 9309) is fetched once per host per run. A 4xx means no rules.\n"
    "A 5xx or no answer (after the retries) means complete disallow for this run\n"
    "only: the host's pages are recorded with that error or, with --state, left\n"
    "queued, so that the next run with the same FILE asks for robots.txt again.\n";

[[noreturn]] void usage_error(const std::string& why) {
  std::fprintf(stderr, "crawler: %s (try --help)\n", why.c_str());
  std::exit(2);
}

double number(const std::string& opt, const std::string& v, double lo, double hi) {
  char* end = nullptr;
  double d = std::strtod(v.c_str(), &end);
  // Written so that NaN fails it too: "nan" passed `d < lo || d > hi`, and
  // the casts to int/long/size_t that follow are undefined for it.
  if (end == v.c_str() || *end || !(d >= lo && d <= hi)) usage_error(opt + ": '" + v + "' is not a valid value");
  return d;
}

}  // namespace

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    std::string name = a, value;
    bool has_value = false;
    if (auto eq = a.find('='); a.rfind("--", 0) == 0 && eq != std::string::npos) {
      name = a.substr(0, eq);
      value = a.substr(eq + 1);
      has_value = true;
    }
    auto val = [&]() -> std::string {
      if (has_value) return value;
      if (i + 1 >= argc) usage_error(name + " needs a value");
      return argv[++i];
    };
    if (name == "--help" || name == "-h") {
      // As every example (cli.hpp's check at exit): help that could not be
      // written is a failure, not a silent exit 0.
      errno = 0;
      if (std::fputs(kUsage, stdout) == EOF || std::fflush(stdout) != 0 || std::ferror(stdout)) {
        const int e = errno;
        std::fprintf(stderr, "crawler: cannot write standard output%s%s\n", e ? ": " : "", e ? std::strerror(e) : "");
        std::exit(1);
      }
      std::exit(0);
    } else if (name == "--output") o.output = val();
    else if (name == "--concurrency") o.concurrency = static_cast<int>(number(name, val(), 1, 100000));
    else if (name == "--per-host") o.per_host = static_cast<int>(number(name, val(), 1, 100000));
    else if (name == "--delay") o.delay = number(name, val(), 0, 3600);
    else if (name == "--max-depth") o.max_depth = static_cast<int>(number(name, val(), 0, 1000));
    else if (name == "--max-pages") o.max_pages = static_cast<long>(number(name, val(), 1, 1e9));
    else if (name == "--max-bytes") o.max_bytes = static_cast<std::size_t>(number(name, val(), 1, 1e12));
    else if (name == "--allow-host") o.allow_hosts.insert(val());
    else if (name == "--retries") o.retries = static_cast<int>(number(name, val(), 0, 100));
    else if (name == "--timeout") o.timeout = number(name, val(), 0.001, 86400);
    else if (name == "--state") o.state = val();
    else if (name == "--no-robots") o.robots = false;
    else if (name == "--user-agent") {
      // Sent as a header line: a CR or LF would add headers of its own
      // (http::Client writes ClientOptions::user_agent as it is).
      o.user_agent = val();
      if (o.user_agent.find_first_of(std::string("\r\n\0", 3)) != std::string::npos)
        usage_error("--user-agent must not hold CR, LF or NUL");
    }
    else if (name == "--quiet") o.quiet = true;
    else if (name == "--backend") {
      std::string b = val();
      if (b != "io_uring" && b != "epoll") usage_error("--backend must be io_uring or epoll");
      setenv("CORIO_BACKEND", b.c_str(), 1);
    } else if (a.rfind("-", 0) == 0) usage_error("unknown option " + a);
    else o.starts.push_back(a);
  }
  if (o.starts.empty() && o.state.empty()) usage_error("no start URL");
  return o;
}

}  // namespace crawler
