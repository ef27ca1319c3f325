#include "links.hpp"

#include <gumbo.h>

#include <unordered_set>

namespace crawler {

RawLinks extract_raw_links(std::string_view html) {
  RawLinks out;
  // Parse errors are not recorded: gumbo copies the stack of open elements
  // into every error, so hostile nesting would cost O(depth^2) memory
  // (20,000 unclosed <div>s: 3 GB).
  GumboOptions options = kGumboDefaultOptions;
  options.max_errors = 0;
  GumboOutput* doc = gumbo_parse_with_options(&options, html.data(), html.size());
  // Iterative walk: deeply nested markup (a classic hostile page) must not
  // recurse once per level on our stack.
  std::vector<const GumboNode*> stack{doc->root};
  bool have_base = false;
  while (!stack.empty()) {
    const GumboNode* n = stack.back();
    stack.pop_back();
    if (n->type != GUMBO_NODE_ELEMENT && n->type != GUMBO_NODE_TEMPLATE) continue;
    const GumboElement& e = n->v.element;
    if (e.tag == GUMBO_TAG_A || e.tag == GUMBO_TAG_AREA) {
      if (const GumboAttribute* href = gumbo_get_attribute(&e.attributes, "href")) out.hrefs.emplace_back(href->value);
    } else if (e.tag == GUMBO_TAG_BASE && !have_base) {
      if (const GumboAttribute* href = gumbo_get_attribute(&e.attributes, "href")) {
        out.base_href = href->value;
        have_base = true;
      }
    }
    // Children pushed in reverse so they pop in document order.
    for (unsigned i = e.children.length; i-- > 0;) stack.push_back(static_cast<const GumboNode*>(e.children.data[i]));
  }
  gumbo_destroy_output(&options, doc);
  return out;
}

PageLinks extract_links(const corio::http::Url& page, std::string_view html) {
  RawLinks raw = extract_raw_links(html);
  corio::http::Url base = page;
  if (!raw.base_href.empty()) {
    if (auto b = corio::http::Url::try_parse(raw.base_href)) {
      base = *b;
    } else {
      try {
        base = page.resolve(raw.base_href);
      } catch (const corio::http::UrlError&) {
        // A broken <base> is ignored, as browsers do.
      }
    }
  }
  PageLinks out;
  std::unordered_set<std::string> seen;
  for (const std::string& href : raw.hrefs) {
    corio::http::Url u = base;
    try {
      u = base.resolve(href).without_fragment();
    } catch (const corio::http::UrlError&) {
      ++out.malformed;
      continue;
    }
    if (u.scheme() != "http" && u.scheme() != "https") {
      ++out.other_schemes;
      continue;
    }
    if (seen.insert(u.str()).second) out.urls.push_back(std::move(u));
  }
  return out;
}

}  // namespace crawler
