#include "robots.hpp"

#include <cstdlib>

namespace crawler {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c | 0x20);
  }
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// Our product token: "corio-crawler/1.0 (+url)" → "corio-crawler".
std::string product_token(std::string_view ua) {
  std::size_t end = ua.find_first_of("/ ");
  return lower(ua.substr(0, end));
}

bool is_hex(unsigned char c) { return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'); }
int hex_value(unsigned char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; }

// A pattern in the form http::Url gives targets (RFC 9309 §2.2.2 compares
// them percent-encoding normalised): escapes of unreserved characters
// decoded, the others' hex upper-cased, and what a URL may not hold as it is
// (non-ASCII bytes, spaces, '"', ...) encoded. '*' and '$' are sub-delims:
// kept, with their pattern meaning.
std::string normalize_pattern(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  auto unreserved = [](unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
           c == '_' || c == '~';
  };
  auto allowed = [&](unsigned char c) {
    return unreserved(c) || (c != 0 && std::string_view("!$&'()*+,;=:@/?").find(static_cast<char>(c)) !=
                                           std::string_view::npos);
  };
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c == '%' && i + 2 < s.size() && is_hex(static_cast<unsigned char>(s[i + 1])) &&
        is_hex(static_cast<unsigned char>(s[i + 2]))) {
      c = static_cast<unsigned char>(hex_value(static_cast<unsigned char>(s[i + 1])) * 16 +
                                     hex_value(static_cast<unsigned char>(s[i + 2])));
      i += 2;
      if (unreserved(c)) {
        out += static_cast<char>(c);
        continue;
      }
    } else if (c != '%' && allowed(c)) {
      out += static_cast<char>(c);
      continue;
    }
    out += '%';
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

}  // namespace

RobotsRules RobotsRules::disallow_all() {
  RobotsRules r;
  r.rules_.push_back({"/", false});
  return r;
}

RobotsRules RobotsRules::parse(std::string_view body, std::string_view user_agent) {
  const std::string me = product_token(user_agent);
  RobotsRules mine, star;
  bool have_mine = false, have_star = false;
  // The group being read: which of mine/star it feeds.
  bool in_agents = false;       // reading the user-agent lines that open a group
  bool to_mine = false, to_star = false;
  // A UTF-8 byte order mark (files saved by Windows editors): Google's parser
  // skips it too; left in, it hides the first "User-agent" and every rule of
  // that group.
  if (body.substr(0, 3) == "\xEF\xBB\xBF") body.remove_prefix(3);
  while (!body.empty()) {
    // RFC 9309's EOL is CR, LF or CRLF (a CRLF's empty second line is skipped).
    std::size_t nl = body.find_first_of("\r\n");
    std::string_view line = body.substr(0, nl);
    body.remove_prefix(nl == std::string_view::npos ? body.size() : nl + 1);
    if (std::size_t hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string key = lower(trim(line.substr(0, colon)));
    std::string_view value = trim(line.substr(colon + 1));
    if (key == "user-agent") {
      if (!in_agents) {
        to_mine = to_star = false;  // a new group begins
        in_agents = true;
      }
      std::string agent = lower(value);
      if (agent == "*") {
        to_star = have_star = true;
      } else if (!me.empty() && product_token(agent) == me) {
        to_mine = have_mine = true;
      }
      continue;
    }
    in_agents = false;
    if (key == "allow" || key == "disallow") {
      if (key == "disallow" && value.empty()) continue;  // "Disallow:" = no rule
      Rule rule{normalize_pattern(value), key == "allow"};
      if (to_mine) mine.rules_.push_back(rule);
      if (to_star) star.rules_.push_back(rule);
    } else if (key == "crawl-delay") {
      char* end = nullptr;
      std::string v(value);
      double d = std::strtod(v.c_str(), &end);
      if (end != v.c_str() && d >= 0 && d < 86400) {
        if (to_mine) mine.delay_ = d;
        if (to_star) star.delay_ = d;
      }
    }
  }
  if (have_mine) return mine;
  if (have_star) return star;
  return RobotsRules();
}

bool robots_match(std::string_view pattern, std::string_view path) {
  bool anchored = !pattern.empty() && pattern.back() == '$';
  if (anchored) pattern.remove_suffix(1);
  // Glob matching with backtracking to the last '*' (linear in practice,
  // never exponential: one remembered star at a time).
  std::size_t p = 0, s = 0, star = std::string_view::npos, mark = 0;
  while (true) {
    if (p == pattern.size()) {
      if (!anchored || s == path.size()) return true;
      // anchored and text left: let the last star absorb more
    } else if (pattern[p] == '*') {
      star = p++;
      mark = s;
      continue;
    } else if (s < path.size() && pattern[p] == path[s]) {
      ++p;
      ++s;
      continue;
    }
    if (star == std::string_view::npos || mark >= path.size()) return false;
    p = star + 1;
    s = ++mark;
  }
}

bool RobotsRules::allowed(std::string_view target) const {
  if (target == "/robots.txt") return true;
  std::size_t best = 0;
  bool found = false, allow = true;
  for (const Rule& r : rules_) {
    if (!robots_match(r.pattern, target)) continue;
    std::size_t len = r.pattern.size();
    if (!found || len > best || (len == best && r.allow)) {
      best = len;
      allow = r.allow;
      found = true;
    }
  }
  return allow;
}

}  // namespace crawler
