"""The whole book as one PDF: every page of the built site in ``_toc.yml`` order, printed by headless
Chromium (served locally, network blocked: :mod:`tsd_lib.book.site_check`'s browser), then merged with
pypdf into one file with a bookmark per page. Links inside the book jump to the linked section (or
page) within the PDF; links to files outside it (downloads, the index) are dropped, web links kept.

The print styles are the theme's (no sidebars, header or navigation in print) and
``_static/print.css`` (hidden-input code left out, dropdowns open, figures kept whole). Needs the
``dev`` extra (Playwright, pypdf) and a Chromium (Debian: ``apt-get install chromium``).
"""

from __future__ import annotations

import html
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

import yaml

from tsd_lib.paths import PROJECT_ROOT

if TYPE_CHECKING:
    from pypdf import PdfWriter

PRINT_CSS = PROJECT_ROOT / "_static" / "print.css"
SOURCE_SUFFIXES = (".md", ".ipynb", ".rst", ".myst")
MARGIN = {"top": "14mm", "bottom": "16mm", "left": "14mm", "right": "14mm"}
#: The width of A4 less the side margins in CSS pixels (96 per inch): the page is laid out at this
#: width before printing, so what does not fit can be measured and scaled down.
PRINT_WIDTH_PX = round((210 - 2 * 14) / 25.4 * 96)
# The footer of every PDF page: the site page's title and the page number within it.
_FOOTER = ('<div style="font-size:8px;width:100%;margin:0 14mm;color:#666;display:flex;'
           'justify-content:space-between"><span>{title}</span>'
           '<span><span class="pageNumber"></span> / <span class="totalPages"></span></span></div>')

# Runs in the page before printing: open the dropdowns (hints, solutions), wait for MathJax, the
# fonts and every image, scale down display math and tables wider than the page, and return the
# page's title (its first heading, else <title>).
_PREPARE = r"""async () => {
  document.querySelectorAll('details.sd-dropdown').forEach(d => { d.open = true; });
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  await document.fonts.ready;
  await Promise.all([...document.images].map(i => i.complete ? null :
    new Promise(r => { i.addEventListener('load', r); i.addEventListener('error', r); })));
  for (const e of document.querySelectorAll('mjx-container[display="true"], .bd-article table')) {
    const room = e.parentElement.clientWidth, need = e.scrollWidth;
    if (room > 0 && need > room + 1) { e.style.zoom = (room / need).toFixed(3); }
  }
  const h1 = document.querySelector('article h1, main h1, h1');
  const title = h1 ? h1.textContent.replace(/[#\u00b6]\s*$/, '').trim() : '';
  return title || document.title.split(' \u2014 ')[0].trim();
}"""


@dataclass
class PrintedPage:
    """One page of the site printed on its own: its path in the site, its PDF and its title."""

    page: str
    pdf: Path
    title: str


def toc_pages(toc: Path) -> list[str]:
    """The HTML pages of a Jupyter Book ``_toc.yml`` in reading order (root first, then every
    ``file`` entry depth-first); ``url`` entries are skipped."""
    data = yaml.safe_load(Path(toc).read_text()) or {}
    if "root" not in data:
        raise ValueError(f"{toc}: no `root` entry; not a Jupyter Book table of contents")
    files = [str(data["root"])]

    def walk(entries: list[dict] | None) -> None:
        for entry in entries or []:
            if "glob" in entry:
                raise ValueError(f"{toc}: `glob` entries are not supported: {entry['glob']}")
            if "file" in entry:
                files.append(str(entry["file"]))
            walk(entry.get("sections"))
            walk(entry.get("chapters"))

    walk(data.get("parts"))
    walk(data.get("chapters"))
    walk(data.get("sections"))
    pages = []
    for name in files:
        stem = name[: -len(suffix)] if (suffix := Path(name).suffix) in SOURCE_SUFFIXES else name
        if f"{stem}.html" not in pages:
            pages.append(f"{stem}.html")
    return pages


def book_title(config: Path, default: str = "TSD Book") -> str:
    """The ``title`` of a Jupyter Book ``_config.yml`` (``default`` when there is none)."""
    if not Path(config).is_file():
        return default
    return str((yaml.safe_load(Path(config).read_text()) or {}).get("title") or default)


def print_pages(html_dir: Path, pages: list[str], out_dir: Path, *, print_css: Path | None = PRINT_CSS,
                ) -> tuple[list[PrintedPage], str]:
    """Print each page of the built site at ``html_dir`` to its own A4 PDF in ``out_dir``; returns
    them and the base URL they were served from (the links in the PDFs start with it)."""
    from tsd_lib.book.site_check import offline_browser, serve

    html_dir, out_dir = Path(html_dir), Path(out_dir)
    missing = [p for p in pages if not (html_dir / p).is_file()]
    if missing:
        raise FileNotFoundError(f"{html_dir}: the table of contents lists pages the built site lacks "
                                f"({', '.join(missing)}); run `make book` first")
    printed = []
    with serve(html_dir) as base, offline_browser(base) as (page, _):
        page.set_viewport_size({"width": PRINT_WIDTH_PX, "height": 1000})
        page.emulate_media(media="print")
        for i, name in enumerate(pages):
            page.goto(f"{base}/{name}", wait_until="load")
            if print_css is not None and Path(print_css).is_file():
                page.add_style_tag(content=Path(print_css).read_text())
            title = page.evaluate(_PREPARE) or name
            pdf = out_dir / f"{i:03d}.pdf"
            page.pdf(path=str(pdf), format="A4", print_background=True, margin=MARGIN,
                     display_header_footer=True, header_template="<span></span>",
                     footer_template=_FOOTER.format(title=html.escape(title)))
            printed.append(PrintedPage(name, pdf, title))
    return printed, base


def merge_pdfs(printed: list[PrintedPage], out: Path, *, base: str | None = None, title: str = "") -> int:
    """Merge the printed pages into ``out``, one bookmark per page. Links inside a page keep
    working; links starting with ``base`` jump to the linked section (else to the linked page's
    first PDF page), or are dropped when that page is not in the book. Returns the PDF's pages."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    starts: dict[str, int] = {}
    anchors: dict[tuple[str, str], tuple[int, float | None]] = {}
    owner: list[str] = []  # the site page each PDF page comes from
    for part in printed:
        reader = PdfReader(part.pdf)
        start = starts[part.page] = len(writer.pages)
        for name, dest in reader.named_destinations.items():
            anchors[(part.page, _anchor(name))] = (start + reader.get_destination_page_number(dest), dest.top)
        writer.append(reader, outline_item=part.title, import_outline=False)
        owner += [part.page] * (len(writer.pages) - start)
    _relink(writer, owner, starts, anchors, base)
    if title:
        writer.add_metadata({"/Title": title})
    writer.page_mode = "/UseOutlines"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as f:
        writer.write(f)
    return len(writer.pages)


def _anchor(name: str) -> str:
    """A named destination as the fragment of a URL (Chromium writes ``#intro`` as ``/intro``)."""
    name = unquote(str(name))
    return name[1:] if name.startswith("/") else name


def _relink(writer: PdfWriter, owner: list[str], starts: dict[str, int],
            anchors: dict[tuple[str, str], tuple[int, float | None]], base: str | None) -> None:
    """Point every link of the merged PDF at explicit pages (see :func:`merge_pdfs`): named
    destinations repeat across pages (each chapter has its "Exercises"), so they are resolved
    within the page they come from."""
    from pypdf.generic import ArrayObject, FloatObject, NameObject, NullObject

    def goto(page: int, top: float | None) -> ArrayObject:
        where = [NameObject("/XYZ"), NullObject(), FloatObject(top), NullObject()] if top is not None \
            else [NameObject("/Fit")]
        return ArrayObject([writer.pages[page].indirect_reference, *where])

    for pdf_page, site_page in zip(writer.pages, owner, strict=True):
        annots = pdf_page.get("/Annots")
        if annots is None:
            continue
        kept = ArrayObject()
        for ref in annots.get_object():
            annot = ref.get_object()
            dest, action = annot.get("/Dest"), annot.get("/A")
            uri = str(action.get_object().get("/URI", "")) if action is not None else ""
            if isinstance(dest, str) and (site_page, _anchor(dest)) in anchors:
                annot[NameObject("/Dest")] = goto(*anchors[(site_page, _anchor(dest))])
            elif base is not None and uri.startswith(base):
                parts = urlsplit(uri)
                target = unquote(parts.path).lstrip("/")
                if target not in starts:
                    continue  # a page or file outside the book: the text stays, the dead link goes
                del annot[NameObject("/A")]
                annot[NameObject("/Dest")] = goto(*anchors.get((target, unquote(parts.fragment)),
                                                              (starts[target], None)))
            kept.append(ref)
        pdf_page[NameObject("/Annots")] = kept


def build_pdf(html_dir: Path, out: Path, *, toc: Path = PROJECT_ROOT / "_toc.yml",
              title: str | None = None) -> tuple[int, float]:
    """The whole book (the pages of ``toc``, built in ``html_dir``) as one PDF at ``out``; returns
    its number of pages and the seconds it took."""
    from tsd_lib.book.site_check import chromium

    start = time.perf_counter()
    html_dir, out, toc = Path(html_dir), Path(out), Path(toc)
    if not (html_dir / "index.html").is_file():
        raise FileNotFoundError(f"{html_dir}: no built site there; run `make book` first")
    if not toc.is_file():
        raise FileNotFoundError(f"{toc}: no table of contents there (the book's _toc.yml)")
    if chromium() is None:
        raise FileNotFoundError("no chromium on PATH; install it (Debian: apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
        import pypdf  # noqa: F401
    except ImportError as err:
        raise FileNotFoundError(f"the PDF needs the dev extra (pip install -e '.[dev]'): {err}") from None
    pages = toc_pages(toc)
    title = title if title is not None else book_title(toc.parent / "_config.yml")
    with tempfile.TemporaryDirectory(prefix="tsd-pdf-") as tmp:
        printed, base = print_pages(html_dir, pages, Path(tmp))
        n = merge_pdfs(printed, out, base=base, title=title)
    return n, time.perf_counter() - start
