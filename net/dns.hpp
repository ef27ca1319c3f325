#pragma once
// Name resolution that never blocks the loop.
//
//   std::vector<SocketAddress> addrs = co_await corio::resolve("localhost", 8080);
//
// Numeric hosts ("127.0.0.1", "::1") are parsed at once, without a thread.
// Names go to getaddrinfo(3) on the loop's default executor (corio::to_thread,
// loop/to_thread.hpp), so lookups share its threads with other blocking work
// and a busy pool queues them; one function in dns.cpp is the seam where
// c-ares could replace it.
//
// Results keep getaddrinfo's order (RFC 6724 preference), without duplicates.
// Failure throws NameNotFoundError carrying the host and getaddrinfo's code
// ("getaddrinfo no-such-host.invalid: Name or service not known").
// Cancellation: the awaiting task resumes with CancelledError at once (the
// loop never waits for getaddrinfo); a lookup not yet started never runs, one
// running finishes on its pool thread and its answer is dropped. Closing the
// loop waits for lookups still running (as for any to_thread call; corio::run
// bounds that wait with RunOptions::shutdown_grace).
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
