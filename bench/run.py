#!/usr/bin/python3
"""corio's benchmark harness: every benchmark beside its peer, in one run, as ratios.

    bench/run.py                 full run (release build in build-release/, 5 rounds)
    bench/run.py --quick         smaller sizes, 3 rounds (about a minute)
    bench/run.py --only tasks    one benchmark (a definition name or a bench key)
    bench/run.py --list          what is registered, and whether it is built

Builds corio in release mode, then for each round runs every selected benchmark
program under each corio backend and each peer (the order rotates between
rounds, so slow drift on the shared machine hits everyone alike). Programs print
one JSON object per line on stdout ({"bench": ..., "impl": ..., "backend": ...,
metrics...}); the harness takes the median over rounds and prints a markdown
table with corio's advantage over each peer. Everything, raw rows included,
goes to bench/results/<UTC stamp>/results.json (copied to
bench/results/latest.json), with the load average at start and end: the
numbers are only as quiet as the machine was.

Registering a benchmark: add a Bench(...) to BENCHES below. A definition whose
program or script is missing is skipped with a note, so definitions may land
before their programs do. Stdlib only; run with Debian's /usr/bin/python3.
"""
import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = "/usr/bin/python3"  # Debian's: python3-uvloop installs there
PEERS = ROOT / "bench" / "peers"

HIGHER, LOWER = "higher", "lower"


@dataclass
class Metric:
    key: str
    better: str  # HIGHER or LOWER


@dataclass
class BenchKey:
    """What one JSON "bench" value reports: compared metrics, and details shown below the table."""

    metrics: list
    info: list = field(default_factory=list)


@dataclass
class Bench:
    name: str
    # argv of the corio program; "{build}" and "{backend}" are filled in.
    corio: list
    # peer label -> argv; "{py}" is Debian's python3.
    peers: dict
    # JSON "bench" value -> BenchKey
    keys: dict
    # Sizes appended to every command (corio and peers alike).
    quick_args: list = field(default_factory=list)
    full_args: list = field(default_factory=list)
    # If set, the programs accept this flag with a comma-separated subset of keys.
    only_flag: str = ""
    # taskset CPU list: one core for single-threaded benchmarks (no migration);
    # both when threads meet the loop.
    cpus: str = "1"
    note: str = ""


def core(name, keys, cpus, quick, full):
    """A group of bench_core benchmarks, run beside py_core.py on asyncio and uvloop."""
    return Bench(
        name=name,
        corio=["{build}/bench/bench_core", "--backend", "{backend}"],
        peers={
            "asyncio": ["{py}", str(PEERS / "py_core.py"), "--loop", "asyncio"],
            "uvloop": ["{py}", str(PEERS / "py_core.py"), "--loop", "uvloop"],
        },
        keys=keys,
        quick_args=quick,
        full_args=full,
        only_flag="--only",
        cpus=cpus,
    )


BENCHES = [
    core(
        "core_tasks",
        {
            "tasks": BenchKey(
                [Metric("tasks_per_s", HIGHER), Metric("bytes_per_suspended_task", LOWER),
                 Metric("rss_bytes_per_suspended_task", LOWER)],
                ["ns_per_task", "allocs_per_task", "alloc_sizes_per_suspended_task", "task_record_sizeof",
                 "alloc_bytes_per_suspended_task", "allocs_per_suspended_task", "n", "batch", "suspended_n"]),
            "tasks_seq": BenchKey([Metric("tasks_per_s", HIGHER)], ["ns_per_task", "allocs_per_task", "n"]),
            "await_nested": BenchKey([Metric("awaits_per_s", HIGHER)], ["ns_per_await", "allocs_per_await", "n"]),
        },
        cpus="1",
        quick=["--tasks", "100000", "--suspended", "100000"],
        full=["--tasks", "1000000", "--suspended", "100000"],
    ),
    # Issue 3: gather of 100,000 tasks and a TaskGroup of 100,000 children.
    core(
        "structured",
        {
            "gather": BenchKey([Metric("tasks_per_s", HIGHER)], ["ns_per_task", "n", "fan"]),
            "task_group": BenchKey([Metric("tasks_per_s", HIGHER)], ["ns_per_task", "n", "fan"]),
        },
        cpus="1",
        quick=["--tasks", "300000", "--fan", "100000"],
        full=["--tasks", "500000", "--fan", "100000"],
    ),
    core(
        "core_timers",
        {
            "call_later": BenchKey([Metric("timers_per_s", HIGHER)],
                                   ["schedule_ns_per_timer", "fire_ns_per_timer", "allocs_per_timer", "n"]),
            "sleep_tasks": BenchKey([Metric("timers_per_s", HIGHER)], ["ns_per_task", "n"]),
        },
        cpus="1",
        quick=["--timers", "100000", "--sleep-tasks", "100000"],
        full=["--timers", "1000000", "--sleep-tasks", "1000000"],
    ),
    core(
        "core_threadsafe",
        {
            "threadsafe": BenchKey([Metric("calls_per_s", HIGHER), Metric("wakeups_per_call", LOWER)],
                                   ["loop_sleeps_per_call", "calls_per_iteration", "threads", "n"]),
        },
        cpus="0,1",
        quick=["--threadsafe", "200000", "--threads", "4"],
        full=["--threadsafe", "1000000", "--threads", "4"],
    ),
    # The thread-pool bridge (to_thread round trips, and timer lateness while
    # the pool is busy). Its flags are the program's own defaults.
    Bench(
        name="to_thread",
        corio=["{build}/bench/bench_to_thread", "--backend", "{backend}"],
        peers={"asyncio": ["{py}", str(PEERS / "py_to_thread.py")]},
        keys={
            "to_thread": BenchKey([Metric("p50_us", LOWER), Metric("p99_us", LOWER), Metric("calls_per_s", HIGHER)]),
            **{k: BenchKey([Metric("p50_lateness_us", LOWER), Metric("p99_lateness_us", LOWER),
                            Metric("max_lateness_us", LOWER)])
               for k in ("timer_under_load", "timer_under_load_background", "timer_under_load_realtime", "timer_floor",
                      "timer_floor_background")},
        },
        cpus="0,1",
    ),
]


# ---------------------------------------------------------------- machine state


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def cpu_ticks():
    """(busy, total) jiffies over all CPUs."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


def busy_pct(sample_s=0.3):
    b0, t0 = cpu_ticks()
    time.sleep(sample_s)
    b1, t1 = cpu_ticks()
    return 100.0 * (b1 - b0) / max(1, t1 - t0)


class Quiet:
    """Waits (bounded) for the machine to calm down before each measured run."""

    def __init__(self, pct, max_s, budget_s):
        self.pct, self.max_s, self.budget_s, self.spent = pct, max_s, budget_s, 0.0

    def wait(self):
        start = time.monotonic()
        while True:
            b = busy_pct()
            waited = time.monotonic() - start
            if b < self.pct or waited >= self.max_s or self.spent + waited >= self.budget_s:
                self.spent += waited
                return round(b, 1)


def cmd_out(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def environment():
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    uvloop = cmd_out([PY, "-c", "import uvloop; print(uvloop.__version__)"])
    commit = cmd_out(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = bool(cmd_out(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"]))
    return {
        "host": platform.node(),
        "kernel": platform.release(),
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "mem_total_mb": mem_kb // 1024,
        "gcc": cmd_out(["g++", "--version"]).splitlines()[0] if shutil.which("g++") else "",
        "python": cmd_out([PY, "--version"]),
        "uvloop": uvloop or None,
        "git_commit": commit + ("-dirty" if dirty else ""),
    }


# ---------------------------------------------------------------- build


def build(build_dir, jobs):
    # Build chatter goes to stderr: stdout is the table.
    subprocess.run([str(ROOT / "scripts" / "build_release.sh"), str(build_dir), f"-j{jobs}"], cwd=ROOT, check=True,
                   stdout=sys.stderr)
    bt = cmd_out(["meson", "introspect", str(build_dir), "--buildoptions"])
    try:
        opts = {o["name"]: o["value"] for o in json.loads(bt)}
        if opts.get("buildtype") != "release":
            print(f"warning: {build_dir} is a {opts.get('buildtype')} build, not release", file=sys.stderr)
    except ValueError:
        pass


# ---------------------------------------------------------------- running


@dataclass
class Job:
    bench: Bench
    label: str  # "corio/io_uring", "asyncio", ...
    argv: list


def fill(argv, build_dir, backend=""):
    return [a.replace("{build}", str(build_dir)).replace("{backend}", backend).replace("{py}", PY) for a in argv]


def runnable(argv):
    """The program (or the script a python runs) exists."""
    exe = argv[0]
    if exe == PY:
        return os.path.exists(PY) and len(argv) > 1 and os.path.exists(argv[1])
    return os.path.exists(exe) and os.access(exe, os.X_OK)


def label_of(row):
    impl = str(row.get("impl", "?")).lower()
    if impl == "corio":
        return "corio/" + str(row.get("backend", "?"))
    if "uvloop" in impl:
        return "uvloop"
    if "asyncio" in impl or impl.startswith("py"):
        return "asyncio"
    return impl


def run_job(job, args, rnd, quiet, raw_dir):
    argv = list(job.argv)
    if args.pin and shutil.which("taskset"):
        argv = ["taskset", "-c", job.bench.cpus] + argv
    bg = quiet.wait()
    t0 = time.monotonic()
    rec = {"round": rnd, "def": job.bench.name, "label": job.label, "argv": argv, "bg_busy_pct": bg,
           "loadavg_before": loadavg()}
    try:
        p = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=args.timeout)
        rc, out, err = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:  # subprocess.run killed the child
        rc = "timeout"
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
    rec["secs"] = round(time.monotonic() - t0, 3)
    rec["rc"] = rc
    rows = []
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                rows.append(json.loads(line))
            except ValueError:
                pass
    rec["rows"] = rows
    if err.strip():
        rec["stderr_tail"] = err.strip().splitlines()[-5:]
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{job.bench.name}-{job.label}-r{rnd}")
    (raw_dir / f"{safe}.out").write_text(out)
    if err:
        (raw_dir / f"{safe}.err").write_text(err)
    status = "ok" if rc == 0 else f"FAILED (rc={rc})"
    print(f"[bench r{rnd}] {job.bench.name:<16} {job.label:<15} {rec['secs']:6.1f}s  "
          f"busy before {bg:4.0f}%  {status}", file=sys.stderr, flush=True)
    if rc != 0 and err.strip():
        print("    " + "\n    ".join(err.strip().splitlines()[-3:]), file=sys.stderr)
    return rec


# ---------------------------------------------------------------- summary


def summarize(runs, selected):
    """Median per (bench key, metric, label), and corio's advantage over each peer."""
    values = {}  # (bench, key) -> label -> [v...]
    details = {}  # (bench, label) -> {info key: last value}
    declared = {}
    for b in selected:
        for k, bk in b.keys.items():
            declared[k] = bk
    for r in runs:
        for row in r["rows"]:
            bench = row.get("bench")
            if bench not in declared:
                continue
            bk = declared[bench]
            metric_keys = [m.key for m in bk.metrics]
            label = label_of(row)
            for key, v in row.items():
                if key in ("bench", "impl", "backend"):
                    continue
                if key in metric_keys or (key not in bk.info and isinstance(v, (int, float))
                                          and not isinstance(v, bool)):
                    if isinstance(v, (int, float)):
                        values.setdefault((bench, key), {}).setdefault(label, []).append((r["round"], float(v)))
                elif key in bk.info:
                    details.setdefault((bench, label), {})[key] = v
    summary = []
    for (bench, key), per_label in values.items():
        bk = declared[bench]
        m = next((m for m in bk.metrics if m.key == key), None)
        better = m.better if m else guess_direction(key)
        stats = {}
        for label, rv in per_label.items():
            vs = [v for _, v in rv]
            med = statistics.median(vs)
            stats[label] = {"median": med, "min": min(vs), "max": max(vs), "n": len(vs),
                            "spread_pct": (100.0 * (max(vs) - min(vs)) / med) if med else 0.0}
        # corio's advantage: the median over rounds of the ratio within each
        # round (the two runs were minutes apart at most, so slow drift in the
        # machine's load cancels); the ratio of medians if no round has both.
        ratios = {}
        for c in [lb for lb in stats if lb.startswith("corio/")]:
            for p in [lb for lb in stats if not lb.startswith("corio/")]:
                cr, pr = dict(per_label[c]), dict(per_label[p])
                pairs = [(cr[k], pr[k]) for k in cr if k in pr and cr[k] > 0 and pr[k] > 0]
                if not pairs:
                    pairs = [(stats[c]["median"], stats[p]["median"])]
                    if pairs[0][0] <= 0 or pairs[0][1] <= 0:
                        continue
                ratios[f"{c} vs {p}"] = statistics.median(cv / pv if better == HIGHER else pv / cv
                                                          for cv, pv in pairs)
        summary.append({"bench": bench, "metric": key, "better": better, "declared": m is not None,
                        "values": stats, "advantage": ratios})
    order = {k: i for i, k in enumerate(declared)}

    def sort_key(s):
        bk = declared[s["bench"]]
        mk = [m.key for m in bk.metrics]
        return (order[s["bench"]], mk.index(s["metric"]) if s["metric"] in mk else len(mk), s["metric"])

    summary.sort(key=sort_key)
    return summary, {f"{b} {lb}": v for (b, lb), v in details.items()}


def guess_direction(key):
    if "per_s" in key:
        return HIGHER
    return LOWER  # latencies, bytes, ns per op


def human(v):
    a = abs(v)
    for div, suf in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if a >= div * 0.9995 and a >= 10_000:
            return f"{v / div:.3g}{suf}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 1:
        return f"{v:.3g}"
    return f"{v:.2g}"


def detail_value(v):
    if isinstance(v, float):
        return f"{v:.4g}"
    return json.dumps(v)


def ratio_cell(r):
    if r is None:
        return "–"
    if r >= 1000:
        return "**>1000×**"
    if r >= 10:
        return f"**{r:.0f}×**"
    return f"{r:.2f}×"


LABEL_ORDER = ["corio/io_uring", "corio/epoll", "asyncio", "uvloop"]


def table(summary):
    labels = []
    for s in summary:
        for lb in s["values"]:
            if lb not in labels:
                labels.append(lb)
    labels.sort(key=lambda lb: (LABEL_ORDER.index(lb) if lb in LABEL_ORDER else len(LABEL_ORDER), lb))
    corios = [lb for lb in labels if lb.startswith("corio/")]
    peers = [lb for lb in labels if not lb.startswith("corio/")]
    pairs = [(c, p) for p in peers for c in corios]
    head = ["bench", "metric", "better"] + labels + [f"{c.split('/')[1]} ÷ {p}" for c, p in pairs]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * (len(head) - 3)) + "|"]
    for s in summary:
        cells = [s["bench"], s["metric"] + ("" if s["declared"] else " (?)"), "↑" if s["better"] == HIGHER else "↓"]
        for lb in labels:
            st = s["values"].get(lb)
            if not st:
                cells.append("–")
                continue
            c = human(st["median"])
            if st["n"] > 1 and st["spread_pct"] >= 5:
                c += f" ±{st['spread_pct'] / 2:.0f}%"
            cells.append(c)
        for c, p in pairs:
            r = s["advantage"].get(f"{c} vs {p}")
            cells.append(ratio_cell(r))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------- main


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes, 3 rounds by default")
    p.add_argument("--rounds", type=int, help="interleaved rounds; the table shows medians (default 5, quick 3)")
    p.add_argument("--only", action="append", default=[],
                   help="definition name or bench key, comma-separated or repeated (default: all)")
    p.add_argument("--backends", default="io_uring,epoll", help="corio backends to run (default both)")
    p.add_argument("--peers", default="asyncio,uvloop", help="peer labels to run (default asyncio,uvloop)")
    p.add_argument("--build-dir", default=str(ROOT / "build-release"))
    p.add_argument("--no-build", action="store_true", help="use the existing build as it is")
    p.add_argument("-j", "--jobs", type=int, default=2, help="ninja jobs (the machine has 2 shared cores)")
    p.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin with taskset")
    p.add_argument("--timeout", type=float, default=900, help="seconds per program run")
    p.add_argument("--quiet-pct", type=float, default=30,
                   help="before each run, wait until CPU busy %% is below this (bounded; default 30)")
    p.add_argument("--quiet-max", type=float, default=5, help="longest wait before one run, seconds")
    p.add_argument("--quiet-budget", type=float, default=90, help="longest total wait, seconds")
    p.add_argument("--results", default=str(ROOT / "bench" / "results"))
    p.add_argument("--list", action="store_true", help="list the registered benchmarks and exit")
    return p.parse_args()


def select(only):
    wanted = [w for o in only for w in o.split(",") if w]
    if not wanted:
        return [(b, None) for b in BENCHES]
    out = []
    for b in BENCHES:
        if b.name in wanted:
            out.append((b, None))
            continue
        keys = [k for k in b.keys if k in wanted]
        if keys:
            out.append((b, keys))
    known = {b.name for b in BENCHES} | {k for b in BENCHES for k in b.keys}
    unknown = [w for w in wanted if w not in known]
    if unknown:
        sys.exit(f"run.py: unknown benchmark(s) {', '.join(unknown)}; see --list")
    return out


def main():
    args = parse_args()
    build_dir = Path(args.build_dir)
    if args.list:
        for b in BENCHES:
            c = fill(b.corio, build_dir, "io_uring")
            print(f"{b.name:<16} keys: {', '.join(b.keys)}; cpus {b.cpus}; "
                  f"corio {'built' if runnable(c) else 'NOT BUILT'}; "
                  f"peers: {', '.join(lb + ('' if runnable(fill(a, build_dir)) else ' (missing)') for lb, a in b.peers.items())}")
        return
    rounds = args.rounds or (3 if args.quick else 5)
    selected = select(args.only)
    if not args.no_build:
        build(build_dir, args.jobs)

    have_uvloop = bool(cmd_out([PY, "-c", "import uvloop; print(1)"]))
    backends = [b for b in args.backends.split(",") if b]
    peer_labels = [p for p in args.peers.split(",") if p]
    jobs, skipped = [], []
    for b, keys in selected:
        extra = list(b.quick_args if args.quick else b.full_args)
        if b.only_flag:  # a program shared by several definitions runs only this one's part
            extra += [b.only_flag, ",".join(keys or b.keys)]
        bjobs = []
        for be in backends:
            argv = fill(b.corio, build_dir, be)
            if runnable(argv):
                bjobs.append(Job(b, "corio/" + be, argv + extra))
            else:
                skipped.append(f"{b.name}: {argv[0]} is not built")
                break
        if not bjobs:
            continue  # no corio program: a peer alone has nothing to be compared with
        for lb, a in b.peers.items():
            if lb not in peer_labels:
                continue
            argv = fill(a, build_dir)
            if lb == "uvloop" and not have_uvloop:
                skipped.append(f"{b.name}: uvloop peer (python3-uvloop is not installed)")
            elif runnable(argv):
                bjobs.append(Job(b, lb, argv + extra))
            else:
                skipped.append(f"{b.name}: peer {lb}: {argv[1] if argv[0] == PY else argv[0]} is missing")
        jobs.append(bjobs)
    for s in skipped:
        print(f"[bench] skipped {s}", file=sys.stderr)
    if not jobs:
        sys.exit("run.py: nothing to run")

    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out_dir = Path(args.results) / stamp
    raw_dir = out_dir / "raw"
    raw_dir.mkdir(parents=True, exist_ok=True)
    meta = {
        "stamp": stamp,
        "mode": "quick" if args.quick else "full",
        "rounds": rounds,
        "argv": sys.argv[1:],
        "pinned": args.pin,
        "loadavg_start": loadavg(),
        "env": environment(),
        "skipped": skipped,
        "note": "The machine may be shared (other builds running): numbers are indicative; "
                "compare ratios from the same run, not absolute values across runs.",
    }
    quiet = Quiet(args.quiet_pct, args.quiet_max, args.quiet_budget)
    runs = []
    print(f"[bench] {len(jobs)} benchmark group(s), {rounds} round(s), results in {out_dir}", file=sys.stderr)
    for rnd in range(1, rounds + 1):
        for bjobs in jobs:
            k = (rnd - 1) % len(bjobs)
            for job in bjobs[k:] + bjobs[:k]:  # rotate who goes first
                runs.append(run_job(job, args, rnd, quiet, raw_dir))
    meta["loadavg_end"] = loadavg()
    meta["quiet_wait_s"] = round(quiet.spent, 1)
    summary, details = summarize(runs, [b for b, _ in selected])
    md = table(summary)
    failed = [r for r in runs if r["rc"] != 0]
    result = {"meta": meta, "summary": summary, "details": details, "runs": runs}
    (out_dir / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    header = (f"corio benchmarks, {meta['mode']} mode, {rounds} round(s), median shown "
              f"(±: half the min–max spread when ≥ 5 %). {stamp}, commit {meta['env']['git_commit']}, "
              f"{meta['env']['cpu']} × {meta['env']['nproc']}, load average {meta['loadavg_start'][0]:.2f} → "
              f"{meta['loadavg_end'][0]:.2f}.\nColumns 'X ÷ peer': corio's advantage (>1: corio better, "
              f"for ↑ and ↓ metrics alike), the median of the per-round ratios.\n")
    detail_md = "\n".join(f"- {k}: " + ", ".join(f"{ik}={detail_value(iv)}" for ik, iv in v.items())
                          for k, v in sorted(details.items()))
    text = header + "\n" + md + "\n\nDetails (last round):\n" + detail_md + "\n"
    if failed:
        text += f"\n{len(failed)} run(s) failed: " + ", ".join(f"{r['def']} {r['label']} r{r['round']}" for r in failed)
        text += "\n"
    (out_dir / "table.md").write_text(text)
    latest = Path(args.results)
    shutil.copyfile(out_dir / "results.json", latest / "latest.json")
    shutil.copyfile(out_dir / "table.md", latest / "latest.md")
    print(text)
    print(f"results: {out_dir / 'results.json'} (also {latest / 'latest.json'})", file=sys.stderr)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
