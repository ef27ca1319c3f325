#!/usr/bin/env bash
# Soak test of examples/http_server under wrk (issue 11): many keep-alive
# connections for a long time, then three verdicts:
#   errors  wrk's socket errors (connect, read, write, timeout) and non-2xx/3xx
#           responses are all zero;
#   fds     the server's open descriptors (/proc/PID/fd) are back to the count
#           before the load once wrk has gone (no leaked connection);
#   rss     resident memory is flat after warm-up: the last sample under load
#           is less than SOAK_RSS_PCT % above the first sample past SOAK_WARMUP
#           seconds (allocator pools and buffer rings grow during warm-up).
# The server is then stopped with SIGTERM and must exit 143 (graceful).
#
#   bench/soak.sh                                    10,000 connections, 10 minutes
#   SOAK_SECONDS=40 SOAK_CONNECTIONS=2000 bench/soak.sh   a short run
#   SOAK_SERVER=build/examples/http_server bench/soak.sh  a given binary (no build)
#
# Settings (environment): SOAK_SECONDS (600), SOAK_CONNECTIONS (10000),
# SOAK_THREADS (wrk threads, 2), SOAK_BACKEND (io_uring|epoll), SOAK_WARMUP
# (120, or a third of SOAK_SECONDS when that is shorter), SOAK_SAMPLE (RSS
# sampling period, 5 s), SOAK_RSS_PCT (5), SOAK_PATH (/plaintext),
# SOAK_WRK_TIMEOUT (wrk's --timeout, 2s = wrk's default), SOAK_SERVER.
# Without SOAK_SERVER it builds examples/http_server in build-release/ (the
# tree every bench/ script shares; CORIO_BUILD to change).
#
# Prints the RSS series (one sample per minute, or per 10 s on short runs),
# then one line "soak: … => PASS|FAIL"; exits 0 on PASS, 1 on FAIL, 2 when it
# cannot run, 77 (meson's "skipped") when wrk is not installed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECONDS_TOTAL="${SOAK_SECONDS:-600}"
CONNS="${SOAK_CONNECTIONS:-10000}"
THREADS="${SOAK_THREADS:-2}"
BACKEND="${SOAK_BACKEND:-io_uring}"
SAMPLE="${SOAK_SAMPLE:-5}"
RSS_PCT="${SOAK_RSS_PCT:-5}"
URLPATH="${SOAK_PATH:-/plaintext}"
WRK_TIMEOUT="${SOAK_WRK_TIMEOUT:-2s}"
if [[ -n ${SOAK_WARMUP:-} ]]; then
  WARMUP=$SOAK_WARMUP
else
  WARMUP=$((SECONDS_TOTAL / 3 < 120 ? SECONDS_TOTAL / 3 : 120))
fi

if ! command -v wrk >/dev/null; then
  echo "soak: wrk is not installed (scripts/setup.sh installs it): skipped"
  exit 77
fi

if [[ -n ${SOAK_SERVER:-} ]]; then
  SRV=$SOAK_SERVER
else
  BUILD="${CORIO_BUILD:-$ROOT/build-release}"
  "$ROOT/scripts/build_release.sh" "$BUILD" examples/http_server
  SRV="$BUILD/examples/http_server"
fi

# Both the server and wrk hold one descriptor per connection (+ a few): the
# soft limit goes up to the hard one, and must then be enough.
ulimit -n "$(ulimit -Hn)"
need=$((CONNS + 64))
if (($(ulimit -n) < need)); then
  echo "soak: RLIMIT_NOFILE is $(ulimit -n), $need needed for $CONNS connections" >&2
  exit 2
fi

WORK=$(mktemp -d /tmp/corio-soak.XXXXXX)
SRV_PID=""
SAMPLER_PID=""
cleanup() {
  [[ -n $SAMPLER_PID ]] && kill "$SAMPLER_PID" 2>/dev/null || true
  [[ -n $SRV_PID ]] && kill -KILL "$SRV_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

fd_count() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# The server: room for every connection (plus slack for reconnects), idle
# keep-alive longer than the run so that only wrk's own closes end connections.
"$SRV" --port 0 --backend "$BACKEND" --max-connections $((CONNS + 1000)) \
  --keep-alive-timeout $(((SECONDS_TOTAL + 60) * 1000)) >"$WORK/server.out" 2>"$WORK/server.err" &
SRV_PID=$!
for _ in $(seq 100); do
  grep -q '^listening on ' "$WORK/server.out" 2>/dev/null && break
  kill -0 "$SRV_PID" 2>/dev/null || break
  sleep 0.1
done
if ! grep -q '^listening on ' "$WORK/server.out"; then
  echo "soak: the server did not start: $(cat "$WORK/server.err")" >&2
  exit 2
fi
PORT=$(sed -n '1s/.*:\([0-9]*\)$/\1/p' "$WORK/server.out")
sleep 0.5
FDS_BEFORE=$(fd_count "$SRV_PID")
RSS_START=$(rss_kb "$SRV_PID")

# RSS every SAMPLE seconds, as "seconds_since_start kib".
(
  t0=$(date +%s.%N)
  while kill -0 "$SRV_PID" 2>/dev/null; do
    now=$(date +%s.%N)
    echo "$(awk -v a="$now" -v b="$t0" 'BEGIN {printf "%.1f", a - b}') $(rss_kb "$SRV_PID")"
    sleep "$SAMPLE"
  done
) >"$WORK/rss" &
SAMPLER_PID=$!

echo "soak: $CONNS connections, ${SECONDS_TOTAL} s, wrk -t$THREADS --timeout $WRK_TIMEOUT, $BACKEND, http://127.0.0.1:$PORT$URLPATH; load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
wrk_rc=0
wrk -t"$THREADS" -c"$CONNS" -d"${SECONDS_TOTAL}s" --timeout "$WRK_TIMEOUT" --latency \
  "http://127.0.0.1:$PORT$URLPATH" >"$WORK/wrk.out" 2>&1 || wrk_rc=$?
kill "$SAMPLER_PID" 2>/dev/null || true
wait "$SAMPLER_PID" 2>/dev/null || true
SAMPLER_PID=""
sed 's/^/  wrk| /' "$WORK/wrk.out" >&2

# wrk closed its sockets on exit; the server sees EOF on each and lets go.
FDS_AFTER=$(fd_count "$SRV_PID")
for _ in $(seq 150); do
  ((FDS_AFTER <= FDS_BEFORE)) && break
  sleep 0.2
  FDS_AFTER=$(fd_count "$SRV_PID")
done
RSS_IDLE=$(rss_kb "$SRV_PID")

kill -TERM "$SRV_PID"
exit_status=-1
for _ in $(seq 100); do
  if ! kill -0 "$SRV_PID" 2>/dev/null; then
    wait "$SRV_PID" && exit_status=0 || exit_status=$?
    break
  fi
  sleep 0.1
done
SRV_PID=""

/usr/bin/python3 - "$WORK/wrk.out" "$WORK/rss" "$wrk_rc" "$CONNS" "$SECONDS_TOTAL" "$WARMUP" "$RSS_PCT" \
  "$FDS_BEFORE" "$FDS_AFTER" "$RSS_START" "$RSS_IDLE" "$exit_status" "$BACKEND" <<'PY'
import re, sys
(wrk_path, rss_path, wrk_rc, conns, secs, warmup, rss_pct, fds_before, fds_after, rss_start, rss_idle,
 exit_status, backend) = sys.argv[1:]
wrk = open(wrk_path).read()
def num(pattern, default=0):
    m = re.search(pattern, wrk)
    return int(m.group(1)) if m else default
m = re.search(r"(\d+) requests in ([\d.]+)(\w+),", wrk)
requests = int(m.group(1)) if m else -1
se = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", wrk)
sock = [int(x) for x in se.groups()] if se else [0, 0, 0, 0]
non2xx = num(r"Non-2xx or 3xx responses: (\d+)")
p99 = re.search(r"99%\s+(\S+)", wrk)

samples = []
for line in open(rss_path):
    parts = line.split()
    if len(parts) == 2 and parts[1] != "0":
        samples.append((float(parts[0]), int(parts[1])))
secs, warmup = int(secs), int(warmup)
loaded = [s for s in samples if s[0] <= secs] or samples
after = [s for s in loaded if s[0] >= warmup] or loaded[-1:]
warm_t, warm_kb = after[0]
end_t, end_kb = loaded[-1]
growth = 100.0 * (end_kb - warm_kb) / warm_kb if warm_kb else float("inf")
peak = max(kb for _, kb in loaded)

step = 60 if secs >= 300 else 10
series, next_t = [], 0.0
for t, kb in loaded:
    if t >= next_t:
        series.append(f"{int(t)}s={kb / 1024:.1f}")
        next_t = t - (t % step) + step
if loaded and not series[-1].startswith(f"{int(end_t)}s="):
    series.append(f"{int(end_t)}s={end_kb / 1024:.1f}")
print(f"soak: rss MiB by time: {' '.join(series)} (start {int(rss_start) / 1024:.1f}, peak {peak / 1024:.1f}, "
      f"idle after load {int(rss_idle) / 1024:.1f}; {len(samples)} samples)")

ok_err = wrk_rc == "0" and requests > 0 and sum(sock) == 0 and non2xx == 0
ok_fds = int(fds_after) <= int(fds_before)
ok_rss = growth < float(rss_pct)
ok_exit = exit_status == "143"
v = lambda ok: "PASS" if ok else "FAIL"
rate = requests / float(secs) if requests > 0 else 0
print(f"soak: {conns} conns {secs} s {backend}: {requests} requests ({rate:.0f}/s, p99 {p99.group(1) if p99 else '?'}); "
      f"errors connect {sock[0]} read {sock[1]} write {sock[2]} timeout {sock[3]} non-2xx {non2xx} {v(ok_err)}; "
      f"fds before {fds_before} after {fds_after} {v(ok_fds)}; "
      f"rss {warm_kb} KiB at {int(warm_t)} s -> {end_kb} KiB at {int(end_t)} s "
      f"({growth:+.2f}% < {rss_pct}%) {v(ok_rss)}; SIGTERM exit {exit_status} {v(ok_exit)} "
      f"=> {v(ok_err and ok_fds and ok_rss and ok_exit)}")
sys.exit(0 if ok_err and ok_fds and ok_rss and ok_exit else 1)
PY
