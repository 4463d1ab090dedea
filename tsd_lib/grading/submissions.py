"""A submission: the notebook file read and validated, its assignment, its parameters, its name.

:func:`read_submission` says why a file is not a notebook (size limit, UTF-8, JSON, nbformat)
instead of raising; :func:`find_submissions` lists the notebooks under a folder (checkpoints,
executed copies and the output folder left out); :func:`report_name` is the file-safe name of a
submission's reports.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tsd_lib.grading.feedback import _short


def read_submission(path: Path, max_mb: float | None) -> tuple[Any, str | None]:
    """``(notebook, None)`` or ``(None, why it is not a valid notebook)``."""
    import nbformat

    try:
        size = path.stat().st_size
        if max_mb is not None and size > max_mb * 1024 * 1024:
            return None, (f"the file is {size / 1024**2:.1f} MB, more than the limit of {max_mb:g} MB "
                          "(clear the outputs, or raise --max-notebook-mb)")
        raw = path.read_bytes()
    except OSError as err:
        return None, f"cannot read the file ({err.strerror or err})"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, "not a notebook: the file is not UTF-8 text (a binary file?)"
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        return None, f"not a notebook: invalid JSON (line {err.lineno}, column {err.colno}: {err.msg})"
    if not isinstance(obj, dict) or "cells" not in obj or "nbformat" not in obj:
        return None, "not a notebook: valid JSON but without the 'cells' and 'nbformat' fields of a Jupyter notebook"
    try:
        nb = nbformat.reads(text, as_version=4)
        nbformat.validate(nb)
    except Exception as err:  # nbformat raises several types for malformed documents
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return None, f"not a valid Jupyter notebook (nbformat): {_short(first, 200)}"
    return nb, None


def infer_assignment(nb: Any) -> int | None:
    """The assignment number in the notebook's ``metadata.tsd_assignment``, if it holds one."""
    value = nb.metadata.get("tsd_assignment")
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def report_name(path: Path, root: Path | None) -> str:
    """The file-safe stem of a submission's reports: its path under ``root`` (else its name)."""
    rel = path.relative_to(root) if root is not None and path.is_relative_to(root) else Path(path.name)
    stem = str(rel.with_suffix("")) if rel.suffix == ".ipynb" else str(rel)
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in stem.replace(os.sep, "__"))


def notebook_parameters(nb: Any, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The parameters a notebook runs with: literal assignments of its ``parameters`` and
    ``injected-parameters`` cells (papermill), then ``overrides`` (``tsd grade -p``)."""
    out: dict[str, Any] = {}
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.cell_type != "code" or not {"parameters", "injected-parameters"} & set(tags):
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                with contextlib.suppress(ValueError, TypeError, SyntaxError):
                    out[node.targets[0].id] = ast.literal_eval(node.value)
    out.update(overrides or {})
    return out


def find_submissions(path: Path, out_dir: Path | None) -> list[Path]:
    """The notebooks under ``path``, sorted; checkpoints, executed copies and ``out_dir`` left out."""
    found = []
    for p in sorted(path.rglob("*.ipynb")):
        if ".ipynb_checkpoints" in p.parts or p.name.endswith(".executed.ipynb"):
            continue
        if out_dir is not None and p.resolve().is_relative_to(out_dir.resolve()):
            continue
        found.append(p)
    return found

