"""What a reader sees: the built site walked in headless Chromium with the network blocked.

Every page is checked for typeset math (MathJax output and no raw ``\\(`` / ``\\[`` left), loaded
images, code that is not cut off (no ``pre`` wider than its box, folded cells opened first) and
internal links that resolve, figures shown large enough for their smallest text to stay at least
:data:`MIN_TEXT_PX` pixels; no page may ask for anything outside the site. :func:`screenshots`
writes the landing page and a chapter as PNGs. Needs the ``dev`` extra (Playwright) and a
Chromium (Debian: ``apt-get install chromium``).
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import shutil
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from tsd_lib.report.style import MIN_FONT_SIZE

SKIP_DIRS = {"_static", "_sources", "_images", "_sphinx_design_static", "_panels_static"}
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LANDING, CHAPTER = "book/intro.html", "book/chapters/06_experiments.html"
SHOT_SIZE = {"landing.png": (1280, 1700), "chapter.png": (1280, 900)}  # the landing shot reaches its figure

#: Figures are drawn at :data:`FIGURE_DPI` with text of at least ``MIN_FONT_SIZE`` points
#: (:mod:`tsd_lib.report.style`); shown below :data:`MIN_SCALE` of their size, that text would be
#: narrower than :data:`MIN_TEXT_PX` pixels. Images narrower than :data:`MIN_FIGURE_PX` are icons.
FIGURE_DPI, MIN_TEXT_PX, MIN_FIGURE_PX = 100, 9.0, 200
MIN_SCALE = MIN_TEXT_PX / (MIN_FONT_SIZE * FIGURE_DPI / 72)

# Runs in the page: open folded cells, wait for MathJax, then report what a reader would see.
_INSPECT = r"""async ([MIN_SCALE, MIN_FIGURE_PX]) => {
  document.querySelectorAll('details').forEach(d => { d.open = true; });
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  const root = document.querySelector('article') || document.body;
  const math = [...root.querySelectorAll('.math')];
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT, {acceptNode: n =>
    n.parentElement.closest('pre, code, script, style, textarea, mjx-container')
      ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT});
  const raw = [];
  while (walker.nextNode()) {
    const t = walker.currentNode.textContent;
    if (/\\\(|\\\[|\$\$/.test(t)) raw.push(t.trim().slice(0, 80));
  }
  return {
    math: math.length,
    typeset: root.querySelectorAll('mjx-container').length,
    untypeset: math.filter(m => !m.querySelector('mjx-container')).length,
    raw,
    broken_images: [...document.querySelectorAll('img')]
      .filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src')),
    images: root.querySelectorAll('img').length,
    shrunk_figures: [...root.querySelectorAll('img')]
      .filter(i => i.naturalWidth >= MIN_FIGURE_PX && i.getClientRects().length
                   && i.clientWidth < i.naturalWidth * MIN_SCALE)
      .map(i => `${(i.getAttribute('src') || '').split('/').pop()} (${i.naturalWidth} px shown at ${i.clientWidth})`),
    clipped_code: [...root.querySelectorAll('pre')]
      .filter(p => p.getClientRects().length && p.scrollWidth > p.clientWidth + 1)
      .map(p => p.textContent.split('\n')[0].slice(0, 80)),
    links: [...document.querySelectorAll('a[href]')].map(a => a.href),
    rows: [...root.querySelectorAll('tr')].map(tr => [...tr.cells].map(c => c.innerText.trim())),
    text: root.innerText,
  };
}"""


@dataclass
class PageReport:
    """What one page showed; ``problems`` is empty when a reader sees it whole."""

    page: str
    math: int = 0
    images: int = 0
    text: str = ""
    rows: list[list[str]] = field(default_factory=list)  # the cells of each table row
    links: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def site_pages(html_dir: Path) -> list[str]:
    """Every HTML page of the built site (relative paths), the theme's assets left out."""
    return sorted(p.relative_to(html_dir).as_posix() for p in html_dir.rglob("*.html")
                  if not SKIP_DIRS & set(p.relative_to(html_dir).parts))


@contextlib.contextmanager
def serve(html_dir: Path) -> Iterator[str]:
    """Serve ``html_dir`` on a free local port; yields its base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    handler = functools.partial(_QuietHandler, directory=str(html_dir))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        httpd.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


@contextlib.contextmanager
def offline_browser(local: str) -> Iterator[tuple[object, list[str]]]:
    """A Chromium page that may load only URLs starting with ``local``; yields the page and the
    list of the requests it blocked."""
    from playwright.sync_api import sync_playwright

    path = chromium()
    if path is None:
        raise FileNotFoundError("no chromium on PATH; install it (Debian: apt-get install chromium)")
    blocked: list[str] = []

    def route(r: object) -> None:
        if r.request.url.startswith(local) or r.request.url.startswith("data:"):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.route("**/*", route)
        try:
            yield context.new_page(), blocked
        finally:
            browser.close()


def _link_problem(href: str, base: str, html_dir: Path) -> str | None:
    """Why an internal link does not resolve (None when it does, or is external)."""
    if not href.startswith(base):
        return None
    parts = urlsplit(href)
    rel = unquote(parts.path).lstrip("/")
    target = html_dir / rel
    if target.is_dir():
        target = target / "index.html"
    if not target.is_file():
        return f"broken link {href}"
    if parts.fragment and target.suffix == ".html":
        anchor = unquote(parts.fragment)
        text = _read(target)
        if f'id="{anchor}"' not in text and f'name="{anchor}"' not in text:
            return f"link to a missing anchor {href}"
    return None


@functools.lru_cache(maxsize=256)
def _read(path: Path) -> str:
    return path.read_text(errors="replace")


def inspect_page(page: object, url: str, name: str, *, redirects: bool = False) -> PageReport:
    """Load ``url`` in ``page`` and report what a reader sees there (where it leads when it
    ``redirects``, as the site's ``index.html`` does)."""
    response = page.goto(url, wait_until="commit" if redirects else "load")
    report = PageReport(name)
    if response is None or not response.ok:
        report.problems.append(f"{name}: HTTP {response.status if response else 'no response'}")
        return report
    if redirects:
        page.wait_for_url(lambda u: u != url)
        page.wait_for_load_state("load")
    seen = page.evaluate(_INSPECT, [MIN_SCALE, MIN_FIGURE_PX])
    report.math, report.images, report.text = seen["math"], seen["images"], seen["text"]
    report.rows, report.links = seen["rows"], seen["links"]
    if seen["math"] and (seen["untypeset"] or not seen["typeset"]):
        report.problems.append(f"{name}: {seen['untypeset']} of {seen['math']} formulas not typeset")
    report.problems += [f"{name}: raw TeX left in the text: {t!r}" for t in seen["raw"]]
    report.problems += [f"{name}: image not loaded: {src}" for src in seen["broken_images"]]
    report.problems += [f"{name}: code cut off: {line!r}" for line in seen["clipped_code"]]
    report.problems += [f"{name}: figure shrunk below legible text ({MIN_TEXT_PX:g} px): {fig}"
                        for fig in seen["shrunk_figures"]]
    return report


def check_site(html_dir: Path, pages: list[str] | None = None) -> list[PageReport]:
    """Walk every page of the site (served locally, network blocked) and report each one; a
    page's ``problems`` include its broken internal links and the requests it tried to make
    outside the site."""
    html_dir = Path(html_dir)
    reports = []
    with serve(html_dir) as base, offline_browser(base) as (page, blocked):
        for name in pages or site_pages(html_dir):
            before = len(blocked)
            redirects = 'http-equiv="Refresh"' in _read(html_dir / name)
            report = inspect_page(page, f"{base}/{name}", name, redirects=redirects)
            report.problems += sorted({p for href in report.links
                                       if (p := _link_problem(href, base, html_dir)) is not None})
            report.problems += [f"{name}: asked the network for {u}" for u in blocked[before:]]
            reports.append(report)
    return reports


def screenshots(html_dir: Path, out_dir: Path, pages: dict[str, str] | None = None) -> list[Path]:
    """PNGs of the landing page and a chapter (``{file name: page}``), written into ``out_dir``."""
    pages = pages or {"landing.png": LANDING, "chapter.png": CHAPTER}
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with serve(Path(html_dir)) as base, offline_browser(base) as (page, _):
        for filename, name in pages.items():
            width, height = SHOT_SIZE.get(filename, (1280, 900))
            page.set_viewport_size({"width": width, "height": height})
            inspect_page(page, f"{base}/{name}", name, redirects=name == "index.html")
            page.evaluate("() => document.querySelectorAll('details').forEach(d => { d.open = false; })")
            page.evaluate("() => window.scrollTo(0, 0)")
            page.screenshot(path=str(out_dir / filename), full_page=False)
            written.append(out_dir / filename)
    return written
