#!/usr/bin/env bash
# Echo benchmark (issue 6, acceptance 3): corio's echo_server on io_uring and on
# epoll beside the hand-written liburing and epoll C servers and Boost.Asio, in
# one run of ../shared/peers/run.sh (64-byte ping-pong at 50 and 500
# connections, server pinned to CPU 0, client on CPU 1).
#
#   bench/peers_echo.sh              full: 3 interleaved rounds, 5 s per run
#   ROUNDS=1 bench/peers_echo.sh     any run.sh knob passes through
#
# Builds corio in release mode in build-release/ first. Quote the ratios of
# "server CPU µs/msg" (= 1 / messages per server CPU-second) from one run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PEERS="${PEERS_DIR:-$ROOT/../shared/peers}"
BUILD="${CORIO_BUILD:-$ROOT/build-release}"

"$ROOT/scripts/build_release.sh" "$BUILD" examples/echo_server

ECHO="$BUILD/examples/echo_server"
export ECHO_SERVERS="${ECHO_SERVERS:-c-uring c-epoll asio-epoll corio-uring corio-epoll}"
export SERVER_CMD_corio_uring_echo="env CORIO_BACKEND=io_uring $ECHO --port {port}"
export SERVER_CMD_corio_epoll_echo="env CORIO_BACKEND=epoll $ECHO --port {port}"
export SKIP_HTTP=1 SKIP_MICRO=1 SKIP_IDLE=1
exec "$PEERS/run.sh" "$@"
