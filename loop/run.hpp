#pragma once
// corio::run(main()): asyncio.run for corio.
//
// Creates an EventLoop, runs `main` as a task named "main" until it is done,
// then cancels every task still pending and runs the loop until they finish
// (their cleanup may await), runs the loop's shutdown hooks (the default
// executor is shut down there), closes the loop, and returns main's value or
// rethrows main's exception (CancelledError if main was cancelled).
//
// Signals (RunOptions::handle_signals, on by default):
// - The first SIGINT or SIGTERM sets the loop's shutdown_event() and (with the
//   default SignalPolicy::cancel_main, asyncio's behaviour) cancels main with
//   the message "interrupted by SIGINT" (or SIGTERM). With
//   SignalPolicy::request_shutdown main is left to finish on its own (a
//   server stops accepting and drains) and is cancelled only if it has not
//   finished after shutdown_grace. Cleanup runs: catch handlers, RAII, awaits
//   in cleanup, then the leftover tasks are cancelled and awaited and the
//   executor is shut down, cancelling work not yet started.
// - Then the process exits with status 128 + signal: 130 for SIGINT, 143 for
//   SIGTERM (the shell convention). With exit_on_signal = false, run() throws
//   SignalExit instead, so a program can choose its own status.
// - A second SIGINT or SIGTERM while that shutdown runs exits at once
//   (status 130/143) with one line on stderr — even if the loop is stuck.
// - SIGQUIT (Ctrl+\) prints dump_tasks() to stderr and the program goes on.
#include <chrono>
#include <stdexcept>
#include <string>
#include <utility>

#include "coro/task.hpp"
#include "coro/task_handle.hpp"
#include "loop/event_loop.hpp"

namespace corio {

enum class SignalPolicy { cancel_main, request_shutdown };

struct RunOptions {
  LoopOptions loop;
  bool handle_signals = true;
  SignalPolicy on_signal = SignalPolicy::cancel_main;
  // After a SIGINT/SIGTERM shutdown: exit the process with 128 + signal (true)
  // or throw SignalExit from run() (false).
  bool exit_on_signal = true;
  // How long shutdown waits: for main to finish after request_shutdown, and
  // for executor threads still running blocking work. Past it those threads
  // are abandoned: the process exits while they run (threads cannot be
  // killed; the kernel ends them with the process).
  std::chrono::milliseconds shutdown_grace{2000};
};

// Thrown by run() after a signal-initiated shutdown when exit_on_signal is false.
class SignalExit : public std::runtime_error {
 public:
  explicit SignalExit(int sig);
  int signal() const noexcept { return sig_; }
  int exit_status() const noexcept { return 128 + sig_; }

 private:
  int sig_;
};

// The running loop's shutdown token (see EventLoop::shutdown_event).
inline Event& shutdown_event() { return EventLoop::current().shutdown_event(); }

// The loop running on this thread's tasks, printed (debug aid, as SIGQUIT does).
void dump_tasks(std::FILE* out = stderr);

namespace detail {
// The signal-aware part of run(): installs handlers, cancels main on the first
// signal, and performs the shutdown sequence.
class RunGuard {
 public:
  RunGuard(EventLoop& loop, const RunOptions& opts);
  ~RunGuard();
  RunGuard(const RunGuard&) = delete;
  void set_main(TaskBase& main) noexcept { main_ = &main; }
  // Cancel and drain leftover tasks, run shutdown hooks, remove handlers.
  void finish();
  int signal() const noexcept { return signal_; }

 private:
  void on_interrupt(int sig);
  EventLoop& loop_;
  const RunOptions& opts_;
  TaskBase* main_ = nullptr;
  int signal_ = 0;
  bool finished_ = false;
};
// Owns run()'s loop. Deletes it at the end, unless executor threads were
// abandoned past the grace period: their completions will still be posted
// to the loop, so it is then left allocated on purpose (one line on stderr
// says so).
class LoopHolder {
 public:
  explicit LoopHolder(const RunOptions& opts);
  ~LoopHolder();
  LoopHolder(const LoopHolder&) = delete;
  EventLoop& get() noexcept { return *loop_; }
  std::size_t abandoned() const noexcept { return loop_->threads_abandoned(); }

 private:
  EventLoop* loop_;
};
// After a signal-initiated shutdown: exit (std::exit; _exit if threads were
// abandoned, as static destructors must not run under them) or return to throw.
void after_signal(int sig, const RunOptions& opts, std::size_t abandoned);
}  // namespace detail

template <class T>
T run(Task<T> main, RunOptions opts = {}) {
  int sig = 0;
  std::size_t abandoned = 0;
  {
    detail::LoopHolder holder(opts);
    EventLoop& loop = holder.get();
    detail::RunGuard guard(loop, opts);
    TaskHandle<T> h = create_task_on(loop, std::move(main), "main");
    guard.set_main(h.base());
    try {
      loop.run_until_done(h.base());
    } catch (...) {
      guard.finish();
      throw;
    }
    guard.finish();
    sig = guard.signal();
    abandoned = holder.abandoned();
    if (!sig) {
      if constexpr (std::is_void_v<T>) {
        h.result();
        return;
      } else {
        return std::move(h.result());
      }
    }
    if (h.base().state() == TaskBase::State::failed) (void)h.exception();  // reported as interrupted, not lost
  }
  detail::after_signal(sig, opts, abandoned);
  throw SignalExit(sig);  // not reached when after_signal exits
}

}  // namespace corio
