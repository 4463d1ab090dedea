"""Assignment 2 checks: window perturbation, occlusion saliency map, planted-pattern validation."""

from __future__ import annotations

from collections.abc import Callable
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
    _shape,
    _student,
    _tensor,
    _torch,
    graded,
)

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch


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


@graded
def check_apply_windows(fn: Callable) -> CheckResult:
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
    return _run_check("check_apply_windows", 2, cases)


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


@graded
def check_window_saliency(fn: Callable) -> CheckResult:
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
    return _run_check("check_window_saliency", 2, cases)


def _planted_detector(n_channels: int, n_classes: int, window: int, scale: float = 1.0) -> torch.nn.Module:
    """The oracle classifier of the planted-pattern set: one matched filter per class.

    ``logits_c = scale * max_t <mean_channels(x)[t:t+L], pattern_c> / |pattern_c|``: it looks
    only for the planted patterns, so a correct saliency map of it must peak on the planted
    window. Built from standard layers, so it can be sent to the notebook's process.
    """
    import numpy as np
    import torch
    from torch import nn

    t = np.linspace(0.0, 1.0, window)
    shapes = np.stack([np.sin((c + 1) * np.pi * t) for c in range(n_classes)])
    shapes /= np.linalg.norm(shapes, axis=1, keepdims=True)
    conv = nn.Conv1d(n_channels, n_classes, window, bias=False)
    weight = np.repeat(shapes[:, None, :], n_channels, axis=1) * (scale / n_channels)
    with torch.no_grad():
        conv.weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
    return nn.Sequential(conv, nn.AdaptiveMaxPool1d(1), nn.Flatten()).eval()


@graded
def check_planted_saliency(fn: Callable) -> CheckResult:
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
    model = _planted_detector(data.n_channels, data.n_classes, L)
    X = torch.as_tensor(data.X_test)
    D = torch.randn(X.shape, generator=_torch().Generator().manual_seed(11))  # same noise as the set, no pattern
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
    return _run_check("check_planted_saliency", 2, cases)


@graded
def check_synthetic_validation(maps: Any, truth_mask: Any, precision: Any) -> CheckResult:
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
    return _run_check("check_synthetic_validation", 2, cases)
