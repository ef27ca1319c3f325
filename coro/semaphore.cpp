#include "coro/semaphore.hpp"

#include <string>

namespace corio {

namespace {
std::size_t checked_value(std::ptrdiff_t value) {
  if (value < 0) throw ValueError("Semaphore initial value must be >= 0, got " + std::to_string(value));
  return static_cast<std::size_t>(value);
}
}  // namespace

Semaphore::Semaphore(std::ptrdiff_t value) : value_(checked_value(value)), bound_(std::numeric_limits<std::size_t>::max()) {}

Semaphore::Semaphore(std::ptrdiff_t value, bool bounded)
    : value_(checked_value(value)), bound_(bounded ? value_ : std::numeric_limits<std::size_t>::max()) {}

void Semaphore::release() {
  // With waiters value_ is 0, so a bounded semaphore with a non-zero bound
  // always accepts a release that serves a waiter (asyncio's check).
  if (value_ >= bound_) throw ValueError("BoundedSemaphore released too many times");
  give_back();
}

void Semaphore::give_back() noexcept {
  if (AcquireAwaiter* w = waiters_.pop_front()) w->task_->wake();
  else ++value_;
}

}  // namespace corio
