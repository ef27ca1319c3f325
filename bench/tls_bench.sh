#!/usr/bin/env bash
# TLS benchmark: nginx (Debian's nginx-light, 1 worker) vs corio's TLS server
# (bench/tls_server.cpp, io_uring and epoll) in the same run, same
# certificate (RSA 2048), TLS 1.3 with TLS_AES_128_GCM_SHA256 and X25519.
#   - handshakes/s: bench/tls_load.cpp, THREADS blocking clients doing full
#     handshakes (no resumption) for HS_SECONDS;
#   - bulk MB/s: one connection downloading BULK_MB MiB.
# Servers are pinned to CPU 0, the client to CPU 1. ROUNDS short rounds, the
# order rotating each round; the table shows medians and corio ÷ nginx
# (median of the per-round ratios). Usage:
#   bench/tls_bench.sh                 # ROUNDS=5 HS_SECONDS=4 BULK_MB=512 THREADS=8
#   BUILD=build ROUNDS=3 bench/tls_bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${BUILD:-build-release}
ROUNDS=${ROUNDS:-5}
HS_SECONDS=${HS_SECONDS:-4}
BULK_MB=${BULK_MB:-512}
THREADS=${THREADS:-8}
SERVERS=${SERVERS:-"nginx corio-io_uring corio-epoll"}

command -v nginx >/dev/null || { echo "tls_bench: nginx missing (scripts/setup.sh installs nginx-light)" >&2; exit 1; }
if [[ ! -x $BUILD/bench/tls_server || ! -x $BUILD/bench/tls_load ]]; then
  "$ROOT/scripts/build_release.sh" "$BUILD" bench/tls_server bench/tls_load >/dev/null 2>&1
fi

DIR=$(mktemp -d /tmp/corio-tls-bench-XXXXXX)
chmod 755 "$DIR"  # nginx's worker (user nobody) reads the bulk file
SERVER_PID=""
cleanup() {
  if [[ -n $SERVER_PID ]]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$DIR"
}
trap cleanup EXIT

openssl req -x509 -newkey rsa:2048 -nodes -keyout "$DIR/key.pem" -out "$DIR/cert.pem" -days 7 \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null
BULK_BYTES=$((BULK_MB * 1024 * 1024))
head -c "$BULK_BYTES" /dev/zero > "$DIR/bulk"
chmod 644 "$DIR/bulk"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {  # bounded: 10 s
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "tls_bench: nothing listens on port $1" >&2; return 1
}

start_server() {  # name port
  case $1 in
    nginx)
      mkdir -p "$DIR/nginx"
      sed -e "s|@DIR@|$DIR/nginx|g" -e "s|@PORT@|$2|g" -e "s|@CERT@|$DIR/cert.pem|g" \
          -e "s|@KEY@|$DIR/key.pem|g" -e "s|@BULK@|$DIR/bulk|g" "$ROOT/bench/nginx_tls.conf.in" > "$DIR/nginx/nginx.conf"
      taskset -c 0 nginx -c "$DIR/nginx/nginx.conf" -p "$DIR/nginx" 2>>"$DIR/nginx/stderr" &
      ;;
    corio-*)
      taskset -c 0 "$BUILD/bench/tls_server" --port "$2" --cert "$DIR/cert.pem" --key "$DIR/key.pem" \
        --backend "${1#corio-}" --bulk-bytes "$BULK_BYTES" >/dev/null &
      ;;
  esac
  SERVER_PID=$!
  wait_port "$2"
}
stop_server() {
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

RAW=$DIR/raw.jsonl
: > "$RAW"
read -r -a names <<< "$SERVERS"
echo "tls_bench: ${#names[@]} servers × $ROUNDS rounds (handshakes ${HS_SECONDS}s × $THREADS clients, bulk ${BULK_MB} MiB); load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for ((round = 0; round < ROUNDS; round++)); do
  for ((k = 0; k < ${#names[@]}; k++)); do
    name=${names[$(((k + round) % ${#names[@]}))]}
    port=$(free_port)
    start_server "$name" "$port"
    hs=$(taskset -c 1 "$BUILD/bench/tls_load" handshakes --port "$port" --seconds "$HS_SECONDS" --threads "$THREADS")
    bulk=$(taskset -c 1 "$BUILD/bench/tls_load" bulk --port "$port" --path /bulk)
    stop_server
    echo "{\"round\": $round, \"server\": \"$name\", \"hs\": $hs, \"bulk\": $bulk}" >> "$RAW"
    echo "  round $round $name: $(echo "$hs" | sed 's/.*handshakes_per_s": \([0-9.]*\).*/\1/') handshakes/s, $(echo "$bulk" | sed 's/.*bulk_MBps": \([0-9.]*\).*/\1/') MB/s" >&2
  done
done

python3 - "$RAW" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
servers = list(dict.fromkeys(r["server"] for r in rows))
rounds = sorted(set(r["round"] for r in rows))
def val(srv, rnd, key, metric):
    for r in rows:
        if r["server"] == srv and r["round"] == rnd:
            return r[key][metric]
def med(srv, key, metric):
    return statistics.median(val(srv, rnd, key, metric) for rnd in rounds)
def ratio(srv, key, metric):
    return statistics.median(val(srv, rnd, key, metric) / val("nginx", rnd, key, metric) for rnd in rounds)
print("| server | handshakes/s | ÷ nginx | bulk MB/s | ÷ nginx |")
print("|---|---|---|---|---|")
for s in servers:
    hs, bk = med(s, "hs", "handshakes_per_s"), med(s, "bulk", "bulk_MBps")
    if "nginx" in servers and s != "nginx":
        print(f"| {s} | {hs:.0f} | {ratio(s, 'hs', 'handshakes_per_s'):.2f} | {bk:.0f} | {ratio(s, 'bulk', 'bulk_MBps'):.2f} |")
    else:
        print(f"| {s} | {hs:.0f} | | {bk:.0f} | |")
print(f"\nmedians of {len(rounds)} rounds; server on CPU 0, client on CPU 1")
PY
echo "tls_bench: load at the end $(cut -d' ' -f1-3 /proc/loadavg)" >&2
