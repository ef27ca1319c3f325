#!/usr/bin/python3
"""Crawler benchmark: corio's crawler against the Python asyncio + aiohttp
reference crawler (ref_crawler.py, html.parser), same site, same concurrency.

A generated site (scripts/gen_site.py, 2,000 pages by default) is served by
corio's http_server pinned to CPU 0; each crawler runs pinned to CPU 1, rounds
interleaved. Both must find the identical URL set (checked every round).

    bench/crawler/run.py [--pages 2000] [--concurrency 32] [--rounds 3]
"""
import argparse, json, os, re, shutil, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from saved import BUILD, ROOT, save, sh  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pages", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--save", action="store_true", help="write bench/report/crawler.json for bench/report.py")
    a = ap.parse_args()
    sh([os.path.join(ROOT, "scripts", "build_release.sh"), BUILD, "examples/http_server", "examples/crawler/crawler"],
       cwd=ROOT)
    tmp = tempfile.mkdtemp(prefix="corio-crawl-bench-")
    sh(["/usr/bin/python3", os.path.join(ROOT, "scripts", "gen_site.py"), os.path.join(tmp, "site"),
        "--pages", str(a.pages)])
    srv = subprocess.Popen(["taskset", "-c", "0", os.path.join(BUILD, "examples", "http_server"), "--port", "0",
                            "--root", os.path.join(tmp, "site")], stdout=subprocess.PIPE, text=True)
    line = srv.stdout.readline()
    m = re.match(r"listening on (\S+)", line)
    if not m:
        sys.exit("http_server did not start: " + line)
    start = f"http://{m.group(1)}/"
    rows = {"corio io_uring": [], "corio epoll": [], "python aiohttp": []}
    urls = {}
    try:
        for r in range(a.rounds):
            names = list(rows)
            for name in names[r % 3:] + names[:r % 3]:
                if name.startswith("corio"):
                    out = os.path.join(tmp, "out.jsonl")
                    res = sh(["taskset", "-c", "1", os.path.join(BUILD, "examples", "crawler", "crawler"), start,
                              "--concurrency", str(a.concurrency), "--per-host", str(a.concurrency),
                              "--max-depth", "1000", "--max-pages", "10000000", "--quiet", "--output", out,
                              "--backend", name.split()[1]])
                    m = re.search(r"crawler: (\d+) pages in ([\d.]+) s", res.stderr)
                    pages, secs = int(m.group(1)), float(m.group(2))
                    found = {json.loads(l)["url"] for l in open(out)}
                else:
                    res = sh(["taskset", "-c", "1", "/usr/bin/python3", os.path.join(HERE, "ref_crawler.py"), start,
                              "--concurrency", str(a.concurrency), "--per-host", str(a.concurrency)])
                    found = set(res.stdout.split())
                    t = time.monotonic()
                    res = sh(["taskset", "-c", "1", "/usr/bin/python3", os.path.join(HERE, "ref_crawler.py"), start,
                              "--concurrency", str(a.concurrency), "--per-host", str(a.concurrency), "--json"])
                    d = json.loads(res.stdout)
                    pages, secs = d["urls"], d["seconds"]
                urls.setdefault("first", found)
                if found != urls["first"]:
                    sys.exit(f"{name}: URL set differs ({len(found)} vs {len(urls['first'])})")
                rows[name].append(pages / secs)
                print(f"round {r + 1}: {name}: {pages} URLs, {pages / secs:,.0f} pages/s", file=sys.stderr)
    finally:
        srv.terminate()
        srv.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)
    n = len(urls["first"])
    head = (f"Crawler: {n} URLs of a generated {a.pages}-page site served by corio's http_server (CPU 0), "
            f"concurrency {a.concurrency}, crawler on CPU 1; {a.rounds} rounds, medians; identical URL sets")
    lines = ["| crawler | pages/s | corio io_uring ÷ this | corio epoll ÷ this |", "|---|---|---|---|"]
    for name, v in rows.items():
        ru = statistics.median(x / y for x, y in zip(rows["corio io_uring"], v))
        re_ = statistics.median(x / y for x, y in zip(rows["corio epoll"], v))
        lines.append(f"| {name} | {statistics.median(v):,.0f} | {ru:.2f} | {re_:.2f} |")
    table = "\n".join(lines)
    print(f"\n{head}\n\n{table}")
    if a.save:
        save("crawler", f"Crawler: pages/s on a local {a.pages:,}-page site", "pages/s",
             {k: statistics.median(v) for k, v in rows.items()}, table, head)


if __name__ == "__main__":
    main()
