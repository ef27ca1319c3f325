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
// user_data is the IoOp pointer; the low bit tags internal SQEs (cancels,
// the receive pool's trim timer) whose CQEs the backend handles itself.
//
// An idle loop gives back the pages of its receive pool (BufferRing::trim):
// the ring hands out its buffers in FIFO order, so any few hundred receives
// touch the first page of every buffer (1 MiB for the default 256 x 16 KiB),
// which a server holding thousands of idle connections would otherwise keep
// resident for good.
#include <liburing.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "loop/backend.hpp"

namespace corio::detail {
namespace {

constexpr std::uint64_t kInternalTag = 1;
// The receive pool's trim timer (internal: bit 0 set).
constexpr std::uint64_t kTrimTimerTag = 3;
static_assert(kCqeBuffer == IORING_CQE_F_BUFFER && kCqeMore == IORING_CQE_F_MORE);

// The provided-buffer ring behind recv_multishot: entries_ buffers of kSize
// bytes in buffer group 0, registered on first use. Every buffer the kernel
// fills is copied out and recycled by its receiver during the same reap, so
// the ring runs dry only when more sockets than entries_ deliver within one
// batch; they get -ENOBUFS and re-arm (by then the ring is full again).
//
// trim() drops the buffers' pages (MADV_DONTNEED: the next receive into one
// faults in a zeroed page). Safe only when the kernel cannot be writing into
// any buffer and no received bytes wait in one: with DEFER_TASKRUN the
// kernel copies received data only inside this thread's io_uring_enter, so
// between a wait that reaped everything and the next one the kernel writes
// none; and no buffer is lent (lent(): every buffer a reaped CQE named was
// recycled). Streams recycle while the CQE is reaped, but a receiver may
// keep a buffer across loop turns (the fault-injection layer holds
// completions for up to 2 ms): trimming then would zero bytes it has not
// copied out yet, and the stream would read zeros in their place.
class BufferRing final : public ProvidedBuffers {
 public:
  static constexpr unsigned kSize = 16 * 1024;
  static constexpr unsigned short kGroup = 0;

  // Returns 0 or the errno of the failed step (the kernel may lack buffer rings).
  int init(io_uring& ring, unsigned entries) noexcept {
    if (entries == 0 || (entries & (entries - 1)) || entries > 32768) return EINVAL;
    entries_ = entries;
    const std::size_t ring_bytes = entries_ * sizeof(io_uring_buf);
    void* mem = ::mmap(nullptr, ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (mem == MAP_FAILED) return errno;
    br_ = static_cast<io_uring_buf_ring*>(mem);
    ring_bytes_ = ring_bytes;
    // mmap, not the heap: page-aligned, so trim() drops whole pages and
    // nothing else shares them.
    bufs_bytes_ = std::size_t(entries_) * kSize;
    void* bufs = ::mmap(nullptr, bufs_bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (bufs == MAP_FAILED) return errno;
    bufs_ = static_cast<char*>(bufs);
    io_uring_buf_reg reg;
    std::memset(&reg, 0, sizeof reg);
    reg.ring_addr = reinterpret_cast<std::uint64_t>(br_);
    reg.ring_entries = entries_;
    reg.bgid = kGroup;
    int r = io_uring_register_buf_ring(&ring, &reg, 0);
    if (r < 0) return -r;
    io_uring_buf_ring_init(br_);
    for (unsigned bid = 0; bid < entries_; ++bid) {
      io_uring_buf_ring_add(br_, bufs_ + std::size_t(bid) * kSize, kSize, static_cast<unsigned short>(bid),
                            io_uring_buf_ring_mask(entries_), static_cast<int>(bid));
    }
    io_uring_buf_ring_advance(br_, entries_);
    return 0;
  }
  // After io_uring_queue_exit: the kernel no longer reads the ring.
  ~BufferRing() {
    if (br_) ::munmap(br_, ring_bytes_);
    if (bufs_) ::munmap(bufs_, bufs_bytes_);
  }

  const char* data(std::uint32_t cqe_flags) const noexcept override {
    return bufs_ + std::size_t(cqe_flags >> IORING_CQE_BUFFER_SHIFT) * kSize;
  }
  void recycle(std::uint32_t cqe_flags) noexcept override {
    auto bid = static_cast<unsigned short>(cqe_flags >> IORING_CQE_BUFFER_SHIFT);
    io_uring_buf_ring_add(br_, bufs_ + std::size_t(bid) * kSize, kSize, bid, io_uring_buf_ring_mask(entries_), 0);
    io_uring_buf_ring_advance(br_, 1);
    dirty_ = true;
    ++recycles_;
    --lent_;
  }
  // A reaped CQE named a buffer: its receiver owns it until recycle().
  void lend() noexcept { ++lent_; }
  // Buffers named by reaped CQEs and not recycled yet.
  std::uint64_t lent() const noexcept { return lent_; }
  void disable() noexcept override { disabled_ = true; }
  bool disabled() const noexcept { return disabled_; }
  // Some buffer was written since the last trim().
  bool dirty() const noexcept { return dirty_; }
  // Buffers given back so far: unchanged over an interval, nothing was received.
  std::uint64_t recycles() const noexcept { return recycles_; }
  void trim() noexcept {
    (void)::madvise(bufs_, bufs_bytes_, MADV_DONTNEED);  // a failure only keeps the pages
    dirty_ = false;
  }

 private:
  io_uring_buf_ring* br_ = nullptr;
  unsigned entries_ = 0;
  std::size_t ring_bytes_ = 0;
  char* bufs_ = nullptr;
  std::size_t bufs_bytes_ = 0;
  bool disabled_ = false;
  bool dirty_ = false;
  std::uint64_t recycles_ = 0;
  std::uint64_t lent_ = 0;
};

// How long nothing must have been received before the pool is trimmed.
constexpr std::int64_t kTrimAfterIdleNs = 250'000'000;

class UringBackend final : public Backend {
 public:
  UringBackend() = default;
  UringBackend(const UringBackend&) = delete;

  int init(const BackendOptions& o) {
    if (o.force_uring_error) return o.force_uring_error;
    pbuf_entries_ = o.provided_buffers;
    refuse_multishot_accept_ = o.refuse_multishot_accept;
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
    pbufs_.reset();  // only now: the ring no longer points into it
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
      case OpKind::recv_multishot:
        if (op.oneshot) io_uring_prep_recv(sqe, op.fd, nullptr, 0, op.msg_flags);
        else io_uring_prep_recv_multishot(sqe, op.fd, nullptr, 0, op.msg_flags);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = BufferRing::kGroup;
        break;
      case OpKind::accept_multishot:
        // No address: one buffer would be overwritten by every connection
        // reaped in the same batch; the peer comes from getpeername.
        io_uring_prep_multishot_accept(sqe, op.fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (refuse_multishot_accept_) sqe->ioprio |= 1u << 15;  // no such accept flag: -EINVAL
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
    // A pool written since its last trim has a kernel timeout in flight
    // (IORING_OP_TIMEOUT, one per kTrimAfterIdleNs): when it fires and no
    // buffer was given back since it was armed, nothing was received for that
    // long, and the pool is trimmed. A timeout op, not a timed wait: a wait
    // with a timeout arms and cancels an hrtimer in every io_uring_enter,
    // which cost a busy echo server ~5 % of its CPU per message. Only with
    // DEFER_TASKRUN (see BufferRing::trim).
    if (pbufs_ && pbufs_->dirty() && !trim_armed_ && (flags_ & IORING_SETUP_DEFER_TASKRUN)) arm_trim_timer();
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
    if (trim_due_) {
      // Every CQE is reaped, and every buffer they named is back (lent() is
      // 0: none holds bytes a receiver has yet to copy out); with nothing
      // given back since the timer was armed, nothing was received for the
      // whole period, and the kernel writes none until our next io_uring_enter.
      trim_due_ = false;
      if (pbufs_->recycles() == recycles_at_arm_ && pbufs_->lent() == 0 && io_uring_sq_ready(&ring_) == 0) {
        pbufs_->trim();
      }
      // Otherwise data came in, or a receiver still holds a buffer: the next
      // wait arms a new timer (still dirty), and the pool is trimmed once it
      // is idle with every buffer back.
    }
  }

  void forget_fd(int) noexcept override {}

  ProvidedBuffers* provided_buffers() noexcept override {
    if (!pbufs_tried_) {
      pbufs_tried_ = true;
      auto b = std::make_unique<BufferRing>();
      if (pbuf_entries_ && b->init(ring_, pbuf_entries_) == 0) pbufs_ = std::move(b);
    }
    if (!pbufs_ || pbufs_->disabled()) return nullptr;
    return pbufs_.get();
  }
  ProvidedBuffers* buffer_pool() noexcept override { return pbufs_.get(); }
  std::size_t in_flight() const noexcept override { return in_flight_; }
  bool has_pending_work() const noexcept override { return io_uring_cq_ready(&ring_) != 0; }
  // Kernels before 5.19 reject it with -EINVAL in the CQE; callers fall back.
  bool multishot_accept() const noexcept override { return true; }

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

  void arm_trim_timer() noexcept {
    io_uring_sqe* sqe = get_sqe();
    trim_ts_.tv_sec = 0;
    trim_ts_.tv_nsec = kTrimAfterIdleNs;
    io_uring_prep_timeout(sqe, &trim_ts_, 0, 0);
    sqe->user_data = kTrimTimerTag;
    recycles_at_arm_ = pbufs_->recycles();
    trim_armed_ = true;
  }

  // Returns the number of CQEs reaped.
  unsigned reap() noexcept {
    // Callbacks may prepare new SQEs (re-arms) but never touch the CQ, so
    // iterating and advancing in one batch is safe.
    unsigned total = 0;
    for (;;) {
      unsigned head;
      unsigned n = 0;
      io_uring_cqe* cqe;
      io_uring_for_each_cqe(&ring_, head, cqe) {
        ++n;
        std::uint64_t ud = cqe->user_data;
        if (ud & kInternalTag) {
          if (ud == kTrimTimerTag) {
            trim_armed_ = false;
            trim_due_ = cqe->res == -ETIME;  // not when cancelled (teardown)
          }
          continue;
        }
        auto* op = reinterpret_cast<IoOp*>(ud);
        if (cqe->flags & IORING_CQE_F_BUFFER) pbufs_->lend();  // until its receiver recycles it
        op->result = cqe->res;
        op->cqe_flags = cqe->flags;
        if (!(cqe->flags & IORING_CQE_F_MORE) && !op->internal) --in_flight_;
        op->complete(op);
      }
      if (n == 0) break;
      total += n;
      io_uring_cq_advance(&ring_, n);
      if (!io_uring_cq_has_overflow(&ring_)) break;
      io_uring_get_events(&ring_);  // flush the kernel's overflow list into the CQ
    }
    return total;
  }

  io_uring ring_{};
  std::unique_ptr<BufferRing> pbufs_;
  unsigned pbuf_entries_ = 0;
  bool pbufs_tried_ = false;
  bool refuse_multishot_accept_ = false;
  unsigned flags_ = 0;
  bool ok_ = false;
  std::size_t in_flight_ = 0;
  // The pool's trim timer (see wait()); trim_ts_ outlives the SQE's submission.
  __kernel_timespec trim_ts_{};
  std::uint64_t recycles_at_arm_ = 0;
  bool trim_armed_ = false;
  bool trim_due_ = false;
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
