#pragma once
// robots.txt (RFC 9309): which paths a crawler may fetch.
//
//   RobotsRules r = RobotsRules::parse(body, "corio-crawler");
//   r.allowed("/private/x?y")   // false under "Disallow: /private"
//
// - Groups start with one or more `user-agent:` lines; the group whose
//   product token matches ours (case-insensitively; several such groups are
//   merged) applies, else the `*` group, else everything is allowed.
// - Within a group the longest matching `allow`/`disallow` pattern wins; on a
//   tie, allow wins. Patterns support `*` (any run of characters) and a final
//   `$` (end of the path). An empty `disallow:` allows everything.
// - `/robots.txt` itself is always allowed. `crawl-delay` is read (not in the
//   RFC, but widely used) and reported; unknown lines are ignored.
// - What to do when robots.txt cannot be fetched is the caller's: RFC 9309
//   says a 4xx means "no rules" (allow_all()) and a 5xx or network failure
//   "assume complete disallow" (disallow_all()).
// The parser never throws: robots.txt is input from the network.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace crawler {

class RobotsRules {
 public:
  static RobotsRules parse(std::string_view body, std::string_view user_agent);
  static RobotsRules allow_all() { return RobotsRules(); }
  static RobotsRules disallow_all();

  // `target` is a URL's path with its query ("/a/b?c").
  bool allowed(std::string_view target) const;
  // Seconds between requests the site asks of us, if it says.
  std::optional<double> crawl_delay() const noexcept { return delay_; }
  std::size_t rule_count() const noexcept { return rules_.size(); }

 private:
  struct Rule {
    std::string pattern;
    bool allow;
  };
  std::vector<Rule> rules_;
  std::optional<double> delay_;
};

// Whether `pattern` (robots syntax: '*' wildcard, trailing '$' anchor)
// matches a prefix of `path` (the whole path when anchored).
bool robots_match(std::string_view pattern, std::string_view path);

}  // namespace crawler
