"""What bench/http_client/run.py and bench/crawler/run.py share: the release
tree, running a command that must succeed, the machine line and the summary
they save (--save) for bench/report.py."""
import json, os, platform, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build-release")


def sh(cmd, **kw):
    """Runs cmd, exits with its output when it fails; returns the CompletedProcess."""
    r = subprocess.run(cmd, text=True, capture_output=True, **kw)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
    return r


def machine():
    model = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({model}), Linux {platform.release()}"


def save(name, title, unit, series, table, notes=""):
    os.makedirs(os.path.join(ROOT, "bench", "report"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "report", name + ".json"), "w") as f:
        json.dump({"name": name, "title": title, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                   "machine": machine(), "unit": unit, "higher_is_better": True, "series": series,
                   "table": table, "notes": notes}, f, indent=1)
