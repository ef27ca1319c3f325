#pragma once
// TlsRef: how option structs (ConnectOptions, ServerOptions) name a
// TlsContext, so that `open_connection(host, port, {.tls = ctx})` works.
//
// Why not a shared_ptr member: g++ 12 mishandles an aggregate temporary
// passed by value inside a co_await expression (it destroys a bitwise copy
// as well as the original), so `co_await open_connection(h, p, {.tls = ctx})`
// would drop a reference twice. The option structs therefore stay trivially
// destructible (net/tls.cpp static_asserts it), and TlsRef is a plain
// pointer: the caller's shared_ptr keeps the context alive for the call,
// and the connection (or server) takes its own strong reference
// (TlsContext derives from enable_shared_from_this).
#include <cstddef>
#include <memory>

namespace corio {

class TlsContext;

class TlsRef {
 public:
  TlsRef() noexcept = default;
  TlsRef(std::nullptr_t) noexcept {}
  TlsRef(const std::shared_ptr<TlsContext>& ctx) noexcept : p_(ctx.get()) {}
  TlsContext* get() const noexcept { return p_; }
  explicit operator bool() const noexcept { return p_ != nullptr; }
  // A strong reference (defined in net/tls.cpp).
  std::shared_ptr<TlsContext> lock() const;

 private:
  TlsContext* p_ = nullptr;
};

}  // namespace corio
