// The epoll backend: readiness turned into completion-style operations.
//
// Each fd is registered once, edge-triggered, for EPOLLIN|EPOLLOUT|EPOLLRDHUP,
// on its first operation (re-arming per operation costs a quarter of the
// throughput). The fd is switched to O_NONBLOCK then, as asyncio does. An fd
// accepted here (non-blocking from accept4) is registered only when one of its
// operations must wait: a connection whose request is already there, answered
// and closed, never costs an epoll_ctl. EPOLL_CTL_ADD reports the readiness
// the fd has at that moment, so bytes that arrive between the failed try and
// the registration still raise an event.
// An operation is tried at once when no other op waits on the same side of
// its fd (speculative, as Boost.Asio does): most reads on a busy socket and
// nearly all writes complete without waiting. Otherwise it queues, FIFO, on
// the fd's read or write side, and an edge event drains that side until the
// syscall says EAGAIN.
//
// Readiness is remembered per side, as Tokio does: a side is "not ready" after
// its syscall said EAGAIN, or after a short read on a byte stream (the receive
// queue was emptied: IoOp::stream), until the next edge event for it. An op
// submitted to a side that is not ready queues without a syscall, so an echo
// or request/response exchange costs one recv and one send per message, not a
// failing speculative recv as well. No edge can be lost: with EPOLLET every
// arrival after the emptying syscall raises a new event, and an event that
// finds no op queued still marks its side ready. A read side that saw
// EPOLLRDHUP/HUP/ERR stays ready for good (EOF and errors are sticky, and no
// further edge would come).
//
// The stale-fd trap: the kernel's registration follows the open file, not the
// number, so an fd closed behind our back leaves us believing a reused number
// is registered. Every close in corio goes through forget_fd() first, which
// resets the slot (the close itself ends the registration); events already
// returned by this epoll_wait are processed before any user code runs, so
// none can target a reused number.
#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <ctime>
#include <memory>
#include <new>
#include <system_error>
#include <vector>

#include "loop/backend.hpp"

namespace corio::detail {
namespace {

bool is_read_side(OpKind k) noexcept {
  switch (k) {
    case OpKind::read:
    case OpKind::recv:
    case OpKind::recvmsg:
    case OpKind::accept:
    case OpKind::poll_in:
      return true;
    default:
      return false;
  }
}

// The ops waiting on one side of an fd, in submission order. One pointer:
// the head's prev_ is the tail (next_ ends the list), because the per-fd
// table has an entry per fd number, grown by doubling, and a server holds
// tens of thousands of fds; two queues of one word keep an entry at 24 bytes
// instead of 40.
struct OpQueue {
  IoOp* head = nullptr;
  bool empty() const noexcept { return head == nullptr; }
  void push(IoOp* op) noexcept {
    op->next_ = nullptr;
    if (head) {
      IoOp* tail = head->prev_;
      tail->next_ = op;
      op->prev_ = tail;
      head->prev_ = op;
    } else {
      op->prev_ = op;
      head = op;
    }
    op->queued_ = true;
  }
  void unlink(IoOp* op) noexcept {
    if (op == head) {
      head = op->next_;
      if (head) head->prev_ = op->prev_;  // still the tail
    } else {
      op->prev_->next_ = op->next_;
      if (op->next_) op->next_->prev_ = op->prev_;
      else head->prev_ = op->prev_;  // op was the tail
    }
    op->next_ = op->prev_ = nullptr;
    op->queued_ = false;
  }
};

struct FdState {
  OpQueue readers;
  OpQueue writers;
  bool registered = false;
  bool always_ready = false;  // epoll refuses the fd (regular file): syscalls never block
  bool read_ready = true;     // worth a syscall: no EAGAIN / emptying read since the last edge
  bool write_ready = true;
  bool read_hup = false;      // EOF or an error was signalled: reads never block again
  bool nonblocking = false;   // accepted here with SOCK_NONBLOCK: register_fd() skips F_GETFL
};
static_assert(sizeof(FdState) <= 24, "one per fd number, idle connections included");

// A completed read that emptied a byte stream's receive queue.
bool drained_stream(const IoOp& op, int r) noexcept {
  return op.stream && r > 0 && static_cast<std::uint32_t>(r) < op.len &&
         (op.kind == OpKind::recv || op.kind == OpKind::read);
}

constexpr std::uint32_t kConnectStarted = 1;
// perform(): a Unix connect refused with EAGAIN (the listener's backlog is
// full). Final, unlike -EAGAIN ("not ready"): nothing is in progress, so no
// SO_ERROR check can tell when it is done (io_uring also answers -EAGAIN).
constexpr int kConnectWouldBlock = -0x7fff0000;

class EpollBackend final : public Backend {
 public:
  EpollBackend() : epfd_(::epoll_create1(EPOLL_CLOEXEC)) {}
  ~EpollBackend() override {
    if (epfd_ >= 0) ::close(epfd_);
  }
  bool ok() const noexcept { return epfd_ >= 0; }

  BackendKind kind() const noexcept override { return BackendKind::epoll; }
  const char* name() const noexcept override { return "epoll"; }

  bool submit(IoOp& op) noexcept override {
    op.cancel_requested_ = false;
    op.cqe_flags = 0;
    if (op.kind == OpKind::nop) {
      op.result = 0;
      return true;
    }
    if (op.fd < 0) {
      op.result = -EBADF;
      return true;
    }
    FdState& st = state(op.fd);
    // Registers st's fd unless it is; false (op failed) if epoll refuses it.
    auto registered = [&] {
      if (st.registered) return true;
      int err = register_fd(op.fd, st);
      if (err) op.result = -err;
      return err == 0;
    };
    if (!st.nonblocking && !registered()) return true;
    int r = attempt(st, op);
    if (r == kConnectWouldBlock) {
      op.result = -EAGAIN;
      return true;
    }
    if (r != -EAGAIN) {
      op.result = r;
      if (op.kind == OpKind::accept) note_accepted(r);  // may grow fds_: st is dead
      return true;
    }
    if (!registered()) return true;  // accepted here: registered once an op has to wait
    (is_read_side(op.kind) ? st.readers : st.writers).push(&op);
    if (!op.internal) ++in_flight_;
    return false;
  }

  int try_now(IoOp& op) noexcept override {
    // Only on a registered (or accepted, non-blocking) fd whose side is idle
    // and not known to be empty/full since the last edge.
    if (op.fd < 0 || static_cast<std::size_t>(op.fd) >= fds_.size()) return -EAGAIN;
    FdState& st = fds_[op.fd];
    if (!st.registered && !st.nonblocking) return -EAGAIN;
    op.cqe_flags = 0;
    return attempt(st, op);
  }

  void cancel(IoOp& op) noexcept override {
    if (!op.queued_ || op.cancel_requested_) return;
    op.cancel_requested_ = true;
    FdState& st = fds_[op.fd];
    (is_read_side(op.kind) ? st.readers : st.writers).unlink(&op);
    if (!op.internal) --in_flight_;
    op.result = -ECANCELED;
    deferred_.push_back(&op);
  }

  void cancel_all() noexcept override {
    for (FdState& st : fds_) {
      for (OpQueue* q : {&st.readers, &st.writers}) {
        while (IoOp* op = q->head) cancel(*op);
      }
    }
  }

  void wait(std::int64_t timeout_ns) override {
    if (!deferred_.empty()) timeout_ns = 0;
    run_deferred();
    if (timeout_ns == 0 && in_flight_ == 0) return;  // nothing could be ready
    epoll_event events[256];
    int n;
    for (;;) {
      n = wait_events(events, 256, timeout_ns);
      if (n >= 0) break;
      if (errno != EINTR) {
        throw std::system_error(errno, std::system_category(), have_pwait2_ ? "epoll_pwait2" : "epoll_pwait");
      }
      timeout_ns = 0;  // a signal interrupted us: let the loop look around
    }
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (static_cast<std::size_t>(fd) >= fds_.size()) continue;
      std::uint32_t ev = events[i].events;
      if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) drain(fd, true, ev);
      if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR)) drain(fd, false, ev);
    }
    run_deferred();
  }

  // epoll_pwait2 (nanosecond timeouts, Linux 5.11) where the kernel has it;
  // epoll_pwait with the timeout rounded up to a millisecond where it does
  // not (older kernels, valgrind, seccomp filters answer ENOSYS or EPERM):
  // rounding down would wake before a timer is due and spin until it is.
  int wait_events(epoll_event* events, int max, std::int64_t timeout_ns) {
    if (have_pwait2_) {
      int n;
      if (timeout_ns < 0) {
        n = ::epoll_pwait2(epfd_, events, max, nullptr, nullptr);
      } else {
        timespec ts{static_cast<time_t>(timeout_ns / 1000000000), static_cast<long>(timeout_ns % 1000000000)};
        n = ::epoll_pwait2(epfd_, events, max, &ts, nullptr);
      }
      if (n >= 0 || (errno != ENOSYS && errno != EPERM)) return n;
      have_pwait2_ = false;
    }
    int ms = -1;
    if (timeout_ns >= 0) {
      std::int64_t up = timeout_ns / 1'000'000 + (timeout_ns % 1'000'000 != 0);
      ms = static_cast<int>(std::min<std::int64_t>(up, INT32_MAX));
    }
    return ::epoll_pwait(epfd_, events, max, ms, nullptr);
  }

  // No EPOLL_CTL_DEL: the close() that follows removes the registration with
  // the open file (one syscall fewer per connection). Only a file that
  // outlives the close, because it was duplicated (dup, fork, SCM_RIGHTS),
  // stays registered under the old number; its events then reach whatever
  // reuses the number as a spurious edge, which costs one EAGAIN at most.
  void forget_fd(int fd) noexcept override {
    if (fd < 0 || static_cast<std::size_t>(fd) >= fds_.size()) return;
    FdState& st = fds_[fd];
    for (OpQueue* q : {&st.readers, &st.writers}) {
      while (IoOp* op = q->head) {
        q->unlink(op);
        if (!op->internal) --in_flight_;
        op->result = -EBADF;
        deferred_.push_back(op);
      }
    }
    st = FdState{};
  }

  std::size_t in_flight() const noexcept override { return in_flight_; }
  bool has_pending_work() const noexcept override { return !deferred_.empty(); }
  char* read_scratch(std::uint32_t* len) noexcept override {
    if (!scratch_) scratch_.reset(new (std::nothrow) char[kScratchSize]);
    *len = scratch_ ? kScratchSize : 0;
    return scratch_.get();
  }

 private:
  FdState& state(int fd) {
    if (static_cast<std::size_t>(fd) >= fds_.size()) fds_.resize(static_cast<std::size_t>(fd) * 2 + 16);
    return fds_[fd];
  }

  // The syscall at once if op's side of the fd has no queue and is not known
  // to be empty (or full) since its last edge; -EAGAIN if it was not tried or
  // would block (the side is then marked not ready). Queues nothing.
  int attempt(FdState& st, IoOp& op) noexcept {
    const bool read_side = is_read_side(op.kind);
    OpQueue& q = read_side ? st.readers : st.writers;
    bool& ready = read_side ? st.read_ready : st.write_ready;
    if (!q.empty() || !(ready || st.always_ready)) return -EAGAIN;
    int r = perform(op, st.always_ready);
    if (r == -EAGAIN) ready = false;
    else if (read_side && !st.read_hup && drained_stream(op, r)) ready = false;
    return r;
  }

  // An fd accepted here is non-blocking already (accept4 SOCK_NONBLOCK): its
  // registration skips the F_GETFL check, a syscall per connection.
  void note_accepted(int r) {
    if (r >= 0) state(r).nonblocking = true;
  }

  int register_fd(int fd, FdState& st) noexcept {
    if (!st.nonblocking) {
      int fl = ::fcntl(fd, F_GETFL);
      if (fl < 0) return errno;
      if (!(fl & O_NONBLOCK) && ::fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return errno;
    }
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.fd = fd;
    if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) < 0) {
      if (errno == EPERM) st.always_ready = true;  // regular files: always ready
      else if (errno != EEXIST) return errno;
    }
    st.registered = true;
    return 0;
  }

  // Performs the syscall; returns its result or -errno (-EAGAIN: not ready).
  static int perform(IoOp& op, bool always_ready) noexcept {
    for (;;) {
      long r = 0;
      switch (op.kind) {
        case OpKind::nop:
          return 0;
        case OpKind::read:
          r = op.offset == static_cast<std::uint64_t>(-1) ? ::read(op.fd, op.buf, op.len)
                                                          : ::pread(op.fd, op.buf, op.len, static_cast<off_t>(op.offset));
          break;
        case OpKind::write:
          r = op.offset == static_cast<std::uint64_t>(-1) ? ::write(op.fd, op.buf, op.len)
                                                          : ::pwrite(op.fd, op.buf, op.len, static_cast<off_t>(op.offset));
          break;
        case OpKind::recv:
          r = ::recv(op.fd, op.buf, op.len, op.msg_flags);
          break;
        case OpKind::send:
          r = ::send(op.fd, op.buf, op.len, op.msg_flags | MSG_NOSIGNAL);
          break;
        case OpKind::recvmsg:
          r = ::recvmsg(op.fd, op.msg, op.msg_flags);
          break;
        case OpKind::sendmsg:
          r = ::sendmsg(op.fd, op.msg, op.msg_flags | MSG_NOSIGNAL);
          break;
        case OpKind::accept:
          r = ::accept4(op.fd, op.addr, op.addrlen, SOCK_CLOEXEC | SOCK_NONBLOCK);
          break;
        case OpKind::connect:
          if (op.cqe_flags & kConnectStarted) {
            int err = 0;
            socklen_t len = sizeof err;
            if (::getsockopt(op.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) return -errno;
            if (err == EINPROGRESS || err == EALREADY) return -EAGAIN;
            return -err;
          }
          r = ::connect(op.fd, op.addr, op.addrlen_value);
          if (r < 0 && errno == EINPROGRESS) {
            op.cqe_flags |= kConnectStarted;
            return -EAGAIN;
          }
          if (r < 0 && errno == EAGAIN) return kConnectWouldBlock;
          break;
        case OpKind::recv_multishot:
          return -EOPNOTSUPP;  // io_uring only: callers check provided_buffers() first
        case OpKind::accept_multishot:
          return -EOPNOTSUPP;  // io_uring only: callers check multishot_accept() first
        case OpKind::poll_in:
        case OpKind::poll_out: {
          if (always_ready) return op.kind == OpKind::poll_in ? POLLIN : POLLOUT;
          pollfd p{op.fd, static_cast<short>(op.kind == OpKind::poll_in ? POLLIN : POLLOUT), 0};
          int n = ::poll(&p, 1, 0);
          if (n < 0) r = -1;
          else if (n == 0) return -EAGAIN;
          else return p.revents;
          break;
        }
      }
      if (r >= 0) return static_cast<int>(r);
      if (errno == EINTR) continue;
      if (errno == EWOULDBLOCK) return -EAGAIN;
      return -errno;
    }
  }

  // Completes queued ops on one side of fd until one would block. Callbacks may
  // submit (and grow fds_), so the slot is looked up afresh each time.
  void drain(int fd, bool read_side, std::uint32_t ev) noexcept {
    {
      FdState& st = fds_[fd];
      (read_side ? st.read_ready : st.write_ready) = true;  // the edge: worth trying again
      if (read_side && (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))) st.read_hup = true;
    }
    for (;;) {
      FdState& st = fds_[fd];
      OpQueue& q = read_side ? st.readers : st.writers;
      bool& ready = read_side ? st.read_ready : st.write_ready;
      IoOp* op = q.head;
      if (!op || !ready) return;  // not ready: an earlier op here emptied the queue
      int r;
      if (op->kind == OpKind::poll_in || op->kind == OpKind::poll_out) {
        r = static_cast<int>(ev & (EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP | EPOLLRDHUP));
      } else {
        r = perform(*op, st.always_ready);
        if (r == kConnectWouldBlock) r = -EAGAIN;
        else if (r == -EAGAIN) {
          ready = false;
          return;
        }
        if (read_side && !st.read_hup && drained_stream(*op, r)) ready = false;
      }
      q.unlink(op);
      if (!op->internal) --in_flight_;
      op->result = r;
      if (op->kind == OpKind::accept) note_accepted(r);  // may grow fds_: st is dead
      op->complete(op);
    }
  }

  void run_deferred() noexcept {
    // Callbacks may cancel further ops, appending here; index, do not iterate.
    for (std::size_t i = 0; i < deferred_.size(); ++i) deferred_[i]->complete(deferred_[i]);
    deferred_.clear();
  }

  static constexpr std::uint32_t kScratchSize = 64 * 1024;

  int epfd_;
  std::unique_ptr<char[]> scratch_;  // read_scratch(): filled only inside perform()
  std::vector<FdState> fds_;
  std::vector<IoOp*> deferred_;
  std::size_t in_flight_ = 0;
  bool have_pwait2_ = true;  // cleared for good at the first ENOSYS/EPERM
};

}  // namespace

std::unique_ptr<Backend> make_epoll_backend() {
  auto b = std::make_unique<EpollBackend>();
  if (!b->ok()) return nullptr;
  return b;
}

}  // namespace corio::detail
