#include "coro/exception_group.hpp"

#include <doctest/doctest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "coro/errors.hpp"

// ExceptionGroup on its own (no loop): asyncio's text, iteration, and the
// C++ stand-ins for `except*` (contains / rethrow_if / split / subgroup).

using namespace corio;

namespace {

struct ValueErr : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct TypeErr : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <class E>
std::exception_ptr make(const std::string& what) {
  return std::make_exception_ptr(E(what));
}

std::exception_ptr group(std::string msg, std::vector<std::exception_ptr> v) {
  return std::make_exception_ptr(ExceptionGroup(std::move(msg), std::move(v)));
}

std::string what_of(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (const CancelledError& c) {
    return c.what();
  }
}

// Inner group nested in an outer one: outer[ValueErr v1, inner[TypeErr t1, ValueErr v2]].
ExceptionGroup nested() {
  return ExceptionGroup("outer", {make<ValueErr>("v1"), group("inner", {make<TypeErr>("t1"), make<ValueErr>("v2")})});
}

}  // namespace

TEST_CASE("an ExceptionGroup describes itself like asyncio and is iterable") {
  ExceptionGroup g("unhandled errors in a TaskGroup", {make<ValueErr>("a"), make<TypeErr>("b")});
  CHECK(std::string(g.what()) == "unhandled errors in a TaskGroup (2 sub-exceptions)");
  CHECK(g.message() == "unhandled errors in a TaskGroup");
  CHECK(g.size() == 2);
  std::vector<std::string> seen;
  for (const auto& e : g) seen.push_back(what_of(e));
  CHECK(seen == std::vector<std::string>{"a", "b"});
  CHECK(what_of(g[1]) == "b");
  CHECK_THROWS_AS(g[2], std::out_of_range);

  ExceptionGroup one("m", {make<ValueErr>("x")});
  CHECK(std::string(one.what()) == "m (1 sub-exception)");

  // It is a std::exception, so a plain handler sees it.
  try {
    throw g;
  } catch (const std::exception& e) {
    CHECK(std::string(e.what()).find("2 sub-exceptions") != std::string::npos);
  }
}

TEST_CASE("an empty group or a null exception is refused") {
  CHECK_THROWS_AS(ExceptionGroup("m", {}), std::invalid_argument);
  CHECK_THROWS_AS(ExceptionGroup("m", {std::exception_ptr{}}), std::invalid_argument);
}

// Python: ExceptionGroup("m", []) raises ValueError ("second argument
// (exceptions) must be a non-empty sequence").
TEST_CASE("an empty group raises ValueError, as Python's does") {
  CHECK_THROWS_AS(ExceptionGroup("m", {}), ValueError);
}

TEST_CASE("details() lists every sub-exception, nested groups indented") {
  std::string d = nested().details();
  CHECK(d ==
        "outer (2 sub-exceptions)\n"
        "  [1] v1\n"
        "  [2] inner (2 sub-exceptions)\n"
        "    [1] t1\n"
        "    [2] v2");
  ExceptionGroup c("m", {std::make_exception_ptr(CancelledError("bye")), std::make_exception_ptr(42)});
  CHECK(c.details() == "m (2 sub-exceptions)\n  [1] CancelledError: bye\n  [2] unknown exception");
}

TEST_CASE("contains and rethrow_if look through nested groups") {
  ExceptionGroup g = nested();
  CHECK(g.contains<ValueErr>());
  CHECK(g.contains<TypeErr>());
  CHECK(g.contains<std::runtime_error>());
  CHECK_FALSE(g.contains<std::logic_error>());
  CHECK_FALSE(g.contains<CancelledError>());
  CHECK_THROWS_WITH_AS(g.rethrow_if<TypeErr>(), "t1", TypeErr);
  CHECK_THROWS_WITH_AS(g.rethrow_if<ValueErr>(), "v1", ValueErr);  // depth first: the outer one comes first
  CHECK_NOTHROW(g.rethrow_if<std::logic_error>());

  // CancelledError is not a std::exception, yet it is found by its type.
  ExceptionGroup c("m", {make<ValueErr>("v"), std::make_exception_ptr(CancelledError("msg"))});
  CHECK(c.contains<CancelledError>());
  CHECK_THROWS_AS(c.rethrow_if<CancelledError>(), CancelledError);
}

TEST_CASE("split keeps the nesting on both sides; subgroup is the matching side") {
  ExceptionGroup g = nested();
  auto [match, rest] = g.split<ValueErr>();
  REQUIRE(match);
  REQUIRE(rest);
  // match: outer[v1, inner[v2]]
  CHECK(match->message() == "outer");
  REQUIRE(match->size() == 2);
  CHECK(what_of((*match)[0]) == "v1");
  REQUIRE(exception_is<ExceptionGroup>((*match)[1]));
  try {
    std::rethrow_exception((*match)[1]);
  } catch (const ExceptionGroup& inner) {
    CHECK(inner.message() == "inner");
    REQUIRE(inner.size() == 1);
    CHECK(what_of(inner[0]) == "v2");
  }
  // rest: outer[inner[t1]]
  REQUIRE(rest->size() == 1);
  CHECK(rest->contains<TypeErr>());
  CHECK_FALSE(rest->contains<ValueErr>());

  auto [all, none] = g.split<std::runtime_error>();
  CHECK(all);
  CHECK_FALSE(none);
  CHECK_FALSE(g.subgroup<std::logic_error>());
  REQUIRE(g.subgroup<TypeErr>());
  CHECK(g.subgroup<TypeErr>()->leaves().size() == 1);
}

TEST_CASE("a nested group that is itself the requested type matches as a whole") {
  ExceptionGroup g = nested();
  auto [match, rest] = g.split<ExceptionGroup>();
  REQUIRE(match);
  REQUIRE(match->size() == 1);
  CHECK(exception_is<ExceptionGroup>((*match)[0]));
  REQUIRE(rest);
  CHECK(what_of((*rest)[0]) == "v1");
  CHECK(g.contains<ExceptionGroup>());
}

TEST_CASE("leaves() flattens depth first") {
  std::vector<std::string> whats;
  for (const auto& e : nested().leaves()) whats.push_back(what_of(e));
  CHECK(whats == std::vector<std::string>{"v1", "t1", "v2"});
}
