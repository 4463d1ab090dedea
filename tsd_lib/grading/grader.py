"""``tsd grade``: execute submissions in a confined process, run their checks here, write the reports.

For every notebook the grader starts a worker (``python -m tsd_lib.grading run``) that executes
a private copy of it with papermill in a scratch folder, with a minimal environment, memory limits
(``RLIMIT_AS`` per process and a watchdog on the resident memory of all of them,
:mod:`~tsd_lib.grading.sandbox`) and a wall-clock timeout. The worker learns what to run on its
standard input, never on its command line, and never the path of another submission. Each check
cell connects back to the grader, which runs the check in its own process on the notebook's
functions (:mod:`tsd_lib.grading.remote`): the score is made of those results only. After the
notebook ends every process it started is killed (:func:`~tsd_lib.grading.sandbox.sweep`).

Reports (:mod:`~tsd_lib.grading.reports`) are written once every submission is graded: into a
private folder made inside the output folder only then, moved into place, and whatever else
appeared in the output folder while submissions ran (a forged ``*.results.json``) is removed. The
output folder is checked before any grading: not a file, writable, no symbolic link on its path,
holding only the grader's files (:mod:`~tsd_lib.grading.output_folder`).
"""

from __future__ import annotations

import contextlib
import functools
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
from pathlib import Path
from typing import Any

from tsd_lib.grading import sandbox
from tsd_lib.grading.feedback import POINTS, SOCKET_ENV, CheckResult, _short, score_results
from tsd_lib.grading.output_folder import check_output_folder, publish_reports
from tsd_lib.grading.reports import STATUSES, GradeReport, format_report
from tsd_lib.grading.submissions import (
    find_submissions,
    infer_assignment,
    notebook_parameters,
    read_submission,
    report_name,
)

DEFAULT_TIMEOUT_S = 300.0
DEFAULT_MEMORY_MB = 4096
DEFAULT_MAX_NOTEBOOK_MB = 20.0

_MAX_EXECUTED = 64 * 1024 * 1024  # bytes of an executed notebook kept for the report folder


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


def _variant_data(params: Mapping[str, Any]) -> Callable[[], tuple]:
    """``(dataset, masks)`` of the variant, computed once when a check first needs it."""
    from tsd_lib.grading.assignment_data import assignment_dataset

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
    nb, problem = read_submission(path, max_notebook_mb)
    if nb is None:
        report.error = problem
        return report
    number = assignment if assignment is not None else infer_assignment(nb)
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
        _write_executed(report, Path(out_dir), name or report_name(path, None))
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
    first (:func:`~tsd_lib.grading.output_folder.check_output_folder`: ``ValueError`` before any
    grading); the reports are made in a private folder once every submission has ended, then moved
    into ``OUT``, and anything that appeared in ``OUT`` meanwhile, or changed there, is removed
    (earlier reports the grader wrote stay). Nothing is created when there is no notebook. With
    ``echo`` each report is printed as a table. Raises ``FileNotFoundError`` when ``path`` does not
    exist.
    """
    path, out = Path(path), Path(out_dir)
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {path}")
    check_limits(timeout, memory_mb, max_notebook_mb)
    previous = check_output_folder(out)
    folder = path.is_dir()
    notebooks = find_submissions(path, out) if folder else [path]
    graded: list[tuple[str, GradeReport]] = []
    for nb_path in notebooks:
        name = report_name(nb_path, path if folder else None)
        report = grade_notebook(nb_path, assignment=assignment, parameters=parameters, timeout=timeout,
                                memory_mb=memory_mb, max_notebook_mb=max_notebook_mb)
        graded.append((name, report))
        if echo:
            print(format_report(report))
            print()
    if not graded:
        return []
    removed = publish_reports(graded, out, previous, summary=folder)
    if echo and removed:
        print(f"removed {len(removed)} file(s) from {out} that tsd grade did not write: {', '.join(removed[:5])}"
              + (" ..." if len(removed) > 5 else ""))
    reports = [r for _, r in graded]
    if folder and echo:
        print(f"{len(reports)} notebook(s) graded; summary in {out / 'summary.csv'}")
    return reports


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
