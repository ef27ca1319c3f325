// echo_client: talks to an echo server and checks every echo.
//
//   printf 'hello\nworld\n' | build/examples/echo_client --port 41235
//   build/examples/echo_client --port 41235 --count 1000 --size 64 --connections 50
//
// Lines mode (the default) sends each line of stdin and prints the echo.
// Count mode sends --count messages of --size bytes on each of --connections
// connections, one round trip at a time, verifies each echo byte for byte,
// and prints a summary. Exit status: 0 when every echo matched, 1 otherwise
// (or on a connection error / --timeout), 2 for bad usage.
#include <corio/corio.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "cli.hpp"

using corio::Task;
using namespace std::chrono_literals;

namespace {

const char* kUsage =
    "usage: echo_client [--host HOST] [--port PORT] [--backend io_uring|epoll]\n"
    "                   [--count N] [--size BYTES] [--connections C] [--timeout SECONDS]\n"
    "Sends data to an echo server and checks that it comes back unchanged.\n"
    "  --host HOST        server address or name (default 127.0.0.1)\n"
    "  --port PORT        server port (default 8080)\n"
    "  --backend NAME     io_uring (default) or epoll\n"
    "  --count N          send N messages per connection instead of stdin's lines\n"
    "  --size BYTES       message size in count mode (default 64)\n"
    "  --connections C    concurrent connections in count mode (default 1)\n"
    "  --timeout SECONDS  give up after this long (default 30)\n";

struct Config {
  std::string host = "127.0.0.1";
  int port = 8080;
  long count = 0;
  long size = 64;
  long connections = 1;
  long timeout_s = 30;
};

corio::ConnectOptions connect_options(const Config& cfg) {
  corio::ConnectOptions o;
  o.connect_timeout = std::chrono::seconds(cfg.timeout_s);
  return o;
}

// Lines mode: stdin is read with corio::read, so the loop never blocks on it.
Task<int> echo_lines(Config cfg) {
  auto [reader, writer] = co_await corio::open_connection(cfg.host, static_cast<std::uint16_t>(cfg.port),
                                                          connect_options(cfg));
  std::string pending;
  char buf[4096];
  int mismatches = 0;
  bool eof = false;
  while (!eof || !pending.empty()) {
    std::size_t nl = pending.find('\n');
    if (nl == std::string::npos && !eof) {
      std::size_t n = co_await corio::read(0, buf, sizeof buf);
      if (n == 0) eof = true;
      pending.append(buf, n);
      continue;
    }
    std::string line = pending.substr(0, nl == std::string::npos ? pending.size() : nl + 1);
    pending.erase(0, line.size());
    writer.write(line);
    co_await writer.drain();
    std::string echo = co_await reader.readexactly(line.size());
    if (echo != line) ++mismatches;
    std::fwrite(echo.data(), 1, echo.size(), stdout);
    std::fflush(stdout);
  }
  writer.write_eof();
  if (!(co_await reader.read()).empty()) ++mismatches;  // nothing may follow our last echo
  if (mismatches) std::fprintf(stderr, "echo_client: %d echo(es) differed from what was sent\n", mismatches);
  co_return mismatches ? 1 : 0;
}

struct Totals {
  long ok = 0;
  long bad = 0;
};

Task<void> one_connection(Config cfg, long id, Totals& totals) {
  auto [reader, writer] = co_await corio::open_connection(cfg.host, static_cast<std::uint16_t>(cfg.port),
                                                          connect_options(cfg));
  std::string msg(static_cast<std::size_t>(cfg.size), '\0');
  for (long i = 0; i < cfg.count; ++i) {
    for (std::size_t k = 0; k < msg.size(); ++k) msg[k] = static_cast<char>('a' + (id + i + k) % 26);
    writer.write(msg);
    co_await writer.drain();
    if (co_await reader.readexactly(msg.size()) == msg) ++totals.ok;
    else ++totals.bad;
  }
  writer.write_eof();
  (void)co_await reader.read();
}

Task<int> echo_count(Config cfg) {
  Totals totals;
  auto t0 = corio::Clock::now();
  std::vector<corio::TaskHandle<void>> conns;
  for (long c = 0; c < cfg.connections; ++c) conns.push_back(corio::create_task(one_connection(cfg, c, totals)));
  std::exception_ptr failure;
  for (auto& c : conns) {
    try {
      co_await c;
    } catch (const std::exception&) {
      if (!failure) failure = std::current_exception();
    }
  }
  if (failure) std::rethrow_exception(failure);
  double secs = std::chrono::duration<double>(corio::Clock::now() - t0).count();
  long total = cfg.count * cfg.connections;
  std::printf("%ld messages of %ld bytes over %ld connection(s): %ld ok, %ld wrong, %.3f s, %.0f msg/s\n", total,
              cfg.size, cfg.connections, totals.ok, totals.bad, secs, secs > 0 ? total / secs : 0.0);
  co_return totals.bad == 0 && totals.ok == total ? 0 : 1;
}

Task<int> client_main(Config cfg) {
  // The whole run is bounded: a watchdog cancels this task at --timeout.
  corio::TaskBase* self = corio::current_task();
  auto watchdog = [](corio::TaskBase* target, long secs) -> Task<void> {
    co_await corio::sleep(std::chrono::seconds(secs));
    target->cancel("timed out");
  };
  auto w = corio::create_task(watchdog(self, cfg.timeout_s));
  int rc = cfg.count > 0 ? co_await echo_count(cfg) : co_await echo_lines(cfg);
  w.cancel();
  co_return rc;
}

}  // namespace

int main(int argc, char** argv) {
  example::Args args(argc, argv, "echo_client", kUsage);
  corio::RunOptions opts;
  Config cfg;
  args.parse("host port backend count size connections timeout", "", [&](const std::string& name, const char* v) {
    if (name == "host") cfg.host = v;
    else if (name == "port") cfg.port = static_cast<int>(args.number(name, v, 1, 65535));
    else if (name == "backend") args.backend(v, opts);
    else if (name == "count") cfg.count = args.number(name, v, 1, 1000000000);
    else if (name == "size") cfg.size = args.number(name, v, 1, 1 << 30);
    else if (name == "connections") cfg.connections = args.number(name, v, 1, 100000);
    else if (name == "timeout") cfg.timeout_s = args.number(name, v, 1, 86400);
    else args.bad("unknown option --" + name);
  });
  try {
    return corio::run(client_main(cfg), opts);
  } catch (const corio::CancelledError& e) {
    std::fprintf(stderr, "echo_client: %s after %ld s\n", e.what(), cfg.timeout_s);
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "echo_client: %s\n", e.what());
    return 1;
  }
}
