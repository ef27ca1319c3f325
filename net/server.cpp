#include "net/server.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <new>

#include "coro/task_handle.hpp"
#include "net/dns.hpp"
#include "net/tls.hpp"
#include "net/wait_list.hpp"

namespace corio {
namespace detail {

// The shared state of a Server.
//
// Invariants:
// - refs counts the Server handle, each accept in flight, each armed back-off
//   timer and each running connection (a ConnToken); the state is freed when
//   all are gone, so no completion or timer ever sees freed memory.
// - A listener's socket is closed only with no accept in flight on it: close()
//   shuts it down (no new connections from then on), cancels the accept, and
//   the completion closes the socket.
// - After close(), nothing re-arms: no accept, no back-off timer.
// - connections counts the running connections; they are found (for
//   close_clients(), abort_clients() and the shutdown) among the loop's
//   tasks, where each is a ConnTask whose claim names this state — no list
//   of its own, so a connection carries no links for it.
// - shutdown_watch, if set, is a task waiting for the loop's shutdown token;
//   it touches the state only after a normal wake-up, and close() (which
//   comes before the state can be freed) cancels it.
class ServerState {
 public:
  struct Listener {
    ServerState* owner = nullptr;
    Socket sock;
    SocketAddress addr;
    IoOp op;
    SocketAddress peer;
    socklen_t peer_len = SocketAddress::capacity();
    TimerNode backoff;
    bool armed = false;      // an accept is in flight (a multishot one: still armed)
    bool failed = false;     // stopped after an unexpected error
    bool multishot = false;  // op is an accept_multishot (io_uring)
  };

  ServerState(ClientHandler h, const ServerOptions& o)
      : handler(std::move(h)), opts(o), tls(o.tls.lock()), loop(&EventLoop::current()) {}
  ServerState(const ServerState&) = delete;

  void add_ref() noexcept { ++refs; }
  void release() noexcept {
    if (--refs == 0) delete this;
  }

  void add_listener(const SocketAddress& a);
  void start_serving() noexcept;
  void close() noexcept;
  // The loop's shutdown was requested: close, and end idle connections.
  void begin_shutdown() noexcept;
  // close_clients() / abort_clients().
  void end_clients(bool abort) noexcept;
  bool fully_closed() const noexcept {
    if (!closed || connections != 0) return false;
    for (const auto& l : listeners)
      if (l->armed) return false;
    return true;
  }
  void connection_ended() noexcept {
    --connections;
    if (closed && connections == 0) waiters.wake_all();
  }

  ClientHandler handler;
  ServerOptions opts;
  std::shared_ptr<TlsContext> tls;  // opts.tls, kept alive while the server lives
  EventLoop* loop;
  std::vector<std::unique_ptr<Listener>> listeners;
  ParkList waiters;  // wait_closed() and serve_forever()
  std::size_t connections = 0;
  std::uint32_t refs = 0;
  bool serving = false;
  bool serving_forever = false;
  bool closed = false;
  bool shutting_down = false;
  bool warned_exhaustion = false;
  TaskHandle<void> shutdown_watch;
  // A Unix socket file to remove on close, if it is still ours (same inode).
  std::string unix_path;
  dev_t unix_dev = 0;
  ino_t unix_ino = 0;

 private:
  ~ServerState() = default;
  void pump(Listener& l, bool have_result, int result) noexcept;
  static void use_single_accept(Listener& l) noexcept;
  bool handle_result(Listener& l, int r) noexcept;
  void spawn(Socket sock) noexcept;
  static void accepted(IoOp* op) noexcept;
  static void backoff_done(TimerNode* t) noexcept;
  // Calls f(StreamConn&) for each running connection of this server.
  template <class F>
  void for_each_connection(F f) noexcept;
};

namespace {

constexpr auto kAcceptBackoff = std::chrono::milliseconds(100);

}  // namespace

namespace {

// Waits for the loop's shutdown token, then shuts the server down gracefully.
Task<void> watch_shutdown(ServerState* s) {
  co_await s->loop->shutdown_event().wait();  // CancelledError once the server closed
  s->shutdown_watch = TaskHandle<void>();
  s->begin_shutdown();
}

// The root of a connection task whose handler could not even be called
// (it threw, or returned an empty Task): fails in the first step, so the
// failure is reported as the handler's, where and when it was before.
Task<void> rethrow_in_task(std::exception_ptr e) {
  std::rethrow_exception(e);
  co_return;
}

// TLS: the handshake runs in the connection's task before the handler.
Task<void> serve_tls(ServerState* s, StreamReader& reader, StreamWriter& writer) {
  // A client that cannot complete the handshake is not the server's failure.
  bool shook = false;
  try {
    co_await tls_handshake(writer.connection(), s->tls, std::string(), s->opts.tls_handshake_timeout);
    shook = true;
  } catch (const OSError&) {
  } catch (const TimeoutError&) {
  }
  if (!shook) co_return;
  Task<void> t = s->handler(reader, writer);
  if (!t.valid()) throw InvalidStateError("the client handler returned an empty Task");
  co_await t;
}

// What ConnTask needs to exist before its root frame (the handler is called
// with references to this reader and writer), and the connection itself.
//
// `server` is the running connection's claim on its server: counted in
// connection_count(), keeps the handler alive, holds a handle on the
// connection (so the server can close it, whatever the handler does with
// the reader and writer) and tells wait_closed() when it ends. It is let go
// (release_server) when the task finishes — also when it is cancelled
// before its first step or destroyed at loop teardown.
//
// The StreamConn lives in this allocation but ends on its own: it may
// outlive the task (operations in flight, a reader or writer the handler
// moved elsewhere), so it holds a reference on the task record
// (StreamConn::adopt_host) and destroys itself in place when its last
// reference goes; ConnParts keeps it in raw storage, so its own
// destructor leaves it alone. One allocation instead of two
// saves a malloc header and the pointer to it, per connection.
struct ConnParts {
  ConnParts(ServerState* s, Socket sock) {
    auto* c = ::new (static_cast<void*>(conn_storage)) StreamConn(std::move(sock), s->opts);
    reader = StreamReader(c);
    writer = StreamWriter(c);
    s->add_ref();
    ++s->connections;
    c->add_handle();
    server = s;
  }
  ConnParts(const ConnParts&) = delete;

  StreamConn& conn() const noexcept {
    return *std::launder(reinterpret_cast<StreamConn*>(const_cast<unsigned char*>(conn_storage)));
  }

  void release_server() noexcept {
    if (!server) return;
    conn().drop_handle();
    ServerState* s = std::exchange(server, nullptr);
    s->connection_ended();
    s->release();
  }

  ServerState* server = nullptr;
  alignas(StreamConn) unsigned char conn_storage[sizeof(StreamConn)];
  StreamReader reader;
  StreamWriter writer;
};

// A connection's task: the task record itself holds the connection, the
// reader, the writer and the server's claim, and its root frame is the
// user's handler — no wrapper coroutine per connection. What a wrapper would
// do at the end (report the handler's exception, close the streams, count
// the connection out) happens in on_finished(), synchronously when the task
// ends.
class ConnTask final : private ConnParts, public TaskBase {
 public:
  // Nothing after ConnParts can throw (TaskBase's constructor allocates only
  // for a name, make_root catches): once the connection exists, it is
  // adopted; before, a throw only unwinds the StreamConn's own constructor.
  ConnTask(ServerState* s, Socket sock)
      : ConnParts(s, std::move(sock)), TaskBase(*s->loop, make_root(s), std::string()) {
    conn().adopt_host(*this);
  }

  // The running connection of server s this task serves, or nullptr.
  StreamConn* connection_of(const ServerState* s) const noexcept {
    return server == s ? &conn() : nullptr;
  }

 private:
  detail::PromiseBase* root_promise() const noexcept override { return promise_of<void>(root_); }

  // Calls the handler (which creates its frame; its body runs in the task).
  Task<void> make_root(ServerState* s) noexcept {
    if (s->tls) return serve_tls(s, reader, writer);
    try {
      Task<void> t = s->handler(reader, writer);
      if (!t.valid()) throw InvalidStateError("the client handler returned an empty Task");
      return t;
    } catch (...) {
      return rethrow_in_task(std::current_exception());
    }
  }

  // The connection may be gone once the server's claim is let go.
  SocketAddress peer() const noexcept { return server ? conn().peer() : SocketAddress(); }

  // "client 127.0.0.1:5555", formatted only when someone asks.
  std::string default_name() const override { return "client " + peer().to_string(); }

  void on_finished() noexcept override {
    ServerState* s = server;
    if (std::exception_ptr e = take_failure()) {
      try {
        s->loop->report_exception(e, "unhandled exception in client handler for " + peer().to_string());
      } catch (...) {
      }
    }
    // Someone still holds the task (all_tasks()): its name must outlive the
    // connection.
    if (ref_count() > 1) {
      try {
        set_name(default_name());
      } catch (...) {
      }
    }
    // Closes the streams (gracefully), unless the handler moved them away.
    reader = StreamReader();
    writer = StreamWriter();
    release_server();  // the connection's reference keeps this record until it ends
  }
};

// An idle connection costs this record plus the handler's frame: 296 bytes
// are a 304-byte malloc chunk (the frame allocator's size classes).
static_assert(sizeof(ConnTask) <= 296, "one per connection");

}  // namespace

template <class F>
void ServerState::for_each_connection(F f) noexcept {
  // A ConnTask is in the loop's registry exactly while its claim is held:
  // the claim is let go in on_finished(), right before the task leaves it.
  for (TaskBase* t = loop->first_task(); t; t = t->reg_next_) {
    if (auto* ct = dynamic_cast<ConnTask*>(t)) {
      if (StreamConn* c = ct->connection_of(this)) f(*c);
    }
  }
}

namespace {

bool is_fd_exhaustion(int err) noexcept { return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM; }

// accept(2): "Linux accept() passes already-pending network errors on the new
// socket as an error code from accept() … the application should treat them
// like EAGAIN by retrying." Plus a peer that gave up while queued.
bool is_transient(int err) noexcept {
  switch (err) {
    case EAGAIN:
    case EINTR:
    case ECONNABORTED:
    case EPROTO:
    case EPERM:
    case ENETDOWN:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETUNREACH:
    case ETIMEDOUT:
    case ECONNRESET:
      return true;
    default:
      return false;
  }
}

}  // namespace

void ServerState::add_listener(const SocketAddress& a) {
  auto l = std::make_unique<Listener>();
  l->owner = this;
  l->sock = Socket::create(a.family(), SOCK_STREAM);
  if (!a.is_unix()) {
    if (opts.reuse_address) l->sock.set_reuse_address(true);
    // Dual-stack listeners would collide with the IPv4 one on the same port.
    if (a.is_ipv6()) l->sock.set_v6only(true);
  }
  if (opts.reuse_port) l->sock.set_reuse_port(true);
  l->sock.bind(a);
  l->sock.listen(opts.backlog);
  l->addr = a.is_unix() ? a : l->sock.local_address();
  if (loop->backend().multishot_accept()) {
    l->multishot = true;
    l->op.kind = OpKind::accept_multishot;
  } else {
    use_single_accept(*l);
  }
  l->op.fd = l->sock.fd();
  l->op.backs_off_on_emfile = true;  // handle_result pauses accepts on EMFILE
  l->op.complete = &ServerState::accepted;
  l->op.ctx = l.get();
  l->backoff.fire = &ServerState::backoff_done;
  l->backoff.ctx = l.get();
  listeners.push_back(std::move(l));
}

void ServerState::use_single_accept(Listener& l) noexcept {
  l.multishot = false;
  l.op.kind = OpKind::accept;
  l.op.addr = l.peer.data();
  l.op.addrlen = &l.peer_len;
}

void ServerState::start_serving() noexcept {
  if (closed || serving) return;
  serving = true;
  for (auto& l : listeners) {
    if (!l->armed && !l->backoff.armed() && !l->failed) pump(*l, false, 0);
  }
}

// Handles one accept result (if any) and re-arms, looping while the backend
// completes accepts synchronously (epoll with a queue of pending connections).
void ServerState::pump(Listener& l, bool have_result, int result) noexcept {
  for (;;) {
    if (have_result && !handle_result(l, result)) break;
    // Not during loop teardown either (a transient error completing then):
    // the teardown waits for every op in flight, a new accept would hold it.
    if (closed || !serving || EventLoop::current_or_null() != loop) break;
    l.peer_len = SocketAddress::capacity();
    if (!loop->backend().submit(l.op)) {
      l.armed = true;
      add_ref();
      return;
    }
    have_result = true;
    result = l.op.result;
  }
  if (closed && !l.armed) l.sock.close();
}

bool ServerState::handle_result(Listener& l, int r) noexcept {
  if (r >= 0) {
    // A multishot accept reports no address (spawn asks getpeername).
    if (!l.multishot) l.peer.set_size(l.peer_len);
    Socket sock = l.multishot ? Socket(r) : Socket(r, l.peer);
    // A connection the kernel completed while we were closing, or while the
    // loop tears down (it is not running), is refused — closed at once rather
    // than leaked or served by a closed server — and nothing is re-armed.
    if (closed || EventLoop::current_or_null() != loop) return false;
    warned_exhaustion = false;
    spawn(std::move(sock));
    return true;
  }
  const int err = -r;
  if (err == ECANCELED) return false;  // close() or loop teardown
  if (closed) return false;  // close() shut the socket down: the accept fails (EINVAL) on its way out
  if (is_transient(err)) return true;
  if (is_fd_exhaustion(err)) {
    if (!warned_exhaustion) {
      warned_exhaustion = true;
      loop->report_warning("accept on " + l.addr.to_string() + ": " + std::strerror(err) +
                           "; pausing accepts (retrying every 100 ms), existing connections are still served");
    }
    l.backoff.deadline = loop->now() + kAcceptBackoff;
    loop->add_timer(l.backoff);
    add_ref();
    return false;
  }
  l.failed = true;
  loop->report_exception(make_os_error(err, "accept on", l.addr.to_string()),
                         "server stopped accepting on " + l.addr.to_string());
  return false;
}

void ServerState::spawn(Socket sock) noexcept {
  SocketAddress peer;
  try {
    peer = sock.peer_address();
  } catch (const OSError&) {
    return;  // reset before we looked at it (ENOTCONN): nothing to serve
  }
  try {
    loop->post(*new ConnTask(this, std::move(sock)));
  } catch (...) {
    loop->report_exception(std::current_exception(), "accepting a connection from " + peer.to_string());
  }
}

void ServerState::accepted(IoOp* op) noexcept {
  auto* l = static_cast<Listener*>(op->ctx);
  ServerState* s = l->owner;
  if (op->cqe_flags & kCqeMore) {
    // A multishot accept delivered a connection and stays armed: never
    // re-arm here (that would duplicate it). Errors always end the
    // multishot, so they arrive below, in its final completion.
    if (op->result >= 0) s->handle_result(*l, op->result);
    return;
  }
  l->armed = false;
  if (l->multishot && op->result == -EINVAL) {
    // A kernel without multishot accept (before 5.19) rejects the flag:
    // one accept per connection from now on, on this socket.
    s->use_single_accept(*l);
    s->pump(*l, false, 0);
  } else {
    s->pump(*l, true, op->result);
  }
  if (s->fully_closed()) s->waiters.wake_all();
  s->release();  // the accept's reference; may free s
}

void ServerState::backoff_done(TimerNode* t) noexcept {
  auto* l = static_cast<Listener*>(t->ctx);
  ServerState* s = l->owner;
  s->pump(*l, false, 0);
  s->release();  // the timer's reference
}

void ServerState::close() noexcept {
  if (closed) return;
  closed = true;
  serving = false;
  if (shutdown_watch) std::exchange(shutdown_watch, TaskHandle<void>()).cancel();
  add_ref();  // releasing timer references below must not free us mid-loop
  for (auto& l : listeners) {
    if (l->backoff.armed()) {
      loop->cancel_timer(l->backoff);
      release();
    }
    if (l->armed) {
      // Stop listening now, as closing the socket would (asyncio closes it
      // here): connects from this point are refused, and connections waiting
      // in the backlog are reset. The socket itself is closed by the
      // accept's completion, which may come later (the kernel holds the
      // socket while the accept is in flight).
      ::shutdown(l->sock.fd(), SHUT_RD);
      loop->backend().cancel(l->op);
    } else {
      l->sock.close();
    }
  }
  if (!unix_path.empty()) {
    struct stat st {};
    if (::stat(unix_path.c_str(), &st) == 0 && st.st_dev == unix_dev && st.st_ino == unix_ino) {
      ::unlink(unix_path.c_str());
    }
  }
  waiters.wake_all();
  release();
}

void ServerState::begin_shutdown() noexcept {
  if (shutting_down) return;
  shutting_down = true;
  close();
  // Handlers in the middle of a request go on; the others see EOF now (a
  // waiting read) or at their next read, and end the usual way.
  for_each_connection([](StreamConn& c) { c.end_idle_reads(); });
}

void ServerState::end_clients(bool abort) noexcept {
  // Closing only wakes tasks: no task finishes during this walk.
  for_each_connection([abort](StreamConn& c) {
    if (!abort) {
      c.close();
      return;
    }
    if (c.fd() >= 0) {
      linger l{1, 0};  // close() then sends a reset (RST), not a FIN
      ::setsockopt(c.fd(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    c.abort();
  });
}

}  // namespace detail

// ---- Server -------------------------------------------------------------------

namespace {

// Keeps the state alive across a suspension (the Server handle may be moved
// or destroyed meanwhile).
class StateRef {
 public:
  explicit StateRef(detail::ServerState* s) noexcept : s_(s) { s_->add_ref(); }
  StateRef(const StateRef&) = delete;
  ~StateRef() { s_->release(); }
  detail::ServerState* operator->() const noexcept { return s_; }

 private:
  detail::ServerState* s_;
};

Task<void> wait_closed_impl(detail::ServerState* raw) {
  StateRef s(raw);
  while (!s->fully_closed()) co_await s->waiters.wait("Server.wait_closed");
}

Task<void> serve_forever_impl(detail::ServerState* raw) {
  StateRef s(raw);
  if (s->closed) throw InvalidStateError("serve_forever: the server is closed");
  if (s->serving_forever) throw InvalidStateError("serve_forever: already serving forever");
  s->start_serving();
  s->serving_forever = true;
  try {
    while (!s->closed) co_await s->waiters.wait("Server.serve_forever");
    // A graceful shutdown returns once the last handler finished.
    if (s->shutting_down) {
      while (!s->fully_closed()) co_await s->waiters.wait("Server.serve_forever (shutting down)");
    }
  } catch (const CancelledError&) {
    s->serving_forever = false;
    s->close();
    throw;
  }
  s->serving_forever = false;
}

}  // namespace

Server::Server(detail::ServerState* s) noexcept : s_(s) {
  if (s_) s_->add_ref();
}

Server& Server::operator=(Server&& o) noexcept {
  if (this != &o) {
    if (s_) {
      s_->close();
      s_->release();
    }
    s_ = std::exchange(o.s_, nullptr);
  }
  return *this;
}

Server::~Server() {
  if (s_) {
    s_->close();
    s_->release();
  }
}

void Server::close() noexcept {
  if (s_) s_->close();
}

void Server::start_serving() {
  if (s_->closed) throw InvalidStateError("start_serving: the server is closed");
  s_->start_serving();
}

bool Server::is_serving() const noexcept { return s_ && s_->serving; }

Task<void> Server::wait_closed() { return wait_closed_impl(s_); }

Task<void> Server::serve_forever() { return serve_forever_impl(s_); }

std::size_t Server::connection_count() const noexcept { return s_ ? s_->connections : 0; }

void Server::close_clients() noexcept {
  if (s_) s_->end_clients(false);
}

void Server::abort_clients() noexcept {
  if (s_) s_->end_clients(true);
}

bool Server::is_shutting_down() const noexcept { return s_ && s_->shutting_down; }

std::vector<SocketAddress> Server::addresses() const {
  std::vector<SocketAddress> v;
  for (const auto& l : s_->listeners) v.push_back(l->addr);
  return v;
}

std::vector<const Socket*> Server::sockets() const {
  std::vector<const Socket*> v;
  for (const auto& l : s_->listeners)
    if (l->sock.is_open()) v.push_back(&l->sock);
  return v;
}

std::uint16_t Server::port() const { return s_->listeners.empty() ? 0 : s_->listeners.front()->addr.port(); }

// ---- start_server --------------------------------------------------------------

namespace {

Server make_server(ClientHandler handler, const std::vector<SocketAddress>& addrs, const ServerOptions& opts,
                   const std::string& unix_path) {
  if (!handler) throw std::invalid_argument("start_server: empty handler");
  if (opts.tls && !opts.tls.get()->is_server())
    throw std::invalid_argument("start_server: ServerOptions::tls is a client context (make it with TlsContext::server)");
  auto* st = new detail::ServerState(std::move(handler), opts);
  Server server(st);  // from here on, a throw closes and frees the state
  for (const SocketAddress& a : addrs) st->add_listener(a);
  if (!unix_path.empty()) {
    struct stat sb {};
    if (::stat(unix_path.c_str(), &sb) == 0) {
      st->unix_path = unix_path;
      st->unix_dev = sb.st_dev;
      st->unix_ino = sb.st_ino;
    }
  }
  if (opts.drain_on_shutdown) {
    st->shutdown_watch = create_task_on(*st->loop, detail::watch_shutdown(st), "server shutdown watch");
  }
  if (opts.start_serving) st->start_serving();
  return server;
}

}  // namespace

Task<Server> start_server(ClientHandler handler, std::string host, std::uint16_t port, ServerOptions opts) {
  ResolveOptions ro;
  ro.family = opts.family;
  ro.passive = true;
  std::vector<SocketAddress> addrs = co_await resolve(host, port, ro);
  co_return make_server(std::move(handler), addrs, opts, {});
}

Task<Server> start_server(ClientHandler handler, SocketAddress addr, ServerOptions opts) {
  co_return make_server(std::move(handler), {addr}, opts, {});
}

Task<Server> start_unix_server(ClientHandler handler, std::string path, ServerOptions opts) {
  SocketAddress addr = SocketAddress::unix_path(path);
  const bool abstract = path.front() == '@';
  if (!abstract) {
    // A socket file left by a previous run would make bind fail: replace it
    // (only a socket; any other file is an error worth seeing).
    struct stat sb {};
    if (::stat(path.c_str(), &sb) == 0 && S_ISSOCK(sb.st_mode)) ::unlink(path.c_str());
  }
  co_return make_server(std::move(handler), {addr}, opts, abstract ? std::string() : path);
}

}  // namespace corio
