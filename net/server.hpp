#pragma once
// start_server: asyncio's stream server. Each accepted connection runs
// `handler(reader, writer)` as its own task.
//
//   auto handler = [](StreamReader& r, StreamWriter& w) -> Task<void> {
//     while (true) {
//       std::string line = co_await r.readline();
//       if (line.empty()) break;
//       w.write(line);
//       co_await w.drain();
//     }
//   };
//   Server server = co_await corio::start_server(handler, "127.0.0.1", 8080);
//   co_await server.serve_forever();
//
// The handler is called with references to a reader and writer owned by the
// connection's task; when the handler returns (or throws), they are destroyed
// and the connection closes gracefully. An exception escaping the handler goes
// to the loop's exception handler ("unhandled exception in client handler for
// 127.0.0.1:5555"); the server keeps serving everyone else. A capturing
// lambda is fine as the handler: the server keeps it alive while any of its
// connections runs.
//
// Accepting: one accept request per listening socket. On io_uring it is a
// multishot accept, armed once and re-armed only when the kernel ends it
// (after an error, or when it cannot post more completions); a kernel that
// refuses multishot accept (-EINVAL, before Linux 5.19) gets one accept per
// connection instead. On epoll an accept is re-armed at each completion and
// drains the queue while connections are pending. Transient errors (a peer that gave up while queued, network
// errors passed on by accept(2)) are skipped. When the process runs out of
// file descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM), the server
// reports it once, pauses accepting on that socket for 100 ms and retries —
// existing connections keep being served and nothing spins.
//
// Graceful shutdown (ServerOptions::drain_on_shutdown, on by default): when
// the loop's shutdown is requested, the server closes its listening sockets
// (new clients are refused), lets handlers in the middle of a request finish,
// and ends idle connections: a read waiting with nothing buffered returns EOF
// (at_eof() turns true), and so does every later read that finds nothing
// buffered, so a handler written the usual way (read until EOF) ends by
// itself between requests. serve_forever() then returns once every handler
// finished (after wait_closed()). A server started after the request shuts
// down at once. Handlers that never read again are ended by corio::run's
// shutdown grace period (RunOptions::shutdown_grace).

#include <sys/socket.h>  // SOMAXCONN

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "coro/task.hpp"
#include "net/stream.hpp"
#include "net/tls_ref.hpp"

namespace corio {

using ClientHandler = std::function<Task<void>(StreamReader&, StreamWriter&)>;

struct ServerOptions : StreamOptions {
  // listen(2) queue length. asyncio's default is 100; a burst of clients
  // larger than the queue gets SYNs dropped or resets, so corio asks for
  // SOMAXCONN (4096; the kernel caps it at net.core.somaxconn).
  int backlog = SOMAXCONN;
  bool reuse_address = true;    // SO_REUSEADDR (TCP; restart without waiting for TIME_WAIT)
  bool reuse_port = false;      // SO_REUSEPORT: several processes/loops share the port
  int family = AF_UNSPEC;       // restrict the resolved host to AF_INET or AF_INET6
  bool start_serving = true;    // accept at once; else on start_serving()/serve_forever()
  // Follow the loop's shutdown token (EventLoop::shutdown_event(): the first
  // SIGINT/SIGTERM under corio::run with SignalPolicy::request_shutdown, or
  // EventLoop::request_shutdown()): see "Graceful shutdown" above.
  bool drain_on_shutdown = true;
  // TLS (net/tls.hpp): a server TlsContext makes every connection TLS. The
  // handshake runs in the connection's task before the handler is called; a
  // client that fails it (or misses tls_handshake_timeout) is dropped quietly.
  // The caller's shared_ptr must keep the context alive during the call;
  // the server then holds its own reference.
  TlsRef tls;
  Duration tls_handshake_timeout = std::chrono::seconds(60);
};

namespace detail {
class ServerState;
}

class Server {
 public:
  Server() noexcept = default;
  explicit Server(detail::ServerState* s) noexcept;  // adopts one reference
  Server(Server&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  Server& operator=(Server&& o) noexcept;
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  // Closes the server (stops accepting); running connections go on.
  ~Server();

  // Stops accepting and closes the listening sockets (a Unix socket's file is
  // removed). Connections already accepted keep running. Idempotent.
  void close() noexcept;
  // Starts accepting if not yet (ServerOptions::start_serving = false).
  void start_serving();
  bool is_serving() const noexcept;
  // Waits until close() was called and every connection's handler finished.
  // Cancellation: CancelledError; nothing else changes.
  Task<void> wait_closed();
  // Accepts until close() is called, then returns (after a graceful
  // shutdown: once every handler finished).
  // Cancellation: closes the server and rethrows CancelledError (running
  // connections are not waited for; they end with the loop or on their own).
  Task<void> serve_forever();

  // Connections whose handler is running.
  std::size_t connection_count() const noexcept;
  // asyncio 3.13's Server.close_clients(): closes every running connection
  // gracefully (StreamWriter::close: bytes already written are still sent,
  // the handler's reads see EOF, its later writes throw InvalidStateError).
  // Does not stop accepting (close() does). Idempotent.
  void close_clients() noexcept;
  // asyncio 3.13's Server.abort_clients(): aborts every running connection
  // (StreamWriter::abort): unsent bytes are dropped and the peer gets a
  // reset (RST), so its reads fail with ConnectionResetError.
  void abort_clients() noexcept;
  // The loop's shutdown was requested and this server is draining.
  bool is_shutting_down() const noexcept;
  // The bound addresses (with the real ports when port 0 was asked for).
  std::vector<SocketAddress> addresses() const;
  // The listening sockets (asyncio's Server.sockets), e.g. for setsockopt.
  // Closed ones (after close()) are not listed.
  std::vector<const Socket*> sockets() const;
  // The first listening socket's port.
  std::uint16_t port() const;

 private:
  detail::ServerState* s_ = nullptr;
};

// Listens on host:port: host "" means every interface (0.0.0.0 and ::), a
// name is resolved and every address it has is bound (with port 0 each gets
// its own port). Throws AddressInUseError, NameNotFoundError, OSError.
Task<Server> start_server(ClientHandler handler, std::string host, std::uint16_t port, ServerOptions opts = {});
Task<Server> start_server(ClientHandler handler, SocketAddress addr, ServerOptions opts = {});
// A Unix stream server; a stale socket file at `path` is replaced, and the
// file is removed on close() ("@name" binds the abstract namespace).
Task<Server> start_unix_server(ClientHandler handler, std::string path, ServerOptions opts = {});

}  // namespace corio
