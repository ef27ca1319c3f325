#pragma once
// gather(): run awaitables concurrently and collect their results in order
// (asyncio.gather).
//
//   auto [a, b] = co_await gather(fetch(x), fetch(y));          // tuple
//   std::vector<int> v = co_await gather(std::move(tasks));      // vector<Task<int>>
//   auto [ra, rb] = co_await gather(return_exceptions, f(), g()); // Outcome<T> each
//
// Arguments are Task<T> (rvalues) and/or TaskHandle<T>, and other awaiter
// objects as rvalues (gather(reader.readline(), writer.drain()), each run as
// its own task as create_task(awaiter) does). Each Task is spawned
// with create_task() when gather() is called — not when the result is
// awaited — and in argument order, as asyncio's ensure_future does; a
// TaskHandle is waited on as it is. A void child yields std::monostate.
// Results are in argument order, whatever the completion order.
//
// Without return_exceptions (asyncio's default):
// - The first child that fails ends the gather: its exception propagates to
//   the awaiter at once while the other children KEEP RUNNING (they are not
//   cancelled; they belong to the loop, and an exception one of them raises
//   later, that nobody retrieves, goes to the loop's exception handler).
// - A child cancelled on its own (not through the gather) counts as a failure:
//   the gather raises CancelledError with that child's message.
// With `return_exceptions` every child is waited for and each one's value or
// exception (CancelledError for a cancelled child) comes back as an Outcome<T>.
//
// Cancellation: cancelling the awaiting task cancels every child not yet done
// (with the same message). A cancel that arrives after the gather was decided
// but before the awaiter resumed raises CancelledError there (as asyncio's
// Task.__step does for a done future); the children are not touched. The awaiter then raises CancelledError: without
// return_exceptions as soon as the first child finishes cancelled (others may
// still be running their cleanup, as in asyncio), with return_exceptions once
// all children are done — even if some of them swallowed the cancel.
// Concurrency: the Task gather() returns is awaited once, like any Task.
#include <cstddef>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "coro/errors.hpp"
#include "coro/outcome.hpp"
#include "coro/task.hpp"
#include "coro/task_base.hpp"
#include "coro/task_handle.hpp"

namespace corio {

// Tag selecting asyncio's `return_exceptions=True`.
struct ReturnExceptions {
  explicit ReturnExceptions() = default;
};
inline constexpr ReturnExceptions return_exceptions{};

namespace detail {

template <class T>
using value_or_monostate = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

template <class A>
struct gather_traits : std::false_type {};
template <class T>
struct gather_traits<Task<T>> : std::true_type {
  using value_type = T;
};
template <class T>
struct gather_traits<TaskHandle<T>> : std::true_type {
  using value_type = T;
};

// Another awaiter object, as an rvalue (a stream read, StreamWriter::drain(),
// shield(...)): gathered as its own task, as create_task(awaiter) runs it.
template <class A>
  requires SpawnableAwaiter<A&&>
struct gather_traits<A> : std::true_type {
  using value_type = decltype(std::declval<A&>().await_resume());
};

// Task<T> rvalues, TaskHandle<T>s, and other awaiter rvalues.
template <class A>
concept Gatherable =
    SpawnableAwaiter<A&&> ||
    (is_task_or_handle<std::remove_cvref_t<A>>::value &&
     (!std::is_same_v<std::remove_cvref_t<A>, Task<typename gather_traits<std::remove_cvref_t<A>>::value_type>> ||
      !std::is_lvalue_reference_v<A>));

template <class A>
using gathered_t = typename gather_traits<std::remove_cvref_t<A>>::value_type;

// One child: its handle, and whether gather spawned it (then nobody else can
// read its result and it may be moved out instead of copied).
template <class T>
struct GatherChild {
  TaskHandle<T> handle;
  bool owned;
};

template <class T>
GatherChild<T> gather_child(Task<T>&& t) {
  return {create_task(std::move(t)), true};
}
template <class T>
GatherChild<T> gather_child(const TaskHandle<T>& h) {
  return {h, false};
}
template <class A>
  requires SpawnableAwaiter<A&&>
GatherChild<gathered_t<A>> gather_child(A&& a) {
  return {create_task(std::move(a)), true};
}

// Waits for a set of spawned tasks by asyncio's gather rules; the templates
// below turn the finished tasks into values. Lives in the gather coroutine's
// frame; unregisters from every child when destroyed.
class GatherCore final : public CancelHook {
 public:
  GatherCore(std::vector<TaskBase*> children, bool return_exceptions);
  GatherCore(const GatherCore&) = delete;
  GatherCore& operator=(const GatherCore&) = delete;
  ~GatherCore();

  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> h);
  // Throws the first failure (or CancelledError); returns when every child is
  // done and the gather was not cancelled.
  void await_resume();
  bool on_cancel(TaskBase& t) noexcept override;

 private:
  struct Child final : DoneWaiter {
    GatherCore* core = nullptr;
    TaskBase* task = nullptr;
    void on_task_done(TaskBase& t) noexcept override { core->child_done(t); }
  };
  // Records that `t` finished; true if this ends the wait.
  bool record(TaskBase& t) noexcept;
  void child_done(TaskBase& t) noexcept;

  std::vector<Child> children_;  // never resized after construction: DoneWaiters point into it
  TaskBase* waiter_ = nullptr;
  TaskBase* first_failure_ = nullptr;
  std::string cancel_msg_;
  std::size_t finished_ = 0;
  bool return_exceptions_;
  bool cancel_requested_ = false;
  bool decided_ = false;  // the waiter was woken (or never suspended): ignore later completions
  bool suspended_ = false;
};

template <class T>
value_or_monostate<T> take_value(GatherChild<T>& c) {
  if constexpr (std::is_void_v<T>) {
    c.handle.result();
    return {};
  } else if constexpr (std::is_copy_constructible_v<T>) {
    if (c.owned) return std::move(c.handle.result());
    return c.handle.result();
  } else {
    return std::move(c.handle.result());
  }
}

template <class T>
Outcome<T> take_outcome(GatherChild<T>& c) {
  TaskBase& b = c.handle.base();
  if (b.cancelled()) return Outcome<T>(std::make_exception_ptr(CancelledError(b.cancel_message())));
  if (std::exception_ptr e = b.exception()) return Outcome<T>(std::move(e));
  if constexpr (std::is_void_v<T>) {
    return Outcome<void>();
  } else {
    return Outcome<T>(take_value(c));
  }
}

template <class... Ts>
Task<std::tuple<value_or_monostate<Ts>...>> gather_tuple(std::tuple<GatherChild<Ts>...> cs) {
  GatherCore core(std::apply([](auto&... c) { return std::vector<TaskBase*>{&c.handle.base()...}; }, cs), false);
  co_await core;
  co_return std::apply([](auto&... c) { return std::tuple<value_or_monostate<Ts>...>{take_value(c)...}; }, cs);
}

template <class... Ts>
Task<std::tuple<Outcome<Ts>...>> gather_tuple_settled(std::tuple<GatherChild<Ts>...> cs) {
  GatherCore core(std::apply([](auto&... c) { return std::vector<TaskBase*>{&c.handle.base()...}; }, cs), true);
  co_await core;
  co_return std::apply([](auto&... c) { return std::tuple<Outcome<Ts>...>{take_outcome(c)...}; }, cs);
}

template <class T>
std::vector<TaskBase*> bases(std::vector<GatherChild<T>>& cs) {
  std::vector<TaskBase*> v;
  v.reserve(cs.size());
  for (auto& c : cs) v.push_back(&c.handle.base());
  return v;
}

template <class T>
Task<std::vector<value_or_monostate<T>>> gather_vector(std::vector<GatherChild<T>> cs) {
  GatherCore core(bases(cs), false);
  co_await core;
  std::vector<value_or_monostate<T>> out;
  out.reserve(cs.size());
  for (auto& c : cs) out.push_back(take_value(c));
  co_return out;
}

template <class T>
Task<std::vector<Outcome<T>>> gather_vector_settled(std::vector<GatherChild<T>> cs) {
  GatherCore core(bases(cs), true);
  co_await core;
  std::vector<Outcome<T>> out;
  out.reserve(cs.size());
  for (auto& c : cs) out.push_back(take_outcome(c));
  co_return out;
}

template <class T>
std::vector<GatherChild<T>> gather_children(std::vector<Task<T>>&& tasks) {
  std::vector<GatherChild<T>> cs;
  cs.reserve(tasks.size());
  for (auto& t : tasks) cs.push_back(gather_child(std::move(t)));
  return cs;
}
template <class T>
std::vector<GatherChild<T>> gather_children(const std::vector<TaskHandle<T>>& handles) {
  std::vector<GatherChild<T>> cs;
  cs.reserve(handles.size());
  for (auto& h : handles) cs.push_back(gather_child(h));
  return cs;
}

}  // namespace detail

// gather(a, b, ...) -> Task<std::tuple<A, B, ...>> (void -> std::monostate).
template <class... As>
  requires(detail::Gatherable<As> && ...)
Task<std::tuple<detail::value_or_monostate<detail::gathered_t<As>>...>> gather(As&&... as) {
  // A braced list spawns the children left to right (function arguments
  // would be evaluated in an unspecified order).
  std::tuple<detail::GatherChild<detail::gathered_t<As>>...> cs{detail::gather_child(std::forward<As>(as))...};
  return detail::gather_tuple(std::move(cs));
}

// gather(return_exceptions, a, b, ...) -> Task<std::tuple<Outcome<A>, Outcome<B>, ...>>.
template <class... As>
  requires(detail::Gatherable<As> && ...)
Task<std::tuple<Outcome<detail::gathered_t<As>>...>> gather(ReturnExceptions, As&&... as) {
  std::tuple<detail::GatherChild<detail::gathered_t<As>>...> cs{detail::gather_child(std::forward<As>(as))...};
  return detail::gather_tuple_settled(std::move(cs));
}

// gather(vector<Task<T>>) / gather(vector<TaskHandle<T>>) -> Task<std::vector<T>>.
template <class T>
Task<std::vector<detail::value_or_monostate<T>>> gather(std::vector<Task<T>> tasks) {
  return detail::gather_vector(detail::gather_children(std::move(tasks)));
}
template <class T>
Task<std::vector<detail::value_or_monostate<T>>> gather(const std::vector<TaskHandle<T>>& handles) {
  return detail::gather_vector(detail::gather_children(handles));
}

// The same with return_exceptions -> Task<std::vector<Outcome<T>>>.
template <class T>
Task<std::vector<Outcome<T>>> gather(ReturnExceptions, std::vector<Task<T>> tasks) {
  return detail::gather_vector_settled(detail::gather_children(std::move(tasks)));
}
template <class T>
Task<std::vector<Outcome<T>>> gather(ReturnExceptions, const std::vector<TaskHandle<T>>& handles) {
  return detail::gather_vector_settled(detail::gather_children(handles));
}

}  // namespace corio
