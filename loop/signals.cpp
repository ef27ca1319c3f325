#include "loop/signals.hpp"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <system_error>

namespace corio::detail {
namespace {

constexpr int kMaxSignal = SignalState::kMaxSignal;
std::atomic<int> g_wake_fd{-1};
std::atomic<unsigned long long> g_pending{0};
std::atomic<unsigned> g_counts[SignalState::kMaxSignal + 1];
std::atomic<bool> g_immediate_exit{false};
std::atomic<unsigned> g_count_interrupts{0};  // interrupt_bit() of each signal counted
std::atomic<int> g_interrupts{0};
static_assert(std::atomic<int>::is_always_lock_free && std::atomic<bool>::is_always_lock_free && std::atomic<unsigned>::is_always_lock_free);
// g_count_interrupts' bit for SIGINT or SIGTERM.
constexpr unsigned interrupt_bit(int sig) noexcept { return sig == SIGINT ? 1u : sig == SIGTERM ? 2u : 0u; }
struct sigaction g_saved[kMaxSignal + 1];
bool g_installed[kMaxSignal + 1];
bool g_was_blocked[kMaxSignal + 1];  // install() unblocked it in the calling thread

void write_str(const char* s) noexcept {
  ssize_t r = ::write(STDERR_FILENO, s, std::strlen(s));
  (void)r;
}

extern "C" void corio_on_signal(int sig) {
  int saved_errno = errno;  // the interrupted code must not see ours
  // The second interrupt, whether or not the loop dispatched the first
  // (lock-free atomics: async-signal-safe).
  if ((sig == SIGINT || sig == SIGTERM) &&
      (g_immediate_exit.load(std::memory_order_relaxed) ||
       ((g_count_interrupts.load(std::memory_order_relaxed) & interrupt_bit(sig)) &&
        g_interrupts.fetch_add(1, std::memory_order_relaxed) >= 1))) {
    write_str(sig == SIGINT ? "\ncorio: second SIGINT during shutdown, exiting now\n"
                            : "\ncorio: second SIGTERM during shutdown, exiting now\n");
    ::_exit(128 + sig);
  }
  if (sig > 0 && sig <= kMaxSignal) {
    g_counts[sig].fetch_add(1, std::memory_order_relaxed);
    g_pending.fetch_or(1ull << (sig - 1), std::memory_order_relaxed);
  }
  int fd = g_wake_fd.load(std::memory_order_relaxed);
  if (fd >= 0) {
    unsigned long long one = 1;
    ssize_t r = ::write(fd, &one, sizeof one);
    (void)r;
  }
  errno = saved_errno;
}

}  // namespace

void SignalState::install(int sig) {
  if (g_installed[sig]) return;
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = &corio_on_signal;
  sa.sa_flags = SA_RESTART;
  sigfillset(&sa.sa_mask);
  if (::sigaction(sig, &sa, &g_saved[sig]) < 0) {
    throw std::system_error(errno, std::system_category(), std::string("sigaction ") + signal_name(sig));
  }
  // The signal may be blocked in this thread (inherited mask): unblock it so
  // the loop thread can receive it.
  sigset_t set, old;
  sigemptyset(&set);
  sigaddset(&set, sig);
  pthread_sigmask(SIG_UNBLOCK, &set, &old);
  g_was_blocked[sig] = sigismember(&old, sig) == 1;
  g_installed[sig] = true;
}

void SignalState::uninstall(int sig) {
  if (!g_installed[sig]) return;
  ::sigaction(sig, &g_saved[sig], nullptr);
  // Blocked again if install() unblocked it: a program that blocks a signal
  // to take it with sigwait() or a signalfd gets its mask back.
  if (g_was_blocked[sig]) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    g_was_blocked[sig] = false;
  }
  g_installed[sig] = false;
}

bool SignalState::installed(int sig) noexcept { return sig > 0 && sig <= kMaxSignal && g_installed[sig]; }
void SignalState::set_wake_fd(int fd) noexcept { g_wake_fd.store(fd, std::memory_order_seq_cst); }
int SignalState::wake_fd() noexcept { return g_wake_fd.load(std::memory_order_seq_cst); }
unsigned long long SignalState::take_pending() noexcept { return g_pending.exchange(0, std::memory_order_acq_rel); }
unsigned SignalState::take_count(int sig) noexcept { return g_counts[sig].exchange(0, std::memory_order_acq_rel); }
void SignalState::arm_immediate_exit() noexcept { g_immediate_exit.store(true); }
void SignalState::disarm_immediate_exit() noexcept { g_immediate_exit.store(false); }
void SignalState::count_interrupts(bool on) noexcept {
  g_interrupts.store(0);
  g_count_interrupts.store(on ? interrupt_bit(SIGINT) | interrupt_bit(SIGTERM) : 0u);
}
void SignalState::stop_counting(int sig) noexcept { g_count_interrupts.fetch_and(~interrupt_bit(sig)); }

const char* signal_name(int sig) noexcept {
  switch (sig) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    case SIGQUIT: return "SIGQUIT";
    case SIGHUP: return "SIGHUP";
    case SIGUSR1: return "SIGUSR1";
    case SIGUSR2: return "SIGUSR2";
    case SIGCHLD: return "SIGCHLD";
    case SIGPIPE: return "SIGPIPE";
    case SIGALRM: return "SIGALRM";
    case SIGWINCH: return "SIGWINCH";
    default: return "signal";
  }
}

}  // namespace corio::detail
