#pragma once
// Redirects as corio's client and the crawler (which follows them hop by hop
// itself) both see them: which statuses redirect, and how a chain that went
// on too long is reported, so the two say the same thing.
#include <string>
#include <string_view>
#include <vector>

namespace corio::http {

// Whether a response with this status redirects to its Location (RFC 9110
// §15.4): 301, 302, 303, 307 and 308. Not 300 (a choice for the user), 304
// (a cache answer) or 305/306 (deprecated, unused).
constexpr bool is_redirect(int status) noexcept {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

// The message of a TooManyRedirects: "more than 5 redirects: a -> b -> c",
// where `chain` lists the URLs that redirected, in order, and `next` is where
// the last of them pointed.
std::string too_many_redirects_message(int max_redirects, const std::vector<std::string>& chain, std::string_view next);

}  // namespace corio::http
