"""Check results, points and feedback: what every check shares.

A check (``check_kd_loss(my_kd_loss)`` in a notebook) runs a list of *cases* against tsd_lib's
own implementation, explains every failure in plain words and returns a :class:`CheckResult`;
it never raises because of a wrong student function. Checks are registered with
:func:`graded`: in a notebook that ``tsd grade`` executes, the registered check runs in the
grader's process instead (see :mod:`tsd_lib.grading.remote`), so the points are the grader's.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch

#: Titles of the assignments (folder ``assignments/NN_name``).
ASSIGNMENTS: dict[int, str] = {
    1: "Hinton KD loss and temperature",
    2: "Window-perturbation saliency",
    3: "The TSD loss, a student and one ablation",
}

#: Points of every check, per assignment. A check's cases add up to its points.
POINTS: dict[int, dict[str, float]] = {
    1: {"check_temperature_softmax": 2.0, "check_kd_loss": 8.0, "check_soft_target_entropy": 2.0},
    2: {
        "check_apply_windows": 3.0,
        "check_window_saliency": 4.0,
        "check_planted_saliency": 3.0,
        "check_synthetic_validation": 2.0,
    },
    3: {"check_distribution_shift": 4.0, "check_tsd_loss": 6.0, "check_trained_student": 3.0, "check_ablation": 2.0},
}

#: Environment variable naming the grader's socket while ``tsd grade`` executes a notebook.
SOCKET_ENV = "TSD_GRADE_SOCKET"

#: Offset of the seeds of the checks' random inputs: 0 in a notebook (reproducible feedback),
#: drawn afresh by the grader for every check it runs.
INPUT_SEED = 0


@dataclass
class CheckResult:
    """Outcome of one check: points earned, the cases passed and failed, and the feedback."""

    name: str
    points: float
    max_points: float
    passed_cases: list[str]
    messages: list[str]
    failed_cases: list[str] = field(default_factory=list)
    assignment: int = 0

    @property
    def passed(self) -> bool:
        """True when every case passed."""
        return not self.failed_cases

    @property
    def total_cases(self) -> int:
        return len(self.passed_cases) + len(self.failed_cases)

    def summary(self) -> str:
        """A readable multi-line summary (what the check prints)."""
        head = (
            f"{self.name}: {_num(self.points)}/{_num(self.max_points)} points "
            f"({len(self.passed_cases)} of {self.total_cases} cases passed)"
        )
        lines = [head]
        lines += [f"  ✔ {case}" for case in self.passed_cases]
        lines += [f"  ✘ {msg}" for msg in self.messages]
        if self.passed:
            lines.append("  All cases pass. Well done!")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CheckResult:
        return cls(
            name=str(d["name"]),
            points=float(d["points"]),
            max_points=float(d["max_points"]),
            passed_cases=[str(c) for c in d.get("passed_cases", [])],
            messages=[str(m) for m in d.get("messages", [])],
            failed_cases=[str(c) for c in d.get("failed_cases", [])],
            assignment=int(d.get("assignment", 0)),
        )

    def __repr__(self) -> str:
        return f"CheckResult({self.name}: {_num(self.points)}/{_num(self.max_points)} points)"


#: Every check result of this Python session, in call order (what :func:`show_score` adds up).
LEDGER: list[CheckResult] = []

#: The registered checks by name, undecorated: what the grader runs in its own process.
CHECKS: dict[str, Callable[..., CheckResult]] = {}


def _num(x: float) -> str:
    return f"{x:g}"


def graded(check: Callable[..., CheckResult]) -> Callable[..., CheckResult]:
    """Register ``check`` in :data:`CHECKS`; the public function (with ``verbose=True``: print the
    summary) records its result in :data:`LEDGER` and returns it.

    While ``tsd grade`` executes the notebook (``$TSD_GRADE_SOCKET`` set) the check is run by
    the grader, which calls the student's functions in this process only to get their outputs.
    """
    CHECKS[check.__name__] = check

    @functools.wraps(check)
    def run(*args: Any, verbose: bool = True, **kwargs: Any) -> CheckResult:
        result = None
        if os.environ.get(SOCKET_ENV):
            from tsd_lib.grading.remote import request_check

            result = request_check(check.__name__, args, kwargs)
        if result is None:
            result = check(*args, **kwargs)
        LEDGER.append(result)
        if verbose:
            print(result.summary())
        return result

    return run


def score_results(results: Iterable[CheckResult], assignment: int) -> tuple[float, float, list[dict[str, Any]]]:
    """``(score, max_score, rows)`` of ``assignment`` from check results.

    The last result of each of the assignment's checks counts (a check run again replaces its
    earlier result); results of checks that belong to other assignments are ignored and checks
    that never ran score 0. Points are capped at each check's stated maximum.
    """
    table = POINTS.get(assignment, {})
    last: dict[str, CheckResult] = {}
    for r in results:
        if r.name in table:
            last[r.name] = r
    rows, score = [], 0.0
    for name, max_points in table.items():
        r = last.get(name)
        if r is None:
            rows.append({"name": name, "points": 0.0, "max_points": max_points, "ran": False, "passed_cases": [],
                         "failed_cases": [], "messages": ["this check did not run (no output reached it)"]})
            continue
        pts = max(0.0, min(float(r.points), max_points))
        score += pts
        rows.append({"name": name, "points": pts, "max_points": max_points, "ran": True,
                     "passed_cases": r.passed_cases, "failed_cases": r.failed_cases, "messages": r.messages})
    return round(score, 4), float(sum(table.values())), rows


def show_score(assignment: int) -> tuple[float, float]:
    """Print the score of ``assignment`` from the checks run in this session; return ``(score, max)``."""
    score, total, rows = score_results(LEDGER, assignment)
    print(f"Assignment {assignment} ({ASSIGNMENTS.get(assignment, '?')}): {_num(score)}/{_num(total)} points")
    for row in rows:
        state = "" if row["ran"] else "   (not run yet)"
        print(f"  {row['name']:<30} {_num(row['points']):>5}/{_num(row['max_points'])}{state}")
    return score, total


class StudentError(Exception):
    """The student's function raised in the notebook's process (its type name and message)."""

    def __init__(self, ename: str, evalue: str) -> None:
        super().__init__(f"{ename}: {evalue}")
        self.ename, self.evalue = ename, evalue


class _Fail(Exception):
    """A case failed; the message says why in plain words."""


class _Stop(Exception):
    """No further case can run (e.g. the function is not implemented yet); the message says why."""


Case = tuple[str, float, Callable[[], None]]


def _student(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call student code; turn any exception into a readable :class:`_Fail`."""
    if not callable(fn):
        raise _Stop(f"expected a function, got {type(fn).__name__}: pass the function itself (no parentheses)")
    try:
        return fn(*args, **kwargs)
    except (_Fail, _Stop):  # a remote call that could not be made
        raise
    except NotImplementedError:
        raise _Stop(
            "not implemented yet: your function raises NotImplementedError. Replace the "
            "`raise NotImplementedError  # TODO` line with your code."
        ) from None
    except (KeyboardInterrupt, SystemExit):
        raise
    except StudentError as err:  # raised in the notebook's process
        raise _Fail(f"your function raised {err.ename}: {_short(err.evalue)}") from None
    except BaseException as err:  # student code may raise anything
        raise _Fail(f"your function raised {type(err).__name__}: {_short(str(err))}") from None


def _short(text: str, n: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3] + "..."


def _run_check(name: str, assignment: int, cases: Sequence[Case]) -> CheckResult:
    """Run the cases and award their points."""
    passed: list[str] = []
    failed: list[str] = []
    messages: list[str] = []
    points = 0.0
    for i, (label, pts, body) in enumerate(cases):
        try:
            body()
        except _Stop as err:
            rest = [c[0] for c in cases[i:]]
            failed += rest
            messages.append(f"{err} ({len(rest)} case(s) not run)")
            break
        except _Fail as err:
            failed.append(label)
            messages.append(f"{label}: {err}")
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as err:  # a result the grader could not even inspect
            failed.append(label)
            messages.append(f"{label}: could not check your result ({type(err).__name__}: {_short(str(err))})")
        else:
            passed.append(label)
            points += pts
    max_points = float(sum(c[1] for c in cases))
    return CheckResult(name, round(points, 4), max_points, passed, messages, failed, assignment)


def _torch():
    import torch

    return torch


def _gen(seed: int) -> torch.Generator:
    """A generator for a check's random inputs (seed offset by :data:`INPUT_SEED`)."""
    return _torch().Generator().manual_seed(seed + INPUT_SEED)


def _tensor(x: Any, what: str = "your result") -> torch.Tensor:
    """``x`` as a tensor (NumPy arrays and lists are converted), else a :class:`_Fail`."""
    torch = _torch()
    if isinstance(x, torch.Tensor):
        return x
    if x is None:
        raise _Fail(f"{what} is None: did you forget `return`?")
    try:
        import numpy as np

        return torch.as_tensor(np.asarray(x, dtype=np.float64))
    except (TypeError, ValueError) as err:
        raise _Fail(f"{what} should be a tensor or an array, got {type(x).__name__} ({err})") from None


def _scalar(x: Any, what: str = "your loss") -> float:
    t = _tensor(x, what)
    if t.numel() != 1:
        raise _Fail(
            f"{what} should be a single number (shape ()), got shape {tuple(t.shape)}; "
            "average over the batch to return one value"
        )
    return float(t.detach().reshape(()).double())


def _shape(t: torch.Tensor, shape: tuple[int, ...], what: str = "your result") -> None:
    if tuple(t.shape) != tuple(shape):
        raise _Fail(f"{what} should have shape {tuple(shape)}, got {tuple(t.shape)}")


def _finite(t: torch.Tensor, what: str, hint: str = "") -> None:
    if not bool(_torch().isfinite(t.detach()).all()):
        raise _Fail(f"{what} contains NaN or infinite values{'; ' + hint if hint else ''}")


def _close(got: Any, expected: Any, rtol: float = 1e-4, atol: float = 1e-6) -> bool:
    torch = _torch()
    g = torch.as_tensor(got).detach().double()
    e = torch.as_tensor(expected).detach().double()
    return g.shape == e.shape and bool(torch.isfinite(g).all()) and bool(torch.allclose(g, e, rtol=rtol, atol=atol))


def _fmt(x: Any, n: int = 6) -> str:
    """Compact text of a number or a small tensor."""
    torch = _torch()
    t = torch.as_tensor(x).detach().double()
    if t.numel() == 1:
        return f"{float(t.reshape(())):.6g}"
    flat = [f"{v:.4g}" for v in t.reshape(-1)[:n].tolist()]
    more = ", ..." if t.numel() > n else ""
    return f"[{', '.join(flat)}{more}] (shape {tuple(t.shape)})"


def _diagnose(got: float, candidates: Sequence[tuple[float, str]], rtol: float = 2e-3) -> str:
    """The hint of the first candidate value ``got`` equals (relative tolerance), else ''."""
    for value, hint in candidates:
        if math.isfinite(value) and math.isfinite(got) and abs(got - value) <= rtol * max(abs(value), 1e-12):
            return hint
    return ""


def _mismatch(what: str, expected: Any, got: Any, hint: str = "") -> _Fail:
    return _Fail(f"{what}: expected {_fmt(expected)}, got {_fmt(got)}" + (f". {hint}" if hint else ""))


@contextlib.contextmanager
def _isolated_rng(seed: int):
    """Seed torch's global RNG for model init without disturbing the notebook's RNG state."""
    torch = _torch()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield

