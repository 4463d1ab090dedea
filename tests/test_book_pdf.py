"""`make pdf`: the pages in ``_toc.yml`` order, the merge and its links (no browser needed), and the
real print of a tiny two-page site in headless Chromium when one is installed."""

from __future__ import annotations

from pathlib import Path

import pytest
from pypdf import PdfReader, PdfWriter
from pypdf.generic import ArrayObject, DictionaryObject, FloatObject, NameObject, TextStringObject

from tsd_lib.book import site_check
from tsd_lib.book.pdf import PrintedPage, build_pdf, merge_pdfs, toc_pages
from tsd_lib.cli import main

REPO = Path(__file__).resolve().parents[1]
BASE = "http://127.0.0.1:8000"


def test_toc_pages_follow_reading_order(tmp_path):
    toc = tmp_path / "_toc.yml"
    toc.write_text("""format: jb-book
root: intro
parts:
  - caption: One
    chapters:
      - file: ch/a.ipynb
        sections:
          - file: ch/a_more.md
      - url: https://example.org
  - caption: Two
    chapters:
      - file: ch/b
      - file: intro
""")
    assert toc_pages(toc) == ["intro.html", "ch/a.html", "ch/a_more.html", "ch/b.html"]
    toc.write_text("format: jb-book\nroot: intro\nchapters:\n  - glob: ch/*\n")
    with pytest.raises(ValueError, match="glob"):
        toc_pages(toc)
    toc.write_text("chapters: []\n")
    with pytest.raises(ValueError, match="no `root`"):
        toc_pages(toc)


def test_the_books_toc_starts_at_the_landing_page_and_ends_with_the_references():
    pages = toc_pages(REPO / "_toc.yml")
    assert pages[0] == "book/intro.html" and pages[-1] == "book/references.html"
    assert "book/chapters/01_teacher.html" in pages and len(pages) == len(set(pages))


def _link(writer: PdfWriter, page: int, *, dest: str | None = None, uri: str | None = None) -> None:
    annot = DictionaryObject({NameObject("/Type"): NameObject("/Annot"), NameObject("/Subtype"): NameObject("/Link"),
                              NameObject("/Rect"): ArrayObject([FloatObject(v) for v in (10, 10, 60, 30)])})
    if dest is not None:
        annot[NameObject("/Dest")] = TextStringObject(dest)
    else:
        annot[NameObject("/A")] = DictionaryObject({NameObject("/S"): NameObject("/URI"),
                                                    NameObject("/URI"): TextStringObject(uri)})
    writer.add_annotation(page, annot)


def _tiny_pdf(path: Path, pages: int, anchor_page: int, links: list[dict]) -> Path:
    """A PDF of blank pages with the named destination ``/sec`` (as Chromium names ``#sec``) on
    ``anchor_page`` and the given links on its first page."""
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(200, 200)
    writer.add_named_destination("/sec", anchor_page)
    for link in links:
        _link(writer, 0, **link)
    writer.write(path)
    return path


def _targets(reader: PdfReader, page: int) -> list[int | str]:
    """Where each link of ``page`` leads: a page index, or the URI it keeps."""
    refs = {p.indirect_reference.idnum: i for i, p in enumerate(reader.pages)}
    out = []
    for annot in reader.pages[page].get("/Annots") or []:
        annot = annot.get_object()
        out.append(refs[annot["/Dest"][0].idnum] if "/Dest" in annot else str(annot["/A"]["/URI"]))
    return out


def test_merge_keeps_order_bookmarks_and_resolves_links_within_the_book(tmp_path):
    a = _tiny_pdf(tmp_path / "a.pdf", 2, 1, [
        {"dest": "/sec"},                                # the same page's section: its page 2
        {"uri": f"{BASE}/ch/b.html#sec"},                # the other page's section
        {"uri": f"{BASE}/ch/b.html"},                    # the other page's start
        {"uri": f"{BASE}/_downloads/x/a.ipynb"},         # a file outside the book: dropped
        {"uri": "https://doi.org/10.3233/FAIA251144"},   # the web: kept
    ])
    b = _tiny_pdf(tmp_path / "b.pdf", 3, 2, [{"dest": "/sec"}])  # the same name, its own section
    out = tmp_path / "out" / "book.pdf"
    n = merge_pdfs([PrintedPage("a.html", a, "A"), PrintedPage("ch/b.html", b, "B")], out, base=BASE,
                   title="Tiny")
    reader = PdfReader(out)
    assert n == len(reader.pages) == 5
    assert [(o.title, reader.get_destination_page_number(o)) for o in reader.outline] == [("A", 0), ("B", 2)]
    assert reader.metadata.title == "Tiny"
    assert _targets(reader, 0) == [1, 4, 2, "https://doi.org/10.3233/FAIA251144"]
    assert _targets(reader, 2) == [4]


def test_pdf_without_a_built_site_fails_clearly(tmp_path, capsys):
    assert main(["pdf", "--html", str(tmp_path), "--out", str(tmp_path / "b.pdf")]) == 2
    assert "no built site there; run `make book` first" in capsys.readouterr().err
    assert not (tmp_path / "b.pdf").exists()


def test_pdf_without_chromium_fails_clearly(tmp_path, capsys, monkeypatch):
    (tmp_path / "index.html").write_text("<html></html>")
    monkeypatch.setattr(site_check, "chromium", lambda: None)
    assert main(["pdf", "--html", str(tmp_path), "--toc", str(REPO / "_toc.yml"),
                 "--out", str(tmp_path / "b.pdf")]) == 2
    assert "no chromium on PATH" in capsys.readouterr().err


@pytest.mark.skipif(site_check.chromium() is None, reason="chromium not installed (Debian package 'chromium')")
def test_pdf_of_a_tiny_site_in_headless_chromium(tmp_path):
    """Two pages printed in order, one bookmark each; the first page's link to a section of the
    second jumps to that section's PDF page (past a page-tall spacer)."""
    site = tmp_path / "html"
    (site / "ch").mkdir(parents=True)
    (site / "index.html").write_text('<meta http-equiv="Refresh" content="0; url=intro.html">')
    (site / "intro.html").write_text('<html><head><title>Intro - Tiny</title></head><body><article>'
                                     '<h1>Welcome</h1><p>See <a href="ch/b.html#later">the later section</a>.</p>'
                                     '</article></body></html>')
    (site / "ch" / "b.html").write_text('<html><body><article><h1>Chapter B</h1>'
                                        '<p><a href="#later">Later</a></p><div style="height:1400px"></div>'
                                        '<h2 id="later">Later</h2><p>The end.</p></article></body></html>')
    toc = tmp_path / "_toc.yml"
    toc.write_text("format: jb-book\nroot: intro\nchapters:\n  - file: ch/b\n")
    out = tmp_path / "pdf" / "tiny.pdf"
    n, seconds = build_pdf(site, out, toc=toc, title="Tiny")
    reader = PdfReader(out)
    assert n == len(reader.pages) >= 3 and seconds > 0
    assert [o.title for o in reader.outline] == ["Welcome", "Chapter B"]
    assert "Welcome" in reader.pages[0].extract_text() and "Chapter B" in reader.pages[1].extract_text()
    later = next(i for i, p in enumerate(reader.pages) if "The end." in p.extract_text())
    assert later >= 2 and _targets(reader, 0) == [later]
