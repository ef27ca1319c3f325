#pragma once
// Fault injection between the loop and the kernel (test builds only: compiled
// in with meson -Dfault_injection=true, absent from every other build).
//
// A FaultBackend wraps the real Backend and, from a seed, makes operations
// fail or come back short the way a kernel legitimately may:
//   transient (corio must absorb them; the suites pass with them on)
//   - EINTR or EAGAIN instead of running the op (returned synchronously or
//     as a later completion); connect also gets EINTR after the kernel did
//     it (a retried connect then reports EISCONN);
//   - short reads and writes: the *requested* length is cut before the op
//     reaches the kernel (stream sockets, pipes, regular files), so no byte
//     the kernel delivered is ever dropped;
//   - ENOBUFS ending a multishot recv (provided-buffer pool dry), at arming
//     or mid-stream; EMFILE ending an accept whose submitter backs off
//     (IoOp::backs_off_on_emfile: the servers), at arming or mid-stream
//     (FaultConfig::emfile);
//   - delayed completions (held for the next loop turn or up to 2 ms, per-op
//     order kept), so cancels race with completions that already happened;
//   - cancels held back one loop turn, so the op may complete first;
//   hard (they change outcomes; only when FaultConfig::hard_rate > 0)
//   - ECONNRESET on receives, EPIPE or ECONNRESET on sends, on sockets.
//
// Enabled per process by the environment, read when each EventLoop is made:
//   CORIO_FAULT_SEED=N    turns it on (the seed is printed once on stderr);
//   CORIO_FAULT_RATE=R    chance per operation of a transient fault (0.05);
//   CORIO_FAULT_HARD=R    chance per socket send/recv of a hard fault (0);
//   CORIO_FAULT_EMFILE=1  EMFILE for server accepts too (off: see FaultConfig);
//   CORIO_FAULT_TRACE=1   one stderr line per submission and kernel completion.
// Loop k of the process (k = 0, 1, …) draws from seed N + k, so one test
// binary run with the same seed and filter replays the same faults. The
// variables are read once and removed from the environment: child
// processes (example programs, peers) run without faults.
//
// Mechanism: every submitted IoOp's complete/ctx are swapped for the
// layer's own (and restored before the owner's callback runs), so a
// completion can be held, rewritten (a mid-stream cancel reported as ENOBUFS)
// or produced without the kernel. The Backend contract is kept: complete()
// runs exactly once per op (once per shot of a multishot, last without
// kCqeMore), never synchronously from cancel(), and in_flight() counts held
// completions.
#include <cstdint>
#include <memory>
#include <optional>

#include "loop/backend.hpp"

namespace corio::detail {

struct FaultConfig {
  std::uint64_t seed = 1;
  double rate = 0.05;       // per operation: chance of one transient fault
  double hard_rate = 0.0;   // per socket send/recv: chance of ECONNRESET / EPIPE
  int send_errno = 0;       // the hard fault of a send: EPIPE, ECONNRESET, or 0 (either, at random)
  // EMFILE for server accepts. Absorbed (the server pauses accepts 100 ms and
  // warns), but the pause and the warning are visible to tests that time
  // accepts or count warnings, so the suite-wide runs leave it off.
  bool emfile = false;
};

// What a FaultBackend injected so far (for tests and the closing summary).
struct FaultStats {
  std::uint64_t ops = 0;            // operations submitted through the layer
  std::uint64_t eintr = 0;
  std::uint64_t eagain = 0;
  std::uint64_t short_io = 0;
  std::uint64_t enobufs = 0;
  std::uint64_t emfile = 0;
  std::uint64_t delayed = 0;        // completions held back
  std::uint64_t cancel_delayed = 0; // cancels held back a turn
  std::uint64_t late_cancels = 0;   // cancels of ops whose completion was already held
  std::uint64_t econnreset = 0;
  std::uint64_t epipe = 0;
  std::uint64_t total() const noexcept {
    return eintr + eagain + short_io + enobufs + emfile + delayed + cancel_delayed + econnreset + epipe;
  }
};

// The configuration for the next EventLoop: the override if one is set,
// else the environment's (nullopt: no fault layer). Prints the seed once.
std::optional<FaultConfig> fault_config_for_new_loop();

// Tests of hard faults: loops made while a FaultOverride lives use `cfg`
// (nullopt: no fault layer even if the environment asks for one).
class FaultOverride {
 public:
  explicit FaultOverride(std::optional<FaultConfig> cfg);
  ~FaultOverride();
  FaultOverride(const FaultOverride&) = delete;
  FaultOverride& operator=(const FaultOverride&) = delete;

 private:
  bool had_;
  std::optional<FaultConfig> saved_;
};

// Wraps inner; the k-th layer made in this process draws from cfg.seed + k.
std::unique_ptr<Backend> make_fault_backend(std::unique_ptr<Backend> inner, const FaultConfig& cfg);

// The statistics of a loop's backend if it is a fault layer, else nullptr.
const FaultStats* fault_stats(const Backend& b) noexcept;

}  // namespace corio::detail
