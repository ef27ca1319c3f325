#include "net/dns.hpp"

#include <netdb.h>

#include <cerrno>
#include <memory>
#include <mutex>
#include <thread>

#include "coro/task_base.hpp"
#include "loop/event_loop.hpp"
#include "net/errors.hpp"

namespace corio {

namespace {

// What getaddrinfo answered: addresses, or an EAI_* code (with errno for EAI_SYSTEM).
struct Answer {
  std::vector<SocketAddress> addrs;
  int gai_error = 0;
  int sys_errno = 0;
};

Answer blocking_lookup(const std::string& host, std::uint16_t port, const ResolveOptions& opts) {
  addrinfo hints{};
  hints.ai_family = opts.family;
  hints.ai_socktype = opts.type;
  hints.ai_flags = opts.passive ? AI_PASSIVE : 0;
  std::string service = std::to_string(port);
  addrinfo* res = nullptr;
  Answer a;
  a.gai_error = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &res);
  if (a.gai_error != 0) {
    a.sys_errno = errno;
    return a;
  }
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    SocketAddress s = SocketAddress::from_sockaddr(ai->ai_addr, ai->ai_addrlen);
    bool dup = false;
    for (const SocketAddress& seen : a.addrs) dup = dup || seen == s;
    if (!dup) a.addrs.push_back(s);
  }
  ::freeaddrinfo(res);
  return a;
}

// Shared by the lookup thread and the awaiting task.
// Invariant: loop is non-null while a task may still want the answer; the
// thread posts only while holding mu and seeing it non-null, and the waiter
// clears it (under mu) before it can be destroyed — so the thread never
// touches a loop that is gone or a task that stopped waiting.
struct Lookup {
  std::mutex mu;
  EventLoop* loop = nullptr;
  // Loop thread only:
  TaskBase* waiter = nullptr;
  bool done = false;
  Answer answer;
};

class LookupAwaiter final : public CancelHook {
 public:
  explicit LookupAwaiter(std::shared_ptr<Lookup> l) noexcept : l_(std::move(l)) {}
  LookupAwaiter(const LookupAwaiter&) = delete;
  ~LookupAwaiter() { abandon(); }

  bool await_ready() const noexcept { return l_->done; }
  bool await_suspend(std::coroutine_handle<> h) {
    task_ = &TaskBase::current_checked("resolve()");
    if (task_->take_pending_cancel()) {
      cancelled_ = true;
      return false;
    }
    l_->waiter = task_;
    task_->suspend(h, this, "resolve");
    return true;
  }
  Answer await_resume() {
    if (cancelled_) task_->throw_cancelled();
    return std::move(l_->answer);
  }
  bool on_cancel(TaskBase&) noexcept override {
    l_->waiter = nullptr;
    cancelled_ = true;
    abandon();
    task_->wake();
    return true;
  }

 private:
  void abandon() noexcept {
    std::lock_guard<std::mutex> g(l_->mu);
    l_->loop = nullptr;
  }
  std::shared_ptr<Lookup> l_;
  TaskBase* task_ = nullptr;
  bool cancelled_ = false;
};

// Runs getaddrinfo on a short-lived thread and awaits its answer. The one
// place that knows how resolution is taken off the loop thread.
Task<Answer> lookup_off_loop(std::string host, std::uint16_t port, ResolveOptions opts) {
  auto l = std::make_shared<Lookup>();
  l->loop = &EventLoop::current();
  std::thread([l, host, port, opts] {
    Answer a = blocking_lookup(host, port, opts);
    std::lock_guard<std::mutex> g(l->mu);
    if (!l->loop) return;
    l->loop->call_soon_threadsafe([l, a = std::move(a)]() mutable {
      l->answer = std::move(a);
      l->done = true;
      if (TaskBase* t = std::exchange(l->waiter, nullptr)) t->wake();
    });
  }).detach();
  co_return co_await LookupAwaiter(l);
}

}  // namespace

Task<std::vector<SocketAddress>> resolve(std::string host, std::uint16_t port, ResolveOptions opts) {
  if (auto a = SocketAddress::try_parse(host, port)) {
    if (opts.family != AF_UNSPEC && a->family() != opts.family) {
      throw NameNotFoundError(EAI_ADDRFAMILY, host);
    }
    co_return std::vector<SocketAddress>{*a};
  }
  // A bracketed IPv6 literal, as users copy it from URLs.
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    if (auto a = SocketAddress::try_parse(std::string_view(host).substr(1, host.size() - 2), port)) {
      co_return std::vector<SocketAddress>{*a};
    }
  }
  if (host.empty() && opts.passive) {
    std::vector<SocketAddress> all;
    if (opts.family != AF_INET6) all.push_back(SocketAddress::any(AF_INET, port));
    if (opts.family != AF_INET) all.push_back(SocketAddress::any(AF_INET6, port));
    co_return all;
  }
  Answer a = co_await lookup_off_loop(host, port, opts);
  if (a.gai_error == EAI_SYSTEM) throw OSError(a.sys_errno, "getaddrinfo " + host);
  if (a.gai_error != 0) throw NameNotFoundError(a.gai_error, host);
  if (a.addrs.empty()) throw NameNotFoundError(EAI_NONAME, host);
  co_return std::move(a.addrs);
}

}  // namespace corio
