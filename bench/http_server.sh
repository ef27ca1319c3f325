#!/usr/bin/env bash
# HTTP/1.1 server benchmark (issue 8, acceptance 2): examples/http_server on
# io_uring and on epoll beside nginx (1 worker), Boost.Asio (epoll) and the
# hand-written liburing and epoll C servers, in one run:
#   1. ../shared/peers/run.sh: wrk -t1 keep-alive at 64/256/1024 connections and
#      pipelined ×16 at 256, server pinned to CPU 0, wrk on CPU 1, 3 interleaved
#      rounds;
#   2. bench/http_server.py: connection per request (wrk -H 'Connection: close')
#      against nginx and corio, syscalls per request (strace -c -f), then one
#      table of requests per server CPU-second with corio ÷ peer ratios, and
#      bench/report/http_server.json (with --save).
#
#   bench/http_server.sh --save           full run (~12 min), saves the JSON
#   DUR=5 ROUNDS=1 bench/http_server.sh   any run.sh knob passes through
#
# Builds corio first: with profile-guided optimisation in build-pgo/
# (scripts/build_pgo.sh: release flags, trained on a 15 s run of its own;
# the notes under the table say so), or with PGO=0 as a plain release build
# in build-release/. Quote ratios from one run only: the machine is shared.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PEERS="${PEERS_DIR:-$ROOT/../shared/peers}"
export PEERS_BUILD="${PEERS_BUILD:-${TMPDIR:-/tmp}/corio-peers}"
export PGO="${PGO:-1}"
if [[ $PGO == 1 ]]; then
  BUILD="$ROOT/build-pgo"
  "$ROOT/scripts/build_pgo.sh" "$BUILD" examples/http_server
else
  BUILD="$ROOT/build-release"
  "$ROOT/scripts/build_release.sh" "$BUILD" examples/http_server
fi
export CORIO_BUILD="$BUILD"  # bench/http_server.py runs the same binary

HS="$BUILD/examples/http_server"
export SERVERS="${SERVERS:-c-uring c-epoll nginx asio-epoll corio-uring corio-epoll}"
export SERVER_CMD_corio_uring_http="env CORIO_BACKEND=io_uring $HS --port {port}"
export SERVER_CMD_corio_epoll_http="env CORIO_BACKEND=epoll $HS --port {port}"
export SKIP_ECHO=1 SKIP_MICRO=1 SKIP_IDLE=1
: "${DUR:=6}"
export DUR

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
"$PEERS/run.sh" 2> >(tee "$log" >&2) >/dev/null
res="$(sed -n 's/.*results in \([^ ]*\) (QUICK.*/\1/p' "$log" | tail -1)"
[[ -n $res && -f $res/results.jsonl ]] || { echo "http_server.sh: run.sh left no results" >&2; exit 1; }
exec /usr/bin/python3 "$ROOT/bench/http_server.py" --results "$res" --rounds "${ROUNDS:-3}" "$@"
