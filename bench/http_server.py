#!/usr/bin/python3
"""The second half of bench/http_server.sh: reads the keep-alive and pipelined
results ../shared/peers/run.sh just wrote, adds what run.sh does not measure
(connection-per-request, syscalls per request), prints one table and saves
bench/report/http_server.json (--save).

    bench/http_server.py --results /tmp/corio-peers/results/<stamp> [--save]

Connection per request: wrk -t1 -c64 -H 'Connection: close' (wrk reconnects
after each response that says "Connection: close"), server pinned to CPU 0,
wrk on CPU 1, against nginx (1 worker, run.sh's configuration) and corio on
both backends, interleaved over --rounds rounds. The hand-written C servers
and Boost.Asio ignore "Connection: close" (the client would have to close),
so they are not in that row.

Syscalls per request: strace -c -f attached to the warmed-up server for a
wrk -c256 keep-alive run (strace slows the server; on io_uring that makes the
batches per io_uring_enter larger, so read it as an order of magnitude).

The figure compared is requests per server CPU-second: wrk's request count
over the server's CPU time, because one wrk thread saturates before the
fastest servers do. For run.sh's rows that time is its srv_cpu_ns (the
on-CPU time of every server thread, /proc/PID/task/*/schedstat); for the
connection-per-request row, utime + stime of the server's processes
(/proc/PID/stat, nginx's worker included).
"""
import argparse, json, os, re, socket, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import saved  # noqa: E402

HZ = os.sysconf("SC_CLK_TCK")
PEERS = os.environ.get("PEERS_DIR", os.path.join(saved.ROOT, "..", "shared", "peers"))
PEERS_BUILD = os.environ.get("PEERS_BUILD", os.path.join(tempfile.gettempdir(), "corio-peers"))
TESTS = ["c64", "c256", "c1024", "pipe16-c256", "close-c64"]
LABEL = {"c64": "keep-alive, 64 conns", "c256": "keep-alive, 256 conns", "c1024": "keep-alive, 1,024 conns",
         "pipe16-c256": "pipelined ×16, 256 conns", "close-c64": "connection per request, 64 conns"}
NGINX_CONF = """worker_processes 1;
daemon off;
master_process on;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
worker_rlimit_nofile 19000;
events {{
  worker_connections 18000;
  use epoll;
}}
http {{
  access_log off;
  keepalive_timeout 300s;
  keepalive_requests 1000000000;
  server {{
    listen 127.0.0.1:{port} backlog=4096{listen_extra};
    location /plaintext {{
      default_type text/plain;
      return 200 'Hello, World!';
    }}
  }}
}}
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def server_cmd(name, port, work):
    hs = os.path.join(os.environ.get("CORIO_BUILD", saved.BUILD), "examples", "http_server")
    if name == "corio-uring":
        return ["env", "CORIO_BACKEND=io_uring", hs, "--port", str(port)]
    if name == "corio-epoll":
        return ["env", "CORIO_BACKEND=epoll", hs, "--port", str(port)]
    if name in ("nginx", "nginx-deferred"):
        # nginx-deferred: `listen … deferred` (TCP_DEFER_ACCEPT), what corio's
        # http::serve does by default (ServeOptions::defer_accept); the peer
        # as ../shared/peers configures it (nginx) does not.
        d = os.path.join(work, f"{name}-{port}")
        os.makedirs(d, exist_ok=True)
        extra = " deferred" if name == "nginx-deferred" else ""
        open(os.path.join(d, "nginx.conf"), "w").write(NGINX_CONF.format(d=d, port=port, listen_extra=extra))
        return ["nginx", "-p", d + "/", "-e", d + "/error.log", "-c", d + "/nginx.conf"]
    if name == "c-uring":
        return [os.path.join(PEERS_BUILD, "uring_server"), "http", str(port)]
    if name == "c-epoll":
        return [os.path.join(PEERS_BUILD, "epoll_server"), "http", str(port)]
    raise SystemExit(f"unknown server {name}")


def tree(pid):
    """pid and its descendants (nginx's worker)."""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                ppid = int(open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += kids.get(p, [])
    return out


def cpu_s(pids):
    t = 0
    for p in pids:
        try:
            f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
            t += int(f[11]) + int(f[12])  # utime + stime (threads included)
        except OSError:
            pass
    return t / HZ


class Server:
    """A server pinned to CPU 0, started with argv_for(port) on a free port
    (wrap: a command it runs under), once it accepts connections."""

    def __init__(self, name, argv_for, wrap=()):
        self.port = free_port()
        self.p = subprocess.Popen(["taskset", "-c", "0", *wrap, *argv_for(self.port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.p.poll() is not None:
                    break
                time.sleep(0.05)
        self.stop()
        raise SystemExit(f"{name} did not start")

    def url(self):
        return f"http://127.0.0.1:{self.port}/plaintext"

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def wrk(url, conns, dur, extra=(), script_args=()):
    """(requests, errors) of a wrk -t1 run on CPU 1; script_args go to a
    -s script's init() (after the URL, as wrk wants them)."""
    tail = ["--", *script_args] if script_args else []
    r = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", f"-c{conns}", f"-d{dur}s", *extra, url, *tail],
                       capture_output=True, text=True)
    m = re.search(r"(\d+) requests in", r.stdout)
    if not m:
        raise SystemExit(f"wrk failed:\n{r.stdout}{r.stderr}")
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", r.stdout)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", r.stdout)
    return int(m.group(1)), (sum(map(int, errs.groups())) if errs else 0) + (int(non2xx.group(1)) if non2xx else 0)


def measure_close(servers, rounds, dur, work):
    """Connection per request: {server: [req per CPU-s, ...]} and wrk errors."""
    out = {s: [] for s in servers}
    errors = {s: 0 for s in servers}
    for r in range(rounds):
        order = servers[r % len(servers):] + servers[:r % len(servers)]
        for s in order:
            srv = Server(s, lambda port: server_cmd(s, port, work))
            try:
                wrk(srv.url(), 64, 1, ["-H", "Connection: close"])  # warm-up
                pids = tree(srv.p.pid)
                c0 = cpu_s(pids)
                n, e = wrk(srv.url(), 64, dur, ["-H", "Connection: close"])
                c1 = cpu_s(pids)
            finally:
                srv.stop()
            out[s].append(n / max(c1 - c0, 1e-9))
            errors[s] += e
            print(f"[http_server] close r{r + 1} {s}: {n / dur:,.0f} req/s, {n / max(c1 - c0, 1e-9):,.0f} req/CPU-s",
                  file=sys.stderr)
    return out, errors


def measure_syscalls(servers, dur, work):
    """{server: (syscalls, top syscalls, requests)}: strace -c -f attached to
    the warmed-up server for one wrk -c256 keep-alive run."""
    out = {}
    for s in servers:
        log = os.path.join(work, f"strace-{s}.txt")
        srv = Server(s, lambda port: server_cmd(s, port, work))
        try:
            wrk(srv.url(), 64, 1)  # warm-up, not traced
            st = subprocess.Popen(["strace", "-c", "-f", "-o", log, "-p", str(srv.p.pid)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1)  # attached
            n, _ = wrk(srv.url(), 256, dur)
            st.send_signal(2)  # detaches and writes the summary
            st.wait(30)
        finally:
            srv.stop()
        calls = []
        for line in open(log):
            f = line.split()
            if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
                calls.append((int(f[3]), f[-1]))
        calls.sort(reverse=True)
        out[s] = (sum(c for c, _ in calls), calls[:4], n)
    return out


def median(v):
    return statistics.median(v) if v else None


def rate(r):
    """Requests per server CPU-second of one run.sh row, or None if it is not a measured HTTP run."""
    if r.get("section") != "http" or not r.get("requests") or not r.get("srv_cpu_ns"):
        return None
    return r["requests"] / (r["srv_cpu_ns"] / 1e9)


def baseline(v, peer):
    """The value corio is divided by for `peer`, from {server: value}: the better C server, nginx or asio."""
    if peer == "best C":
        return max([x for x in (v.get("c-uring"), v.get("c-epoll")) if x] or [0]) or None
    return v.get({"nginx": "nginx", "asio": "asio-epoll"}[peer])


def load_runsh(results):
    rows = [json.loads(l) for l in open(os.path.join(results, "results.jsonl")) if l.strip()]
    per = {}
    for r in rows:
        if (x := rate(r)) is not None:
            per.setdefault((r["server"], r["test"]), []).append(x)
    return {k: median(v) for k, v in per.items()}, rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True, help="run.sh's results directory")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dur", type=float, default=5)
    ap.add_argument("--strace-dur", type=float, default=3)
    ap.add_argument("--save", action="store_true")
    a = ap.parse_args()

    work = tempfile.mkdtemp(prefix="corio-http-bench-")
    vals, rows = load_runsh(a.results)
    closes, close_errors = measure_close(["nginx", "nginx-deferred", "corio-uring", "corio-epoll"], a.rounds,
                                         int(a.dur), work)
    for s, v in closes.items():
        vals[(s, "close-c64")] = median(v)
    sc = measure_syscalls(["corio-uring", "corio-epoll", "c-uring", "c-epoll"], int(a.strace_dur), work)

    peers = ["c-uring", "c-epoll", "nginx", "asio-epoll"]
    corio = ["corio-uring", "corio-epoll"]

    def fmt(v):
        return f"{v:,.0f}" if v else "—"

    def ratio(a_, b_):
        return a_ / b_ if a_ and b_ else None

    lines = ["Requests per server CPU-second (median over rounds; higher is better) and corio ÷ peer:", "",
             "| test | " + " | ".join(corio + peers) + " | uring ÷ best C | epoll ÷ best C | uring ÷ nginx | "
             "epoll ÷ nginx | uring ÷ asio | epoll ÷ asio |",
             "|---" * (1 + len(corio) + len(peers) + 6) + "|"]
    checks = []
    for t in TESTS:
        v = {s: vals.get((s, t)) for s in corio + peers}
        rs = [(s, peer, ratio(v[s], baseline(v, peer))) for peer in ("best C", "nginx", "asio") for s in corio]
        lines.append(f"| {LABEL[t]} | " + " | ".join(fmt(v[s]) for s in corio + peers) + " | " +
                     " | ".join(f"{x:.2f}" if x else "—" for _, _, x in rs) + " |")
        goals = {"c64": {"best C": 0.95, "nginx": 1.15, "asio": 1.1}, "c256": {"best C": 0.95, "nginx": 1.15, "asio": 1.1},
                 "c1024": {"best C": 0.95, "nginx": 1.15, "asio": 1.1}, "pipe16-c256": {"best C": 0.95},
                 "close-c64": {"nginx": 1.0}}[t]
        for s, peer, x in rs:
            if peer in goals:
                checks.append(f"{'PASS' if x and x >= goals[peer] else 'FAIL'} {s} {LABEL[t]}: ÷ {peer} "
                              f"{x:.2f} (goal ≥ {goals[peer]})" if x else f"n/a {s} {LABEL[t]} ÷ {peer}")
    # The same ratios round by round: each corio run against the peers' runs of
    # its own round (minutes apart at most), so slow drift of the machine
    # cancels out. Reported beside the ratio of medians above, which decides.
    per_round = {}
    for r in rows:
        if (x := rate(r)) is not None:
            per_round.setdefault((r["test"], r.get("round")), {})[r["server"]] = x
    pr_lines = []
    for t in TESTS:
        cells = []
        for s in corio:
            for peer in ("best C", "nginx", "asio"):
                xs = [x for (tt, _), v in per_round.items() if tt == t
                      for x in [ratio(v.get(s), baseline(v, peer))] if x]
                cells.append(f"{median(xs):.2f} ({min(xs):.2f}–{max(xs):.2f})" if xs else "—")
        if any(c != "—" for c in cells):
            pr_lines.append(f"| {LABEL[t]} | " + " | ".join(cells) + " |")
    if pr_lines:
        lines += ["", "The same ratios per round (median of the rounds' ratios, lowest–highest round):", "",
                  "| test | uring ÷ best C | uring ÷ nginx | uring ÷ asio | epoll ÷ best C | epoll ÷ nginx | "
                  "epoll ÷ asio |", "|---" * 7 + "|"] + pr_lines
    nd = vals.get(("nginx-deferred", "close-c64"))
    if nd:
        cu, ce = vals.get(("corio-uring", "close-c64")), vals.get(("corio-epoll", "close-c64"))
        lines += ["", "Connection per request, like for like: corio hands a connection over once its request "
                  "arrived (TCP_DEFER_ACCEPT, `ServeOptions::defer_accept`, on by default); nginx as configured "
                  "above does not. nginx with `listen … deferred`: "
                  f"{fmt(nd)} requests per CPU-second; uring ÷ it "
                  f"{ratio(cu, nd) or 0:.2f}, epoll ÷ it {ratio(ce, nd) or 0:.2f}."]
    lines += ["", "Syscalls per request (strace -c -f on the server, wrk -c256 keep-alive, "
              f"{int(a.strace_dur)} s):", "",
              "| server | syscalls/request | most frequent |", "|---|---|---|"]
    for s, (total, top, n) in sc.items():
        per = total / max(n, 1)
        lines.append(f"| {s} | {per:.2f} | " + ", ".join(f"{name} {c / max(n, 1):.2f}" for c, name in top) + " |")
        if s == "corio-uring":
            checks.append(f"{'PASS' if per <= 0.6 else 'FAIL'} corio-uring syscalls/request {per:.2f} (goal ≤ 0.6)")
    fg = [r.get("foreign_cpu_pct", 0) for r in rows if r.get("section") == "http"]
    err = {k: e for k, e in close_errors.items() if e}
    notes = (f"`bench/http_server.sh`: ../shared/peers/run.sh (wrk -t1 on CPU 1, server on CPU 0, server CPU "
             f"from schedstat; "
             f"keep-alive and pipelined rows, {len(set(r.get('round') for r in rows if r.get('section') == 'http'))} "
             f"interleaved rounds, foreign CPU during runs median {median(fg) or 0:.0f} %, max {max(fg or [0]):.0f} %) "
             f"plus wrk -H 'Connection: close' against nginx and corio ({a.rounds} rounds × {int(a.dur)} s, "
             f"server CPU = utime + stime)"
             + ("; corio built with profile-guided optimisation (`scripts/build_pgo.sh`), the peers as "
                "../shared/peers builds them" if os.environ.get("PGO") == "1" else
                "; corio built by `scripts/build_release.sh` (no PGO)")
             + (f"; wrk errors in the close runs: {err}" if err else "") + ".")
    table = "\n".join(lines) + "\n\n" + "\n".join(checks)
    print(table)
    print()
    print(notes)
    if a.save:
        series = {}
        for s, label in (("corio-uring", "corio io_uring"), ("corio-epoll", "corio epoll"), ("c-uring", "c-uring"),
                         ("c-epoll", "c-epoll"), ("nginx", "nginx"), ("asio-epoll", "asio-epoll")):
            if vals.get((s, "c256")):
                series[label] = vals[(s, "c256")]
        saved.save("http_server", "HTTP/1.1 plaintext server: requests per server CPU-second (keep-alive, 256 conns)",
                   "requests per server CPU-second", series, table, notes)
        print("saved bench/report/http_server.json", file=sys.stderr)


if __name__ == "__main__":
    main()
