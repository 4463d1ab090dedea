"""``tsd grade``: execute submissions in a confined process, run their checks here, write the reports.

For every notebook the grader starts a worker (``python -m tsd_lib.grading run``) that executes
a private copy of it with papermill in a scratch folder, with a minimal environment, memory limits
(``RLIMIT_AS`` per process and a watchdog on the resident memory of all of them,
:mod:`~tsd_lib.grading.sandbox`) and a wall-clock timeout. The worker learns what to run on its
standard input, never on its command line, and never the path of another submission. Each check
cell connects back to the grader, which runs the check in its own process on the notebook's
functions (:mod:`tsd_lib.grading.remote`): the score is made of those results only. After the
notebook ends every process it started is killed (:func:`~tsd_lib.grading.sandbox.sweep`).

Reports are written once every submission is graded: into a private folder made inside the
output folder only then, moved into place, and whatever else appeared in the output folder while
submissions ran (a forged ``*.results.json``) is removed. The output folder is checked before any
grading: not a file, writable, no symbolic link on its path, holding only the grader's files.
"""

from __future__ import annotations

import ast
import contextlib
import csv
import functools
import hashlib
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tsd_lib.grading import sandbox
from tsd_lib.grading.feedback import ASSIGNMENTS, POINTS, SOCKET_ENV, CheckResult, _num, _short, score_results

#: Report statuses of :func:`grade_notebook`.
STATUSES = ("ok", "crashed", "timeout", "memory", "invalid")

DEFAULT_TIMEOUT_S = 300.0
DEFAULT_MEMORY_MB = 4096
DEFAULT_MAX_NOTEBOOK_MB = 20.0

_MAX_EXECUTED = 64 * 1024 * 1024  # bytes of an executed notebook kept for the report folder


@dataclass
class GradeReport:
    """The grade of one submission (see :data:`STATUSES`)."""

    notebook: str
    status: str
    assignment: int | None = None
    score: float = 0.0
    max_score: float = 0.0
    checks: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    failing_cell: int | None = None
    seconds: float = 0.0
    parameters: dict[str, Any] = field(default_factory=dict)
    executed_notebook: str | None = None
    limits: dict[str, Any] = field(default_factory=dict)
    executed: bytes | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("executed")
        return d

    def results_json(self) -> dict[str, Any]:
        """The report in the Gradescope / otter ``results.json`` form: score, one test per check."""
        tests = [{"name": c["name"], "score": c["points"], "max_score": c["max_points"],
                  "status": "passed" if c["ran"] and not c["failed_cases"] else "failed",
                  "output": "\n".join(c["messages"]) if c["messages"] else "All cases pass."}
                 for c in self.checks]
        output = f"status: {self.status}" + (f"\n{self.error}" if self.error else "")
        return {"score": self.score, "max_score": self.max_score, "execution_time": self.seconds,
                "output": output, "tests": tests}


def check_limits(timeout: float, memory_mb: int | None, max_notebook_mb: float | None) -> None:
    """Raise ``ValueError`` (naming the option) for a limit that is not a finite number in range."""
    if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and 0 < timeout <= sandbox.MAX_TIMEOUT_S):
        raise ValueError(f"--timeout must be a number of seconds > 0 and at most {sandbox.MAX_TIMEOUT_S:g} "
                         f"(one day), got {timeout}")
    if memory_mb is not None and (isinstance(memory_mb, bool) or not isinstance(memory_mb, int) or memory_mb < 1):
        raise ValueError(f"--memory-mb must be a whole number of MiB >= 1, got {memory_mb}")
    if max_notebook_mb is not None and not (isinstance(max_notebook_mb, (int, float))
                                            and math.isfinite(max_notebook_mb) and max_notebook_mb >= 0):
        raise ValueError(f"--max-notebook-mb must be a finite number >= 0 (0: no limit), got {max_notebook_mb}")


def _read_submission(path: Path, max_mb: float | None) -> tuple[Any, str | None]:
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


def _infer_assignment(nb: Any) -> int | None:
    value = nb.metadata.get("tsd_assignment")
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _safe_name(path: Path, root: Path | None) -> str:
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


def _variant_data(params: Mapping[str, Any]) -> Callable[[], tuple]:
    """``(dataset, masks)`` of the variant, computed once when a check first needs it."""
    from tsd_lib.grading.datasets import assignment_dataset

    return functools.cache(lambda: assignment_dataset(str(params.get("dataset", "synthetic")),
                                                      seed=int(params.get("seed", 0))))


def _serve_checks(proc: subprocess.Popen, listener: socket.socket, deadline: float,
                  results: list[CheckResult], data: Callable[[], tuple]) -> bool:
    """Run the checks the notebook asks for until its worker ends; True if the deadline passed first."""
    from tsd_lib.grading import remote

    while proc.poll() is None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return True
        listener.settimeout(min(0.25, remaining))
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        with conn:
            result = remote.serve(conn, deadline, data)
        if result is not None:
            results.append(result)
    return False


def _tail(path: Path, n: int) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, path.stat().st_size - n))
            return fh.read(n).decode("utf-8", errors="replace")
    except OSError:
        return ""


def grade_notebook(
    path: str | os.PathLike,
    *,
    assignment: int | None = None,
    parameters: Mapping[str, Any] | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    memory_mb: int | None = DEFAULT_MEMORY_MB,
    max_notebook_mb: float | None = DEFAULT_MAX_NOTEBOOK_MB,
    out_dir: str | os.PathLike | None = None,
    name: str | None = None,
) -> GradeReport:
    """Execute one submission in a separate, limited process and score its checks in this one.

    Never raises for a bad submission: the report's status says what happened. Every process the
    submission started is killed before this returns. With ``out_dir`` the executed notebook is
    written there (its bytes are in ``report.executed`` either way).
    """
    import nbformat

    check_limits(timeout, memory_mb, max_notebook_mb)
    path = Path(path)
    params = dict(parameters or {})
    report = GradeReport(notebook=str(path), status="invalid", parameters=params)
    nb, problem = _read_submission(path, max_notebook_mb)
    if nb is None:
        report.error = problem
        return report
    number = assignment if assignment is not None else _infer_assignment(nb)
    report.assignment = number
    if number not in POINTS:
        report.error = (
            f"unknown assignment {number}; known: {sorted(POINTS)}" if number is not None else
            "cannot tell which assignment this is (no metadata.tsd_assignment in the notebook): pass --assignment N"
        )
        return report
    report.max_score = float(sum(POINTS[number].values()))
    from tsd_lib.grading import remote  # noqa: F401  (the checks' references, loaded before student code runs)

    scratch = Path(tempfile.mkdtemp(prefix="tsd-grade-"))
    results: list[CheckResult] = []
    watchdog: sandbox.MemoryWatchdog | None = None
    report.limits = {"timeout_s": timeout, "memory_mb": memory_mb}
    try:
        work = scratch / "work"
        work.mkdir()
        status_file, log, executed = scratch / "status.json", scratch / "worker.log", scratch / "executed.ipynb"
        submission = scratch / "submission.ipynb"  # a private copy: the worker never sees where notebooks live
        nbformat.write(nb, submission)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(scratch / "grader.sock"))
        listener.listen(8)
        env = sandbox.student_env(scratch, {SOCKET_ENV: str(scratch / "grader.sock"),
                                            "TSD_RUNS": str(scratch / "runs")})
        job = {"notebook": str(submission), "output": str(executed), "parameters": params, "cwd": str(work),
               "status": str(status_file)}
        sandbox.become_subreaper()
        keep = sandbox.children()
        start = time.perf_counter()
        with listener, open(log, "wb") as log_fh:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tsd_lib.grading", "run"], stdin=subprocess.PIPE, stdout=log_fh,
                stderr=subprocess.STDOUT, env=env, cwd=str(work), start_new_session=True,
                preexec_fn=sandbox.limits(memory_mb),
            )
            try:
                with contextlib.suppress(OSError):  # the job goes on stdin, not on the command line
                    proc.stdin.write(json.dumps(job, default=str).encode())
                with contextlib.suppress(OSError):
                    proc.stdin.close()
                if memory_mb:
                    watchdog = sandbox.MemoryWatchdog(keep, memory_mb, group=proc.pid)
                    watchdog.start()
                data = _variant_data(notebook_parameters(nb, params))
                timed_out = _serve_checks(proc, listener, time.monotonic() + timeout, results, data)
            finally:  # also on Ctrl-C: leave no process of the submission behind
                if watchdog is not None:
                    watchdog.stop()
                sandbox.sweep(keep, group=proc.pid)
                proc.wait()
                sandbox.become_subreaper(False)
        report.seconds = round(time.perf_counter() - start, 2)

        report.score, report.max_score, report.checks = score_results(results, number)
        status: dict[str, Any] = {}
        if status_file.exists() and status_file.stat().st_size < 65536:
            try:
                status = json.loads(status_file.read_text())
            except (ValueError, OSError):
                status = {}
        status = status if isinstance(status, dict) else {}
        if watchdog is not None and watchdog.tripped:
            report.status = "memory"
            report.error = (f"the notebook's processes together used more than {memory_mb} MiB of memory (resident, "
                            "summed over every process it started) and were stopped")
        elif timed_out:
            report.status = "timeout"
            report.error = f"the notebook did not finish within {timeout:g} s and was stopped"
        elif status.get("status") in STATUSES:
            report.status = str(status["status"])
            report.error = None if status.get("error") is None else _short(str(status["error"]), 600)
            report.failing_cell = status.get("cell") if isinstance(status.get("cell"), int) else None
        else:
            tail = _tail(log, 800)
            report.status = "memory" if "MemoryError" in tail else "crashed"
            report.error = f"the grading worker stopped unexpectedly (exit code {proc.returncode}): {_short(tail)}"
        if report.status == "crashed" and not report.error:
            report.error = "the notebook stopped with an error"
        if memory_mb and _memory_trouble(report):
            report.error = (f"{report.error} [memory limit: {memory_mb} MiB of address space per process and "
                            f"{memory_mb} MiB resident for all of the notebook's processes together; a reference "
                            f"solution needs about {sandbox.REFERENCE_MEMORY_MB} MiB of address space: "
                            "raise --memory-mb if this is not the notebook's fault]")
        if executed.exists() and executed.stat().st_size <= _MAX_EXECUTED:
            report.executed = executed.read_bytes()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if out_dir is not None:
        _write_executed(report, Path(out_dir), name or _safe_name(path, None))
    return report


#: What a process that ran out of (address-space) memory says.
_MEMORY_SIGNS = ("memoryerror", "failed to map segment", "cannot allocate memory", "out of memory", "bad_alloc",
                 "the kernel died")


def _memory_trouble(report: GradeReport) -> bool:
    return report.status == "memory" or (report.status == "crashed"
                                         and any(m in (report.error or "").lower() for m in _MEMORY_SIGNS))


def _write_executed(report: GradeReport, out: Path, name: str) -> None:
    if report.executed is None:
        return
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{name}.executed.ipynb"
    target.write_bytes(report.executed)
    report.executed_notebook = str(target)


def _submissions(path: Path, out_dir: Path | None) -> list[Path]:
    found = []
    for p in sorted(path.rglob("*.ipynb")):
        if ".ipynb_checkpoints" in p.parts or p.name.endswith(".executed.ipynb"):
            continue
        if out_dir is not None and p.resolve().is_relative_to(out_dir.resolve()):
            continue
        found.append(p)
    return found


def grade(
    path: str | os.PathLike,
    *,
    assignment: int | None = None,
    parameters: Mapping[str, Any] | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    memory_mb: int | None = DEFAULT_MEMORY_MB,
    max_notebook_mb: float | None = DEFAULT_MAX_NOTEBOOK_MB,
    out_dir: str | os.PathLike = "grades",
    echo: bool = True,
) -> list[GradeReport]:
    """Grade a notebook or every ``*.ipynb`` under a folder; write the reports when all are graded.

    Writes ``OUT/NAME.grade.json``, ``OUT/NAME.results.json`` (Gradescope form) and
    ``OUT/NAME.executed.ipynb`` per notebook and, for a folder, ``OUT/summary.csv`` (one row per
    notebook, the checks in the assignments' order) and ``OUT/summary.json``. ``OUT`` is checked
    first (:func:`check_output_folder`: ``ValueError`` before any grading); the reports are made in
    a private folder once every submission has ended, then moved into ``OUT``, and anything that
    appeared in ``OUT`` meanwhile, or changed there, is removed (earlier reports the grader wrote
    stay). Nothing is created when there is no notebook. With ``echo`` each report is printed as a
    table. Raises ``FileNotFoundError`` when ``path`` does not exist.
    """
    path, out = Path(path), Path(out_dir)
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {path}")
    check_limits(timeout, memory_mb, max_notebook_mb)
    previous = check_output_folder(out)
    folder = path.is_dir()
    notebooks = _submissions(path, out) if folder else [path]
    graded: list[tuple[str, GradeReport]] = []
    for nb_path in notebooks:
        name = _safe_name(nb_path, path if folder else None)
        report = grade_notebook(nb_path, assignment=assignment, parameters=parameters, timeout=timeout,
                                memory_mb=memory_mb, max_notebook_mb=max_notebook_mb)
        graded.append((name, report))
        if echo:
            print(format_report(report))
            print()
    if not graded:
        return []
    removed = _publish(graded, out, previous, summary=folder)
    if echo and removed:
        print(f"removed {len(removed)} file(s) from {out} that tsd grade did not write: {', '.join(removed[:5])}"
              + (" ..." if len(removed) > 5 else ""))
    reports = [r for _, r in graded]
    if folder and echo:
        print(f"{len(reports)} notebook(s) graded; summary in {out / 'summary.csv'}")
    return reports


#: The names of the files :func:`grade` writes (anything else in its output folder is not its own).
_SUFFIXES = (".grade.json", ".results.json", ".executed.ipynb")
_SUMMARIES = ("summary.csv", "summary.json")
_STAGING = ".tsd-grade-staging-"


def _grader_file(name: str) -> bool:
    return name.endswith(_SUFFIXES) or name in _SUMMARIES


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _symlink_on(out: Path) -> Path | None:
    """The first symbolic link on the path ``out`` (as given), if any."""
    for part in [*reversed(out.parents), out]:
        if str(part) not in ("", ".", os.sep) and part.is_symlink():
            return part
    return None


def check_output_folder(out: str | os.PathLike) -> dict[str, str]:
    """Check ``tsd grade``'s output folder before any grading; ``{name: sha256}`` of the reports
    the grader wrote there before (kept unless changed while submissions run).

    ``ValueError`` (one line naming ``--out``) when it is a file, not writable, has a symbolic link
    on its path, or holds anything but the grader's files (which :func:`grade` would remove).
    """
    out = Path(out)
    link = _symlink_on(out)
    if link is not None:
        raise ValueError(f"--out {out}: {link} is a symbolic link; pass a real folder (tsd grade does not write "
                         "through links)")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder")
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"--out {out}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"--out {out} is not writable ({existing}: permission denied)")
    if not out.is_dir():
        return {}
    foreign = sorted(e.name for e in out.iterdir() if not e.name.startswith(_STAGING)
                     and (e.is_symlink() or not e.is_file() or not _grader_file(e.name)))
    if foreign:
        raise ValueError(f"--out {out} holds files tsd grade did not write ({', '.join(foreign[:3])}"
                         f"{', ...' if len(foreign) > 3 else ''}); pass a new folder, or one with only its reports")
    return {e.name: _digest(e) for e in out.iterdir() if e.is_file() and _grader_file(e.name)}


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _publish(graded: list[tuple[str, GradeReport]], out: Path, previous: dict[str, str], *,
             summary: bool) -> list[str]:
    """Write the reports into a private folder inside ``out`` (made now, when no submission runs any
    more), remove what the grader did not write, move the reports into place; the removed names."""
    link = _symlink_on(out)
    if link == out:  # made a link while submissions ran: replace it by a real folder
        link.unlink()
    elif link is not None:
        raise ValueError(f"--out {out}: {link} became a symbolic link while grading; reports not written")
    if out.exists() and not out.is_dir():
        out.unlink()
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=_STAGING, dir=out))
    try:
        for name, report in graded:
            if report.executed is not None:
                (staging / f"{name}.executed.ipynb").write_bytes(report.executed)
                report.executed_notebook = str(out / f"{name}.executed.ipynb")
            (staging / f"{name}.grade.json").write_text(json.dumps(report.to_dict(), indent=2, default=str))
            (staging / f"{name}.results.json").write_text(json.dumps(report.results_json(), indent=2))
        if summary:
            _write_summary([r for _, r in graded], staging)
        written = {p.name for p in staging.iterdir()}
        removed = []
        for entry in sorted(out.iterdir()):
            if entry == staging:
                continue
            kept = (entry.name not in written and entry.is_file() and not entry.is_symlink()
                    and previous.get(entry.name) == _digest(entry))
            if not kept:
                _remove(entry)
                if entry.name not in written and not entry.name.startswith(_STAGING):
                    removed.append(entry.name)
        for name in sorted(written):
            os.replace(staging / name, out / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return removed


def _write_summary(reports: list[GradeReport], out: Path) -> None:
    present = {c["name"] for r in reports for c in r.checks}
    # the assignments in order, each one's checks in notebook order (as POINTS lists them)
    checks = [name for number in sorted(POINTS) for name in POINTS[number] if name in present]
    checks += sorted(present - set(checks))
    with open(out / "summary.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["notebook", "assignment", "status", "score", "max_score", "seconds", *checks, "error"])
        for r in reports:
            pts = {c["name"]: c["points"] for c in r.checks}
            writer.writerow([r.notebook, r.assignment if r.assignment is not None else "", r.status, _num(r.score),
                             _num(r.max_score), r.seconds, *(_num(pts[c]) if c in pts else "" for c in checks),
                             r.error or ""])
    (out / "summary.json").write_text(json.dumps([r.to_dict() for r in reports], indent=2, default=str))


def format_report(report: GradeReport) -> str:
    """A readable table of one report."""
    title = ASSIGNMENTS.get(report.assignment or 0, "")
    lines = [
        f"{report.notebook}" + (f"  (assignment {report.assignment}: {title})" if title else ""),
        f"status: {report.status}   score: {_num(report.score)}/{_num(report.max_score)}   time: {report.seconds:g} s",
    ]
    if report.error:
        lines.append(f"error: {report.error}")
    if report.checks:
        lines.append(f"  {'check':<30} {'points':>9}  {'cases':>7}  first problem")
        for c in report.checks:
            n_pass, n_all = len(c["passed_cases"]), len(c["passed_cases"]) + len(c["failed_cases"])
            cases = f"{n_pass}/{n_all}" if c["ran"] else "-"
            first = _short(c["messages"][0], 90) if c["messages"] else ""
            lines.append(f"  {c['name']:<30} {_num(c['points']) + '/' + _num(c['max_points']):>9}  {cases:>7}  {first}")
    return "\n".join(lines)


def _parse_value(text: str) -> Any:
    """A ``-p NAME VALUE`` value: YAML scalars (numbers, booleans, null, lists), else the string."""
    try:
        import yaml

        return yaml.safe_load(text)
    except Exception:  # not YAML: keep the text
        return text


def grade_command(
    path: str,
    *,
    assignment: int | None = None,
    parameters: Sequence[Sequence[str]] | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    memory_mb: int | None = DEFAULT_MEMORY_MB,
    max_notebook_mb: float | None = DEFAULT_MAX_NOTEBOOK_MB,
    out: str = "grades",
) -> int:
    """What ``tsd grade`` runs; returns 0 when grading itself worked (whatever the submissions did)."""
    params = {name: _parse_value(value) for name, value in (parameters or [])}
    reports = grade(path, assignment=assignment, parameters=params, timeout=timeout, memory_mb=memory_mb,
                    max_notebook_mb=max_notebook_mb, out_dir=out)
    if not reports:
        print(f"no notebooks found under {path}")
    return 0
