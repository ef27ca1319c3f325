#!/usr/bin/env bash
# The demo, offline: builds corio (release), generates a sample site of about
# 2,000 interlinked pages (with broken links, redirects and a robots.txt),
# serves it on loopback with corio's own HTTP server (examples/http_server),
# crawls it with the crawler (examples/crawler), and prints the summary.
#   scripts/demo.sh [--pages N] [--concurrency N] [--backend io_uring|epoll]
set -euo pipefail
cd "$(dirname "$0")/.."
pages=2000 concurrency=32 backend=()
while (($#)); do
  case $1 in
    --pages) pages=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --backend) backend=(--backend "$2"); shift 2 ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "demo.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
echo "demo: building (release)…"
scripts/build_release.sh build-release examples/http_server examples/crawler/crawler 2>/dev/null

work=$(mktemp -d /tmp/corio-demo-XXXXXX)
server_pid=
cleanup() {
  local rc=$?
  if [[ -n $server_pid ]]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true  # it exits 143 on SIGTERM, as servers here do
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
python3 scripts/gen_site.py "$work/site" --pages "$pages" | sed 's/^/demo: /'

# The server prints "listening on HOST:PORT" first; port 0 picks a free one.
build-release/examples/http_server --port 0 --root "$work/site" "${backend[@]}" >"$work/server.out" 2>&1 &
server_pid=$!
for _ in $(seq 200); do
  grep -q '^listening on' "$work/server.out" 2>/dev/null && break
  sleep 0.05
done
addr=$(sed -n 's/^listening on //p' "$work/server.out" | head -1)
[[ -n $addr ]] || { echo "demo: the server did not start:" >&2; cat "$work/server.out" >&2; exit 1; }
echo "demo: serving the site with corio's http_server on http://$addr/"

echo "demo: crawling it: build-release/examples/crawler/crawler http://$addr/ --concurrency $concurrency --output pages.jsonl"
build-release/examples/crawler/crawler "http://$addr/" --concurrency "$concurrency" --per-host "$concurrency" \
  --max-depth 1000 --output "$work/pages.jsonl" "${backend[@]}"
echo "demo: $(wc -l <"$work/pages.jsonl") JSON lines; a few of them:"
sed -n '1p;/"redirects":\["/{p;q}' "$work/pages.jsonl"
grep -m1 '"status":404' "$work/pages.jsonl" || true
grep -m1 'robots.txt' "$work/pages.jsonl" || true
