#pragma once
// Helpers for the TLS tests: a PKI made once per test process with the
// openssl CLI (tests/net/make_test_certs.sh) in a temp dir removed at exit,
// free ports for peer processes, and blocking commands run off the loop.
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <utility>

namespace corio::test {

class TestPki {
 public:
  static const TestPki& get() {
    static TestPki pki;
    return pki;
  }
  // dir + "/" + name, e.g. file("ca.pem").
  std::string file(const std::string& name) const { return dir_ + "/" + name; }
  const std::string& dir() const { return dir_; }

 private:
  TestPki() {
    char tmpl[] = "/tmp/corio-tls-XXXXXX";
    if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    const char* script = std::getenv("CORIO_TLS_CERT_SCRIPT");
    if (!script) throw std::runtime_error("CORIO_TLS_CERT_SCRIPT is not set (run the tests through meson)");
    std::string cmd = std::string("bash '") + script + "' '" + dir_ + "' >/dev/null";
    if (std::system(cmd.c_str()) != 0) throw std::runtime_error("making the test certificates failed: " + cmd);
  }
  ~TestPki() {
    std::string cmd = "rm -rf '" + dir_ + "'";
    (void)std::system(cmd.c_str());
  }
  std::string dir_;
};

// A port nothing listens on right now (for a peer process to bind).
inline std::uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("free_port: bind failed");
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

// Runs a shell command (blocking: call it through to_thread) and returns its
// exit status and stdout. Commands carry their own time limits (timeout(1)).
inline std::pair<int, std::string> run_command(std::string cmd) {
  std::pair<int, std::string> res{-1, {}};
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return res;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) res.second.append(buf, n);
  int st = ::pclose(p);
  res.first = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return res;
}

}  // namespace corio::test
