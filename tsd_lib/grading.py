"""Course assignments: check functions with feedback, and a grader that runs submissions in isolation.

Two halves:

* **Checks** (called by students in the assignment notebooks under ``assignments/``):
  ``check_kd_loss(my_kd_loss)`` and friends test a student's function against tsd_lib's own
  implementation on random inputs and edge cases, explain every failure in plain words (which
  case, expected vs got, the likely mistake), print a summary and return a :class:`CheckResult`.
  A check never raises because of a wrong student function. Each result is also appended to
  :data:`LEDGER` and, when the environment variable ``TSD_GRADE_LEDGER`` names a file, written
  to it as one JSON line: that is how the grader collects points.
* **Grader** (``tsd grade``, :func:`grade`): executes a notebook (or every notebook in a folder)
  with papermill in a *separate process* (``python -m tsd_lib.grading run ...``) under a
  wall-clock timeout (the whole process tree is killed) and an address-space limit
  (``RLIMIT_AS``), reads the ledger and writes a score report per notebook (JSON) plus a CSV for
  a folder. Statuses: ``ok``, ``crashed`` (a cell raised; checks that ran before still count),
  ``timeout``, ``memory``, ``invalid`` (not a notebook, or the assignment is unknown).

The grader runs student code with the grader's permissions and the ledger is written from the
student's own process, so a determined student can forge it: grade untrusted submissions in a
sandbox (container or separate user) and treat the score as feedback, not proof.

The module imports only the standard library at import time (the grader's worker process must
start fast); torch and the rest of tsd_lib are imported by the checks that need them.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch

    from tsd_lib.data import Dataset

__all__ = [
    "ASSIGNMENTS",
    "LEDGER",
    "LEDGER_ENV",
    "POINTS",
    "STATUSES",
    "CheckResult",
    "GradeReport",
    "assignment_dataset",
    "check_ablation",
    "check_apply_windows",
    "check_distribution_shift",
    "check_kd_loss",
    "check_planted_saliency",
    "check_soft_target_entropy",
    "check_synthetic_validation",
    "check_temperature_softmax",
    "check_trained_student",
    "check_tsd_loss",
    "check_window_saliency",
    "format_report",
    "grade",
    "grade_command",
    "grade_notebook",
    "read_ledger",
    "score_results",
    "show_score",
]

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

#: Environment variable naming the JSON-lines file every check appends its result to.
LEDGER_ENV = "TSD_GRADE_LEDGER"

#: Report statuses of :func:`grade_notebook`.
STATUSES = ("ok", "crashed", "timeout", "memory", "invalid")

DEFAULT_TIMEOUT_S = 300.0
DEFAULT_MEMORY_MB = 4096


# ============================================================================ results and ledger


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


#: Every check result of this Python session, in call order.
LEDGER: list[CheckResult] = []


def _num(x: float) -> str:
    return f"{x:g}"


def _record(result: CheckResult) -> None:
    """Append ``result`` to :data:`LEDGER` and, if ``$TSD_GRADE_LEDGER`` is set, to that file."""
    LEDGER.append(result)
    path = os.environ.get(LEDGER_ENV)
    if not path:
        return
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({**result.to_dict(), "time": time.time()}) + "\n")
    except OSError as err:  # feedback still works without the ledger
        print(f"(could not write the grading ledger {path}: {err})", file=sys.stderr)


def read_ledger(path: str | os.PathLike) -> list[CheckResult]:
    """Check results from a ledger file (malformed lines are skipped; a missing file gives [])."""
    out: list[CheckResult] = []
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return out
    for line in text.splitlines():
        try:
            out.append(CheckResult.from_dict(json.loads(line)))
        except (ValueError, KeyError, TypeError):
            continue
    return out


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


# ============================================================================ check machinery


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
    except NotImplementedError:
        raise _Stop(
            "not implemented yet: your function raises NotImplementedError. Replace the "
            "`raise NotImplementedError  # TODO` line with your code."
        ) from None
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as err:  # student code may raise anything
        raise _Fail(f"your function raised {type(err).__name__}: {_short(str(err))}") from None


def _short(text: str, n: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3] + "..."


def _run_check(name: str, assignment: int, cases: Sequence[Case], verbose: bool) -> CheckResult:
    """Run the cases, award their points, record and (optionally) print the result."""
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
    result = CheckResult(name, round(points, 4), max_points, passed, messages, failed, assignment)
    _record(result)
    if verbose:
        print(result.summary())
    return result


def _torch():
    import torch

    return torch


def _gen(seed: int) -> torch.Generator:
    return _torch().Generator().manual_seed(seed)


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


# ============================================================================ assignment data


def assignment_dataset(
    name: str = "synthetic", seed: int = 0, *, length: int = 64, n_train: int = 160, n_test: int = 60
) -> tuple[Dataset, np.ndarray | None]:
    """The data of an assignment variant: ``(dataset, test_mask)``.

    ``"synthetic"`` (or ``"synthetic3"``, ``"synthetic4"``, ... for more classes) is the
    planted-pattern set of :func:`tsd_lib.data.make_synthetic` (pattern length 8, series length
    ``length``, generated from ``seed``); ``test_mask`` marks the planted windows. Any other name
    is a UCR/UEA set loaded offline (:func:`tsd_lib.data.load_dataset`, resampled to ``length``,
    validation split drawn with ``seed``) and ``test_mask`` is None.
    """
    from tsd_lib.data import load_dataset, make_synthetic

    key = name.strip().lower()
    if key.startswith("synthetic"):
        digits = key[len("synthetic") :].strip("-_ ")
        n_classes = int(digits) if digits.isdigit() else 2
        return make_synthetic(n_train=n_train, n_test=n_test, length=length, n_classes=n_classes, window=8,
                              seed=seed, split_seed=seed)
    return load_dataset(name, length=length, split_seed=seed), None


# ============================================================================ assignment 1: KD


def check_temperature_softmax(fn: Callable, *, verbose: bool = True) -> CheckResult:
    """Check ``fn(logits (B, k), tau) -> probabilities (B, k)``, the softmax of ``logits / tau`` (2 points)."""
    torch = _torch()
    g = _gen(101)

    def ref(z: torch.Tensor, tau: float) -> torch.Tensor:
        return torch.softmax(z.double() / tau, dim=-1)

    def random_batch() -> None:
        z = torch.randn(6, 5, generator=g) * 3
        got = _tensor(_student(fn, z.clone(), 2.0))
        _shape(got, (6, 5))
        if not _close(got, ref(z, 2.0), rtol=1e-4, atol=1e-6):
            hint = "at tau = 2 the probabilities of each row are softmax(z / 2)"
            if _close(got, ref(z, 1.0), rtol=1e-4, atol=1e-6):
                hint = "your result ignores tau: divide the logits by tau before the softmax"
            elif _close(got, torch.softmax(z.double() * 2.0, dim=-1), rtol=1e-4, atol=1e-6):
                hint = "you multiplied the logits by tau; divide them by tau"
            elif _close(got, torch.softmax(z.double() / 2.0, dim=0), rtol=1e-4, atol=1e-6):
                hint = "you normalised over the batch (dim 0); normalise over the classes (dim -1)"
            raise _mismatch("random batch, tau = 2", ref(z, 2.0)[0], got[0], hint)

    def temperature_direction() -> None:
        z = torch.tensor([[2.0, 0.5, -1.0]])
        cold = _tensor(_student(fn, z.clone(), 1.0))
        if not _close(cold, ref(z, 1.0)):
            raise _mismatch("tau = 1 must be the ordinary softmax", ref(z, 1.0), cold)
        hot = _tensor(_student(fn, z.clone(), 1000.0))
        if not _close(hot, torch.full((1, 3), 1 / 3, dtype=torch.float64), atol=2e-3):
            hint = "a high temperature must flatten the distribution towards uniform"
            if float(hot.max()) > float(cold.max()):
                hint += " (yours got sharper: divide the logits by tau, do not multiply)"
            raise _mismatch("tau = 1000", torch.full((3,), 1 / 3), hot, hint)

    def extreme_logits() -> None:
        z = torch.tensor([[1000.0, 0.0, -1000.0], [-800.0, 800.0, 0.0]])
        got = _tensor(_student(fn, z.clone(), 1.0))
        _finite(got, "logits of size 1000",
                "exp() overflows. Subtract each row's maximum before exp (softmax is unchanged by a shift) "
                "or use torch.softmax")
        if not _close(got, ref(z, 1.0), atol=1e-6):
            raise _mismatch("logits of size 1000", ref(z, 1.0), got)

    def batch_of_one() -> None:
        z = torch.randn(1, 4, generator=g)
        keep = z.clone()
        got = _tensor(_student(fn, z, 3.0))
        _shape(got, (1, 4))
        if not torch.equal(z, keep):
            raise _Fail("your function changed its input in place; work on a copy (e.g. z = logits / tau)")
        if not _close(got, ref(keep, 3.0)):
            raise _mismatch("a batch of one series, tau = 3", ref(keep, 3.0), got)

    cases: list[Case] = [
        ("random batch matches softmax(z / tau)", 0.5, random_batch),
        ("tau = 1 is the ordinary softmax, a large tau flattens", 0.5, temperature_direction),
        ("extreme logits give finite probabilities", 0.5, extreme_logits),
        ("batch of one, input left unchanged", 0.5, batch_of_one),
    ]
    return _run_check("check_temperature_softmax", 1, cases, verbose)


def check_kd_loss(fn: Callable, *, verbose: bool = True) -> CheckResult:
    """Check ``fn(logits_s, logits_t, tau) -> scalar``, Hinton's ``tau^2 KL(p_T || p_S)`` (8 points).

    Reference: :func:`tsd_lib.losses.logit.kd_loss` (KL summed over classes, mean over the batch).
    """
    torch = _torch()
    from tsd_lib.losses.logit import kd_loss

    g = _gen(202)

    def ref(zs: torch.Tensor, zt: torch.Tensor, tau: float) -> float:
        return float(kd_loss(zs.double(), zt.double(), tau=tau))

    def call(zs: torch.Tensor, zt: torch.Tensor, tau: float) -> float:
        return _scalar(_student(fn, zs.clone(), zt.clone(), tau))

    def pair(B: int, k: int, scale: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.randn(B, k, generator=g) * scale, torch.randn(B, k, generator=g) * scale

    def common_mistakes(zs: torch.Tensor, zt: torch.Tensor, tau: float) -> list[tuple[float, str]]:
        e = ref(zs, zt, tau)
        B, k = zs.shape
        return [
            (ref(zt, zs, tau), "your value is KL(p_S || p_T): the KL is in the wrong direction, the teacher's "
                               "distribution must come first, KL(p_T || p_S) = sum_c p_T,c (log p_T,c - log p_S,c)"),
            (e * B, "your value is the sum over the batch; take the mean over the batch (reduction='batchmean')"),
            (e / k, "your value is averaged over batch AND classes, which is what F.kl_div(..., reduction='mean') "
                    "does; sum over classes and average over the batch (reduction='batchmean')"),
            (-e, "your value has the wrong sign"),
            (e / tau**2, "you forgot the tau^2 factor"),
        ]

    def scalar() -> None:
        zs, zt = pair(4, 3)
        out = _tensor(_student(fn, zs.clone(), zt.clone(), 2.0), "your loss")
        if out.numel() != 1:
            raise _Fail(f"the loss must be one number (the batch mean), got shape {tuple(out.shape)}")

    def identical() -> None:
        z = torch.randn(5, 4, generator=g) * 3
        got = call(z, z, 4.0)
        if abs(got) > 1e-5:
            raise _Fail(f"identical student and teacher logits must give 0, got {got:.6g}")

    def matches(B: int, k: int, tau: float, what: str) -> None:
        zs, zt = pair(B, k)
        got, e = call(zs, zt, tau), ref(zs, zt, tau)
        if abs(got - e) > 1e-4 * max(1.0, abs(e)):
            raise _mismatch(what, e, got, _diagnose(got, common_mistakes(zs, zt, tau)))

    def tau_scaling() -> None:
        zs, zt = pair(5, 5, 3.0)
        for tau in (2.0, 4.0, 8.0):
            got, e = call(zs, zt, tau), ref(zs, zt, tau)
            if abs(got - e) <= 1e-4 * max(1.0, abs(e)):
                continue
            hint = _diagnose(got, [
                (e / tau**2, f"your value is the reference divided by tau^2 = {tau**2:g}: you forgot the tau^2 factor"),
                (e / tau, "your value is the reference divided by tau: multiply the KL by tau^2, not by tau"),
                (e * tau**2, "your value is tau^2 times too large: apply the tau^2 factor once"),
                (ref(zs, zt, 1.0) * tau**2, "you did not divide the logits by tau before the (log-)softmax"),
                (ref(zs, zt, 1.0), "your loss ignores tau: divide the logits by tau and multiply the KL by tau^2"),
                (ref(zt, zs, tau), "the KL is in the wrong direction: KL(p_T || p_S), teacher first"),
            ])
            raise _mismatch(f"tau = {tau:g}", e, got, hint)

    def extreme() -> None:
        zt = torch.tensor([[500.0, 0.0, -500.0], [0.0, 400.0, -400.0]])
        zs = torch.tensor([[-200.0, 100.0, 0.0], [300.0, -300.0, 0.0]])
        got, e = call(zs, zt, 1.0), ref(zs, zt, 1.0)
        if not math.isfinite(got):
            raise _Fail(
                f"logits of size 500 give {got}: probabilities underflow to 0 and 0 * log 0 is NaN. Compute "
                "log-probabilities with F.log_softmax instead of log(softmax(...))"
            )
        if abs(got - e) > 1e-4 * max(1.0, abs(e)):
            raise _mismatch("logits of size 500", e, got)

    def gradient() -> None:
        zs0, zt = pair(4, 3)
        zs = zs0.clone().double().requires_grad_(True)
        out = _student(fn, zs, zt.double(), 1.0)
        out_t = _tensor(out, "your loss")
        if not out_t.requires_grad:
            raise _Fail("no gradient reaches the student's logits: did you use .detach(), .item(), .numpy() or "
                        "torch.no_grad() on the student side?")
        try:
            (grad,) = torch.autograd.grad(out_t.sum(), zs)
        except RuntimeError as err:
            raise _Fail(f"backpropagation through your loss failed: {_short(str(err))}") from None
        zr = zs0.clone().double().requires_grad_(True)
        (expected,) = torch.autograd.grad(kd_loss(zr, zt.double(), tau=1.0), zr)
        if not _close(grad, expected, rtol=1e-4, atol=1e-8):
            raise _mismatch("gradient with respect to the student's logits", expected, grad)

    cases: list[Case] = [
        ("returns a single number", 1.0, scalar),
        ("identical logits give 0", 1.0, identical),
        ("random batch, tau = 1", 1.0, lambda: matches(8, 3, 1.0, "random batch of 8 series, 3 classes, tau = 1")),
        ("tau^2 scaling (tau = 2, 4, 8)", 1.0, tau_scaling),
        ("many classes (k = 10)", 1.0, lambda: matches(4, 10, 1.0, "4 series, 10 classes, tau = 1")),
        ("batch of one", 1.0, lambda: matches(1, 3, 1.0, "a batch of one series, tau = 1")),
        ("extreme logits stay finite", 1.0, extreme),
        ("gradient reaches the student's logits", 1.0, gradient),
    ]
    return _run_check("check_kd_loss", 1, cases, verbose)


def check_soft_target_entropy(fn: Callable, *, verbose: bool = True) -> CheckResult:
    """Check ``fn(logits (B, k), tau) -> (B,)``, the entropy (nats) of ``softmax(logits / tau)`` (2 points)."""
    torch = _torch()
    import torch.nn.functional as F

    g = _gen(303)

    def ref(z: torch.Tensor, tau: float) -> torch.Tensor:
        log_p = F.log_softmax(z.double() / tau, dim=-1)
        return -(log_p.exp() * log_p).sum(-1)

    def random_batch() -> None:
        z = torch.randn(5, 4, generator=g) * 3
        got = _tensor(_student(fn, z.clone(), 2.0))
        if got.numel() == 1:
            raise _Fail("return one entropy per series (shape (B,)), not a single number")
        _shape(got.reshape(-1), (5,))
        e = ref(z, 2.0)
        if not _close(got.reshape(-1), e, atol=1e-6):
            hint = "use the natural logarithm (nats)" if _close(got.reshape(-1), e / math.log(2)) else ""
            if _close(got.reshape(-1), -e):
                hint = "the entropy is -sum_c p_c log p_c (mind the sign)"
            raise _mismatch("random batch, tau = 2", e, got, hint)

    def grows() -> None:
        z = torch.tensor([[3.0, 1.0, 0.0, -2.0]])
        taus = [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 64.0]
        vals = [float(_tensor(_student(fn, z.clone(), t)).reshape(-1)[0]) for t in taus]
        if any(b < a - 1e-9 for a, b in zip(vals, vals[1:], strict=False)):
            raise _Fail(f"the entropy must grow with tau; yours for tau = {taus}: {[round(v, 4) for v in vals]}")
        if abs(vals[-1] - math.log(4)) > 0.01:
            raise _Fail(f"at tau = 64 the entropy of 4 classes should be close to log 4 = {math.log(4):.4f}, "
                        f"got {vals[-1]:.4f}")

    def extreme() -> None:
        z = torch.tensor([[1000.0, 0.0, -1000.0]])
        got = _tensor(_student(fn, z.clone(), 1.0)).reshape(-1)
        _finite(got, "the entropy for logits of size 1000",
                "0 * log 0 gives NaN; use F.log_softmax for log p, or torch.special.xlogy")
        if abs(float(got[0])) > 1e-6:
            raise _mismatch("a one-hot distribution has entropy 0", 0.0, got[0])

    def shape() -> None:
        z = torch.randn(3, 6, generator=g)
        got = _tensor(_student(fn, z.clone(), 1.0))
        _shape(got, (3,), "your entropies")

    cases: list[Case] = [
        ("random batch matches -sum p log p", 0.5, random_batch),
        ("entropy grows with tau towards log k", 0.5, grows),
        ("extreme logits stay finite", 0.5, extreme),
        ("one entropy per series, shape (B,)", 0.5, shape),
    ]
    return _run_check("check_soft_target_entropy", 1, cases, verbose)


# ============================================================================ assignment 2: saliency


def _first_difference(got: torch.Tensor, expected: torch.Tensor, starts: torch.Tensor, window: int) -> str:
    """Where a perturbed batch first differs from the reference, in words."""
    torch = _torch()
    K = starts.shape[1]
    bad = (~torch.isclose(got.double(), expected.double(), rtol=1e-5, atol=1e-6)).nonzero()
    if len(bad) == 0:
        return "the values differ"
    r, c, j = (int(v) for v in bad[0])
    b, k = divmod(r, K)
    t = int(starts[b, k])
    where = "inside" if t <= j < t + window else "outside"
    return (f"row {r} (series {b}, window start t = {t}, window [{t}, {t + window})), channel {c}, step {j} "
            f"({where} the window): expected {float(expected[r, c, j]):.4g}, got {float(got[r, c, j]):.4g}")


def check_apply_windows(fn: Callable, *, verbose: bool = True) -> CheckResult:
    """Check ``fn(X (B, C, T), starts (B, K), values (B, K, C, L), window) -> (B*K, C, T)`` (3 points).

    Row ``b*K + k`` is ``X[b]`` with ``[:, t:t+L]`` (``t = starts[b, k]``) replaced by
    ``values[b, k]``; reference :func:`tsd_lib.saliency.perturb.apply_windows`.
    """
    torch = _torch()
    from tsd_lib.saliency.perturb import apply_windows

    g = _gen(404)

    def problem(B: int, K: int, C: int, T: int, L: int, edges: bool = False):
        X = torch.randn(B, C, T, generator=g)
        starts = torch.stack([torch.randperm(T - L + 1, generator=g)[:K] for _ in range(B)])
        if edges:
            starts[:, 0], starts[:, -1] = 0, T - L
        values = torch.randn(B, K, C, L, generator=g) + 5.0  # easy to tell apart from X
        return X, starts, values, L

    def compare(X, starts, values, L, what: str) -> None:
        B, C, T = X.shape
        K = starts.shape[1]
        got = _tensor(_student(fn, X.clone(), starts.clone(), values.clone(), L), "your perturbed batch")
        if got.numel() == B * K * C * T and tuple(got.shape) != (B * K, C, T):
            raise _Fail(f"{what}: expected shape (B*K, C, T) = {(B * K, C, T)}, got {tuple(got.shape)}; "
                        "reshape the result to (B*K, C, T)")
        _shape(got, (B * K, C, T), "your perturbed batch")
        expected = apply_windows(X, starts, values, L)
        if _close(got, expected, rtol=1e-6, atol=1e-6):
            return
        k_major = expected.reshape(B, K, C, T).transpose(0, 1).reshape(B * K, C, T)
        if B > 1 and K > 1 and _close(got, k_major, rtol=1e-6, atol=1e-6):
            raise _Fail(f"{what}: the rows are window-major (k*B + b); they must be series-major: row b*K + k "
                        "holds series b with its k-th window replaced")
        raise _Fail(f"{what}: {_first_difference(got, expected, starts, L)}")

    def shape_order() -> None:
        compare(*problem(2, 3, 1, 12, 4), "2 series x 3 windows")

    def random_windows() -> None:
        compare(*problem(3, 4, 1, 20, 5), "3 series x 4 windows of length 5")

    def edges() -> None:
        compare(*problem(2, 3, 1, 16, 4, edges=True), "windows at t = 0 and t = T - L")

    def channels() -> None:
        compare(*problem(2, 2, 3, 15, 3), "3 channels")

    def unchanged() -> None:
        X, starts, values, L = problem(2, 3, 1, 12, 4)
        keep = (X.clone(), starts.clone(), values.clone())
        got = _tensor(_student(fn, X, starts, values, L), "your perturbed batch")
        if not (torch.equal(X, keep[0]) and torch.equal(starts, keep[1]) and torch.equal(values, keep[2])):
            raise _Fail("your function modified its inputs in place; write the windows into a copy of X")
        if not _close(got, apply_windows(*keep, L), rtol=1e-6, atol=1e-6):
            raise _Fail("the inputs are intact but the result is wrong (see the other cases)")

    cases: list[Case] = [
        ("shape (B*K, C, T), series-major rows", 0.5, shape_order),
        ("window replaced, rest of the series kept", 1.0, random_windows),
        ("windows at both ends of the series", 0.5, edges),
        ("several channels", 0.5, channels),
        ("inputs left unchanged", 0.5, unchanged),
    ]
    return _run_check("check_apply_windows", 2, cases, verbose)


def _reference_saliency_map(
    model: torch.nn.Module,
    X: torch.Tensor,
    X_donor: torch.Tensor,
    window: int,
    tau: float,
    *,
    reverse: bool = False,
    cover: str = "mean",
) -> np.ndarray:
    """Occlusion map with one donor per series, built from tsd_lib's own pieces.

    Every start ``t = 0..T-L``: window ``[t, t+L)`` of ``X[i]`` replaced by the same window of
    ``X_donor[i]`` (:func:`apply_windows`), scored ``tau^2 KL(p || q_t)`` (:func:`kl_terms`),
    spread over the covered steps (:func:`windows_to_map`, mean). ``reverse`` and ``cover``
    ("sum", "start") give the maps of common mistakes, for feedback.
    """
    import numpy as np
    import torch

    from tsd_lib.saliency.maps import windows_to_map
    from tsd_lib.saliency.perturb import apply_windows, gather_windows, kl_terms

    X = torch.as_tensor(X)
    D = torch.as_tensor(X_donor, dtype=X.dtype)
    n, _, T = X.shape
    starts_np = np.arange(T - window + 1)
    starts = torch.as_tensor(starts_np).expand(n, -1).contiguous()
    donors = torch.arange(n)[:, None].expand_as(starts)
    copies = apply_windows(X, starts, gather_windows(D, donors, starts, window), window)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        z, zp = model(X).double(), model(copies).double()
    model.train(was_training)
    K = len(starts_np)
    if reverse:  # KL(q_t || p): the perturbed distribution first
        scores = kl_terms(zp, z.repeat_interleave(K, 0), tau).sum(-1).reshape(n, K)
    else:
        scores = kl_terms(z, zp, tau).sum(-1)
    scores_np = scores.numpy()
    if cover == "start":
        out = np.zeros((n, T))
        out[:, :K] = scores_np
        return out
    cover_matrix = np.zeros((K, T))
    for t in starts_np:
        cover_matrix[t, t : t + window] = 1.0
    if cover == "sum":
        return scores_np @ cover_matrix
    return windows_to_map(scores_np, starts_np, T, window)


def _random_model(n_channels: int, length: int, n_classes: int, seed: int) -> torch.nn.Module:
    """A small fixed conv net whose prediction depends on every time step (for saliency checks)."""
    from torch import nn

    with _isolated_rng(seed):
        model = nn.Sequential(
            nn.Conv1d(n_channels, 4, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(4 * length, n_classes)
        )
        with _torch().no_grad():
            model[-1].weight.mul_(3.0)
    return model.eval()


def _map_of(fn: Callable, model: Any, X: torch.Tensor, D: torch.Tensor, window: int, tau: float) -> torch.Tensor:
    got = _student(fn, model, X.clone(), D.clone(), window, tau)
    return _tensor(got, "your saliency map").detach().double()


def check_window_saliency(fn: Callable, *, verbose: bool = True) -> CheckResult:
    """Check ``fn(model, X (n, C, T), X_donor (n, C, T), window, tau) -> map (n, T)`` (4 points).

    For every start ``t`` the window ``[t, t+L)`` of ``X[i]`` is replaced by the same window of
    ``X_donor[i]``; its score is ``tau^2 KL(softmax(z(x)/tau) || softmax(z(x~)/tau))`` and each
    step gets the mean score of the windows covering it.
    """
    torch = _torch()
    g = _gen(505)

    def problem(n: int, C: int, T: int, k: int = 3, seed: int = 0):
        return _random_model(C, T, k, seed), torch.randn(n, C, T, generator=g), torch.randn(n, C, T, generator=g)

    def compare(model, X, D, L: int, tau: float, what: str, diagnose: bool = False) -> None:
        got = _map_of(fn, model, X, D, L, tau)
        n, _, T = X.shape
        _shape(got, (n, T), "your saliency map")
        expected = torch.as_tensor(_reference_saliency_map(model, X, D, L, tau))
        atol = 1e-4 * float(expected.abs().max()) + 1e-7
        if _close(got, expected, rtol=1e-3, atol=atol):
            return
        hint = ""
        if diagnose:
            mistakes = [
                (expected / tau**2, "your map is tau^2 times too small: the score is tau^2 * KL"),
                (torch.as_tensor(_reference_saliency_map(model, X, D, L, tau, reverse=True)),
                 "your scores are KL(q_t || p): the clean distribution p comes first, KL(p || q_t)"),
                (torch.as_tensor(_reference_saliency_map(model, X, D, L, tau, cover="sum")),
                 "each step must get the MEAN score of the windows covering it, not their sum"),
                (torch.as_tensor(_reference_saliency_map(model, X, D, L, tau, cover="start")),
                 "a window's score must be spread over all L steps it covers (mean of the covering windows), "
                 "not only written at its start"),
            ]
            for cand, text in mistakes:
                if _close(got, cand, rtol=1e-3, atol=atol):
                    hint = text
                    break
        worst = int((got - expected).abs().reshape(-1).argmax())
        i, j = divmod(worst, T)
        raise _Fail(f"{what}: at series {i}, step {j} expected {float(expected[i, j]):.5g}, "
                    f"got {float(got[i, j]):.5g}" + (f". {hint}" if hint else ""))

    def shape_finite() -> None:
        model, X, D = problem(2, 1, 16)
        got = _map_of(fn, model, X, D, 4, 8.0)
        _shape(got, (2, 16), "your saliency map")
        _finite(got, "your saliency map")

    def matches() -> None:
        model, X, D = problem(3, 1, 24, seed=1)
        compare(model, X, D, 5, 8.0, "3 series of length 24, window 5, tau = 8", diagnose=True)

    def small_tau_window() -> None:
        model, X, D = problem(2, 1, 12, seed=2)
        compare(model, X, D, 1, 1.0, "window 1, tau = 1")

    def same_donor() -> None:
        model, X, _ = problem(2, 1, 16, seed=3)
        got = _map_of(fn, model, X, X.clone(), 4, 8.0)
        if got.abs().max() > 1e-6:
            raise _Fail(f"when the donor equals the series nothing changes, so the map must be 0; the largest "
                        f"value of yours is {float(got.abs().max()):.4g}")

    def one_series_two_channels() -> None:
        model, X, D = problem(1, 2, 14, seed=4)
        compare(model, X, D, 3, 4.0, "one series with 2 channels, window 3, tau = 4")

    def unchanged() -> None:
        model, X, D = problem(2, 1, 12, seed=5)
        keep_x, keep_d = X.clone(), D.clone()
        got = _tensor(_student(fn, model, X, D, 4, 8.0), "your saliency map")
        if not (torch.equal(X, keep_x) and torch.equal(D, keep_d)):
            raise _Fail("your function modified X or the donors in place; perturb copies")
        expected = torch.as_tensor(_reference_saliency_map(model, keep_x, keep_d, 4, 8.0))
        if not _close(got, expected, rtol=1e-3, atol=1e-4 * float(expected.abs().max()) + 1e-7):
            raise _Fail("the inputs are intact but the map is wrong (see the other cases)")

    cases: list[Case] = [
        ("map of shape (n, T), finite", 0.5, shape_finite),
        ("matches the reference map", 1.5, matches),
        ("window 1 and tau = 1", 0.5, small_tau_window),
        ("donor equal to the series gives a zero map", 0.5, same_donor),
        ("one series, two channels", 0.5, one_series_two_channels),
        ("inputs left unchanged", 0.5, unchanged),
    ]
    return _run_check("check_window_saliency", 2, cases, verbose)


def _planted_detector(n_classes: int, window: int, scale: float = 1.0) -> torch.nn.Module:
    """The oracle classifier of the planted-pattern set: one matched filter per class.

    ``logits_c = scale * max_t <x[t:t+L], pattern_c> / |pattern_c|``: it looks only for the
    planted patterns, so a correct saliency map of it must peak on the planted window.
    """
    import numpy as np
    import torch
    from torch import nn

    t = np.linspace(0.0, 1.0, window)
    shapes = np.stack([np.sin((c + 1) * np.pi * t) for c in range(n_classes)])
    shapes /= np.linalg.norm(shapes, axis=1, keepdims=True)
    conv = nn.Conv1d(1, n_classes, window, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.as_tensor(shapes[:, None, :], dtype=torch.float32))

    class MatchedFilter(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = conv

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return scale * self.conv(x.mean(dim=1, keepdim=True)).amax(dim=-1)

    return MatchedFilter().eval()


def check_planted_saliency(fn: Callable, *, verbose: bool = True) -> CheckResult:
    """Check a saliency function on the planted-pattern set with a known-good detector (3 points).

    ``fn`` has the signature of :func:`check_window_saliency`. The model is a matched filter for
    the planted patterns and the donors are pattern-free noise series (so a replaced window can
    only remove evidence, never plant another class's pattern): the map must peak inside the
    planted window for at least 75% of the series and its saliency precision must be at least
    twice chance.
    """
    torch = _torch()
    import numpy as np

    from tsd_lib.data import make_synthetic
    from tsd_lib.metrics import saliency_precision

    L = 8
    data, truth = make_synthetic(n_train=40, n_test=24, length=48, window=L, seed=11, split_seed=11, val_fraction=0.0)
    model = _planted_detector(data.n_classes, L)
    X = torch.as_tensor(data.X_test)
    D = torch.randn(X.shape, generator=_gen(11))  # same noise as the set, no pattern
    state: dict[str, np.ndarray] = {}

    def get_map() -> np.ndarray:
        if "map" not in state:
            got = _map_of(fn, model, X, D, L, 2.0)
            _shape(got, tuple(truth.shape), "your saliency map")
            state["map"] = got.numpy()
        return state["map"]

    def sane() -> None:
        m = get_map()
        if not np.isfinite(m).all():
            raise _Fail("your map contains NaN or infinite values")
        if m.min() < -1e-6:
            raise _Fail(f"a KL divergence is never negative, but your map has values down to {m.min():.4g}")

    def peaks() -> None:
        m = get_map()
        inside = truth[np.arange(len(m)), m.argmax(axis=1)] > 0
        if inside.mean() < 0.75:
            raise _Fail(f"the map peaks inside the planted window for only {inside.sum()} of {len(m)} series "
                        f"({inside.mean():.0%}; at least 75% needed)")

    def precision() -> None:
        m = get_map()
        prec, chance = saliency_precision(m, truth), float(truth.sum(1).mean() / truth.shape[1])
        if not prec >= 2 * chance:
            raise _Fail(f"saliency precision {prec:.3f}, less than twice the chance level {chance:.3f}")

    cases: list[Case] = [
        ("finite, non-negative map on the planted set", 0.5, sane),
        ("map peaks inside the planted window", 1.5, peaks),
        ("saliency precision at least twice chance", 1.0, precision),
    ]
    return _run_check("check_planted_saliency", 2, cases, verbose)


def check_synthetic_validation(maps: Any, truth_mask: Any, precision: Any, *, verbose: bool = True) -> CheckResult:
    """Check your validation on the planted set: maps, their precision, above chance (2 points)."""
    import numpy as np

    from tsd_lib.metrics import saliency_precision

    def arrays() -> tuple[np.ndarray, np.ndarray]:
        if maps is None:
            raise _Fail("`maps` is None: compute the saliency maps of the test series")
        try:
            m = np.asarray(maps.detach().cpu() if hasattr(maps, "detach") else maps, dtype=np.float64)
            t = np.asarray(truth_mask, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise _Fail(f"`maps` is not an array of numbers ({err})") from None
        return m, t

    def shaped() -> None:
        m, t = arrays()
        if m.shape != t.shape:
            raise _Fail(f"`maps` should have the shape of the truth masks {t.shape}, got {m.shape}")
        if not np.isfinite(m).all():
            raise _Fail("`maps` contains NaN or infinite values")

    def computed() -> None:
        m, t = arrays()
        if precision is None:
            raise _Fail("`precision` is None: compute saliency_precision(maps, truth)")
        try:
            p = float(precision)
        except (TypeError, ValueError):
            raise _Fail(f"`precision` should be a number, got {type(precision).__name__}") from None
        e = saliency_precision(m, t)
        if not abs(p - e) <= 1e-6:
            raise _mismatch("saliency precision of your maps", e, p)

    def above_chance() -> None:
        m, t = arrays()
        p, chance = saliency_precision(m, t), float(t.sum(1).mean() / t.shape[1])
        if not p > chance:
            raise _Fail(f"precision {p:.3f} is not above the chance level {chance:.3f}: is the model trained, and do "
                        "the donors come from another class?")

    cases: list[Case] = [
        ("maps shaped like the truth masks", 0.5, shaped),
        ("precision computed correctly", 0.5, computed),
        ("precision above chance", 1.0, above_chance),
    ]
    return _run_check("check_synthetic_validation", 2, cases, verbose)


# ============================================================================ assignment 3: TSD


def check_distribution_shift(fn: Callable, *, verbose: bool = True) -> CheckResult:
    """Check ``fn(logits (B, k), logits_perturbed (B*K, k), tau, reduce="none")`` (4 points).

    Reference :func:`tsd_lib.saliency.perturb.distribution_shift`: per-class terms
    ``tau^2 p_c (log p_c - log q_{t,c})`` ``(B, K, k)`` (``reduce="sum"``: ``(B, K)``), divided
    by the mean of the strictly positive entries of the whole tensor plus 1e-8.
    """
    torch = _torch()
    from tsd_lib.saliency.perturb import distribution_shift, kl_terms

    g = _gen(606)

    def logits(B: int, K: int, k: int, scale: float = 2.0):
        return torch.randn(B, k, generator=g) * scale, torch.randn(B * K, k, generator=g) * scale

    def call(z, zp, tau, reduce="none") -> torch.Tensor:
        return _tensor(_student(fn, z.clone(), zp.clone(), tau, reduce=reduce), "your saliency")

    def compare(B: int, K: int, k: int, tau: float, reduce: str, what: str) -> None:
        z, zp = logits(B, K, k)
        got = call(z, zp, tau, reduce)
        shape = (B, K, k) if reduce == "none" else (B, K)
        if got.numel() == math.prod(shape) and tuple(got.shape) != shape:
            raise _Fail(f"{what}: expected shape {shape}, got {tuple(got.shape)}")
        _shape(got, shape, "your saliency")
        e = distribution_shift(z.double(), zp.double(), tau, reduce=reduce)
        if _close(got, e, rtol=1e-4, atol=1e-6):
            return
        raw = kl_terms(z.double(), zp.double(), tau)
        raw = raw.sum(-1) if reduce == "sum" else raw
        hint = ""
        if _close(got, raw, rtol=1e-4, atol=1e-6):
            hint = "not normalised: divide by the mean of the strictly positive entries (+1e-8)"
        elif _close(got, raw / (raw.mean() + 1e-8), rtol=1e-4, atol=1e-6):
            hint = "you divided by the mean of all entries; use the mean of the strictly positive ones"
        elif _close(got, raw / (raw.abs().mean() + 1e-8), rtol=1e-4, atol=1e-6):
            hint = "you divided by the mean absolute value; use the mean of the strictly positive entries"
        elif reduce == "none" and _close(got, raw / raw.clamp(min=0).sum((1, 2), keepdim=True).div(
                (raw > 0).sum((1, 2), keepdim=True)), rtol=1e-4, atol=1e-6):
            hint = "you normalised each series separately; normalise over the whole batch tensor"
        raise _mismatch(what, e, got, hint)

    def main_variant() -> None:
        compare(4, 5, 3, 8.0, "none", "B = 4, K = 5, k = 3, tau = 8, reduce='none'")

    def summed() -> None:
        compare(3, 4, 4, 4.0, "sum", "B = 3, K = 4, k = 4, tau = 4, reduce='sum'")

    def identical() -> None:
        z = torch.randn(3, 3, generator=g)
        got = call(z, z.repeat_interleave(4, 0), 8.0)
        _finite(got, "identical clean and perturbed logits",
                "no entry is positive, so there is nothing to divide by: return the (zero) tensor unchanged "
                "instead of dividing by the mean of an empty set")
        if got.abs().max() > 1e-6:
            raise _Fail(f"identical clean and perturbed logits must give zeros, got up to {float(got.abs().max()):.4g}")

    def extreme() -> None:
        z = torch.tensor([[300.0, 0.0, -300.0], [0.0, 200.0, -200.0]])
        zp = torch.tensor([[0.0, 300.0, -300.0], [300.0, 0.0, 0.0], [0.0, 200.0, -100.0], [50.0, 0.0, 0.0]])
        got = call(z, zp, 1.0)
        _finite(got, "extreme logits", "use F.log_softmax for the log-probabilities, not log(softmax(...))")
        e = distribution_shift(z.double(), zp.double(), 1.0)
        if not _close(got, e, rtol=1e-4, atol=1e-6):
            raise _mismatch("extreme logits (size 300), tau = 1", e, got)

    def gradients() -> None:
        z0, zp0 = logits(2, 3, 3)
        z, zp = z0.clone().double().requires_grad_(True), zp0.clone().double().requires_grad_(True)
        out = _tensor(_student(fn, z, zp, 8.0, reduce="none"), "your saliency")
        if not out.requires_grad:
            raise _Fail("no gradient flows through your saliency (no .detach(), .item(), numpy or no_grad inside)")
        weights = torch.linspace(-1, 1, out.numel(), dtype=torch.float64).reshape(out.shape)
        try:
            gz, gzp = torch.autograd.grad((out * weights).sum(), (z, zp), allow_unused=True)
        except RuntimeError as err:
            raise _Fail(f"backpropagation failed: {_short(str(err))}") from None
        if gz is None or gzp is None:
            raise _Fail("gradients must reach both the clean and the perturbed logits")
        zr, zpr = z0.clone().double().requires_grad_(True), zp0.clone().double().requires_grad_(True)
        er = (distribution_shift(zr, zpr, 8.0) * weights).sum()
        ez, ezp = torch.autograd.grad(er, (zr, zpr))
        if not (_close(gz, ez, rtol=1e-4, atol=1e-8) and _close(gzp, ezp, rtol=1e-4, atol=1e-8)):
            raise _mismatch("gradient with respect to the clean logits", ez, gz)

    def one_series() -> None:
        compare(1, 3, 2, 8.0, "none", "a batch of one series (K = 3, k = 2)")

    cases: list[Case] = [
        ("per-class terms, normalised over the batch", 1.0, main_variant),
        ("reduce='sum' gives one value per window", 0.5, summed),
        ("identical logits give zeros, not NaN", 1.0, identical),
        ("extreme logits stay finite", 0.5, extreme),
        ("gradients flow to both logits", 0.5, gradients),
        ("batch of one series", 0.5, one_series),
    ]
    return _run_check("check_distribution_shift", 3, cases, verbose)


def _mlp(n_channels: int, length: int, n_classes: int, seed: int) -> torch.nn.Module:
    """A tiny float64 MLP classifier (no BatchNorm/Dropout: deterministic in any mode)."""
    from torch import nn

    with _isolated_rng(seed):
        model = nn.Sequential(nn.Flatten(), nn.Linear(n_channels * length, 6), nn.Tanh(), nn.Linear(6, n_classes))
        with _torch().no_grad():
            model[-1].weight.mul_(4.0)
    return model.double()


def check_tsd_loss(fn: Callable, *, verbose: bool = True) -> CheckResult:
    """Check ``fn(student, teacher, X, y, X_pool, y_pool, *, n_windows, window, tau, generator)`` (6 points).

    Reference :func:`tsd_lib.losses.tsd.tsd_loss`: one call of
    :func:`~tsd_lib.saliency.perturb.perturb` with the given generator, the teacher's shift under
    ``no_grad``, the student's shift on the same copies with gradients through both passes,
    ``SmoothL1(s_S, s_T)``. Models and data are float64 here.
    """
    torch = _torch()
    from tsd_lib.losses.tsd import tsd_loss

    g = _gen(707)

    def problem(B: int = 4, k: int = 2, C: int = 1, T: int = 16, seed: int = 0):
        N = 12
        X_pool = torch.randn(N, C, T, generator=g, dtype=torch.float64)
        y_pool = torch.arange(N) % k
        idx = torch.randperm(N, generator=g)[:B]
        teacher = _mlp(C, T, k, seed)
        student = _mlp(C, T, k, seed + 100)
        return student, teacher, X_pool[idx].clone(), y_pool[idx].clone(), X_pool, y_pool

    settings = {"n_windows": 5, "window": 4, "tau": 8.0}

    def call(student, teacher, X, y, X_pool, y_pool, seed: int = 0) -> Any:
        return _student(fn, student, teacher, X.clone(), y.clone(), X_pool, y_pool, **settings,
                        generator=torch.Generator().manual_seed(seed))

    def reference(student, teacher, X, y, X_pool, y_pool, seed: int = 0) -> torch.Tensor:
        return tsd_loss(student, teacher, X, y, X_pool, y_pool, **settings,
                        generator=torch.Generator().manual_seed(seed))

    def scalar_finite() -> None:
        out = _scalar(call(*problem()))
        if not math.isfinite(out):
            raise _Fail(f"the loss is {out}")

    def matches(p, what: str) -> None:
        got = _scalar(call(*p))
        e = float(reference(*p).detach())
        if abs(got - e) > 1e-6 * max(1.0, abs(e)):
            raise _mismatch(what, e, got,
                            "check that you call perturb(...) exactly once with the generator you are given, that "
                            "teacher and student see the same copies, that both saliencies use your "
                            "distribution shift with reduce='none', and SmoothL1 with the mean (student first)")

    def identical() -> None:
        student, teacher, X, y, X_pool, y_pool = problem(seed=3)
        twin = copy.deepcopy(teacher)
        got = _scalar(call(twin, teacher, X, y, X_pool, y_pool))
        if abs(got) > 1e-9:
            raise _Fail(f"a student identical to the teacher must give 0, got {got:.4g}: teacher and student must "
                        "be scored on the same perturbed copies (call perturb once and reuse its copies)")

    def grads_of(model: torch.nn.Module) -> list[torch.Tensor | None]:
        return [None if p.grad is None else p.grad.detach().clone() for p in model.parameters()]

    def student_gradients() -> None:
        p = problem(seed=5)
        student, teacher = p[0], p[1]
        ref_student = copy.deepcopy(student)
        out = _tensor(call(*p), "your loss")
        if not out.requires_grad:
            raise _Fail("no gradient reaches the student: run the student WITHOUT torch.no_grad and do not detach "
                        "its logits")
        student.zero_grad(set_to_none=True)
        out.reshape(()).backward()
        got = grads_of(student)
        reference(ref_student, copy.deepcopy(teacher), *p[2:]).backward()
        expected = grads_of(ref_student)
        for name_p, a, b in zip([n for n, _ in student.named_parameters()], got, expected, strict=True):
            if a is None:
                raise _Fail(f"the student's parameter {name_p} received no gradient")
            if not _close(a, b, rtol=1e-5, atol=1e-9):
                raise _mismatch(f"gradient of the student's {name_p}", b, a,
                                "both student forward passes (clean and perturbed) must carry gradients")

    def teacher_frozen() -> None:
        student, teacher, X, y, X_pool, y_pool = problem(seed=7)
        before = [q.detach().clone() for q in teacher.parameters()]
        out = _tensor(call(student, teacher, X, y, X_pool, y_pool), "your loss")
        if out.requires_grad:
            out.reshape(()).backward()
        if any(q.grad is not None and bool(q.grad.abs().max() > 0) for q in teacher.parameters()):
            raise _Fail("the teacher received gradients: run the teacher under torch.no_grad()")
        if any(not torch.equal(a, q.detach()) for a, q in zip(before, teacher.parameters(), strict=True)):
            raise _Fail("the teacher's weights changed; the TSD loss must only read the teacher")

    cases: list[Case] = [
        ("returns a finite single number", 0.5, scalar_finite),
        ("matches tsd_lib's tsd_loss (same generator)", 1.5,
         lambda: matches(problem(seed=1), "4 series, 2 classes, K = 5, L = 4, tau = 8")),
        ("student identical to the teacher gives 0", 1.0, identical),
        ("gradients reach the student through both passes", 1.5, student_gradients),
        ("teacher gets no gradient and is not changed", 1.0, teacher_frozen),
        ("batch of one series, three classes", 0.5,
         lambda: matches(problem(B=1, k=3, seed=9), "one series, 3 classes")),
    ]
    return _run_check("check_tsd_loss", 3, cases, verbose)


def _history_rows(history: Any) -> list[dict[str, Any]]:
    rows = getattr(history, "epochs", None)
    if rows is None and isinstance(history, Mapping):
        rows = history.get("epochs")
    if not isinstance(rows, list) or not rows:
        raise _Fail("`history` should be the History returned by tsd_lib.train.fit (with at least one epoch)")
    return rows


def check_trained_student(student: Any, data: Any, history: Any, *, verbose: bool = True) -> CheckResult:
    """Check a student trained with your TSD term: finite log, a ``tsd`` term, better than chance (3 points)."""
    import numpy as np

    def finite_log() -> None:
        rows = _history_rows(history)
        losses = [float(r.get("train_loss", math.nan)) for r in rows]
        if not all(math.isfinite(v) for v in losses):
            raise _Fail(f"the training loss is not finite in every epoch: {losses[:5]}")

    def tsd_logged() -> None:
        rows = _history_rows(history)
        vals = [r.get("train_tsd") for r in rows]
        if any(v is None for v in vals):
            raise _Fail("the training log has no `tsd` term: return it from your objective, e.g. "
                        "`return loss, {'ce': ce.item(), 'kd': kd.item(), 'tsd': tsd.item()}`")
        if not all(math.isfinite(float(v)) for v in vals) or max(float(v) for v in vals) <= 0:
            shown = [round(float(v), 4) for v in vals][:5]
            raise _Fail(f"the logged TSD term should be finite and positive, got {shown}")

    def beats_chance() -> None:
        from tsd_lib.train import predict_logits

        if not hasattr(student, "parameters") or data is None:
            raise _Fail("pass the trained student (a torch model) and the dataset")
        device = next(iter(student.parameters())).device
        logits = _student(predict_logits, student, data.X_test, device=str(device))
        y = np.asarray(data.y_test)
        acc = float((np.asarray(logits).argmax(1) == y).mean())
        chance = float(np.bincount(y).max() / len(y))
        if not acc > chance:
            raise _Fail(f"test accuracy {acc:.3f} is not above the majority-class rate {chance:.3f}: train longer or "
                        "check the loss weights")

    cases: list[Case] = [
        ("training loss finite in every epoch", 1.0, finite_log),
        ("the TSD term is in the training log", 1.0, tsd_logged),
        ("student beats chance on the test split", 1.0, beats_chance),
    ]
    return _run_check("check_trained_student", 3, cases, verbose)


def check_ablation(table: Any, conclusion: Any = None, *, verbose: bool = True) -> CheckResult:
    """Check an ablation table (rows: settings; an ``accuracy`` column) and its conclusion (2 points)."""
    import numpy as np
    import pandas as pd

    def frame() -> pd.DataFrame:
        if table is None:
            raise _Fail("`ablation` is None")
        try:
            df = table if isinstance(table, pd.DataFrame) else pd.DataFrame(table)
        except (TypeError, ValueError) as err:
            raise _Fail(f"`ablation` cannot be read as a table ({err})") from None
        return df.reset_index()

    def two_settings() -> None:
        df = frame()
        if len(df) < 2:
            raise _Fail(f"the table has {len(df)} row(s); compare at least two settings (one row each)")
        if len(df.astype(str).drop_duplicates()) < 2:
            raise _Fail("all rows are identical: one column must name the setting that differs between rows")

    def metrics() -> None:
        df = frame()
        acc = [c for c in df.columns if "acc" in str(c).lower()]
        if not acc:
            raise _Fail(f"add an `accuracy` column (columns now: {list(map(str, df.columns))})")
        try:
            vals = df[acc[0]].to_numpy(dtype=np.float64)
        except (TypeError, ValueError):
            raise _Fail(f"column {acc[0]!r} should hold numbers") from None
        if not (np.isfinite(vals).all() and ((vals >= 0) & (vals <= 1)).all()):
            raise _Fail(f"accuracies should be finite and in [0, 1], got {vals.tolist()}")

    def concluded() -> None:
        text = conclusion if isinstance(conclusion, str) else ""
        if len(text.split()) < 8 or "TODO" in text:
            raise _Fail("write a conclusion of a few sentences in `conclusion` (what changed, and is it more than "
                        "seed noise?)")

    cases: list[Case] = [
        ("at least two settings compared", 1.0, two_settings),
        ("accuracy column with valid numbers", 0.5, metrics),
        ("a written conclusion", 0.5, concluded),
    ]
    return _run_check("check_ablation", 3, cases, verbose)


# ============================================================================ grader


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _read_submission(path: Path) -> tuple[Any, str | None]:
    """``(notebook, None)`` or ``(None, why it is not a valid notebook)``."""
    import nbformat

    try:
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


def _memory_preexec(memory_mb: int | None) -> Callable[[], None] | None:
    """A ``preexec_fn`` that limits the address space, file size and core dumps of the child tree."""
    if os.name != "posix":
        return None
    import resource

    fsize = 1024 * 1024 * 1024  # 1 GiB per written file: enough for an executed notebook with figures
    wanted = [(resource.RLIMIT_CORE, 0), (resource.RLIMIT_FSIZE, fsize)]
    if memory_mb:
        wanted.insert(0, (resource.RLIMIT_AS, int(memory_mb) * 1024 * 1024))

    def limit() -> None:
        for which, value in wanted:
            _, hard = resource.getrlimit(which)
            value = value if hard == resource.RLIM_INFINITY else min(value, hard)
            with contextlib.suppress(ValueError, OSError):  # e.g. RLIMIT_AS is not enforceable on macOS
                resource.setrlimit(which, (value, value))

    return limit


def _wait_dead(pids: list[int], timeout: float = 10.0) -> None:
    """Wait until every pid is gone or a zombie: a killed process with a large address space
    (torch imported) takes a moment to tear down."""
    try:
        import psutil
    except ImportError:
        return
    deadline = time.monotonic() + timeout
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                    break
            except psutil.Error:  # gone
                break
            time.sleep(0.02)


def _kill_tree(proc: subprocess.Popen) -> None:
    """Kill ``proc`` and every process it started (the kernel runs in its own session), and wait
    until they are gone."""
    victims: list[int] = []
    try:
        import psutil

        victims = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    except Exception:  # psutil missing or the process already gone
        pass
    if os.name == "posix":
        groups = {proc.pid}
        for pid in victims:
            with contextlib.suppress(OSError):
                groups.add(os.getpgid(pid))
        for pgid in groups:
            with contextlib.suppress(OSError):
                os.killpg(pgid, signal.SIGKILL)
    for pid in victims:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)
    _wait_dead(victims)


def _safe_name(path: Path, root: Path | None) -> str:
    rel = path.relative_to(root) if root is not None and path.is_relative_to(root) else Path(path.name)
    stem = str(rel.with_suffix("")) if rel.suffix == ".ipynb" else str(rel)
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in stem.replace(os.sep, "__"))


def grade_notebook(
    path: str | os.PathLike,
    *,
    assignment: int | None = None,
    parameters: Mapping[str, Any] | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    memory_mb: int | None = DEFAULT_MEMORY_MB,
    out_dir: str | os.PathLike | None = None,
    name: str | None = None,
) -> GradeReport:
    """Execute one submission in a separate, limited process and score its checks.

    The worker (``python -m tsd_lib.grading run``) runs papermill with ``parameters`` in a
    scratch working directory, with ``TSD_GRADE_LEDGER`` pointing at a fresh ledger file,
    ``RLIMIT_AS = memory_mb`` (inherited by the kernel) and a wall-clock ``timeout`` after which
    the whole process tree is killed. Never raises for a bad submission: the report's status says
    what happened. With ``out_dir`` the executed notebook is kept there.
    """
    path = Path(path)
    params = dict(parameters or {})
    report = GradeReport(notebook=str(path), status="invalid", parameters=params)
    nb, problem = _read_submission(path)
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

    scratch = Path(tempfile.mkdtemp(prefix="tsd-grade-"))
    try:
        work = scratch / "work"
        work.mkdir()
        ledger, status_file, log = scratch / "ledger.jsonl", scratch / "status.json", scratch / "worker.log"
        executed = scratch / "executed.ipynb"
        ledger.touch()
        env = dict(os.environ)
        env.update({LEDGER_ENV: str(ledger), "TSD_PROGRESS": "0", "MPLBACKEND": "Agg",
                    "TSD_RUNS": str(scratch / "runs"), "PYTHONUNBUFFERED": "1"})
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(var, "1")
        cmd = [sys.executable, "-m", "tsd_lib.grading", "run", str(path.resolve()), str(executed),
               "--parameters", json.dumps(params, default=str), "--cwd", str(work), "--status", str(status_file)]
        start = time.perf_counter()
        timed_out = False
        with open(log, "wb") as log_fh:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log_fh, stderr=subprocess.STDOUT, env=env, cwd=str(scratch),
                start_new_session=True, preexec_fn=_memory_preexec(memory_mb),
            )
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill_tree(proc)
            except BaseException:  # e.g. Ctrl-C: leave no kernel behind
                _kill_tree(proc)
                raise
        report.seconds = round(time.perf_counter() - start, 2)

        results = read_ledger(ledger)
        report.score, report.max_score, report.checks = score_results(results, number)
        status: dict[str, Any] = {}
        if status_file.exists():
            with contextlib.suppress(ValueError, OSError):
                status = json.loads(status_file.read_text())
        if timed_out:
            report.status = "timeout"
            report.error = f"the notebook did not finish within {timeout:g} s and was stopped"
        elif status.get("status") in STATUSES:
            report.status = status["status"]
            report.error = status.get("error")
            report.failing_cell = status.get("cell")
        else:
            tail = log.read_text(errors="replace")[-800:] if log.exists() else ""
            report.status = "memory" if "MemoryError" in tail else "crashed"
            report.error = f"the grading worker stopped unexpectedly (exit code {proc.returncode}): {_short(tail)}"
        if report.status == "crashed" and not report.error:
            report.error = "the notebook stopped with an error"
        if out_dir is not None and executed.exists():
            out = Path(out_dir)
            out.mkdir(parents=True, exist_ok=True)
            target = out / f"{name or _safe_name(path, None)}.executed.ipynb"
            shutil.copyfile(executed, target)
            report.executed_notebook = str(target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return report


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
    out_dir: str | os.PathLike = "grades",
    echo: bool = True,
) -> list[GradeReport]:
    """Grade a notebook or every ``*.ipynb`` under a folder; write JSON reports (and a CSV for a folder).

    Writes ``OUT/NAME.grade.json`` and ``OUT/NAME.executed.ipynb`` per notebook and, for a folder,
    ``OUT/summary.csv`` (one row per notebook) and ``OUT/summary.json``. With ``echo`` each report
    is printed as a table. Raises ``FileNotFoundError`` only when ``path`` does not exist.
    """
    path, out = Path(path), Path(out_dir)
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {path}")
    folder = path.is_dir()
    notebooks = _submissions(path, out) if folder else [path]
    out.mkdir(parents=True, exist_ok=True)
    reports = []
    for nb_path in notebooks:
        name = _safe_name(nb_path, path if folder else None)
        report = grade_notebook(nb_path, assignment=assignment, parameters=parameters, timeout=timeout,
                                memory_mb=memory_mb, out_dir=out, name=name)
        (out / f"{name}.grade.json").write_text(json.dumps(report.to_dict(), indent=2, default=str))
        reports.append(report)
        if echo:
            print(format_report(report))
            print()
    if folder:
        _write_summary(reports, out)
        if echo:
            print(f"{len(reports)} notebook(s) graded; summary in {out / 'summary.csv'}")
    return reports


def _write_summary(reports: list[GradeReport], out: Path) -> None:
    checks = sorted({c["name"] for r in reports for c in r.checks})
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
    out: str = "grades",
) -> int:
    """What ``tsd grade`` runs; returns 0 when grading itself worked (whatever the submissions did)."""
    params = {name: _parse_value(value) for name, value in (parameters or [])}
    reports = grade(path, assignment=assignment, parameters=params, timeout=timeout, memory_mb=memory_mb,
                    out_dir=out)
    if not reports:
        print(f"no notebooks found under {path}")
    return 0


# ============================================================================ worker process


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


def _worker(argv: Sequence[str]) -> int:
    """Execute one notebook with papermill and write a status JSON (runs inside the limits)."""
    parser = argparse.ArgumentParser(prog="python -m tsd_lib.grading run")
    parser.add_argument("notebook")
    parser.add_argument("output")
    parser.add_argument("--parameters", default="{}")
    parser.add_argument("--cwd", default=None)
    parser.add_argument("--status", required=True)
    parser.add_argument("--kernel", default="python3")
    args = parser.parse_args(argv)
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


def _main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["run"]:
        return _worker(argv[1:])
    print("usage: python -m tsd_lib.grading run NOTEBOOK OUTPUT --status FILE [--parameters JSON] [--cwd DIR]\n"
          "(the grader's worker; instructors use `tsd grade`)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(_main())
