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

#include <cstdio>
#include <string>

#include "cli.hpp"

namespace http = corio::http;
using corio::Task;

namespace {

const char* kUsage =
    "usage: http_server [--host HOST] [--port PORT] [--backend io_uring|epoll] [--workers N] [--root DIR]\n"
    "Serves GET /plaintext, GET /json and static files from --root.\n"
    "  --host HOST      address to listen on (default 127.0.0.1; \"\" for every interface)\n"
    "  --port PORT      port (default 8080; 0 picks a free port)\n"
    "  --backend NAME   io_uring (default) or epoll\n"
    "  --workers N      event loops, one per thread (default 1)\n"
    "  --root DIR       serve the files under DIR at / (default: none, 404)\n"
    "The first line on stdout is \"listening on HOST:PORT\".\n";

// Not a capturing coroutine lambda: the root is a parameter of the task.
Task<http::Response> route(http::Request& req, const std::string* root) {
  std::string_view path = req.path();
  if (path == "/plaintext") co_return http::Response::text("Hello, World!");
  if (path == "/json") co_return http::Response::json("{\"message\":\"Hello, World!\"}");
  if (root->empty()) co_return http::Response::error(404);
  co_return http::file_response(req, *root);
}

Task<int> main_task(std::string host, int port, int workers, std::string root) {
  http::ServeOptions opts;
  opts.workers = workers;
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
  example::Args args(argc, argv, "http_server", kUsage);
  corio::RunOptions opts;
  opts.on_signal = corio::SignalPolicy::request_shutdown;  // graceful: finish requests in flight
  std::string host = "127.0.0.1", root;
  int port = 8080, workers = 1;
  args.parse("host port backend workers root", "", [&](const std::string& name, const char* v) {
    if (name == "host") host = v;
    else if (name == "port") port = static_cast<int>(args.number(name, v, 0, 65535));
    else if (name == "backend") args.backend(v, opts);
    else if (name == "workers") workers = static_cast<int>(args.number(name, v, 1, 256));
    else if (name == "root") root = v;
    else args.bad("unknown option --" + name);
  });
  try {
    return corio::run(main_task(host, port, workers, root), opts);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "http_server: %s\n", e.what());
    return 1;
  }
}
