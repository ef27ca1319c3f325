#pragma once
// Link extraction for the crawler: an HTML5 parse (gumbo, the same tree
// building as browsers, so malformed markup yields what a browser would see)
// and the resolution of every link against the page's base URL.
//
// Which links: the href of every <a> and <area> element, in document order.
// The base URL is the first <base href> in the document (HTML's rule), resolved
// against the page's own URL; links that do not parse as URLs are skipped
// (counted in PageLinks::malformed), and only http/https links are kept
// (mailto:, javascript:, data:, … are counted in `other_schemes`).
//
// Input bytes that are not UTF-8 are parsed as U+FFFD replacement characters
// (gumbo's rule): a Latin-1 page loses accented letters in link text but never
// crashes the parse, and its ASCII hrefs are found as usual.
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "net/http/url.hpp"

namespace crawler {

struct RawLinks {
  std::string base_href;           // the first <base href>, empty if none
  std::vector<std::string> hrefs;  // <a>/<area> href values, as written
};

// Parses `html` and collects the raw href values. Never throws on bad markup.
RawLinks extract_raw_links(std::string_view html);

struct PageLinks {
  std::vector<corio::http::Url> urls;  // http(s) links, fragment dropped, de-duplicated, in order
  std::size_t malformed = 0;           // hrefs that are not valid URLs
  std::size_t other_schemes = 0;       // mailto:, javascript:, ftp:, …
};

// Resolves the links found in `html` against `page` (and its <base href>).
PageLinks extract_links(const corio::http::Url& page, std::string_view html);

}  // namespace crawler
