#pragma once
// Name resolution that never blocks the loop.
//
//   std::vector<SocketAddress> addrs = co_await corio::resolve("localhost", 8080);
//
// Numeric hosts ("127.0.0.1", "::1") are parsed at once, without a thread.
// Names go to getaddrinfo(3) on a short-lived thread, whose answer comes back
// through EventLoop::call_soon_threadsafe; that one function is the seam where
// the executor's to_thread (or c-ares) replaces the thread later.
//
// Results keep getaddrinfo's order (RFC 6724 preference), without duplicates.
// Failure throws NameNotFoundError carrying the host and getaddrinfo's code
// ("getaddrinfo no-such-host.invalid: Name or service not known").
// Cancellation: the awaiting task resumes with CancelledError at once; the
// lookup thread runs to its end and its answer is dropped.
#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <vector>

#include "coro/task.hpp"
#include "net/address.hpp"

namespace corio {

struct ResolveOptions {
  int family = AF_UNSPEC;   // AF_INET or AF_INET6 to restrict the answer
  int type = SOCK_STREAM;   // socket type the addresses are for
  // For binding: an empty host then means every local interface (0.0.0.0 and
  // ::) instead of loopback.
  bool passive = false;
};

Task<std::vector<SocketAddress>> resolve(std::string host, std::uint16_t port, ResolveOptions opts = {});

}  // namespace corio
