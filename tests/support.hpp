#pragma once
// Test support: run a body once per backend, as SUBCASEs.
#include <doctest/doctest.h>

#include <cstdio>

#include "loop/event_loop.hpp"

namespace corio::test {

inline LoopOptions options_for(detail::BackendKind k) {
  LoopOptions o;
  o.backend = k;
  return o;
}

// Runs body(EventLoop&) under io_uring and again under epoll. If io_uring is
// refused on this machine the first run says so instead of passing silently.
template <class F>
void on_each_backend(F&& body) {
  SUBCASE("io_uring") {
    EventLoop loop(options_for(detail::BackendKind::io_uring));
    if (loop.backend_kind() != detail::BackendKind::io_uring) {
      MESSAGE("io_uring refused here; this subcase ran on epoll: " << loop.fallback_notice());
    }
    body(loop);
  }
  SUBCASE("epoll") {
    EventLoop loop(options_for(detail::BackendKind::epoll));
    REQUIRE(loop.backend_kind() == detail::BackendKind::epoll);
    body(loop);
  }
}

}  // namespace corio::test
