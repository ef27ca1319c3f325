#pragma once
// A few lines of command-line parsing shared by the examples (Debian's CLI11
// is not a core dependency). Conventions (DESIGN.md): --help, --host
// (default 127.0.0.1), --port (default 8080; 0 picks a free port),
// --backend io_uring|epoll; exit status 2 for bad usage, 1 for a runtime
// failure with a one-line reason on stderr.
#include <corio/corio.hpp>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace example {

namespace detail {
inline const char* stdout_prog = "";
inline void check_stdout() {
  errno = 0;
  if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
    // errno is 0 when the failed write was an earlier one (stdio keeps
    // only the error flag).
    const int e = errno;
    if (e) std::fprintf(stderr, "%s: cannot write standard output: %s\n", stdout_prog, std::strerror(e));
    else std::fprintf(stderr, "%s: cannot write standard output\n", stdout_prog);
    std::_Exit(1);
  }
}
}  // namespace detail

// Makes lost output an error, as coreutils' close_stdout does: at exit,
// standard output is flushed, and if that or an earlier write failed (a full
// disk, /dev/full), "PROG: cannot write standard output: REASON" goes to
// stderr and the exit status is 1. printf only fills stdio's buffer, so
// without this a program whose output went nowhere would exit 0.
inline void check_stdout_at_exit(const char* prog) {
  detail::stdout_prog = prog;
  std::atexit(detail::check_stdout);
}

class Args {
 public:
  Args(int argc, char** argv, const char* prog, const char* usage) : argc_(argc), argv_(argv), prog_(prog), usage_(usage) {}

  // Walks the arguments, calling on(name, value) for each "--name value" or
  // "--name=value" whose name is listed in `options`, and on(name, "")
  // for names listed in `flags` (both space separated). Handles --help
  // (prints usage, exits 0); anything else is a usage error (exit 2).
  template <class F>
  void parse(const char* options, const char* flags, F on) {
    for (int i = 1; i < argc_; ++i) {
      std::string a = argv_[i];
      if (a == "--help" || a == "-h") {
        std::printf("%s", usage_);
        std::exit(0);
      }
      if (a.rfind("--", 0) != 0) bad("unexpected argument '" + a + "'");
      std::string name = a.substr(2), value;
      bool has_value = false;
      if (auto eq = name.find('='); eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
        has_value = true;
      }
      if (!listed(options, name) && !listed(flags, name)) bad("unknown option --" + name);
      if (listed(flags, name)) {
        if (has_value) bad("--" + name + " takes no value");
        on(name, "");  // never null: callers may copy it like a value
        continue;
      }
      if (!has_value) {
        if (i + 1 >= argc_) bad("--" + name + " needs a value");
        value = argv_[++i];
      }
      on(name, value.c_str());
    }
  }

  [[noreturn]] void bad(const std::string& why) const {
    std::fprintf(stderr, "%s: %s (try --help)\n", prog_, why.c_str());
    std::exit(2);
  }

  long number(const std::string& name, const char* v, long lo, long hi) const {
    char* end = nullptr;
    errno = 0;
    long n = std::strtol(v, &end, 10);
    if (errno || !*v || *end || n < lo || n > hi) {
      bad("--" + name + " must be a number in " + std::to_string(lo) + ".." + std::to_string(hi));
    }
    return n;
  }

  void backend(const char* v, corio::RunOptions& opts) const {
    if (std::strcmp(v, "io_uring") == 0) opts.loop.backend = corio::detail::BackendKind::io_uring;
    else if (std::strcmp(v, "epoll") == 0) opts.loop.backend = corio::detail::BackendKind::epoll;
    else bad(std::string("--backend must be io_uring or epoll, not '") + v + "'");
  }

 private:
  static bool listed(const char* names, const std::string& name) {
    std::string f = std::string(" ") + names + " ";
    return f.find(" " + name + " ") != std::string::npos;
  }

  int argc_;
  char** argv_;
  const char* prog_;
  const char* usage_;
};

}  // namespace example
