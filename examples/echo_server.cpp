// echo_server: sends every byte it receives back to its sender.
//
//   build/examples/echo_server --port 0
//   listening on 127.0.0.1:41235
//
// One task per connection (start_server); each reads what arrived, writes it
// back and awaits drain(), so a client that does not read its echoes is
// throttled instead of growing the server's memory. Ctrl+C closes the server
// and exits with 130.
#include <corio/corio.hpp>

#include <cstdio>
#include <memory>
#include <span>
#include <string>

#include "cli.hpp"

using corio::StreamReader;
using corio::StreamWriter;
using corio::Task;

namespace {

const char* kUsage =
    "usage: echo_server [--host HOST] [--port PORT] [--backend io_uring|epoll]\n"
    "Echoes every byte back to its sender.\n"
    "  --host HOST      address to listen on (default 127.0.0.1; \"\" for every interface)\n"
    "  --port PORT      port (default 8080; 0 picks a free port)\n"
    "  --backend NAME   io_uring (default) or epoll\n"
    "The first line on stdout is \"listening on HOST:PORT\".\n";

Task<void> echo(StreamReader& reader, StreamWriter& writer) {
  // Not value-initialised: pages the echoes never reach are never touched,
  // so 500 connections exchanging small messages cost 500 pages, not 8 MiB.
  constexpr std::size_t kBufSize = 16 * 1024;
  std::unique_ptr<std::byte[]> buf(new std::byte[kBufSize]);
  try {
    for (;;) {
      std::size_t n = co_await reader.readinto(std::span<std::byte>(buf.get(), kBufSize));
      if (n == 0) break;  // the client sent EOF: we close after the last echo
      writer.write(std::span<const std::byte>(buf.get(), n));
      co_await writer.drain();
    }
  } catch (const corio::ConnectionError&) {
    // Reset or broken pipe: the client left without a goodbye (a load
    // generator that closes with echoes unread does). Nothing to report; the
    // connection closes when the handler returns. Other errors propagate to
    // the server's exception handler.
  }
}

Task<int> serve(std::string host, int port) {
  corio::Server server = co_await corio::start_server(echo, host, static_cast<std::uint16_t>(port));
  std::printf("listening on %s\n", server.addresses().front().to_string().c_str());
  std::fflush(stdout);
  co_await server.serve_forever();
  co_return 0;
}

}  // namespace

int main(int argc, char** argv) {
  example::check_stdout_at_exit("echo_server");
  example::Args args(argc, argv, "echo_server", kUsage);
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
    std::fprintf(stderr, "echo_server: %s\n", e.what());
    return 1;
  }
}
