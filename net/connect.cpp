#include "net/connect.hpp"

#include <algorithm>
#include <cerrno>
#include <stdexcept>

#include "coro/task_base.hpp"
#include "coro/task_group.hpp"
#include "coro/timeout.hpp"
#include "net/dns.hpp"

namespace corio {

namespace {

class RaceWait;

// One connect_happy_eyeballs() call: the attempts' shared state, in the
// calling coroutine's frame (the attempts are children of a TaskGroup that
// ends before the frame does).
// Invariants: ended[i] is set once attempt i finished (won, failed, or found
// a winner already there); errors[i] is its failure, if any. winner holds
// the first connected socket; a later one is closed by its attempt.
struct Race {
  Race(std::vector<SocketAddress> a, ConnectOptions o)
      : addrs(std::move(a)), opts(std::move(o)), errors(addrs.size()), ended(addrs.size(), false) {}

  std::vector<SocketAddress> addrs;
  ConnectOptions opts;
  std::optional<Socket> winner;
  std::vector<std::exception_ptr> errors;
  std::vector<bool> ended;
  std::size_t started = 0;
  RaceWait* waiter = nullptr;  // the staggering body, while it waits
};

// Suspends the staggering body until an attempt ends (notify()) or the
// Connection Attempt Delay passes (deadline; nullopt: no delay).
// Cancellation: CancelledError (a winner cancels the body through its group).
class RaceWait final : public CancelHook {
 public:
  RaceWait(Race& race, std::optional<TimePoint> deadline) noexcept : race_(race), deadline_(deadline) {
    node_.fire = &RaceWait::fired;
    node_.ctx = this;
  }
  RaceWait(const RaceWait&) = delete;
  ~RaceWait() { disarm(); }

  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> h) {
    task_ = &TaskBase::current_checked("connect_happy_eyeballs()");
    if (task_->take_pending_cancel()) {
      cancelled_ = true;
      return false;
    }
    if (deadline_) {
      node_.deadline = *deadline_;
      task_->scheduler().add_timer(node_);
    }
    race_.waiter = this;
    task_->suspend(h, this, "Happy Eyeballs: waiting to start the next attempt");
    return true;
  }
  void await_resume() const {
    // Nothing is handed over on wake-up: a cancel that came after it is thrown here.
    if (cancelled_ || task_->take_pending_cancel()) task_->throw_cancelled();
  }
  bool on_cancel(TaskBase&) noexcept override {
    disarm();
    cancelled_ = true;
    task_->wake();
    return true;
  }
  // An attempt ended.
  void notify() noexcept {
    disarm();
    task_->wake();
  }

 private:
  void disarm() noexcept {
    if (node_.armed()) task_->scheduler().cancel_timer(node_);
    if (race_.waiter == this) race_.waiter = nullptr;
  }
  static void fired(detail::TimerNode* n) noexcept {
    auto* self = static_cast<RaceWait*>(n->ctx);
    if (self->race_.waiter == self) self->race_.waiter = nullptr;
    self->task_->wake();
  }

  Race& race_;
  std::optional<TimePoint> deadline_;
  detail::TimerNode node_;
  TaskBase* task_ = nullptr;
  bool cancelled_ = false;
};

// One connection attempt, a child of the race's group. Failures are recorded,
// not thrown: they must not cancel the siblings (a group's first error would).
Task<void> attempt(Race& race, std::size_t i, TaskGroup& tg) {
  std::exception_ptr err;
  try {
    const SocketAddress& addr = race.addrs[i];
    Socket s = Socket::create(addr.family(), SOCK_STREAM);
    if (race.opts.local_address) s.bind(*race.opts.local_address);
    if (race.opts.connect_timeout) co_await s.connect(addr, *race.opts.connect_timeout);
    else co_await s.connect(addr);
    if (!race.winner) {
      race.winner.emplace(std::move(s));
      tg.cancel();  // the other attempts and the staggering body; the group ends quietly
    }
    // Else another attempt won in the same instant (its cancel came after the
    // kernel connected this one): `s` loses and is closed here.
  } catch (const CancelledError&) {
    throw;  // a loser: its socket was closed once the kernel let go of it
  } catch (...) {
    err = std::current_exception();
  }
  race.errors[i] = err;
  race.ended[i] = true;
  if (RaceWait* w = race.waiter) w->notify();
}

// The group's body: starts attempt after attempt, each when the previous one
// failed or the delay after its start passed.
Task<void> stagger(Race& race, TaskGroup& tg) {
  const std::size_t n = race.addrs.size();
  for (std::size_t i = 0; i < n; ++i) {
    tg.create_task(attempt(race, i, tg), "connect " + race.addrs[i].to_string());
    race.started = i + 1;
    if (i + 1 == n) break;
    std::optional<TimePoint> deadline;
    if (race.opts.happy_eyeballs_delay) deadline = detail::deadline_after(EventLoop::current().now(), *race.opts.happy_eyeballs_delay);
    while (!race.ended[i] && !race.winner && (!deadline || EventLoop::current().now() < *deadline)) {
      co_await RaceWait(race, deadline);
    }
    if (race.winner) break;
  }
}

Task<void> run_race(Race& race) {
  co_await task_group([&race](TaskGroup& tg) { return stagger(race, tg); });
}

std::string millis(Duration d) {
  return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
}

// errno of a failed attempt: OSError's, ETIMEDOUT for a deadline, -1 otherwise.
int kind_of(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const OSError& x) {
    return x.errno_value();
  } catch (const TimeoutError&) {
    return ETIMEDOUT;
  } catch (...) {
    return -1;
  }
}

// "127.0.0.1:80: Connection refused" from "connect 127.0.0.1:80: Connection refused".
std::string reason_of(const std::exception_ptr& e, const SocketAddress& addr) {
  std::string what;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    what = x.what();
  } catch (...) {
    what = "unknown error";
  }
  const std::string prefix = "connect " + addr.to_string() + ": ";
  if (what.rfind(prefix, 0) == 0) return addr.to_string() + ": " + what.substr(prefix.size());
  return addr.to_string() + ": " + what;
}

// Every attempt failed: one error that names them all (see the header).
[[noreturn]] void throw_all_failed(Race& race, const std::string& target) {
  std::vector<ConnectAttemptsError::Attempt> attempts;
  for (std::size_t i = 0; i < race.started; ++i) {
    if (race.errors[i]) attempts.push_back({race.addrs[i], race.errors[i]});
  }
  if (attempts.size() == 1) std::rethrow_exception(attempts.front().error);
  std::string tried;
  for (const auto& a : attempts) {
    if (!tried.empty()) tried += ", ";
    tried += a.address.to_string();
  }
  const std::string where = target.empty() ? tried : target + " (tried " + tried + ")";
  std::vector<int> kinds;
  for (const auto& a : attempts) kinds.push_back(kind_of(a.error));
  bool same = kinds.front() > 0;
  for (int k : kinds) same = same && k == kinds.front();
  if (same && kinds.front() == ETIMEDOUT) {
    throw ConnectTimeoutError(where, race.opts.connect_timeout
                                         ? "timed out after " + millis(*race.opts.connect_timeout) + " ms"
                                         : std::string("Connection timed out"));
  }
  if (same) throw_os_error(kinds.front(), "connect", where);
  std::string list;
  for (const auto& a : attempts) {
    if (!list.empty()) list += "; ";
    list += reason_of(a.error, a.address);
  }
  int first = 0;
  for (int k : kinds) {
    if (k > 0) {
      first = k;
      break;
    }
  }
  throw ConnectAttemptsError(first ? first : EIO,
                             "connect " + (target.empty() ? tried : target) + ": every address failed (" + list +
                                 "); first error",
                             std::move(attempts));
}

std::string host_port(const std::string& host, std::uint16_t port) {
  if (host.find(':') != std::string::npos && host.front() != '[') return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

Task<Socket> resolve_and_connect(std::string host, std::uint16_t port, ConnectOptions opts, std::string target) {
  ResolveOptions ro;
  ro.family = opts.family;
  std::vector<SocketAddress> addrs = co_await resolve(host, port, ro);
  if (opts.happy_eyeballs_delay) addrs = interleave_addresses(std::move(addrs), opts.interleave);
  co_return co_await connect_happy_eyeballs(std::move(addrs), std::move(opts), std::move(target));
}

}  // namespace

std::vector<SocketAddress> interleave_addresses(std::vector<SocketAddress> addrs, std::size_t first_family_count) {
  // Group by family, in order of first appearance.
  std::vector<std::vector<SocketAddress>> families;
  for (SocketAddress& a : addrs) {
    auto it = std::find_if(families.begin(), families.end(),
                           [&](const std::vector<SocketAddress>& f) { return f.front().family() == a.family(); });
    if (it == families.end()) it = families.emplace(families.end());
    it->push_back(a);
  }
  std::vector<SocketAddress> out;
  out.reserve(addrs.size());
  std::vector<std::size_t> next(families.size(), 0);
  if (!families.empty()) {
    // The preferred family's head start: all but one of its first count go
    // first, then round-robin begins with that family again (asyncio's rule).
    std::size_t head = first_family_count > 1 ? first_family_count - 1 : 0;
    for (; next[0] < families[0].size() && head > 0; --head) out.push_back(families[0][next[0]++]);
  }
  for (bool more = true; more;) {
    more = false;
    for (std::size_t f = 0; f < families.size(); ++f) {
      if (next[f] < families[f].size()) {
        out.push_back(families[f][next[f]++]);
        more = true;
      }
    }
  }
  return out;
}

Task<Socket> connect_happy_eyeballs(std::vector<SocketAddress> addrs, ConnectOptions opts, std::string target) {
  if (addrs.empty()) throw std::invalid_argument("connect_happy_eyeballs: no address to connect to");
  Race race(std::move(addrs), std::move(opts));
  if (race.opts.timeout) {
    const Duration limit = *race.opts.timeout;
    Timeout scope = timeout(limit);
    bool expired = false;
    try {
      co_await scope.run(run_race(race));
    } catch (const TimeoutError&) {
      if (!scope.expired()) throw;
      expired = true;
    }
    if (expired) {
      std::string what = target;
      if (what.empty()) {
        for (std::size_t i = 0; i < race.addrs.size(); ++i) {
          if (i) what += ", ";
          what += race.addrs[i].to_string();
        }
      }
      throw ConnectTimeoutError(what, "timed out after " + millis(limit) + " ms");
    }
  } else {
    co_await run_race(race);
  }
  if (race.winner) co_return std::move(*race.winner);
  throw_all_failed(race, target);
}

Task<Socket> create_connection(std::string host, std::uint16_t port, ConnectOptions opts) {
  std::string target = host_port(host, port);
  if (!opts.timeout) co_return co_await resolve_and_connect(std::move(host), port, std::move(opts), target);
  // The limit covers resolution too, so it is enforced here, around both.
  const Duration limit = *opts.timeout;
  opts.timeout.reset();
  Timeout scope = timeout(limit);
  std::optional<Socket> s;
  bool expired = false;
  try {
    s.emplace(co_await scope.run(resolve_and_connect(std::move(host), port, std::move(opts), target)));
  } catch (const TimeoutError&) {
    if (!scope.expired()) throw;
    expired = true;
  }
  if (expired) throw ConnectTimeoutError(target, "timed out after " + millis(limit) + " ms");
  co_return std::move(*s);
}

}  // namespace corio
