"""The reference: aiohttp fetching one URL with K requests in flight on
keep-alive connections (a TCPConnector limited to K), for bench_http_client."""
import asyncio, json, sys, time

import aiohttp


async def main(url, in_flight, seconds, warmup):
    counts = {"requests": 0, "errors": 0, "counting": False, "stop": False}
    conn = aiohttp.TCPConnector(limit=in_flight, limit_per_host=in_flight)
    async with aiohttp.ClientSession(connector=conn, auto_decompress=False) as s:
        async def worker():
            while not counts["stop"]:
                ok = False
                try:
                    async with s.get(url) as r:
                        await r.read()
                        ok = r.status == 200
                except Exception:
                    ok = False
                if counts["counting"]:
                    counts["requests" if ok else "errors"] += 1
        ws = [asyncio.create_task(worker()) for _ in range(in_flight)]
        await asyncio.sleep(warmup)
        counts["counting"] = True
        t0 = time.monotonic()
        await asyncio.sleep(seconds)
        counts["counting"] = False
        secs = time.monotonic() - t0
        counts["stop"] = True
        await asyncio.gather(*ws)
    print(json.dumps({"impl": "aiohttp", "requests": counts["requests"], "seconds": round(secs, 3),
                      "req_per_s": round(counts["requests"] / secs), "errors": counts["errors"]}))


if __name__ == "__main__":
    url = sys.argv[1]
    k = int(sys.argv[2]) if len(sys.argv) > 2 else 64
    secs = float(sys.argv[3]) if len(sys.argv) > 3 else 5
    asyncio.run(main(url, k, secs, 1.0))
