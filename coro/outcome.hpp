#pragma once
// Outcome<T>: how one awaited thing ended — a value or an exception — kept
// instead of thrown. gather(return_exceptions, ...) yields one per child,
// which is asyncio's `return_exceptions=True` list of "results or exception
// objects" made type-safe.
//
// Invariants: exactly one of value / exception is present (Outcome<void>
// has no value: "succeeded" is the absence of an exception). A child that was
// cancelled is recorded as an exception holding CancelledError(message), so
// cancelled() can tell it apart from a failure.
#include <exception>
#include <type_traits>
#include <utility>
#include <variant>

#include "coro/errors.hpp"
#include "coro/exception_group.hpp"

namespace corio {

template <class T>
class Outcome {
  static_assert(!std::is_reference_v<T>, "Outcome holds values");

 public:
  // A value.
  template <class U = T, class = std::enable_if_t<std::is_constructible_v<T, U&&> &&
                                                  !std::is_same_v<std::decay_t<U>, std::exception_ptr> &&
                                                  !std::is_same_v<std::decay_t<U>, Outcome>>>
  explicit Outcome(U&& v) : v_(std::in_place_index<0>, std::forward<U>(v)) {}
  // An exception; e must not be null.
  explicit Outcome(std::exception_ptr e) : v_(std::in_place_index<1>, std::move(e)) {}

  bool has_value() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }
  bool has_exception() const noexcept { return v_.index() == 1; }
  // The exception is an E (`catch (const E&)` would catch it).
  template <class E>
  bool has_exception() const noexcept {
    return has_exception() && exception_is<E>(std::get<1>(v_));
  }
  bool cancelled() const noexcept { return has_exception<CancelledError>(); }
  // nullptr when there is a value.
  std::exception_ptr exception() const noexcept { return has_exception() ? std::get<1>(v_) : nullptr; }

  // The value, or rethrows the exception.
  T& value() & {
    rethrow_if_exception();
    return std::get<0>(v_);
  }
  const T& value() const& {
    rethrow_if_exception();
    return std::get<0>(v_);
  }
  T&& value() && {
    rethrow_if_exception();
    return std::move(std::get<0>(v_));
  }

 private:
  void rethrow_if_exception() const {
    if (has_exception()) std::rethrow_exception(std::get<1>(v_));
  }
  std::variant<T, std::exception_ptr> v_;
};

template <>
class Outcome<void> {
 public:
  Outcome() noexcept = default;
  explicit Outcome(std::exception_ptr e) noexcept : e_(std::move(e)) {}

  bool has_value() const noexcept { return !e_; }
  explicit operator bool() const noexcept { return has_value(); }
  bool has_exception() const noexcept { return static_cast<bool>(e_); }
  template <class E>
  bool has_exception() const noexcept {
    return exception_is<E>(e_);
  }
  bool cancelled() const noexcept { return has_exception<CancelledError>(); }
  std::exception_ptr exception() const noexcept { return e_; }
  // Returns if the awaited thing succeeded, else rethrows its exception.
  void value() const {
    if (e_) std::rethrow_exception(e_);
  }

 private:
  std::exception_ptr e_;
};

}  // namespace corio
