#include "loop/fd_io.hpp"

#include <unistd.h>

namespace corio {

namespace detail {
void throw_errno(int err, const char* op, int fd) {
  throw std::system_error(err, std::system_category(), std::string(op) + " fd " + std::to_string(fd));
}
}  // namespace detail

Task<void> write_all(int fd, const void* buf, std::size_t len) {
  const auto* p = static_cast<const std::byte*>(buf);
  while (len > 0) {
    std::size_t n = co_await write(fd, p, len);
    p += n;
    len -= n;
  }
}

void close_fd(int fd) noexcept {
  // Every loop of the thread, not only a running one: the fd may have been
  // registered in an earlier run (see EventLoop::forget_fd_on_this_thread).
  EventLoop::forget_fd_on_this_thread(fd);
  ::close(fd);
}

}  // namespace corio
