#pragma once
// The narrow interface between EventLoop and a kernel I/O mechanism.
//
// Both backends speak completions: an IoOp describes one operation ("read into
// this buffer"), and the backend calls op.complete(op) exactly once with
// op.result set to what the syscall would return (bytes, an fd, or -errno).
// io_uring does this natively; epoll waits for readiness and then performs the
// syscall itself.
//
// Rules (same on both backends, so sanitizers catch misuse on both):
// - An IoOp and every buffer it points to belong to the backend from submit()
//   until complete() runs — also after cancel().
// - cancel(op) never completes the op synchronously; complete() follows later
//   with -ECANCELED, or with the real result if the kernel finished first.
// - Completion callbacks run on the loop thread inside wait(); they must only
//   record the result and wake tasks, never resume a coroutine.
// - Backends return -errno and never throw on the completion path.
#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <string>

namespace corio::detail {

enum class OpKind : std::uint8_t {
  nop,
  read,      // read(fd, buf, len) at offset (-1: current position)
  write,     // write(fd, buf, len) at offset
  recv,      // recv(fd, buf, len, msg_flags)
  send,      // send(fd, buf, len, msg_flags | MSG_NOSIGNAL)
  recvmsg,   // recvmsg(fd, msg, msg_flags)
  sendmsg,   // sendmsg(fd, msg, msg_flags | MSG_NOSIGNAL)
  accept,    // accept4(fd, addr, addrlen, SOCK_CLOEXEC | SOCK_NONBLOCK)
  connect,   // connect(fd, addr, addrlen_value)
  poll_in,   // wait until readable (result: revents mask)
  poll_out,  // wait until writable
  // Repeated recv into the loop's provided buffers (io_uring only; submit it
  // only when provided_buffers() is non-null). complete() runs once per
  // chunk: result > 0 bytes sit in the buffer that cqe_flags name (kCqeBuffer
  // set) and must be recycled; kCqeMore set means more completions follow.
  // The final completion (no kCqeMore) has result 0 (EOF), -ENOBUFS (the pool
  // ran dry: re-arm), -ECANCELED or another -errno.
  recv_multishot,
  // Repeated accept4(fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK)
  // (io_uring only; submit it only when multishot_accept() is true).
  // complete() runs once per connection with result = the new fd and
  // kCqeMore set while the op stays armed. The final completion (no kCqeMore)
  // carries an fd or -errno (-EMFILE…, -ECANCELED; -EINVAL: the kernel has
  // no multishot accept): the caller re-arms or falls back to accept.
  accept_multishot,
};

// cqe_flags bits the backends report (io_uring's values).
constexpr std::uint32_t kCqeBuffer = 1u << 0;  // a provided buffer was used
constexpr std::uint32_t kCqeMore = 1u << 1;    // a multishot op stays armed

// "read", "recv", … for dump_tasks().
constexpr const char* op_name(OpKind k) noexcept {
  switch (k) {
    case OpKind::nop: return "nop";
    case OpKind::read: return "read";
    case OpKind::write: return "write";
    case OpKind::recv: return "recv";
    case OpKind::send: return "send";
    case OpKind::recvmsg: return "recvmsg";
    case OpKind::sendmsg: return "sendmsg";
    case OpKind::accept: return "accept";
    case OpKind::connect: return "connect";
    case OpKind::poll_in: return "wait readable";
    case OpKind::poll_out: return "wait writable";
    case OpKind::recv_multishot: return "recv (multishot)";
    case OpKind::accept_multishot: return "accept (multishot)";
  }
  return "I/O";
}

// Laid out for size (one per connection side, and one in every awaiter; an
// idle server connection keeps its armed recv): the flags are bits sharing
// the first word with kind and fd, and fields no single kind uses together
// share storage (offset: read/write; addrlen: accept; addrlen_value:
// connect; addr: accept/connect; msg: recvmsg/sendmsg). 80 bytes.
struct IoOp {
  OpKind kind = OpKind::nop;
  bool internal : 1 = false;  // the loop's own (wake-up) op: not counted in in_flight()
  // read/recv on a byte stream (TCP, Unix stream, pipe): a result shorter than
  // len means the kernel's receive queue was emptied, so the epoll backend
  // waits for the next edge instead of trying (and failing) the next read.
  // Never set it for datagram sockets, where a short read says nothing.
  bool stream : 1 = false;
  bool cancel_requested_ : 1 = false;  // backend bookkeeping
  bool queued_ : 1 = false;            // backend bookkeeping (epoll wait lists)
  // accept/accept_multishot: the submitter pauses and retries on EMFILE
  // (a server's accept loop), so the fault-injection layer may fail it so.
  bool backs_off_on_emfile : 1 = false;
  // recv_multishot: complete once, like a plain recv that picks a provided
  // buffer (one completion, never kCqeMore). Nothing stays armed after it, so
  // a connection that reads one message and closes has no recv to cancel.
  bool oneshot : 1 = false;
  int fd = -1;
  void* buf = nullptr;
  std::uint32_t len = 0;
  int msg_flags = 0;
  union {
    std::uint64_t offset = static_cast<std::uint64_t>(-1);  // read/write
    socklen_t* addrlen;                                     // accept: in/out
    socklen_t addrlen_value;                                // connect
  };
  union {
    sockaddr* addr = nullptr;  // accept/connect
    msghdr* msg;               // recvmsg/sendmsg
  };
  std::int32_t result = 0;
  std::uint32_t cqe_flags = 0;
  void (*complete)(IoOp*) noexcept = nullptr;
  void* ctx = nullptr;  // for complete()

  // Backend bookkeeping (epoll wait lists); untouched by users.
  IoOp* next_ = nullptr;
  IoOp* prev_ = nullptr;
};

enum class BackendKind { io_uring, epoll };

// A loop-wide pool of receive buffers the kernel picks from (io_uring's
// provided-buffer ring), so a connection waiting for data owns no buffer.
// The buffer a completion names belongs to its receiver until recycle():
// copy the bytes out and recycle at once, the pool is shared by every socket.
class ProvidedBuffers {
 public:
  // The start of the buffer named by a completion's cqe_flags (kCqeBuffer set).
  virtual const char* data(std::uint32_t cqe_flags) const noexcept = 0;
  // Hands that buffer back to the kernel.
  virtual void recycle(std::uint32_t cqe_flags) noexcept = 0;
  // The kernel refused recv_multishot (-EINVAL: too old): stop offering the pool.
  virtual void disable() noexcept = 0;

 protected:
  ~ProvidedBuffers() = default;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual BackendKind kind() const noexcept = 0;
  virtual const char* name() const noexcept = 0;

  // Start op. Returns true if it completed synchronously (op.result is set and
  // complete() will not be called); false if complete() will be called later.
  virtual bool submit(IoOp& op) noexcept = 0;
  // Performs op now if that cannot block and no op waits before it on its fd
  // side: returns the result (complete() is never called), or -EAGAIN when op
  // would have to wait, in which case nothing was queued and op may live on
  // the caller's stack. A writer with nothing buffered uses it to send
  // straight from the caller's bytes, as asyncio's transports do. Backends
  // that complete asynchronously (io_uring) always answer -EAGAIN.
  virtual int try_now(IoOp& op) noexcept {
    (void)op;
    return -EAGAIN;
  }
  // Ask for op to be cancelled; complete() still runs exactly once later.
  virtual void cancel(IoOp& op) noexcept = 0;
  // Flush queued submissions, wait for completions for up to timeout_ns
  // (-1: until one arrives; 0: do not block), and run their callbacks.
  virtual void wait(std::int64_t timeout_ns) = 0;
  // The fd is about to be closed: drop per-fd state. Pending ops on it must
  // have completed already (cancel first).
  virtual void forget_fd(int fd) noexcept = 0;
  // Loop teardown: cancel every operation in flight, internal ones included.
  virtual void cancel_all() noexcept = 0;
  // Operations submitted and not yet completed (excluding internal ones).
  virtual std::size_t in_flight() const noexcept = 0;
  // Whether wait(0) could deliver something without new submissions.
  virtual bool has_pending_work() const noexcept = 0;
  // The provided-buffer pool for recv_multishot, set up on first use; nullptr
  // when this backend or kernel has none (epoll), and then plain recv is the way.
  virtual ProvidedBuffers* provided_buffers() noexcept { return nullptr; }
  // The pool that armed recv_multishot ops draw from, also after
  // ProvidedBuffers::disable() (which only stops offering it to new readers:
  // ops armed before still complete with its buffers, and a reader keeps no
  // pointer of its own to it).
  virtual ProvidedBuffers* buffer_pool() noexcept { return provided_buffers(); }
  // A loop-wide buffer that a read/recv op may name while it waits (nullptr
  // if this backend has none: io_uring, where the kernel owns a buffer for
  // the whole op). The epoll backend touches an op's buffer only inside the
  // syscall it makes when the fd is ready, right before calling complete(),
  // so many waiting ops can share this one buffer as long as each complete()
  // copies its bytes out before returning. A waiting reader then holds no
  // buffer of its own. `*len` receives the size.
  virtual char* read_scratch(std::uint32_t* len) noexcept {
    (void)len;
    return nullptr;
  }
  // Whether accept_multishot may be submitted (io_uring); else accept.
  virtual bool multishot_accept() const noexcept { return false; }
};

struct BackendOptions {
  BackendKind kind = BackendKind::io_uring;
  unsigned sq_entries = 1024;
  // io_uring: buffers in the provided-buffer ring (a power of two; 0: none,
  // streams then use plain recv).
  unsigned provided_buffers = 256;
  // Test hook: pretend io_uring_queue_init failed with this errno (0: off).
  int force_uring_error = 0;
  // Test hook: submit accept_multishot with a flag the kernel rejects, so
  // that it completes with -EINVAL as on a kernel without multishot accept.
  bool refuse_multishot_accept = false;
};

// Creates the requested backend; io_uring falls back to epoll (with a one-line
// notice on stderr) when the ring cannot be created. `notice` receives that line.
std::unique_ptr<Backend> make_backend(const BackendOptions& opts, std::string* notice);

std::unique_ptr<Backend> make_uring_backend(const BackendOptions& opts, int* error);
std::unique_ptr<Backend> make_epoll_backend();

}  // namespace corio::detail
