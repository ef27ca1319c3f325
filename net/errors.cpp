#include "net/errors.hpp"

#include <netdb.h>

#include <cerrno>

namespace corio {

namespace {

class GaiCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "getaddrinfo"; }
  std::string message(int code) const override { return ::gai_strerror(code); }
};

template <class E>
std::exception_ptr make(int err, const std::string& what) {
  return std::make_exception_ptr(E(err, what));
}

}  // namespace

const std::error_category& gai_category() noexcept {
  static const GaiCategory cat;
  return cat;
}

NameNotFoundError::NameNotFoundError(int gai_error, std::string host)
    : OSError(std::error_code(gai_error, gai_category()), "getaddrinfo " + host), host_(std::move(host)) {}

ConnectTimeoutError::ConnectTimeoutError(std::string address, const std::string& detail)
    : TimeoutError("connect " + address + ": " + detail), address_(std::move(address)) {}

IncompleteRead::IncompleteRead(std::string partial, std::optional<std::size_t> expected)
    : std::runtime_error(std::to_string(partial.size()) + " bytes read on a total of " +
                         (expected ? std::to_string(*expected) : std::string("undefined")) + " expected bytes"),
      partial_(std::move(partial)),
      expected_(expected) {}

std::exception_ptr make_os_error(int err, std::string_view op, std::string_view where) {
  std::string what(op);
  if (!where.empty()) {
    what += ' ';
    what += where;
  }
  switch (err) {
    case ECONNREFUSED: return make<ConnectionRefusedError>(err, what);
    case ECONNRESET: return make<ConnectionResetError>(err, what);
    case ECONNABORTED: return make<ConnectionAbortedError>(err, what);
    case EPIPE:
    case ESHUTDOWN: return make<BrokenPipeError>(err, what);
    case EADDRINUSE: return make<AddressInUseError>(err, what);
    case ETIMEDOUT:
      if (op == "connect") return std::make_exception_ptr(ConnectTimeoutError(std::string(where), "Connection timed out"));
      return make<OSError>(err, what);
    default: return make<OSError>(err, what);
  }
}

void throw_os_error(int err, std::string_view op, std::string_view where) {
  std::rethrow_exception(make_os_error(err, op, where));
}

}  // namespace corio
