#pragma once
// Static files for the HTTP server: GET and HEAD of files under a root
// directory, sent with sendfile(2) (Response::file).
//
//   co_await http::serve(http::static_files("/srv/www"), "0.0.0.0", 8080);
//   // or inside a handler:  co_return http::file_response(req, root);
//
// - Paths are percent-decoded; a ".." segment, a NUL byte or a path that
//   leaves the root is refused (404, as if absent). Symbolic links are
//   followed only while they stay beneath the root (a link to a file or a
//   directory outside it is a 404, as with aiohttp's default). A directory
//   serves its index.html; "/dir" without the slash redirects (301) to "/dir/".
// - Validators: a strong ETag (modification time and size) and
//   Last-Modified, with the preconditions in RFC 9110 §13.2.2's order:
//   If-Match (strong comparison, "*"), or without it If-Unmodified-Since,
//   failing answers 412; then If-None-Match (weak comparison, "*"), or
//   without it If-Modified-Since, matching answers 304.
// - Range: one "bytes=" range (a-b, a-, -n) answers 206 with Content-Range; an
//   unsatisfiable one 416; several ranges, or an If-Range that does not match,
//   get the whole file (200). Accept-Ranges: bytes.
// - Other methods: 405 with Allow.
// The open/stat calls block briefly (local files, as nginx does).
#include <optional>
#include <string>
#include <string_view>

#include "net/http/server.hpp"

namespace corio::http {

// The response for req's path under root (see above).
Response file_response(const Request& req, std::string_view root);
// A handler serving only files under root.
Handler static_files(std::string root);
// "text/html; charset=utf-8" etc. by extension; application/octet-stream otherwise.
std::string_view content_type_for(std::string_view path) noexcept;
// HTTP-date ↔ seconds since the epoch. format writes IMF-fixdate; parse also
// reads the obsolete RFC 850 and asctime forms, as RFC 9110 §5.6.7 requires
// of recipients, and returns std::nullopt for anything else (a date before
// 1970 is negative, not an error).
std::string format_http_date(long long seconds);
std::optional<long long> parse_http_date(std::string_view text) noexcept;

}  // namespace corio::http
