#!/usr/bin/python3
"""Turns one run of bench/peers_echo.sh or bench/peers_idle.sh (a results
directory of ../shared/peers/run.sh) into bench/report/echo.json or
bench/report/idle.json for bench/report.py, so the README's tables come from
the run's own records, not from copied figures:

    bench/peers_report.py echo /tmp/corio-peers/results/<stamp>
    bench/peers_report.py idle /tmp/corio-peers/results/<stamp>

Echo: server CPU µs per message = server CPU share / messages per second, the
median over the run's rounds per server (run.sh's own table), and beside it
the median of the per-round ratios (corio and its peer measured in the same
round): on this machine single rounds spread by ±20-50 %, and the two
summaries can differ by more than the margins the goals ask for.
"""
import collections, json, os, statistics, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import saved  # noqa: E402

NAMES = {"corio-uring": "corio io_uring", "corio-epoll": "corio epoll", "c-uring": "c-uring (hand-written liburing)",
         "c-epoll": "c-epoll (hand-written)", "asio-epoll": "asio-epoll (Boost.Asio 1.81)",
         "asio-uring": "asio-uring (Boost.Asio 1.81)", "nginx": "nginx (1 worker)"}
RATIOS = [("corio-uring", "c-uring"), ("corio-uring", "asio-epoll"), ("corio-epoll", "c-epoll")]


def rows(results, section):
    with open(os.path.join(results, "results.jsonl")) as f:
        return [r for r in map(json.loads, f) if r.get("section") == section]


def run_date(results):
    stamp = os.path.basename(os.path.normpath(results))  # 20261127T003609Z
    try:
        return time.strftime("%Y-%m-%d %H:%M UTC", time.strptime(stamp, "%Y%m%dT%H%M%SZ"))
    except ValueError:
        return stamp


def echo(results):
    us = collections.defaultdict(dict)  # (conns, round) -> server -> µs/msg
    rate = collections.defaultdict(list)  # (server, conns) -> msg/s
    for r in rows(results, "echo"):
        if r.get("errors") or not r.get("msgs_per_sec"):
            continue
        us[(r["conns"], r["round"])][r["server"]] = r["srv_cpu_pct"] / 100 / r["msgs_per_sec"] * 1e6
        rate[(r["server"], r["conns"])].append(r["msgs_per_sec"])
    servers = [s for s in NAMES if any(s in v for v in us.values())]
    conns = sorted({c for c, _ in us})
    rounds = len({k for _, k in us})
    med = {(s, c): statistics.median([v[s] for (cc, _), v in us.items() if cc == c and s in v])
           for s in servers for c in conns}
    head = "| server | " + " | ".join(f"N={c} msg/s | µs server CPU/msg" for c in conns) + " |"
    table = [head, "|---" * (1 + 2 * len(conns)) + "|"]
    for s in servers:
        cells = [f"{statistics.median(rate[(s, c)]):,.0f} | {med[(s, c)]:.2f}" for c in conns]
        table.append(f"| {NAMES[s]} | " + " | ".join(cells) + " |")
    lines = []
    for a, b in RATIOS:
        if a not in servers or b not in servers:
            continue
        parts = []
        for c in conns:
            per = [v[b] / v[a] for (cc, _), v in us.items() if cc == c and a in v and b in v]
            parts.append(f"N={c}: {med[(b, c)] / med[(a, c)]:.2f} (per-round median {statistics.median(per):.2f}, "
                         f"range {min(per):.2f}-{max(per):.2f})")
        lines.append(f"{a} ÷ {b}: " + "; ".join(parts))
    notes = (f"`bench/peers_echo.sh` ({rounds} interleaved rounds, server pinned to CPU 0, client on CPU 1). "
             "Messages per server CPU-second, corio ÷ peer, from the medians above (and the median of the "
             "per-round ratios): " + " · ".join(lines) + ".")
    build = os.path.join(results, "corio_build.txt")
    if os.path.exists(build):
        notes += " " + open(build).read().strip().capitalize() + "; the peers as ../shared/peers builds them."
    series = {NAMES[s]: 1e6 / med[(s, conns[0])] for s in servers}
    return {"name": "echo", "title": f"TCP echo, 64-byte ping-pong: messages per server CPU-second (N={conns[0]})",
            "date": run_date(results), "machine": saved.machine(), "unit": "messages per server CPU-second",
            "higher_is_better": True, "series": series, "table": "\n".join(table), "notes": notes}


def idle(results):
    table = ["| server | held | RSS Δ per connection | worst probe while held | curl while held |",
             "|---|---|---|---|---|"]
    series = {}
    held = 0
    for r in rows(results, "idle"):
        s = r["server"]
        held = r["held"]
        per = (r["rss_after_kb"] - r["rss_before_kb"]) * 1024 / r["held"]
        series[NAMES.get(s, s)] = round(per)
        code, _, secs = r.get("curl_probe", "?/0s").partition("/")
        curl = f"{code} in {float(secs.rstrip('s')) * 1e3:.2f} ms" if secs else r.get("curl_probe", "?")
        table.append(f"| {NAMES.get(s, s)} | {r['held']:,} | {per:,.0f} B | {r.get('probe_max_us', 0):,.0f} µs | {curl} |")
    notes = ("`bench/peers_idle.sh`: clients in another process on 127.0.0.2-9, one GET each, then idle; "
             "RSS growth of the server while they are held. Per idle connection corio's heap holds the "
             "handler's frame (192 B, with the suspended read) and the task record with its StreamConn "
             "(304 B); the io_uring receive pool's pages are given back once nothing was received for "
             "250-500 ms; see bench/README.md.")
    return {"name": "idle", "title": f"Idle keep-alive connections: user-space bytes per connection ({held:,} held)",
            "date": run_date(results), "machine": saved.machine(), "unit": "bytes per idle connection",
            "higher_is_better": False, "series": series, "table": "\n".join(table), "notes": notes}


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("echo", "idle"):
        sys.exit(__doc__)
    kind, results = sys.argv[1], sys.argv[2]
    doc = echo(results) if kind == "echo" else idle(results)
    out = os.path.join(saved.ROOT, "bench", "report", kind + ".json")
    with open(out, "w") as f:
        json.dump(doc, f, indent=1)
    print(doc["table"])
    print(doc["notes"])
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
