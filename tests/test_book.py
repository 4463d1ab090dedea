"""The book: notebook hygiene, papermill execution under the smoke profile, the static site,
and a real-browser check of the built pages."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tsd_lib.book.chapter_facts import provenance_facts
from tsd_lib.book.execution_report import (
    REPORT_PAGE,
    chapter_title,
    execution_entry,
    execution_path,
    machine,
    write_execution_report,
)
from tsd_lib.book.landing import FINDING_FIGURE, FINDING_PAGE, finding_summary, write_finding
from tsd_lib.book.reproduce import (
    CHAPTER_DIR,
    chapter_fingerprint,
    chapter_stems,
    reproduce,
    select_chapters,
)
from tsd_lib.book.site_check import check_site, chromium, inspect_page, offline_browser, screenshots
from tsd_lib.experiment import RunStore
from tsd_lib.profiles import load_profile
from tsd_lib.provenance import results_digest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = chromium()
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb")) + sorted((REPO / "assignments").rglob("*.ipynb"))
BOOK_FILES = ["_config.yml", "_toc.yml", "_static", "book", "assignments"]


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


def _markdown(path: Path) -> str:
    return "\n\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown")


def _built_config() -> dict:
    """The Sphinx configuration Jupyter Book builds the site with (its defaults, then _config.yml)."""
    from jupyter_book.config import get_final_config

    config, _ = get_final_config(user_yaml=REPO / "_config.yml", cli_config={"latex_individualpages": False},
                                 sourcedir=REPO, raise_on_invalid=True)
    return config


def test_book_has_no_launch_buttons_or_unchecked_repository_links():
    """Binder and Colab cannot run a chapter (it needs tsd_lib installed, a run store and results/) and no
    repository URL has been checked: the configuration Jupyter Book builds with has no launch button, no
    repository button and no repository URL (left out, Jupyter Book's default is its own repository)."""
    theme = _built_config()["html_theme_options"]
    launch = {k: v for k, v in theme.get("launch_buttons", {}).items() if k != "notebook_interface"}
    assert launch and not any(launch.values()), launch
    assert not theme.get("repository_url"), theme.get("repository_url")
    assert not [b for b in ("use_repository_button", "use_edit_page_button", "use_issues_button") if theme.get(b)]
    assert not re.search(r"mybinder|colab\.research|github\.com|gitlab", (REPO / "_config.yml").read_text())


def _code(path: Path) -> str:
    return "\n\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")


def test_chapter_provenance_is_written_by_hand_with_glued_facts():
    """Every chapter states its provenance in a hand-written markdown line: each fact of
    :func:`provenance_facts` (the seeds where the chapter has them) is glued by the chapter's code and quoted
    there, beside the chapter's source notebook; no launch link."""
    facts = provenance_facts("quick", seeds=[0, 1])
    assert facts["profile"] == "quick" and facts["seeds"] == "0, 1" and facts["device"].startswith(("cpu", "cuda"))
    assert all(type(v) is str for v in facts.values()) and "seeds" not in provenance_facts("quick")
    for stem in chapter_stems(REPO):
        path, prefix = REPO / "notebooks" / f"{stem}.ipynb", f"ch{int(stem[:2])}_prov_"
        line = next(text for text in _markdown(path).split("\n\n") if text.startswith("**Provenance.**"))
        quoted = set(re.findall(r"\{glue:text\}`" + prefix + r"(\w+)`", line))
        assert quoted == set(facts) - ({"seeds"} if stem == "10_reproducing" else set()), stem
        assert f"`notebooks/{stem}.ipynb`" in line and not re.search(r"https?://|mybinder|colab", line), stem
        assert "provenance_facts(profile" in _code(path) and f'glue(f"{prefix}{{name}}", value' in _code(path), stem


@pytest.mark.parametrize("stem", chapter_stems(REPO))
def test_chapter_text_is_written_by_hand(stem):
    """A chapter's prose is its markdown, numbers glued into it: no code cell shows text built in code or by
    the library (``display(Markdown(...))``, a ``Markdown`` object in a display), and the library the
    chapters call returns no ``Markdown``."""
    code = _code(REPO / "notebooks" / f"{stem}.ipynb")
    assert "Markdown" not in code, [line for line in code.splitlines() if "Markdown" in line]
    for module in (REPO / "tsd_lib" / "analysis").glob("*.py"):
        assert "IPython.display import Markdown" not in module.read_text(), module.name


def test_reproducing_page_says_how_to_run_a_chapter_locally():
    """The local route the page gives (install, one chapter with tsd reproduce or papermill) names
    files, a profile, a chapter and parameters that exist."""
    text = _markdown(REPO / "notebooks" / "10_reproducing.ipynb")
    for step in ("python3 -m venv .venv", "pip install -r requirements-lock.txt", "pip install -e .",
                 "tsd reproduce --profile quick --chapters 2", "results/"):
        assert step in text, step
    assert (REPO / "requirements-lock.txt").exists() and select_chapters("2", REPO) == ["02_logit_distillation"]
    load_profile("quick")
    call = re.search(r"papermill (notebooks/\S+\.ipynb) \S+\.ipynb((?: -p \w+ \S+)+)", text)
    assert call, "no papermill command for one chapter"
    nb = nbformat.read(REPO / call.group(1), as_version=4)
    parameters = next(c.source for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    for name in re.findall(r"-p (\w+) ", call.group(2) + " "):
        assert re.search(rf"^{name} = ", parameters, re.M), name
    assert not re.search(r"mybinder\.org|colab\.research", text)  # the page may say why there are none


def test_every_reference_is_cited_and_every_citation_listed():
    """book/references.bib lists what the book cites, nothing more; accents in UTF-8 (pybtex writes LaTeX
    accent macros into the labels: [Demvsar06]); citations show the bibliography's labels."""
    bib = (REPO / "book" / "references.bib").read_text(encoding="utf-8")
    keys = set(re.findall(r"^@\w+\{([^,\s]+),", bib, re.M))
    pages = [*NOTEBOOKS, *(REPO / "book").glob("*.md"), *(REPO / "assignments").rglob("page.md"),
             *(REPO / "tsd_lib").rglob("*.py")]  # generated markdown may cite too
    cited = {key.strip() for page in pages for keys_ in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`",
                                                                  page.read_text(encoding="utf-8"))
             for key in keys_.split(",")}
    assert cited - keys == set() and keys - cited == set(), (cited - keys, keys - cited)
    assert not re.search(r"\\[`'^\"~=.uvHckrbdt]\{?\w", bib), "use UTF-8 for accents"
    config = _built_config()
    assert config["bibtex_reference_style"] == "label" and config.get("bibtex_default_style", "alpha") == "alpha"


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


def test_chapter_fingerprint_tracks_the_archive_its_parameters_name(tmp_path, monkeypatch):
    """Chapter 9's ``paper_archive`` defaults to "paper": a change to results/paper re-executes it."""
    import tsd_lib.book.reproduce as book

    monkeypatch.setattr(book, "archive_dir", lambda name: tmp_path / "results" / name)
    src = REPO / "notebooks" / "09_results.ipynb"
    smoke, store = load_profile("smoke"), RunStore(tmp_path / "store")
    folder = tmp_path / "results" / "paper"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text("{}")
    (folder / "A.jsonl").write_text("one\n")
    assert book.archives_read(src, {"profile": "smoke"}) == [folder]
    before = chapter_fingerprint(src, {"profile": "smoke"}, smoke, store)
    (folder / "A.jsonl").write_text("two\n")
    assert chapter_fingerprint(src, {"profile": "smoke"}, smoke, store) != before
    assert book.archives_read(REPO / "notebooks" / f"{chapter_stems(REPO)[0]}.ipynb", {"profile": "smoke"}) == []


def test_unknown_chapter_fails_before_any_training(tmp_path, monkeypatch):
    import tsd_lib.book.reproduce as book

    monkeypatch.setattr(book, "run_grid", lambda *a, **k: pytest.fail("the grid ran"))
    with pytest.raises(ValueError, match="no chapter numbered"):
        reproduce("smoke", chapters="99", store=tmp_path)


def test_execution_report_lists_each_chapter_with_how_it_ran(tmp_path):
    store = RunStore(tmp_path / "store")
    (store.root / "runs" / "k1").mkdir(parents=True)
    (store.root / "runs" / "k1" / "record.json").write_text("{}")
    for stem, title in [("01_a", "1. Alpha"), ("02_b", "2. Beta")]:
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"# {title}\n\ntext")])
        nbformat.write(nb, tmp_path / f"{stem}.ipynb")
    entry = execution_entry(tmp_path / "01_a.ipynb", "smoke", 12.34, store)
    assert json.loads(execution_path(tmp_path / "01_a.ipynb").read_text()) == entry
    execution_entry(tmp_path / "02_b.ipynb", "smoke", 200.0, store)
    page = write_execution_report(["01_a", "02_b", "03_missing"], tmp_path, executed=["01_a"], reused=["02_b"],
                                  profile="smoke").read_text()
    assert page.startswith("# Execution report") and (tmp_path / REPORT_PAGE).exists()
    rows = [line for line in page.splitlines() if line.startswith("| [")]
    assert len(rows) == 2  # a chapter never executed has no row
    assert "[1. Alpha](01_a.ipynb)" in rows[0] and "| executed |" in rows[0] and "12.3 s" in rows[0]
    assert "reused from cache" in rows[1] and "3.3 min" in rows[1]
    for row in rows:
        assert "`smoke`" in row and results_digest() in row and machine() in row and "| 1 |" in row


def test_landing_finding_without_runs_says_so(tmp_path):
    page = write_finding(load_profile("smoke"), RunStore(tmp_path / "empty"), tmp_path).read_text()
    assert "smoke profile: not results" in page and "holds 0 of" in page
    assert not (tmp_path / FINDING_FIGURE).exists()
    kd_only = load_profile("smoke")
    kd_only.methods = ["kd"]
    assert "no CE and TSD students" in write_finding(kd_only, RunStore(tmp_path / "empty"), tmp_path).read_text()


def test_landing_finding_states_only_the_engines_verdicts():
    """The finding's verdicts are the claims engine's, each with its test, datasets and Holm p; its numbers
    are labelled descriptions, and no other verdict word appears."""
    from tsd_lib.analysis.verdicts import VERDICTS

    records = [{"dataset": f"D{d}", "method": m, "seed": s, "teacher": "t", "student": "s",
                "weights": {"tsd": 1.0} if m == "tsd" else None, "auc_pr": 0.6 + 0.02 * d + (0.1 if m == "tsd" else 0),
                "val_auc_pr": 0.7, "val_loss": 0.3, "accuracy": 0.8, "agreement": 0.9, "kl_teacher_student": 0.1,
                "saliency_spearman": 0.5, "stopped_early": True, "epochs_run": 9, "best_epoch": 4, "epochs": 10}
               for d in range(3) for m in ("ce", "tsd") for s in (0, 1)]
    profile = load_profile("smoke")
    profile.methods = ["ce", "tsd"]
    lines = finding_summary(profile, records)
    assert lines[0].startswith("**12 runs**: 3 datasets × 2 methods × 2 student seeds")
    claims = [line for line in lines if line.startswith("  - ")]
    assert len(claims) == 4 and all(any(f"**{v}**" in line for v in VERDICTS) for line in claims)
    assert "**too few datasets** (Wilcoxon signed-rank, Holm over 1; 3 datasets; Holm p " in claims[1]
    text = "\n".join(lines)
    assert "a description" in text and "not independent evidence" in text
    for word in ("agrees", "disagrees", "best average rank", "undecided"):
        assert word not in text.lower()


def test_site_check_without_a_built_site_fails_clearly(tmp_path, capsys):
    from tsd_lib.cli import main

    assert main(["site-check", "--html", str(tmp_path)]) == 2
    assert "no built site there" in capsys.readouterr().err


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


def test_landing_finding_comes_from_the_store(site):
    chapters = site.parents[1] / CHAPTER_DIR
    page = (chapters / FINDING_PAGE).read_text()
    smoke, store = load_profile("smoke"), RunStore(site.parents[1] / "runs")
    n = sum(store.has(c) for c in smoke.main_configs())
    assert f"**{n} runs**" in page and "smoke profile: not results" in page
    assert (chapters / FINDING_FIGURE).stat().st_size > 10_000
    for stem in chapter_stems(REPO):
        assert json.loads(execution_path(chapters / f"{stem}.ipynb").read_text())["profile"] == "smoke"


def test_executed_chapters_have_figures_and_no_errors(site):
    for stem in chapter_stems(REPO):
        nb = nbformat.read(site.parents[1] / CHAPTER_DIR / f"{stem}.ipynb", as_version=4)
        outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
        assert not [o for o in outputs if o.output_type == "error"], stem
        # a figure shown directly, or glued for a numbered {glue:figure} (myst-nb's papermill.record key)
        figures = [k for o in outputs for k in o.get("data", {}) if k.endswith("image/png")]
        assert figures or stem == "10_reproducing", stem
        assert not any("it/s]" in o.get("text", "") for o in outputs if o.output_type == "stream"), \
            f"{stem}: progress-bar noise"


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (Debian package 'chromium')")
def test_site_as_a_reader_sees_it_offline(site, tmp_path):
    """Served locally with every other request blocked, each page has its math typeset, its
    images loaded, no code cut off and no broken internal link; the landing page shows the
    finding and the execution report lists every chapter."""
    reports = {r.page: r for r in check_site(site)}
    assert {"book/intro.html", "book/chapters/execution_report.html"} <= set(reports)
    assert {f"{CHAPTER_DIR}/{s}.html" for s in chapter_stems(REPO)} <= set(reports)
    assert [p for r in reports.values() for p in r.problems] == []
    assert reports["book/intro.html"].math and reports["book/intro.html"].images >= 1
    assert "What this build found" in reports["book/intro.html"].text
    assert "smoke profile: not results" in reports["book/intro.html"].text
    for stem in chapter_stems(REPO):
        if stem != "10_reproducing":
            assert reports[f"{CHAPTER_DIR}/{stem}.html"].images >= 1, f"{stem}: no figure"
        title = chapter_title(site.parents[1] / CHAPTER_DIR / f"{stem}.ipynb")
        rows = reports["book/chapters/execution_report.html"].rows
        assert [title, "smoke", "executed"] in [[r[0].replace("\u2019", "'"), *r[1:3]] for r in rows], stem
    shots = screenshots(site, tmp_path)
    assert [p.name for p in shots] == ["landing.png", "chapter.png"]
    assert all(p.stat().st_size > 10_000 for p in shots)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (Debian package 'chromium')")
def test_site_opened_from_disk_typesets_math(site):
    """``_build/html/index.html`` opened as a file, with no network, shows typeset math."""
    with offline_browser("file://") as (page, blocked):
        report = inspect_page(page, (site / "index.html").as_uri(), "index.html", redirects=True)
    assert report.math and not report.problems and not blocked, report.problems + blocked


def test_only_code_a_chapter_runs_keys_its_fingerprint():
    """A chapter's fingerprint hashes the modules its own imports load: chapter 9 (the results page) loads
    the claims engine, chapter 2 (logits) does not; neither loads the grader or the CLI."""
    from tsd_lib.book.reproduce import chapter_imports, chapter_library_files

    assert "tsd_lib.analysis.verdicts" in chapter_imports(REPO / "notebooks/09_results.ipynb")
    names = {}
    for stem in ("02_logit_distillation", "09_results"):
        files = chapter_library_files(REPO / f"notebooks/{stem}.ipynb")
        names[stem] = {str(p.relative_to(REPO / "tsd_lib")) for p in files}
    assert {"analysis/verdicts.py", "runs/archive.py", "experiment/runner.py"} <= names["09_results"]
    assert {"analysis/logits.py", "losses/logit.py", "train.py"} <= names["02_logit_distillation"]
    assert "analysis/verdicts.py" not in names["02_logit_distillation"]
    assert not [n for files in names.values() for n in files if n.startswith(("grading/", "cli/"))]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (Debian package 'chromium')")
def test_a_figure_squeezed_below_legible_text_is_reported(tmp_path):
    """A figure wider than the column, shrunk so its smallest text would fall under 9 px, is named;
    one shown at its own size is not."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for name, width in (("wide.png", 20.0), ("fits.png", 6.0)):
        fig, ax = plt.subplots(figsize=(width, 2))
        ax.plot([0, 1], [0, 1])
        fig.savefig(tmp_path / name, dpi=100)
        plt.close(fig)
    (tmp_path / "page.html").write_text('<html><body><article style="width:780px">'
                                        '<img src="wide.png" style="max-width:100%"><img src="fits.png" '
                                        'style="max-width:100%"></article></body></html>')
    with offline_browser("file://") as (page, _):
        report = inspect_page(page, (tmp_path / "page.html").as_uri(), "page.html")
    assert len(report.problems) == 1 and "wide.png (2000 px shown at 780)" in report.problems[0], report.problems
