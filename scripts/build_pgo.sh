#!/usr/bin/env bash
# Builds corio's benchmarked servers in release mode with profile-guided
# optimisation (GCC's -fprofile-generate / -fprofile-use through meson's b_pgo):
#
#   scripts/build_pgo.sh DIR TARGET...      e.g. build-pgo examples/http_server
#
# 1. DIR is configured as build_release.sh does (-O3, LTO, static) with
#    -Db_pgo=generate, and the training programs are built;
# 2. a short training run (about 15 s) exercises both backends: the HTTP
#    server under wrk (plaintext and JSON keep-alive, pipelined, one request
#    per connection) and the echo server under corio's echo_client;
# 3. DIR is reconfigured with -Db_pgo=use and TARGET... are rebuilt with the
#    counts the training left in DIR (*.gcda next to the objects); training
#    programs that are not among them are deleted rather than left
#    instrumented (the next ninja run builds them optimised).
#
# The whole cycle runs every time (old counts are deleted first), so a
# profile never describes sources older than the ones compiled. The same
# recipe works for an application built on corio: train with its own traffic.
# Needs wrk (scripts/setup.sh installs it). Prints only on failure,
# apart from one line per step on stderr.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir=${1:?usage: build_pgo.sh DIR TARGET...}
shift
(($#)) || { echo "usage: build_pgo.sh DIR TARGET..." >&2; exit 2; }
command -v wrk >/dev/null || { echo "build_pgo.sh: wrk is needed for the training run" >&2; exit 1; }

opts=(-Dbuildtype=release -Dtests=false -Db_lto=true -Ddefault_library=static -Db_staticpic=false)
log=$(mktemp)
lua=$(mktemp --suffix=.lua)
trap 'rm -f "$log" "$lua"' EXIT
step() {  # step CMD...: runs quietly, shows the output if it fails
  if ! "$@" >>"$log" 2>&1; then
    cat "$log" >&2
    echo "build_pgo.sh: failed: $*" >&2
    exit 1
  fi
}

configure() {  # configure PGO_MODE
  if [[ -f $dir/build.ninja ]]; then
    step meson configure "$dir" "${opts[@]}" -Db_pgo="$1"
  else
    step meson setup "$dir" "$ROOT" "${opts[@]}" -Db_pgo="$1"
  fi
}

echo "build_pgo.sh: instrumented build in $dir" >&2
if [[ -d $dir ]]; then find "$dir" -name '*.gcda' -delete; fi
configure generate
training=(examples/http_server examples/echo_server examples/echo_client)
step ninja -C "$dir" "${training[@]}"

echo "build_pgo.sh: training run" >&2
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() {  # wait_port PORT: until something listens there (at most 5 s)
  for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "build_pgo.sh: nothing listens on port $1" >&2
  return 1
}
server=
stop_server() {
  if [[ -n $server ]]; then
    kill -INT "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true  # exits 130 on SIGINT; the counts are written at exit
    server=
  fi
}
trap 'stop_server; rm -f "$log" "$lua"' EXIT
# wrk sends `depth` requests in each write, as the benchmark's pipelined row does.
cat >"$lua" <<'LUA'
init = function(args)
  local depth, r = tonumber(args[1]) or 1, {}
  for i = 1, depth do r[i] = wrk.format() end
  batch = table.concat(r)
end
request = function() return batch end
LUA
for backend in io_uring epoll; do
  port=$(free_port)
  "$dir/examples/http_server" --port "$port" --backend "$backend" >>"$log" 2>&1 &
  server=$!
  step wait_port "$port"
  url="http://127.0.0.1:$port"
  step wrk -t1 -c64 -d2s "$url/plaintext"
  step wrk -t1 -c256 -d1s "$url/json"
  step wrk -t1 -c64 -d1s -s "$lua" "$url/plaintext" -- 16
  step wrk -t1 -c16 -d1s -H 'Connection: close' "$url/plaintext"
  stop_server

  port=$(free_port)
  "$dir/examples/echo_server" --port "$port" --backend "$backend" >>"$log" 2>&1 &
  server=$!
  step wait_port "$port"
  step "$dir/examples/echo_client" --port "$port" --backend "$backend" --count 2000 --size 64 --connections 50
  stop_server
done

echo "build_pgo.sh: optimised build of $*" >&2
configure use
step ninja -C "$dir" "$@"
# The training programs not rebuilt above are still the instrumented ones,
# several times slower: remove them, so that nothing measures them by
# mistake (ninja -C DIR builds them again, optimised, when asked).
for t in "${training[@]}"; do
  [[ " $* " == *" $t "* ]] || rm -f "$dir/$t"
done
