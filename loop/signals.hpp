#pragma once
// Signal delivery into the loop (asyncio's add_signal_handler).
//
// A C signal handler does only async-signal-safe work: it sets the signal's
// bit in a process-wide pending mask and writes the listening loop's eventfd.
// The loop reads that eventfd through its backend (a read on the ring under
// io_uring) and runs the Python-style handlers as ordinary callbacks on its
// own thread — whichever thread the kernel delivered the signal to. Worker
// threads of the executor block signals, so they are delivered elsewhere.
//
// One loop at a time owns signal handling in a process (asyncio: the main
// thread's loop); a second loop adding a handler gets InvalidStateError.
#include <csignal>

namespace corio::detail {

// Process-wide state shared with the C handler.
struct SignalState {
  static constexpr int kMaxSignal = 64;  // SIGRTMAX on Linux: signals are 1..64
  static void install(int sig);    // sigaction -> our handler (saving the old action)
  static void uninstall(int sig);  // restore the saved action
  static bool installed(int sig) noexcept;
  static void set_wake_fd(int fd) noexcept;
  static int wake_fd() noexcept;
  static unsigned long long take_pending() noexcept;  // bit sig - 1 for each signal, cleared
  // How many times sig arrived since the last call (after take_pending showed its bit).
  static unsigned take_count(int sig) noexcept;
  // After this, the next SIGINT (or SIGTERM) makes the C handler print one
  // line and _exit(128 + sig) at once: the escape hatch when a graceful
  // shutdown hangs. Works even if the loop thread is stuck.
  static void arm_immediate_exit() noexcept;
  static void disarm_immediate_exit() noexcept;
  // While on (corio::run's interrupt handling), the C handler counts the
  // SIGINTs and SIGTERMs that arrive and takes the second as the escape
  // hatch itself: a loop stuck before it ever dispatched the first one
  // (a task that never yields) could not arm it. Turning it on resets the count.
  static void count_interrupts(bool on) noexcept;
  // `sig` is no longer corio::run's to handle (a handler replaced or removed
  // it): the C handler stops counting it as an interrupt.
  static void stop_counting(int sig) noexcept;
};

// "SIGINT" for SIGINT, "signal 40" for others.
const char* signal_name(int sig) noexcept;

}  // namespace corio::detail
