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
};

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
  }
  return "I/O";
}

struct IoOp {
  OpKind kind = OpKind::nop;
  int fd = -1;
  void* buf = nullptr;
  std::uint32_t len = 0;
  int msg_flags = 0;
  std::uint64_t offset = static_cast<std::uint64_t>(-1);
  sockaddr* addr = nullptr;
  socklen_t* addrlen = nullptr;  // accept: in/out
  socklen_t addrlen_value = 0;   // connect
  msghdr* msg = nullptr;
  std::int32_t result = 0;
  std::uint32_t cqe_flags = 0;
  void (*complete)(IoOp*) noexcept = nullptr;
  void* ctx = nullptr;  // for complete()
  bool internal = false;  // the loop's own (wake-up) op: not counted in in_flight()

  // Backend bookkeeping (epoll wait lists); untouched by users.
  IoOp* next_ = nullptr;
  IoOp* prev_ = nullptr;
  bool cancel_requested_ = false;
  bool queued_ = false;
};

enum class BackendKind { io_uring, epoll };

class Backend {
 public:
  virtual ~Backend() = default;
  virtual BackendKind kind() const noexcept = 0;
  virtual const char* name() const noexcept = 0;

  // Start op. Returns true if it completed synchronously (op.result is set and
  // complete() will not be called); false if complete() will be called later.
  virtual bool submit(IoOp& op) noexcept = 0;
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
};

struct BackendOptions {
  BackendKind kind = BackendKind::io_uring;
  unsigned sq_entries = 1024;
  // Test hook: pretend io_uring_queue_init failed with this errno (0: off).
  int force_uring_error = 0;
};

// Creates the requested backend; io_uring falls back to epoll (with a one-line
// notice on stderr) when the ring cannot be created. `notice` receives that line.
std::unique_ptr<Backend> make_backend(const BackendOptions& opts, std::string* notice);

std::unique_ptr<Backend> make_uring_backend(const BackendOptions& opts, int* error);
std::unique_ptr<Backend> make_epoll_backend();

}  // namespace corio::detail
