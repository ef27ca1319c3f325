"""Python peer of bench/bench_core.cpp: the same benchmarks on asyncio (or uvloop).

    /usr/bin/python3 bench/peers/py_core.py [--loop asyncio|uvloop] [--only NAME,...]
        [--tasks N] [--batch N] [--suspended N] [--timers N] [--sleep-tasks N]
        [--threadsafe N] [--threads N]

Prints one JSON object per line, with the keys bench_core prints:

tasks         N trivial tasks: create_task x batch, then asyncio.gather(batch);
              tasks_per_s. The same line carries bytes_per_suspended_task: S tasks
              all suspended in asyncio.sleep(3600); tracemalloc's growth / S
              (every Python-level allocation: Task, coroutine, frame, the sleep's
              future and TimerHandle, the loop's heap entry), and the RSS growth / S
              measured in a separate pass without tracemalloc.
tasks_seq     N times `await loop.create_task(trivial())`.
await_nested  N times `await trivial()` (no task).
call_later    N loop.call_later callbacks with spread deadlines, all fired.
sleep_tasks   N tasks each in asyncio.sleep(spread), all awaited.
threadsafe    N loop.call_soon_threadsafe calls from T threads, all delivered;
              wakeups_per_call counts the self-pipe writes (asyncio only).
"""
import argparse
import asyncio
import gc
import itertools
import json
import os
import sys
import threading
import time
import tracemalloc

ARGS = None


def emit(bench, **kw):
    impl = ARGS.loop
    print(json.dumps({"bench": bench, "impl": impl, "backend": "epoll", **kw}), flush=True)


def spread(i):
    # The same deadlines as bench_core: distinct, 0..1 ms, scrambled order.
    return ((i * 7919) % 1_000_003) / 1e9


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGESIZE")


async def trivial():
    return 1


# ---- tasks -----------------------------------------------------------------


async def suspended_pass(n, use_tracemalloc):
    loop = asyncio.get_running_loop()
    started = [0]

    async def sleeper():
        started[0] += 1
        await asyncio.sleep(3600)

    tasks = [None] * n  # the caller's bookkeeping, not the tasks' cost
    gc.collect()
    if use_tracemalloc:
        tracemalloc.start()
        m0 = tracemalloc.get_traced_memory()[0]
    r0 = rss_bytes()
    for i in range(n):
        tasks[i] = loop.create_task(sleeper())
    await asyncio.sleep(0)  # queued behind every new task: they all reach their sleep
    grown = rss_bytes() - r0
    if use_tracemalloc:
        grown = tracemalloc.get_traced_memory()[0] - m0
        tracemalloc.stop()
    if started[0] != n:
        sys.exit("py_core: not every task reached its sleep")
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return grown / n


async def gather_batches(n, batch):
    loop = asyncio.get_running_loop()
    # One untimed batch first (warms the free lists), as bench_core does.
    await asyncio.gather(*[loop.create_task(trivial()) for _ in range(batch)])
    t0 = time.perf_counter()
    for _ in range(n // batch):
        await asyncio.gather(*[loop.create_task(trivial()) for _ in range(batch)])
    return time.perf_counter() - t0


def bench_tasks():
    n, batch = ARGS.tasks, ARGS.batch
    # Memory first, in a fresh interpreter; RSS without tracemalloc (its own
    # bookkeeping would show in RSS), then the allocation count with it.
    rss = run(suspended_pass(ARGS.suspended, False))
    heap = run(suspended_pass(ARGS.suspended, True))
    secs = run(gather_batches(n, batch))
    emit("tasks", n=n, batch=batch, tasks_per_s=n / secs, ns_per_task=secs * 1e9 / n,
         suspended_n=ARGS.suspended, bytes_per_suspended_task=heap, rss_bytes_per_suspended_task=rss)


async def await_each_spawned(n):
    loop = asyncio.get_running_loop()
    t0 = time.perf_counter()
    for _ in range(n):
        await loop.create_task(trivial())
    return time.perf_counter() - t0


def bench_tasks_seq():
    n = ARGS.tasks
    secs = run(await_each_spawned(n))
    emit("tasks_seq", n=n, tasks_per_s=n / secs, ns_per_task=secs * 1e9 / n)


async def await_nested(n):
    t0 = time.perf_counter()
    for _ in range(n):
        await trivial()
    return time.perf_counter() - t0


def bench_await_nested():
    n = ARGS.tasks
    secs = run(await_nested(n))
    emit("await_nested", n=n, awaits_per_s=n / secs, ns_per_await=secs * 1e9 / n)


async def gather_fan(n, fan):
    await asyncio.gather(*[trivial() for _ in range(fan)])  # untimed first round
    t0 = time.perf_counter()
    total = 0
    for _ in range(n // fan):
        total += sum(await asyncio.gather(*[trivial() for _ in range(fan)]))
    assert total == n
    return time.perf_counter() - t0


async def count_one(box):
    box[0] += await trivial()


async def group_fan(n, fan):
    async with asyncio.TaskGroup() as tg:  # untimed first round
        for _ in range(fan):
            tg.create_task(trivial())
    t0 = time.perf_counter()
    box = [0]
    for _ in range(n // fan):
        async with asyncio.TaskGroup() as tg:
            for _ in range(fan):
                tg.create_task(count_one(box))
    assert box[0] == n
    return time.perf_counter() - t0


def bench_fan(name, fn):
    fan = ARGS.fan
    n = ((ARGS.tasks + fan - 1) // fan) * fan
    secs = run(fn(n, fan))
    emit(name, n=n, fan=fan, tasks_per_s=n / secs, ns_per_task=secs * 1e9 / n)


# ---- timers ----------------------------------------------------------------


def bench_call_later():
    n = ARGS.timers
    loop = new_loop()
    fired = [0]

    def cb():
        fired[0] += 1
        if fired[0] == n:
            loop.stop()

    t0 = time.perf_counter()
    for i in range(n):
        loop.call_later(spread(i), cb)
    sched = time.perf_counter() - t0
    loop.run_forever()
    total = time.perf_counter() - t0
    loop.close()
    if fired[0] != n:
        sys.exit("py_core: not every timer fired")
    emit("call_later", n=n, timers_per_s=n / total, schedule_ns_per_timer=sched * 1e9 / n,
         fire_ns_per_timer=(total - sched) * 1e9 / n)


async def spawn_sleepers(n):
    loop = asyncio.get_running_loop()
    t0 = time.perf_counter()
    tasks = [loop.create_task(asyncio.sleep(spread(i))) for i in range(n)]
    for t in tasks:
        await t
    return time.perf_counter() - t0


def bench_sleep_tasks():
    n = ARGS.sleep_tasks
    secs = run(spawn_sleepers(n))
    emit("sleep_tasks", n=n, timers_per_s=n / secs, ns_per_task=secs * 1e9 / n)


# ---- cross-thread calls ----------------------------------------------------


def bench_threadsafe():
    loop = new_loop()
    per = ARGS.threadsafe // ARGS.threads
    total = per * ARGS.threads
    delivered = [0]
    go = threading.Event()
    # asyncio writes its self-pipe once per call_soon_threadsafe; count the
    # writes by wrapping the method (uvloop's uv_async_send has no such hook).
    writes = None
    if ARGS.loop == "asyncio":
        writes = itertools.count()
        orig = loop._write_to_self

        def counting_write():
            next(writes)
            orig()

        loop._write_to_self = counting_write

    def cb():
        delivered[0] += 1
        if delivered[0] == total:
            loop.stop()

    def producer():
        go.wait()
        call = loop.call_soon_threadsafe
        for _ in range(per):
            call(cb)

    threads = [threading.Thread(target=producer) for _ in range(ARGS.threads)]
    for t in threads:
        t.start()
    t0 = [0.0]

    def start():
        t0[0] = time.perf_counter()
        go.set()

    loop.call_soon(start)
    loop.run_forever()
    secs = time.perf_counter() - t0[0]
    for t in threads:
        t.join()
    loop.close()
    if delivered[0] != total:
        sys.exit("py_core: not every call was delivered")
    extra = {}
    if writes is not None:
        extra["wakeups_per_call"] = next(writes) / total
    emit("threadsafe", n=total, threads=ARGS.threads, calls_per_s=total / secs, **extra)


# ---- main ------------------------------------------------------------------


def new_loop():
    if ARGS.loop == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def run(coro):
    loop = new_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


BENCHES = {
    "tasks": bench_tasks,
    "tasks_seq": bench_tasks_seq,
    "await_nested": bench_await_nested,
    "gather": lambda: bench_fan("gather", gather_fan),
    "task_group": lambda: bench_fan("task_group", group_fan),
    "call_later": bench_call_later,
    "sleep_tasks": bench_sleep_tasks,
    "threadsafe": bench_threadsafe,
}


def main():
    global ARGS
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    p.add_argument("--only", default="", help="comma-separated benchmark names (default: all)")
    p.add_argument("--tasks", type=int, default=1_000_000)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--fan", type=int, default=100_000)
    p.add_argument("--suspended", type=int, default=100_000)
    p.add_argument("--timers", type=int, default=1_000_000)
    p.add_argument("--sleep-tasks", type=int, default=1_000_000)
    p.add_argument("--threadsafe", type=int, default=1_000_000)
    p.add_argument("--threads", type=int, default=4)
    ARGS = p.parse_args()
    if ARGS.tasks % ARGS.batch:
        p.error("--tasks must be a multiple of --batch")
    only = [s for s in ARGS.only.split(",") if s]
    for name in only:
        if name not in BENCHES:
            p.error(f"unknown benchmark {name!r}; known: {', '.join(BENCHES)}")
    for name, fn in BENCHES.items():
        if not only or name in only:
            fn()


if __name__ == "__main__":
    main()
