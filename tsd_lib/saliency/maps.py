"""Sliding-window (occlusion) saliency maps, as TSD's teacher sees a series.

For every window start ``a`` (``0, stride, 2*stride, ...``) the series is copied with the window
``[a, a+L)`` replaced by baseline values (by default the same window of a training series of
another class, TSD's perturbation) and the model's reaction is scored:

* ``score="kl"``: TSD's distribution shift summed over classes,
  ``tau^2 * KL(softmax(z/tau) || softmax(z~/tau))`` (Hewa Dehigahawattage et al., ECAI 2025).
  TSD divides the scores of a training batch by their mean positive value; for a map that
  factor only rescales it, so scores are left raw unless ``normalise=True`` (then each series'
  window scores are divided by the mean of its positive ones);
* ``score="target_logit"``: the drop of the target logit ``z_c(x) - z_c(x~)``, which is what
  captum's ``Occlusion`` computes.

Each timestep gets the mean score of the windows covering it (0 if none covers it). Window
starts follow captum's ``Occlusion``: ``ceil((T - L) / stride) + 1`` starts, so with a stride
that does not divide ``T - L`` the last window is cut off at the series end. With
``baseline="zero"`` and ``score="target_logit"`` the map equals captum's
``Occlusion(model).attribute(X, sliding_window_shapes=(C, L), strides=(1, stride),
baselines=0, target=c)`` (identical across channels).

Speed ("recompute less"): the perturbed copies are scored by the fastest exact engine of
:mod:`tsd_lib.saliency._engines` (LSTM prefix sharing, conv receptive-field crops, or full
forward passes), chosen automatically and checked on the clean batch.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from tsd_lib.runtime import resolve_device
from tsd_lib.saliency._engines import count_batches, generic_engine, pick_engine
from tsd_lib.saliency.shift import kl_terms
from tsd_lib.saliency.windows import BASELINES, baseline_windows
from tsd_lib.settings import TSDSettings
from tsd_lib.utils import progress as progress_bar
from tsd_lib.utils import progress_enabled

__all__ = ["SCORES", "saliency_map", "window_scores", "window_starts", "windows_to_map"]

SCORES = ("kl", "target_logit")
#: Series per call of ``baseline_windows``: fixed so that donor draws depend only on the data
#: and the generator seed, never on the model or ``batch_size``.
_SERIES_CHUNK = 256


# --------------------------------------------------------------------------- public API


def window_starts(length: int, window: int, stride: int = 1) -> np.ndarray:
    """Window starts as captum's ``Occlusion``: ``0, s, 2s, ...``, ``ceil((T-L)/s) + 1`` of them.

    The last window may extend past the series end (it is then cut off) when ``stride`` does not
    divide ``length - window``; starts ``>= length`` are dropped (only possible if
    ``stride > window``, which leaves gaps that no window covers).
    """
    length, window, stride = int(length), int(window), int(stride)
    if not 1 <= window <= length:
        raise ValueError(f"window must be in 1..length={length}, got {window}")
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    n = math.ceil((length - window) / stride) + 1
    starts = np.arange(n, dtype=np.int64) * stride
    return starts[starts < length]


def windows_to_map(scores: np.ndarray, starts: np.ndarray, length: int, window: int) -> np.ndarray:
    """Per-timestep mean of the scores ``(n, K)`` of the windows covering each step -> ``(n, length)``.

    Steps no window covers get 0.
    """
    scores = np.asarray(scores, dtype=np.float64)
    cover = np.zeros((len(starts), int(length)), dtype=np.float64)
    for k, a in enumerate(np.asarray(starts)):
        cover[k, int(a) : int(a) + int(window)] = 1.0
    count = cover.sum(0)
    total = scores @ cover
    return np.divide(total, count, out=np.zeros_like(total), where=count > 0)


def window_scores(
    model: nn.Module,
    X: np.ndarray | torch.Tensor,
    y: np.ndarray | torch.Tensor | None = None,
    *,
    X_pool: np.ndarray | torch.Tensor | None = None,
    y_pool: np.ndarray | torch.Tensor | None = None,
    window: int = TSDSettings.window,
    stride: int = 1,
    baseline: str = TSDSettings.baseline,
    score: str = "kl",
    tau: float = TSDSettings.tau,
    normalise: bool = False,
    generator: torch.Generator | int | None = None,
    batch_size: int = 256,
    progress: bool | None = None,
    device: str | torch.device | None = None,
    fast: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Raw per-window scores ``(n, K)`` and the window starts ``(K,)``.

    Args:
        model: a classifier ``(B, C, T) -> logits (B, k)``; run in eval mode under no_grad
            (its mode and device are restored afterwards).
        X: series ``(n, C, T)`` (or ``(n, T)``).
        y: labels; the target class of ``"target_logit"`` and the class whose complement
            donates ``"other_class"`` windows. ``None``: the model's predicted classes (then a
            teacher and a student may draw different donors; pass ``y`` to share them).
        X_pool, y_pool: donor series for ``"other_class"`` / ``"same_class"`` (e.g. the train set).
        window, stride: window length ``L`` and step between starts (see :func:`window_starts`).
        baseline: ``"other_class"``, ``"same_class"``, ``"zero"``, ``"mean"`` or ``"noise"``
            (values from :func:`tsd_lib.saliency.perturb.baseline_windows`).
        score: ``"kl"`` (TSD's ``tau^2 * KL``, summed over classes) or ``"target_logit"``.
        tau: temperature of ``"kl"``.
        normalise: divide each series' scores by the mean of its positive scores (+1e-8).
        generator: donor/noise randomness (a ``torch.Generator`` or an int seed; default seed 0).
            Equal seeds and equal ``(X, y, pool)`` give identical perturbations for any model.
        batch_size: perturbed copies per forward pass.
        progress: show a progress bar (``None``: only for large jobs, and never when
            ``TSD_PROGRESS=0``).
        device: where to compute (default: the model's device).
        fast: use the LSTM / conv shortcuts when the model allows (``False``: always full
            forward passes; the results agree to float precision).
    """
    if score not in SCORES:
        raise ValueError(f"score must be one of {SCORES}, got {score!r}")
    if baseline not in BASELINES:
        raise ValueError(f"baseline must be one of {BASELINES}, got {baseline!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    modes = [(m, m.training) for m in model.modules()]
    params = list(model.parameters())
    model_device = params[0].device if params else torch.device("cpu")
    dtype = params[0].dtype if params and params[0].is_floating_point() else torch.float32
    dev = resolve_device(device) if device is not None else model_device
    if dev != model_device:
        model.to(dev)
    model.eval()
    try:
        with torch.no_grad():
            return _window_scores(
                model, X, y, X_pool, y_pool, int(window), int(stride), baseline, score, float(tau),
                normalise, generator, int(batch_size), progress, dev, dtype, fast,
            )  # fmt: skip
    finally:
        for m, mode in modes:
            m.training = mode
        if dev != model_device:
            model.to(model_device)


def saliency_map(
    model: nn.Module,
    X: np.ndarray | torch.Tensor,
    y: np.ndarray | torch.Tensor | None = None,
    *,
    X_pool: np.ndarray | torch.Tensor | None = None,
    y_pool: np.ndarray | torch.Tensor | None = None,
    window: int = TSDSettings.window,
    stride: int = 1,
    baseline: str = TSDSettings.baseline,
    score: str = "kl",
    tau: float = TSDSettings.tau,
    normalise: bool = False,
    generator: torch.Generator | int | None = None,
    batch_size: int = 256,
    progress: bool | None = None,
    device: str | torch.device | None = None,
    fast: bool = True,
) -> np.ndarray:
    """Sliding-window saliency map ``(n, T)``: each step's mean window score.

    Arguments as in :func:`window_scores`. The default (``baseline="other_class"``,
    ``score="kl"``) is TSD's teacher saliency; ``baseline="zero", score="target_logit"``
    reproduces captum's ``Occlusion``.
    """
    kw = dict(X_pool=X_pool, y_pool=y_pool, window=window, stride=stride, baseline=baseline)
    kw |= dict(score=score, tau=tau, normalise=normalise, generator=generator, batch_size=batch_size)
    scores, starts = window_scores(model, X, y, progress=progress, device=device, fast=fast, **kw)
    length = X.shape[-1]
    return windows_to_map(scores, starts, length, window).astype(np.float32)


# --------------------------------------------------------------------------- core


def _as_tensor(a: np.ndarray | torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    t = a if isinstance(a, torch.Tensor) else torch.as_tensor(np.asarray(a))
    return t.to(dtype) if dtype is not None else t


def _as_series(X: np.ndarray | torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    t = _as_tensor(X, dtype).detach().cpu()
    if t.dim() == 2:
        t = t.unsqueeze(1)
    if t.dim() != 3:
        raise ValueError(f"X must be (n, channels, length), got shape {tuple(t.shape)}")
    return t


def _make_generator(generator: torch.Generator | int | None) -> torch.Generator:
    if isinstance(generator, torch.Generator):
        return generator
    return torch.Generator().manual_seed(0 if generator is None else int(generator))


def _baseline_values(
    X: torch.Tensor,
    y: torch.Tensor,
    X_pool: torch.Tensor | None,
    y_pool: torch.Tensor | None,
    starts: np.ndarray,
    window: int,
    baseline: str,
    generator: torch.Generator,
) -> torch.Tensor:
    """Replacement values ``(n, K, C, L)``; zero beyond the series end for cut-off windows.

    A cut-off window ``[a, T)`` takes the tail of the full window ``[T-L, T)``, which holds the
    same positions of the donor.
    """
    n, _, length = X.shape
    clamped = np.minimum(starts, length - window)
    starts_t = torch.as_tensor(clamped, dtype=torch.long).expand(n, -1).contiguous()
    vals = baseline_windows(X, y, X_pool, y_pool, starts_t, window, baseline=baseline, generator=generator)
    vals = vals.to(X.dtype)
    for k in np.flatnonzero(starts != clamped):
        shift, m = int(starts[k] - clamped[k]), int(length - starts[k])
        tail = vals[:, k, :, shift : shift + m].clone()
        vals[:, k] = 0
        vals[:, k, :, :m] = tail
    return vals


def _score(z0: torch.Tensor, z: torch.Tensor, target: torch.Tensor, score: str, tau: float) -> torch.Tensor:
    """Scores ``(m, K)`` from clean logits ``(m, k)`` and perturbed logits ``(m, K, k)``.

    Callers pass float64 logits: in float32 the KL of two nearly equal distributions suffers
    cancellation (errors ~``tau^2 * 1e-7``, even negative values).
    """
    if score == "target_logit":
        idx = target.view(-1, 1, 1).expand(-1, z.shape[1], 1)
        return z0.gather(1, target.view(-1, 1)) - z.gather(2, idx).squeeze(2)
    return kl_terms(z0, z, tau).sum(-1)


def _window_scores(
    model: nn.Module,
    X: np.ndarray | torch.Tensor,
    y: np.ndarray | torch.Tensor | None,
    X_pool: np.ndarray | torch.Tensor | None,
    y_pool: np.ndarray | torch.Tensor | None,
    window: int,
    stride: int,
    baseline: str,
    score: str,
    tau: float,
    normalise: bool,
    generator: torch.Generator | int | None,
    batch_size: int,
    progress: bool | None,
    dev: torch.device,
    dtype: torch.dtype,
    fast: bool,
) -> tuple[np.ndarray, np.ndarray]:
    Xc = _as_series(X, dtype)
    n, _, length = Xc.shape
    starts = window_starts(length, window, stride)
    if baseline in ("other_class", "same_class") and (X_pool is None or y_pool is None):
        raise ValueError(
            f"baseline={baseline!r} replaces windows with windows of donor series: pass X_pool and "
            "y_pool (e.g. the training set), or use baseline='zero'/'mean'/'noise'"
        )
    pool_X = _as_series(X_pool, dtype) if X_pool is not None else None
    pool_y = _as_tensor(y_pool, torch.long).cpu() if y_pool is not None else None
    gen = _make_generator(generator)

    Xd = Xc.to(dev)
    engine = pick_engine(model, Xd[: min(n, 64)], fast) if n else generic_engine
    n_k = len(starts)
    n_batches = count_batches(engine, n, n_k, batch_size, dev.type == "cuda", _SERIES_CHUNK)
    show = progress_enabled(progress) if progress is not None else (progress_enabled() and n_batches > 50)
    out = np.zeros((n, n_k), dtype=np.float64)
    with progress_bar(total=n_batches or None, enabled=show, desc="saliency", unit="batch") as bar:
        for lo in range(0, n, _SERIES_CHUNK):
            hi = min(n, lo + _SERIES_CHUNK)
            xs = Xd[lo:hi]
            z0 = model(xs)
            target = z0.argmax(1) if y is None else _as_tensor(y, torch.long)[lo:hi].to(dev)
            vals = _baseline_values(Xc[lo:hi], target.cpu(), pool_X, pool_y, starts, window, baseline, gen)
            z = engine(model, xs, vals.to(dev), starts, window, batch_size, bar.update)
            out[lo:hi] = _score(z0.double(), z.double(), target, score, tau).cpu().numpy()
    if normalise:
        pos = np.where(out > 0, out, 0.0)
        denom = pos.sum(1, keepdims=True) / np.maximum((out > 0).sum(1, keepdims=True), 1) + 1e-8
        out = out / denom
    return out, starts
