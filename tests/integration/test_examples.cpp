// Integration: the example programs, run as child processes on loopback and
// driven by real clients (corio streams in this process, or echo_client).
// Skipped when the examples are not built (CORIO_EXAMPLES_DIR unset).
#include <doctest/doctest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "coro/sleep.hpp"
#include "coro/task_handle.hpp"
#include "net/stream.hpp"
#include "tests/child_process.hpp"
#include "tests/net/net_support.hpp"
#include "tests/support.hpp"

using namespace corio;
using namespace std::chrono_literals;

namespace {

std::string examples_dir() {
  const char* d = std::getenv("CORIO_EXAMPLES_DIR");
  return d ? d : "";
}

const char* backend_name(detail::BackendKind k) { return k == detail::BackendKind::epoll ? "epoll" : "io_uring"; }

// Waits for the server's first line, "listening on 127.0.0.1:PORT", and returns PORT.
int listening_port(test::ChildProcess& server) {
  REQUIRE_MESSAGE(server.wait_for_stdout("\n", 20s), "no output; stderr: " << server.err());
  std::string first = server.out().substr(0, server.out().find('\n'));
  const std::string prefix = "listening on 127.0.0.1:";
  REQUIRE_MESSAGE(first.rfind(prefix, 0) == 0, "first line: " << first);
  int port = std::atoi(first.c_str() + prefix.size());
  REQUIRE(port > 0);
  return port;
}

// Runs body(dir, backend) on each backend, dir holding the built examples;
// skipped when they are not built.
template <class F>
void on_each_example_backend(F body) {
  std::string dir = examples_dir();
  if (dir.empty()) {
    MESSAGE("examples not built: skipped");
    return;
  }
  for (auto kind : {detail::BackendKind::io_uring, detail::BackendKind::epoll}) {
    const std::string backend = backend_name(kind);
    CAPTURE(backend);
    body(dir, backend);
  }
}

}  // namespace

TEST_CASE("echo_server announces its port, echoes for echo_client in both modes, and exits 130 on SIGINT") {
  std::string dir = examples_dir();
  if (dir.empty()) {
    MESSAGE("examples not built: skipped");
    return;
  }
  for (auto kind : {detail::BackendKind::io_uring, detail::BackendKind::epoll}) {
    CAPTURE(backend_name(kind));
    test::ChildProcess server({dir + "/echo_server", "--port", "0", "--backend", backend_name(kind)});
    std::string port = std::to_string(listening_port(server));

    test::ChildProcess counted({dir + "/echo_client", "--port", port, "--count", "200", "--connections", "20",
                                "--size", "100", "--backend", backend_name(kind)});
    CHECK(counted.wait_exit(60s) == 0);
    CHECK_MESSAGE(counted.out().find("4000 messages of 100 bytes over 20 connection(s): 4000 ok, 0 wrong") == 0,
                  counted.out() << counted.err());

    test::ChildProcess lines({"/bin/sh", "-c",
                              "printf 'one\\ntwo\\nthree' | '" + dir + "/echo_client' --port " + port +
                                  " --backend " + backend_name(kind)});
    CHECK(lines.wait_exit(30s) == 0);
    CHECK(lines.out() == "one\ntwo\nthree");

    server.signal(SIGINT);
    CHECK(server.wait_exit(20s) == 130);
  }
}

// An echo server reads only as fast as its echoes are read: a client that
// sends (and drains) a whole message before reading the echo deadlocks once
// the message outgrows the socket buffers on both sides.
TEST_CASE("echo_client checks a 32 MB echo, in count mode and as one stdin line, without deadlocking") {
  std::string dir = examples_dir();
  if (dir.empty()) {
    MESSAGE("examples not built: skipped");
    return;
  }
  const std::string size = std::to_string(32 << 20);
  for (auto kind : {detail::BackendKind::io_uring, detail::BackendKind::epoll}) {
    std::string backend = backend_name(kind);
    CAPTURE(backend);
    test::ChildProcess server({dir + "/echo_server", "--port", "0", "--backend", backend_name(kind)});
    std::string port = std::to_string(listening_port(server));

    test::ChildProcess counted({dir + "/echo_client", "--port", port, "--count", "1", "--size", size, "--timeout",
                                "30", "--backend", backend_name(kind)});
    CHECK_MESSAGE(counted.wait_exit(60s) == 0, counted.err());
    CHECK_MESSAGE(counted.out().find("1 messages of " + size + " bytes over 1 connection(s): 1 ok, 0 wrong") == 0,
                  counted.out() << counted.err());

    // One 32 MB line and a short one; the echo goes to wc, the status to stderr.
    test::ChildProcess lines(
        {"/bin/sh", "-c",
         "{ head -c " + size + " /dev/zero | tr '\\0' x; printf '\\nshort\\n'; } | { '" + dir +
             "/echo_client' --port " + port + " --timeout 30 --backend " + backend_name(kind) +
             "; echo \"status $?\" >&2; } | wc -c"});
    CHECK(lines.wait_exit(60s) == 0);
    CHECK_MESSAGE(lines.err() == "status 0\n", lines.err());
    CHECK(std::atol(lines.out().c_str()) == (32L << 20) + 7);

    server.signal(SIGINT);
    CHECK(server.wait_exit(20s) == 130);
  }
}

TEST_CASE("the examples answer --help, and reject bad usage with status 2") {
  std::string dir = examples_dir();
  if (dir.empty()) {
    MESSAGE("examples not built: skipped");
    return;
  }
  for (const char* prog : {"echo_server", "echo_client", "chat_server"}) {
    CAPTURE(prog);
    test::ChildProcess help({dir + "/" + prog, "--help"});
    CHECK(help.wait_exit(10s) == 0);
    CHECK(help.out().rfind(std::string("usage: ") + prog, 0) == 0);
    test::ChildProcess bad({dir + "/" + prog, "--no-such-option"});
    CHECK(bad.wait_exit(10s) == 2);
    CHECK(bad.err().find("unknown option --no-such-option") != std::string::npos);
    test::ChildProcess bad_port({dir + "/" + prog, "--port", "70000"});
    CHECK(bad_port.wait_exit(10s) == 2);
  }
  // A runtime failure is status 1 with a one-line reason.
  test::ChildProcess refused({dir + "/echo_client", "--port", "1", "--count", "1"});
  CHECK(refused.wait_exit(10s) == 1);
  CHECK(refused.err() == "echo_client: connect 127.0.0.1:1: Connection refused\n");
}

// Numbers fetch cannot hold were converted anyway (double to int, seconds
// to nanoseconds): undefined behaviour, which on x86 made --max-redirs 1e10
// INT_MIN ("more than -2147483648 redirects") and --max-time 1e300 an
// instant timeout. Each is a usage error now, before anything is fetched.
TEST_CASE("fetch refuses --max-redirs, --max-time and --connect-timeout values it cannot hold, with status 2") {
  on_each_example_backend([](const std::string& dir, const std::string& backend) {
    auto fetch = [&](const std::string& opt, const std::string& value) {
      return test::ChildProcess({dir + "/fetch", "--backend", backend, "-L", opt, value, "http://127.0.0.1:1/"});
    };
    const std::pair<const char*, const char*> bad[] = {
        {"--max-redirs", "1e10"}, {"--max-redirs", "2147483648"}, {"--max-redirs", "-1"},
        {"--max-redirs", "1.5"},  {"--max-redirs", "nan"},        {"--max-redirs", "inf"},
        {"--max-time", "1e300"},  {"--max-time", "inf"},          {"--max-time", "nan"},
        {"--connect-timeout", "1e300"}, {"--connect-timeout", "inf"}, {"--connect-timeout", "nan"}};
    for (const auto& [o, v] : bad) {
      const std::string opt = o, value = v;
      CAPTURE(opt);
      CAPTURE(value);
      test::ChildProcess p = fetch(opt, value);
      CHECK(p.wait_exit(10s) == 2);
      CHECK(p.err().rfind("fetch: " + opt + " ", 0) == 0);
    }
    // Values in range are taken: the run goes on to the (refused) fetch.
    const std::pair<const char*, const char*> good[] = {
        {"--max-redirs", "0"}, {"--max-redirs", "2147483647"}, {"--max-time", "30"}, {"--connect-timeout", "2.5"}};
    for (const auto& [o, v] : good) {
      const std::string opt = o, value = v;
      CAPTURE(opt);
      CAPTURE(value);
      test::ChildProcess p = fetch(opt, value);
      CHECK(p.wait_exit(10s) == 1);
      CHECK(p.err().find("Connection refused") != std::string::npos);
    }
  });
}

// fwrite only fills stdio's buffer; the failure shows when it is flushed,
// and fetch used to ignore that: the body was lost and the status was 0.
TEST_CASE("fetch exits 1 and names the cause when its output cannot be written, and creates -o only for a response") {
  on_each_example_backend([](const std::string& dir, const std::string& backend) {
    test::ChildProcess server({dir + "/http_server", "--port", "0", "--backend", backend});
    const std::string url = "http://127.0.0.1:" + std::to_string(listening_port(server)) + "/plaintext";

    test::ChildProcess to_file({dir + "/fetch", "--backend", backend, "-o", "/dev/full", url});
    CHECK(to_file.wait_exit(20s) == 1);
    CHECK_MESSAGE(to_file.err() == "fetch: cannot write /dev/full: No space left on device\n", to_file.err());

    test::ChildProcess to_stdout({"/bin/sh", "-c", "exec '" + dir + "/fetch' --backend " + backend + " " + url + " >/dev/full"});
    CHECK(to_stdout.wait_exit(20s) == 1);
    CHECK_MESSAGE(to_stdout.err() == "fetch: cannot write standard output: No space left on device\n", to_stdout.err());

    // A reader that went away: a failed write (exit 1, named), not a death
    // by SIGPIPE (141). The fetch starts after `true` has exited; env puts
    // SIGPIPE back to its default, whatever this test process inherited.
    test::ChildProcess to_closed_pipe({"/bin/sh", "-c",
                                       "(sleep 0.5; env --default-signal=PIPE '" + dir + "/fetch' --backend " +
                                           backend + " " + url + "; echo \"status $?\" >&2) | true"});
    CHECK(to_closed_pipe.wait_exit(20s) == 0);
    CHECK_MESSAGE(to_closed_pipe.err() == "fetch: cannot write standard output: Broken pipe\nstatus 1\n",
                  to_closed_pipe.err());

    // The same fetch into a writable file succeeds.
    char tmpl[] = "/tmp/corio_fetch_XXXXXX";
    const int fd = ::mkstemp(tmpl);
    REQUIRE(fd >= 0);
    ::close(fd);
    test::ChildProcess ok({dir + "/fetch", "--backend", backend, "-o", tmpl, url});
    CHECK(ok.wait_exit(20s) == 0);
    std::FILE* f = std::fopen(tmpl, "rb");
    REQUIRE(f != nullptr);
    char buf[64] = {};
    const std::size_t n = std::fread(buf, 1, sizeof buf, f);
    std::fclose(f);
    ::unlink(tmpl);
    CHECK(std::string(buf, n) == "Hello, World!");

    // -f: an error status writes no body (curl -f) and exits 1.
    const std::string missing = url.substr(0, url.rfind('/')) + "/missing";
    test::ChildProcess failing({dir + "/fetch", "--backend", backend, "-f", missing});
    CHECK(failing.wait_exit(20s) == 1);
    CHECK(failing.out().empty());
    CHECK(failing.err() == "fetch: the server answered 404\n");
    test::ChildProcess not_failing({dir + "/fetch", "--backend", backend, missing});
    CHECK(not_failing.wait_exit(20s) == 0);
    CHECK(not_failing.out() == "404 Not Found\n");

    // A failed request creates no -o file (curl does not either).
    test::ChildProcess refused({dir + "/fetch", "--backend", backend, "-o", tmpl, "http://127.0.0.1:1/"});
    CHECK(refused.wait_exit(20s) == 1);
    CHECK(::access(tmpl, F_OK) != 0);

    server.signal(SIGINT);
    CHECK(server.wait_exit(20s) == 130);
  });
}

// /sleep?ms=N read N with strtol: "ms=abc" slept 0 ms and "ms=5x" 5 ms.
TEST_CASE("http_server answers /sleep?ms=N, and 400 when N is not a number of milliseconds up to 60000") {
  on_each_example_backend([](const std::string& dir, const std::string& backend) {
    test::ChildProcess server({dir + "/http_server", "--port", "0", "--backend", backend});
    const std::string base = "http://127.0.0.1:" + std::to_string(listening_port(server)) + "/sleep?";
    const std::pair<const char*, const char*> cases[] = {
        {"ms=3", "slept 3 ms\n"},        {"ms=0", "slept 0 ms\n"},        {"ms=abc", "400 Bad Request\n"},
        {"ms=5x", "400 Bad Request\n"},  {"ms=", "400 Bad Request\n"},    {"ms", "400 Bad Request\n"},
        {"ms=-1", "400 Bad Request\n"},  {"ms=60001", "400 Bad Request\n"}, {"x=1", "400 Bad Request\n"},
        {"ms=99999999999999999999", "400 Bad Request\n"}};
    for (const auto& [query, body] : cases) {
      const std::string q = query;
      CAPTURE(q);
      test::ChildProcess fetch({dir + "/fetch", "--backend", backend, base + q});
      CHECK(fetch.wait_exit(20s) == 0);
      CHECK(fetch.out() == body);
    }
    server.signal(SIGINT);
    CHECK(server.wait_exit(20s) == 130);
  });
}

// A --root that is no directory served a 404 for every file, silently.
TEST_CASE("http_server refuses a --root that is not a directory, naming it") {
  on_each_example_backend([](const std::string& dir, const std::string& backend) {
    test::ChildProcess missing({dir + "/http_server", "--port", "0", "--backend", backend, "--root", "/nonexistent/x"});
    CHECK(missing.wait_exit(20s) == 1);
    CHECK(missing.out().empty());
    CHECK_MESSAGE(missing.err() == "http_server: --root /nonexistent/x: No such file or directory\n", missing.err());
    test::ChildProcess file({dir + "/http_server", "--port", "0", "--backend", backend, "--root", "/dev/null"});
    CHECK(file.wait_exit(20s) == 1);
    CHECK_MESSAGE(file.err() == "http_server: --root /dev/null: not a directory\n", file.err());
  });
}

// printf only fills stdio's buffer: without the check at exit
// (example::check_stdout_at_exit) a program whose output went nowhere exited 0.
TEST_CASE("the examples exit 1 and say so when standard output cannot be written") {
  on_each_example_backend([](const std::string& dir, const std::string& backend) {
    test::ChildProcess demo({"/bin/sh", "-c", "exec '" + dir + "/demo' --backend " + backend + " >/dev/full"});
    CHECK(demo.wait_exit(30s) == 1);
    CHECK_MESSAGE(demo.err() == "demo: cannot write standard output: No space left on device\n", demo.err());

    test::ChildProcess server({dir + "/echo_server", "--port", "0", "--backend", backend});
    const std::string port = std::to_string(listening_port(server));
    test::ChildProcess client({"/bin/sh", "-c",
                               "exec '" + dir + "/echo_client' --port " + port + " --count 5 --backend " + backend +
                                   " >/dev/full"});
    CHECK(client.wait_exit(30s) == 1);
    CHECK_MESSAGE(client.err().find("echo_client: cannot write standard output") == 0, client.err());
    server.signal(SIGINT);
    CHECK(server.wait_exit(20s) == 130);

    // --help is output too (the crawler parses its own options).
    for (const char* prog : {"echo_server", "echo_client", "chat_server", "http_server", "fetch", "demo",
                             "graceful_shutdown", "parallel_work", "crawler/crawler"}) {
      const std::string path = dir + "/" + prog;
      const std::string name = path.substr(path.rfind('/') + 1);
      CAPTURE(name);
      test::ChildProcess help({"/bin/sh", "-c", "exec '" + path + "' --help >/dev/full"});
      CHECK(help.wait_exit(10s) == 1);
      CHECK_MESSAGE(help.err() == name + ": cannot write standard output: No space left on device\n", help.err());
    }
  });
}

namespace {

struct ChatLog {
  std::string lines;     // everything bob received
  int from_alice = 0;    // "alice: …" lines seen by bob
  bool saw_drop = false; // "* slow\x1b[2J was dropped (not reading)"
  bool saw_left = false; // "* alice left"
};

Task<void> bob_reads(StreamReader& r, ChatLog& log) {
  for (;;) {
    std::string line = co_await r.readline();
    if (line.empty()) co_return;
    log.lines += line;
    if (line.rfind("alice: ", 0) == 0) ++log.from_alice;
    if (line == "* slow\x1b[2J was dropped (not reading)\n") log.saw_drop = true;
    if (line == "* alice left\n") log.saw_left = true;
  }
}

Task<StreamPair> join(std::uint16_t port, std::string name) {
  StreamPair p = co_await open_connection("127.0.0.1", port);
  CHECK(co_await p.reader.readline() == "welcome! your name?\n");
  p.writer.write(name + "\n");
  std::string who = co_await p.reader.readline();
  CHECK(who.rfind("* online:", 0) == 0);
  co_return p;
}

Task<void> chat_scenario(std::uint16_t port) {
  // A client that never reads, with a tiny receive buffer so that its
  // backlog reaches the server's queue quickly.
  Socket slow = Socket::create(AF_INET, SOCK_STREAM);
  slow.set_option(SOL_SOCKET, SO_RCVBUF, 4096);
  co_await slow.connect(SocketAddress::parse("127.0.0.1", port));
  // Its name holds an escape sequence (clear screen): relayed to the other
  // clients as chat is, but not to the operator's terminal (stderr).
  co_await slow.send_all("slow\x1b[2J\n");

  StreamPair alice = co_await join(port, "alice");
  StreamPair bob = co_await join(port, "bob");
  ChatLog log;
  auto reader = create_task(bob_reads(bob.reader, log));

  // Alice talks; bob keeps up (he is never more than a batch behind), slow
  // does not read at all. Slow is dropped; bob gets every line meanwhile.
  const std::string filler(200, '.');
  int sent = 0;
  auto end = Clock::now() + 60s;
  while (!log.saw_drop && sent < 200000 && Clock::now() < end) {
    for (int i = 0; i < 50; ++i) alice.writer.write(std::to_string(sent++) + filler + "\n");
    co_await alice.writer.drain();
    while (log.from_alice < sent && Clock::now() < end) co_await sleep(1ms);
  }
  CHECK(log.saw_drop);
  CHECK(log.from_alice == sent);
  alice.writer.write("/quit\n");
  while (!log.saw_left && Clock::now() < end) co_await sleep(1ms);
  CHECK(log.saw_left);
  bob.writer.write("/who\n");
  while (log.lines.find("* online: bob\n") == std::string::npos && Clock::now() < end) co_await sleep(1ms);
  CHECK(log.lines.find("* online: bob\n") != std::string::npos);
  bob.writer.close();
  co_await reader;
}

}  // namespace

// Runs body(loop, chat, port) against examples/chat_server (started with
// `extra` options) on each backend; skipped when the examples are not built.
template <class F>
void on_each_chat_server(std::vector<std::string> extra, F body) {
  std::string dir = examples_dir();
  if (dir.empty()) {
    MESSAGE("examples not built: skipped");
    return;
  }
  test::on_each_backend([&](EventLoop& loop) {
    std::vector<std::string> argv{dir + "/chat_server", "--port", "0", "--backend", backend_name(loop.backend_kind())};
    argv.insert(argv.end(), extra.begin(), extra.end());
    test::ChildProcess chat(std::move(argv));
    const auto port = static_cast<std::uint16_t>(listening_port(chat));
    body(loop, chat, port);
  });
}

TEST_CASE("chat_server drops a client that does not read, and the others never stall") {
  on_each_chat_server({"--max-queue", "65536"}, [](EventLoop& loop, test::ChildProcess& chat, std::uint16_t port) {
    test::run_bounded(loop, chat_scenario(port), 90s);
    chat.signal(SIGTERM);
    CHECK(chat.wait_exit(20s) == 143);
    CHECK_MESSAGE(chat.err().find("chat_server: dropped slow\\x1b[2J (127.0.0.1:") == 0, chat.err());
    CHECK(chat.err().find('\x1b') == std::string::npos);
    CHECK(chat.err().find("outgoing queue over 65536 bytes") != std::string::npos);
  });
}

namespace {

// Closes `s` with a reset (SO_LINGER 0), as a crashed client's kernel would.
void reset_close(Socket& s) {
  const ::linger l{1, 0};
  REQUIRE(::setsockopt(s.fd(), SOL_SOCKET, SO_LINGER, &l, sizeof l) == 0);
  s.close();
}

Task<void> chat_rude_clients_scenario(std::uint16_t port) {
  StreamPair alice = co_await join(port, "alice");

  // A name over the 4096-byte line limit: told so, then disconnected.
  StreamPair long_name = co_await open_connection("127.0.0.1", port);
  CHECK(co_await long_name.reader.readline() == "welcome! your name?\n");
  long_name.writer.write(std::string(5000, 'x'));
  CHECK(co_await long_name.reader.readline() == "* name too long, bye\n");
  CHECK(co_await long_name.reader.read() == "");

  // A client that resets before naming itself, and one that resets after.
  Socket anonymous = Socket::create(AF_INET, SOCK_STREAM);
  co_await anonymous.connect(SocketAddress::parse("127.0.0.1", port));
  char buf[64];
  CHECK(co_await anonymous.recv(buf, sizeof buf) > 0);
  reset_close(anonymous);
  Socket carol = Socket::create(AF_INET, SOCK_STREAM);
  co_await carol.connect(SocketAddress::parse("127.0.0.1", port));
  co_await carol.send_all("carol\n");
  CHECK(co_await alice.reader.readline() == "* carol joined\n");
  reset_close(carol);
  CHECK(co_await alice.reader.readline() == "* carol left\n");
  alice.writer.close();
}

}  // namespace

// A client's reset or over-long name is the client's business: the server
// reported each as "unhandled exception in client handler" on stderr, and
// the long name got no answer.
TEST_CASE("chat_server answers an over-long name, and lets clients that reset leave quietly") {
  on_each_chat_server({}, [](EventLoop& loop, test::ChildProcess& chat, std::uint16_t port) {
    test::run_bounded(loop, chat_rude_clients_scenario(port), 60s);
    chat.signal(SIGTERM);
    CHECK(chat.wait_exit(20s) == 143);
    CHECK_MESSAGE(chat.err().empty(), chat.err());
  });
}

namespace {

Task<void> chat_burst_scenario(std::uint16_t port) {
  Socket slow = Socket::create(AF_INET, SOCK_STREAM);
  slow.set_option(SOL_SOCKET, SO_RCVBUF, 4096);
  co_await slow.connect(SocketAddress::parse("127.0.0.1", port));
  // Its name holds an escape sequence (clear screen): relayed to the other
  // clients as chat is, but not to the operator's terminal (stderr).
  co_await slow.send_all("slow\x1b[2J\n");

  StreamPair alice = co_await join(port, "alice");
  StreamPair bob = co_await join(port, "bob");
  ChatLog log;
  auto reader = create_task(bob_reads(bob.reader, log));

  // Bursts of 1000 lines (~97 KB, more than --max-queue) in one write: the
  // server reads them in one go. Bob reads all the time, so he must get
  // every line of every burst; slow never reads and must be dropped.
  int sent = 0;
  auto end = Clock::now() + 60s;
  for (int burst = 0; burst < 200 && !log.saw_drop && Clock::now() < end; ++burst) {
    std::string lines;
    for (int i = 0; i < 1000; ++i) {
      char head[16];
      std::snprintf(head, sizeof head, "%07d ", sent++);
      lines += head + std::string(88, 'y') + "\n";
    }
    alice.writer.write(lines);
    co_await alice.writer.drain();
    while (log.from_alice < sent && !bob.reader.at_eof() && Clock::now() < end) co_await sleep(1ms);
    if (burst == 0) CHECK_MESSAGE(log.from_alice == 1000, "bob got " << log.from_alice << " of the first 1000 lines");
    if (log.from_alice < sent) break;  // bob was dropped, or the deadline passed
  }
  CHECK(log.saw_drop);
  CHECK(log.from_alice == sent);
  bob.writer.close();
  alice.writer.close();
  co_await reader;
}

}  // namespace

TEST_CASE("chat_server relays a 1000-line burst to a reading client in full and drops only the one not reading") {
  on_each_chat_server({"--max-queue", "65536"}, [](EventLoop& loop, test::ChildProcess& chat, std::uint16_t port) {
    test::run_bounded(loop, chat_burst_scenario(port), 90s);
    chat.signal(SIGTERM);
    CHECK(chat.wait_exit(20s) == 143);
    CHECK_MESSAGE(chat.err().find("chat_server: dropped slow\\x1b[2J (127.0.0.1:") == 0, chat.err());
    CHECK(chat.err().find('\x1b') == std::string::npos);
    CHECK(chat.err().find("outgoing queue over 65536 bytes") != std::string::npos);
    CHECK_MESSAGE(chat.err().find("dropped bob") == std::string::npos, chat.err());
    CHECK_MESSAGE(chat.err().find("dropped alice") == std::string::npos, chat.err());
  });
}

namespace {

Task<void> chat_shutdown_scenario(test::ChildProcess& chat, std::uint16_t port) {
  StreamPair alice = co_await join(port, "alice");
  StreamPair bob = co_await join(port, "bob");
  CHECK(co_await alice.reader.readline() == "* bob joined\n");
  chat.signal(SIGINT);
  // The shutdown closes both connections. Each handler then leaves the
  // room, and must not announce it to a writer that is already closed: that
  // write throws, and from the farewell's destructor it aborted the process.
  std::string a = co_await alice.reader.read();  // until EOF
  std::string b = co_await bob.reader.read();
  CHECK(a.find("left") == std::string::npos);
  CHECK(b.find("left") == std::string::npos);
}

}  // namespace

TEST_CASE("chat_server exits 130 on SIGINT with clients in the room, closing every connection") {
  on_each_chat_server({}, [](EventLoop& loop, test::ChildProcess& chat, std::uint16_t port) {
    test::run_bounded(loop, chat_shutdown_scenario(chat, port), 30s);
    CHECK_MESSAGE(chat.wait_exit(20s) == 130, chat.err());
    CHECK_MESSAGE(chat.err().find("terminate") == std::string::npos, chat.err());
  });
}

// graceful_shutdown read its numbers with atoi: "--seconds 1x" ran 1 s, and
// "--seconds 600000000" overflowed seconds * 4 and stopped at once ("time is
// up", status 0). A number it cannot take is a usage error.
TEST_CASE("graceful_shutdown rejects garbage and out-of-range numbers with status 2") {
  std::string dir = examples_dir();
  if (dir.empty()) {
    MESSAGE("examples not built: skipped");
    return;
  }
  const std::pair<const char*, const char*> bad[] = {{"--seconds", "600000000"}, {"--seconds", "1x"},
                                                     {"--seconds", "-1"},        {"--workers", "5x"},
                                                     {"--workers", "0"},         {"--workers", "99999999999"}};
  for (const auto& [o, v] : bad) {
    const std::string opt = o, value = v;
    CAPTURE(opt);
    CAPTURE(value);
    test::ChildProcess p({dir + "/graceful_shutdown", opt, value});
    CHECK(p.wait_exit(10s) == 2);
    CHECK_MESSAGE(p.out().empty(), p.out());
    CHECK(p.err().rfind("graceful_shutdown: " + opt, 0) == 0);
  }
  test::ChildProcess ok({dir + "/graceful_shutdown", "--seconds", "0", "--workers", "2"});
  CHECK(ok.wait_exit(20s) == 0);
}

// Count mode read whatever followed the last echo and threw it away: a
// server that echoed a message and then sent more (here "EXTRA" after every
// echo) passed "--count 1" with "1 ok, 0 wrong" and status 0, while lines
// mode counts such bytes as a wrong echo.
TEST_CASE("echo_client's count mode counts bytes after the last echo as a wrong echo") {
  std::string dir = examples_dir();
  if (dir.empty()) {
    MESSAGE("examples not built: skipped");
    return;
  }
  // Echoes each read, then "EXTRA"; closes at the client's EOF.
  const char* script =
      "import socket, threading, sys\n"
      "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(8)\n"
      "print('listening on 127.0.0.1:%d' % s.getsockname()[1], flush=True)\n"
      "def h(c):\n"
      "    while True:\n"
      "        d = c.recv(65536)\n"
      "        if not d: break\n"
      "        c.sendall(d + b'EXTRA')\n"
      "    c.close()\n"
      "while True:\n"
      "    c, _ = s.accept(); threading.Thread(target=h, args=(c,), daemon=True).start()\n";
  test::ChildProcess server({"/usr/bin/python3", "-c", script});
  const std::string port = std::to_string(listening_port(server));
  test::ChildProcess client({dir + "/echo_client", "--port", port, "--count", "1", "--timeout", "10"});
  CHECK(client.wait_exit(20s) == 1);
  CHECK_MESSAGE(client.out().find("1 messages of 64 bytes over 1 connection(s): 0 ok, 1 wrong") == 0,
                client.out() << client.err());
  server.signal(SIGTERM);
  server.wait_exit(10s);
}

// parallel_work's --size went through strtoull and a shift unchecked:
// "17592186044417M" wrapped to 1 MiB and "-18446744073708503040" (2^64 - N)
// was 1 MiB too, both accepted. They are usage errors.
TEST_CASE("parallel_work rejects sizes that wrap around, negative or not, with status 2") {
  std::string dir = examples_dir();
  if (dir.empty()) {
    MESSAGE("examples not built: skipped");
    return;
  }
  for (const char* v : {"17592186044417M", "-18446744073708503040", "4398046511105K", " 5", "+5", "-5", "2G"}) {
    const std::string value = v;
    CAPTURE(value);
    test::ChildProcess p({dir + "/parallel_work", "--jobs", "1", "--quiet", "--size", value});
    CHECK(p.wait_exit(30s) == 2);
    CHECK(p.out().empty());
    CHECK(p.err() == "parallel_work: bad value '" + value + "' for --size (try --help)\n");
  }
  test::ChildProcess ok({dir + "/parallel_work", "--jobs", "1", "--quiet", "--size", "4K"});
  CHECK(ok.wait_exit(30s) == 0);
  CHECK(ok.out().rfind("job  0: 4096 bytes", 0) == 0);
}

// fetch -d @FILE ignored read errors: "-d @/tmp" (a directory, EISDIR) sent
// an empty POST and exited 0 when the server answered.
TEST_CASE("fetch -d @FILE fails when FILE cannot be read, instead of sending an empty body") {
  on_each_example_backend([](const std::string& dir, const std::string& backend) {
    test::ChildProcess server({dir + "/http_server", "--port", "0", "--backend", backend});
    const std::string url = "http://127.0.0.1:" + std::to_string(listening_port(server)) + "/plaintext";
    test::ChildProcess p({dir + "/fetch", "--backend", backend, "-d", "@/tmp", url});
    CHECK(p.wait_exit(20s) == 1);
    CHECK(p.out().empty());
    CHECK_MESSAGE(p.err() == "fetch: cannot read /tmp: Is a directory\n", p.err());
    server.signal(SIGINT);
    CHECK(server.wait_exit(20s) == 130);
  });
}
