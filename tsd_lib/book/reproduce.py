"""Reproducing the book: run a profile's grid, then execute every chapter with papermill.

Papermill is the engine; Jupyter Book only renders (``execute_notebooks: off``). Executed
chapters go where ``_toc.yml`` points (``book/chapters/``, git-ignored). A failing chapter
stops the reproduction with its failing cell's error, so no site is built that looks fine.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tsd_lib import __version__
from tsd_lib.book.execution_report import execution_entry, write_execution_report
from tsd_lib.book.landing import write_finding
from tsd_lib.experiment import RunStore
from tsd_lib.paths import PROJECT_ROOT
from tsd_lib.profiles import Profile, load_profile
from tsd_lib.runs.archive import MANIFEST, archive_dir, files_digest
from tsd_lib.runs.grid import run_grid
from tsd_lib.utils import progress

NOTEBOOKS = "notebooks"
CHAPTER_DIR = "book/chapters"


class ChapterFailed(RuntimeError):
    """A chapter raised while papermill executed it."""


@dataclass
class ChapterResult:
    chapter: str
    output: Path
    seconds: float
    cached: bool = False


def chapter_fingerprint(src: Path, parameters: dict[str, Any], profile: Profile, store: RunStore) -> str:
    """What an executed chapter depends on: its source, parameters, the library, the profile and
    the stored records the profile's runs and teachers point at (their content, not the store's
    location: a store swapped under the same path re-executes the chapter)."""
    h = hashlib.sha256(src.read_bytes())
    h.update(json.dumps(parameters, sort_keys=True, default=str).encode())
    for folder in archives_read(src, parameters):  # chapter 9 reads results/paper
        h.update(files_digest(folder).encode())
    h.update(json.dumps([c.key() for c in profile.configs()]).encode())
    h.update(f"{__version__} {_library_digest(src.resolve())} {records_digest(profile, store)}".encode())
    return h.hexdigest()


def archives_read(src: Path, parameters: dict[str, Any]) -> list[Path]:
    """The committed results archives (``results/<name>``) that a chapter's parameters name, its own
    defaults included: a chapter re-executes when the archive it shows changes."""
    import papermill

    defaults = [str(p["default"]).strip("\"'") for p in papermill.inspect_notebook(str(src)).values()]
    names = [*defaults, *(v for v in parameters.values() if isinstance(v, str))]
    return [archive_dir(n) for n in dict.fromkeys(names) if n and (archive_dir(n) / MANIFEST).is_file()]


def records_digest(profile: Profile, store: RunStore) -> str:
    """A digest of the stored records of the profile's runs and of their teachers (missing ones
    count as missing), and of the results archive the profile reads."""
    h = hashlib.sha256()
    teachers = {t.teacher_key(): t for c in profile.configs() for t in c.teacher_candidates()}
    teachers.update({t.teacher_key(): t for t in profile.teacher_configs()})
    paths = [store.run_dir(c) / "record.json" for c in profile.configs()]
    paths += [store.teacher_dir(t) / "record.json" for t in teachers.values()]
    for path in paths:
        h.update(str(path.relative_to(store.root)).encode())
        h.update(path.read_bytes() if path.exists() else b"missing")
    if profile.archive:  # the committed archive the profile's studies come from
        h.update(files_digest(archive_dir(profile.archive)).encode())
    return h.hexdigest()


_IMPORT = re.compile(r"^\s*(?:from\s+(tsd_lib[\w.]*)\s+import|import\s+(tsd_lib[\w.]*))", re.MULTILINE)


def chapter_imports(src: Path) -> tuple[str, ...]:
    """The ``tsd_lib`` modules a chapter notebook imports in its code cells, sorted."""
    cells = json.loads(src.read_text())["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    return tuple(sorted({a or b for a, b in _IMPORT.findall(code)}))


_LOADED = """
import importlib, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
print("\\n".join(sorted({m.__file__ for n, m in list(sys.modules.items())
                          if n.split(".")[0] == "tsd_lib" and getattr(m, "__file__", None)})))
"""


def chapter_library_files(src: Path) -> list[Path]:
    """The library's source files a chapter runs: every module its imports (:func:`chapter_imports`)
    load, found in a fresh interpreter (this one may have loaded more, e.g. the CLI)."""
    done = subprocess.run([sys.executable, "-c", _LOADED, *chapter_imports(src)], capture_output=True, text=True,
                          check=True, env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
    return [Path(line) for line in done.stdout.splitlines() if line.strip()]


@functools.cache
def _library_digest(src: Path) -> str:
    """A digest of :func:`chapter_library_files` (editing code a chapter does not import, e.g. the grader,
    the CLI or another chapter's views, re-executes it not), read once per process and chapter."""
    h = hashlib.sha256()
    for path in chapter_library_files(src):
        h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()


@contextlib.contextmanager
def environment(**values: str | None) -> Iterator[None]:
    """Set (a string) or unset (None) environment variables for the block, then restore them."""
    saved = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def chapter_stems(root: Path = PROJECT_ROOT) -> list[str]:
    """The chapter notebooks in ``notebooks/``, in order."""
    return sorted(p.stem for p in (root / NOTEBOOKS).glob("[0-9][0-9]_*.ipynb"))


def select_chapters(spec: str | None, root: Path = PROJECT_ROOT) -> list[str]:
    """``"2,5"`` -> the stems of chapters 2 and 5; ``None`` -> every chapter. An empty spec or one
    that is not comma-separated chapter numbers is a ``ValueError`` naming ``--chapters``."""
    stems = chapter_stems(root)
    if spec is None:
        return stems
    parts = [s.strip() for s in str(spec).split(",") if s.strip()]
    if not parts:
        raise ValueError(f"--chapters {spec!r} names no chapter: give comma-separated chapter numbers, e.g. 2,5 "
                         "(leave --chapters out for every chapter)")
    bad = [s for s in parts if not s.isdigit()]
    if bad:
        raise ValueError(f"--chapters {spec!r}: {', '.join(repr(s) for s in bad)} is not a chapter number; give "
                         f"comma-separated numbers, e.g. 2,5 (chapters: {', '.join(stems)})")
    wanted = {int(s) for s in parts}
    chosen = [s for s in stems if int(s[:2]) in wanted]
    unknown = wanted - {int(s[:2]) for s in chosen}
    if unknown:
        raise ValueError(f"no chapter numbered {sorted(unknown)}; chapters: {', '.join(stems)}")
    return chosen


def chapter_parameters(profile: Profile, stem: str, data_dir: str | None = None) -> dict[str, Any]:
    """The papermill parameters of one chapter under a profile."""
    params: dict[str, Any] = {"profile": profile.name, **profile.chapter_parameters(stem)}
    if data_dir or profile.data_dir:
        params["data_dir"] = data_dir or profile.data_dir
    return params


def execute_chapter(src: Path, out: Path, parameters: dict[str, Any], cwd: Path) -> None:
    """Run one notebook with papermill; raise :class:`ChapterFailed` with the failing cell's error."""
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError

    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        papermill.execute_notebook(str(src), str(out), parameters=parameters, kernel_name="python3",
                                   progress_bar=False, cwd=str(cwd))
    except PapermillExecutionError as err:
        raise ChapterFailed(
            f"chapter {src.stem} failed in cell {err.cell_index} ({err.ename}: {err.evalue})\n"
            f"cell source:\n{err.source}\nthe partly executed notebook is in {out}"
        ) from None
    # The page shows the parameters actually used (papermill's injected cell), not the defaults.
    nb = nbformat.read(out, as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if "parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
    nbformat.write(nb, out)


def reproduce(
    profile: str | Profile = "quick", *, chapters: str | None = None, data_dir: str | None = None,
    store: str | os.PathLike | None = None, n_jobs: int = 1, root: Path = PROJECT_ROOT,
    out_dir: Path | None = None, run_grid_first: bool = True, force: bool = False,
) -> list[ChapterResult]:
    """Run the profile's grid, then execute the chosen chapters into ``out_dir``.

    A chapter whose source, parameters, library code and run store are unchanged since its last
    execution is not executed again (``force=True`` re-executes every chapter). Then the generated
    pages are written into ``out_dir``: the execution report and the landing page's finding.
    """
    profile = profile if isinstance(profile, Profile) else load_profile(profile, data_dir=data_dir)
    store = RunStore(store)
    os.environ["TSD_RUNS"] = str(store.root.resolve())  # the chapters' kernels find the same store
    stems = select_chapters(chapters, root)  # a bad chapter number fails before any training
    if run_grid_first:
        summary = run_grid(profile.configs(), store, n_jobs=n_jobs, teachers=profile.teacher_configs())
        print(f"grid: {summary}")
        if summary.failed or summary.errors:
            raise RuntimeError(f"{summary.failed} runs failed; see `tsd status --profile {profile.name}`")
    out_dir = Path(out_dir or root / CHAPTER_DIR)
    results = []
    # No progress-bar noise on the site; chapters run small models, where extra intra-op threads only
    # contend for the cores.
    with environment(TSD_PROGRESS="0", OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1")):
        results = _execute_chapters(stems, profile, store, root, out_dir, data_dir, force, n_jobs)
    write_execution_report(chapter_stems(root), out_dir, executed=[r.chapter for r in results if not r.cached],
                           reused=[r.chapter for r in results if r.cached], profile=profile.name)
    write_finding(profile, store, out_dir, site_dir=f"/{CHAPTER_DIR}")  # out_dir is the book's CHAPTER_DIR
    return results


def _execute_chapters(stems: list[str], profile: Profile, store: RunStore, root: Path, out_dir: Path,
                      data_dir: str | None, force: bool, n_jobs: int) -> list[ChapterResult]:
    """Execute the chapters whose fingerprint changed, ``n_jobs`` at a time (each in its own kernel);
    the first failing chapter, in book order, is raised once the others have finished."""
    from concurrent.futures import ThreadPoolExecutor

    def one(stem: str) -> ChapterResult:
        start = time.perf_counter()
        src, out = root / NOTEBOOKS / f"{stem}.ipynb", out_dir / f"{stem}.ipynb"
        params = chapter_parameters(profile, stem, data_dir)
        stamp = out.with_suffix(".fingerprint")
        fingerprint = chapter_fingerprint(src, params, profile, store)
        if not force and out.exists() and stamp.exists() and stamp.read_text() == fingerprint:
            return ChapterResult(stem, out, 0.0, cached=True)
        stamp.unlink(missing_ok=True)
        execute_chapter(src, out, params, cwd=out_dir)
        stamp.write_text(fingerprint)
        seconds = time.perf_counter() - start
        execution_entry(out, profile.name, seconds, store)
        return ChapterResult(stem, out, seconds)

    bar = progress(total=len(stems), desc="chapters", unit="chapter")
    with ThreadPoolExecutor(max_workers=max(1, n_jobs)) as pool:
        futures = {stem: pool.submit(one, stem) for stem in stems}
        for future in futures.values():
            future.add_done_callback(lambda _: bar.update(1))
        outcomes = [(stem, f.exception(), f) for stem, f in futures.items()]
    bar.close()
    for _, error, _ in outcomes:
        if error is not None:
            raise error
    return [f.result() for _, _, f in outcomes]
