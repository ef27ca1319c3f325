#include "coro/outcome.hpp"

#include <doctest/doctest.h>

#include <memory>
#include <stdexcept>
#include <string>

// Outcome<T>: what gather(return_exceptions, ...) hands back per child.

using namespace corio;

TEST_CASE("an outcome holds a value or an exception, and value() rethrows the latter") {
  Outcome<std::string> ok(std::string("fine"));
  CHECK(ok.has_value());
  CHECK(static_cast<bool>(ok));
  CHECK_FALSE(ok.has_exception());
  CHECK(ok.exception() == nullptr);
  CHECK(ok.value() == "fine");

  Outcome<std::string> bad(std::make_exception_ptr(std::runtime_error("nope")));
  CHECK_FALSE(bad.has_value());
  CHECK(bad.has_exception());
  CHECK(bad.has_exception<std::runtime_error>());
  CHECK(bad.has_exception<std::exception>());
  CHECK_FALSE(bad.has_exception<std::logic_error>());
  CHECK_FALSE(bad.cancelled());
  CHECK_THROWS_WITH_AS(bad.value(), "nope", std::runtime_error);

  Outcome<std::unique_ptr<int>> moved(std::make_unique<int>(3));
  std::unique_ptr<int> p = std::move(moved).value();
  CHECK(*p == 3);
}

TEST_CASE("a cancelled outcome is told apart from a failure; Outcome<void> has no value") {
  Outcome<int> c(std::make_exception_ptr(CancelledError("gone")));
  CHECK(c.cancelled());
  CHECK_FALSE(c.has_exception<std::exception>());  // CancelledError is not a std::exception
  CHECK_THROWS_AS(c.value(), CancelledError);

  Outcome<void> v;
  CHECK(v.has_value());
  CHECK_NOTHROW(v.value());
  Outcome<void> f(std::make_exception_ptr(std::runtime_error("x")));
  CHECK(f.has_exception<std::runtime_error>());
  CHECK_THROWS_AS(f.value(), std::runtime_error);
}
