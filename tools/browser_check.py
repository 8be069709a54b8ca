"""Open every page of the built book in headless Chromium and check it renders offline.

    python tools/browser_check.py [--html _build/html] [--screenshots _build/screenshots]

Serves the built HTML on 127.0.0.1 (a local http.server thread) and visits each page
with Playwright driving Debian's Chromium (``apt-get install chromium``; never
``playwright install``). Exits 1, listing page and problem, if on any page:

- a request goes to a host other than the local server (it is blocked, never sent),
  fails, or gets an HTTP error;
- an ``<img>`` did not load (``naturalWidth == 0``);
- math is not typeset: the page has math but no MathJax or no ``mjx-container``, a
  MathJax error box (``mjx-merror``), or raw TeX delimiters (``\\(``, ``\\[``, ``$$``,
  ``\\begin{``) left in text outside code;
- the console shows an error, or a script throws.

It also saves a full-page screenshot of each chapter page to ``_build/screenshots/``.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
SKIP_DIRS = {"_static", "_sources", "_images", "_downloads"}

# Runs in the page after load: wait for MathJax, then collect what a reader would miss.
PAGE_PROBE = r"""
async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  await document.fonts.ready;
  const imgs = Array.from(document.images);
  await Promise.all(imgs.map(i => { i.loading = 'eager'; return i.decode().catch(() => {}); }));
  const badImages = imgs.filter(i => !i.complete || i.naturalWidth === 0)
                        .map(i => i.getAttribute('src'));
  const skip = 'code, pre, script, style, textarea, mjx-container, .highlight, kbd, samp';
  const rawTex = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!el || el.closest(skip)) continue;
    const t = n.textContent;
    for (const d of ['\\(', '\\)', '\\[', '\\]', '$$', '\\begin{']) {
      if (t.includes(d)) { rawTex.push(t.trim().slice(0, 80)); break; }
    }
  }
  return {
    mathjax: !!(window.MathJax && MathJax.version),
    mathNodes: document.querySelectorAll('.math, div.math, span.math').length,
    mjx: document.querySelectorAll('mjx-container').length,
    mjxErrors: Array.from(document.querySelectorAll('mjx-merror'))
                    .map(e => (e.getAttribute('data-mjx-error') || e.textContent).slice(0, 80)),
    badImages: badImages,
    rawTex: rawTex.slice(0, 5),
  };
}
"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - http.server's signature
        pass


def serve(directory: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def book_pages(html: Path) -> list[Path]:
    return sorted(p for p in html.rglob("*.html")
                  if not SKIP_DIRS.intersection(p.relative_to(html).parts))


def check(html: Path, shots: Path) -> list[str]:
    from playwright.sync_api import sync_playwright

    pages = book_pages(html)
    if not pages:
        return [f"{html}: no HTML pages (build the book first: python tools/build_book.py)"]
    server, base = serve(html)
    local = urlsplit(base).netloc
    problems: list[str] = []
    shots.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as pw:
            # Playwright gives the browser a fresh temporary profile (--user-data-dir)
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            for path in pages:
                rel = path.relative_to(html).as_posix()
                found: list[str] = []

                def route(r, found=found):
                    host = urlsplit(r.request.url).netloc
                    if r.request.url.startswith(("data:", "blob:")) or host == local:
                        r.continue_()
                    else:
                        found.append(f"request to non-local host: {r.request.url}")
                        r.abort()

                page = context.new_page()
                page.route("**/*", route)
                page.on("requestfailed", lambda r, found=found: found.append(
                    f"request failed: {r.url} ({r.failure})"))
                page.on("response", lambda r, found=found: r.status >= 400 and found.append(
                    f"HTTP {r.status}: {r.url}"))
                page.on("console", lambda m, found=found: m.type == "error" and found.append(
                    f"console error: {m.text}"))
                page.on("pageerror", lambda e, found=found: found.append(f"script error: {e}"))
                page.goto(f"{base}/{rel}", wait_until="load")
                source = path.read_text(encoding="utf8", errors="replace").lower()
                if 'http-equiv="refresh"' in source:
                    # a redirect page (index.html -> the root page): check where it lands
                    page.wait_for_url(lambda url, rel=rel: not url.endswith("/" + rel))
                    page.wait_for_load_state("load")
                probe = page.evaluate(PAGE_PROBE)
                page.wait_for_load_state("networkidle")
                if probe["mathNodes"] and not probe["mathjax"]:
                    found.append("page has math but MathJax did not load")
                elif probe["mathNodes"] and not probe["mjx"]:
                    found.append("page has math but nothing was typeset (no mjx-container)")
                found += [f"MathJax error: {e}" for e in probe["mjxErrors"]]
                found += [f"raw TeX left in text: {t!r}" for t in probe["rawTex"]]
                found += [f"image not loaded: {src}" for src in probe["badImages"]]
                if rel.startswith("chapters/"):
                    page.screenshot(path=str(shots / f"{path.stem}.png"), full_page=True)
                print(f"browser_check: {rel}: {'OK' if not found else f'{len(found)} problem(s)'}"
                      f" (math typeset: {probe['mjx']})")
                problems += [f"{rel}: {p}" for p in found]
                page.close()
            browser.close()
    finally:
        server.shutdown()
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check the built book in headless Chromium.")
    parser.add_argument("--html", type=Path, default=ROOT / "_build" / "html")
    parser.add_argument("--screenshots", type=Path, default=ROOT / "_build" / "screenshots")
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).is_file():
        print(f"browser_check: {CHROMIUM} not found; install it: apt-get install -y chromium",
              file=sys.stderr)
        return 1
    problems = check(args.html.resolve(), args.screenshots.resolve())
    for problem in problems:
        print(f"browser_check: FAIL {problem}", file=sys.stderr)
    print(f"browser_check: {len(book_pages(args.html))} pages, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
