#include "links.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using corio::http::Url;

namespace {
std::vector<std::string> strs(const crawler::PageLinks& l) {
  std::vector<std::string> out;
  for (const Url& u : l.urls) out.push_back(u.str());
  return out;
}
}  // namespace

TEST_CASE("a and area hrefs are found in document order") {
  auto raw = crawler::extract_raw_links(
      "<html><body><a href='/one'>1</a><p><a href=\"two.html\">2</a></p>"
      "<map><area href='three'></map><a name=x>no href</a><link href='/style.css'></body></html>");
  CHECK(raw.hrefs == std::vector<std::string>{"/one", "two.html", "three"});
  CHECK(raw.base_href.empty());
}

TEST_CASE("links are resolved against the page and the first base href") {
  Url page = Url::parse("http://site.test/dir/page.html");
  auto plain = crawler::extract_links(page, "<a href='a.html'>x</a><a href='../b.html#frag'>y</a>");
  CHECK(strs(plain) == std::vector<std::string>{"http://site.test/dir/a.html", "http://site.test/b.html"});
  auto based = crawler::extract_links(
      page, "<head><base href='/other/'><base href='/ignored/'></head><a href='a.html'>x</a>");
  CHECK(strs(based) == std::vector<std::string>{"http://site.test/other/a.html"});
  auto abs_base = crawler::extract_links(page, "<base href='http://cdn.test/x/'><a href='y'>y</a>");
  CHECK(strs(abs_base) == std::vector<std::string>{"http://cdn.test/x/y"});
}

TEST_CASE("non-http links are counted and dropped, duplicates removed") {
  Url page = Url::parse("https://site.test/");
  auto l = crawler::extract_links(page,
                                  "<a href='mailto:a@b.c'>m</a><a href='javascript:void(0)'>j</a>"
                                  "<a href='/x'>x</a><a href='/x#again'>x</a><a href='https://SITE.test/x'>x</a>"
                                  "<a href='http://bad host/'>bad</a><a href='ftp://f.test/'>f</a>");
  CHECK(strs(l) == std::vector<std::string>{"https://site.test/x"});
  CHECK(l.other_schemes == 3);
  CHECK(l.malformed == 1);
}

TEST_CASE("malformed markup yields what a browser would see") {
  Url page = Url::parse("http://site.test/");
  auto l = crawler::extract_links(page, "<a href=/unclosed>text<div><a href='/nested'<<>>>x</table></b></i>");
  CHECK(l.urls.size() == 2);
  CHECK(l.urls[0].str() == "http://site.test/unclosed");
  // Deep nesting must not exhaust the stack.
  std::string deep;
  for (int i = 0; i < 10000; ++i) deep += "<div>";
  deep += "<a href='/deep'>d</a>";
  auto d = crawler::extract_links(page, deep);
  REQUIRE(d.urls.size() == 1);
  CHECK(d.urls[0].str() == "http://site.test/deep");
}

TEST_CASE("pages that are not UTF-8 or not text at all parse without error") {
  Url page = Url::parse("http://site.test/");
  std::string latin1 = "<p>caf\xE9</p><a href='/caf\xE9.html'>x</a>";
  auto l = crawler::extract_links(page, latin1);
  REQUIRE(l.urls.size() == 1);
  CHECK(l.urls[0].str().rfind("http://site.test/caf", 0) == 0);
  std::string binary;
  for (int i = 0; i < 4096; ++i) binary += static_cast<char>((i * 7919) & 0xff);
  auto b = crawler::extract_links(page, binary);
  CHECK(b.urls.size() <= 1);
  CHECK(crawler::extract_links(page, "").urls.empty());
}
