"""The book: notebook hygiene, papermill execution under the smoke profile, the static site,
and a real-browser check of the built pages."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import nbformat
import pytest

from tsd_lib.book import (
    CHAPTER_DIR,
    chapter_fingerprint,
    chapter_stems,
    launch_links,
    reproduce,
    select_chapters,
)
from tsd_lib.experiment import RunStore
from tsd_lib.profiles import load_profile

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb")) + sorted((REPO / "assignments").rglob("*.ipynb"))
BOOK_FILES = ["_config.yml", "_toc.yml", "book", "assignments"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(REPO)))
def test_notebook_has_one_parameters_cell_and_no_outputs(path):
    nb = nbformat.read(path, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: {len(tagged)} cells tagged 'parameters'"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{path.name} has stored outputs"


def test_toc_lists_every_chapter():
    toc = (REPO / "_toc.yml").read_text()
    for stem in chapter_stems(REPO):
        assert f"{CHAPTER_DIR}/{stem}" in toc, stem


def test_chapter_selection():
    stems = chapter_stems(REPO)
    assert select_chapters("2,5", REPO) == [s for s in stems if s[:2] in {"02", "05"}]
    with pytest.raises(ValueError, match="no chapter numbered"):
        select_chapters("99", REPO)


def test_launch_links_open_the_source_notebook():
    links = launch_links("05_tsd", REPO)
    assert links["Colab"].endswith("/blob/main/notebooks/05_tsd.ipynb")
    assert links["Binder"].endswith("?labpath=notebooks/05_tsd.ipynb")
    assert (REPO / "notebooks" / "05_tsd.ipynb").exists()


def test_chapter_fingerprint_tracks_its_inputs(tmp_path):
    src = REPO / "notebooks" / f"{chapter_stems(REPO)[0]}.ipynb"
    smoke, store = load_profile("smoke"), RunStore(tmp_path)
    base = chapter_fingerprint(src, {"dataset": "A"}, smoke, store)
    assert base == chapter_fingerprint(src, {"dataset": "A"}, smoke, store)
    assert base != chapter_fingerprint(src, {"dataset": "B"}, smoke, store)
    assert base != chapter_fingerprint(src, {"dataset": "A"}, load_profile("quick"), store)
    # the records it reads, not the store's location: new or changed content under the same path
    record = store.run_dir(smoke.configs()[0]) / "record.json"
    record.parent.mkdir(parents=True)
    record.write_text('{"accuracy": 0.5}')
    with_record = chapter_fingerprint(src, {"dataset": "A"}, smoke, store)
    assert with_record != base
    record.write_text('{"accuracy": 0.9}')
    assert chapter_fingerprint(src, {"dataset": "A"}, smoke, store) != with_record
    assert chapter_fingerprint(src, {"dataset": "A"}, smoke, RunStore(tmp_path / "elsewhere")) == base


def test_unknown_chapter_fails_before_any_training(tmp_path, monkeypatch):
    import tsd_lib.book as book

    monkeypatch.setattr(book, "run_grid", lambda *a, **k: pytest.fail("the grid ran"))
    with pytest.raises(ValueError, match="no chapter numbered"):
        reproduce("smoke", chapters="99", store=tmp_path)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Execute every chapter under the smoke profile and build the site with ``-W``."""
    root = tmp_path_factory.mktemp("book")
    for name in BOOK_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, root / name, ignore=shutil.ignore_patterns("chapters"))
        else:
            shutil.copy(src, root / name)
    old = os.environ.get("TSD_RUNS")
    try:
        results = reproduce("smoke", store=root / "runs", out_dir=root / CHAPTER_DIR, root=REPO, n_jobs=2)
    finally:
        if old is None:
            os.environ.pop("TSD_RUNS", None)
        else:
            os.environ["TSD_RUNS"] = old
    assert [r.chapter for r in results] == chapter_stems(REPO)
    build = subprocess.run([str(Path(sys.executable).parent / "jupyter-book"), "build", str(root), "-W",
                            "--keep-going"], capture_output=True, text=True)
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
    return root / "_build" / "html"


def test_executed_chapters_have_figures_and_no_errors(site):
    for stem in chapter_stems(REPO):
        nb = nbformat.read(site.parents[1] / CHAPTER_DIR / f"{stem}.ipynb", as_version=4)
        outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
        assert not [o for o in outputs if o.output_type == "error"], stem
        assert any("image/png" in o.get("data", {}) for o in outputs) or stem == "10_reproducing", stem
        assert not any("it/s]" in o.get("text", "") for o in outputs if o.output_type == "stream"), \
            f"{stem}: progress-bar noise"


@pytest.fixture(scope="module")
def server(site):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{port}"
    httpd.shutdown()


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (Debian package 'chromium')")
def test_site_in_a_real_browser(site, server, tmp_path):
    from playwright.sync_api import sync_playwright

    pages = ["index.html", *[f"{CHAPTER_DIR}/{s}.html" for s in chapter_stems(REPO)]]
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        for rel in pages:
            response = page.goto(f"{server}/{rel}", wait_until="load")
            assert response is not None and response.ok, rel
            if rel == "index.html":  # Jupyter Book's index redirects to the root page
                page.wait_for_url("**/book/intro.html")
            assert page.locator("article h1").count() >= 1 and page.locator("article h1").first.inner_text(), rel
            if rel != "index.html" and not rel.endswith("10_reproducing.html"):
                loaded = page.evaluate("""() => [...document.querySelectorAll('article img')]
                    .filter(img => img.complete && img.naturalWidth > 0).length""")
                assert loaded >= 1, f"{rel}: no figure loaded"
            assert page.locator("article .output.error, article .output.traceback").count() == 0, rel
            assert "Traceback (most recent call last)" not in page.locator("article").inner_text(), rel
        # navigation: the "next" link of the first page leads to the first chapter
        page.goto(f"{server}/index.html")
        page.wait_for_url("**/book/intro.html")
        first = page.locator("article h1").first.inner_text()
        page.locator("a.right-next").first.click()
        page.wait_for_load_state("load")
        assert page.locator("article h1").first.inner_text() != first
        assert chapter_stems(REPO)[0] in page.url
        page.screenshot(path=str(tmp_path / "site.png"), full_page=False)
        browser.close()
    assert (tmp_path / "site.png").stat().st_size > 10_000
