#include "net/socket.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "loop/fd_io.hpp"

namespace corio {

namespace detail {

namespace {
// The kernel caps a single transfer at 0x7ffff000 bytes; IoOp::len is 32-bit.
std::uint32_t clamp_len(std::size_t len) noexcept {
  return static_cast<std::uint32_t>(len > 0x7ffff000u ? 0x7ffff000u : len);
}
}  // namespace

SocketIoAwaiter::SocketIoAwaiter(OpKind kind, const Socket& s, void* buf, std::size_t len, int flags) noexcept
    : sock_(&s) {
  op_.kind = kind;
  op_.fd = s.fd();
  op_.buf = buf;
  op_.len = clamp_len(len);
  op_.msg_flags = flags;
  dontwait_send_ = kind == OpKind::send;
}

SocketIoAwaiter::SocketIoAwaiter(OpKind kind, const Socket& s, msghdr* msg, int flags) noexcept : sock_(&s) {
  op_.kind = kind;
  op_.fd = s.fd();
  op_.msg = msg;
  op_.msg_flags = flags;
  dontwait_send_ = kind == OpKind::sendmsg;
}

std::size_t SocketIoAwaiter::await_resume() {
  int r = result();
  if (r < 0) throw_os_error(-r, op_name(op_.kind), sock_->describe());
  return static_cast<std::size_t>(r);
}

AcceptAwaiter::AcceptAwaiter(const Socket& listener) noexcept : sock_(&listener) {
  op_.kind = OpKind::accept;
  op_.fd = listener.fd();
  op_.addr = peer_.data();
  op_.addrlen = &len_;
}

Accepted AcceptAwaiter::await_resume() {
  int r = result();
  if (r < 0) throw_os_error(-r, "accept on", sock_->describe());
  peer_.set_size(len_);
  Accepted a{Socket(r), peer_};
  a.socket.peer_ = peer_;
  return a;
}

ConnectAwaiter::ConnectAwaiter(Socket& s, const SocketAddress& addr, std::optional<Duration> timeout) noexcept
    : sock_(&s), addr_(addr), timeout_(timeout) {
  op_.kind = OpKind::connect;
  op_.fd = s.fd();
  op_.addr = addr_.data();
  op_.addrlen_value = addr_.size();
}

ConnectAwaiter::~ConnectAwaiter() {
  if (timer_.armed()) sched_->cancel_timer(timer_);
}

bool ConnectAwaiter::await_suspend(std::coroutine_handle<> h) {
  if (!IoAwaiter::await_suspend(h)) return false;  // done at once, or cancelled before starting
  if (timeout_) {
    sched_ = &EventLoop::current();
    timer_.deadline = detail::deadline_after(sched_->now(), *timeout_);
    timer_.fire = &ConnectAwaiter::on_deadline;
    timer_.ctx = this;
    sched_->add_timer(timer_);
  }
  return true;
}

void ConnectAwaiter::on_deadline(TimerNode* n) noexcept {
  auto* self = static_cast<ConnectAwaiter*>(n->ctx);
  // The completion may have arrived in this same loop iteration (the task is
  // queued but has not run): then there is nothing to cancel.
  if (self->op_done()) return;
  self->timed_out_ = true;
  self->cancel_op();
}

void ConnectAwaiter::await_resume() {
  if (timer_.armed()) sched_->cancel_timer(timer_);
  int r = result();  // CancelledError if the task itself was cancelled
  if (r == -ECANCELED && timed_out_) {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(*timeout_).count();
    throw ConnectTimeoutError(addr_.to_string(), "timed out after " + std::to_string(ms) + " ms");
  }
  if (r < 0) throw_os_error(-r, "connect", addr_.to_string());
  // What the kernel connected to (0.0.0.0 / :: reach loopback); the address
  // asked for if getpeername fails (a reset that came already).
  SocketAddress real;
  socklen_t len = SocketAddress::capacity();
  if (::getpeername(sock_->fd(), real.data(), &len) == 0) {
    real.set_size(len);
    sock_->peer_ = real;
  } else {
    sock_->peer_ = addr_;
  }
}

SendToAwaiter::SendToAwaiter(const Socket& s, const void* buf, std::size_t len, const SocketAddress& to,
                             int flags) noexcept
    : sock_(&s), to_(to) {
  iov_.iov_base = const_cast<void*>(buf);
  iov_.iov_len = clamp_len(len);
  msg_.msg_name = to_.data();
  msg_.msg_namelen = to_.size();
  msg_.msg_iov = &iov_;
  msg_.msg_iovlen = 1;
  op_.kind = OpKind::sendmsg;
  op_.fd = s.fd();
  op_.msg = &msg_;
  op_.msg_flags = flags;
  dontwait_send_ = true;
}

std::size_t SendToAwaiter::await_resume() {
  int r = result();
  if (r < 0) throw_os_error(-r, "sendto", to_.to_string());
  return static_cast<std::size_t>(r);
}

RecvFromAwaiter::RecvFromAwaiter(const Socket& s, void* buf, std::size_t len, int flags) noexcept : sock_(&s) {
  iov_.iov_base = buf;
  iov_.iov_len = clamp_len(len);
  msg_.msg_name = from_.data();
  msg_.msg_namelen = SocketAddress::capacity();
  msg_.msg_iov = &iov_;
  msg_.msg_iovlen = 1;
  op_.kind = OpKind::recvmsg;
  op_.fd = s.fd();
  op_.msg = &msg_;
  op_.msg_flags = flags;
}

ReceivedFrom RecvFromAwaiter::await_resume() {
  int r = result();
  if (r < 0) throw_os_error(-r, "recvfrom on", sock_->describe());
  from_.set_size(msg_.msg_namelen);
  // With MSG_TRUNC in flags the kernel answers with the datagram's whole
  // length, which may be more than the buffer holds: size stays what was stored.
  const auto stored = std::min(static_cast<std::size_t>(r), iov_.iov_len);
  return ReceivedFrom{stored, from_, (msg_.msg_flags & MSG_TRUNC) != 0 || stored < static_cast<std::size_t>(r)};
}

}  // namespace detail

Socket& Socket::operator=(Socket&& o) noexcept {
  if (this != &o) {
    close();
    fd_ = std::exchange(o.fd_, -1);
    peer_ = std::exchange(o.peer_, SocketAddress{});
  }
  return *this;
}

Socket Socket::create(int family, int type, int protocol) {
  int fd = ::socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
  if (fd < 0) throw_os_error(errno, "socket", "family " + std::to_string(family));
  return Socket(fd);
}

std::pair<Socket, Socket> Socket::pair(int type) {
  int fds[2];
  if (::socketpair(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) < 0) throw_os_error(errno, "socketpair", "");
  return {Socket(fds[0]), Socket(fds[1])};
}

void Socket::close() noexcept {
  if (fd_ >= 0) close_fd(std::exchange(fd_, -1));
}

int Socket::family() const { return get_option(SOL_SOCKET, SO_DOMAIN); }
int Socket::type() const { return get_option(SOL_SOCKET, SO_TYPE); }

void Socket::bind(const SocketAddress& addr) {
  if (::bind(fd_, addr.data(), addr.size()) < 0) throw_os_error(errno, "bind", addr.to_string());
}

void Socket::listen(int backlog) {
  if (::listen(fd_, backlog) < 0) throw_os_error(errno, "listen on", describe());
}

void Socket::shutdown(int how) {
  if (::shutdown(fd_, how) < 0) throw_os_error(errno, "shutdown", describe());
}

void Socket::set_option(int level, int name, int value) {
  if (::setsockopt(fd_, level, name, &value, sizeof value) < 0) {
    throw_os_error(errno, "setsockopt " + std::to_string(level) + "/" + std::to_string(name) + " on", describe());
  }
}

int Socket::get_option(int level, int name) const {
  int value = 0;
  socklen_t len = sizeof value;
  if (::getsockopt(fd_, level, name, &value, &len) < 0) {
    throw_os_error(errno, "getsockopt " + std::to_string(level) + "/" + std::to_string(name) + " on", describe());
  }
  return value;
}

void Socket::set_nodelay(bool on) { set_option(IPPROTO_TCP, TCP_NODELAY, on); }
void Socket::set_v6only(bool on) { set_option(IPPROTO_IPV6, IPV6_V6ONLY, on); }

void Socket::set_linger(std::optional<int> seconds) {
  linger l{};
  l.l_onoff = seconds ? 1 : 0;
  l.l_linger = seconds ? *seconds : 0;
  if (::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l) < 0) throw_os_error(errno, "setsockopt SO_LINGER on", describe());
}

SocketAddress Socket::local_address() const {
  SocketAddress a;
  socklen_t len = SocketAddress::capacity();
  if (::getsockname(fd_, a.data(), &len) < 0) throw_os_error(errno, "getsockname", "fd " + std::to_string(fd_));
  a.set_size(len);
  return a;
}

SocketAddress Socket::peer_address() const {
  if (!peer_.empty()) return peer_;
  SocketAddress a;
  socklen_t len = SocketAddress::capacity();
  if (::getpeername(fd_, a.data(), &len) < 0) throw_os_error(errno, "getpeername", "fd " + std::to_string(fd_));
  a.set_size(len);
  peer_ = a;
  return a;
}

std::string Socket::describe() const {
  if (!peer_.empty()) return peer_.to_string();
  SocketAddress a;
  socklen_t len = SocketAddress::capacity();
  if (fd_ >= 0 && ::getpeername(fd_, a.data(), &len) == 0) {
    a.set_size(len);
    return a.to_string();
  }
  len = SocketAddress::capacity();
  if (fd_ >= 0 && ::getsockname(fd_, a.data(), &len) == 0 && len > sizeof(sa_family_t)) {
    a.set_size(len);
    return a.to_string();
  }
  return "fd " + std::to_string(fd_);
}

Task<void> Socket::send_all(const void* buf, std::size_t len) {
  const auto* p = static_cast<const std::byte*>(buf);
  while (len > 0) {
    std::size_t n = co_await send(p, len);
    p += n;
    len -= n;
  }
}

}  // namespace corio
