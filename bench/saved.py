"""What bench/http_client/run.py and bench/crawler/run.py share: the machine
line and the summary they save (--save) for bench/report.py."""
import json, os, platform, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
