#pragma once
// IoAwaiter: one kernel operation as an awaitable, on either backend.
//
// The IoOp lives in the awaiter, which lives in the awaiting coroutine's frame
// until it resumes; the frame cannot resume before the op's completion, so
// the op (and the buffer the caller passed) stays valid while the kernel owns
// it. Loop teardown cancels every op and waits for its completion before any
// suspended frame is destroyed.
//
// Result: the raw syscall result (bytes, an fd, or -errno). Wrappers convert
// errors to exceptions once. EINTR and EAGAIN never reach them: the op is
// resubmitted (the kernel may report either for an op that did nothing —
// io_uring turns -ERESTARTSYS into -EINTR), unless the caller asked for
// MSG_DONTWAIT, where EAGAIN is the answer. A connect retried after EINTR
// that finds the socket connected (EISCONN) succeeded.
// Never a retry once the op is being cancelled or the loop is tearing down:
// a cancel that meets EINTR/EAGAIN (nothing happened) reads as -ECANCELED.
// Cancellation: cancel() asks the backend to cancel the op (io_uring async
// cancel; epoll: dequeue) and the task resumes when the op's completion
// arrives. If it was -ECANCELED the awaiter throws CancelledError; if the
// kernel completed the op first its result is returned and the cancel stays
// pending for the next suspension point (kernel completions win: no lost bytes,
// no leaked accepted fd).
#include <sys/socket.h>

#include <cerrno>

#include "coro/task_base.hpp"
#include "loop/backend.hpp"
#include "loop/event_loop.hpp"

namespace corio::detail {

class IoAwaiter : public CancelHook {
 public:
  IoAwaiter() noexcept = default;
  IoAwaiter(const IoAwaiter&) = delete;
  IoAwaiter& operator=(const IoAwaiter&) = delete;

  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> h) {
    task_ = &TaskBase::current_checked("an I/O operation");
    if (task_->take_pending_cancel()) {
      cancelled_ = true;
      return false;
    }
    loop_ = &EventLoop::current();
    if (dontwait_send_ && !(op_.msg_flags & MSG_DONTWAIT) && loop_->backend().kind() == BackendKind::io_uring) {
      op_.msg_flags |= MSG_DONTWAIT;
      own_dontwait_ = true;
    }
    op_.complete = &IoAwaiter::completed;
    op_.ctx = this;
    if (start()) {  // completed synchronously
      done_ = true;
      return false;
    }
    task_->suspend(h, this, op_name(op_.kind));
    return true;
  }
  // The raw result; throws CancelledError if the op was cancelled.
  int result() {
    if (cancelled_) task_->throw_cancelled();
    if ((cancel_sent_ || op_cancelled_) && is_transient(op_.result)) op_.result = -ECANCELED;  // it did nothing
    if (retried_connect_ && op_.result == -EISCONN) op_.result = 0;  // the interrupted connect went through
    if (cancel_sent_) {
      if (op_.result == -ECANCELED) task_->throw_cancelled();
      task_->rearm_cancel();
    }
    return op_.result;
  }

  bool on_cancel(TaskBase&) noexcept override {
    if (!cancel_sent_) {
      cancel_sent_ = true;
      loop_->backend().cancel(op_);
    }
    return true;
  }

 protected:
  // For subclasses that race the op against something else (a connect
  // deadline): whether its completion has arrived, and a way to cancel it
  // that is not the task's cancellation (result() then returns -ECANCELED,
  // or the real result if the kernel finished first). Never cancel after
  // op_done(): on io_uring the cancel would be matched against whatever op
  // reuses this address next.
  bool op_done() const noexcept { return done_; }
  // Set by a send's awaiter. On io_uring such a send goes out with
  // MSG_DONTWAIT, and where there is no room this awaiter waits for POLLOUT
  // and sends again, instead of leaving the retry to the kernel: for a Unix
  // datagram socket whose receiver's queue is full, the kernel's own retry
  // resent the datagram from an iterator already consumed, so the receiver
  // got an empty datagram and the send returned 0 (Linux 6.x).
  bool dontwait_send_ = false;
  void cancel_op() noexcept {
    if (done_) return;
    op_cancelled_ = true;
    loop_->backend().cancel(op_);
  }

  IoOp op_;

 private:
  static bool is_transient(int r) noexcept { return r == -EINTR || r == -EAGAIN; }

  // Whether a result means "nothing happened, ask again".
  bool should_retry(int r) noexcept {
    if (!is_transient(r) || cancel_sent_ || op_cancelled_) return false;
    if (EventLoop::current_or_null() != loop_) return false;  // teardown: the loop waits for ops to end
    if (r == -EAGAIN) {
      if (op_.kind == OpKind::connect) return false;  // Unix sockets: the listener's backlog is full
      const bool has_flags = op_.kind == OpKind::recv || op_.kind == OpKind::send || op_.kind == OpKind::recvmsg ||
                             op_.kind == OpKind::sendmsg;
      if (has_flags && (op_.msg_flags & MSG_DONTWAIT) && !own_dontwait_) return false;  // the caller's answer
    }
    if (op_.kind == OpKind::connect) retried_connect_ = true;
    return true;
  }

  // Submits op_; true if it completed synchronously (op_.result holds the
  // answer), after any resubmissions keep_going() made.
  bool start() noexcept { return loop_->backend().submit(op_) && !keep_going(); }

  // After op_ completed: resubmits it after a transient result, or (a send
  // under our own MSG_DONTWAIT that found no room) waits for POLLOUT with
  // the same op and then sends again. True while something is in flight.
  bool keep_going() noexcept {
    for (;;) {
      if (polling_) {
        polling_ = false;
        op_.kind = send_kind_;
        if (cancel_sent_ || op_cancelled_) {
          op_.result = -ECANCELED;  // nothing was sent
          return false;
        }
        if (op_.result < 0 && !is_transient(op_.result)) return false;
      } else if (!should_retry(op_.result)) {
        return false;
      } else if (own_dontwait_ && op_.result == -EAGAIN) {
        polling_ = true;
        send_kind_ = op_.kind;
        op_.kind = OpKind::poll_out;
      }
      if (!loop_->backend().submit(op_)) return true;
    }
  }

  static void completed(IoOp* op) noexcept {
    auto* self = static_cast<IoAwaiter*>(op->ctx);
    if (self->keep_going()) return;  // resubmitted: wait for its completion
    self->done_ = true;
    self->task_->wake();
  }

  TaskBase* task_ = nullptr;
  EventLoop* loop_ = nullptr;
  bool cancelled_ = false;
  bool cancel_sent_ = false;
  bool op_cancelled_ = false;    // cancel_op(): a subclass's deadline, not the task's cancel
  bool retried_connect_ = false; // a connect was resubmitted after EINTR
  bool done_ = false;
  bool own_dontwait_ = false;    // MSG_DONTWAIT added here (dontwait_send_ on io_uring)
  bool polling_ = false;         // op_ is a poll_out standing in for the send
  OpKind send_kind_ = OpKind::send;
};

}  // namespace corio::detail
