#include "net/http/url.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using corio::http::Url;
using corio::http::UrlError;

TEST_CASE("a parsed URL exposes its components, normalised") {
  Url u = Url::parse("HTTP://User:Pw@Example.COM:8080/a/./b/../c?x=1&y#Frag");
  CHECK(u.scheme() == "http");
  CHECK(u.userinfo() == "User:Pw");
  CHECK(u.host() == "example.com");
  CHECK(u.port() == 8080);
  CHECK(u.explicit_port() == 8080);
  CHECK(u.path() == "/a/c");
  CHECK(u.query() == "x=1&y");
  CHECK(u.fragment() == "Frag");
  CHECK(u.target() == "/a/c?x=1&y");
  CHECK(u.host_header() == "example.com:8080");
  CHECK(u.origin() == "http://example.com:8080");
  CHECK(u.str() == "http://User:Pw@example.com:8080/a/c?x=1&y#Frag");
  CHECK(u.without_fragment().str() == "http://User:Pw@example.com:8080/a/c?x=1&y");
}

TEST_CASE("default ports are dropped and an empty http path becomes /") {
  CHECK(Url::parse("http://h:80").str() == "http://h/");
  CHECK(Url::parse("https://h:443/x").str() == "https://h/x");
  CHECK(Url::parse("https://h:80/x").str() == "https://h:80/x");
  CHECK(Url::parse("https://h").port() == 443);
  CHECK(Url::parse("http://h").port() == 80);
  CHECK(Url::parse("http://h:/p").str() == "http://h/p");
  CHECK(Url::parse("http://h").target() == "/");
  CHECK(Url::parse("http://h?q").target() == "/?q");
  CHECK(Url::parse("https://h").is_secure());
  CHECK_FALSE(Url::parse("http://h").is_secure());
}

TEST_CASE("IPv6 literals are validated and printed in canonical form") {
  Url u = Url::parse("http://[0:0:0:0:0:0:0:1]:8000/x");
  CHECK(u.is_ipv6());
  CHECK(u.host() == "::1");
  CHECK(u.host_header() == "[::1]:8000");
  CHECK(u.str() == "http://[::1]:8000/x");
  CHECK_THROWS_AS(Url::parse("http://[::g]/"), UrlError);
  CHECK_THROWS_AS(Url::parse("http://[::1/"), UrlError);
  CHECK_THROWS_AS(Url::parse("http://[v1.x]/"), UrlError);
}

TEST_CASE("characters not allowed are percent-encoded, escapes normalised") {
  CHECK(Url::parse("http://h/a b/\xC3\xA9?q=a b#f g").str() == "http://h/a%20b/%C3%A9?q=a%20b#f%20g");
  CHECK(Url::parse("http://h/%7euser/%2f%41").str() == "http://h/~user/%2FA");
  CHECK(Url::parse("http://h/100%").str() == "http://h/100%25");
  CHECK(Url::parse("http://h/a<b>\"{}|\\^`").path() == "/a%3Cb%3E%22%7B%7D%7C%5C%5E%60");
}

TEST_CASE("surrounding spaces are trimmed and tabs and newlines removed") {
  CHECK(Url::parse("  http://h/a\n\tb \r\n").str() == "http://h/ab");
}

TEST_CASE("malformed URLs are refused with the reason") {
  auto reason = [](const char* s) {
    try {
      Url::parse(s);
    } catch (const UrlError& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  CHECK(reason("/relative/only") == "invalid URL '/relative/only': no scheme (an absolute URL starts with e.g. \"http://\")");
  CHECK(reason("http:///path") == "invalid URL 'http:///path': missing host");
  CHECK(reason("http://exa mple.com/") == "invalid URL 'http://exa mple.com/': invalid character ' ' in host");
  CHECK(reason("http://h:99999/") == "invalid URL 'http://h:99999/': port 99999 is out of range");
  CHECK(reason("http://h:8x/") == "invalid URL 'http://h:8x/': invalid port '8x'");
  CHECK(reason("http://b\xC3\xBC" "cher.de/").find("non-ASCII host name") != std::string::npos);
  CHECK_FALSE(Url::try_parse("http://h:8x/").has_value());
  CHECK(Url::try_parse("http://h/").has_value());
  CHECK_THROWS_AS(Url::parse(""), corio::ValueError);
}

TEST_CASE("non-http schemes keep their opaque paths") {
  Url m = Url::parse("mailto:Someone@Example.com");
  CHECK(m.scheme() == "mailto");
  CHECK_FALSE(m.has_authority());
  CHECK(m.path() == "Someone@Example.com");
  CHECK(m.port() == 0);
  CHECK(Url::parse("javascript:void(0)").scheme() == "javascript");
  CHECK(Url::parse("urn:isbn:0451450523").str() == "urn:isbn:0451450523");
  CHECK(Url::parse("file:///etc/hosts").str() == "file:///etc/hosts");
}

// RFC 3986 §5.4: every example, normal and abnormal, against its base.
TEST_CASE("reference resolution gives RFC 3986's examples") {
  Url base = Url::parse("http://a/b/c/d;p?q");
  struct Case {
    const char* ref;
    const char* want;
  };
  std::vector<Case> cases = {
      // §5.4.1 normal
      {"g:h", "g:h"},
      {"g", "http://a/b/c/g"},
      {"./g", "http://a/b/c/g"},
      {"g/", "http://a/b/c/g/"},
      {"/g", "http://a/g"},
      {"//g", "http://g/"},  // empty http path → "/"
      {"?y", "http://a/b/c/d;p?y"},
      {"g?y", "http://a/b/c/g?y"},
      {"#s", "http://a/b/c/d;p?q#s"},
      {"g#s", "http://a/b/c/g#s"},
      {"g?y#s", "http://a/b/c/g?y#s"},
      {";x", "http://a/b/c/;x"},
      {"g;x", "http://a/b/c/g;x"},
      {"g;x?y#s", "http://a/b/c/g;x?y#s"},
      {"", "http://a/b/c/d;p?q"},
      {".", "http://a/b/c/"},
      {"./", "http://a/b/c/"},
      {"..", "http://a/b/"},
      {"../", "http://a/b/"},
      {"../g", "http://a/b/g"},
      {"../..", "http://a/"},
      {"../../", "http://a/"},
      {"../../g", "http://a/g"},
      // §5.4.2 abnormal
      {"../../../g", "http://a/g"},
      {"../../../../g", "http://a/g"},
      {"/./g", "http://a/g"},
      {"/../g", "http://a/g"},
      {"g.", "http://a/b/c/g."},
      {".g", "http://a/b/c/.g"},
      {"g..", "http://a/b/c/g.."},
      {"..g", "http://a/b/c/..g"},
      {"./../g", "http://a/b/g"},
      {"./g/.", "http://a/b/c/g/"},
      {"g/./h", "http://a/b/c/g/h"},
      {"g/../h", "http://a/b/c/h"},
      {"g;x=1/./y", "http://a/b/c/g;x=1/y"},
      {"g;x=1/../y", "http://a/b/c/y"},
      {"g?y/./x", "http://a/b/c/g?y/./x"},
      {"g?y/../x", "http://a/b/c/g?y/../x"},
      {"g#s/./x", "http://a/b/c/g#s/./x"},
      {"g#s/../x", "http://a/b/c/g#s/../x"},
      {"http:g", "http://a/b/c/g"},  // the backward-compatible reading
  };
  for (const Case& c : cases) {
    CAPTURE(c.ref);
    CHECK(base.resolve(c.ref).str() == c.want);
  }
}

TEST_CASE("resolution handles the links crawlers meet") {
  Url page = Url::parse("https://Site.example/docs/guide/index.html?v=2#top");
  CHECK(page.resolve("../img/a.png").str() == "https://site.example/docs/img/a.png");
  CHECK(page.resolve("//cdn.example/x.js").str() == "https://cdn.example/x.js");
  CHECK(page.resolve("http://Other.example:80/").str() == "http://other.example/");
  CHECK(page.resolve("#section").str() == "https://site.example/docs/guide/index.html?v=2#section");
  CHECK(page.resolve("?v=3").str() == "https://site.example/docs/guide/index.html?v=3");
  CHECK(page.resolve("  next page.html ").str() == "https://site.example/docs/guide/next%20page.html");
  CHECK(page.resolve("mailto:a@b.c").scheme() == "mailto");
  CHECK_THROWS_AS(page.resolve("http://exa mple/"), UrlError);
  Url root = Url::parse("http://h");
  CHECK(root.resolve("a").str() == "http://h/a");
  CHECK(Url::parse("http://h:8080/x/").resolve("y").str() == "http://h:8080/x/y");
  CHECK(Url::parse("http://[::1]:81/x/").resolve("../y").str() == "http://[::1]:81/y");
}

TEST_CASE("a default-constructed Url is empty") {
  Url u;
  CHECK(u.str().empty());
  CHECK(u.scheme().empty());
  CHECK(u.host().empty());
  u = Url::parse("http://h/");
  CHECK(u.str() == "http://h/");
}

TEST_CASE("equal URLs compare equal after normalisation") {
  CHECK(Url::parse("HTTP://EXAMPLE.com:80/%7Ea/./b") == Url::parse("http://example.com/~a/b"));
  CHECK_FALSE(Url::parse("http://example.com/a") == Url::parse("http://example.com/A"));
}

TEST_CASE("remove_dot_segments follows RFC 3986 section 5.2.4") {
  using corio::http::remove_dot_segments;
  CHECK(remove_dot_segments("/a/b/c/./../../g") == "/a/g");
  CHECK(remove_dot_segments("mid/content=5/../6") == "mid/6");
  CHECK(remove_dot_segments("/..") == "/");
  CHECK(remove_dot_segments("") == "");
  CHECK(remove_dot_segments("/a/b/..") == "/a/");
}

TEST_CASE("percent_decode decodes and refuses broken escapes") {
  using corio::http::percent_decode;
  CHECK(percent_decode("a%20b%2Fc") == "a b/c");
  CHECK(percent_decode("a+b", true) == "a b");
  CHECK(percent_decode("a+b") == "a+b");
  CHECK_THROWS_AS(percent_decode("%G1"), UrlError);
  CHECK_THROWS_AS(percent_decode("abc%2"), UrlError);
}
