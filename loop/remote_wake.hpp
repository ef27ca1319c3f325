#pragma once
// RemoteWake: a one-shot wake-up of a suspended task, sent from any thread
// through the loop's one cross-thread path (post_threadsafe: coalesced
// eventfd wake-up, one drain for many).
//
// It is a small heap object, not part of the awaiter, because a post may still
// sit in the loop's queue when the awaiter's frame is destroyed (loop
// teardown destroys suspended frames before it drains that queue).
//
// Invariants:
// - Two references: the waiter's (loop thread; dropped by detach(), or by
//   release() after the task resumed) and the sender's (travels with the post
//   and is dropped when the loop runs or discards it; a waiter that
//   unregisters before any fire drops it with release_sender()).
// - fire() is called at most once, by the side that holds the registration,
//   inside that side's critical section: a waiter that unregisters under the
//   same lock therefore never races a post in progress.
// - task_ is read and cleared on the loop thread only.
#include <atomic>

#include "coro/frame_allocator.hpp"
#include "coro/task_base.hpp"
#include "loop/event_loop.hpp"

namespace corio::detail {

class RemoteWake final : public Runnable {
 public:
  RemoteWake(EventLoop& loop, TaskBase& task) noexcept : loop_(&loop), task_(&task) {}
  RemoteWake(const RemoteWake&) = delete;
  RemoteWake& operator=(const RemoteWake&) = delete;

  // Any thread, once: wake the task on its loop. On the loop's own thread the
  // task is queued directly (no post needed).
  void fire() noexcept {
    if (EventLoop::current_or_null() == loop_) run();
    else loop_->post_threadsafe(*this);
  }
  // Loop thread: the waiter leaves without waiting for the wake-up.
  void detach() noexcept {
    task_ = nullptr;
    release();
  }
  // The registration ended without fire() (the waiter unregistered).
  void release_sender() noexcept { release(); }
  // The waiter's own reference, after it resumed normally.
  void release() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
  EventLoop& loop() const noexcept { return *loop_; }

  void run() noexcept override {
    if (TaskBase* t = task_) {
      task_ = nullptr;
      t->wake();
    }
    release();
  }
  void discard() noexcept override { release(); }

  static void* operator new(std::size_t n) { return frame_alloc(n); }
  static void operator delete(void* p, std::size_t n) noexcept { frame_free(p, n); }

 private:
  ~RemoteWake() = default;

  EventLoop* loop_;
  TaskBase* task_;
  std::atomic<int> refs_{2};
};

}  // namespace corio::detail
