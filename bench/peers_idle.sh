#!/usr/bin/env bash
# Scale benchmark (issue 6, acceptance 2): one corio loop holds 19,000 idle
# keep-alive connections (clients in other processes, sources 127.0.0.2-9),
# beside nginx and Boost.Asio, in one run of ../shared/peers/run.sh's idle
# section (peers/idleconn.c: one GET per connection, then hold; a fresh
# request must still be answered meanwhile; server RSS growth per connection).
#
#   bench/peers_idle.sh                     19,000 connections
#   IDLE_COUNTS="10000 19000" bench/peers_idle.sh
#
# The corio server is bench/idle_http_server (fixed 200 response per request,
# keeps the connection open), once per backend. Builds build-release/ first.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PEERS="${PEERS_DIR:-$ROOT/../shared/peers}"
BUILD="${CORIO_BUILD:-$ROOT/build-release}"

"$ROOT/scripts/build_release.sh" "$BUILD" bench/idle_http_server

SRV="$BUILD/bench/idle_http_server"
export IDLE_SERVERS="${IDLE_SERVERS:-nginx asio-epoll asio-uring corio-uring corio-epoll}"
export IDLE_COUNTS="${IDLE_COUNTS:-19000}"
export SERVER_CMD_corio_uring_http="env CORIO_BACKEND=io_uring $SRV --port {port}"
export SERVER_CMD_corio_epoll_http="env CORIO_BACKEND=epoll $SRV --port {port}"
export SKIP_HTTP=1 SKIP_ECHO=1 SKIP_MICRO=1
exec "$PEERS/run.sh" "$@"
