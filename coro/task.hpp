#pragma once
// Task<T>: a lazy, move-only coroutine.
//
// - Nothing runs until the Task is awaited (`co_await f()`) or handed to
//   create_task()/run(). Destroying a Task that never started frees its frame.
// - Exceptions thrown in the body propagate to the awaiter through co_await.
// - Awaiting a Task transfers control to it, and its completion transfers
//   back, through a trampoline: the awaiter names the next coroutine and
//   returns to the driver loop in TaskBase::run(), which resumes it. So a chain
//   of a million nested awaits runs in constant stack depth at every
//   optimisation level and under sanitizers, where compilers do not turn
//   symmetric transfer (`return handle;` from await_suspend) into a tail call.
// - Frames come from a per-thread free-list allocator (frame_allocator.hpp).
//
// Cancellation: a Task has no cancellation state of its own; it runs inside a
// spawned task (TaskBase) and sees that task's cancellation at the leaf
// awaitable where it is suspended.
#include <concepts>
#include <coroutine>
#include <cstdint>
#include <exception>
#include <source_location>
#include <type_traits>
#include <utility>
#include <variant>

#include "coro/frame_allocator.hpp"

namespace corio {

class TaskBase;
template <class T = void>
class Task;

namespace detail {

// Called when the root frame of a spawned task finishes (defined in task_base.cpp).
void task_root_done(TaskBase* owner) noexcept;

struct PromiseBase;
// Debug mode: a Task destroyed without ever being awaited or spawned.
void report_never_awaited(const PromiseBase& p) noexcept;

// The coroutine the driver loop (TaskBase::run) resumes next on this thread.
// initial-exec: one %fs-relative access, where libcorio.so's default TLS model
// calls __tls_get_addr on every await (see frame_allocator.cpp).
inline thread_local std::coroutine_handle<> tls_next_resume [[gnu::tls_model("initial-exec")]];

struct PromiseBase {
  // Where the coroutine is defined: GCC evaluates the promise constructor's
  // default argument at the coroutine itself, so this names the function,
  // file and line (for dump_tasks() and debug-mode reports).
  explicit PromiseBase(std::source_location where) noexcept : where_(where) {}

  // Who resumes when this frame finishes: the awaiting coroutine, or (low
  // bit set) the spawned task whose root this frame is. One word for both,
  // as a frame has exactly one of them; 0 until the Task is awaited or
  // spawned, so it also tells whether the frame ever started (debug mode
  // reports Tasks destroyed without ever running). Every frame pays for
  // this word, and a server holds one suspended frame per connection.
  void set_continuation(std::coroutine_handle<> h) noexcept { link_ = reinterpret_cast<std::uintptr_t>(h.address()); }
  void set_root_owner(TaskBase* t) noexcept { link_ = reinterpret_cast<std::uintptr_t>(t) | kOwnerBit; }
  bool started() const noexcept { return link_ != 0; }

  std::exception_ptr exception_;
  // The await chain: the Task this frame is awaiting, and the one awaiting it.
  PromiseBase* child_ = nullptr;
  PromiseBase* parent_ = nullptr;
  std::source_location where_;

  static void* operator new(std::size_t n) { return frame_alloc(n); }
  static void operator delete(void* p, std::size_t n) noexcept { frame_free(p, n); }

  std::suspend_always initial_suspend() noexcept { return {}; }

  struct FinalAwaiter {
    bool await_ready() noexcept { return false; }
    template <class P>
    void await_suspend(std::coroutine_handle<P> h) noexcept {
      PromiseBase& p = h.promise();
      if (p.parent_) p.parent_->child_ = nullptr;
      const std::uintptr_t link = p.link_;
      if (!(link & kOwnerBit)) {
        tls_next_resume = std::coroutine_handle<>::from_address(reinterpret_cast<void*>(link));
        return;
      }
      // A root frame: its task record may free this very frame here; nothing
      // below touches it.
      task_root_done(reinterpret_cast<TaskBase*>(link & ~kOwnerBit));
    }
    void await_resume() noexcept {}
  };
  FinalAwaiter final_suspend() noexcept { return {}; }
  void unhandled_exception() noexcept { exception_ = std::current_exception(); }

 private:
  // Frames and task records are at least 8-byte aligned: bit 0 is free.
  static constexpr std::uintptr_t kOwnerBit = 1;
  std::uintptr_t link_ = 0;
};

template <class T>
struct Promise : PromiseBase {
  Promise(std::source_location where = std::source_location::current()) noexcept : PromiseBase(where) {}
  std::variant<std::monostate, T> value_;
  Task<T> get_return_object() noexcept;
  template <class U = T, class = std::enable_if_t<std::is_convertible_v<U&&, T>>>
  void return_value(U&& v) noexcept(std::is_nothrow_constructible_v<T, U&&>) {
    value_.template emplace<1>(std::forward<U>(v));
  }
  T take() {
    if (exception_) std::rethrow_exception(exception_);
    return std::move(std::get<1>(value_));
  }
  T& ref() {
    if (exception_) std::rethrow_exception(exception_);
    return std::get<1>(value_);
  }
};

template <>
struct Promise<void> : PromiseBase {
  Promise(std::source_location where = std::source_location::current()) noexcept : PromiseBase(where) {}
  Task<void> get_return_object() noexcept;
  void return_void() noexcept {}
  void take() {
    if (exception_) std::rethrow_exception(exception_);
  }
  void ref() { take(); }
};

}  // namespace detail

template <class T>
class [[nodiscard]] Task {
 public:
  using promise_type = detail::Promise<T>;
  using handle_type = std::coroutine_handle<promise_type>;
  using value_type = T;

  Task() noexcept = default;
  explicit Task(handle_type h) noexcept : h_(h) {}
  Task(Task&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  Task& operator=(Task&& o) noexcept {
    if (this != &o) {
      reset();
      h_ = std::exchange(o.h_, {});
    }
    return *this;
  }
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;
  ~Task() { reset(); }

  bool valid() const noexcept { return static_cast<bool>(h_); }
  bool done() const noexcept { return h_ && h_.done(); }

  struct Awaiter {
    handle_type h;
    bool await_ready() const noexcept { return false; }
    template <class P>
    void await_suspend(std::coroutine_handle<P> awaiting) noexcept {
      promise_type& child = h.promise();
      child.set_continuation(awaiting);
      if constexpr (std::is_base_of_v<detail::PromiseBase, P>) {
        child.parent_ = &awaiting.promise();
        awaiting.promise().child_ = &child;
      }
      detail::tls_next_resume = h;  // the driver loop starts the child
    }
    T await_resume() { return h.promise().take(); }
  };

  // Awaiting runs the task to completion and yields its value or rethrows its exception.
  Awaiter operator co_await() && noexcept { return Awaiter{h_}; }
  Awaiter operator co_await() & noexcept { return Awaiter{h_}; }

  // For the task machinery: give up ownership of the frame.
  handle_type release() noexcept { return std::exchange(h_, {}); }
  handle_type handle() const noexcept { return h_; }

 private:
  void reset() noexcept {
    if (h_) {
      if (!h_.promise().started()) detail::report_never_awaited(h_.promise());
      std::exchange(h_, {}).destroy();
    }
  }
  handle_type h_;
};

namespace detail {
template <class T>
Task<T> Promise<T>::get_return_object() noexcept {
  return Task<T>(std::coroutine_handle<Promise<T>>::from_promise(*this));
}
inline Task<void> Promise<void>::get_return_object() noexcept {
  return Task<void>(std::coroutine_handle<Promise<void>>::from_promise(*this));
}

// An awaiter object used directly (await_ready/await_suspend/await_resume
// members), e.g. what shield() or a
// StreamReader read returns; await_in_task gives it a frame (a Task) of its own.
template <class A>
concept DirectAwaiter = std::move_constructible<A> && requires(A& a) {
  { a.await_ready() } -> std::convertible_to<bool>;
  a.await_resume();
};

template <class A>
Task<decltype(std::declval<A&>().await_resume())> await_in_task(A aw) {
  co_return co_await std::move(aw);
}
}  // namespace detail

}  // namespace corio
