// The io_uring backend.
//
// Ring set-up is probed at run time: SINGLE_ISSUER|DEFER_TASKRUN first (the
// kernel runs completion work only when this thread enters the ring: fewest
// interruptions), then COOP_TASKRUN|TASKRUN_FLAG, then no flags. With
// DEFER_TASKRUN no other thread may submit, so the cross-thread wake-up is an
// eventfd read owned by the loop, not MSG_RING.
//
// Every loop iteration makes at most one io_uring_enter: wait() submits what
// was prepared while tasks ran and waits in the same call.
//
// user_data is the IoOp pointer; the low bit tags internal SQEs (cancels)
// whose CQEs are dropped.
#include <liburing.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "loop/backend.hpp"

namespace corio::detail {
namespace {

constexpr std::uint64_t kInternalTag = 1;

class UringBackend final : public Backend {
 public:
  UringBackend() = default;
  UringBackend(const UringBackend&) = delete;

  int init(const BackendOptions& o) {
    if (o.force_uring_error) return o.force_uring_error;
    const unsigned cq = o.sq_entries * 16;
    const unsigned attempts[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
        0,
    };
    int err = 0;
    for (unsigned flags : attempts) {
      io_uring_params p;
      std::memset(&p, 0, sizeof p);
      p.flags = flags | IORING_SETUP_CQSIZE;
      p.cq_entries = cq;
      int r = io_uring_queue_init_params(o.sq_entries, &ring_, &p);
      if (r == 0) {
        flags_ = flags;
        ok_ = true;
        io_uring_register_ring_fd(&ring_);  // optional speed-up; failure is harmless
        return 0;
      }
      err = -r;
      if (err == EPERM || err == ENOSYS) return err;  // io_uring refused outright
    }
    return err;
  }

  ~UringBackend() override {
    if (ok_) io_uring_queue_exit(&ring_);
  }

  BackendKind kind() const noexcept override { return BackendKind::io_uring; }
  const char* name() const noexcept override { return "io_uring"; }

  bool submit(IoOp& op) noexcept override {
    io_uring_sqe* sqe = get_sqe();
    switch (op.kind) {
      case OpKind::nop:
        io_uring_prep_nop(sqe);
        break;
      case OpKind::read:
        io_uring_prep_read(sqe, op.fd, op.buf, op.len, op.offset);
        break;
      case OpKind::write:
        io_uring_prep_write(sqe, op.fd, op.buf, op.len, op.offset);
        break;
      case OpKind::recv:
        io_uring_prep_recv(sqe, op.fd, op.buf, op.len, op.msg_flags);
        break;
      case OpKind::send:
        io_uring_prep_send(sqe, op.fd, op.buf, op.len, op.msg_flags | MSG_NOSIGNAL);
        break;
      case OpKind::recvmsg:
        io_uring_prep_recvmsg(sqe, op.fd, op.msg, static_cast<unsigned>(op.msg_flags));
        break;
      case OpKind::sendmsg:
        io_uring_prep_sendmsg(sqe, op.fd, op.msg, static_cast<unsigned>(op.msg_flags | MSG_NOSIGNAL));
        break;
      case OpKind::accept:
        io_uring_prep_accept(sqe, op.fd, op.addr, op.addrlen, SOCK_CLOEXEC | SOCK_NONBLOCK);
        break;
      case OpKind::connect:
        io_uring_prep_connect(sqe, op.fd, op.addr, op.addrlen_value);
        break;
      case OpKind::poll_in:
        io_uring_prep_poll_add(sqe, op.fd, POLLIN);
        break;
      case OpKind::poll_out:
        io_uring_prep_poll_add(sqe, op.fd, POLLOUT);
        break;
    }
    io_uring_sqe_set_data(sqe, &op);
    op.cancel_requested_ = false;
    if (!op.internal) ++in_flight_;
    return false;
  }

  void cancel(IoOp& op) noexcept override {
    if (op.cancel_requested_) return;
    op.cancel_requested_ = true;
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_cancel64(sqe, reinterpret_cast<std::uint64_t>(&op), 0);
    sqe->user_data = kInternalTag;
  }

  void cancel_all() noexcept override {
    io_uring_sqe* sqe = get_sqe();
    io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
    sqe->user_data = kInternalTag;
  }

  void wait(std::int64_t timeout_ns) override {
    int r;
    if (timeout_ns == 0) {
      if (io_uring_sq_ready(&ring_) == 0 && in_flight_ == 0 && !io_uring_cq_ready(&ring_)) return;
      r = io_uring_submit_and_get_events(&ring_);
    } else if (timeout_ns < 0) {
      r = io_uring_submit_and_wait(&ring_, 1);
    } else {
      __kernel_timespec ts;
      ts.tv_sec = timeout_ns / 1000000000;
      ts.tv_nsec = timeout_ns % 1000000000;
      io_uring_cqe* cqe = nullptr;
      r = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
    }
    // -ETIME: the wait timed out; -EINTR: a signal; -EBUSY: CQ overflow backlog
    // (NODROP) — reap below and go on.
    (void)r;
    reap();
  }

  void forget_fd(int) noexcept override {}
  std::size_t in_flight() const noexcept override { return in_flight_; }
  bool has_pending_work() const noexcept override { return io_uring_cq_ready(&ring_) != 0; }

 private:
  io_uring_sqe* get_sqe() noexcept {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    while (!sqe) {
      // SQ full: hand what we have to the kernel and retry. Completions are
      // reaped later; with NODROP the kernel keeps overflowed CQEs.
      io_uring_submit(&ring_);
      sqe = io_uring_get_sqe(&ring_);
    }
    return sqe;
  }

  void reap() noexcept {
    // Callbacks may prepare new SQEs (re-arms) but never touch the CQ, so
    // iterating and advancing in one batch is safe.
    for (;;) {
      unsigned head;
      unsigned n = 0;
      io_uring_cqe* cqe;
      io_uring_for_each_cqe(&ring_, head, cqe) {
        ++n;
        std::uint64_t ud = cqe->user_data;
        if (ud & kInternalTag) continue;
        auto* op = reinterpret_cast<IoOp*>(ud);
        op->result = cqe->res;
        op->cqe_flags = cqe->flags;
        if (!(cqe->flags & IORING_CQE_F_MORE) && !op->internal) --in_flight_;
        op->complete(op);
      }
      if (n == 0) break;
      io_uring_cq_advance(&ring_, n);
      if (!io_uring_cq_has_overflow(&ring_)) break;
      io_uring_get_events(&ring_);  // flush the kernel's overflow list into the CQ
    }
  }

  io_uring ring_{};
  unsigned flags_ = 0;
  bool ok_ = false;
  std::size_t in_flight_ = 0;
};

}  // namespace

std::unique_ptr<Backend> make_uring_backend(const BackendOptions& opts, int* error) {
  auto b = std::make_unique<UringBackend>();
  int err = b->init(opts);
  if (err) {
    *error = err;
    return nullptr;
  }
  return b;
}

}  // namespace corio::detail
