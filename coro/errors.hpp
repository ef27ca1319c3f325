#pragma once
// corio's exception types.
//
// CancelledError deliberately does not derive from std::exception: asyncio made
// CancelledError a BaseException so that `except Exception:` does not swallow
// cancellation, and `catch (const std::exception&)` must not either. Catch it
// by name (or with `catch (...)` followed by a rethrow).
#include <stdexcept>
#include <string>

namespace corio {

class CancelledError {
 public:
  CancelledError() = default;
  explicit CancelledError(std::string msg) : msg_(std::move(msg)) {}
  // The message passed to cancel(msg); empty when none was given.
  const std::string& message() const noexcept { return msg_; }
  const char* what() const noexcept { return msg_.empty() ? "task was cancelled" : msg_.c_str(); }

 private:
  std::string msg_;
};

// A deadline passed (wait_for, timeout scopes, connect timeouts).
class TimeoutError : public std::runtime_error {
 public:
  explicit TimeoutError(const std::string& what = "operation timed out") : std::runtime_error(what) {}
};

// An operation was asked of an object in the wrong state (asyncio's InvalidStateError):
// the result of a task that is not done, a second awaiter of a single-consumer thing, …
class InvalidStateError : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

// A value is out of range for the operation (Python's ValueError): a negative
// Semaphore value, a Barrier of 0 parties, a BoundedSemaphore released more
// often than acquired, Queue.task_done() called too many times, wait() on an
// empty set, an ExceptionGroup of no exceptions. Derives from
// std::invalid_argument so both spellings catch it.
class ValueError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// No event loop is running in this thread (asyncio raises RuntimeError here).
class NoRunningLoopError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace corio
