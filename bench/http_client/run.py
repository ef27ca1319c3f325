#!/usr/bin/python3
"""HTTP client benchmark (issue: the client must nearly saturate a server).

Fetches one small file from nginx (Debian, 1 worker, pinned to CPU 0) with
64 requests in flight on keep-alive connections, each client pinned to CPU 1:
wrk -t1 -c64 (the load generator's own ceiling), corio::http::Client on
io_uring and on epoll (bench_http_client), and Python aiohttp. Rounds are
interleaved; the table shows medians and the ratios within each round.

    bench/http_client/run.py [--rounds 3] [--seconds 5] [--in-flight 64]
"""
import argparse, json, os, re, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from saved import BUILD, ROOT, save, sh  # noqa: E402


def build():
    sh([os.path.join(ROOT, "scripts", "build_release.sh"), BUILD, "bench/bench_http_client"], cwd=ROOT)
    return os.path.join(BUILD, "bench", "bench_http_client")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start_nginx(tmp, port):
    os.makedirs(os.path.join(tmp, "www"))
    os.makedirs(os.path.join(tmp, "tmp"))
    with open(os.path.join(tmp, "www", "hello.txt"), "w") as f:
        f.write("Hello, World!")
    conf = os.path.join(tmp, "nginx.conf")
    t = os.path.join(tmp, "tmp")
    with open(conf, "w") as f:
        f.write(f"""worker_processes 1;
daemon off;
master_process off;
error_log {tmp}/error.log;
pid {tmp}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 1000000000;
  client_body_temp_path {t}; proxy_temp_path {t}; fastcgi_temp_path {t}; uwsgi_temp_path {t}; scgi_temp_path {t};
  types {{ text/plain txt; }}
  server {{ listen 127.0.0.1:{port}; root {tmp}/www; }}
}}
""")
    p = subprocess.Popen(["taskset", "-c", "0", "/usr/sbin/nginx", "-p", tmp, "-c", conf])
    for _ in range(500):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return p
        except OSError:
            time.sleep(0.01)
    p.kill()
    sys.exit("nginx did not start: " + open(os.path.join(tmp, "error.log")).read())


def run_wrk(url, k, secs):
    out = sh(["taskset", "-c", "1", "wrk", "-t1", f"-c{k}", f"-d{secs:g}s", url]).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return float(m.group(1))


def run_corio(exe, url, k, secs, backend):
    env = dict(os.environ, CORIO_BACKEND=backend)
    out = sh(["taskset", "-c", "1", exe, url, "--in-flight", str(k), "--seconds", str(secs)], env=env).stdout
    d = json.loads(out.strip().splitlines()[-1])
    if d["errors"]:
        sys.exit(f"corio {backend}: {d['errors']} errors")
    return d["req_per_s"]


def run_aiohttp(url, k, secs):
    out = sh(["taskset", "-c", "1", "/usr/bin/python3", os.path.join(HERE, "aiohttp_client.py"), url, str(k), str(secs)]).stdout
    return json.loads(out.strip().splitlines()[-1])["req_per_s"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--in-flight", type=int, default=64)
    ap.add_argument("--save", action="store_true", help="write bench/report/http_client.json for bench/report.py")
    a = ap.parse_args()
    exe = build()
    tmp = tempfile.mkdtemp(prefix="corio-client-bench-")
    port = free_port()
    ng = start_nginx(tmp, port)
    url = f"http://127.0.0.1:{port}/hello.txt"
    rows = {"wrk": [], "corio io_uring": [], "corio epoll": [], "aiohttp": []}
    try:
        for r in range(a.rounds):
            order = list(rows)[r % 4:] + list(rows)[:r % 4]
            for name in order:
                if name == "wrk":
                    v = run_wrk(url, a.in_flight, a.seconds)
                elif name == "aiohttp":
                    v = run_aiohttp(url, a.in_flight, a.seconds)
                else:
                    v = run_corio(exe, url, a.in_flight, a.seconds, "io_uring" if "uring" in name else "epoll")
                rows[name].append(v)
                print(f"round {r + 1}: {name}: {v:,.0f} req/s", file=sys.stderr)
    finally:
        ng.send_signal(signal.SIGQUIT)
        ng.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)

    def ratio(a_name, b_name):
        return statistics.median(x / y for x, y in zip(rows[a_name], rows[b_name]))

    head = (f"HTTP client: GET a 13-byte file from nginx (1 worker, CPU 0), {a.in_flight} in flight, "
            f"keep-alive, client on CPU 1; {a.rounds} rounds × {a.seconds:g} s, medians")
    lines = ["| client | req/s | corio io_uring ÷ this | corio epoll ÷ this |", "|---|---|---|---|"]
    for name in rows:
        med = statistics.median(rows[name])
        if name.startswith("corio"):
            lines.append(f"| {name} | {med:,.0f} | | |")
        else:
            lines.append(f"| {name} | {med:,.0f} | {ratio('corio io_uring', name):.2f} | {ratio('corio epoll', name):.2f} |")
    table = "\n".join(lines)
    print(f"\n{head}\n\n{table}")
    if a.save:
        save("http_client", "HTTP client: requests/s from nginx, 64 in flight", "requests/s",
             {k: statistics.median(v) for k, v in rows.items()}, table, head)


if __name__ == "__main__":
    main()
