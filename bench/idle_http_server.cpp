// idle_http_server: the corio side of the idle-connection benchmark
// (../shared/peers/run.sh's idle section, driven by peers/idleconn.c).
//
//   build-release/bench/idle_http_server --port 0 [--backend io_uring|epoll]
//   listening on 127.0.0.1:41235
//
// Every request (anything up to a blank line) is answered with one fixed
// "200 Hello, World!" response and the connection is kept open, so each
// idleconn connection does its GET and then sits idle in the server. That is
// all idleconn and peers/verify.py need (pipelined requests are answered in
// order, Server/Date/Content-Type/Content-Length present); the real HTTP
// server comes later.
//
// The handler is what an idle connection costs above the stream itself: its
// frame is suspended in readuntil(), which holds no receive buffer on
// io_uring (the StreamConn releases it once a read empties it). Besides the
// "listening on" line it can print, on SIGUSR1, a one-line account of the
// heap (malloc'd bytes in use and the connection count), used by
// bench/peers_idle.sh to split RSS into heap and the rest.
#include <corio/corio.hpp>
#include <malloc.h>

#include <csignal>
#include <cstdio>
#include <ctime>
#include <string>

#include "../examples/cli.hpp"

using corio::StreamReader;
using corio::StreamWriter;
using corio::Task;

namespace {

const char* kUsage =
    "usage: idle_http_server [--host HOST] [--port PORT] [--backend io_uring|epoll]\n"
    "Answers every HTTP request with a fixed 200 \"Hello, World!\" and keeps the connection open.\n"
    "  --host HOST      address to listen on (default 127.0.0.1)\n"
    "  --port PORT      port (default 8080; 0 picks a free port)\n"
    "  --backend NAME   io_uring (default) or epoll\n"
    "SIGUSR1 prints the heap in use and the live connection count on stderr.\n"
    "The first line on stdout is \"listening on HOST:PORT\".\n";

// The response, rebuilt when the second changes (the Date header).
struct Response {
  std::time_t second = 0;
  std::string text;

  const std::string& get() {
    std::time_t now = std::time(nullptr);
    if (now != second || text.empty()) {
      second = now;
      char date[64];
      std::tm tm{};
      gmtime_r(&now, &tm);
      std::strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
      text = std::string("HTTP/1.1 200 OK\r\nServer: corio\r\nDate: ") + date +
             "\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!";
    }
    return text;
  }
};

Response g_response;
corio::Server* g_server = nullptr;

Task<void> answer(StreamReader& reader, StreamWriter& writer) {
  for (;;) {
    try {
      (void)co_await reader.readuntil("\r\n\r\n");
    } catch (const corio::IncompleteRead&) {
      break;  // the client closed (possibly mid-request): so do we
    }
    writer.write(g_response.get());
    co_await writer.drain();
  }
}

Task<int> serve(std::string host, int port) {
  corio::ServerOptions opts;
  opts.backlog = 4096;
  corio::Server server = co_await corio::start_server(answer, host, static_cast<std::uint16_t>(port), opts);
  g_server = &server;
  corio::EventLoop::current().add_signal_handler(SIGUSR1, [] {
    struct mallinfo2 mi = mallinfo2();
    std::fprintf(stderr, "heap_in_use=%zu heap_arena=%zu heap_mmap=%zu connections=%zu\n", mi.uordblks, mi.arena,
                 mi.hblkhd, g_server ? g_server->connection_count() : 0);
  });
  std::printf("listening on %s\n", server.addresses().front().to_string().c_str());
  std::fflush(stdout);
  co_await server.serve_forever();
  g_server = nullptr;
  co_return 0;
}

}  // namespace

int main(int argc, char** argv) {
  example::Args args(argc, argv, "idle_http_server", kUsage);
  corio::RunOptions opts;
  std::string host = "127.0.0.1";
  int port = 8080;
  args.parse("host port backend", "", [&](const std::string& name, const char* v) {
    if (name == "host") host = v;
    else if (name == "port") port = static_cast<int>(args.number(name, v, 0, 65535));
    else if (name == "backend") args.backend(v, opts);
    else args.bad("unknown option --" + name);
  });
  try {
    return corio::run(serve(host, port), opts);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "idle_http_server: %s\n", e.what());
    return 1;
  }
}
