"""Build the course assignments from their source notebooks: student and solution notebooks, book pages.

Each assignment has one source, ``assignments/NN_name/source.ipynb``, with solution markers in
the style of nbgrader and otter, on lines of their own (code and Markdown cells alike)::

    def my_kd_loss(logits_s, logits_t, tau=4.0):
        \"\"\"...\"\"\"
        ### BEGIN SOLUTION
        ...the reference code...
        ### END SOLUTION

The student version replaces a solution block with ``raise NotImplementedError  # TODO`` (at the
marker's indentation), or with the lines of a ``### BEGIN PROMPT`` / ``### END PROMPT`` block
right before it; the solution version drops prompt blocks and keeps the solution. Running this
script writes, for every assignment:

* ``student.ipynb``  -- what students fill in (cells with markers tagged ``todo``);
* ``solution.ipynb`` -- the reference solution (the same cells tagged ``solution``);
* ``expected.json``  -- what the code cells tagged ``expected-output`` in the source print when
  the reference solution runs with its default parameters (recorded by executing it with
  papermill, only when the solution's code or the tagged cells changed);
* ``page.md``        -- a MyST page for the book. The **student edition** (the default, what is
  committed and published) shows the tasks as students get them: no solution code, no model
  answers, a download link to ``student.ipynb`` and, after every tagged cell, "What you should
  see" (from ``expected.json``). The **instructor edition** (``--instructor`` or
  ``TSD_INSTRUCTOR=1``) adds every solution and model answer in a dropdown and a link to
  ``solution.ipynb``; build it into a separate site and never commit or publish it.

::

    python assignments/build_assignments.py               # write the files (student pages)
    python assignments/build_assignments.py --check       # fail if a committed file is stale
    TSD_INSTRUCTOR=1 python assignments/build_assignments.py   # instructor pages (do not commit)
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent
FOLDERS = ("01_kd_loss", "02_window_saliency", "03_tsd_loss")
STUB = "raise NotImplementedError  # TODO"
_BEGIN_SOLUTION, _END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
_BEGIN_PROMPT, _END_PROMPT = "### BEGIN PROMPT", "### END PROMPT"
EXPECTED_TAG = "expected-output"  # a source code cell whose output the page shows as "What you should see"
EXPECTED_FILE = "expected.json"
INSTRUCTOR_ENV = "TSD_INSTRUCTOR"
EDITIONS = ("student", "instructor")
INSTRUCTOR_BANNER = ":::{warning}\nInstructor edition: solutions included. Do not publish or commit this page.\n:::"


def versions(source: str, *, code: bool = True, where: str = "a cell") -> tuple[str, str] | None:
    """``(student, solution)`` text of a cell with markers, or None when it has none.

    Raises ``ValueError`` naming ``where`` for unbalanced or nested markers.
    """
    lines = source.split("\n")
    markers = (_BEGIN_SOLUTION, _END_SOLUTION, _BEGIN_PROMPT, _END_PROMPT)
    if not any(line.strip() in markers for line in lines):
        return None
    student: list[str] = []
    solution: list[str] = []
    block: str | None = None  # "prompt" or "solution"
    prompt: list[str] | None = None  # the prompt waiting for its solution block
    for number, line in enumerate(lines, start=1):
        marker = line.strip()
        if marker in (_BEGIN_SOLUTION, _BEGIN_PROMPT):
            if block is not None:
                raise ValueError(f"{where}, line {number}: {marker!r} inside an open {block} block")
            block = "solution" if marker == _BEGIN_SOLUTION else "prompt"
            if block == "prompt":
                prompt = []
            elif prompt is not None:
                student.extend(prompt)
            elif code:
                student.append(line[: len(line) - len(line.lstrip())] + STUB)
        elif marker in (_END_SOLUTION, _END_PROMPT):
            if block != ("solution" if marker == _END_SOLUTION else "prompt"):
                raise ValueError(f"{where}, line {number}: {marker!r} without its BEGIN line")
            if block == "solution":
                prompt = None
            block = None
        elif block == "prompt":
            prompt.append(line)  # type: ignore[union-attr]
        elif block == "solution":
            solution.append(line)
        else:
            if prompt is not None:
                raise ValueError(f"{where}, line {number}: a PROMPT block must be followed by a SOLUTION block")
            student.append(line)
            solution.append(line)
    if block is not None or prompt is not None:
        raise ValueError(f"{where}: a {block or 'prompt'} block is not closed")
    return "\n".join(student), "\n".join(solution)


def solution_lines(source: str) -> list[str]:
    """The lines between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` of a cell (markers excluded)."""
    inside, found = False, []
    for line in source.split("\n"):
        if line.strip() == _BEGIN_SOLUTION:
            inside = True
        elif line.strip() == _END_SOLUTION:
            inside = False
        elif inside:
            found.append(line)
    return found


def read_source(folder: str) -> nbformat.NotebookNode:
    """The source notebook of an assignment folder."""
    return nbformat.read(ROOT / folder / "source.ipynb", as_version=4)


def _tags(cell) -> list[str]:
    return list(cell.metadata.get("tags", []))


def notebook(source: nbformat.NotebookNode, version: str) -> nbformat.NotebookNode:
    """The ``"student"`` or ``"solution"`` notebook of a source: markers resolved, no outputs."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {**copy.deepcopy(dict(source.metadata)), "tsd_version": version}
    for cell in source.cells:
        new = copy.deepcopy(cell)
        split = versions(cell.source, code=cell.cell_type == "code", where=f"cell {cell.get('id')}")
        tags = [t for t in _tags(cell) if t != EXPECTED_TAG]  # a page-building tag, not the notebook's
        if split is not None:
            new.source = split[0] if version == "student" else split[1]
            tags.append("todo" if version == "student" else "solution")
        if tags:
            new.metadata["tags"] = tags
        else:
            new.metadata.pop("tags", None)
        if new.cell_type == "code":
            new.outputs, new.execution_count = [], None
        nb.cells.append(new)
    return nb


# ----------------------------------------------------------------------------- expected outputs


def _expected_cells(source: nbformat.NotebookNode) -> list[str]:
    return [c.get("id") for c in source.cells if c.cell_type == "code" and EXPECTED_TAG in _tags(c)]


def solution_digest(source: nbformat.NotebookNode) -> str:
    """What the recorded outputs depend on: the solution's code cells and which cells are tagged."""
    code = [(c.get("id"), c.source) for c in notebook(source, "solution").cells if c.cell_type == "code"]
    payload = json.dumps({"code": code, "tagged": _expected_cells(source)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def load_expected(folder: str) -> dict | None:
    """The recorded ``expected.json`` of an assignment, or None when there is none."""
    path = ROOT / folder / EXPECTED_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def expected_is_current(expected: dict | None, source: nbformat.NotebookNode) -> bool:
    return expected is not None and expected.get("digest") == solution_digest(source)


def _output_text(cell) -> dict:
    """The text a cell showed (streams, then text/plain results; figures counted, not kept)."""
    text, figures = [], 0
    for out in cell.get("outputs", []):
        if out.output_type == "stream" and out.name == "stdout":
            text.append(out.text)
        elif out.output_type in ("execute_result", "display_data"):
            data = out.get("data", {})
            if "image/png" in data or "image/svg+xml" in data:
                figures += 1
            elif "text/plain" in data:
                text.append(data["text/plain"] + "\n")
    lines = "".join(text).rstrip("\n").split("\n")
    return {"text": "\n".join(line.rstrip() for line in lines), "figures": figures}


def record_expected(folder: str, source: nbformat.NotebookNode) -> dict:
    """Execute the reference solution (default parameters, CPU) and keep the tagged cells' output."""
    import papermill  # only needed when a solution changed

    from tsd_lib.book.reproduce import environment

    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "solution.ipynb", Path(tmp) / "executed.ipynb"
        nbformat.write(notebook(source, "solution"), src)
        # the checks run here, never under a grader
        with environment(TSD_PROGRESS="0", TSD_RUNS=str(Path(tmp) / "runs"), TSD_GRADE_SOCKET=None):
            papermill.execute_notebook(str(src), str(out), kernel_name="python3", progress_bar=False, cwd=tmp)
        executed = nbformat.read(out, as_version=4)
    tagged = set(_expected_cells(source))
    return {
        "digest": solution_digest(source),
        "note": f"written by build_assignments.py from assignments/{folder}/solution.ipynb; do not edit",
        "cells": {c.get("id"): _output_text(c) for c in executed.cells if c.get("id") in tagged},
    }


# ----------------------------------------------------------------------------- pages


def _page_code(src: str) -> str:
    """Code as shown on the page: no IPython magics (they do not lex as Python), no lint pragmas."""
    lines = [line for line in src.splitlines() if not line.startswith("%")]
    return "\n".join(lines).replace("# noqa: F401  (for your code)", "# for your code").strip("\n")


def _fence(src: str) -> str:
    return "```python\n" + _page_code(src) + "\n```"


def _what_you_should_see(recorded: dict | None) -> str:
    """The "What you should see" box of a tagged cell: what the reference solution showed."""
    if recorded is None or not (recorded["text"] or recorded["figures"]):
        return ""
    figures = recorded["figures"]
    drew = ("one figure" if figures == 1 else f"{figures} figures") if figures else ""
    caveat = "other seeds or data sets give other values; another CPU or library version can change the last digits"
    if recorded["text"]:
        said = ("With the default parameters above the reference solution printed this"
                + (f" and drew {drew}" if drew else "") + f" ({caveat}):")
    else:
        said = f"With the default parameters above the reference solution drew {drew}."
    body = f"\n\n```text\n{recorded['text']}\n```" if recorded["text"] else ""
    return f":::{{admonition}} What you should see\n:class: tip\n\n{said}{body}\n:::"


def page(source: nbformat.NotebookNode, folder: str, *, edition: str = "student",
         expected: dict | None = None) -> str:
    """A MyST page (nothing executed). ``student``: the tasks as students get them, with a download
    link to the student notebook and the expected output of the tagged cells; ``instructor``: the
    same with every solution and model answer in a dropdown."""
    if edition not in EDITIONS:
        raise ValueError(f"edition must be one of {EDITIONS}, not {edition!r}")
    instructor = edition == "instructor"
    number = source.metadata["tsd_assignment"]
    recorded = (expected or {}).get("cells", {})
    download = ("**Get the notebook:** {download}`student.ipynb <student.ipynb>` (the tasks, with TODO cells). "
                "Open it in Jupyter where `tsd_lib` is installed: {doc}`/book/chapters/10_reproducing` says how.")
    if instructor:
        download += " Reference solution: {download}`solution.ipynb <solution.ipynb>`."
    out = [f"(assignment-{folder.replace('_', '-')})="]
    for index, cell in enumerate(source.cells):
        split = versions(cell.source, code=cell.cell_type == "code", where=f"cell {cell.get('id')}")
        if cell.cell_type == "markdown":
            if split is None:
                out.append(cell.source)
            else:
                out.append(split[0])
                if instructor:
                    out.append(":::{admonition} Model answers\n:class: dropdown\n\n" + split[1] + "\n:::")
            if index == 0:  # the title and the introduction
                out += [INSTRUCTOR_BANNER] if instructor else []
                out.append(download)
            continue
        if "parameters" in _tags(cell):
            out.append("Parameters of the notebook (an instructor can set others with papermill, e.g. "
                       "`-p seed 3`):\n\n" + _fence(cell.source))
        elif split is None:
            out.append(_fence(cell.source))
        else:
            out.append(_fence(split[0]))
            if instructor:
                out.append(":::{admonition} Solution\n:class: dropdown\n\n" + _fence(split[1]) + "\n:::")
        if EXPECTED_TAG in _tags(cell):
            seen = _what_you_should_see(recorded.get(cell.get("id")))
            if seen:
                out.append(seen)
    out.append(
        "## Getting and grading the notebook\n\n"
        f"Download {{download}}`student.ipynb <student.ipynb>`, run it top to bottom and fill in the TODO cells; "
        "every check cell prints its feedback and points while you work. An instructor grades a submission, "
        "or a folder of them, with\n\n"
        f"```bash\ntsd grade submissions/ --assignment {number} --timeout 300 --memory-mb 4096 --out grades/\n```\n\n"
        "which runs each notebook in a separate, time- and memory-limited process and runs the checks itself "
        "(see `assignments/README.md`; grading runs student code, so use a sandbox for untrusted submissions)."
    )
    return "\n\n".join(out) + "\n"


def outputs(edition: str = "student", expected: dict[str, dict | None] | None = None) -> dict[Path, str]:
    """Every generated notebook and page and its content (``expected.json`` files are separate)."""
    files: dict[Path, str] = {}
    for folder in FOLDERS:
        source = read_source(folder)
        try:
            for version in ("student", "solution"):
                files[ROOT / folder / f"{version}.ipynb"] = nbformat.writes(notebook(source, version)) + "\n"
            recorded = (expected or {}).get(folder, load_expected(folder) if _expected_cells(source) else None)
            files[ROOT / folder / "page.md"] = page(source, folder, edition=edition, expected=recorded)
        except ValueError as err:
            raise ValueError(f"assignments/{folder}/source.ipynb: {err}") from None
    return files


def _edition(flag: bool) -> str:
    return "instructor" if flag or os.environ.get(INSTRUCTOR_ENV, "").strip() not in ("", "0") else "student"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if a generated file is missing or stale (always the student edition)")
    parser.add_argument("--instructor", action="store_true",
                        help=f"write the instructor edition of the pages (solutions included; also {INSTRUCTOR_ENV}=1)")
    args = parser.parse_args(argv)
    stale: list[Path] = []
    expected: dict[str, dict | None] = {}
    try:
        for folder in FOLDERS:
            source = read_source(folder)
            if not _expected_cells(source):  # nothing to show: no file, no execution
                expected[folder] = None
                continue
            recorded = load_expected(folder)
            if not expected_is_current(recorded, source):
                if args.check:
                    stale.append(ROOT / folder / EXPECTED_FILE)
                else:
                    print(f"running assignments/{folder}'s reference solution for its expected output ...",
                          flush=True)
                    recorded = record_expected(folder, source)
                    path = ROOT / folder / EXPECTED_FILE
                    path.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n", encoding="utf-8")
                    print(f"wrote {path.relative_to(ROOT.parent)}")
            expected[folder] = recorded
        edition = "student" if args.check else _edition(args.instructor)
        files = outputs(edition, expected)
    except ValueError as err:
        print(f"error in a source notebook: {err}", file=sys.stderr)
        return 2
    for path, text in files.items():
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(path)
            continue
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT.parent)}")
    if edition == "instructor":
        print("these pages are the INSTRUCTOR edition (solutions included): build them into a separate site "
              "(jupyter-book build . --path-output _build/instructor) and run this script without "
              f"--instructor / {INSTRUCTOR_ENV} before you commit or publish.")
    if stale:
        print("stale (run python assignments/build_assignments.py, without --instructor):",
              *map(str, stale), sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
