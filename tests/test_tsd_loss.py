"""The TSD loss (tsd_lib.losses.tsd): invariances, gradients, teacher bank vs fresh sampling.

Regenerate the golden fixture with ``python tests/test_tsd_loss.py`` (only after an intended
change of the method; the distribution-shift part is computed independently in NumPy).
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from tsd_lib.losses.tsd import TSDTerm, tsd_loss
from tsd_lib.models import build_model
from tsd_lib.saliency.perturb import perturb

FIXTURE = Path(__file__).parent / "fixtures" / "tsd_golden.json"

# The fixed tiny problem of the golden value (float64 so it does not depend on BLAS details).
GOLDEN_SETUP = {"B": 4, "T": 24, "n_pool": 12, "n_classes": 3, "n_windows": 6, "window": 5, "tau": 2.0, "seed": 0}


def _seeded(name: str, n_classes: int, seed: int, scale: float = 1.0, **kw) -> torch.nn.Module:
    """A model whose weights come from NumPy's ``default_rng(seed)`` (independent of torch's init)."""
    model = build_model(name, 1, n_classes, **kw)
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.from_numpy(rng.normal(0.0, scale, size=tuple(p.shape))))
    return model


def _pair(n_classes: int = 3, dtype: torch.dtype = torch.float32):
    teacher = _seeded("lstm_teacher", n_classes, 1, hidden=6, layers=2).to(dtype).eval()
    student = _seeded("lstm_student", n_classes, 2, hidden=4).to(dtype)
    return student, teacher


def _data(n: int, T: int, n_classes: int, seed: int, dtype: torch.dtype = torch.float32):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    t = np.linspace(0, 1, T)
    X = np.sin(2 * np.pi * (y[:, None] + 1) * t[None, :]) + 0.3 * rng.standard_normal((n, T))
    return torch.tensor(X[:, None, :], dtype=dtype), torch.tensor(y, dtype=torch.long)


def _golden_problem():
    s = GOLDEN_SETUP
    X_pool, y_pool = _data(s["n_pool"], s["T"], s["n_classes"], seed=3, dtype=torch.float64)
    student, teacher = _pair(s["n_classes"], torch.float64)
    return student, teacher, X_pool[: s["B"]], y_pool[: s["B"]], X_pool, y_pool


def _golden_loss(**kw) -> torch.Tensor:
    s = GOLDEN_SETUP
    student, teacher, X, y, X_pool, y_pool = _golden_problem()
    return tsd_loss(
        student,
        teacher,
        X,
        y,
        X_pool,
        y_pool,
        n_windows=s["n_windows"],
        window=s["window"],
        tau=s["tau"],
        generator=torch.Generator().manual_seed(s["seed"]),
        **kw,
    )


# ----------------------------------------------------------------------------- invariances
def test_zero_when_student_is_teacher_and_positive_otherwise() -> None:
    # float64: in float32 the twin's forward (with gradients) and the teacher's (without) round
    # differently, and a near-zero per-class term changing sign moves the normaliser.
    X_pool, y_pool = _data(15, 30, 3, seed=0, dtype=torch.float64)
    student, teacher = _pair(dtype=torch.float64)
    twin = _seeded("lstm_teacher", 3, 1, hidden=6, layers=2).double().eval()
    kw = {"n_windows": 10, "window": 5, "tau": 2.0}
    same = tsd_loss(twin, teacher, X_pool[:6], y_pool[:6], X_pool, y_pool, generator=torch.Generator(), **kw)
    other = tsd_loss(student, teacher, X_pool[:6], y_pool[:6], X_pool, y_pool, generator=torch.Generator(), **kw)
    assert same.item() < 1e-6
    assert other.item() > 1e-3


def test_gradients_reach_student_only_and_teacher_stays_eval() -> None:
    X_pool, y_pool = _data(15, 30, 3, seed=0)
    student, teacher = _pair()
    teacher.train()  # tsd_loss must put the (frozen) teacher in eval mode
    loss = tsd_loss(student, teacher, X_pool[:5], y_pool[:5], X_pool, y_pool, n_windows=8, window=5, tau=2.0)
    loss.backward()
    assert not teacher.training
    assert all(p.grad is None for p in teacher.parameters())
    grads = [p.grad for p in student.parameters()]
    assert all(g is not None for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


def test_student_logits_reuse_and_variants() -> None:
    student, teacher, X, y, X_pool, y_pool = _golden_problem()
    plain = _golden_loss()
    reused = _golden_loss(student_logits=student(X))
    assert reused.item() == pytest.approx(plain.item(), rel=1e-9)
    for kw in ({"reduce": "sum"}, {"score": "target_prob"}, {"baseline": "zero"}, {"baseline": "noise"}):
        value = _golden_loss(**kw)
        assert math.isfinite(value.item()) and value.item() >= 0
    with pytest.raises(ValueError):
        _golden_loss(score="dtw")


def test_golden_value() -> None:
    expected = json.loads(FIXTURE.read_text())["tsd_loss"]
    assert expected["setup"] == GOLDEN_SETUP
    for key, kw in (("none", {}), ("sum", {"reduce": "sum"}), ("target_prob", {"score": "target_prob"})):
        assert _golden_loss(**kw).item() == pytest.approx(expected[key], rel=1e-6)


def _np_target_rise(z: np.ndarray, zp: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The authors' target score by hand: q_{k,y} - p_y at temperature 1, positive-mean normalised."""
    B, k = z.shape
    out = np.zeros((B, zp.shape[0] // B))
    for b in range(B):
        p = np.exp(z[b]) / np.exp(z[b]).sum()
        for j in range(out.shape[1]):
            q = np.exp(zp[b * out.shape[1] + j]) / np.exp(zp[b * out.shape[1] + j]).sum()
            out[b, j] = q[y[b]] - p[y[b]]
    return out / (out[out > 0].mean() + 1e-8)


def _np_smooth_l1(a: np.ndarray, b: np.ndarray) -> float:
    d = np.abs(a - b)
    return float(np.where(d < 1, 0.5 * d * d, d - 0.5).mean())


def test_target_prob_loss_from_the_formula() -> None:
    # Same perturbations as tsd_loss draws (perturb() with the same generator state), plain
    # forwards, then the score and the loss by hand.
    s = GOLDEN_SETUP
    student, teacher, X, y, X_pool, y_pool = _golden_problem()
    copies, _ = perturb(X, y, X_pool, y_pool, n_windows=s["n_windows"], window=s["window"],
                        generator=torch.Generator().manual_seed(s["seed"]))
    with torch.no_grad():
        zt, zt_p, zs, zs_p = (m(v).numpy() for m in (teacher, student) for v in (X, copies))
    expected = _np_smooth_l1(_np_target_rise(zs, zs_p, y.numpy()), _np_target_rise(zt, zt_p, y.numpy()))
    assert _golden_loss(score="target_prob").item() == pytest.approx(expected, rel=1e-9)
    # the old definition (p_y - q_y at tau) gives another value here
    assert _golden_loss(score="target_prob").item() != pytest.approx(4.599523722678438, rel=1e-3)


def test_target_prob_bank_path_from_the_formula() -> None:
    X_pool, y_pool = _data(15, 30, 3, seed=0, dtype=torch.float64)
    student, teacher = _pair(dtype=torch.float64)
    term = TSDTerm(teacher, X_pool, y_pool, n_windows=6, window=5, tau=2.0, bank_size=20, score="target_prob")
    bank = term.build_bank()
    idx = torch.tensor([1, 5, 9, 12])
    replay = torch.Generator().set_state(term.generator.get_state())
    entries = bank.sample_entries(idx, 6, replay)
    copies = bank.perturbed(X_pool[idx], idx, entries)
    with torch.no_grad():
        zt, zt_p, zs, zs_p = (m(v).numpy() for m in (teacher, student) for v in (X_pool[idx], copies))
        got = term(student, X_pool[idx], y_pool[idx], index=idx).item()
    y = y_pool[idx].numpy()
    assert got == pytest.approx(_np_smooth_l1(_np_target_rise(zs, zs_p, y), _np_target_rise(zt, zt_p, y)), rel=1e-9)


def test_term_caps_k_once() -> None:
    X_pool, y_pool = _data(15, 30, 3, seed=0)
    student, teacher = _pair()
    idx = torch.tensor([0, 4, 8])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        terms = [TSDTerm(teacher, X_pool, y_pool, n_windows=100, window=5, bank_size=b) for b in (0, 40)]
        for term in terms:
            for _ in range(3):
                term(student, X_pool[idx], y_pool[idx], index=idx)
    assert [t.n_windows for t in terms] == [25, 25]  # 0 <= t < 30 - 5
    assert sum("exceeds the 25 possible starts" in str(w.message) for w in caught) == 2  # once per term
    assert len(caught) == 2


# ----------------------------------------------------------------------------- TSDTerm
def test_term_bank_and_fresh_zero_for_identical_models() -> None:
    # float64: the positive-mean normalisation jumps when a near-zero per-class term changes
    # sign, so float32 rounding differences between two batch layouts could show up here.
    X_pool, y_pool = _data(15, 30, 3, seed=0, dtype=torch.float64)
    teacher = _seeded("lstm_teacher", 3, 1, hidden=6, layers=2).double().eval()
    twin = _seeded("lstm_teacher", 3, 1, hidden=6, layers=2).double().eval()
    idx = torch.tensor([0, 4, 8, 13])
    kw = {"n_windows": 10, "window": 5, "tau": 2.0}
    banked = TSDTerm(teacher, X_pool, y_pool, bank_size=30, **kw)
    fresh = TSDTerm(teacher, X_pool, y_pool, bank_size=0, **kw)
    assert banked(twin, X_pool[idx], y_pool[idx], index=idx).item() < 1e-12
    assert banked.bank is not None and banked.precompute_seconds > 0
    assert fresh(twin, X_pool[idx], y_pool[idx], index=idx).item() < 1e-12
    assert fresh.bank is None
    assert banked.uses_index and not isinstance(banked, torch.nn.Module)


def test_term_bank_matches_fresh_in_expectation() -> None:
    X_pool, y_pool = _data(24, 30, 3, seed=1)
    student, teacher = _pair()
    kw = {"n_windows": 8, "window": 5, "tau": 2.0}
    batches = torch.Generator().manual_seed(0)
    losses: dict[str, list[float]] = {"bank": [], "fresh": []}
    with torch.no_grad():
        for seed in range(4):
            terms = {
                "bank": TSDTerm(teacher, X_pool, y_pool, bank_size=40, seed=seed, **kw),
                "fresh": TSDTerm(teacher, X_pool, y_pool, bank_size=0, seed=seed + 100, **kw),
            }
            for _ in range(15):
                idx = torch.randperm(24, generator=batches)[:8]
                for name, term in terms.items():
                    losses[name].append(term(student, X_pool[idx], y_pool[idx], index=idx).item())
    a, b = np.array(losses["bank"]), np.array(losses["fresh"])
    se = math.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
    assert abs(a.mean() - b.mean()) < 4 * se, (a.mean(), b.mean(), se)


def test_term_fallbacks_and_reproducibility() -> None:
    X_pool, y_pool = _data(15, 30, 3, seed=0)
    student, teacher = _pair()
    idx = torch.tensor([1, 2, 3])
    kw = {"n_windows": 6, "window": 5, "tau": 2.0}
    # same seed -> same loss
    a = TSDTerm(teacher, X_pool, y_pool, bank_size=20, seed=3, **kw)(student, X_pool[idx], y_pool[idx], index=idx)
    b = TSDTerm(teacher, X_pool, y_pool, bank_size=20, seed=3, **kw)(student, X_pool[idx], y_pool[idx], index=idx)
    assert a.item() == b.item()
    # no index, noise baseline: fresh sampling; no bank built
    term = TSDTerm(teacher, X_pool, y_pool, bank_size=20, **kw)
    assert term(student, X_pool[idx], y_pool[idx]).item() >= 0 and term.bank is None
    noisy = TSDTerm(teacher, X_pool, y_pool, bank_size=20, baseline="noise", **kw)
    assert noisy(student, X_pool[idx], y_pool[idx], index=idx).item() >= 0 and noisy.bank is None
    # x is not X_pool[index]: warn once and sample afresh
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        term(student, X_pool[idx] + 1.0, y_pool[idx], index=idx)
    assert any("differs from X_pool" in str(w.message) for w in caught)
    # .to builds the bank; it stores the teacher's clean logits of every pool row
    term2 = TSDTerm(teacher, X_pool.numpy(), y_pool.numpy(), bank_size=20, **kw).to("cpu")
    assert term2.bank is not None
    with torch.no_grad():
        torch.testing.assert_close(term2.bank.logits[idx], teacher(X_pool[idx]), rtol=0, atol=1e-6)
    for score, reduce in (("kl", "sum"), ("target_prob", "none")):
        t = TSDTerm(teacher, X_pool, y_pool, bank_size=20, score=score, reduce=reduce, **kw)
        assert math.isfinite(t(student, X_pool[idx], y_pool[idx], index=idx).item())


# ----------------------------------------------------------------------------- fixture generation
def _numpy_shift(z: np.ndarray, zp: np.ndarray, tau: float, target: np.ndarray) -> dict:
    """Independent float64 NumPy reference of distribution_shift / target_shift (q_y - p_y, tau 1)."""

    def log_softmax(a: np.ndarray) -> np.ndarray:
        a = a / tau
        m = a.max(-1, keepdims=True)
        return a - m - np.log(np.exp(a - m).sum(-1, keepdims=True))

    B, k = z.shape
    lp = log_softmax(z)[:, None, :]
    lq = log_softmax(zp.reshape(B, -1, k))
    raw = tau**2 * np.exp(lp) * (lp - lq)

    def norm(s: np.ndarray) -> np.ndarray:
        pos = s[s > 0]
        return s / (pos.mean() + 1e-8) if pos.size else s

    def softmax(a: np.ndarray) -> np.ndarray:  # temperature 1, as the authors' target variant
        e = np.exp(a - a.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    rise = softmax(zp.reshape(B, -1, k))[np.arange(B), :, target] - softmax(z)[np.arange(B), target][:, None]
    return {"expected_none": norm(raw), "expected_sum": norm(raw.sum(-1)), "expected_target": norm(rise)}


def _regenerate() -> None:
    rng = np.random.default_rng(2025)
    B, K, k, tau = 3, 4, 3, 4.0
    z = rng.normal(0, 3, size=(B, k))
    zp = np.repeat(z, K, axis=0) + rng.normal(0, 2, size=(B * K, k))
    target = np.array([0, 2, 1])
    shift = {"tau": tau, "logits": z.tolist(), "logits_perturbed": zp.tolist(), "target": target.tolist()}
    shift.update({key: v.tolist() for key, v in _numpy_shift(z, zp, tau, target).items()})
    golden = {
        "distribution_shift": shift,
        "tsd_loss": {
            "setup": GOLDEN_SETUP,
            "none": _golden_loss().item(),
            "sum": _golden_loss(reduce="sum").item(),
            "target_prob": _golden_loss(score="target_prob").item(),
        },
    }
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text(json.dumps(golden, indent=2) + "\n")
    print(f"wrote {FIXTURE}")


if __name__ == "__main__":
    _regenerate()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_term_on_cuda_matches_cpu() -> None:
    X_pool, y_pool = _data(15, 30, 3, seed=0, dtype=torch.float64)
    student, teacher = _pair(dtype=torch.float64)
    idx = torch.tensor([0, 4, 8, 13])
    kw = {"n_windows": 6, "window": 5, "tau": 2.0, "bank_size": 20, "seed": 4}
    cpu = TSDTerm(teacher, X_pool, y_pool, **kw)(student, X_pool[idx], y_pool[idx], index=idx)
    t_gpu, s_gpu = _pair(dtype=torch.float64)
    term = TSDTerm(t_gpu.cuda(), X_pool, y_pool, **kw).to("cuda")
    assert term.bank is not None and term.bank.logits.is_cuda
    gpu = term(s_gpu.cuda(), X_pool[idx].cuda(), y_pool[idx].cuda(), index=idx.cuda())
    assert gpu.item() == pytest.approx(cpu.item(), rel=1e-6)
    fresh = tsd_loss(
        s_gpu.cuda(),
        t_gpu.cuda(),
        X_pool[idx].cuda(),
        y_pool[idx].cuda(),
        X_pool.cuda(),
        y_pool.cuda(),
        n_windows=6,
        window=5,
        generator=torch.Generator().manual_seed(0),
    )
    assert math.isfinite(fresh.item())


def test_term_with_batchnorm_student() -> None:
    X_pool, y_pool = _data(15, 30, 3, seed=0)
    _, teacher = _pair()
    torch.manual_seed(0)
    student = build_model("fcn_small", 1, 3, channels=(4, 4, 4))  # BatchNorm in training mode
    term = TSDTerm(teacher, X_pool, y_pool, n_windows=6, window=5, tau=2.0, bank_size=20)
    idx = torch.tensor([1, 5, 9])
    loss = term(student, X_pool[idx], y_pool[idx], index=idx, student_logits=student(X_pool[idx]))
    loss.backward()
    assert math.isfinite(loss.item()) and all(p.grad is not None for p in student.parameters())


def test_one_clean_forward_per_tsd_step() -> None:
    """A BatchNorm student's running statistics see the clean batch once per TSD step (the
    objective's pass), then the perturbed copies: the term never runs ``x`` again."""
    from tsd_lib.losses import Objective

    X_pool, y_pool = _data(15, 30, 3, seed=0)
    _, teacher = _pair()
    torch.manual_seed(0)
    student = build_model("fcn_small", 1, 3, channels=(4, 4, 4))
    objective = Objective({"ce": 1.0, "tsd": 1.0}, teacher, X_pool, y_pool, student=student,
                          settings={"tsd": {"n_windows": 6, "window": 5, "bank_size": 0}}, tau=2.0, seed=0)
    idx = torch.tensor([1, 5, 9])
    calls: list[int] = []
    student.register_forward_hook(lambda m, inp, out: calls.append(inp[0].shape[0]))
    objective(student, X_pool[idx], y_pool[idx], index=idx)
    assert calls == [3, 3 * 6]  # the clean batch once, then its 6 copies per series
    bn = next(m for m in student.modules() if isinstance(m, torch.nn.BatchNorm1d))
    assert int(bn.num_batches_tracked) == 2
