"""Open every page of a built book in headless Chromium, as a reader would, and report what reads badly:
a figure that does not load, a JavaScript error, a code cell or output wider than its column (the reader
would have to scroll sideways, or cannot see the end of the line), maths left as TeX, and internal links
to a page or anchor that does not exist.

    python tools/check_pages.py _build/html          # exit status 1 if anything is found

Uses Debian's ``chromium`` (``$CHROMIUM`` to point elsewhere) through Playwright; nothing downloads a
browser. Requests that leave the machine are blocked, so the check also shows what an offline reader gets.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import re
import shutil
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlparse

VIEWPORT = {"width": 1280, "height": 900}  # a laptop; the book's text column is then about 750 px wide
REFRESH = re.compile(r'<meta\s+http-equiv="refresh"\s+content="\d+;\s*url=([^"]+)"', re.IGNORECASE)
SKIP = ("_static", "_sources", "_images", "_sphinx_design_static", "genindex.html", "search.html")

# Run in the page once it has loaded and MathJax has typeset: every finding as [kind, detail].
PAGE_CHECKS = r"""
() => {
  const found = [];
  const where = (el) => {
    const cell = el.closest('.cell, section');
    const title = cell && cell.querySelector('h1, h2, h3');
    const lines = (el.innerText || el.textContent || '').split('\n');
    const longest = lines.reduce((a, b) => (b.length > a.length ? b : a), '');
    const text = (longest || el.alt || el.src || '').trim().slice(0, 90);
    return (title ? '[' + title.innerText.replace('#', '').trim().slice(0, 40) + '] ' : '') + text;
  };
  for (const img of document.querySelectorAll('main img')) {
    if (!img.complete || img.naturalWidth === 0) found.push(['figure', 'does not load: ' + img.getAttribute('src')]);
  }
  const article = document.querySelector('main article, main') || document.body;
  const right = article.getBoundingClientRect().right;
  const boxes = 'pre, table';
  for (const el of article.querySelectorAll(boxes)) {
    if (el.closest('.mjx-container, mjx-container')) continue;
    const over = el.scrollWidth - el.clientWidth;
    if (over > 2) found.push(['too wide', `${el.tagName.toLowerCase()} ${over}px wider than its column: ` + where(el)]);
  }
  for (const el of article.querySelectorAll('img, .cell_output, div.highlight, table')) {
    const r = el.getBoundingClientRect();
    if (r.width > 0 && r.right > right + 2) {
      const past = Math.round(r.right - right);
      found.push(['too wide', `${el.tagName.toLowerCase()} reaches ${past}px past the page: ` + where(el)]);
    }
  }
  for (const el of article.querySelectorAll('.math')) {
    if (!el.querySelector('mjx-container')) found.push(['maths', 'not typeset: ' + el.textContent.trim().slice(0, 60)]);
  }
  for (const el of article.querySelectorAll('mjx-merror, .MathJax_Error')) {
    found.push(['maths', 'MathJax error: ' + (el.getAttribute('data-mjx-error') || el.textContent).slice(0, 80)]);
  }
  const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
  const tex = /\\\(|\\\[|\$\$|(^|\s)\$[^$\s][^$\n]{0,80}[^$\s]\$(?=$|[\s.,;:)])/;
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (n.parentElement.closest('pre, code, script, style, mjx-container, .highlight, textarea')) continue;
    if (tex.test(n.textContent)) found.push(['maths', 'TeX left in the text: ' + n.textContent.trim().slice(0, 70)]);
  }
  return found;
}
"""

PAGE_FACTS = r"""
() => ({
  ids: Array.from(document.querySelectorAll('[id]'), (e) => e.id),
  links: Array.from(document.querySelectorAll('a[href]'), (a) => a.getAttribute('href')),
})
"""


@dataclass(frozen=True)
class Problem:
    page: str
    kind: str  # figure, javascript, too wide, maths, link
    detail: str

    def __str__(self) -> str:
        return f"{self.page}: {self.kind}: {self.detail}"


def chromium_path() -> str:
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        raise SystemExit("no Chromium found: install Debian's chromium (make browser installs it), or set "
                         "$CHROMIUM to a Chromium executable.")
    return path


def pages_of(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.html") if not any(part in SKIP for part in p.relative_to(root).parts))


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def _serve(root: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def check_site(root: str | os.PathLike, pages: list[Path] | None = None) -> list[Problem]:
    """Every problem found on the pages of the built site under ``root`` (all its pages by default)."""
    from playwright.sync_api import sync_playwright

    root = Path(root).resolve()
    pages = pages if pages is not None else pages_of(root)
    if not pages:
        raise SystemExit(f"no HTML pages under {root}: build the book first (make book).")
    server, base = _serve(root)
    problems: list[Problem] = []
    facts: dict[str, dict] = {}
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
            context = browser.new_context(viewport=VIEWPORT)
            context.route(lambda url: not url.startswith(base), lambda route: route.abort())  # offline
            for path in pages:
                name = path.relative_to(root).as_posix()
                redirect = REFRESH.search(path.read_text(errors="replace"))
                if redirect:  # a redirect page (the site's index.html): only its target is checked
                    facts[name] = {"ids": [], "links": [redirect.group(1)]}
                else:
                    problems += _check_page(context, base, name, facts)
            browser.close()
    finally:
        server.shutdown()
    problems += _check_links(root, facts)
    return problems


def _check_page(context, base: str, name: str, facts: dict) -> list[Problem]:
    found: list[Problem] = []
    page = context.new_page()
    page.on("pageerror", lambda err: found.append(Problem(name, "javascript", str(err).splitlines()[0])))

    def failed(request) -> None:
        if request.url.startswith(base):
            found.append(Problem(name, "figure" if request.resource_type == "image" else "resource",
                                 f"{request.url[len(base):]} failed ({request.failure})"))

    def status(response) -> None:
        if response.url.startswith(base) and response.status >= 400:
            found.append(Problem(name, "figure" if response.request.resource_type == "image" else "resource",
                                 f"{response.url[len(base):]}: HTTP {response.status}"))

    page.on("requestfailed", failed)
    page.on("response", status)
    page.goto(base + name, wait_until="load")
    page.evaluate("() => document.querySelectorAll('img[loading=lazy]').forEach((i) => i.loading = 'eager')")
    page.wait_for_load_state("networkidle")
    page.evaluate("""async () => { if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
                                     await MathJax.startup.promise; } }""")
    for kind, detail in page.evaluate(PAGE_CHECKS):
        found.append(Problem(name, kind, detail))
    facts[name] = page.evaluate(PAGE_FACTS)
    page.close()
    return found


def _check_links(root: Path, facts: dict[str, dict]) -> list[Problem]:
    """Internal links whose page is missing, or whose anchor is not an id on the page it points to."""
    found = []
    for name, info in facts.items():
        for href in info["links"]:
            parsed = urlparse(href)
            if parsed.scheme or parsed.netloc or href.startswith(("mailto:", "javascript:")):
                continue
            target_path, anchor = urldefrag(href)
            target = (root / name).parent / unquote(target_path) if target_path else root / name
            target = target.resolve()
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                found.append(Problem(name, "link", f"{href}: no such file"))
                continue
            rel = target.relative_to(root).as_posix() if target.is_relative_to(root) else None
            if anchor and rel in facts and unquote(anchor) not in facts[rel]["ids"]:
                found.append(Problem(name, "link", f"{href}: no anchor #{anchor} on {rel}"))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", help="the built HTML folder, e.g. _build/html")
    args = parser.parse_args(argv)
    root = Path(args.site).resolve()
    pages = pages_of(root)
    problems = check_site(root, pages)
    for problem in problems:
        print(problem)
    print(f"{len(pages)} pages checked in Chromium: {len(problems)} problem(s).")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
