// echo_client: talks to an echo server and checks every echo.
//
//   printf 'hello\nworld\n' | build/examples/echo_client --port 41235
//   build/examples/echo_client --port 41235 --count 1000 --size 64 --connections 50
//
// Lines mode (the default) sends stdin and prints the echo as it comes back,
// checking it line by line. Count mode sends --count messages of --size bytes
// on each of --connections connections, one round trip at a time, verifies
// each echo byte for byte, and prints a summary. Either way the echo is read
// while the data is still being sent, so lines and messages of any size work
// in bounded memory. Exit status: 0 when every echo matched, 1 otherwise
// (or on a connection error / --timeout), 2 for bad usage.
#include <corio/corio.hpp>

#include <chrono>
#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
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

// The echo of a message is read while the message is written, never after:
// echo_server reads only as fast as its echoes are read (it awaits drain()
// after each write), so a client that wrote and drained a whole message
// before reading would wait for the server, and the server for it, as soon as
// the message outgrew the socket buffers in between (a few MB on loopback).
// Both sides go through kChunk-byte buffers: memory does not grow with
// --size or with the length of a line.
constexpr std::size_t kChunk = 64 * 1024;

// Runs `send` and `check` concurrently and returns when both are done. The
// first failure cancels the other and is rethrown as it is (not wrapped in
// the TaskGroup's ExceptionGroup), so main() prints its one-line reason.
Task<void> send_and_check(Task<void> send, Task<void> check) {
  try {
    co_await corio::task_group([&](corio::TaskGroup& tg) -> Task<void> {
      tg.create_task(std::move(check));
      co_await std::move(send);
    });
  } catch (const corio::ExceptionGroup& eg) {
    std::rethrow_exception(eg.leaves().front());
  }
}

// Lines mode: what stdin gives is sent as it comes (stdin is read with
// corio::read, so the loop never blocks on it), and the echo is printed as it
// comes back. What was sent and not yet echoed is kept to check the echo
// against; the sender waits while that exceeds kWindow, so a line of any
// length costs a bounded amount of memory.
struct LineEchoes {
  static constexpr std::size_t kWindow = 1 << 20;
  std::string sent;         // sent[echoed_to..] is not echoed yet
  std::size_t echoed_to = 0;
  std::size_t unechoed() const noexcept { return sent.size() - echoed_to; }
  corio::Event echoed;      // set whenever the echo caught up a little
  bool sent_all = false;    // stdin reached EOF and write_eof() was called
  bool line_differs = false;
  int mismatches = 0;       // lines whose echo differed (or never came)
};

Task<void> send_stdin(corio::StreamWriter& writer, LineEchoes& e) {
  std::unique_ptr<char[]> buf(new char[kChunk]);
  for (;;) {
    while (e.unechoed() > LineEchoes::kWindow) {
      e.echoed.clear();
      co_await e.echoed.wait();
    }
    std::size_t n = co_await corio::read(0, buf.get(), kChunk);
    if (n == 0) break;
    // Recorded before it is written: no echo byte can arrive before it.
    if (e.echoed_to > LineEchoes::kWindow) e.sent.erase(0, std::exchange(e.echoed_to, 0));
    e.sent.append(buf.get(), n);
    writer.write(std::string_view(buf.get(), n));
    co_await writer.drain();
  }
  writer.write_eof();
  e.sent_all = true;
}

Task<void> print_echoes(corio::StreamReader& reader, LineEchoes& e) {
  std::unique_ptr<std::byte[]> buf(new std::byte[kChunk]);
  for (;;) {
    std::size_t n = co_await reader.readinto(std::span<std::byte>(buf.get(), kChunk));
    if (n == 0) break;
    const char* got = reinterpret_cast<const char*>(buf.get());
    std::fwrite(got, 1, n, stdout);
    std::fflush(stdout);
    // Bytes beyond what was sent make the last line's echo wrong.
    std::size_t k = std::min(n, e.unechoed());
    if (k < n) e.line_differs = true;
    const char* want = e.sent.data() + e.echoed_to;
    for (std::size_t j = 0; j < k; ++j) {
      if (got[j] != want[j]) e.line_differs = true;
      if (want[j] == '\n') {
        if (e.line_differs) ++e.mismatches;
        e.line_differs = false;
      }
    }
    e.echoed_to += k;
    e.echoed.set();
  }
  if (!e.sent_all) throw std::runtime_error("the server closed the connection before we finished sending");
  // Each line not echoed in full differs (a last line without '\n' too), and
  // so does a complete echo followed by more bytes.
  std::string_view missing = std::string_view(e.sent).substr(e.echoed_to);
  e.mismatches += static_cast<int>(std::count(missing.begin(), missing.end(), '\n'));
  if (missing.empty() ? e.line_differs : missing.back() != '\n') ++e.mismatches;
}

Task<int> echo_lines(Config cfg) {
  auto [reader, writer] = co_await corio::open_connection(cfg.host, static_cast<std::uint16_t>(cfg.port),
                                                          connect_options(cfg));
  LineEchoes e;
  co_await send_and_check(send_stdin(writer, e), print_echoes(reader, e));
  if (e.mismatches) std::fprintf(stderr, "echo_client: %d echo(es) differed from what was sent\n", e.mismatches);
  co_return e.mismatches ? 1 : 0;
}

struct Totals {
  long ok = 0;
  long bad = 0;
};

// Count mode's messages: byte k of message `first` is letters()[(first + k) % 26],
// so any kChunk bytes of any message are one view of letters(), and neither
// side needs the whole message.
const std::string& letters() {
  static const std::string s = [] {
    std::string l(kChunk + 26, '\0');
    for (std::size_t k = 0; k < l.size(); ++k) l[k] = static_cast<char>('a' + k % 26);
    return l;
  }();
  return s;
}

std::string_view message_part(std::size_t first, std::size_t offset, std::size_t len) {
  return std::string_view(letters()).substr((first + offset) % 26, len);
}

Task<void> send_message(corio::StreamWriter& writer, std::size_t first, std::size_t size) {
  for (std::size_t k = 0; k < size; k += kChunk) {
    writer.write(message_part(first, k, std::min(kChunk, size - k)));
    co_await writer.drain();
  }
}

// Reads exactly `size` echo bytes (not one more: the next message's echo is
// the next call's) and sets `same` to whether they match the message.
Task<void> check_message(corio::StreamReader& reader, std::size_t first, std::size_t size, bool& same) {
  std::unique_ptr<std::byte[]> buf(new std::byte[std::min(kChunk, size)]);
  same = true;
  for (std::size_t k = 0; k < size;) {
    std::size_t n = co_await reader.readinto(std::span<std::byte>(buf.get(), std::min(kChunk, size - k)));
    if (n == 0) {
      throw std::runtime_error("the server closed the connection after " + std::to_string(k) + " of " +
                               std::to_string(size) + " echo bytes");
    }
    if (std::string_view(reinterpret_cast<const char*>(buf.get()), n) != message_part(first, k, n)) same = false;
    k += n;
  }
}

Task<void> one_connection(Config cfg, long id, Totals& totals) {
  auto [reader, writer] = co_await corio::open_connection(cfg.host, static_cast<std::uint16_t>(cfg.port),
                                                          connect_options(cfg));
  const auto size = static_cast<std::size_t>(cfg.size);
  bool same = false;
  for (long i = 0; i < cfg.count; ++i) {
    const auto first = static_cast<std::size_t>(id + i);
    co_await send_and_check(send_message(writer, first, size), check_message(reader, first, size, same));
    if (same) ++totals.ok;
    else ++totals.bad;
  }
  writer.write_eof();
  // A byte after the last echo, before the server's EOF, makes that echo
  // wrong, as in lines mode: the server sent more than it was sent.
  if (!(co_await reader.read(1)).empty() && same) {
    --totals.ok;
    ++totals.bad;
  }
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
  example::check_stdout_at_exit("echo_client");
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
