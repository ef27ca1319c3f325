#pragma once
// Helpers for tests where plain threads meet the loop or a pool: a one-shot
// gate and a bounded wait for a condition another thread makes true.
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

#include "coro/scheduler.hpp"

namespace corio::test {

// A one-shot gate for worker threads: wait() blocks until open() (or 10 s,
// so that no test can hang) and says whether it was opened.
class Gate {
 public:
  void open() {
    std::lock_guard lk(mu_);
    open_ = true;
    cv_.notify_all();
  }
  bool wait() {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, std::chrono::seconds(10), [this] { return open_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

// Polls (bounded) until pred() holds; for the few checks that need a thread
// to get somewhere. False if it did not within `limit`.
template <class Pred>
bool eventually(Pred pred, Duration limit = std::chrono::seconds(10)) {
  auto until = Clock::now() + limit;
  while (!pred()) {
    if (Clock::now() > until) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  return true;
}

// An exception type of the tests' own, to check that type, message and
// payload cross threads intact.
struct AppError : std::runtime_error {
  AppError(const std::string& m, int c) : std::runtime_error(m), code(c) {}
  int code;
};

}  // namespace corio::test
