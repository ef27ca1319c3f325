#!/usr/bin/env python3
"""Load tests of examples/http_server that wrk cannot judge (issue 11).

  http_load.py shutdown  --server PATH [--connections 1000] [--warmup 3] [--grace-ms 2000]
  http_load.py slowloris --server PATH [--slow 5000] [--header-timeout-ms 10000] [--requests 3000]
  http_load.py probe     --port PORT [--requests N] ...      (slowloris runs this in a child)

shutdown: keeps --connections keep-alive connections busy (one request, or
now and then two pipelined, at a time on each; a mix of /plaintext, /json and
/sleep?ms=1..200 so that handlers are running when the signal comes), sends
SIGTERM after --warmup seconds and checks every response byte for byte
(status line, Content-Type, Content-Length, body). Each request ends in one
class:
  complete       the whole expected response;
  not accepted   the connection ended (FIN, or RST) before any byte of its
                 response: the server never took it (an idle connection closed
                 by the shutdown, a pipelined request behind a
                 "Connection: close" answer, a connection still in the accept
                 queue when the listener closed);
  truncated      some bytes of the response, then the end: FAIL;
  wrong          a complete response that is not the expected one: FAIL;
  no answer      nothing within --request-timeout while the connection stays
                 open: FAIL.
Also FAIL: bytes after a "Connection: close" response, an exit status other
than 143, an exit later than the grace period after the signal, or no request
in flight at the signal (then nothing was tested).

slowloris: opens --slow connections that send a request head one byte every
--trickle-ms (the head never ends), then, while they are all held, runs the
probe in a separate process (so that this one's event loop does not distort
its clock): --requests normal requests, half on one keep-alive connection and
half each on a fresh connection (connect included), paced --interval-ms apart;
p50/p99 of their latency must be <= --p99-ms. Then every slow connection must
be ended by the server's header timeout (counted from its first byte): "408"
(the 408 response, then the close) or "closed" (FIN/RST without a response),
between the timeout and the timeout + --timeout-slack-ms.

Each mode prints its figures and one last line "<mode>: … => PASS|FAIL", and
exits 0 on PASS, 1 on FAIL, 2 when it cannot run. Every wait is bounded.
Only Python's standard library (Debian's /usr/bin/python3 is enough).
"""
import argparse
import asyncio
import collections
import json
import os
import random
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HOST = "127.0.0.1"

EXPECTED = {
    "/plaintext": (b"text/plain", b"Hello, World!"),
    "/json": (b"application/json", b'{"message":"Hello, World!"}'),
}


def expected(path):
    if path.startswith("/sleep?ms="):
        return b"text/plain", b"slept %d ms\n" % int(path[len("/sleep?ms="):])
    return EXPECTED[path]


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def percentile(values, p):
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


class Server:
    """The http_server child: started with --port 0, its port read from its first line."""

    def __init__(self, path, args):
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([path, "--port", "0"] + args, stdout=subprocess.PIPE, stderr=self.err)
        line = self.proc.stdout.readline().decode()
        if not line.startswith("listening on "):
            self.kill()
            raise SystemExit(f"the server did not start: {line!r} {self.stderr()}")
        self.port = int(line.rsplit(":", 1)[1])

    def stderr(self):
        self.err.seek(0)
        return self.err.read().decode(errors="replace")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# ---- shutdown --------------------------------------------------------------------


class Stats:
    def __init__(self):
        self.c = collections.Counter()
        self.t_signal = None
        self.failed = 0
        self.first_failures = []

    def fail(self, kind, detail=""):
        """Counts a FAIL of this kind; the first few keep their details."""
        self.c[kind] += 1
        self.failed += 1
        if len(self.first_failures) < 10:
            self.first_failures.append(f"{kind}: {detail}" if detail else kind)


class Client(asyncio.Protocol):
    """One keep-alive connection; parses responses exactly as they arrive."""

    def __init__(self, stats):
        self.stats = stats
        self.buf = bytearray()
        self.pending = collections.deque()  # (path, time sent)
        self.close_seen = False  # a response said "Connection: close"
        self.gone = False
        self.idle = None  # future: every pending request answered, or the connection gone
        self.lost = asyncio.get_running_loop().create_future()
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def send(self, paths):
        now = time.monotonic()
        req = b"".join(b"GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (p.encode(), HOST.encode()) for p in paths)
        for p in paths:
            self.pending.append((p, now))
        self.idle = asyncio.get_running_loop().create_future()
        self.transport.write(req)
        self.stats.c["sent"] += len(paths)

    def data_received(self, data):
        if self.close_seen:
            self.stats.fail("bytes after a Connection: close response", repr(bytes(data[:40])))
            return
        self.buf += data
        while self.pending and not self.close_seen:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                break
            lines = bytes(self.buf[:end]).split(b"\r\n")
            fields = {}
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                fields[name.strip().lower()] = value.strip()
            if b"content-length" not in fields:
                self.stats.fail("wrong: no Content-Length", repr(lines[0]))
                self.transport.abort()
                return
            n = int(fields[b"content-length"])
            if len(self.buf) < end + 4 + n:
                break
            body = bytes(self.buf[end + 4:end + 4 + n])
            del self.buf[:end + 4 + n]
            path, t_sent = self.pending.popleft()
            ctype, want = expected(path)
            if lines[0] != b"HTTP/1.1 200 OK" or fields.get(b"content-type") != ctype or body != want:
                self.stats.fail("wrong response", f"{path} answered {lines[0]!r} {fields.get(b'content-type')!r} "
                                                  f"{body[:40]!r}")
            else:
                self.stats.c["complete"] += 1
                ts = self.stats.t_signal
                if ts is not None and t_sent < ts:
                    self.stats.c["in flight at the signal, complete"] += 1
            if fields.get(b"connection", b"").lower() == b"close":
                self.close_seen = True
                self.stats.c["Connection: close responses"] += 1
                if self.buf:
                    self.stats.fail("bytes after a Connection: close response", repr(bytes(self.buf[:40])))
        if not self.pending and self.idle and not self.idle.done():
            self.idle.set_result(None)

    def eof_received(self):
        return False  # let the transport close: connection_lost follows

    def connection_lost(self, exc):
        self.gone = True
        how = "reset" if exc is not None else "FIN"
        first = True
        while self.pending:
            path, t_sent = self.pending.popleft()
            if first and self.buf:
                self.stats.fail("truncated", f"{path} got {len(self.buf)} bytes then {how}")
            else:
                self.stats.c[f"not accepted ({how} before any byte)"] += 1
            first = False
        if self.idle and not self.idle.done():
            self.idle.set_result(None)
        if not self.lost.done():
            self.lost.set_result(exc)


def choose_path(rng):
    r = rng.random()
    if r < 0.4:
        return "/plaintext"
    if r < 0.7:
        return "/json"
    return "/sleep?ms=%d" % rng.randint(1, 200)


async def shutdown_worker(i, port, stats, stop, args):
    rng = random.Random(i)
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        try:
            transport, proto = await asyncio.wait_for(
                loop.create_connection(lambda: Client(stats), HOST, port), args.request_timeout)
        except ConnectionRefusedError:
            stats.c["connects refused (listener closed)"] += 1
            return
        except (OSError, asyncio.TimeoutError) as e:
            if stats.t_signal is None:
                stats.fail("connect failed before the signal", repr(e))
            else:
                stats.c["connects failed after the signal"] += 1
            return
        stats.c["connections"] += 1
        try:
            while not proto.gone and not proto.close_seen and not stop.is_set():
                k = 2 if rng.random() < args.pipelined else 1
                proto.send([choose_path(rng) for _ in range(k)])
                try:
                    await asyncio.wait_for(asyncio.shield(proto.idle), args.request_timeout)
                except asyncio.TimeoutError:
                    stats.fail(f"no answer within {args.request_timeout} s", f"{len(proto.pending)} pending")
                    transport.abort()
                    return
            if proto.close_seen and not proto.gone:
                # The server said it closes: it must, and send nothing more.
                try:
                    await asyncio.wait_for(asyncio.shield(proto.lost), args.request_timeout)
                except asyncio.TimeoutError:
                    stats.fail("no close after a Connection: close response")
                for _ in proto.pending:
                    stats.c["not accepted (behind a Connection: close response)"] += 1
                proto.pending.clear()
        finally:
            transport.close()


async def shutdown_main(args):
    raise_fd_limit()
    srv = Server(args.server, ["--backend", args.backend, "--shutdown-grace", str(args.grace_ms),
                               "--max-connections", str(args.connections + 1000), "--workers", str(args.workers)])
    stats = Stats()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    workers = []
    try:
        for i in range(args.connections):
            workers.append(asyncio.create_task(shutdown_worker(i, srv.port, stats, stop, args)))
            if i % 100 == 99:
                await asyncio.sleep(0.01)  # not one SYN flood: the accept queue would overflow
        await asyncio.sleep(args.warmup)
        before = stats.c["complete"]
        open_conns = sum(1 for w in workers if not w.done())
        stats.t_signal = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        status = None
        deadline = stats.t_signal + args.grace_ms / 1000.0 + 10
        while time.monotonic() < deadline:
            status = srv.proc.poll()
            if status is not None:
                break
            await asyncio.sleep(0.005)
        t_exit = time.monotonic()
        exit_s = t_exit - stats.t_signal
        # The workers end on their own (refused reconnects); bounded anyway.
        done, still = await asyncio.wait(workers, timeout=args.request_timeout + 5)
        stop.set()
        for w in still:
            w.cancel()
        if still:
            stats.c["clients still running after the exit"] += len(still) - 1
            stats.fail("clients still running after the exit", f"{len(still)}, {args.request_timeout + 5} s after")
        for w in done:
            if w.exception() is not None:
                stats.fail("client error", repr(w.exception()))
    finally:
        srv.kill()
    c = stats.c
    exit_str = "none (still running)" if status is None else (f"killed by signal {-status}" if status < 0 else str(status))
    exit_code_ok = status == 143
    in_time = status is not None and exit_s <= args.grace_ms / 1000.0
    failures = stats.failed
    inflight = c["in flight at the signal, complete"]
    print(f"shutdown: {args.connections} connections, {args.backend}, {args.workers} worker(s); {before} responses before SIGTERM, "
          f"{open_conns} connections open at it")
    for k in sorted(c):
        print(f"  {k}: {c[k]}")
    for f in stats.first_failures:
        print(f"  first failures: {f}")
    err = srv.stderr().strip()
    if err:
        print("  server stderr: " + err.replace("\n", "\n  | ")[:2000])
    v = lambda ok: "PASS" if ok else "FAIL"
    not_acc = sum(val for k, val in c.items() if k.startswith("not accepted"))
    trunc = c["truncated"]
    ok_all = failures == 0 and exit_code_ok and in_time and inflight > 0
    print(f"shutdown: complete {c['complete']} (in flight at SIGTERM {inflight}), not accepted {not_acc}, "
          f"truncated {trunc}, other failures {failures - trunc} {v(failures == 0 and inflight > 0)}; "
          f"exit {exit_str} {v(exit_code_ok)} after {exit_s * 1000:.0f} ms (grace {args.grace_ms} ms) {v(in_time)} "
          f"=> {v(ok_all)}")
    return 0 if ok_all else 1


# ---- slowloris -------------------------------------------------------------------


class Slow(asyncio.Protocol):
    HEAD = b"GET /plaintext HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slowloris\r\nX-Trickle: "

    def __init__(self, ended):
        self.buf = bytearray()
        self.sent = 0
        self.t_first = None
        self.t_end = None
        self.how = None
        self.transport = None
        self.ended = ended

    def connection_made(self, transport):
        self.transport = transport
        self.trickle()

    def trickle(self):
        if self.t_end is not None:
            return
        b = self.HEAD[self.sent:self.sent + 1] or b"a"  # the head never ends
        self.transport.write(b)
        self.sent += 1
        if self.t_first is None:
            self.t_first = time.monotonic()

    def data_received(self, data):
        self.buf += data

    def eof_received(self):
        return False

    def connection_lost(self, exc):
        self.t_end = time.monotonic()
        if self.buf.startswith(b"HTTP/1.1 408 "):
            self.how = "408"
        elif self.buf:
            self.how = "other response: " + bytes(self.buf[:40]).decode(errors="replace")
        else:
            self.how = "closed (reset)" if exc is not None else "closed (FIN)"
        self.ended.append(self)


async def slowloris_main(args):
    raise_fd_limit()
    srv = Server(args.server, ["--backend", args.backend, "--header-timeout", str(args.header_timeout_ms),
                               "--max-connections", str(args.slow + 1000)])
    loop = asyncio.get_running_loop()
    ended = []
    conns = []
    connect_errors = collections.Counter()
    timeout_s = args.header_timeout_ms / 1000.0
    ticker = None
    probe_out = None
    try:
        t0 = time.monotonic()

        async def open_one():
            try:
                _, p = await asyncio.wait_for(loop.create_connection(lambda: Slow(ended), HOST, srv.port), 10)
                conns.append(p)
            except (OSError, asyncio.TimeoutError) as e:
                connect_errors[type(e).__name__] += 1

        for i in range(0, args.slow, 250):
            await asyncio.gather(*(open_one() for _ in range(min(250, args.slow - i))))
        t_open = time.monotonic() - t0

        async def tick():
            # Every connection sends one byte per trickle period, spread over
            # ten slices so that the server sees a steady stream.
            slices = 10
            n = 0
            while True:
                await asyncio.sleep(args.trickle_ms / 1000.0 / slices)
                for p in conns[n % slices::slices]:
                    if p.t_end is None:
                        p.trickle()
                n += 1

        ticker = asyncio.create_task(tick())
        await asyncio.sleep(0.2)
        held_at_probe_start = sum(1 for p in conns if p.t_end is None)
        cmd = [sys.executable, os.path.abspath(__file__), "probe", "--port", str(srv.port), "--requests",
               str(args.requests), "--interval-ms", str(args.interval_ms)]
        proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE)
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout_s + 60)
        except asyncio.TimeoutError:
            proc.kill()
            out = b""
        probe_out = json.loads(out) if out.strip() else {"error": "the probe did not finish"}
        held_at_probe_end = sum(1 for p in conns if p.t_end is None)
        t_probe_end = time.monotonic()
        # Every slow connection must now end by the header timeout.
        last_first = max((p.t_first for p in conns if p.t_first), default=time.monotonic())
        wait_until = last_first + timeout_s + args.timeout_slack_ms / 1000.0 + 1
        while time.monotonic() < wait_until and any(p.t_end is None for p in conns):
            await asyncio.sleep(0.05)
    finally:
        if ticker:
            ticker.cancel()
        for p in conns:
            if p.transport:
                p.transport.abort()
        srv.proc.send_signal(signal.SIGTERM)
        try:
            srv.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        srv.kill()

    v = lambda ok: "PASS" if ok else "FAIL"
    how = collections.Counter(p.how if p.how else "still open" for p in conns)
    elapsed = sorted(p.t_end - p.t_first for p in conns if p.t_end is not None and p.t_first is not None)
    lo, hi = timeout_s - 0.05, timeout_s + args.timeout_slack_ms / 1000.0
    in_window = sum(1 for e in elapsed if lo <= e <= hi)
    ended_by_timeout = how["408"] + how["closed (FIN)"] + how["closed (reset)"]
    print(f"slowloris: {args.slow} slow connections ({len(conns)} opened in {t_open:.1f} s, "
          f"connect errors {dict(connect_errors) or 0}), one byte every {args.trickle_ms} ms, header timeout "
          f"{args.header_timeout_ms} ms, {args.backend}")
    print(f"  held when the probe started {held_at_probe_start}, when it ended {held_at_probe_end} "
          f"({t_probe_end - t0:.1f} s after the first connect)")
    print(f"  how the slow connections ended: {dict(how)}")
    if elapsed:
        print(f"  first byte -> end: min {elapsed[0]:.3f} s, p50 {percentile(elapsed, 50):.3f} s, "
              f"max {elapsed[-1]:.3f} s; {in_window} in [{lo:.2f}, {hi:.2f}] s")
    err = srv.stderr().strip()
    if err:
        print("  server stderr: " + err.replace("\n", "\n  | ")[:2000])
    lat = probe_out.get("latencies_ms", [])
    ok_probe = (not probe_out.get("error") and probe_out.get("errors", 1) == 0 and len(lat) == args.requests
                and held_at_probe_end == len(conns) == args.slow)
    p50, p99 = percentile(lat, 50), percentile(lat, 99)
    ka = probe_out.get("keepalive_ms", [])
    fresh = probe_out.get("fresh_ms", [])
    if lat:
        print(f"  normal requests: {len(lat)} (keep-alive p50 {percentile(ka, 50):.2f} p99 {percentile(ka, 99):.2f} ms; "
              f"fresh connection p50 {percentile(fresh, 50):.2f} p99 {percentile(fresh, 99):.2f} ms; "
              f"max {max(lat):.2f} ms) over {probe_out.get('seconds', 0):.1f} s")
    if probe_out.get("error") or probe_out.get("errors"):
        print(f"  probe: {probe_out.get('error') or probe_out.get('first_error')} ({probe_out.get('errors')} errors)")
    ok_lat = bool(lat) and p99 <= args.p99_ms
    ok_slow = ended_by_timeout == len(conns) == args.slow and in_window == len(conns)
    ok = ok_probe and ok_lat and ok_slow
    print(f"slowloris: normal requests {len(lat)} ok while {held_at_probe_end} slow held {v(ok_probe)}, "
          f"p50 {p50:.2f} ms p99 {p99:.2f} ms (<= {args.p99_ms} ms) {v(ok_lat)}; slow connections timed out "
          f"{ended_by_timeout}/{args.slow} (408: {how['408']}) at {percentile(elapsed, 50) if elapsed else float('nan'):.2f} s "
          f"p50 after their first byte {v(ok_slow)} => {v(ok)}")
    return 0 if ok else 1


# ---- probe: normal requests, blocking sockets, in their own process ----------------


def read_response(sock, buf):
    while b"\r\n\r\n" not in buf:
        d = sock.recv(65536)
        if not d:
            raise ConnectionError("EOF in the response head")
        buf += d
    end = buf.index(b"\r\n\r\n")
    head = bytes(buf[:end]).split(b"\r\n")
    n = 0
    for line in head[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            n = int(value)
    while len(buf) < end + 4 + n:
        d = sock.recv(65536)
        if not d:
            raise ConnectionError("EOF in the response body")
        buf += d
    body = bytes(buf[end + 4:end + 4 + n])
    del buf[:end + 4 + n]
    if head[0] != b"HTTP/1.1 200 OK" or body != b"Hello, World!":
        raise ValueError(f"unexpected response {head[0]!r} {body[:40]!r}")


def probe_main(args):
    req = b"GET /plaintext HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    lat, ka, fresh = [], [], []
    errors, first_error = 0, None
    keep = None
    kbuf = bytearray()
    t_start = time.monotonic()
    for i in range(args.requests):
        try:
            if i % 2 == 0:
                t = time.perf_counter()
                with socket.create_connection((HOST, args.port), timeout=5) as s:
                    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    s.sendall(req)
                    read_response(s, bytearray())
                ms = (time.perf_counter() - t) * 1000
                fresh.append(ms)
            else:
                if keep is None:
                    keep = socket.create_connection((HOST, args.port), timeout=5)
                    keep.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                t = time.perf_counter()
                keep.sendall(req)
                read_response(keep, kbuf)
                ms = (time.perf_counter() - t) * 1000
                ka.append(ms)
            lat.append(ms)
        except (OSError, ValueError) as e:
            errors += 1
            first_error = first_error or repr(e)
            if keep is not None:
                keep.close()
            keep, kbuf = None, bytearray()
        time.sleep(args.interval_ms / 1000.0)
    if keep is not None:
        keep.close()
    json.dump({"latencies_ms": lat, "keepalive_ms": ka, "fresh_ms": fresh, "errors": errors,
               "first_error": first_error, "seconds": time.monotonic() - t_start}, sys.stdout)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("shutdown")
    s.add_argument("--server", required=True)
    s.add_argument("--backend", default="io_uring", choices=["io_uring", "epoll"])
    s.add_argument("--connections", type=int, default=1000)
    s.add_argument("--warmup", type=float, default=3.0, help="seconds of load before SIGTERM")
    s.add_argument("--grace-ms", type=int, default=2000, help="the server's --shutdown-grace")
    s.add_argument("--pipelined", type=float, default=0.1, help="share of sends that pipeline two requests")
    s.add_argument("--request-timeout", type=float, default=10.0)
    s.add_argument("--workers", type=int, default=1, help="the server's --workers (loops on threads)")
    s = sub.add_parser("slowloris")
    s.add_argument("--server", required=True)
    s.add_argument("--backend", default="io_uring", choices=["io_uring", "epoll"])
    s.add_argument("--slow", type=int, default=5000)
    s.add_argument("--trickle-ms", type=int, default=1000)
    s.add_argument("--header-timeout-ms", type=int, default=10000)
    s.add_argument("--timeout-slack-ms", type=int, default=2000)
    s.add_argument("--requests", type=int, default=3000)
    s.add_argument("--interval-ms", type=float, default=1.0)
    s.add_argument("--p99-ms", type=float, default=10.0)
    s = sub.add_parser("probe")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--requests", type=int, default=3000)
    s.add_argument("--interval-ms", type=float, default=1.0)
    args = ap.parse_args()
    if args.mode == "probe":
        return probe_main(args)
    if args.mode == "shutdown":
        return asyncio.run(shutdown_main(args))
    return asyncio.run(slowloris_main(args))


if __name__ == "__main__":
    sys.exit(main())
