#!/usr/bin/python3
"""Paired A/B: server CPU per request (or per echo message) of two servers,
measured in many short alternating slices, for quick before/after checks.

    bench/ab.py --a 'build-pgo/examples/http_server --port {port}' \\
                --b 'build-release/examples/http_server --port {port}'
    bench/ab.py --mode pipelined --a ... --b /tmp/corio-peers/epoll_server http {port}
    bench/ab.py --mode echo --conns 500 --a 'build-pgo/examples/echo_server --port {port}' \\
                --b '/tmp/corio-peers/uring_server echo {port}'

Both servers run for the whole measurement, pinned to CPU 0; the load
generator (wrk -t1 for http, ../shared/peers' echo_client for echo) runs on
CPU 1 against one of them at a time. Each pair of slices (A then B, or B
then A, alternating) gives one ratio of work per server CPU-second, A ÷ B
(server CPU from /proc/PID/schedstat, nanoseconds). The output is the median
of those ratios with a bootstrap 90 % interval: slow drifts of a shared
machine hit both halves of a pair alike, so 20 pairs of 2 s settle a few
per cent, where the full interleaved runs (bench/http_server.sh,
bench/peers_echo.sh) need their minutes to do so.

This is a development tool, for telling whether a change helped. The
tables the issues ask for come from bench/http_server.sh and
bench/peers_echo.sh, with every peer in the same run.
"""
import argparse
import os
import random
import re
import shlex
import statistics
import subprocess
import sys
import time

import http_server as hs  # its Server (start, wait, stop) and wrk runner

def cpu_ns(pid):
    # Every thread of the server (a worker pool counts too).
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total


def start(name, cmd):
    return hs.Server(name, lambda port: shlex.split(cmd.replace("{port}", str(port))))


def load(args, srv, secs):
    """Runs the load generator for secs against srv; returns the work done
    per second (requests or messages)."""
    if args.mode == "echo":
        # As ../shared/peers/run.sh runs it: connect, 1 s of warm-up, then
        # secs measured; the server's CPU over the whole run counts (its
        # accepts and closes included, as there).
        client = os.path.join(hs.PEERS_BUILD, "echo_client")
        out = subprocess.run(["taskset", "-c", "1", client, "127.0.0.1", str(srv.port), str(args.conns),
                              str(secs), "64", "1"], capture_output=True, text=True, check=True)
        m = re.search(r"msgs_per_sec=([\d.]+)", out.stdout + out.stderr)
        if not m:
            sys.exit("ab.py: echo_client printed no msgs_per_sec=N:\n" + out.stdout + out.stderr)
        return float(m.group(1))
    if args.mode == "pipelined":
        n, errors = hs.wrk(srv.url(), args.conns, secs, ["-s", os.path.join(hs.PEERS, "src", "pipeline.lua")], ["16"])
    else:
        n, errors = hs.wrk(srv.url(), args.conns, secs)
    if errors:
        sys.exit(f"ab.py: wrk saw {errors} socket errors or non-2xx responses")
    return n / secs


def measure(args, srv):
    """Work per server CPU-second: the rate the client saw, over the share
    of a CPU the server used meanwhile."""
    c0, t0 = cpu_ns(srv.p.pid), time.monotonic_ns()
    rate = load(args, srv, args.secs)
    c1, t1 = cpu_ns(srv.p.pid), time.monotonic_ns()
    return rate / ((c1 - c0) / (t1 - t0))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", required=True, help="command of server A; {port} is replaced")
    ap.add_argument("--b", required=True, help="command of server B; {port} is replaced")
    ap.add_argument("--mode", choices=["keepalive", "pipelined", "echo"], default="keepalive")
    ap.add_argument("--conns", type=int, default=None, help="connections (http: 256, echo: 50)")
    ap.add_argument("--pairs", type=int, default=20)
    ap.add_argument("--secs", type=int, default=2, help="seconds per slice")
    args = ap.parse_args()
    if args.conns is None:
        args.conns = 50 if args.mode == "echo" else 256
    if args.mode != "echo" and subprocess.run(["which", "wrk"], capture_output=True).returncode != 0:
        sys.exit("ab.py: wrk is needed (scripts/setup.sh installs it)")
    if args.mode == "echo" and not os.access(os.path.join(hs.PEERS_BUILD, "echo_client"), os.X_OK):
        sys.exit(f"ab.py: {hs.PEERS_BUILD}/echo_client is missing (run ../shared/peers/run.sh once, "
                 "or bench/peers_echo.sh, to build it)")

    servers = {}
    try:
        servers["A"] = start("A", args.a)
        servers["B"] = start("B", args.b)
        for srv in servers.values():
            load(args, srv, 1)  # warm-up: caches, the frame allocator, TCP
        ratios, ra, rb = [], [], []
        for i in range(args.pairs):
            order = ("A", "B") if i % 2 == 0 else ("B", "A")
            got = {name: measure(args, servers[name]) for name in order}
            ra.append(got["A"])
            rb.append(got["B"])
            ratios.append(got["A"] / got["B"])
            print(f"pair {i + 1:2}/{args.pairs}: A {got['A']:12,.0f}  B {got['B']:12,.0f}  A÷B {ratios[-1]:.3f}",
                  file=sys.stderr)
    finally:
        for srv in servers.values():
            srv.stop()

    rng = random.Random(1)
    meds = sorted(statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(2000))
    lo, hi = meds[int(0.05 * len(meds))], meds[int(0.95 * len(meds)) - 1]
    unit = "messages" if args.mode == "echo" else "requests"
    print(f"mode {args.mode}, {args.conns} connections, {args.pairs} pairs × {args.secs} s")
    print(f"A: {args.a}\nB: {args.b}")
    print(f"{unit} per server CPU-second: A median {statistics.median(ra):,.0f}, B median {statistics.median(rb):,.0f}")
    print(f"A ÷ B: median of per-pair ratios {statistics.median(ratios):.3f} "
          f"(bootstrap 90 % interval {lo:.3f}-{hi:.3f}; pairs ranged {min(ratios):.3f}-{max(ratios):.3f})")


if __name__ == "__main__":
    main()
