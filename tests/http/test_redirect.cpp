#include "net/http/redirect.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace corio::http;

TEST_CASE("is_redirect is true for the statuses that carry a Location to follow, and only for them") {
  for (int st : {301, 302, 303, 307, 308}) CHECK_MESSAGE(is_redirect(st), st);
  for (int st : {200, 204, 300, 304, 305, 306, 309, 399, 400, 404, 500, 0, -1}) CHECK_MESSAGE(!is_redirect(st), st);
  static_assert(is_redirect(308));  // usable where a constant is needed
}

TEST_CASE("the too-many-redirects message lists the chain and where it pointed next") {
  std::vector<std::string> chain{"http://a/1", "http://a/2"};
  CHECK(too_many_redirects_message(2, chain, "/3") == "more than 2 redirects: http://a/1 -> http://a/2 -> /3");
  CHECK(too_many_redirects_message(0, {}, "http://b/") == "more than 0 redirects: http://b/");
}
