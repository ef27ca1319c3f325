#include "net/dns.hpp"

#include <netdb.h>

#include <cerrno>

#include "loop/to_thread.hpp"
#include "net/errors.hpp"

namespace corio {

namespace {

// What getaddrinfo answered: addresses, or an EAI_* code (with errno for EAI_SYSTEM).
struct Answer {
  std::vector<SocketAddress> addrs;
  int gai_error = 0;
  int sys_errno = 0;
};

Answer blocking_lookup(const std::string& host, std::uint16_t port, const ResolveOptions& opts) {
  addrinfo hints{};
  hints.ai_family = opts.family;
  hints.ai_socktype = opts.type;
  hints.ai_flags = opts.passive ? AI_PASSIVE : 0;
  std::string service = std::to_string(port);
  addrinfo* res = nullptr;
  Answer a;
  a.gai_error = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &res);
  if (a.gai_error != 0) {
    a.sys_errno = errno;
    return a;
  }
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    SocketAddress s = SocketAddress::from_sockaddr(ai->ai_addr, ai->ai_addrlen);
    bool dup = false;
    for (const SocketAddress& seen : a.addrs) dup = dup || seen == s;
    if (!dup) a.addrs.push_back(s);
  }
  ::freeaddrinfo(res);
  return a;
}

// Runs getaddrinfo on the loop's default executor (to_thread) and awaits
// its answer: the one place that knows how resolution leaves the loop thread.
// A cancelled lookup abandons the call (to_thread's default): the task
// resumes with CancelledError at once, the pool thread finishes getaddrinfo
// and its answer is dropped on the loop thread.
Task<Answer> lookup_off_loop(std::string host, std::uint16_t port, ResolveOptions opts) {
  co_return co_await to_thread(blocking_lookup, std::move(host), port, opts);
}

}  // namespace

Task<std::vector<SocketAddress>> resolve(std::string host, std::uint16_t port, ResolveOptions opts) {
  if (auto a = SocketAddress::try_parse(host, port)) {
    if (opts.family != AF_UNSPEC && a->family() != opts.family) {
      throw NameNotFoundError(EAI_ADDRFAMILY, host);
    }
    co_return std::vector<SocketAddress>{*a};
  }
  // A bracketed IPv6 literal, as users copy it from URLs. Refused for the
  // wrong family like the bare literal above: open_connection and
  // start_server restricted to IPv4 must not use IPv6 after all.
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    if (auto a = SocketAddress::try_parse(std::string_view(host).substr(1, host.size() - 2), port)) {
      if (opts.family != AF_UNSPEC && a->family() != opts.family) {
        throw NameNotFoundError(EAI_ADDRFAMILY, host);
      }
      co_return std::vector<SocketAddress>{*a};
    }
  }
  if (host.empty() && opts.passive) {
    std::vector<SocketAddress> all;
    if (opts.family != AF_INET6) all.push_back(SocketAddress::any(AF_INET, port));
    if (opts.family != AF_INET) all.push_back(SocketAddress::any(AF_INET6, port));
    co_return all;
  }
  Answer a = co_await lookup_off_loop(host, port, opts);
  if (a.gai_error == EAI_SYSTEM) throw OSError(a.sys_errno, "getaddrinfo " + host);
  if (a.gai_error != 0) throw NameNotFoundError(a.gai_error, host);
  if (a.addrs.empty()) throw NameNotFoundError(EAI_NONAME, host);
  co_return std::move(a.addrs);
}

}  // namespace corio
