#include "net/http/redirect.hpp"

namespace corio::http {

std::string too_many_redirects_message(int max_redirects, const std::vector<std::string>& chain, std::string_view next) {
  std::string out = "more than " + std::to_string(max_redirects) + " redirects: ";
  for (const std::string& u : chain) out += u + " -> ";
  out += next;
  return out;
}

}  // namespace corio::http
