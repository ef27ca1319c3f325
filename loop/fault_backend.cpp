// The fault-injection layer (see fault_backend.hpp).
//
// Invariants:
// - recs_ holds one record per op submitted through this layer and not yet
//   finally completed to its owner; while it exists the op's complete/ctx are
//   this layer's (on_inner), except during the owner's callback for a
//   non-final shot. The record is erased before the final callback runs, so
//   the owner may resubmit the same IoOp from it.
// - held_ keeps completions in arrival order; an op's later completions are
//   due no earlier than its earlier ones, so each op sees its own in order.
// - A cancel is forwarded to the inner backend only while the inner op is
//   still running there (never for a completion already held, never for an
//   op that never reached it): the inner backend never sees a cancel for an
//   address that a later op may reuse. Held-back cancels carry the record's
//   generation for the same reason.
// - After cancel_all() (loop teardown) nothing new is injected.
#include "loop/fault_backend.hpp"

#include <sys/socket.h>
#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>
#include <unordered_map>
#include <vector>

namespace corio::detail {

namespace {

using Clock = std::chrono::steady_clock;

std::optional<FaultConfig> g_override;
bool g_override_set = false;
std::uint64_t g_loops = 0;  // loops made with a fault layer in this process

double env_double(const char* name, double dflt) {
  const char* e = std::getenv(name);
  if (!e || !*e) return dflt;
  char* end = nullptr;
  double v = std::strtod(e, &end);
  if (end == e || v < 0 || v > 1) {
    std::fprintf(stderr, "corio: %s must be a number in [0, 1], not '%s'; using %g\n", name, e, dflt);
    return dflt;
  }
  return v;
}

// Read at program start (before main, single-threaded), then taken out of
// the environment: the faults are for this process's loops, and child
// processes (the example programs the tests run, peers) must behave, and
// print, as usual — even when they are started before any loop exists.
std::optional<FaultConfig> read_env_config() {
  std::optional<FaultConfig> c;
  const char* s = std::getenv("CORIO_FAULT_SEED");
  if (!s || !*s) return c;
  c.emplace();
  c->seed = std::strtoull(s, nullptr, 10);
  c->rate = env_double("CORIO_FAULT_RATE", c->rate);
  c->hard_rate = env_double("CORIO_FAULT_HARD", 0.0);
  const char* em = std::getenv("CORIO_FAULT_EMFILE");
  c->emfile = em && *em && std::strcmp(em, "0") != 0;
  std::fprintf(stderr, "corio: fault injection on: CORIO_FAULT_SEED=%llu CORIO_FAULT_RATE=%g CORIO_FAULT_HARD=%g CORIO_FAULT_EMFILE=%d\n",
               static_cast<unsigned long long>(c->seed), c->rate, c->hard_rate, c->emfile ? 1 : 0);
  for (const char* name : {"CORIO_FAULT_SEED", "CORIO_FAULT_RATE", "CORIO_FAULT_HARD", "CORIO_FAULT_EMFILE"}) ::unsetenv(name);
  return c;
}
const std::optional<FaultConfig> g_env_config = read_env_config();

// splitmix64: tiny, seedable, good enough for fault decisions.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) noexcept : s_(seed) {}
  std::uint64_t next() noexcept {
    std::uint64_t z = (s_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  bool chance(double p) noexcept { return p > 0 && static_cast<double>(next() >> 11) * 0x1.0p-53 < p; }
  std::uint64_t below(std::uint64_t n) noexcept { return n ? next() % n : 0; }

 private:
  std::uint64_t s_;
};

bool is_byte_stream(int fd) noexcept {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return false;
  if (S_ISFIFO(st.st_mode) || S_ISREG(st.st_mode)) return true;
  if (!S_ISSOCK(st.st_mode)) return false;
  int type = 0;
  socklen_t len = sizeof type;
  return ::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM;
}

bool is_socket(int fd) noexcept {
  struct stat st {};
  return ::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

class FaultBackend final : public Backend {
 public:
  FaultBackend(std::unique_ptr<Backend> inner, const FaultConfig& cfg, std::uint64_t index)
      : inner_(std::move(inner)), cfg_(cfg), rng_(cfg.seed + index), trace_(std::getenv("CORIO_FAULT_TRACE") != nullptr) {}

  ~FaultBackend() override {
    // The loop waited for every op it counts; internal ops whose completion
    // we still hold are the loop's own and need no callback now.
  }

  BackendKind kind() const noexcept override { return inner_->kind(); }
  const char* name() const noexcept override { return inner_->name(); }
  const FaultStats& stats() const noexcept { return stats_; }

  bool submit(IoOp& op) noexcept override {
    if (op.kind == OpKind::nop || stopping_) return inner_->submit(op);
    ++stats_.ops;
    if (trace_) std::fprintf(stderr, "corio fault: submit %s fd %d\n", op_name(op.kind), op.fd);
    Rec rec;
    rec.complete = op.complete;
    rec.ctx = op.ctx;
    rec.len = op.len;
    rec.gen = ++gen_;
    // ---- faults instead of the op ------------------------------------------
    if (int err = hard_fault(op); err || (err = fault_before(op))) {
      if (rng_.chance(0.5)) {  // synchronously, as epoll may
        op.result = -err;
        op.cqe_flags = 0;
        return true;
      }
      Rec& r = recs_.insert_or_assign(&op, rec).first->second;
      op.complete = &FaultBackend::on_inner;
      op.ctx = this;
      hold(op, r, -err, 0, Clock::now());
      return false;
    }
    // ---- the op runs, maybe shortened, maybe delayed --------------------------
    maybe_shorten(op);
    if (op.kind == OpKind::connect && rng_.chance(cfg_.rate / 4)) rec.eintr_after = true;
    rec.forwarded = true;
    Rec& r = recs_.insert_or_assign(&op, rec).first->second;
    op.complete = &FaultBackend::on_inner;
    op.ctx = this;
    if (!inner_->submit(op)) return false;
    // Completed synchronously (epoll): maybe turn it into a later completion.
    r.inner_done = true;
    int res = op.result;
    if (r.eintr_after && res == 0) {
      res = -EINTR;
      ++stats_.eintr;
    }
    if (rng_.chance(cfg_.rate)) {
      ++stats_.delayed;
      hold(op, r, res, op.cqe_flags, due_later());
      return false;
    }
    restore(op, r);
    recs_.erase(&op);
    op.result = res;
    return true;
  }

  int try_now(IoOp& op) noexcept override {
    if (op.kind == OpKind::nop || stopping_) return inner_->try_now(op);
    ++stats_.ops;
    if (trace_) std::fprintf(stderr, "corio fault: try_now %s fd %d\n", op_name(op.kind), op.fd);
    if (int err = hard_fault(op); err || (err = fault_before(op))) return -err;
    maybe_shorten(op);
    return inner_->try_now(op);
  }

  void cancel(IoOp& op) noexcept override {
    auto it = recs_.find(&op);
    if (it == recs_.end()) {
      inner_->cancel(op);  // submitted while stopping: not ours
      return;
    }
    Rec& r = it->second;
    if (r.user_cancel) return;
    r.user_cancel = true;
    if (!r.forwarded || r.inner_done) {
      ++stats_.late_cancels;  // its completion is already here: it wins, as the kernel's would
      return;
    }
    if (r.cancel_forwarded) return;  // our own mid-stream cancel is under way
    if (!stopping_ && rng_.chance(cfg_.rate * 2)) {
      ++stats_.cancel_delayed;
      pending_cancels_.push_back({&op, r.gen});
      return;
    }
    r.cancel_forwarded = true;
    inner_->cancel(op);
  }

  void wait(std::int64_t timeout_ns) override {
    if (!pending_cancels_.empty()) timeout_ns = 0;
    if (!held_.empty()) {
      auto now = Clock::now();
      Clock::time_point first = held_.front().due;
      for (const Held& h : held_)
        if (h.due < first) first = h.due;
      std::int64_t t = first <= now ? 0 : std::chrono::duration_cast<std::chrono::nanoseconds>(first - now).count();
      if (timeout_ns < 0 || t < timeout_ns) timeout_ns = t;
    }
    inner_->wait(timeout_ns);
    forward_pending_cancels();
    deliver_due();
  }

  void forget_fd(int fd) noexcept override { inner_->forget_fd(fd); }

  void cancel_all() noexcept override {
    stopping_ = true;
    forward_pending_cancels();
    inner_->cancel_all();
  }

  std::size_t in_flight() const noexcept override { return inner_->in_flight() + held_final_; }
  bool has_pending_work() const noexcept override {
    if (inner_->has_pending_work()) return true;
    auto now = Clock::now();
    for (const Held& h : held_)
      if (h.due <= now) return true;
    return false;
  }
  ProvidedBuffers* provided_buffers() noexcept override { return inner_->provided_buffers(); }
  ProvidedBuffers* buffer_pool() noexcept override { return inner_->buffer_pool(); }
  char* read_scratch(std::uint32_t* len) noexcept override {
    scratch_ = inner_->read_scratch(len);
    scratch_len_ = scratch_ ? *len : 0;
    return scratch_;
  }
  bool multishot_accept() const noexcept override { return inner_->multishot_accept(); }

 private:
  struct Rec {
    void (*complete)(IoOp*) noexcept = nullptr;
    void* ctx = nullptr;
    std::uint32_t len = 0;        // the owner's length (an injected short op cut it)
    std::uint64_t gen = 0;
    unsigned held = 0;            // completions of this op in held_
    Clock::time_point last_due{};
    int translate_cancel = 0;     // our mid-stream cancel: report this errno instead of ECANCELED
    bool forwarded = false;       // the inner backend runs it
    bool inner_done = false;      // the inner backend delivered its final completion
    bool user_cancel = false;
    bool cancel_forwarded = false;
    bool eintr_after = false;     // connect: report EINTR although the kernel did it
  };
  struct Held {
    IoOp* op;
    int result;
    std::uint32_t flags;
    Clock::time_point due;
    // The bytes of a recv into the shared read_scratch() buffer, which the
    // next recv overwrites: put back right before the owner's callback,
    // which copies them out at once (the scratch contract).
    std::string scratch_bytes;
  };
  struct PendingCancel {
    IoOp* op;
    std::uint64_t gen;
  };

  static bool is_final(std::uint32_t flags) noexcept { return !(flags & kCqeMore); }

  Clock::time_point due_later() noexcept {
    // A third of the delays last only until the next loop turn.
    if (rng_.below(3) == 0) return Clock::now();
    return Clock::now() + std::chrono::microseconds(rng_.below(2000));
  }

  // A hard fault (ECONNRESET/EPIPE) instead of a socket send/recv, or 0.
  int hard_fault(const IoOp& op) noexcept {
    if (cfg_.hard_rate <= 0 || op.internal) return 0;
    const bool rx = op.kind == OpKind::recv || op.kind == OpKind::recv_multishot || op.kind == OpKind::recvmsg ||
                    op.kind == OpKind::read;
    const bool tx = op.kind == OpKind::send || op.kind == OpKind::sendmsg || op.kind == OpKind::write;
    if (!(rx || tx) || !rng_.chance(cfg_.hard_rate) || !is_socket(op.fd)) return 0;
    const int tx_err = cfg_.send_errno ? cfg_.send_errno : rng_.chance(0.5) ? ECONNRESET : EPIPE;
    if (rx || tx_err == ECONNRESET) {
      ++stats_.econnreset;
      return ECONNRESET;
    }
    ++stats_.epipe;
    return EPIPE;
  }

  // A transient error instead of running the op, or 0.
  int fault_before(const IoOp& op) noexcept {
    if (!rng_.chance(op.internal ? cfg_.rate / 4 : cfg_.rate)) return 0;
    switch (op.kind) {
      case OpKind::recv_multishot:
        if (rng_.chance(0.5)) {
          ++stats_.enobufs;
          return ENOBUFS;
        }
        break;
      case OpKind::accept_multishot:
      case OpKind::accept:
        // EMFILE costs a server a 100 ms pause: rarer than the others.
        if (cfg_.emfile && op.backs_off_on_emfile && rng_.chance(0.25)) {
          ++stats_.emfile;
          return EMFILE;
        }
        break;
      default:
        break;
    }
    const bool nonblocking_asked = op.msg_flags & MSG_DONTWAIT;
    const bool eagain_ok = op.kind != OpKind::connect && op.kind != OpKind::poll_in && op.kind != OpKind::poll_out &&
                           op.kind != OpKind::recv_multishot && op.kind != OpKind::accept_multishot;
    if (eagain_ok && !nonblocking_asked && rng_.chance(0.5)) {
      ++stats_.eagain;
      return EAGAIN;
    }
    ++stats_.eintr;
    return EINTR;
  }

  // Short I/O: a read or write asks for less than its caller did.
  void maybe_shorten(IoOp& op) noexcept {
    if (can_shorten(op) && rng_.chance(cfg_.rate / 2)) {
      op.len = 1 + static_cast<std::uint32_t>(rng_.below(op.len - 1));
      ++stats_.short_io;
    }
  }

  bool can_shorten(const IoOp& op) noexcept {
    if (op.internal || op.len < 2) return false;
    switch (op.kind) {
      case OpKind::read:
      case OpKind::write:
      case OpKind::recv:
      case OpKind::send:
        return (op.msg_flags & MSG_WAITALL) == 0 && is_byte_stream(op.fd);
      default:
        return false;
    }
  }

  void restore(IoOp& op, const Rec& r) noexcept {
    op.complete = r.complete;
    op.ctx = r.ctx;
    op.len = r.len;
  }

  bool in_scratch(const IoOp& op) const noexcept {
    const char* p = static_cast<const char*>(op.buf);
    return scratch_ && p >= scratch_ && p < scratch_ + scratch_len_;
  }

  void hold(IoOp& op, Rec& r, int result, std::uint32_t flags, Clock::time_point due) noexcept {
    if (r.held && due < r.last_due) due = r.last_due;
    r.last_due = due;
    ++r.held;
    if (is_final(flags) && !op.internal) ++held_final_;
    held_.push_back({&op, result, flags, due, {}});
    if (result > 0 && (op.kind == OpKind::read || op.kind == OpKind::recv) && in_scratch(op)) {
      held_.back().scratch_bytes.assign(static_cast<const char*>(op.buf), static_cast<std::size_t>(result));
    }
  }

  // The inner backend completed op (one shot of a multishot, or the op).
  static void on_inner(IoOp* op) noexcept {
    auto* self = static_cast<FaultBackend*>(op->ctx);
    self->inner_completed(*op);
  }

  void inner_completed(IoOp& op) noexcept {
    if (trace_) std::fprintf(stderr, "corio fault: kernel completed %s fd %d res %d\n", op_name(op.kind), op.fd, op.result);
    Rec& r = recs_.find(&op)->second;
    int res = op.result;
    const std::uint32_t flags = op.cqe_flags;
    const bool final = is_final(flags);
    if (final) {
      r.inner_done = true;
      if (r.translate_cancel && res == -ECANCELED && !r.user_cancel) res = -r.translate_cancel;
      // Only a connect that succeeded: after a failed one the kernel
      // reports the failure, never EINTR (and a retry would read ECONNABORTED).
      if (r.eintr_after && res == 0) {
        res = -EINTR;
        ++stats_.eintr;
      }
    } else if (!r.translate_cancel && !r.user_cancel && !stopping_ && rng_.chance(cfg_.rate / 4)) {
      // End a multishot mid-stream the way the kernel does when the
      // provided-buffer pool runs dry (recv) or the fd table is full (accept).
      if (op.kind == OpKind::recv_multishot) {
        r.translate_cancel = ENOBUFS;
        ++stats_.enobufs;
      } else if (op.kind == OpKind::accept_multishot && op.backs_off_on_emfile && cfg_.emfile) {
        r.translate_cancel = EMFILE;
        ++stats_.emfile;
      }
      if (r.translate_cancel) {
        r.cancel_forwarded = true;
        inner_->cancel(op);
      }
    }
    if (r.held || (!stopping_ && rng_.chance(cfg_.rate))) {
      if (!r.held) ++stats_.delayed;
      hold(op, r, res, flags, r.held ? r.last_due : due_later());
      return;
    }
    deliver(op, res, flags);
  }

  void deliver(IoOp& op, int res, std::uint32_t flags) noexcept {
    auto it = recs_.find(&op);
    Rec& r = it->second;
    restore(op, r);
    op.result = res;
    op.cqe_flags = flags;
    if (is_final(flags)) {
      auto fn = op.complete;
      recs_.erase(it);  // the owner may resubmit op from its callback
      fn(&op);
      return;
    }
    op.complete(&op);
    // Still armed: the next shot comes to us again.
    op.complete = &FaultBackend::on_inner;
    op.ctx = this;
  }

  void forward_pending_cancels() noexcept {
    if (pending_cancels_.empty()) return;
    std::vector<PendingCancel> todo;
    todo.swap(pending_cancels_);
    for (const PendingCancel& pc : todo) {
      auto it = recs_.find(pc.op);
      if (it == recs_.end() || it->second.gen != pc.gen) continue;  // completed meanwhile
      Rec& r = it->second;
      if (r.inner_done || r.cancel_forwarded) continue;
      r.cancel_forwarded = true;
      inner_->cancel(*pc.op);
    }
  }

  void deliver_due() noexcept {
    if (held_.empty()) return;
    const auto now = Clock::now();
    std::vector<Held> due;
    std::deque<Held> rest;
    for (Held& h : held_) {
      if (h.due <= now) due.push_back(h);
      else rest.push_back(h);
    }
    held_.swap(rest);
    for (Held& h : due) {
      Rec& r = recs_.find(h.op)->second;
      --r.held;
      if (is_final(h.flags) && !h.op->internal) --held_final_;
      if (!h.scratch_bytes.empty()) std::memcpy(h.op->buf, h.scratch_bytes.data(), h.scratch_bytes.size());
      deliver(*h.op, h.result, h.flags);
    }
  }

  std::unique_ptr<Backend> inner_;
  FaultConfig cfg_;
  Rng rng_;
  FaultStats stats_;
  std::unordered_map<IoOp*, Rec> recs_;
  std::deque<Held> held_;
  std::vector<PendingCancel> pending_cancels_;
  std::size_t held_final_ = 0;  // held final completions of counted (non-internal) ops
  std::uint64_t gen_ = 0;
  bool stopping_ = false;
  char* scratch_ = nullptr;  // the inner backend's read_scratch(), once asked for
  std::uint32_t scratch_len_ = 0;
  bool trace_;  // CORIO_FAULT_TRACE: one stderr line per submission and kernel completion
};

}  // namespace

std::optional<FaultConfig> fault_config_for_new_loop() {
  std::optional<FaultConfig> cfg;
  if (g_override_set) {
    cfg = g_override;
  } else {
    cfg = g_env_config;
  }
  return cfg;
}

FaultOverride::FaultOverride(std::optional<FaultConfig> cfg) : had_(g_override_set), saved_(g_override) {
  g_override_set = true;
  g_override = cfg;
}

FaultOverride::~FaultOverride() {
  g_override_set = had_;
  g_override = saved_;
}

std::unique_ptr<Backend> make_fault_backend(std::unique_ptr<Backend> inner, const FaultConfig& cfg) {
  return std::make_unique<FaultBackend>(std::move(inner), cfg, g_loops++);
}

const FaultStats* fault_stats(const Backend& b) noexcept {
  auto* f = dynamic_cast<const FaultBackend*>(&b);
  return f ? &f->stats() : nullptr;
}

}  // namespace corio::detail
