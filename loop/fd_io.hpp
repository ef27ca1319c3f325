#pragma once
// Awaitable reads and writes on file descriptors (pipes, eventfds, ttys,
// regular files), on both backends.
//
//   std::size_t n = co_await corio::read(fd, buf);   // 0 means EOF
//   co_await corio::write_all(fd, data);             // loops over short writes
//
// Errors throw std::system_error with the errno and "read fd N". On epoll the
// fd is switched to O_NONBLOCK the first time it is used (as asyncio does).
// Concurrency: at most one read and one write in flight per fd.
// Cancellation: see IoAwaiter — CancelledError, unless the kernel completed
// the read first, in which case the bytes are returned.
// Close fds used with the loop through corio::close_fd(), which tells the
// backend before the number can be reused.
#include <cstddef>
#include <span>
#include <string>
#include <system_error>

#include "coro/task.hpp"
#include "loop/io_awaiter.hpp"

namespace corio {

namespace detail {
[[noreturn]] void throw_errno(int err, const char* op, int fd);

class FdRwAwaiter final : public IoAwaiter {
 public:
  FdRwAwaiter(OpKind kind, int fd, void* buf, std::size_t len, const char* what) noexcept : what_(what) {
    op_.kind = kind;
    op_.fd = fd;
    op_.buf = buf;
    op_.len = static_cast<std::uint32_t>(len > 0x7ffff000u ? 0x7ffff000u : len);
  }
  std::size_t await_resume() {
    int r = result();
    if (r < 0) throw_errno(-r, what_, op_.fd);
    return static_cast<std::size_t>(r);
  }

 private:
  const char* what_;
};

class PollAwaiter final : public IoAwaiter {
 public:
  PollAwaiter(OpKind kind, int fd) noexcept {
    op_.kind = kind;
    op_.fd = fd;
  }
  void await_resume() {
    int r = result();
    if (r < 0) throw_errno(-r, "poll", op_.fd);
  }
};
}  // namespace detail

// Reads up to buf.size() bytes; returns the count, 0 at EOF.
inline detail::FdRwAwaiter read(int fd, std::span<std::byte> buf) noexcept {
  return {detail::OpKind::read, fd, buf.data(), buf.size(), "read"};
}
inline detail::FdRwAwaiter read(int fd, void* buf, std::size_t len) noexcept {
  return {detail::OpKind::read, fd, buf, len, "read"};
}
// Writes up to buf.size() bytes; returns the count (may be short).
inline detail::FdRwAwaiter write(int fd, std::span<const std::byte> buf) noexcept {
  return {detail::OpKind::write, fd, const_cast<std::byte*>(buf.data()), buf.size(), "write"};
}
inline detail::FdRwAwaiter write(int fd, const void* buf, std::size_t len) noexcept {
  return {detail::OpKind::write, fd, const_cast<void*>(buf), len, "write"};
}
// Writes everything, resubmitting after short writes.
Task<void> write_all(int fd, const void* buf, std::size_t len);
inline Task<void> write_all(int fd, std::span<const std::byte> buf) { return write_all(fd, buf.data(), buf.size()); }
// Waits until fd is readable / writable.
inline detail::PollAwaiter wait_readable(int fd) noexcept { return {detail::OpKind::poll_in, fd}; }
inline detail::PollAwaiter wait_writable(int fd) noexcept { return {detail::OpKind::poll_out, fd}; }

// Closes fd after telling the running loop's backend (if any) to forget it.
// Never close an fd with an operation in flight: cancel it and let it finish first.
void close_fd(int fd) noexcept;

}  // namespace corio
