#pragma once
// The crawler's command line: its options and their parsing (--help, usage
// errors with status 2).
#include <cstddef>
#include <set>
#include <string>
#include <vector>

namespace crawler {

struct Options {
  std::vector<std::string> starts;
  std::string output, state, user_agent = "corio-crawler/0.1";
  int concurrency = 16, per_host = 4, max_depth = 5, retries = 2;
  long max_pages = 10000;
  std::size_t max_bytes = 5u << 20;
  double delay = 0, timeout = 15;
  bool robots = true, quiet = false;
  std::set<std::string> allow_hosts;
};

// Parses argv; prints the usage and exits 0 for --help, exits 2 with a
// one-line reason for bad usage. --backend sets CORIO_BACKEND.
Options parse_args(int argc, char** argv);

}  // namespace crawler
