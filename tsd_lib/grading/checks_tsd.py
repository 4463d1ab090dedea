"""Assignment 3 checks: normalised distribution shift, TSD loss, a trained student, an ablation."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from tsd_lib.grading.feedback import (
    Case,
    CheckResult,
    _close,
    _Fail,
    _finite,
    _gen,
    _isolated_rng,
    _mismatch,
    _run_check,
    _scalar,
    _shape,
    _short,
    _student,
    _tensor,
    _torch,
    graded,
)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import torch


@graded
def check_distribution_shift(fn: Callable) -> CheckResult:
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
    return _run_check("check_distribution_shift", 3, cases)


def _mlp(n_channels: int, length: int, n_classes: int, seed: int) -> torch.nn.Module:
    """A tiny float64 MLP classifier (no BatchNorm/Dropout: deterministic in any mode)."""
    from torch import nn

    with _isolated_rng(seed):
        model = nn.Sequential(nn.Flatten(), nn.Linear(n_channels * length, 6), nn.Tanh(), nn.Linear(6, n_classes))
        with _torch().no_grad():
            model[-1].weight.mul_(4.0)
    return model.double()


@graded
def check_tsd_loss(fn: Callable) -> CheckResult:
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
    return _run_check("check_tsd_loss", 3, cases)


def _predict(model: Any, X: Any) -> Any:
    """Test logits of a model here (``predict_logits``), or of a model in the graded notebook."""
    import numpy as np

    torch = _torch()
    if isinstance(model, torch.nn.Module):
        from tsd_lib.train import predict_logits

        return predict_logits(model, X, device=str(next(iter(model.parameters())).device))
    return model(torch.as_tensor(np.asarray(X, dtype=np.float32)))


def _history_rows(history: Any) -> list[dict[str, Any]]:
    rows = getattr(history, "epochs", None)
    if rows is None and isinstance(history, Mapping):
        rows = history.get("epochs")
    if not isinstance(rows, list) or not rows:
        raise _Fail("`history` should be the History returned by tsd_lib.train.fit (with at least one epoch)")
    return rows


@graded
def check_trained_student(student: Any, data: Any, history: Any) -> CheckResult:
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
        if not callable(student) or getattr(data, "X_test", None) is None:
            raise _Fail("pass the trained student (a torch model) and the dataset")
        logits = _student(_predict, student, data.X_test)
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
    return _run_check("check_trained_student", 3, cases)


@graded
def check_ablation(table: Any, conclusion: Any = None) -> CheckResult:
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
    return _run_check("check_ablation", 3, cases)
