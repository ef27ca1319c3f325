#pragma once
// Socket: an owned socket fd with awaitable operations on both backends.
//
//   Socket s = Socket::create(AF_INET, SOCK_STREAM);
//   co_await s.connect(SocketAddress::parse("127.0.0.1", 8080), 2s);
//   co_await s.send_all("hello");
//   std::size_t n = co_await s.recv(buf);          // 0 = EOF
//
// Invariants:
// - fd_ is -1 or an open socket this object alone owns. It is created
//   non-blocking and close-on-exec, and closed through corio::close_fd so the
//   backend forgets it before the number can be reused.
// - peer_ caches the address the socket is connected to (set by connect(),
//   accept() or peer_address()); error messages name it even after the
//   kernel forgot it (a reset connection has no peer any more).
//
// Rules every awaitable here shares:
// - Concurrency: at most one receiving operation (recv, recvmsg, recvfrom,
//   accept) and one sending operation (send, send_all, sendmsg, sendto,
//   connect) in flight per socket; more would interleave bytes unpredictably.
// - The buffer passed in, and the Socket itself, must stay alive and in place
//   (not moved) until the await returns. The awaiter holds the operation's
//   state (address, msghdr) in the awaiting coroutine's frame.
// - Writes never raise SIGPIPE: the backends add MSG_NOSIGNAL; a write to a
//   closed peer throws BrokenPipeError or ConnectionResetError instead.
// - Failures throw the net/errors.hpp classes with the operation and the
//   peer in the message ("recv 127.0.0.1:80: Connection reset by peer").
// - Cancellation (all of them, unless stated): the kernel operation is
//   cancelled and the task resumes with CancelledError once the kernel let go
//   of the buffer. If the operation completed first, its result is returned
//   instead (no lost bytes, no leaked accepted socket) and the cancellation
//   is delivered at the task's next suspension point. The socket stays open
//   and usable either way.
#include <sys/socket.h>

#include <chrono>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "coro/scheduler.hpp"
#include "coro/task.hpp"
#include "loop/io_awaiter.hpp"
#include "net/address.hpp"
#include "net/errors.hpp"

namespace corio {

class Socket;

// What accept() returns: the connected socket and who is on the other end.
struct Accepted;

// What recvfrom() returns.
struct ReceivedFrom {
  std::size_t size = 0;     // bytes stored in the buffer
  SocketAddress sender;     // empty or unnamed for an unbound Unix sender
  bool truncated = false;   // the datagram was longer than the buffer (MSG_TRUNC)
};

namespace detail {

// recv/send/recvmsg/sendmsg: the byte count, or a net error.
class SocketIoAwaiter final : public IoAwaiter {
 public:
  SocketIoAwaiter(OpKind kind, const Socket& s, void* buf, std::size_t len, int flags) noexcept;
  SocketIoAwaiter(OpKind kind, const Socket& s, msghdr* msg, int flags) noexcept;
  std::size_t await_resume();

 private:
  const Socket* sock_;
};

class AcceptAwaiter final : public IoAwaiter {
 public:
  explicit AcceptAwaiter(const Socket& listener) noexcept;
  Accepted await_resume();

 private:
  const Socket* sock_;
  SocketAddress peer_;
  socklen_t len_ = SocketAddress::capacity();
};

// connect(), optionally raced against a deadline: when the timer fires first
// it cancels the kernel's connect and the await throws ConnectTimeoutError.
class ConnectAwaiter final : public IoAwaiter {
 public:
  ConnectAwaiter(Socket& s, const SocketAddress& addr, std::optional<Duration> timeout) noexcept;
  ~ConnectAwaiter();
  bool await_suspend(std::coroutine_handle<> h);
  void await_resume();

 private:
  static void on_deadline(TimerNode* n) noexcept;

  Socket* sock_;
  SocketAddress addr_;
  std::optional<Duration> timeout_;
  TimerNode timer_;
  Scheduler* sched_ = nullptr;
  bool timed_out_ = false;
};

class SendToAwaiter final : public IoAwaiter {
 public:
  SendToAwaiter(const Socket& s, const void* buf, std::size_t len, const SocketAddress& to, int flags) noexcept;
  std::size_t await_resume();

 private:
  const Socket* sock_;
  SocketAddress to_;
  iovec iov_;
  msghdr msg_{};
};

class RecvFromAwaiter final : public IoAwaiter {
 public:
  RecvFromAwaiter(const Socket& s, void* buf, std::size_t len, int flags) noexcept;
  ReceivedFrom await_resume();

 private:
  const Socket* sock_;
  SocketAddress from_;
  iovec iov_;
  msghdr msg_{};
};

}  // namespace detail

class Socket {
 public:
  Socket() noexcept = default;
  // Adopts an open socket fd (it should be non-blocking; the epoll backend
  // makes it so on first use anyway).
  explicit Socket(int fd) noexcept : fd_(fd) {}
  // Adopts a connected socket whose peer is already known (from accept).
  Socket(int fd, const SocketAddress& peer) noexcept : fd_(fd), peer_(peer) {}
  Socket(Socket&& o) noexcept : fd_(std::exchange(o.fd_, -1)), peer_(std::exchange(o.peer_, SocketAddress{})) {}
  Socket& operator=(Socket&& o) noexcept;
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  // Closes the socket. It must have no operation in flight (cancel first).
  ~Socket() { close(); }

  // socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol). Throws OSError.
  static Socket create(int family, int type, int protocol = 0);
  // A connected pair (socketpair), AF_UNIX by default.
  static std::pair<Socket, Socket> pair(int type = SOCK_STREAM);

  int fd() const noexcept { return fd_; }
  bool is_open() const noexcept { return fd_ >= 0; }
  explicit operator bool() const noexcept { return fd_ >= 0; }
  // Gives up ownership of the fd without closing it.
  int release() noexcept { return std::exchange(fd_, -1); }
  // Closes now (idempotent). Never with an operation in flight: cancel the
  // task waiting in it and let the await return first.
  void close() noexcept;
  int family() const;  // SO_DOMAIN
  int type() const;    // SO_TYPE

  // ---- synchronous set-up (these never block) ------------------------------
  void bind(const SocketAddress& addr);         // AddressInUseError, OSError
  void listen(int backlog = SOMAXCONN);
  // shutdown(2): SHUT_RD, SHUT_WR (send EOF; the peer reads 0) or SHUT_RDWR.
  // Synchronous because the kernel never blocks on it; a pending recv on a
  // stream socket then completes with 0 (on a datagram socket the kernel
  // reports nothing to epoll: there it completes only on io_uring).
  void shutdown(int how);
  void set_option(int level, int name, int value);
  int get_option(int level, int name) const;
  void set_reuse_address(bool on) { set_option(SOL_SOCKET, SO_REUSEADDR, on); }
  void set_reuse_port(bool on) { set_option(SOL_SOCKET, SO_REUSEPORT, on); }
  void set_nodelay(bool on);                    // TCP_NODELAY
  void set_keepalive(bool on) { set_option(SOL_SOCKET, SO_KEEPALIVE, on); }
  void set_v6only(bool on);                     // IPV6_V6ONLY
  void set_broadcast(bool on) { set_option(SOL_SOCKET, SO_BROADCAST, on); }
  // SO_LINGER: nullopt turns it off (the default); 0 makes close() send a
  // reset (RST) and drop unsent data instead of a graceful FIN.
  void set_linger(std::optional<int> seconds);
  // The pending error (SO_ERROR), cleared by reading it; 0 if none.
  int pending_error() const { return get_option(SOL_SOCKET, SO_ERROR); }

  // getsockname: the bound address (the real port after binding port 0).
  SocketAddress local_address() const;
  // getpeername, cached: still answers after the connection was reset.
  SocketAddress peer_address() const;
  // For messages: the peer if known, else the local address, else "fd N".
  std::string describe() const;

  // ---- awaitable operations (see the rules at the top) ----------------------

  // Waits for a connection on a listening socket.
  // Returns the new socket (non-blocking, close-on-exec) and the peer address.
  // Errors: ECONNABORTED (a peer gave up while queued) throws
  // ConnectionAbortedError; EMFILE/ENFILE throw OSError — retry later.
  detail::AcceptAwaiter accept() noexcept { return detail::AcceptAwaiter(*this); }

  // Connects to addr. Throws ConnectionRefusedError, OSError, or (with a
  // timeout) ConnectTimeoutError when the deadline passes first — then the
  // socket is in an unspecified state: close it. A connect the kernel
  // completes just as the deadline fires succeeds (the kernel wins).
  // Cancellation: as the rules above; the socket must be closed afterwards
  // unless the connect completed.
  detail::ConnectAwaiter connect(const SocketAddress& addr) noexcept { return {*this, addr, std::nullopt}; }
  template <class Rep, class Period>
  detail::ConnectAwaiter connect(const SocketAddress& addr, std::chrono::duration<Rep, Period> timeout) noexcept {
    return {*this, addr, detail::saturated_duration(timeout)};
  }

  // Receives up to buf.size() bytes. Returns the count; 0 means the peer
  // sent EOF (stream sockets) or an empty datagram. Short reads are normal.
  detail::SocketIoAwaiter recv(std::span<std::byte> buf, int flags = 0) noexcept {
    return {detail::OpKind::recv, *this, buf.data(), buf.size(), flags};
  }
  detail::SocketIoAwaiter recv(void* buf, std::size_t len, int flags = 0) noexcept {
    return {detail::OpKind::recv, *this, buf, len, flags};
  }

  // Sends up to buf.size() bytes; returns how many the kernel took, which may
  // be fewer on a stream socket (use send_all to send everything).
  detail::SocketIoAwaiter send(std::span<const std::byte> buf, int flags = 0) noexcept {
    return {detail::OpKind::send, *this, const_cast<std::byte*>(buf.data()), buf.size(), flags};
  }
  detail::SocketIoAwaiter send(const void* buf, std::size_t len, int flags = 0) noexcept {
    return {detail::OpKind::send, *this, const_cast<void*>(buf), len, flags};
  }
  detail::SocketIoAwaiter send(std::string_view s, int flags = 0) noexcept { return send(s.data(), s.size(), flags); }

  // Sends every byte, resubmitting the rest after each short send.
  // Cancellation: CancelledError; a prefix of unknown length may have been
  // sent, so the stream's framing is lost — close the socket.
  Task<void> send_all(const void* buf, std::size_t len);
  Task<void> send_all(std::span<const std::byte> buf) { return send_all(buf.data(), buf.size()); }
  Task<void> send_all(std::string_view s) { return send_all(s.data(), s.size()); }

  // recvmsg/sendmsg with a caller-owned msghdr (scatter/gather, ancillary data,
  // addresses). msg and everything it points to must outlive the await. The
  // kernel updates msg.msg_namelen, msg.msg_controllen and msg.msg_flags.
  detail::SocketIoAwaiter recvmsg(msghdr& msg, int flags = 0) noexcept {
    return {detail::OpKind::recvmsg, *this, &msg, flags};
  }
  detail::SocketIoAwaiter sendmsg(const msghdr& msg, int flags = 0) noexcept {
    return {detail::OpKind::sendmsg, *this, const_cast<msghdr*>(&msg), flags};
  }

  // Datagrams: sends one datagram to `to` (UDP or Unix SOCK_DGRAM); returns
  // the byte count. EMSGSIZE throws OSError.
  detail::SendToAwaiter sendto(std::span<const std::byte> buf, const SocketAddress& to, int flags = 0) noexcept {
    return {*this, buf.data(), buf.size(), to, flags};
  }
  detail::SendToAwaiter sendto(std::string_view s, const SocketAddress& to, int flags = 0) noexcept {
    return {*this, s.data(), s.size(), to, flags};
  }
  // Receives one datagram and its sender. A datagram longer than buf is cut
  // to buf.size() and reported with truncated = true.
  detail::RecvFromAwaiter recvfrom(std::span<std::byte> buf, int flags = 0) noexcept {
    return {*this, buf.data(), buf.size(), flags};
  }
  detail::RecvFromAwaiter recvfrom(void* buf, std::size_t len, int flags = 0) noexcept {
    return {*this, buf, len, flags};
  }

 private:
  friend class detail::ConnectAwaiter;
  friend class detail::AcceptAwaiter;

  int fd_ = -1;
  mutable SocketAddress peer_;
};

struct Accepted {
  Socket socket;
  SocketAddress peer;
};

}  // namespace corio
