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
- the console shows an error, or a script throws;
- a chapter page (``chapters/``) has no download link to its executed notebook, or the
  link does not serve a notebook (``tools/executed_notebooks.py``).

It also checks what a reader sees (book design, section 10; ``--no-reader`` skips this),
naming the page and the element:

- at 1280 px, no ``pre``, table, image or display-math element is wider than the article
  column (nor scrolls inside itself: a code block whose lines run out of sight counts);
- every content image sits in a numbered figure with a caption;
- none of the stale phrases of :data:`STALE` appears;
- at 400 px every image fits the column.

It saves a full-page screenshot of every page at both widths to
``_build/screenshots/{1280,400}/``.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
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
WIDTHS = (1280, 400)
# phrases of a book still being written, or of a story told on every page (issue 14)
STALE = ("in preparation", "planned", "to be measured", "will be filled in",
         "lost every equation", "to be written", "coming soon")

# Runs in the page (at the current viewport width): what a reader cannot see or read.
READER_PROBE = r"""
(stale) => {
  const article = document.querySelector('article.bd-article') || document.querySelector('main');
  const style = getComputedStyle(article);
  const left = article.getBoundingClientRect().left + parseFloat(style.paddingLeft);
  const right = article.getBoundingClientRect().right - parseFloat(style.paddingRight);
  const name = el => {
    const text = (el.getAttribute('src') || el.getAttribute('alt') || el.textContent || '')
      .trim().replace(/\s+/g, ' ').slice(0, 70);
    const cls = el.className && typeof el.className === 'string'
      ? '.' + el.className.trim().split(/\s+/)[0] : '';
    return `<${el.tagName.toLowerCase()}${cls}> "${text}"`;
  };
  const visible = el => el.offsetParent !== null || el.getClientRects().length > 0;
  const overflow = [];
  const sel = 'pre, table, img, mjx-container[display="true"]';
  for (const el of article.querySelectorAll(sel)) {
    if (!visible(el)) continue;
    const r = el.getBoundingClientRect();
    if (r.width === 0) continue;
    const inner = el.scrollWidth - el.clientWidth;
    if (r.left < left - 1 || r.right > right + 1) {
      overflow.push(`${name(el)} is ${Math.round(r.width)} px wide, the column ` +
                    `${Math.round(right - left)} px`);
      continue;
    } else if (el.tagName !== 'IMG' && inner > 1) {
      overflow.push(`${name(el)} hides ${inner} px of its content behind a scroll bar`);
      continue;
    }
    // a scrolling wrapper (tables, outputs) hides what is wider than itself, too
    const wrap = el.parentElement;
    if (wrap && wrap !== article && wrap.scrollWidth - wrap.clientWidth > 1
        && getComputedStyle(wrap).overflowX !== 'visible') {
      overflow.push(`${name(el)} hides ${wrap.scrollWidth - wrap.clientWidth} px ` +
                    `in its scrolling container`);
    }
  }
  const uncaptioned = [];
  for (const img of article.querySelectorAll('img')) {
    const fig = img.closest('figure');
    const cap = fig && fig.querySelector('figcaption');
    if (!cap || !cap.querySelector('.caption-number') || cap.textContent.trim().length < 20) {
      uncaptioned.push(name(img));
    }
  }
  const text = article.innerText.toLowerCase();
  const phrases = stale.filter(p => new RegExp('\\b' + p + '\\b').test(text));
  return {overflow, uncaptioned, phrases, column: Math.round(right - left)};
}
"""

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


def _shot_name(rel: str) -> str:
    return rel.removesuffix(".html").replace("/", "__") + ".png"


def reader_problems(page, width: int) -> list[str]:
    """What :data:`READER_PROBE` finds at the page's current viewport ``width``."""
    probe = page.evaluate(READER_PROBE, list(STALE))
    if width == WIDTHS[0]:
        found = [f"at {width} px: {o}" for o in probe["overflow"]]
        found += [f"image without a numbered figure caption: {i}"
                  for i in probe["uncaptioned"]]
        found += [f"stale phrase: {p!r}" for p in probe["phrases"]]
        return found
    # narrow screens: only images must scale to the column (code may scroll)
    return [f"at {width} px: {o}" for o in probe["overflow"] if o.startswith("<img")]


def notebook_link_problems(page, context) -> list[str]:
    """A chapter page links to its executed notebook (tools/executed_notebooks.py), and the
    link serves a notebook."""
    href = page.evaluate("() => document.querySelector('p.executed-notebook a')?.href")
    if not href:
        return ["no download link to its executed notebook (p.executed-notebook a)"]
    response = context.request.get(href)
    if not response.ok:
        return [f"executed notebook link: HTTP {response.status}: {href}"]
    try:
        nb = json.loads(response.body())
    except ValueError:
        return [f"executed notebook link does not serve JSON: {href}"]
    if not isinstance(nb, dict) or not nb.get("cells") or "nbformat" not in nb:
        return [f"executed notebook link does not serve a notebook: {href}"]
    return []


def check(html: Path, shots: Path, reader: bool = False) -> list[str]:
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
                    found += notebook_link_problems(page, context)
                for width in WIDTHS:
                    if width != WIDTHS[0]:
                        page.set_viewport_size({"width": width, "height": 900})
                        page.wait_for_timeout(200)  # let the theme re-lay the page out
                    if reader:
                        found += reader_problems(page, width)
                    (shots / str(width)).mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(shots / str(width) / _shot_name(rel)),
                                    full_page=True)
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
    parser.add_argument("--no-reader", dest="reader", action="store_false",
                        help="skip the checks of layout, figure captions and stale text "
                             "(book design, section 10)")
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).is_file():
        print(f"browser_check: {CHROMIUM} not found; install it: apt-get install -y chromium",
              file=sys.stderr)
        return 1
    problems = check(args.html.resolve(), args.screenshots.resolve(), reader=args.reader)
    for problem in problems:
        print(f"browser_check: FAIL {problem}", file=sys.stderr)
    print(f"browser_check: {len(book_pages(args.html))} pages, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
