#pragma once
// ExceptionGroup: several exceptions raised together (asyncio's ExceptionGroup),
// what a TaskGroup throws when children or its body failed.
//
// Invariants:
// - exceptions() holds every sub-exception in the order they were recorded;
//   none is null. A sub-exception may itself be an ExceptionGroup (a nested
//   TaskGroup's), and the nesting is kept: nothing is flattened behind the
//   user's back. leaves() flattens on request.
// - what() is asyncio's text: "MESSAGE (N sub-exceptions)". details() adds one
//   line per sub-exception (recursively), for logs.
//
// C++ has no `except*`. The matching helpers below take its place:
//   contains<E>()    any sub-exception, at any depth, is an E
//   rethrow_if<E>()  rethrow the first such E (depth first) so that a plain
//                    `catch (const E&)` can handle it
//   split<E>()       (matching, rest) as groups with the same nesting, like
//                    Python's eg.split(E); either side may be empty
//   subgroup<E>()    the matching side only
// "Is an E" means `catch (const E&)` would catch it. A nested group that is
// itself an E (E = ExceptionGroup or a base of it) matches as a whole;
// otherwise the helpers look inside it.
#include <cstddef>
#include <exception>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace corio {

// True if `e` holds an exception that `catch (const E&)` would catch.
template <class E>
bool exception_is(const std::exception_ptr& e) noexcept {
  if (!e) return false;
  try {
    std::rethrow_exception(e);
  } catch (const E&) {
    return true;
  } catch (...) {
    return false;
  }
}

class ExceptionGroup : public std::exception {
 public:
  using const_iterator = std::vector<std::exception_ptr>::const_iterator;

  // Throws ValueError if `exceptions` is empty (as Python does), and
  // std::invalid_argument if it holds a null pointer (Python: TypeError).
  ExceptionGroup(std::string message, std::vector<std::exception_ptr> exceptions);

  const char* what() const noexcept override { return what_.c_str(); }
  // The message without the count ("unhandled errors in a TaskGroup").
  const std::string& message() const noexcept { return message_; }
  const std::vector<std::exception_ptr>& exceptions() const noexcept { return excs_; }
  std::size_t size() const noexcept { return excs_.size(); }
  const_iterator begin() const noexcept { return excs_.begin(); }
  const_iterator end() const noexcept { return excs_.end(); }
  const std::exception_ptr& operator[](std::size_t i) const { return excs_.at(i); }

  // Every non-group sub-exception, depth first.
  std::vector<std::exception_ptr> leaves() const;
  // what() followed by one indented line per sub-exception, nested groups
  // indented further ("  [1] std::runtime_error: boom").
  std::string details() const;

  template <class E>
  bool contains() const noexcept {
    for (const auto& e : excs_) {
      if (exception_is<E>(e)) return true;
      bool found = false;
      visit_group(e, [&](const ExceptionGroup& g) { found = g.contains<E>(); });
      if (found) return true;
    }
    return false;
  }

  // Rethrows the first sub-exception (depth first) that is an E; returns
  // normally if there is none.
  template <class E>
  void rethrow_if() const {
    for (const auto& e : excs_) {
      if (exception_is<E>(e)) std::rethrow_exception(e);
      visit_group(e, [](const ExceptionGroup& g) { g.rethrow_if<E>(); });
    }
  }

  // (the sub-exceptions that are E, the others), each side a group with this
  // group's message and the same nesting, or nullopt when that side is empty.
  template <class E>
  std::pair<std::optional<ExceptionGroup>, std::optional<ExceptionGroup>> split() const {
    std::vector<std::exception_ptr> match, rest;
    for (const auto& e : excs_) {
      if (exception_is<E>(e)) {
        match.push_back(e);
      } else if (!visit_group(e, [&](const ExceptionGroup& g) {
                   auto [m, r] = g.split<E>();
                   if (m) match.push_back(std::make_exception_ptr(std::move(*m)));
                   if (r) rest.push_back(std::make_exception_ptr(std::move(*r)));
                 })) {
        rest.push_back(e);
      }
    }
    return {make_side(std::move(match)), make_side(std::move(rest))};
  }

  template <class E>
  std::optional<ExceptionGroup> subgroup() const {
    return split<E>().first;
  }

 private:
  // If `e` holds an ExceptionGroup, call f(group) and return true. f runs
  // inside the catch handler: whether rethrow_exception copies the object is
  // unspecified, so no pointer to it is kept past the handler. f may throw.
  template <class F>
  static bool visit_group(const std::exception_ptr& e, F&& f) {
    try {
      std::rethrow_exception(e);
    } catch (const ExceptionGroup& g) {
      f(g);
      return true;
    } catch (...) {
    }
    return false;
  }
  std::optional<ExceptionGroup> make_side(std::vector<std::exception_ptr> v) const {
    if (v.empty()) return std::nullopt;
    return ExceptionGroup(message_, std::move(v));
  }
  void describe(std::string& out, int depth) const;

  std::string message_;
  std::string what_;
  std::vector<std::exception_ptr> excs_;
};

}  // namespace corio
