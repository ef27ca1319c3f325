// http_server: plaintext, JSON and static files over HTTP/1.1.
//
//   build/examples/http_server --port 0 --root ./public
//   listening on 127.0.0.1:41235
//   curl http://127.0.0.1:41235/plaintext     → Hello, World!
//   curl http://127.0.0.1:41235/json          → {"message":"Hello, World!"}
//   curl http://127.0.0.1:41235/index.html    → ./public/index.html (sendfile, Range, ETag)
//
// Ctrl+C (or SIGTERM) is a graceful shutdown: the server stops accepting,
// answers the requests in flight, closes idle connections, and exits with
// 130 (143). --workers N runs N event loops on N threads, each accepting on
// its own SO_REUSEPORT socket.
#include <corio/corio.hpp>
#include <sys/stat.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "cli.hpp"

namespace http = corio::http;
using corio::Task;

namespace {

const char* kUsage =
    "usage: http_server [--host HOST] [--port PORT] [--backend io_uring|epoll] [--workers N] [--root DIR]\n"
    "                   [--max-connections N] [--header-timeout MS] [--keep-alive-timeout MS]\n"
    "                   [--body-timeout MS] [--send-timeout MS] [--defer-accept S] [--shutdown-grace MS]\n"
    "Serves GET /plaintext, GET /json, GET /sleep?ms=N (answers after N ms, N <= 60000: a slow\n"
    "handler for load tests) and static files from --root.\n"
    "  --host HOST      address to listen on (default 127.0.0.1; \"\" for every interface)\n"
    "  --port PORT      port (default 8080; 0 picks a free port)\n"
    "  --backend NAME   io_uring (default) or epoll\n"
    "  --workers N      event loops, one per thread (default 1)\n"
    "  --root DIR       serve the files under DIR at / (default: none, 404)\n"
    "  --max-connections N      connections at once; accepting pauses at the limit (default 10000)\n"
    "  --header-timeout MS      a request head must be complete this long after its first byte,\n"
    "                           else 408 and close (default 10000)\n"
    "  --keep-alive-timeout MS  idle keep-alive connections close after this (default 75000)\n"
    "  --body-timeout MS        a request body stalled this long: 408 and close (default 30000)\n"
    "  --send-timeout MS        a client that takes no response byte this long is disconnected\n"
    "                           (default 60000)\n"
    "  --defer-accept S         a connection is handed over once its first bytes arrived, or after\n"
    "                           about S seconds of silence (TCP_DEFER_ACCEPT; default 1, 0: at once)\n"
    "  --shutdown-grace MS      after SIGINT/SIGTERM, requests in flight get this long to finish\n"
    "                           before they are cancelled (default 2000)\n"
    "The first line on stdout is \"listening on HOST:PORT\".\n";

// Not a capturing coroutine lambda: the root is a parameter of the task.
Task<http::Response> route(http::Request& req, const std::string* root) {
  std::string_view path = req.path();
  if (path == "/plaintext") co_return http::Response::text("Hello, World!");
  if (path == "/json") co_return http::Response::json("{\"message\":\"Hello, World!\"}");
  if (path == "/sleep") {
    // A handler that is still running when a shutdown begins: what a graceful
    // shutdown must wait for (tests/integration/http_load.py uses it).
    std::string_view q = req.query();
    // The whole query is "ms=N": "ms=abc" or "ms=5x" is a 400, not 0 or 5.
    long ms = -1;
    const std::string_view v = q.substr(std::min<std::size_t>(3, q.size()));
    const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), ms);
    if (q.rfind("ms=", 0) != 0 || ec != std::errc() || end != v.data() + v.size() || ms < 0 || ms > 60'000)
      co_return http::Response::error(400);
    co_await corio::sleep(std::chrono::milliseconds(ms));
    co_return http::Response::text("slept " + std::to_string(ms) + " ms\n");
  }
  if (root->empty()) co_return http::Response::error(404);
  co_return http::file_response(req, *root);
}

Task<int> main_task(std::string host, int port, std::string root, http::ServeOptions opts) {
  opts.on_listening = [](const corio::SocketAddress& a) {
    std::printf("listening on %s\n", a.to_string().c_str());
    std::fflush(stdout);
  };
  // The handler outlives every task it starts: root lives in this frame,
  // which serve() keeps alive until the last connection ended.
  const std::string* r = &root;
  co_await http::serve([r](http::Request& req) { return route(req, r); }, host, static_cast<std::uint16_t>(port),
                       opts);
  co_return 0;
}

}  // namespace

int main(int argc, char** argv) {
  example::check_stdout_at_exit("http_server");
  example::Args args(argc, argv, "http_server", kUsage);
  corio::RunOptions opts;
  opts.on_signal = corio::SignalPolicy::request_shutdown;  // graceful: finish requests in flight
  std::string host = "127.0.0.1", root;
  int port = 8080;
  http::ServeOptions serve;
  auto ms = [&](const std::string& name, const char* v) {
    return std::chrono::milliseconds(args.number(name, v, 1, 24L * 3600 * 1000));
  };
  args.parse("host port backend workers root max-connections header-timeout keep-alive-timeout body-timeout send-timeout "
             "defer-accept shutdown-grace",
             "", [&](const std::string& name, const char* v) {
               if (name == "host") host = v;
               else if (name == "port") port = static_cast<int>(args.number(name, v, 0, 65535));
               else if (name == "backend") args.backend(v, opts);
               else if (name == "workers") serve.workers = static_cast<int>(args.number(name, v, 1, 256));
               else if (name == "root") root = v;
               else if (name == "max-connections")
                 serve.max_connections = static_cast<std::size_t>(args.number(name, v, 1, 10'000'000));
               else if (name == "header-timeout") serve.header_timeout = ms(name, v);
               else if (name == "keep-alive-timeout") serve.keep_alive_timeout = ms(name, v);
               else if (name == "body-timeout") serve.body_timeout = ms(name, v);
               else if (name == "send-timeout") serve.send_timeout = ms(name, v);
               else if (name == "defer-accept") serve.defer_accept = std::chrono::seconds(args.number(name, v, 0, 3600));
               else if (name == "shutdown-grace") opts.shutdown_grace = ms(name, v);
               else args.bad("unknown option --" + name);
             });
  // A --root that is not a directory would only show as a 404 for every
  // file: said at once instead.
  if (!root.empty()) {
    struct stat st;
    const char* why = nullptr;
    if (::stat(root.c_str(), &st) != 0) why = std::strerror(errno);
    else if (!S_ISDIR(st.st_mode)) why = "not a directory";
    if (why) {
      std::fprintf(stderr, "http_server: --root %s: %s\n", root.c_str(), why);
      return 1;
    }
  }
  try {
    return corio::run(main_task(host, port, root, serve), opts);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "http_server: %s\n", e.what());
    return 1;
  }
}
