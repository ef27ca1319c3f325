#!/usr/bin/python3
"""Generates a static sample site for the crawler demo, tests and benchmark.

    scripts/gen_site.py OUTDIR [--pages 2000] [--seed 1]

About `pages` interlinked HTML pages in sections (sec00/ … sec19/, each with an
index.html), every page reachable from /index.html, with what a crawler meets
on the web: relative (with ./ and ../) and root-relative links, fragments and
`../`, a <base href> on some pages, links to a section without its trailing
slash (the server answers 301), a few broken links (404), mailto: and
javascript: links, links to another host, a robots.txt that disallows
/private/, a non-HTML file, and one Latin-1 page. Deterministic for a seed.
"""
import argparse, os, random

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("--pages", type=int, default=2000)
ap.add_argument("--seed", type=int, default=1)
a = ap.parse_args()
rnd = random.Random(a.seed)
SECTIONS = 20
n = max(a.pages, SECTIONS * 2)


def path_of(i):
    return f"/sec{i % SECTIONS:02d}/p{i:05d}.html"


def rel(src, dst):
    return os.path.relpath(dst, os.path.dirname(src))


def write(path, text, encoding="utf-8"):
    full = os.path.join(a.out, path.lstrip("/"))
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w", encoding=encoding) as f:
        f.write(text)


def page(title, links, base=None, extra=""):
    head = f"<title>{title}</title>" + (f'<base href="{base}">' if base else "")
    body = "\n".join(f'<li><a href="{h}">{t}</a></li>' for h, t in links)
    return (f"<!doctype html><html><head><meta charset=utf-8>{head}</head><body><h1>{title}</h1>"
            f"<p>{'Lorem ipsum dolor sit amet. ' * rnd.randint(3, 30)}</p><ul>\n{body}\n</ul>{extra}</body></html>\n")


# The home page links to every section (half without the trailing slash: 301).
home = [(f"/sec{s:02d}" + ("/" if s % 2 else ""), f"section {s}") for s in range(SECTIONS)]
home += [("/private/secret.html", "private"), ("mailto:webmaster@example.invalid", "mail"),
         ("javascript:void(0)", "js"), ("http://other-host.invalid/", "elsewhere"), ("/files/data.bin", "data")]
write("/index.html", page("Home", home))
for s in range(SECTIONS):
    first = [(f"p{i:05d}.html", f"page {i}") for i in range(s, n, SECTIONS)][:5]
    write(f"/sec{s:02d}/index.html", page(f"Section {s}", first + [("../index.html#top", "home")]))
for i in range(n):
    src = path_of(i)
    links = [(rel(src, path_of((i + SECTIONS) % n)), "next in section"), (path_of((i + 1) % n), "next")]
    for _ in range(rnd.randint(2, 6)):
        j = rnd.randrange(n)
        style = rnd.random()
        if style < 0.4:
            href = rel(src, path_of(j))
        elif style < 0.7:
            href = path_of(j)
        elif style < 0.85:
            href = path_of(j) + f"#part{rnd.randint(1, 9)}"
        else:
            href = "./" + rel(src, path_of(j)) if path_of(j).startswith(os.path.dirname(src) + "/") else path_of(j)
        links.append((href, f"page {j}"))
    if i % 97 == 0:
        links.append((f"/sec{i % SECTIONS:02d}/missing-{i}.html", "broken"))  # 404
    if i % 89 == 0:
        links.append(("mailto:someone@example.invalid", "mail"))
    base = f"/sec{(i + 3) % SECTIONS:02d}/" if i % 53 == 0 else None
    if base:  # links relative to another section: rewrite the relative ones
        links = [(h if h.startswith(("/", "http", "mailto:")) else rel(base + "x.html", os.path.normpath(
            os.path.join(os.path.dirname(src), h))), t) for h, t in links]
    write(src, page(f"Page {i}", links, base=base))
write("/private/secret.html", page("Secret", [("/private/deeper.html", "deeper")]))
write("/private/deeper.html", page("Deeper", []))
write("/robots.txt", "User-agent: *\nDisallow: /private/\n")
os.makedirs(os.path.join(a.out, "files"), exist_ok=True)
with open(os.path.join(a.out, "files", "data.bin"), "wb") as f:
    f.write(bytes(rnd.randrange(256) for _ in range(4096)))
write("/sec00/latin1.html", "<html><body><p>caf\xe9</p><a href='p00000.html'>x</a></body></html>", encoding="latin-1")
print(f"generated {n + SECTIONS + 4} files in {a.out}")
