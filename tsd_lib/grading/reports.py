"""``tsd grade``'s reports: one submission's grade, its table, and the summary of a folder.

:class:`GradeReport` is what :func:`~tsd_lib.grading.grader.grade_notebook` returns (its status one
of :data:`STATUSES`), written as ``NAME.grade.json`` and, in the Gradescope / otter form, as
``NAME.results.json``; :func:`format_report` prints it as a table; :func:`write_summary` writes a
folder's ``summary.csv`` (one row per notebook, the checks in the assignments' order) and
``summary.json``.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tsd_lib.grading.feedback import ASSIGNMENTS, POINTS, _num, _short

#: Report statuses of :func:`~tsd_lib.grading.grader.grade_notebook`.
STATUSES = ("ok", "crashed", "timeout", "memory", "invalid")


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


def write_summary(reports: list[GradeReport], out: Path) -> None:
    """``summary.csv`` (one row per report, a column per check) and ``summary.json`` in ``out``."""
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
