"""Which code produced a result: a digest of the modules that change numbers.

Every stored artifact (run records, teachers, banks, cached arrays) is keyed by
:func:`results_digest`, so a store made by other code is never silently reused. The digest
reads the *syntax tree* of each result-producing module with docstrings removed: a changed
docstring, comment or blank line keeps the store; a changed statement retrains. Chapters,
reports, the CLI and the grid's scheduling code are not part of it.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from tsd_lib.paths import PACKAGE

#: Modules and packages (relative to ``tsd_lib/``) whose code changes results.
RESULTS_MODULES: tuple[str, ...] = (
    "data", "models.py", "settings.py", "losses", "saliency", "metrics.py", "train.py", "runtime.py",
    "experiment/config.py", "experiment/datasets.py", "experiment/teachers.py", "experiment/runner.py",
)


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def source_digest(paths: Iterable[str | Path]) -> str:
    """A 16-hex-digit digest of the code in ``paths`` (Python files), ignoring docstrings,
    comments and formatting; files are taken in sorted order of their names."""
    h = hashlib.sha256()
    for path in sorted(Path(p) for p in paths):
        tree = _strip_docstrings(ast.parse(path.read_text(), filename=str(path)))
        h.update(path.name.encode())
        h.update(ast.dump(tree, include_attributes=False).encode())
    return h.hexdigest()[:16]


def _result_files() -> list[Path]:
    files: list[Path] = []
    for name in RESULTS_MODULES:
        target = PACKAGE / name
        files.extend(sorted(target.rglob("*.py")) if target.is_dir() else [target])
    return files


@lru_cache(maxsize=1)
def results_digest() -> str:
    """The digest of :data:`RESULTS_MODULES` (computed once per process)."""
    return source_digest(_result_files())
