#include "net/errors.hpp"

#include <doctest/doctest.h>
#include <netdb.h>

#include <cerrno>
#include <ostream>

using namespace corio;

namespace {
template <class E>
bool thrown_as(int err, const char* op = "connect", const char* where = "127.0.0.1:9") {
  try {
    throw_os_error(err, op, where);
  } catch (const E&) {
    return true;
  } catch (...) {
    return false;
  }
  return false;
}
}  // namespace

TEST_CASE("socket errors are caught by kind and all derive from OSError and std::system_error") {
  CHECK(thrown_as<ConnectionRefusedError>(ECONNREFUSED));
  CHECK(thrown_as<ConnectionResetError>(ECONNRESET));
  CHECK(thrown_as<ConnectionAbortedError>(ECONNABORTED));
  CHECK(thrown_as<BrokenPipeError>(EPIPE));
  CHECK(thrown_as<AddressInUseError>(EADDRINUSE));
  CHECK(thrown_as<ConnectionError>(ECONNRESET));
  CHECK(thrown_as<OSError>(ECONNREFUSED));
  CHECK(thrown_as<std::system_error>(EPIPE));
  CHECK(thrown_as<OSError>(EHOSTUNREACH));
  CHECK_FALSE(thrown_as<ConnectionError>(EHOSTUNREACH));
  CHECK_FALSE(thrown_as<ConnectionResetError>(ECONNREFUSED));
}

TEST_CASE("the message names the operation, the address and the reason, and code() carries errno") {
  try {
    throw_os_error(ECONNREFUSED, "connect", "127.0.0.1:9");
    FAIL("not thrown");
  } catch (const OSError& e) {
    CHECK(std::string(e.what()) == "connect 127.0.0.1:9: Connection refused");
    CHECK(e.errno_value() == ECONNREFUSED);
    CHECK(e.code() == std::error_code(ECONNREFUSED, std::system_category()));
    CHECK(e.code() == std::errc::connection_refused);
  }
}

TEST_CASE("a kernel connect timeout is a ConnectTimeoutError, which is a TimeoutError") {
  try {
    throw_os_error(ETIMEDOUT, "connect", "[::1]:80");
    FAIL("not thrown");
  } catch (const TimeoutError& e) {
    CHECK(std::string(e.what()) == "connect [::1]:80: Connection timed out");
    auto* ct = dynamic_cast<const ConnectTimeoutError*>(&e);
    REQUIRE(ct);
    CHECK(ct->address() == "[::1]:80");
  }
  // ETIMEDOUT on anything else (a keepalive failure on recv) stays an OSError.
  CHECK(thrown_as<OSError>(ETIMEDOUT, "recv"));
  ConnectTimeoutError t("127.0.0.1:80", "timed out after 250 ms");
  CHECK(std::string(t.what()) == "connect 127.0.0.1:80: timed out after 250 ms");
}

TEST_CASE("name resolution failures carry the host and getaddrinfo's reason") {
  NameNotFoundError e(EAI_NONAME, "no-such-host.invalid");
  CHECK(e.host() == "no-such-host.invalid");
  CHECK(e.code().category() == gai_category());
  CHECK(e.code().value() == EAI_NONAME);
  CHECK(std::string(e.what()) == std::string("getaddrinfo no-such-host.invalid: ") + gai_strerror(EAI_NONAME));
  const OSError& base = e;
  CHECK(base.errno_value() == EAI_NONAME);
}

TEST_CASE("IncompleteRead keeps the partial data and the expected count; LimitOverrun keeps consumed") {
  IncompleteRead r("abc", 10);
  CHECK(r.partial() == "abc");
  CHECK(r.expected() == 10u);
  CHECK(std::string(r.what()) == "3 bytes read on a total of 10 expected bytes");
  IncompleteRead u("", std::nullopt);
  CHECK_FALSE(u.expected());
  CHECK(std::string(u.what()) == "0 bytes read on a total of undefined expected bytes");
  LimitOverrun l("Separator is not found, and chunk exceed the limit", 65536);
  CHECK(l.consumed() == 65536u);
}
