"""Assignment 1 checks: temperature softmax, Hinton KD loss, soft-target entropy."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from tsd_lib.grading.feedback import (
    Case,
    CheckResult,
    _close,
    _diagnose,
    _Fail,
    _finite,
    _gen,
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
    import torch


@graded
def check_temperature_softmax(fn: Callable) -> CheckResult:
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
    return _run_check("check_temperature_softmax", 1, cases)


@graded
def check_kd_loss(fn: Callable) -> CheckResult:
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
    return _run_check("check_kd_loss", 1, cases)


@graded
def check_soft_target_entropy(fn: Callable) -> CheckResult:
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
    return _run_check("check_soft_target_entropy", 1, cases)
