#pragma once
// TaskGroup: structured concurrency (asyncio.TaskGroup).
//
//   co_await task_group([&](TaskGroup& tg) -> Task<void> {
//     auto a = tg.create_task(fetch(x));
//     auto b = tg.create_task(fetch(y));
//     co_await something();
//   });
//   // here every child is done; a.result(), b.result() are ready
//
// The body runs in the calling task (like the block of `async with`), then
// task_group() waits for every child. Children can't outlive the group: the
// group object exists only inside task_group(), which does not return (or
// throw) before the last child finished. The body may be a capturing lambda:
// task_group() keeps the callable alive while its coroutine runs. Children
// may receive the TaskGroup& and spawn siblings with it.
//
// Rules (asyncio's, DESIGN "Semantics decided" 3):
// - The first child failure (anything but CancelledError) cancels every other
//   child and the body (the calling task is cancelled where the body waits).
//   The group then raises one ExceptionGroup("unhandled errors in a
//   TaskGroup") holding every child's exception, followed by the body's own
//   exception if it raised one (not CancelledError). Children that ended
//   cancelled contribute nothing.
// - A body exception cancels the children too and is reported the same way,
//   wrapped in the ExceptionGroup.
// - A cancel from outside (the calling task is cancelled) cancels the
//   children; after they finished, the group raises CancelledError with the
//   outside message.
// - Errors beat cancellation: if children or the body failed while the
//   calling task was being cancelled from outside, the ExceptionGroup is
//   raised and the outside request stays armed: the caller's next suspension
//   point raises CancelledError.
// - The group never leaks its own cancel request: it cancels the calling task
//   at most once and takes that request back (uncancel()) before returning,
//   so after an ExceptionGroup is handled the caller's cancelling() is what it
//   was before.
// - Nested groups nest their ExceptionGroups (an inner group's aggregate is
//   one sub-exception of the outer's).
// - tg.cancel() ends the group quietly: children and body are cancelled and
//   task_group() returns normally, unless something failed (ExceptionGroup)
//   or the calling task was also cancelled from outside (CancelledError).
//   It is idempotent and may be called by the body or by any child.
// - tg.create_task() takes a Task or, like corio::create_task(), an awaiter
//   object (tg.create_task(reader.readline()), tg.create_task(shield(h))),
//   which runs as a child in a frame of its own.
// - create_task() on a group that is shutting down (a child failed, the body
//   raised, or the group was cancelled) or has finished throws
//   InvalidStateError; the Task passed in is destroyed without running.
//
// Cancellation: see above — an outside cancel surfaces as CancelledError only
// after every child finished. Further cancels while the group waits for its
// (already cancelled) children do not interrupt that wait; they stay counted
// in cancelling() and the group still ends in CancelledError.
// Concurrency: create_task()/cancel() may be called from the body and the
// children (all on the loop's thread).
//
// Teardown: if the loop is closed while a group is suspended, the loop
// destroys every suspended frame (DESIGN Semantics 8); the group's destructor
// then detaches from its children without touching them, since the loop
// abandons them too. No other path destroys a group with live children.
#include <cstddef>
#include <exception>
#include <functional>
#include <list>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "coro/errors.hpp"
#include "coro/exception_group.hpp"
#include "coro/task.hpp"
#include "coro/task_base.hpp"
#include "coro/task_handle.hpp"

namespace corio {

class TaskGroup {
 public:
  TaskGroup(const TaskGroup&) = delete;
  TaskGroup& operator=(const TaskGroup&) = delete;
  ~TaskGroup();

  // Spawn `task` as a child of this group (see create_task()).
  // Throws InvalidStateError if the group is shutting down or finished.
  template <class T>
  TaskHandle<T> create_task(Task<T> task, std::string name = {}) {
    check_can_spawn();
    TaskHandle<T> h = corio::create_task(std::move(task), std::move(name));
    adopt(h.base());
    return h;
  }
  // An awaiter object (not a Task) as a child, as corio::create_task(awaiter)
  // runs one: tg.create_task(reader.readline()), like asyncio's
  // tg.create_task(coro) for any coroutine.
  template <class A>
    requires detail::SpawnableAwaiter<A&&>
  auto create_task(A&& awaiter, std::string name = {}) {
    return create_task(detail::await_in_task(std::remove_cvref_t<A>(std::move(awaiter))), std::move(name));
  }

  // End the group quietly (see the rules above). Idempotent.
  void cancel();

  // Children not finished yet.
  std::size_t size() const noexcept { return children_.size(); }
  // A child failed, the body raised, the calling task was cancelled from
  // outside, or cancel() was called: no new child can be spawned.
  bool aborting() const noexcept { return aborting_; }

 private:
  template <class F>
  friend Task<void> task_group(F body);
  class JoinAwaiter;

  struct Child final : DoneWaiter {
    TaskGroup* group = nullptr;
    TaskBase* task = nullptr;  // holds a reference
    std::list<Child>::iterator self;
    void on_task_done(TaskBase& t) noexcept override { group->child_done(*this, t); }
  };

  explicit TaskGroup(TaskBase& parent) noexcept : parent_(&parent) {}
  void check_can_spawn() const;
  void adopt(TaskBase& t);
  void abort() noexcept;
  void child_done(Child& c, TaskBase& t) noexcept;
  // asyncio's __aexit__: wait for the children, then decide what to raise.
  Task<void> join(std::exception_ptr body_exc);

  TaskBase* parent_;
  std::list<Child> children_;  // stable addresses: each node is a registered DoneWaiter
  std::vector<std::exception_ptr> errors_;
  JoinAwaiter* joiner_ = nullptr;  // join() waiting for the last child
  bool exiting_ = false;
  bool aborting_ = false;
  bool parent_cancel_requested_ = false;
  TaskBase::OwnCancel own_cancel_;  // that request, taken back by join()
};

// Run body(tg) in the calling task with a fresh TaskGroup, then wait for all
// of the group's children (rules above). `body` is any callable taking
// TaskGroup& and returning Task<void>; it is moved into the coroutine frame
// and lives until the group is done, so it may capture by value or reference.
template <class F>
Task<void> task_group(F body) {
  static_assert(std::is_same_v<std::invoke_result_t<F&, TaskGroup&>, Task<void>>,
                "task_group(body): body must be callable as body(TaskGroup&) and return Task<void>");
  TaskGroup tg(TaskBase::current_checked("task_group()"));
  std::exception_ptr body_exc;
  try {
    co_await std::invoke(body, tg);
  } catch (...) {
    body_exc = std::current_exception();
  }
  co_await tg.join(std::move(body_exc));
}

}  // namespace corio
