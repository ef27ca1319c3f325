#!/usr/bin/python3
"""Reference crawler in Python asyncio + aiohttp, with html.parser for links.

Written independently of corio's crawler from the same rules, it is both the
crawler tests' oracle (the set of URLs it finds must equal corio's) and the
peer in the crawler benchmark:

    ref_crawler.py START_URL [--concurrency N] [--per-host N] [--json]

Rules: links are the href of <a> and <area>, resolved against the first
<base href> (itself resolved against the page), fragments dropped; only http(s)
links on the start URL's host:port are followed; redirects are followed (the
links of the final page count); robots.txt (User-agent *) is honoured with
longest-match Allow/Disallow; a disallowed URL is recorded but not fetched;
only text/html bodies are parsed. Prints the sorted URL set, one per line (or
a JSON summary with --json).
"""
import argparse, asyncio, json, sys, time
from html.parser import HTMLParser
from urllib.parse import urljoin, urldefrag, urlsplit, urlunsplit

import aiohttp


class Links(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.base = None
        self.hrefs = []

    def handle_starttag(self, tag, attrs):
        d = dict(attrs)
        if tag in ("a", "area") and d.get("href") is not None:
            self.hrefs.append(d["href"])
        elif tag == "base" and self.base is None and d.get("href") is not None:
            self.base = d["href"]


def normalise(url):
    s = urlsplit(url)
    host = (s.hostname or "").lower()
    port = s.port
    default = {"http": 80, "https": 443}.get(s.scheme.lower())
    netloc = host if port in (None, default) else f"{host}:{port}"
    return urlunsplit((s.scheme.lower(), netloc, s.path or "/", s.query, ""))


def robots_rules(text):
    rules, applies = [], False
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if ":" not in line:
            continue
        k, v = (x.strip() for x in line.split(":", 1))
        k = k.lower()
        if k == "user-agent":
            applies = v == "*"
        elif applies and k in ("allow", "disallow") and v:
            rules.append((v, k == "allow"))
    return rules


def allowed(rules, path):
    best, ok = -1, True
    for pat, allow in rules:
        if path.startswith(pat) and (len(pat) > best or (len(pat) == best and allow)):
            best, ok = len(pat), allow
    return ok


async def crawl(start, concurrency, per_host):
    start = normalise(start)
    origin = urlsplit(start).netloc
    seen, queue = {start}, asyncio.Queue()
    queue.put_nowait(start)
    pages, errors = 0, 0
    limit = asyncio.Semaphore(per_host)
    conn = aiohttp.TCPConnector(limit=concurrency, limit_per_host=per_host)
    async with aiohttp.ClientSession(connector=conn) as session:
        rules = []
        try:
            async with session.get(f"{urlsplit(start).scheme}://{origin}/robots.txt") as r:
                if r.status == 200:
                    rules = robots_rules(await r.text(errors="replace"))
        except aiohttp.ClientError:
            pass

        async def worker():
            nonlocal pages, errors
            while True:
                url = await queue.get()
                try:
                    s = urlsplit(url)
                    if not allowed(rules, s.path + ("?" + s.query if s.query else "")):
                        continue
                    async with limit:
                        async with session.get(url) as r:
                            body = await r.read()
                            final = str(r.url)
                            ctype = r.headers.get("Content-Type", "")
                            pages += 1
                            if r.status >= 400:
                                errors += 1
                    if r.status == 200 and "text/html" in ctype:
                        p = Links()
                        p.feed(body.decode("utf-8", errors="replace"))
                        base = urljoin(final, p.base) if p.base else final
                        for h in p.hrefs:
                            h = h.strip()
                            try:
                                u = urldefrag(urljoin(base, h))[0]
                                sp = urlsplit(u)
                                if sp.scheme not in ("http", "https"):
                                    continue
                                u = normalise(u)
                            except ValueError:
                                continue
                            if urlsplit(u).netloc == origin and u not in seen:
                                seen.add(u)
                                queue.put_nowait(u)
                except aiohttp.ClientError:
                    errors += 1
                finally:
                    queue.task_done()

        workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
        t0 = time.monotonic()
        await queue.join()
        secs = time.monotonic() - t0
        for w in workers:
            w.cancel()
    return seen, pages, errors, secs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("start")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--per-host", type=int, default=16)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    seen, pages, errors, secs = asyncio.run(crawl(a.start, a.concurrency, a.per_host))
    if a.json:
        print(json.dumps({"impl": "python-aiohttp", "urls": len(seen), "pages": pages, "errors": errors,
                          "seconds": round(secs, 3), "pages_per_s": round(pages / secs, 1)}))
    else:
        for u in sorted(seen):
            print(u)


if __name__ == "__main__":
    main()
