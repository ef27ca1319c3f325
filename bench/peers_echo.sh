#!/usr/bin/env bash
# Echo benchmark (issue 6, acceptance 3): corio's echo_server on io_uring and on
# epoll beside the hand-written liburing and epoll C servers and Boost.Asio, in
# one run of ../shared/peers/run.sh (64-byte ping-pong at 50 and 500
# connections, server pinned to CPU 0, client on CPU 1).
#
#   bench/peers_echo.sh              9 interleaved rounds, 6 s per run (~14 min)
#   ROUNDS=1 bench/peers_echo.sh     any run.sh knob passes through
#
# Why 9 rounds of 6 s: the server's CPU per message is mostly kernel time
# (loopback TCP, ~6 µs) and single runs of the same server spread by ±10-20 %
# on this shared machine, so three rounds cannot settle a 10 % goal. Quote the
# median of the per-round ratios (bench/peers_report.py), each from servers
# measured minutes apart, not seconds.
#
# Builds corio first: with profile-guided optimisation in build-pgo/
# (scripts/build_pgo.sh), or with PGO=0 as a plain release build in
# build-release/; the results directory records which (corio_build.txt, read
# by bench/peers_report.py). Quote the ratios of "server CPU µs/msg"
# (= 1 / messages per server CPU-second) from one run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PEERS="${PEERS_DIR:-$ROOT/../shared/peers}"
PGO="${PGO:-1}"
if [[ $PGO == 1 ]]; then
  BUILD="${CORIO_BUILD:-$ROOT/build-pgo}"
  "$ROOT/scripts/build_pgo.sh" "$BUILD" examples/echo_server
  build_note="corio built with profile-guided optimisation (scripts/build_pgo.sh)"
else
  BUILD="${CORIO_BUILD:-$ROOT/build-release}"
  "$ROOT/scripts/build_release.sh" "$BUILD" examples/echo_server
  build_note="corio built by scripts/build_release.sh (no PGO)"
fi

ECHO="$BUILD/examples/echo_server"
export ECHO_SERVERS="${ECHO_SERVERS:-c-uring c-epoll asio-epoll corio-uring corio-epoll}"
export SERVER_CMD_corio_uring_echo="env CORIO_BACKEND=io_uring $ECHO --port {port}"
export SERVER_CMD_corio_epoll_echo="env CORIO_BACKEND=epoll $ECHO --port {port}"
export SKIP_HTTP=1 SKIP_MICRO=1 SKIP_IDLE=1
if [[ ${QUICK:-0} != 1 ]]; then export ROUNDS="${ROUNDS:-9}" ECHO_DUR="${ECHO_DUR:-6}"; fi
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
"$PEERS/run.sh" "$@" 2> >(tee "$log" >&2)
res="$(sed -n 's/.*results in \([^ ]*\) (.*/\1/p' "$log" | tail -1)"
if [[ -n $res && -d $res ]]; then echo "$build_note" >"$res/corio_build.txt"; fi
