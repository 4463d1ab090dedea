"""The grader's worker process: executes one notebook with papermill and writes a status JSON.

Started by :func:`tsd_lib.grading.grader.grade_notebook` as ``python -m tsd_lib.grading run``
inside the limits, with its job (a private copy of the notebook, where to write the executed
notebook and the status, the parameters, the working folder) as JSON on its standard input: the
notebook's kernel is its child and could read the worker's command line, which therefore names
nothing (no submission's path). The status says whether the notebook ran to the end and which
cell raised; it carries no points (the grader's checks do).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tsd_lib.grading.feedback import _short


def _classify(ename: str, evalue: str) -> str:
    text = f"{ename} {evalue}".lower()
    memory = ("memoryerror", "outofmemory", "out of memory", "cannot allocate memory", "can't allocate memory",
              "not enough memory", "std::bad_alloc")
    return "memory" if any(m in text for m in memory) else "crashed"


def _cell_number(nb_path: str, source: str) -> int | None:
    """1-based index of the cell with ``source`` in the submitted notebook (None if not found)."""
    try:
        import nbformat

        cells = nbformat.read(nb_path, as_version=4).cells
    except Exception:
        return None
    for i, cell in enumerate(cells, start=1):
        if cell.get("source", "").strip() == (source or "").strip():
            return i
    return None


def _job(argv: Sequence[str]) -> argparse.Namespace:
    """The job: JSON on stdin (what the grader sends), or the command line (by hand)."""
    if not argv:
        job = json.loads(sys.stdin.read() or "{}")
        return argparse.Namespace(notebook=str(job["notebook"]), output=str(job["output"]),
                                  parameters=json.dumps(job.get("parameters") or {}), cwd=job.get("cwd"),
                                  status=str(job["status"]), kernel=str(job.get("kernel", "python3")))
    parser = argparse.ArgumentParser(prog="python -m tsd_lib.grading run")
    parser.add_argument("notebook")
    parser.add_argument("output")
    parser.add_argument("--parameters", default="{}")
    parser.add_argument("--cwd", default=None)
    parser.add_argument("--status", required=True)
    parser.add_argument("--kernel", default="python3")
    return parser.parse_args(argv)


def _worker(argv: Sequence[str]) -> int:
    """Execute one notebook with papermill and write a status JSON (runs inside the limits)."""
    args = _job(argv)
    status: dict[str, Any] = {"status": "ok"}
    try:
        import papermill as pm
        from papermill.exceptions import PapermillExecutionError

        try:
            pm.execute_notebook(args.notebook, args.output, parameters=json.loads(args.parameters),
                                kernel_name=args.kernel, progress_bar=False, cwd=args.cwd, log_output=False)
        except PapermillExecutionError as err:
            cell = _cell_number(args.notebook, err.source)
            where = f"cell {cell}" if cell is not None else f"the cell executed as In [{err.exec_count}]"
            first = (err.source or "").strip().splitlines()[:1]
            message = f"{where} raised {err.ename}" + (f": {_short(err.evalue, 300)}" if err.evalue else "")
            if first:
                message += f" (the cell starts with {first[0][:80]!r})"
            status = {"status": _classify(err.ename, err.evalue), "cell": cell, "ename": err.ename, "error": message}
    except MemoryError:
        status = {"status": "memory", "error": "the notebook ran out of memory (MemoryError)"}
    except Exception as err:
        text = f"{type(err).__name__}: {_short(str(err), 300)}"
        if "DeadKernel" in type(err).__name__ or "died" in str(err).lower():
            text = f"the kernel died ({text}); it may have run out of memory or crashed in native code"
        status = {"status": _classify(type(err).__name__, str(err)), "error": text}
    Path(args.status).write_text(json.dumps(status))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["run"]:
        return _worker(argv[1:])
    print("usage: python -m tsd_lib.grading run [NOTEBOOK OUTPUT --status FILE [--parameters JSON] [--cwd DIR]]\n"
          "(without arguments: the job as JSON on stdin)\n"
          "(the grader's worker; instructors use `tsd grade`)", file=sys.stderr)
    return 2
