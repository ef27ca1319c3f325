#include "robots.hpp"
#include "net/http/url.hpp"

#include <doctest/doctest.h>

using crawler::RobotsRules;
using crawler::robots_match;

TEST_CASE("the star group applies when no group names us") {
  auto r = RobotsRules::parse(
      "User-agent: *\nDisallow: /private\nAllow: /private/open\n\nUser-agent: other\nDisallow: /\n", "corio-crawler/1.0");
  CHECK(r.allowed("/"));
  CHECK(r.allowed("/public/x"));
  CHECK_FALSE(r.allowed("/private"));
  CHECK_FALSE(r.allowed("/private/x?y=1"));
  CHECK(r.allowed("/private/open/x"));
  CHECK(r.allowed("/robots.txt"));
}

TEST_CASE("our own group wins over the star group, matched case-insensitively") {
  auto r = RobotsRules::parse("user-agent: *\ndisallow: /\n\nUser-Agent: Corio-Crawler\nDisallow: /no\nCrawl-delay: 1.5\n",
                              "corio-crawler/1.0 (+https://example.test)");
  CHECK(r.allowed("/yes"));
  CHECK_FALSE(r.allowed("/no/x"));
  REQUIRE(r.crawl_delay().has_value());
  CHECK(*r.crawl_delay() == doctest::Approx(1.5));
}

TEST_CASE("several user-agent lines share one group and groups for us merge") {
  auto r = RobotsRules::parse(
      "User-agent: a\nUser-agent: corio-crawler\nDisallow: /one\n# comment\nUser-agent: corio-crawler\nDisallow: /two # why\n",
      "corio-crawler");
  CHECK_FALSE(r.allowed("/one"));
  CHECK_FALSE(r.allowed("/two"));
  CHECK(r.allowed("/three"));
  CHECK(r.rule_count() == 2);
}

TEST_CASE("the longest match wins and allow wins ties") {
  auto r = RobotsRules::parse("User-agent: *\nDisallow: /a\nAllow: /a/b\nDisallow: /a/b/c\nAllow: /x\nDisallow: /x\n", "bot");
  CHECK_FALSE(r.allowed("/a/z"));
  CHECK(r.allowed("/a/b/z"));
  CHECK_FALSE(r.allowed("/a/b/c"));
  CHECK(r.allowed("/x/y"));
}

TEST_CASE("wildcards and end anchors match as RFC 9309 says") {
  CHECK(robots_match("/", "/anything"));
  CHECK(robots_match("/*.php", "/a/b.php?x"));
  CHECK(robots_match("/*.php$", "/a/b.php"));
  CHECK_FALSE(robots_match("/*.php$", "/a/b.php?x"));
  CHECK(robots_match("/fish*", "/fishheads"));
  CHECK_FALSE(robots_match("/fish", "/Fish"));
  CHECK(robots_match("*", ""));
  CHECK(robots_match("/a*b*c$", "/aXbYbZc"));
  CHECK_FALSE(robots_match("/a*b*c$", "/aXbYbZcd"));
  auto r = RobotsRules::parse("User-agent: *\nDisallow: /*?session=\nDisallow: /*.pdf$\n", "bot");
  CHECK_FALSE(r.allowed("/page?session=1"));
  CHECK(r.allowed("/page?other=1"));
  CHECK_FALSE(r.allowed("/doc.pdf"));
  CHECK(r.allowed("/doc.pdf.html"));
}

TEST_CASE("an empty disallow, garbage lines and no rules allow everything") {
  CHECK(RobotsRules::parse("User-agent: *\nDisallow:\n", "bot").allowed("/x"));
  CHECK(RobotsRules::parse("\x01\x02 not robots \xff\n::::\nDisallow /x\n", "bot").allowed("/x"));
  CHECK(RobotsRules::parse("", "bot").allowed("/x"));
  CHECK(RobotsRules::allow_all().allowed("/x"));
  CHECK_FALSE(RobotsRules::disallow_all().allowed("/x"));
  CHECK(RobotsRules::disallow_all().allowed("/robots.txt"));
  // CRLF line ends
  CHECK_FALSE(RobotsRules::parse("User-agent: *\r\nDisallow: /x\r\n", "bot").allowed("/x/y"));
}

TEST_CASE("pathological patterns stay fast") {
  std::string pattern = "/";
  for (int i = 0; i < 200; ++i) pattern += "*a";
  pattern += "$";
  std::string path = "/" + std::string(5000, 'a') + "b";
  CHECK_FALSE(robots_match(pattern, path));
}

TEST_CASE("a robots.txt that starts with a UTF-8 byte order mark keeps its first group") {
  // Saved by a Windows editor; left in, the BOM hid "User-agent" and every
  // rule of the group was dropped (everything allowed).
  auto r = RobotsRules::parse("\xEF\xBB\xBFUser-agent: *\nDisallow: /private\n", "corio-crawler/1.0");
  CHECK_FALSE(r.allowed("/private/x"));
  CHECK(r.allowed("/public"));
  CHECK(r.rule_count() == 1);
}

// RFC 9309's EOL is CR, LF or CRLF. Lines were split at LF only, so a file
// saved with CR line ends was one line: "User-agent: *\rDisallow: /private"
// named the agent "*\rdisallow: /private", matched nothing, and every
// disallowed page was fetched.
TEST_CASE("lines end at CR, LF or CRLF") {
  for (const char* body : {"User-agent: *\rDisallow: /private\rAllow: /private/open\r",
                           "User-agent: *\r\nDisallow: /private\r\nAllow: /private/open\r\n",
                           "User-agent: *\nDisallow: /private\r\nAllow: /private/open"}) {
    CAPTURE(std::string(body));
    auto r = RobotsRules::parse(body, "corio-crawler/1.0");
    CHECK_FALSE(r.allowed("/private/x"));
    CHECK(r.allowed("/private/open/x"));
    CHECK(r.allowed("/public"));
    CHECK(r.rule_count() == 2);
  }
}

// RFC 9309 §2.2.2: a rule and a URL are compared with percent-encoding
// normalised. The crawler's targets come from http::Url, which decodes
// escapes of unreserved characters, upper-cases the hex of the others and
// encodes non-ASCII bytes; the patterns were compared as written, so
// "Disallow: /~joe" held but "/%7Ejoe", "/%c3%a9" and "/ツ" (the RFC's own
// example) disallowed nothing.
TEST_CASE("rules and targets are compared with their percent-encoding normalised") {
  auto r = RobotsRules::parse(
      "User-agent: *\nDisallow: /%7Ejoe\nDisallow: /caf%c3%a9\nDisallow: /foo/bar/\xE3\x83\x84\nAllow: /%2Fok\n"
      "Disallow: /%2F\n",
      "corio-crawler");
  auto target = [](const char* url) { return corio::http::Url::parse(url).target(); };
  CHECK_FALSE(r.allowed(target("http://h/~joe/x")));
  CHECK_FALSE(r.allowed(target("http://h/%7ejoe")));
  CHECK_FALSE(r.allowed(target("http://h/caf%C3%A9")));
  CHECK_FALSE(r.allowed(target("http://h/caf\xC3\xA9")));
  CHECK_FALSE(r.allowed(target("http://h/foo/bar/%E3%83%84")));
  CHECK_FALSE(r.allowed(target("http://h/foo/bar/\xE3\x83\x84")));
  // An escaped reserved character stays escaped: "%2F" is not "/".
  CHECK_FALSE(r.allowed(target("http://h/%2f")));
  CHECK(r.allowed(target("http://h/%2Fok")));
  CHECK(r.allowed(target("http://h/x/")));
  CHECK(r.allowed(target("http://h/cafe")));
}
