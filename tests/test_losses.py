"""Distillation losses and the training objective.

Golden values live in ``tests/fixtures/loss_golden.json`` (inputs included), produced by
``tests/fixtures/make_loss_golden.py``. Each loss is also re-derived here by an independent,
deliberately naive formula (NumPy / Python loops, float64), so a golden file regenerated
from a broken loss would still fail.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tsd_lib.losses import (
    DEFAULT_WEIGHTS,
    LOSSES,
    Objective,
    at_loss,
    ce_loss,
    dkd_loss,
    dt2w_loss,
    fitnets_loss,
    kd_loss,
    make_projection,
    parse_method,
    resolve_weights,
    rkd_loss,
    soft_dtw,
)
from tsd_lib.models import SMOKE_SETTINGS, build_model

GOLDEN = json.loads((Path(__file__).parent / "fixtures" / "loss_golden.json").read_text())
RTOL = 1e-9


# ----------------------------------------------------------------------------- fixtures


def _inputs() -> dict[str, torch.Tensor]:
    raw = GOLDEN["inputs"]
    t = {k: torch.tensor(v, dtype=torch.float64) for k, v in raw.items() if k not in ("y", "dt2w_channels")}
    t["y"] = torch.tensor(raw["y"], dtype=torch.int64)
    t["dt2w_channels"] = torch.tensor(raw["dt2w_channels"], dtype=torch.int64)
    return t


def _proj(weight: torch.Tensor) -> nn.Conv1d:
    conv = nn.Conv1d(weight.shape[1], weight.shape[0], kernel_size=1, bias=False).double()
    with torch.no_grad():
        conv.weight.copy_(weight.unsqueeze(-1))
    return conv


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy().astype(np.float64)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    """sum_i p_i log(p_i / q_i), with 0 log 0 = 0."""
    return float(sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True) if pi > 0))


# ------------------------------------------------------------- naive reference formulas


def ref_ce(ls: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean([-math.log(_softmax(ls[b])[y[b]]) for b in range(len(y))]))


def ref_kd(ls: np.ndarray, lt: np.ndarray, tau: float) -> float:
    b = ls.shape[0]
    return tau**2 * sum(_kl(_softmax(lt[i] / tau), _softmax(ls[i] / tau)) for i in range(b)) / b


def ref_dkd(ls: np.ndarray, lt: np.ndarray, y: np.ndarray, alpha: float, beta: float, tau: float) -> float:
    """DKD re-derived from its definition: binary target/rest split + renormalised non-targets."""
    total = 0.0
    for i in range(ls.shape[0]):
        ps, pt = _softmax(ls[i] / tau), _softmax(lt[i] / tau)
        tckd = _kl(np.array([pt[y[i]], 1 - pt[y[i]]]), np.array([ps[y[i]], 1 - ps[y[i]]]))
        keep = [c for c in range(ls.shape[1]) if c != y[i]]
        nckd = _kl(_softmax(lt[i, keep] / tau), _softmax(ls[i, keep] / tau))  # class y removed
        total += alpha * tckd + beta * nckd
    return tau**2 * total / ls.shape[0]


def _resample(seq: np.ndarray, length: int) -> np.ndarray:
    """(D, T) -> (D, length), endpoints aligned, by np.interp."""
    src = np.linspace(0, seq.shape[-1] - 1, length)
    return np.stack([np.interp(src, np.arange(seq.shape[-1]), row) for row in seq])


def ref_fitnets(fs: np.ndarray, ft: np.ndarray, w: np.ndarray) -> float:
    sq = [(w @ _resample(fs[b], ft.shape[-1]) - ft[b]) ** 2 for b in range(fs.shape[0])]
    return float(np.mean(sq))


def ref_at(fs: np.ndarray, ft: np.ndarray, p: float) -> float:
    out = []
    for b in range(fs.shape[0]):
        a_s = _resample((np.abs(fs[b]) ** p).mean(axis=0, keepdims=True), ft.shape[-1])[0]
        a_t = (np.abs(ft[b]) ** p).mean(axis=0)
        out.append((a_s / np.linalg.norm(a_s) - a_t / np.linalg.norm(a_t)) ** 2)
    return float(np.mean(out))


def _smooth_l1(a: float, b: float) -> float:
    d = abs(a - b)
    return 0.5 * d * d if d < 1 else d - 0.5


def ref_rkd(es: np.ndarray, et: np.ndarray, w_dist: float, w_angle: float) -> float:
    """RKD by explicit loops over pairs and triplets."""
    n = es.shape[0]

    def dists(e: np.ndarray) -> list[list[float]]:
        d = [[float(np.linalg.norm(e[i] - e[j])) for j in range(n)] for i in range(n)]
        pos = [v for row in d for v in row if v > 0]
        mu = sum(pos) / len(pos)
        return [[v / mu for v in row] for row in d]

    def cos(e: np.ndarray, i: int, j: int, k: int) -> float:
        u, v = e[j] - e[i], e[k] - e[i]
        nu, nv = np.linalg.norm(u), np.linalg.norm(v)
        if nu == 0 or nv == 0:
            return 0.0
        return float(u @ v / (nu * nv))

    ds, dt = dists(es), dists(et)
    loss_d = sum(_smooth_l1(ds[i][j], dt[i][j]) for i in range(n) for j in range(n)) / n**2
    loss_a = (
        sum(_smooth_l1(cos(es, i, j, k), cos(et, i, j, k)) for i in range(n) for j in range(n) for k in range(n)) / n**3
    )
    return w_dist * loss_d + w_angle * loss_a


def ref_soft_dtw(x: np.ndarray, y: np.ndarray, gamma: float) -> float:
    """Textbook O(NM) soft-DTW recursion on one pair of (T, D) sequences."""
    n, m = len(x), len(y)
    r = np.full((n + 1, m + 1), np.inf)
    r[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            prev = np.array([r[i - 1, j - 1], r[i - 1, j], r[i, j - 1]])
            lo = prev.min()
            softmin = lo - gamma * math.log(np.exp(-(prev - lo) / gamma).sum())
            r[i, j] = float(((x[i - 1] - y[j - 1]) ** 2).sum()) + softmin
    return float(r[n, m])


def ref_dt2w(
    fs: np.ndarray, ft: np.ndarray, w: np.ndarray | None, gamma: float, normalise: bool = False,
    channels: list[int] | None = None,
) -> float:
    """Projected student (``w``) or the teacher's ``channels``, then soft-DTW per series."""
    vals = []
    for b in range(fs.shape[0]):
        x = (fs[b] if w is None else w @ fs[b]).T
        y = (ft[b] if channels is None else ft[b][channels]).T
        v = ref_soft_dtw(x, y, gamma)
        if normalise:
            v -= 0.5 * (ref_soft_dtw(x, x, gamma) + ref_soft_dtw(y, y, gamma))
        vals.append(v)
    return float(np.mean(vals))


# --------------------------------------------------------------------- golden values


def _library_values(t: dict[str, torch.Tensor]) -> dict[str, float]:
    proj = _proj(t["proj_weight"])
    ls, lt, y = t["logits_s"], t["logits_t"], t["y"]
    fs, ft, es, et = t["seq_s"], t["seq_t"], t["emb_s"], t["emb_t"]
    values = {
        "ce": ce_loss(ls, y),
        "kd_tau4": kd_loss(ls, lt, tau=4.0),
        "kd_tau8": kd_loss(ls, lt, tau=8.0),
        "dkd_default": dkd_loss(ls, lt, y, tau=4.0),  # the golden value: DKD's defaults at mdistiller's tau
        "dkd_a2_b4_tau8": dkd_loss(ls, lt, y, alpha=2.0, beta=4.0, tau=8.0),
        "fitnets": fitnets_loss(fs, ft, proj),
        "at_p2": at_loss(fs, ft, p=2),
        "at_p1": at_loss(fs, ft, p=1),
        "rkd_default": rkd_loss(es, et),
        "rkd_dist_only": rkd_loss(es, et, w_dist=1.0, w_angle=0.0),
        "rkd_angle_only": rkd_loss(es, et, w_dist=0.0, w_angle=1.0),
        "rkd_flat_sequence": rkd_loss(fs, ft),
        "dt2w_default_projection": dt2w_loss(fs, ft, proj),
        "dt2w_default_channels": dt2w_loss(fs, ft, channels=t["dt2w_channels"]),
        "dt2w_gamma0.1": dt2w_loss(fs, ft, proj, gamma=0.1),
        "dt2w_gamma1": dt2w_loss(fs, ft, proj, gamma=1.0),
        "dt2w_gamma1_normalised": dt2w_loss(fs, ft, proj, gamma=1.0, normalise=True),
    }
    return {k: float(v.detach()) for k, v in values.items()}


def _reference_values(t: dict[str, torch.Tensor]) -> dict[str, float]:
    ls, lt, y = _np(t["logits_s"]), _np(t["logits_t"]), t["y"].numpy()
    fs, ft, w = _np(t["seq_s"]), _np(t["seq_t"]), _np(t["proj_weight"])
    es, et = _np(t["emb_s"]), _np(t["emb_t"])
    return {
        "ce": ref_ce(ls, y),
        "kd_tau4": ref_kd(ls, lt, 4.0),
        "kd_tau8": ref_kd(ls, lt, 8.0),
        "dkd_default": ref_dkd(ls, lt, y, 1.0, 8.0, 4.0),
        "dkd_a2_b4_tau8": ref_dkd(ls, lt, y, 2.0, 4.0, 8.0),
        "fitnets": ref_fitnets(fs, ft, w),
        "at_p2": ref_at(fs, ft, 2),
        "at_p1": ref_at(fs, ft, 1),
        "rkd_default": ref_rkd(es, et, 1.0, 2.0),
        "rkd_dist_only": ref_rkd(es, et, 1.0, 0.0),
        "rkd_angle_only": ref_rkd(es, et, 0.0, 1.0),
        # the authors flatten (B, T, H): time-major, unlike torch's flatten of (B, D, T)
        "rkd_flat_sequence": ref_rkd(fs.transpose(0, 2, 1).reshape(len(fs), -1),
                                     ft.transpose(0, 2, 1).reshape(len(ft), -1), 1.0, 2.0),
        "dt2w_default_projection": ref_dt2w(fs, ft, w, 1.2),
        "dt2w_default_channels": ref_dt2w(fs, ft, None, 1.2, channels=t["dt2w_channels"].tolist()),
        "dt2w_gamma0.1": ref_dt2w(fs, ft, w, 0.1),
        "dt2w_gamma1": ref_dt2w(fs, ft, w, 1.0),
        "dt2w_gamma1_normalised": ref_dt2w(fs, ft, w, 1.0, normalise=True),
    }


@pytest.fixture(scope="module")
def library_values() -> dict[str, float]:
    return _library_values(_inputs())


@pytest.fixture(scope="module")
def reference_values() -> dict[str, float]:
    return _reference_values(_inputs())


CASES = sorted(GOLDEN["expected"])


def test_golden_covers_every_loss_but_tsd() -> None:
    covered = {case.split("_")[0] for case in CASES}
    assert covered == set(LOSSES) - {"tsd"}


@pytest.mark.parametrize("case", CASES)
def test_matches_golden(case: str, library_values: dict[str, float]) -> None:
    assert library_values[case] == pytest.approx(GOLDEN["expected"][case], rel=RTOL, abs=1e-12)


@pytest.mark.parametrize("case", CASES)
def test_matches_independent_formula(case: str, reference_values: dict[str, float]) -> None:
    assert GOLDEN["expected"][case] == pytest.approx(reference_values[case], rel=1e-8, abs=1e-10)


def test_golden_dt2w_agrees_with_tslearn() -> None:
    # recorded by the generator from tslearn's SoftDTWLossPyTorch (float32 DP table)
    for case, value in GOLDEN["dt2w_tslearn"].items():
        assert GOLDEN["expected"][case] == pytest.approx(value, rel=1e-5)


# ------------------------------------------------------------------- loss properties


def test_kd_zero_for_identical_logits_and_positive_otherwise() -> None:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(6, 4, generator=g)
    assert kd_loss(z, z.clone(), tau=8.0).item() == pytest.approx(0.0, abs=1e-6)
    assert kd_loss(z, z + 3.0, tau=8.0).item() == pytest.approx(0.0, abs=1e-6)  # shift-invariant
    other = torch.randn(6, 4, generator=g)
    assert kd_loss(z, other, tau=4.0).item() > 0
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    assert dkd_loss(z, other, y).item() > 0
    assert dkd_loss(z, z.clone(), y).item() == pytest.approx(0.0, abs=1e-5)


def test_dkd_binary_has_no_nckd() -> None:
    g = torch.Generator().manual_seed(1)
    ls, lt = torch.randn(5, 2, generator=g, dtype=torch.float64), torch.randn(5, 2, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 1, 1, 0, 1])
    tckd_only = dkd_loss(ls, lt, y, alpha=1.0, beta=0.0, tau=4.0)
    assert dkd_loss(ls, lt, y, alpha=1.0, beta=8.0, tau=4.0).item() == pytest.approx(tckd_only.item(), rel=1e-9)
    assert tckd_only.item() == pytest.approx(ref_dkd(_np(ls), _np(lt), y.numpy(), 1.0, 0.0, 4.0), rel=1e-9)


@pytest.mark.parametrize("loss", ["fitnets", "dt2w"])
def test_projection_receives_gradients(loss: str) -> None:
    g = torch.Generator().manual_seed(2)
    fs = torch.randn(3, 2, 7, generator=g, requires_grad=True)
    ft = torch.randn(3, 5, 9, generator=g)
    proj = make_projection(2, 5)
    value = LOSSES[loss](fs, ft, proj)
    value.backward()
    assert torch.isfinite(value)
    assert proj.weight.grad is not None and proj.weight.grad.abs().sum() > 0
    assert fs.grad is not None and fs.grad.abs().sum() > 0


def test_fitnets_zero_when_projection_matches() -> None:
    fs = torch.randn(2, 3, 6)
    proj = make_projection(3, 3)
    with torch.no_grad():
        proj.weight.copy_(torch.eye(3).unsqueeze(-1))
    assert fitnets_loss(fs, fs.clone(), proj).item() == pytest.approx(0.0, abs=1e-12)


def test_at_is_scale_invariant_and_zero_on_itself() -> None:
    f = torch.randn(3, 4, 10)
    assert at_loss(f, f.clone()).item() == pytest.approx(0.0, abs=1e-12)
    assert at_loss(5.0 * f, f).item() == pytest.approx(0.0, abs=1e-10)  # per-sample normalisation
    assert at_loss(torch.randn(3, 2, 10), f).item() > 0


def test_rkd_single_sample_is_zero_and_differentiable() -> None:
    es = torch.randn(1, 4, requires_grad=True)
    value = rkd_loss(es, torch.randn(1, 6))
    value.backward()
    assert value.item() == 0.0
    assert es.grad is not None and torch.all(es.grad == 0)


def test_rkd_invariant_to_scale_and_translation() -> None:
    e = torch.randn(6, 3, dtype=torch.float64)
    assert rkd_loss(2.5 * e + 1.0, e).item() == pytest.approx(0.0, abs=1e-12)
    assert torch.isfinite(rkd_loss(torch.zeros(4, 3), torch.zeros(4, 5)))  # all distances 0


def test_soft_dtw_gradient_is_exact() -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 4, 2, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randn(2, 6, 2, generator=g, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a: soft_dtw(a, y, gamma=0.5), (x,))
    assert torch.autograd.gradcheck(lambda a: soft_dtw(a, y, gamma=0.5, normalise=True), (x,))


def test_soft_dtw_limits() -> None:
    g = torch.Generator().manual_seed(4)
    x = torch.randn(3, 6, 2, generator=g, dtype=torch.float64)
    y = torch.randn(3, 7, 2, generator=g, dtype=torch.float64)
    # divergence: zero on itself, positive otherwise
    assert torch.allclose(soft_dtw(x, x, gamma=1.0, normalise=True), torch.zeros(3, dtype=torch.float64), atol=1e-9)
    assert torch.all(soft_dtw(x, y, gamma=1.0, normalise=True) > 0)
    # gamma -> 0 recovers hard DTW (here against the naive recursion at a tiny gamma)
    hard = soft_dtw(x, y, gamma=1e-3)
    naive = [ref_soft_dtw(_np(x[b]), _np(y[b]), 1e-3) for b in range(3)]
    assert hard.tolist() == pytest.approx(naive, rel=1e-9)
    # float32 input, non-contiguous, longer series: finite value and gradient
    a = torch.randn(4, 16, 30, generator=g).transpose(1, 2).requires_grad_(True)
    b = torch.randn(4, 25, 16, generator=g)
    out = soft_dtw(a, b, gamma=0.1)
    out.sum().backward()
    assert out.dtype == torch.float32 and torch.isfinite(out).all() and torch.isfinite(a.grad).all()
    with pytest.raises(ValueError, match="backend"):
        soft_dtw(x, y, backend="cuda-magic")


# --------------------------------------------------------- parse_method / weights


def test_parse_method() -> None:
    assert parse_method("kd+tsd") == {"ce": 1.0, "kd": 1.0, "tsd": 1.0}
    assert parse_method("ce") == {"ce": 1.0}
    assert parse_method("ce+kd") == {"ce": 1.0, "kd": 1.0}
    assert parse_method(" KD + fitnets ") == {"ce": 1.0, "kd": 1.0, "fitnets": 1.0}
    assert list(parse_method("tsd+kd")) == ["ce", "tsd", "kd"]
    with pytest.raises(ValueError, match="known losses"):
        parse_method("kd+vid")
    with pytest.raises(ValueError, match="empty"):
        parse_method("kd+")


def test_default_weights_and_resolve() -> None:
    assert set(DEFAULT_WEIGHTS) == set(LOSSES)
    assert all(w == 1.0 for w in DEFAULT_WEIGHTS.values())
    assert resolve_weights("kd+tsd") == {"ce": 1.0, "kd": 1.0, "tsd": 1.0}
    assert resolve_weights("kd+tsd", {"tsd": 10}) == {"ce": 1.0, "kd": 1.0, "tsd": 10.0}
    assert resolve_weights("kd", {"ce": 0.0}) == {"ce": 0.0, "kd": 1.0}
    assert parse_method("tsd", {"tsd": 0.5}) == {"ce": 1.0, "tsd": 0.5}
    with pytest.raises(ValueError, match="does not use"):
        resolve_weights("kd", {"tsd": 10})
    with pytest.raises(ValueError, match="unknown"):
        resolve_weights("kd", {"nope": 1})
    assert DEFAULT_WEIGHTS["tsd"] == 1.0  # resolve_weights must not mutate the defaults


# -------------------------------------------------------------------------- Objective

N_CHANNELS, N_CLASSES, LENGTH = 1, 3, 24


def _smoke(name: str, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(name, N_CHANNELS, N_CLASSES, **SMOKE_SETTINGS[name])


@pytest.fixture
def data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    X = torch.randn(18, N_CHANNELS, LENGTH, generator=g)
    y = torch.arange(18) % N_CLASSES
    return X, y


@pytest.fixture
def teacher() -> nn.Module:
    return _smoke("resnet", 10)  # feature_dim 8 (differs from the student's 4)


@pytest.fixture
def student() -> nn.Module:
    return _smoke("lstm_student", 11)


def test_objective_ce_only_needs_no_teacher(student: nn.Module, data) -> None:
    X, y = data
    obj = Objective(parse_method("ce"))
    assert obj.teacher is None and not obj.uses_index
    assert list(obj.parameters()) == []
    total, terms = obj(student, X[:6], y[:6])
    assert set(terms) == {"ce", "total"}
    assert terms["total"] == pytest.approx(terms["ce"]) == pytest.approx(ce_loss(student(X[:6]), y[:6]).item())
    total.backward()
    assert all(p.grad is not None for p in student.parameters())


@pytest.mark.parametrize("method", ["kd", "fitnets", "at", "rkd", "dkd", "dt2w", "tsd"])
def test_objective_requires_teacher(method: str, data) -> None:
    X, y = data
    with pytest.raises(ValueError, match="teacher"):
        Objective(parse_method(method), X_pool=X, y_pool=y)


def test_objective_requires_student_for_projections_and_pool_for_tsd(teacher: nn.Module) -> None:
    with pytest.raises(ValueError, match="student="):
        Objective(parse_method("fitnets"), teacher)
    with pytest.raises(ValueError, match="X_pool"):
        Objective(parse_method("tsd"), teacher)
    with pytest.raises(ValueError, match="unknown"):
        Objective({"ce": 1.0, "bogus": 1.0}, teacher)


def test_dt2w_teacher_channels_are_one_subset_per_run(teacher: nn.Module, student: nn.Module, data) -> None:
    """Each student channel keeps one teacher channel as its target for the whole run (a subset drawn
    every batch moved the target and collapsed the student's features to a constant)."""
    X, y = data
    obj = Objective(parse_method("dt2w"), teacher, student=student, seed=3)
    subset = obj.dt2w_subset.clone()
    assert len(subset) == student.feature_dim and len(set(subset.tolist())) == student.feature_dim
    first = obj(student, X[:6], y[:6])[1]["dt2w"]
    assert obj(student, X[:6], y[:6])[1]["dt2w"] == first and torch.equal(obj.dt2w_subset, subset)
    same = Objective(parse_method("dt2w"), teacher, student=student, seed=3)
    other = Objective(parse_method("dt2w"), teacher, student=student, seed=4)
    assert torch.equal(same.dt2w_subset, subset) and not torch.equal(other.dt2w_subset, subset)


def test_dkd_is_finite_when_the_student_is_certain() -> None:
    """The binary split's log is taken in log space: a student with a 200-logit gap gives a finite DKD."""
    z_s = torch.tensor([[200.0, 0.0, 0.0]], requires_grad=True)
    z_t = torch.tensor([[1.0, 0.5, 0.0]])
    loss = dkd_loss(z_s, z_t, torch.tensor([0]), tau=1.0)
    loss.backward()
    assert math.isfinite(loss.item()) and torch.isfinite(z_s.grad).all()


def test_objective_parameters_and_frozen_teacher(teacher: nn.Module, student: nn.Module, data) -> None:
    X, y = data
    teacher.train()
    obj = Objective(parse_method("kd+fitnets+dt2w+at+rkd+dkd"), teacher, student=student, tau=4.0)
    params = {id(p) for p in obj.parameters()}
    assert params == {id(obj.projections["fitnets"].weight)}  # DT2W: random teacher channels, no parameters
    assert obj.dt2w_adapter == "random_channels"
    assert obj.projections["fitnets"].weight.shape == (teacher.feature_dim, student.feature_dim, 1)
    assert not params & {id(p) for p in teacher.parameters()}
    assert not any(k.startswith("_teacher") or "teacher" in k for k in obj.state_dict())
    assert obj.teacher is teacher and not teacher.training
    obj.train()
    assert not teacher.training and obj.training
    assert not obj.uses_index

    total, terms = obj(student, X[:6], y[:6])
    assert set(terms) == {"ce", "kd", "fitnets", "at", "rkd", "dkd", "dt2w", "total"}
    assert all(isinstance(v, float) and math.isfinite(v) for v in terms.values())
    assert terms["total"] == pytest.approx(sum(v for k, v in terms.items() if k != "total"), rel=1e-5)
    total.backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert not any(p.requires_grad for p in teacher.parameters())
    assert all(p.grad is not None for p in obj.parameters())
    assert all(p.grad is not None for p in student.parameters())
    assert not teacher.training


def test_objective_weights_scale_and_zero_weight_skips(teacher: nn.Module, student: nn.Module, data) -> None:
    X, y = data
    student.eval()  # deterministic forward for comparing two calls
    base = Objective(resolve_weights("kd"), teacher)
    heavy = Objective(resolve_weights("kd", {"kd": 3.0}), teacher)
    off = Objective(resolve_weights("kd", {"kd": 0.0}), teacher)
    _, t1 = base(student, X, y)
    t3_total, t3 = heavy(student, X, y)
    _, t0 = off(student, X, y)
    assert t3["kd"] == pytest.approx(t1["kd"])  # the dict holds unweighted values
    assert t3["total"] == pytest.approx(t1["ce"] + 3.0 * t1["kd"], rel=1e-5)
    assert set(t0) == {"ce", "total"}
    assert t1["kd"] == pytest.approx(kd_loss(student(X), teacher(X), tau=8.0).item(), rel=1e-5)


def test_objective_to_moves_teacher(teacher: nn.Module, student: nn.Module) -> None:
    obj = Objective(parse_method("kd+fitnets"), teacher, student=student)
    assert obj.to("cpu") is obj
    obj.double()
    assert all(p.dtype == torch.float64 for p in teacher.parameters())
    assert obj.projections["fitnets"].weight.dtype == torch.float64


def test_objective_kd_tsd_fitnets_on_smoke_models(teacher: nn.Module, student: nn.Module, data) -> None:
    X, y = data
    obj = Objective(
        parse_method("kd+tsd+fitnets"), teacher, X, y, student=student,
        settings={"tsd": {"n_windows": 4, "window": 5, "bank_size": 8}}
    )
    assert obj.uses_index
    obj.to("cpu")
    idx = torch.tensor([0, 3, 4, 7, 9, 12])
    total, terms = obj(student, X[idx], y[idx], index=idx)
    assert set(terms) == {"ce", "kd", "tsd", "fitnets", "total"}
    assert torch.isfinite(total) and all(math.isfinite(v) for v in terms.values())
    total.backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert obj.projections["fitnets"].weight.grad is not None
    # without index (e.g. validation) TSD falls back to fresh perturbations
    total2, terms2 = obj(student, X[:5], y[:5])
    assert torch.isfinite(total2) and "tsd" in terms2


# ------------------------------------------------- feature terms as the TSD authors compute them


def test_objective_rkd_compares_flattened_sequences(teacher: nn.Module, student: nn.Module, data) -> None:
    X, y = data
    student.eval()
    obj = Objective(parse_method("rkd"), teacher, student=student)
    _, terms = obj(student, X[:8], y[:8])
    with torch.no_grad():
        seq_s = student(X[:8], return_features=True)[1]["sequence"].double().numpy()
        seq_t = teacher(X[:8], return_features=True)[1]["sequence"].double().numpy()
        emb_s = student(X[:8], return_features=True)[1]["embedding"].double().numpy()
        emb_t = teacher(X[:8], return_features=True)[1]["embedding"].double().numpy()
    flat = ref_rkd(seq_s.transpose(0, 2, 1).reshape(8, -1), seq_t.transpose(0, 2, 1).reshape(8, -1), 1.0, 2.0)
    assert terms["rkd"] == pytest.approx(flat, rel=1e-4)
    assert terms["rkd"] != pytest.approx(ref_rkd(emb_s, emb_t, 1.0, 2.0), rel=1e-2)  # not the embeddings


def test_objective_dt2w_random_teacher_channels(teacher: nn.Module, student: nn.Module, data) -> None:
    X, y = data
    student.eval()
    a = Objective(parse_method("dt2w"), teacher, student=student, seed=3)
    b = Objective(parse_method("dt2w"), teacher, student=student, seed=3)
    assert a.settings["dt2w"].gamma == 1.2 and a.dt2w_adapter == "random_channels" and list(a.parameters()) == []
    values = [a(student, X[:6], y[:6])[1]["dt2w"] for _ in range(4)]
    assert values == [b(student, X[:6], y[:6])[1]["dt2w"] for _ in range(4)]  # seeded: reproducible
    assert len(set(values)) == 1  # one subset for the whole run
    # the subset is the first D_S of a permutation drawn by a generator seeded with `seed`
    channels = torch.randperm(teacher.feature_dim, generator=torch.Generator().manual_seed(3))[: student.feature_dim]
    with torch.no_grad():
        seq_s = student(X[:6], return_features=True)[1]["sequence"]
        seq_t = teacher(X[:6], return_features=True)[1]["sequence"]
    expected = ref_dt2w(_np(seq_s), _np(seq_t), None, 1.2, channels=channels.tolist())
    assert values[0] == pytest.approx(expected, rel=1e-4)
    # the learned projection on request, and as the fallback for a teacher narrower than the student
    proj = Objective(parse_method("dt2w"), teacher, student=student, settings={"dt2w": {"adapter": "projection"}})
    assert proj.dt2w_adapter == "projection" and proj.projections["dt2w"].weight.shape == (8, 4, 1)
    narrow_teacher = build_model("lstm_student", N_CHANNELS, N_CLASSES, hidden=2)  # D_T = 2 < D_S = 4
    fallback = Objective(parse_method("dt2w"), narrow_teacher, student=student)
    assert fallback.dt2w_adapter == "projection" and fallback.projections["dt2w"].weight.shape == (2, 4, 1)
    assert math.isfinite(fallback(student, X[:6], y[:6])[1]["dt2w"])
    with pytest.raises(ValueError, match="dt2w setting adapter must be one of"):
        Objective(parse_method("dt2w"), teacher, student=student, settings={"dt2w": {"adapter": "pca"}})
    with pytest.raises(ValueError, match="not both"):
        dt2w_loss(seq_s, seq_t, proj.projections["dt2w"], channels=channels)


def test_fitnets_projection_initialised_as_the_authors() -> None:
    torch.manual_seed(0)
    proj = make_projection(16, 100, init_range=0.005)
    w = proj.weight.detach()
    assert proj.bias is None
    assert float(w.abs().max()) < 0.005 and float(w.abs().max()) > 0.004  # fills (-0.005, 0.005)
    assert abs(float(w.mean())) < 5e-4 and float(w.std()) == pytest.approx(0.005 / math.sqrt(3), rel=0.05)
    default = make_projection(16, 100).weight.detach()  # PyTorch's default: bound 1/sqrt(16) = 0.25
    assert float(default.abs().max()) > 0.2
    student, teacher = _smoke("lstm_student", 1), _smoke("resnet", 2)
    obj = Objective(parse_method("fitnets"), teacher, student=student)
    assert float(obj.projections["fitnets"].weight.detach().abs().max()) <= 0.005


# ------------------------------------------------------------------ teacher logits cache


def _count_forwards(model: nn.Module) -> list[int]:
    calls = [0]
    model.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def test_objective_caches_teacher_logits_for_kd_and_dkd(teacher: nn.Module, student: nn.Module, data) -> None:
    import warnings

    X, y = data
    student.eval()
    calls = _count_forwards(teacher)
    cached = Objective(parse_method("kd+dkd"), teacher, X, y)
    plain = Objective(parse_method("kd+dkd"), teacher)  # no X_pool: a teacher forward per batch
    assert cached.uses_index and not plain.uses_index
    for idx in (torch.tensor([0, 3, 4, 7, 9, 12]), torch.tensor([17, 1, 2]), torch.tensor([5, 6, 8, 10])):
        total_c, terms_c = cached(student, X[idx], y[idx], index=idx)
        total_p, terms_p = plain(student, X[idx], y[idx])
        # the cache's 18-row forward and a per-batch forward round differently (~1e-7), which the
        # tau^2 = 64 of KD and DKD amplifies: a few 1e-6 on some CPUs
        torch.testing.assert_close(total_c, total_p, rtol=1e-5, atol=1e-5)
        assert terms_c == pytest.approx(terms_p, rel=1e-5, abs=1e-5)
    assert calls[0] == 1 + 3  # one pass over X_pool (18 rows, one chunk), then only the uncached objective
    total_c.backward()  # gradients still reach the student only
    assert all(p.grad is None for p in teacher.parameters())
    # without index, or with x not X_pool[index] (warned once), the teacher runs on x
    calls[0] = 0
    cached(student, X[:4], y[:4])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            _, shifted = cached(student, X[:4] + 1.0, y[:4], index=torch.arange(4))
    assert calls[0] == 3 and sum("differs from X_pool" in str(w.message) for w in caught) == 1
    assert shifted == pytest.approx(plain(student, X[:4] + 1.0, y[:4])[1], rel=1e-6)
    # feature terms need the teacher's features anyway: no cache, no index
    assert not Objective(parse_method("kd+at"), teacher, X, y).uses_index


def test_objective_kd_reads_the_tsd_banks_teacher_logits(teacher: nn.Module, student: nn.Module, data) -> None:
    X, y = data
    student.eval()
    obj = Objective(parse_method("kd+tsd"), teacher, X, y, student=student,
        settings={"tsd": {"n_windows": 4, "window": 5, "bank_size": 8}})
    obj.to("cpu")  # builds the bank: the teacher's last run
    calls = _count_forwards(teacher)
    idx = torch.tensor([2, 5, 11, 16])
    _, terms = obj(student, X[idx], y[idx], index=idx)
    assert calls[0] == 0
    with torch.no_grad():
        expected = kd_loss(student(X[idx]), teacher(X[idx]), tau=8.0).item()
    assert terms["kd"] == pytest.approx(expected, rel=1e-4)  # batch layout rounding x tau^2 = 64


# ------------------------------------------------- the registry: settings per term, dispatch by entry


def test_resolve_settings_defaults_tau_and_errors() -> None:
    from dataclasses import replace

    from tsd_lib.losses import resolve_settings
    from tsd_lib.settings import CESettings, DKDSettings, KDSettings, TSDSettings

    s = resolve_settings(["ce", "kd", "dkd", "tsd"], {"dkd": {"beta": 2}, "tsd": {"n_windows": 4}}, tau=4)
    assert s["ce"] == CESettings() and s["kd"] == KDSettings(tau=4.0)
    assert s["dkd"] == DKDSettings(alpha=1.0, beta=2.0, tau=4.0) and isinstance(s["dkd"].beta, float)
    assert s["tsd"] == replace(TSDSettings(), n_windows=4, tau=4.0)
    assert resolve_settings(["dkd"], {"dkd": {"tau": 2.0}}, tau=4.0)["dkd"].tau == 2.0  # a term's own wins
    built = DKDSettings(beta=3.0)
    assert resolve_settings(["dkd"], {"dkd": built}, tau=4.0)["dkd"] is built  # an instance is taken as it is
    with pytest.raises(ValueError, match="settings of loss 'kd' must be KDSettings, got DKDSettings"):
        resolve_settings(["kd"], {"kd": built})
    with pytest.raises(ValueError, match="dkd setting beta must be a finite number >= 0, got -1"):
        resolve_settings(["dkd"], {"dkd": {"beta": -1}})
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['gama'\] for loss 'dt2w'"):
        resolve_settings(["dt2w"], {"dt2w": {"gama": 1.0}})
    with pytest.raises(ValueError, match=r"loss\(es\) \['rkd'\] that the method does not use"):
        resolve_settings(["ce", "kd"], {"rkd": {"w_dist": 25.0}})


def test_term_settings_reach_the_loss(teacher: nn.Module, student: nn.Module, data) -> None:
    X, y = data
    student.eval()
    obj = Objective(parse_method("dkd+rkd"), teacher, student=student,
                    settings={"dkd": {"beta": 2.0}, "rkd": {"w_dist": 25.0, "w_angle": 50.0}})
    _, terms = obj(student, X[:6], y[:6])
    with torch.no_grad():
        logits_s, fs = student(X[:6], return_features=True)
        logits_t, ft = teacher(X[:6], return_features=True)
    assert terms["dkd"] == pytest.approx(dkd_loss(logits_s, logits_t, y[:6], alpha=1.0, beta=2.0, tau=8.0).item(),
                                         rel=1e-5)
    assert terms["rkd"] == pytest.approx(rkd_loss(fs["sequence"], ft["sequence"], 25.0, 50.0).item(), rel=1e-5)


def test_a_new_loss_is_one_registry_entry(teacher: nn.Module, student: nn.Module, data, monkeypatch) -> None:
    from dataclasses import dataclass

    from tsd_lib.losses import registry
    from tsd_lib.settings import Settings, setting

    @dataclass(frozen=True)
    class L1Settings(Settings):
        scale: float = setting(1.0, "scale of the mean absolute logit difference", low=0.0)

    def l1_logits(logits_s, logits_t, scale=L1Settings.scale):
        return scale * (logits_s - logits_t).abs().mean()

    term = registry.Term(l1_logits, lambda state, b, s: l1_logits(b.logits_s, b.logits_t, s.scale),
                         teacher_logits=True, settings=L1Settings)
    monkeypatch.setitem(registry.LOSSES, "l1", term)
    monkeypatch.setitem(registry.DEFAULT_WEIGHTS, "l1", 1.0)
    X, y = data
    student.eval()
    with pytest.raises(ValueError, match=r"\['l1'\] need a teacher"):
        Objective(parse_method("l1"))
    obj = Objective(parse_method("l1"), teacher, settings={"l1": {"scale": 3.0}})
    _, terms = obj(student, X[:6], y[:6])
    with torch.no_grad():
        expected = 3.0 * (student(X[:6]) - teacher(X[:6])).abs().mean().item()
    assert terms["l1"] == pytest.approx(expected, rel=1e-5)
