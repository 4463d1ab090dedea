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
* ``page.md``        -- a MyST page for the book: the task, every solution in a dropdown.

::

    python assignments/build_assignments.py          # write the files
    python assignments/build_assignments.py --check  # fail if the committed files are stale
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent
FOLDERS = ("01_kd_loss", "02_window_saliency", "03_tsd_loss")
STUB = "raise NotImplementedError  # TODO"
_BEGIN_SOLUTION, _END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
_BEGIN_PROMPT, _END_PROMPT = "### BEGIN PROMPT", "### END PROMPT"


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


def read_source(folder: str) -> nbformat.NotebookNode:
    """The source notebook of an assignment folder."""
    return nbformat.read(ROOT / folder / "source.ipynb", as_version=4)


def notebook(source: nbformat.NotebookNode, version: str) -> nbformat.NotebookNode:
    """The ``"student"`` or ``"solution"`` notebook of a source: markers resolved, no outputs."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {**copy.deepcopy(dict(source.metadata)), "tsd_version": version}
    for cell in source.cells:
        new = copy.deepcopy(cell)
        split = versions(cell.source, code=cell.cell_type == "code", where=f"cell {cell.get('id')}")
        if split is not None:
            new.source = split[0] if version == "student" else split[1]
            new.metadata["tags"] = [*new.metadata.get("tags", []), "todo" if version == "student" else "solution"]
        if new.cell_type == "code":
            new.outputs, new.execution_count = [], None
        nb.cells.append(new)
    return nb


def _page_code(src: str) -> str:
    """Code as shown on the page: no IPython magics (they do not lex as Python), no lint pragmas."""
    lines = [line for line in src.splitlines() if not line.startswith("%")]
    return "\n".join(lines).replace("# noqa: F401  (for your code)", "# for your code").strip("\n")


def _fence(src: str) -> str:
    return "```python\n" + _page_code(src) + "\n```"


def page(source: nbformat.NotebookNode, folder: str) -> str:
    """A MyST page: the task, starter code, and every solution in a dropdown (nothing executed)."""
    number = source.metadata["tsd_assignment"]
    out = [f"(assignment-{folder.replace('_', '-')})="]
    for cell in source.cells:
        split = versions(cell.source, code=cell.cell_type == "code", where=f"cell {cell.get('id')}")
        if cell.cell_type == "markdown":
            if split is None:
                out.append(cell.source)
            else:
                out += [split[0], ":::{admonition} Model answers\n:class: dropdown\n\n" + split[1] + "\n:::"]
        elif "parameters" in cell.metadata.get("tags", []):
            out.append("Parameters of the notebook (an instructor can set others with papermill, e.g. "
                       "`-p seed 3`):\n\n" + _fence(cell.source))
        elif split is None:
            out.append(_fence(cell.source))
        else:
            out += [_fence(split[0]), ":::{admonition} Solution\n:class: dropdown\n\n" + _fence(split[1]) + "\n:::"]
    out.append(
        "## Getting and grading the notebook\n\n"
        f"The notebooks are `assignments/{folder}/student.ipynb` (with the TODO cells) and "
        f"`assignments/{folder}/solution.ipynb`. Every check cell prints its feedback and points while "
        "you work. An instructor grades a submission, or a folder of them, with\n\n"
        f"```bash\ntsd grade submissions/ --assignment {number} --timeout 300 --memory-mb 4096 --out grades/\n```\n\n"
        "which runs each notebook in a separate, time- and memory-limited process and runs the checks itself "
        "(see `assignments/README.md`; grading runs student code, so use a sandbox for untrusted submissions)."
    )
    return "\n\n".join(out) + "\n"


def outputs() -> dict[Path, str]:
    """Every generated file and its content."""
    files: dict[Path, str] = {}
    for folder in FOLDERS:
        source = read_source(folder)
        try:
            for version in ("student", "solution"):
                files[ROOT / folder / f"{version}.ipynb"] = nbformat.writes(notebook(source, version)) + "\n"
            files[ROOT / folder / "page.md"] = page(source, folder)
        except ValueError as err:
            raise ValueError(f"assignments/{folder}/source.ipynb: {err}") from None
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a generated file is missing or stale")
    args = parser.parse_args(argv)
    try:
        files = outputs()
    except ValueError as err:
        print(f"error in a source notebook: {err}", file=sys.stderr)
        return 2
    stale = []
    for path, text in files.items():
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(path)
            continue
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT.parent)}")
    if stale:
        print("stale (run python assignments/build_assignments.py):", *map(str, stale), sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
