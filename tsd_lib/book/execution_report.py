"""The book's execution report: how and when each chapter was executed.

``tsd reproduce`` writes ``execution_report.md`` beside the executed chapters
(``book/chapters/``, git-ignored) from the ``<chapter>.execution.json`` that
:func:`execution_entry` writes whenever papermill executes a chapter. QuantEcon's execution
statistics page is the model. Every value comes from the execution, never typed in.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nbformat

from tsd_lib import __version__, utils
from tsd_lib.experiment import RunStore
from tsd_lib.provenance import results_digest

REPORT_PAGE = "execution_report.md"


def machine() -> str:
    """The CPU model and core count, and the GPU when PyTorch sees one."""
    m = utils.machine()
    return f"{m['cpu']}, {m['cores']} cores" + (f"; GPU {m['gpu']}" if m["gpu"] else "")


def store_key_count(store: RunStore) -> int:
    """How many complete runs the store holds."""
    return sum(1 for _ in (store.root / "runs").glob("*/record.json"))


def execution_path(notebook: Path) -> Path:
    return notebook.with_suffix(".execution.json")


def execution_entry(notebook: Path, profile: str, seconds: float, store: RunStore) -> dict[str, Any]:
    """Record one chapter's execution beside its executed notebook and return the record."""
    entry = {
        "profile": profile, "seconds": round(seconds, 1),
        "executed_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "tsd_lib": __version__, "code": results_digest(), "store_keys": store_key_count(store),
        "machine": machine(),
    }
    execution_path(notebook).write_text(json.dumps(entry, indent=1))
    return entry


def chapter_title(notebook: Path) -> str:
    """The first Markdown heading of a notebook (its file name when it has none)."""
    for cell in nbformat.read(notebook, as_version=4).cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return notebook.stem


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def write_execution_report(chapters: Sequence[str], out_dir: Path, *, executed: Sequence[str] = (),
                           reused: Sequence[str] = (), profile: str = "") -> Path:
    """The execution report: one row per executed chapter in ``out_dir`` (in ``chapters`` order).

    ``executed`` and ``reused`` name the chapters this build executed and took from the cache;
    the others in ``out_dir`` come from an earlier build.
    """
    rows = []
    for stem in chapters:
        nb, record = out_dir / f"{stem}.ipynb", execution_path(out_dir / f"{stem}.ipynb")
        if not nb.exists():
            continue
        e = json.loads(record.read_text()) if record.exists() else {}
        status = ("executed" if stem in executed else "reused from cache" if stem in reused
                  else "from an earlier build")
        rows.append(f"| [{chapter_title(nb)}]({stem}.ipynb) | `{e.get('profile', '?')}` | {status} | "
                    f"{_duration(e['seconds']) if 'seconds' in e else '?'} | {e.get('executed_at', '?')} | "
                    f"{e.get('tsd_lib', '?')} · `{e.get('code', '?')}` | {e.get('store_keys', '?')} | "
                    f"{e.get('machine', '?')} |")
    total = sum(json.loads(execution_path(out_dir / f"{s}.ipynb").read_text()).get("seconds", 0.0)
                for s in chapters if execution_path(out_dir / f"{s}.ipynb").exists())
    lines = [
        "# Execution report", "",
        f"How each chapter of this build was executed (profile `{profile}`). Papermill executes the "
        "chapters (`tsd reproduce`); a chapter whose notebook, parameters, library code and stored runs "
        "are unchanged since its last execution is **reused from cache**, and its row shows that "
        "execution. *Code* is the `tsd_lib` version and the digest of the code that produces results "
        "(`tsd_lib.provenance.results_digest()`, part of every run key); *runs* is the number of runs "
        "the run store held when the chapter was executed.", "",
        "| Chapter | Profile | Status | Wall time | Executed | Code | Runs | Machine |",
        "|---|---|---|---|---|---|---|---|",
        *rows, "",
        f"Total execution time of the chapters listed: {_duration(total)}. This page was written "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {machine()}.",
    ]
    path = out_dir / REPORT_PAGE
    path.write_text("\n".join(lines) + "\n")
    return path
