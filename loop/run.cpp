#include "loop/run.hpp"

#include <csignal>
#include <cstdio>
#include <cstdlib>

#include <unistd.h>

#include "loop/signals.hpp"

namespace corio {

SignalExit::SignalExit(int sig)
    : std::runtime_error(std::string("interrupted by ") + detail::signal_name(sig)), sig_(sig) {}

void dump_tasks(std::FILE* out) {
  EventLoop* loop = EventLoop::current_or_null();
  std::string text = loop ? loop->dump_tasks() : "corio: no running event loop\n";
  std::fputs(text.c_str(), out);
  std::fflush(out);
}

namespace detail {

RunGuard::RunGuard(EventLoop& loop, const RunOptions& opts) : loop_(loop), opts_(opts) {
  if (!opts.handle_signals) return;
  loop.add_signal_handler(SIGINT, [this] { on_interrupt(SIGINT); });
  loop.add_signal_handler(SIGTERM, [this] { on_interrupt(SIGTERM); });
  SignalState::count_interrupts(true);
  loop.add_signal_handler(SIGQUIT, [&loop] {
    std::string text = loop.dump_tasks();
    std::fputs(text.c_str(), stderr);
    std::fflush(stderr);
  });
}

RunGuard::~RunGuard() {
  SignalState::disarm_immediate_exit();
  if (opts_.handle_signals) SignalState::count_interrupts(false);
  if (opts_.handle_signals) {
    loop_.remove_signal_handler(SIGINT);
    loop_.remove_signal_handler(SIGTERM);
    loop_.remove_signal_handler(SIGQUIT);
  }
}

void RunGuard::on_interrupt(int sig) {
  if (signal_) return;  // the C handler exits on the second one
  signal_ = sig;
  SignalState::arm_immediate_exit();
  loop_.request_shutdown();
  std::string msg = std::string("interrupted by ") + signal_name(sig);
  if (opts_.on_signal == SignalPolicy::cancel_main) {
    if (main_ && !main_->done()) main_->cancel(msg);
    return;
  }
  // request_shutdown: main drains on its own, within the grace period. The
  // guard (and run()'s handle on main) outlive the loop's run, so `this` is safe.
  loop_.call_later(opts_.shutdown_grace, [this, msg] {
    if (main_ && !main_->done()) main_->cancel(msg + " (shutdown grace period over)");
  });
}

void RunGuard::finish() {
  if (finished_) return;
  finished_ = true;
  loop_.cancel_all_tasks(signal_ ? std::string("interrupted by ") + signal_name(signal_)
                                 : std::string("event loop is shutting down"));
  loop_.run_shutdown_hooks();
}

namespace {
// asyncio.run's first check: a nested run would block the outer loop (and,
// handling signals, fail on the outer loop's handlers with a message that
// does not name the cause).
EventLoop* new_loop(const RunOptions& opts) {
  if (EventLoop* outer = EventLoop::current_or_null(); outer && outer->is_running())
    throw InvalidStateError("corio::run() cannot be called from a running event loop");
  return new EventLoop(opts.loop);
}
}  // namespace

LoopHolder::LoopHolder(const RunOptions& opts) : loop_(new_loop(opts)) {
  loop_->set_shutdown_grace(opts.shutdown_grace);
}

LoopHolder::~LoopHolder() {
  if (std::size_t n = loop_->threads_abandoned()) {
    std::fprintf(stderr,
                 "corio: %zu thread(s) still running blocking work after the shutdown grace period; "
                 "abandoned (their results are discarded; they end with the process)\n",
                 n);
    return;  // the loop stays allocated: those threads will post to it
  }
  delete loop_;
}

void after_signal(int sig, const RunOptions& opts, std::size_t abandoned) {
  SignalState::disarm_immediate_exit();
  if (!opts.exit_on_signal) return;
  std::fflush(nullptr);
  if (abandoned) ::_exit(128 + sig);  // no static destructors under running threads
  std::exit(128 + sig);
}

}  // namespace detail
}  // namespace corio
