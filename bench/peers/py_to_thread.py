#!/usr/bin/python3
"""Python peer of bench/bench_to_thread.cpp: the same measurements on asyncio.

    /usr/bin/python3 bench/peers/py_to_thread.py [--only to_thread,timer_under_load]
        [--n N] [--calls N] [--in-flight K] [--timer-samples S] [--workers W]

Prints one JSON object per line, with the keys bench_to_thread prints:

to_thread         N sequential `await asyncio.to_thread(f)` round trips (f
                  trivial; after 200 warm-up calls): p50_us, p99_us, mean_us.
                  Then CALLS round trips with K tasks each keeping one call in
                  flight: calls_per_s. Default executor (min(32, cores + 4)).
timer_under_load  every worker of the default executor runs CPU-bound Python
                  (which holds the GIL) while the loop sleeps 10 ms at a time,
                  S times: how late each wake-up is.
"""
import argparse
import asyncio
import concurrent.futures
import json
import threading
import time


def emit(bench, **kw):
    print(json.dumps({"bench": bench, "impl": "asyncio", "backend": "epoll", **kw}), flush=True)


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(p * len(v)))] if v else 0.0


def trivial():
    return 1


def burn(stop):
    h = 1469598103934665603
    i = 0
    while not stop.is_set():
        for _ in range(4096):
            h = ((h ^ i) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
            i += 1
    return h


def workers_of(loop):
    ex = loop._default_executor  # created by the first to_thread call
    return ex._max_workers if ex is not None else None


async def bench_to_thread(args):
    loop = asyncio.get_running_loop()
    for _ in range(200):
        await asyncio.to_thread(trivial)
    lat = []
    pc = time.perf_counter_ns
    for _ in range(args.n):
        t0 = pc()
        await asyncio.to_thread(trivial)
        lat.append((pc() - t0) / 1000.0)

    per = args.calls // args.in_flight

    async def keep_one_in_flight():
        for _ in range(per):
            await asyncio.to_thread(trivial)

    t0 = time.perf_counter()
    await asyncio.gather(*[keep_one_in_flight() for _ in range(args.in_flight)])
    secs = time.perf_counter() - t0
    done = per * args.in_flight
    emit("to_thread", n=args.n, p50_us=pct(lat, 0.50), p99_us=pct(lat, 0.99), mean_us=sum(lat) / len(lat),
         calls=done, in_flight=args.in_flight, calls_per_s=done / secs, workers=workers_of(loop))


async def bench_timer_under_load(args):
    loop = asyncio.get_running_loop()
    await asyncio.to_thread(trivial)  # make sure the default executor exists
    workers = workers_of(loop)
    stop = threading.Event()
    burners = [asyncio.ensure_future(asyncio.to_thread(burn, stop)) for _ in range(workers)]
    await asyncio.sleep(0.05)
    late = []
    for _ in range(args.timer_samples):
        due = time.monotonic() + 0.010
        await asyncio.sleep(0.010)
        late.append((time.monotonic() - due) * 1e6)
    stop.set()
    await asyncio.gather(*burners)
    late.sort()
    emit("timer_under_load", timer_ms=10, n=args.timer_samples, p50_lateness_us=pct(late, 0.50),
         p99_lateness_us=pct(late, 0.99), max_lateness_us=late[-1], workers=workers)


async def main(args):
    if args.workers:
        asyncio.get_running_loop().set_default_executor(
            concurrent.futures.ThreadPoolExecutor(max_workers=args.workers))
    only = set(args.only.split(",")) if args.only else None
    if only is None or "to_thread" in only:
        await bench_to_thread(args)
    if only is None or "timer_under_load" in only:
        await bench_timer_under_load(args)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default="")
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--calls", type=int, default=1000000)
    p.add_argument("--in-flight", type=int, default=64)
    p.add_argument("--timer-samples", type=int, default=200)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--backend", default="epoll", help="ignored (asyncio's loop is epoll)")
    asyncio.run(main(p.parse_args()))
