#pragma once
// Network errors users catch by kind, as in Python:
//
//   OSError : std::system_error            any failed socket call (errno in code())
//   ├── ConnectionError
//   │   ├── ConnectionRefusedError         ECONNREFUSED
//   │   ├── ConnectionResetError           ECONNRESET
//   │   ├── ConnectionAbortedError         ECONNABORTED
//   │   └── BrokenPipeError                EPIPE (and ESHUTDOWN)
//   ├── AddressInUseError                  EADDRINUSE
//   └── NameNotFoundError                  getaddrinfo failed (code() in gai_category())
//   ConnectTimeoutError : TimeoutError     a connect deadline passed (or the kernel's ETIMEDOUT)
//   IncompleteRead, LimitOverrun           stream reads (asyncio's IncompleteReadError,
//                                          LimitOverrunError)
//
// Every message names the operation and the address:
//   "connect 127.0.0.1:9: Connection refused"
// what() is system_error's "<op> <address>: <strerror>".
#include <cstddef>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include "coro/errors.hpp"

namespace corio {

class OSError : public std::system_error {
 public:
  // err is an errno value; what is "<op> <address>".
  OSError(int err, const std::string& what) : std::system_error(err, std::system_category(), what) {}
  OSError(std::error_code ec, const std::string& what) : std::system_error(ec, what) {}
  int errno_value() const noexcept { return code().value(); }
};

class ConnectionError : public OSError {
 public:
  using OSError::OSError;
};
class ConnectionRefusedError : public ConnectionError {
 public:
  using ConnectionError::ConnectionError;
};
class ConnectionResetError : public ConnectionError {
 public:
  using ConnectionError::ConnectionError;
};
class ConnectionAbortedError : public ConnectionError {
 public:
  using ConnectionError::ConnectionError;
};
class BrokenPipeError : public ConnectionError {
 public:
  using ConnectionError::ConnectionError;
};
class AddressInUseError : public OSError {
 public:
  using OSError::OSError;
};

// getaddrinfo's EAI_* codes as an error category (message: gai_strerror).
const std::error_category& gai_category() noexcept;

class NameNotFoundError : public OSError {
 public:
  // gai_error is an EAI_* code; host is the name that failed.
  NameNotFoundError(int gai_error, std::string host);
  const std::string& host() const noexcept { return host_; }

 private:
  std::string host_;
};

class ConnectTimeoutError : public TimeoutError {
 public:
  // address: what was being connected to, as text ("127.0.0.1:80").
  explicit ConnectTimeoutError(std::string address, const std::string& detail = "timed out");
  const std::string& address() const noexcept { return address_; }

 private:
  std::string address_;
};

// EOF came before a read was satisfied (asyncio's IncompleteReadError).
// partial() holds every byte that was read; expected() is the count asked
// for (nullopt for readuntil, which waits for a separator).
class IncompleteRead : public std::runtime_error {
 public:
  IncompleteRead(std::string partial, std::optional<std::size_t> expected);
  const std::string& partial() const noexcept { return partial_; }
  std::string& partial() noexcept { return partial_; }
  std::optional<std::size_t> expected() const noexcept { return expected_; }

 private:
  std::string partial_;
  std::optional<std::size_t> expected_;
};

// A read would exceed the stream's limit (asyncio's LimitOverrunError). The
// data stays in the reader's buffer; consumed() is how many bytes to skip
// (read(n)) to get past what was examined.
class LimitOverrun : public std::runtime_error {
 public:
  LimitOverrun(const std::string& what, std::size_t consumed) : std::runtime_error(what), consumed_(consumed) {}
  std::size_t consumed() const noexcept { return consumed_; }

 private:
  std::size_t consumed_;
};

// The exception for a failed socket call: picks the class from err and says
// "<op> <where>: <strerror>". `where` is usually an address ("127.0.0.1:80").
std::exception_ptr make_os_error(int err, std::string_view op, std::string_view where);
[[noreturn]] void throw_os_error(int err, std::string_view op, std::string_view where);

}  // namespace corio
