"""Window perturbations: the core of Temporal Saliency Distillation (TSD).

TSD (Hewa Dehigahawattage, Nandakishor & Palaniswami, "Learning to Reason: Temporal Saliency
Distillation for Interpretable Knowledge Transfer", ECAI 2025, arXiv 2601.04263) measures how
much each subsequence matters to a classifier by *replacing* it and watching the prediction
move:

1. **Perturb.** For a series ``x`` (``C`` channels, length ``T``) pick ``K`` distinct window
   starts ``0 <= t < T - L`` (the authors' range, :func:`n_starts`) and, for each, a donor
   series ``x'`` from the training pool with a *different* label. The perturbed copy
   ``x~(t)`` equals ``x`` except on ``[t, t+L)``, where it takes the donor's values ``x'[:, t:t+L]`` (:func:`perturb`).
2. **Distribution shift.** With ``p = softmax(z(x)/tau)`` and ``q_t = softmax(z(x~(t))/tau)``
   the per-class saliency is ``s_c(x, t) = tau^2 * p_c * (log p_c - log q_{t,c})``; its sum over
   classes is ``tau^2 * KL(p || q_t)``. The tensor is normalised by the mean of its strictly
   positive entries (:func:`distribution_shift`).

The TSD loss (:mod:`tsd_lib.losses.tsd`) matches the student's ``s`` to the teacher's on the
same perturbed copies. Because the teacher is frozen, its side can be computed once per
training series: :class:`TeacherBank`.

Everything here is vectorised over the batch (no Python loop over series or windows) and
takes an optional ``torch.Generator`` so draws are reproducible.
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from tsd_lib.models import LSTMClassifier
from tsd_lib.utils import progress

__all__ = [
    "BASELINES",
    "TeacherBank",
    "apply_windows",
    "baseline_windows",
    "distribution_shift",
    "draw_donors",
    "draw_starts",
    "gather_windows",
    "kl_terms",
    "normalise_shift",
    "perturb",
    "perturbed_logits",
    "prefix_forward",
    "supports_prefix_sharing",
    "target_shift",
]

#: Replacement values a window can take (see :func:`baseline_windows`).
BASELINES = ("other_class", "zero", "mean", "noise", "same_class")

#: Baselines a :class:`TeacherBank` can store (``noise`` is redrawn at every use, so it cannot).
BANK_BASELINES = ("other_class", "same_class", "zero", "mean")


# ----------------------------------------------------------------------------- random draws
def _rand(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device | str | None):
    """Uniform ``[0, 1)`` keys drawn on the generator's device, returned on ``device``."""
    gdev = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=gdev).to(device)


def n_starts(length: int, window: int) -> int:
    """Number of window starts TSD draws from: ``t in {0, ..., T-L-1}``, i.e. ``T - L``.

    This is the authors' range (``0 <= t < T - L``): the last admissible window ``[T-L, T)``
    is never drawn, so the final time step ``T - 1`` is never perturbed. The saliency maps for
    people (:func:`tsd_lib.saliency.maps.window_starts`) keep their own range, which covers
    every step.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if window >= length:
        raise ValueError(f"window ({window}) must be shorter than the series ({length})")
    return length - window


def draw_starts(
    batch: int,
    n_windows: int,
    length: int,
    window: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``K`` distinct random window starts per series, shape ``(batch, K)``, dtype long.

    Starts lie in ``0..T-L-1`` (``T-L`` choices, the authors' range; see :func:`n_starts`). Each
    row is a uniformly random ``K``-subset in random order (the first ``K`` columns of the
    argsort of random keys). If ``K`` exceeds ``T-L`` every start is used (``K`` becomes
    ``T-L``) and a warning says so at every call: callers that draw repeatedly
    (:class:`~tsd_lib.losses.tsd.TSDTerm`) cap ``K`` once themselves.
    """
    n = n_starts(length, window)
    if n_windows < 1:
        raise ValueError(f"n_windows must be >= 1, got {n_windows}")
    if n_windows > n:
        warnings.warn(
            f"n_windows={n_windows} exceeds the {n} possible starts of a length-{window} window in a "
            f"length-{length} series; using all {n} starts instead",
            stacklevel=2,
        )
        n_windows = n
    keys = _rand((batch, n), generator, device)
    return keys.argsort(dim=1)[:, :n_windows].contiguous()


def draw_donors(
    y: torch.Tensor,
    y_pool: torch.Tensor,
    n: int,
    *,
    same_class: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Indices into the pool of ``n`` donor series per series, shape ``(B, n)``, dtype long.

    A donor of series ``b`` has label ``y_pool[j] != y[b]`` (or ``== y[b]`` with
    ``same_class``; then nothing else is excluded, not even the series itself). Donors are
    drawn *without* replacement when a row has at least ``n`` eligible donors; otherwise all
    eligible donors come first (in random order) and the remaining slots are filled by
    sampling eligible donors *with* replacement. Vectorised: random keys, ``+inf`` for
    ineligible donors, argsort; ``multinomial`` on the eligibility mask for the fill.

    Raises ``ValueError`` when some series has no eligible donor (e.g. a single-class pool).
    """
    y = y.reshape(-1)
    y_pool = y_pool.to(y.device).reshape(-1)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    eligible = (y[:, None] == y_pool[None, :]) if same_class else (y[:, None] != y_pool[None, :])
    count = eligible.sum(dim=1)
    if bool((count == 0).any()):
        kind = "same-class" if same_class else "other-class"
        bad = torch.unique(y[count == 0]).tolist()
        raise ValueError(
            f"no {kind} donor in the pool for label(s) {bad}; pool labels: {torch.unique(y_pool).tolist()}"
        )
    B, N = eligible.shape
    keys = _rand((B, N), generator, y.device).masked_fill(~eligible, float("inf"))
    m = min(n, N)
    donors = keys.argsort(dim=1)[:, :m]
    if m < n:
        donors = torch.cat([donors, donors.new_zeros(B, n - m)], dim=1)
    short = count < n
    if bool(short.any()):
        gdev = generator.device if generator is not None else y.device
        weights = eligible[short].to(device=gdev, dtype=torch.float32)
        fill = torch.multinomial(weights, n, replacement=True, generator=generator).to(y.device)
        cols = torch.arange(n, device=y.device)
        keep = cols[None, :] < count[short][:, None]
        donors[short] = torch.where(keep, donors[short], fill)
    return donors.contiguous()


# ----------------------------------------------------------------------------- replacement values
def gather_windows(X_pool: torch.Tensor, donors: torch.Tensor, starts: torch.Tensor, window: int) -> torch.Tensor:
    """``out[b, k] = X_pool[donors[b, k], :, starts[b, k] : starts[b, k] + L]``, shape ``(B, K, C, L)``."""
    X_pool = X_pool.to(starts.device)
    steps = starts[..., None] + torch.arange(window, device=starts.device)  # (B, K, L)
    vals = X_pool.transpose(1, 2)[donors[..., None], steps]  # (B, K, L, C)
    return vals.permute(0, 1, 3, 2).contiguous()


def baseline_windows(
    X: torch.Tensor,
    y: torch.Tensor,
    X_pool: torch.Tensor | None,
    y_pool: torch.Tensor | None,
    starts: torch.Tensor,
    window: int,
    baseline: str = "other_class",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Replacement values for every window, shape ``(B, K, C, L)``.

    ``baseline``:

    * ``"other_class"`` (TSD's choice): the same window ``[t, t+L)`` of a random pool series of a
      different class (:func:`draw_donors`, without replacement when enough exist);
    * ``"same_class"``: the same, with a donor of the same class (a variant in the authors' code);
    * ``"zero"``: zeros;
    * ``"mean"``: the series' own per-channel mean over all ``T`` steps (a constant window);
    * ``"noise"``: Gaussian noise ``N(mu_c, sigma_c^2)`` with the series' own per-channel mean
      and standard deviation over all ``T`` steps, drawn afresh for every window.

    ``X_pool``/``y_pool`` are only read by the donor baselines.
    """
    B, C, _ = X.shape
    K = starts.shape[1]
    if baseline in ("other_class", "same_class"):
        if X_pool is None or y_pool is None:
            raise ValueError(f"baseline {baseline!r} needs X_pool and y_pool")
        donors = draw_donors(y.to(starts.device), y_pool, K, same_class=baseline == "same_class", generator=generator)
        return gather_windows(X_pool, donors, starts, window).to(X.dtype)
    if baseline == "zero":
        return X.new_zeros(B, K, C, window)
    if baseline == "mean":
        return X.mean(dim=-1)[:, None, :, None].expand(B, K, C, window).contiguous()
    if baseline == "noise":
        mu = X.mean(dim=-1)[:, None, :, None]
        sd = X.std(dim=-1)[:, None, :, None] if X.shape[-1] > 1 else torch.zeros_like(mu)
        gdev = generator.device if generator is not None else X.device
        eps = torch.randn((B, K, C, window), generator=generator, device=gdev, dtype=X.dtype).to(X.device)
        return mu + sd * eps
    raise ValueError(f"unknown baseline {baseline!r}; choose one of {BASELINES}")


def apply_windows(X: torch.Tensor, starts: torch.Tensor, values: torch.Tensor, window: int) -> torch.Tensor:
    """Copies of ``X`` with window ``k`` replaced: shape ``(B*K, C, T)``, series-major.

    Row ``b*K + k`` equals ``X[b]`` except ``[:, t:t+L]`` with ``t = starts[b, k]``, which holds
    ``values[b, k]`` (shape ``(B, K, C, L)``). One ``scatter`` into an expanded copy, no loop;
    differentiable with respect to ``X`` and ``values``.
    """
    B, C, T = X.shape
    K = starts.shape[1]
    starts = starts.to(X.device)
    idx = (starts[:, :, None, None] + torch.arange(window, device=X.device)).expand(B, K, C, window)
    out = X[:, None].expand(B, K, C, T).clone()
    out.scatter_(3, idx, values.to(device=X.device, dtype=X.dtype))
    return out.reshape(B * K, C, T)


def perturb(
    X: torch.Tensor,
    y: torch.Tensor,
    X_pool: torch.Tensor | None,
    y_pool: torch.Tensor | None,
    *,
    n_windows: int = 50,
    window: int = 10,
    baseline: str = "other_class",
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """TSD's perturbations: ``K`` window replacements per series.

    Returns ``(copies, starts)``: ``copies`` ``(B*K, C, T)`` with row ``b*K + k`` the series
    ``X[b]`` whose window ``[t, t+L)``, ``t = starts[b, k]``, is replaced according to
    ``baseline`` (:func:`baseline_windows`); ``starts`` ``(B, K)`` are distinct per series
    (:func:`draw_starts`). Defaults ``K = 50``, ``L = 10`` as in the authors' scripts.
    """
    if X.dim() != 3:
        raise ValueError(f"X must be shaped (batch, channels, length), got {tuple(X.shape)}")
    B, _, T = X.shape
    starts = draw_starts(B, n_windows, T, window, generator=generator, device=X.device)
    values = baseline_windows(X, y, X_pool, y_pool, starts, window, baseline=baseline, generator=generator)
    return apply_windows(X, starts, values, window), starts


# ----------------------------------------------------------------------------- forward passes
#: Buckets of window starts in :func:`prefix_forward` (8 measured fastest on CPU for T = 100).
PREFIX_BUCKETS = 8


def supports_prefix_sharing(model: nn.Module, device: torch.device | str | None = None) -> bool:
    """Whether :func:`prefix_forward` applies: an :class:`~tsd_lib.models.LSTMClassifier` on CPU.

    Only the exact class qualifies (a subclass could change ``forward``), with a unidirectional,
    batch-first ``nn.LSTM`` without projections. On CUDA one big batch is faster (an LSTM there
    is bound by its sequential steps, which bucketing multiplies), so the default is CPU only.
    """
    lstm = getattr(model, "lstm", None)
    ok = (
        type(model) is LSTMClassifier
        and isinstance(lstm, nn.LSTM)
        and lstm.batch_first
        and not lstm.bidirectional
        and not lstm.proj_size
        and isinstance(getattr(model, "head", None), nn.Linear)
    )
    if device is None:
        device = _model_device(model)
    return ok and torch.device(device).type == "cpu"


def prefix_forward(
    model: nn.Module,
    X: torch.Tensor,
    copies: torch.Tensor,
    starts: torch.Tensor,
    n_buckets: int = PREFIX_BUCKETS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits of an LSTM classifier on ``X`` ``(B, C, T)`` and its copies ``(B*K, C, T)``, sharing prefixes.

    A copy whose window starts at ``t`` equals its series on ``[0, t)``, and an LSTM is causal,
    so its state at any ``a <= t`` is the clean series' state at ``a``. The window starts are cut
    into ``n_buckets`` equal-width buckets with lower bounds ``a_g``; the clean batch is run in
    segments ``[a_g, a_{g+1})`` (giving every layer's ``(h, c)`` at each ``a_g`` and, at the end,
    the clean logits), then each bucket's copies run only their suffix ``[a_g, T)`` from the clean
    state at ``a_g``. Same result as ``model(X)``, ``model(copies)`` up to float rounding, with
    gradients (through the shared prefixes too); about half the recurrent steps, and smaller
    batches that stay in cache: ~2.5x faster than one forward on CPU for ``T = 100``, ``K = 50``.
    Requires :func:`supports_prefix_sharing`.
    """
    B, C, T = X.shape
    K = starts.shape[1]
    lstm, head = model.lstm, model.head
    if lstm.input_size != C:
        raise ValueError(f"model expects {lstm.input_size} channel(s), input has {C}")
    starts = starts.to(X.device)
    flat = starts.reshape(-1)
    lo, hi = int(flat.min()), int(flat.max())
    bounds = sorted({lo + (hi + 1 - lo) * g // max(1, n_buckets) for g in range(max(1, n_buckets))})
    xs = X.transpose(1, 2)
    states: dict[int, tuple[torch.Tensor, torch.Tensor] | None] = {0: None}
    state, prev = None, 0
    for a in [b for b in bounds if b > 0] + [T]:
        out, state = lstm(xs[:, prev:a], state)
        states[a], prev = state, a
    clean = head(out[:, -1])
    bucket = torch.bucketize(flat, torch.tensor(bounds, device=X.device), right=True) - 1
    series = torch.arange(B, device=X.device).repeat_interleave(K)
    cs = copies.reshape(B * K, C, T)
    outs, sels = [], []
    for g, a in enumerate(bounds):
        sel = (bucket == g).nonzero().squeeze(1)
        if sel.numel() == 0:
            continue
        st = states[a]
        h0 = None if st is None else (st[0][:, series[sel]].contiguous(), st[1][:, series[sel]].contiguous())
        seq, _ = lstm(cs[sel, :, a:].transpose(1, 2), h0)
        outs.append(head(seq[:, -1]))
        sels.append(sel)
    sel = torch.cat(sels)
    inverse = torch.empty_like(sel)
    inverse[sel] = torch.arange(sel.numel(), device=sel.device)
    return clean, torch.cat(outs)[inverse]


def perturbed_logits(
    model: nn.Module,
    X: torch.Tensor,
    copies: torch.Tensor,
    starts: torch.Tensor | None = None,
    *,
    prefix_sharing: bool | None = None,
    split_batchnorm: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(model(X), model(copies))`` computed the fastest exact way.

    * :func:`prefix_forward` when ``starts`` are given and ``prefix_sharing`` is True, or None
      and :func:`supports_prefix_sharing` holds (an LSTM classifier on CPU);
    * otherwise one forward of ``cat([X, copies])`` (one batch, contiguous), except for a model
      with BatchNorm in training mode (``split_batchnorm``), where batch statistics would mix
      clean and perturbed series: then two separate forwards.
    """
    if starts is not None and (supports_prefix_sharing(model) if prefix_sharing is None else prefix_sharing):
        return prefix_forward(model, X, copies, starts)
    if split_batchnorm and any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training for m in model.modules()):
        return model(X), model(copies)
    z = model(torch.cat([X, copies]))
    return z[: X.shape[0]], z[X.shape[0] :]


# ----------------------------------------------------------------------------- distribution shift
def kl_terms(logits: torch.Tensor, logits_perturbed: torch.Tensor, tau: float) -> torch.Tensor:
    """Raw per-class terms ``tau^2 * p_c * (log p_c - log q_c)``, shape ``(B, K, k)``.

    ``p = softmax(logits / tau)`` (clean, ``(B, k)``), ``q = softmax(logits_perturbed / tau)``
    (``(B*K, k)`` series-major or ``(B, K, k)``); log-probabilities via ``log_softmax``. Summed
    over ``c`` this is ``tau^2 * KL(p || q)`` >= 0, but single terms can be negative.
    """
    B, k = logits.shape
    zq = logits_perturbed.reshape(B, -1, k)
    log_p = F.log_softmax(logits / tau, dim=-1)[:, None, :]
    log_q = F.log_softmax(zq / tau, dim=-1)
    return (tau * tau) * log_p.exp() * (log_p - log_q)


def normalise_shift(s: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``s / (mean of the strictly positive entries of s + eps)``, over the whole tensor.

    This is the authors' normalisation (it makes saliencies comparable between a confident
    teacher and an unsure student). If ``s`` has no positive entry it is returned unchanged
    (dividing by ``eps`` alone would only blow up a tensor of zeros / negatives). The
    denominator is *not* detached, so gradients flow through it as in a plain implementation.

    Caveat (inherent to this normalisation): the denominator jumps by about ``mean / n_pos``
    when an entry near zero changes sign. Per-class terms of classes whose probability barely
    moves are such entries, so two numerically equivalent models (e.g. float rounding of a
    different batch layout) can give normalised tensors that differ by a few percent.
    """
    pos = s > 0
    if not bool(pos.any()):
        return s
    denom = (s * pos).sum() / pos.sum()
    return s / (denom + eps)


def _check_reduce(reduce: str) -> None:
    if reduce not in ("none", "sum"):
        raise ValueError(f"reduce must be 'none' or 'sum', got {reduce!r}")


def distribution_shift(
    logits: torch.Tensor,
    logits_perturbed: torch.Tensor,
    tau: float,
    reduce: str = "none",
    eps: float = 1e-8,
) -> torch.Tensor:
    """TSD saliency: normalised shift of the predictive distribution under each perturbation.

    ``s_c(x, t) = tau^2 * p_c (log p_c - log q_{t,c})`` with ``p = softmax(z(x)/tau)`` and
    ``q_t = softmax(z(x~(t))/tau)``:

    * ``reduce="none"`` (the paper's main variant): the per-class terms, shape ``(B, K, k)``;
    * ``reduce="sum"``: ``tau^2 * KL(p || q_t)``, shape ``(B, K)``.

    The result is divided by the mean of its strictly positive entries over the whole batch
    tensor plus ``eps`` (:func:`normalise_shift`). No softmax over time.
    ``logits``: ``(B, k)``; ``logits_perturbed``: ``(B*K, k)`` (series-major) or ``(B, K, k)``.
    """
    _check_reduce(reduce)
    s = kl_terms(logits, logits_perturbed, tau)
    if reduce == "sum":
        s = s.sum(dim=-1)
    return normalise_shift(s, eps)


def target_shift(
    logits: torch.Tensor, logits_perturbed: torch.Tensor, y: torch.Tensor, *, eps: float = 1e-8
) -> torch.Tensor:
    """TSD's target-probability variant, as the authors compute it: ``q_{t,y} - p_y``, shape ``(B, K)``.

    ``p = softmax(z(x))``, ``q_t = softmax(z(x~(t)))`` at temperature 1 (whatever the KD/TSD
    ``tau``), ``y`` the label; normalised like :func:`distribution_shift` (divided by the mean of
    the strictly positive entries + ``eps``). Note the sign: a window whose replacement *lowers*
    the target probability (an important window) gives a negative entry, and the normaliser is
    the mean rise of the windows whose replacement *raised* it. ``eps`` is keyword-only so that
    a temperature passed by position (the old signature) fails loudly.
    """
    B, k = logits.shape
    y = y.reshape(-1, 1).to(logits.device)
    p_y = F.softmax(logits, dim=-1).gather(1, y)  # (B, 1)
    q = F.softmax(logits_perturbed.reshape(B, -1, k), dim=-1)
    q_y = q.gather(2, y[:, None, :].expand(B, q.shape[1], 1)).squeeze(-1)  # (B, K)
    return normalise_shift(q_y - p_y, eps)


# ----------------------------------------------------------------------------- teacher bank
def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


def _rank_within_groups(group: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """Rank ``(B, M)`` of each entry among the entries of its row with the same ``group``, by ``keys``.

    Vectorised: sort by ``keys``, then stably by ``group``; an entry's rank is its distance to
    the first entry of its group in that order.
    """
    by_key = keys.argsort(dim=1)
    by_group = group.gather(1, by_key).argsort(dim=1, stable=True)
    order = by_key.gather(1, by_group)  # entries sorted by (group, key)
    sorted_group = group.gather(1, order)
    pos = torch.arange(group.shape[1], device=group.device).expand_as(group)
    first = torch.ones_like(sorted_group, dtype=torch.bool)
    first[:, 1:] = sorted_group[:, 1:] != sorted_group[:, :-1]
    rank_sorted = pos - torch.where(first, pos, 0).cummax(dim=1).values
    return torch.empty_like(rank_sorted).scatter_(1, order, rank_sorted).to(keys.dtype)


def _block_sizes(total: int, cap: int, k: int) -> list[int]:
    """Sizes of the consecutive blocks that one bank row of ``total`` entries is cut into.

    Every block holds at most ``cap`` entries and, where possible, at least ``k``: balanced
    blocks when they can all hold ``k`` (``200, 90, 50 -> [67, 67, 66]``), otherwise full
    blocks of ``cap`` and a smaller remainder (``130, 60, 50 -> [60, 60, 10]``).
    """
    n_blocks = math.ceil(total / cap)
    if total // n_blocks >= min(k, total):
        return [total // n_blocks + (g < total % n_blocks) for g in range(n_blocks)]
    return [cap] * (total // cap) + ([total % cap] if total % cap else [])


#: Pool rows per chunk when drawing a bank's donors.
_LAYOUT_ROWS = 1024


def _bank_layout(
    y_pool: torch.Tensor, n: int, size: int, k: int, baseline: str, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``starts (N, size)``, ``donors (N, size)`` and ``blocks (size,)`` on the CPU: see :class:`TeacherBank`."""
    y_pool = y_pool.cpu()
    N = y_pool.shape[0]
    cols = torch.arange(size)
    starts = torch.rand((N, n), generator=gen).argsort(dim=1)[:, cols % n].contiguous()
    sizes = _block_sizes(size, n, k)
    blocks = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    donors = torch.full((N, size), -1, dtype=torch.long)
    if baseline in ("other_class", "same_class"):
        same = baseline == "same_class"
        for r0 in range(0, N, _LAYOUT_ROWS):  # row chunks bound the (rows, N) key matrices
            y = y_pool[r0 : r0 + _LAYOUT_ROWS]
            eligible = (y[:, None] == y_pool[None, :]) if same else (y[:, None] != y_pool[None, :])
            count = eligible.sum(dim=1, keepdim=True)
            if bool((count == 0).any()):
                kind = "same-class" if same else "other-class"
                bad = torch.unique(y[count[:, 0] == 0]).tolist()
                raise ValueError(f"no {kind} donor in the pool for label(s) {bad}")
            lo = 0
            for width in sizes:  # per block: a fresh random order of the eligible donors, cycled
                keys = torch.rand(eligible.shape, generator=gen).masked_fill(~eligible, float("inf"))
                order = keys.argsort(dim=1).gather(1, torch.arange(width)[None, :] % count)
                donors[r0 : r0 + _LAYOUT_ROWS, lo : lo + width] = order
                lo += width
    return starts, donors, blocks


class TeacherBank:
    """Teacher side of TSD, precomputed once per training series.

    The teacher is frozen, so its saliency on a perturbation depends only on (series, window
    start, donor). For every pool series ``i`` the bank stores ``M = bank_size`` perturbations
    (default 200 = 4x the ``K = 50`` used per step) and the teacher's clean logits ``logits``
    ``(N, k)`` and perturbed logits ``logits_perturbed`` ``(N, M, k)`` (computed in batches under
    ``torch.no_grad`` with the teacher in eval mode). Raw logits rather than the per-class terms
    ``tau^2 p_c (log p_c - log q_c)`` are stored: same memory, independent of ``tau`` and also
    serving the target-probability variant; the raw terms are :meth:`terms` (``kl_terms`` of
    the stored logits). No perturbed series are stored: a training step rebuilds them from
    ``starts``/``donors`` by a gather.

    Layout (built for ``n_windows = K``): the ``M`` entries of a row are cut into consecutive
    *blocks* of at most ``T-L`` entries and, where possible, at least ``K``
    (:func:`_block_sizes`; ``blocks[m]`` is entry ``m``'s block, the same for every row). The
    starts of a row are one random permutation of the ``T-L`` starts repeated along the row,
    so a block's starts are distinct and every start is stored ``floor`` or ``ceil(M / (T-L))``
    times. Each block takes its donors from a fresh random order of the series' ``E``
    eligible donors, cycled when the block is longer than ``E``.

    At each step :meth:`sample_entries` picks for every series one block, uniformly among those
    holding at least ``K`` entries, and ``K`` of its entries spread over as many donors as
    possible: ``K`` distinct starts and, when ``E >= K``, ``K`` distinct donors (otherwise no
    donor more than ``ceil(K / E)`` times). The chosen starts and donors are uniformly random
    subsets, randomly matched, so *averaged over the bank's construction* a step's
    perturbations are distributed as fresh sampling (:func:`perturb`) draws them when
    ``E >= K``; a fixed bank, however, only ever offers series ``i`` its ``M`` stored
    (start, donor) pairs.
    Normalisation depends on the batch and is applied at step time, exactly as
    :func:`distribution_shift` does.

    Supported baselines: ``BANK_BASELINES`` (``"noise"`` is redrawn at every use and cannot be
    banked). ``precompute_seconds`` records the build time. :attr:`FORMAT` versions the layout
    of :meth:`state_dict` (format 2: ``0 <= t < T-L`` and blocks of distinct donors).
    """

    FORMAT = 2

    def __init__(
        self,
        teacher: nn.Module,
        X_pool: torch.Tensor,
        y_pool: torch.Tensor,
        *,
        bank_size: int = 200,
        window: int = 10,
        tau: float = 8.0,
        baseline: str = "other_class",
        n_windows: int = 50,
        batch_size: int = 1024,
        seed: int = 0,
        device: torch.device | str | None = None,
        show_progress: bool | None = None,
    ) -> None:
        if baseline not in BANK_BASELINES:
            raise ValueError(
                f"TeacherBank supports baselines {BANK_BASELINES}, not {baseline!r} (use fresh sampling for it)"
            )
        if bank_size is None or bank_size < 1:
            raise ValueError(f"bank_size must be >= 1, got {bank_size}")
        if n_windows < 1:
            raise ValueError(f"n_windows must be >= 1, got {n_windows}")
        t0 = time.perf_counter()
        device = torch.device(device) if device is not None else _model_device(teacher)
        teacher.to(device)
        teacher.eval()
        X_pool = torch.as_tensor(np.asarray(X_pool) if not torch.is_tensor(X_pool) else X_pool)
        y_pool = torch.as_tensor(np.asarray(y_pool) if not torch.is_tensor(y_pool) else y_pool)
        dtype = X_pool.dtype if X_pool.is_floating_point() else torch.float32
        self.X_pool = X_pool.to(device=device, dtype=dtype).contiguous()
        self.y_pool = y_pool.to(device=device, dtype=torch.long).reshape(-1)
        N, _, T = self.X_pool.shape
        self.window = int(window)
        self.tau = float(tau)
        self.baseline = baseline
        self.bank_size = M = int(bank_size)
        self.n_windows = int(n_windows)
        n = n_starts(T, self.window)
        gen = torch.Generator().manual_seed(int(seed))
        layout = _bank_layout(self.y_pool, n, M, min(self.n_windows, n), baseline, gen)
        self.starts, self.donors, self.blocks = (t.to(device) for t in layout)

        rows = max(1, int(batch_size) // M)
        bar = progress(total=N, desc="teacher bank", unit="series", enabled=show_progress, leave=False)
        chunks_clean, chunks_pert = [], []
        with torch.no_grad(), bar:
            for i0 in range(0, N, rows):
                sl = slice(i0, min(N, i0 + rows))
                Xb = self.X_pool[sl]
                copies = apply_windows(Xb, self.starts[sl], self._values(Xb, sl), self.window)
                z, zp = perturbed_logits(teacher, Xb, copies, self.starts[sl])
                chunks_clean.append(z)
                chunks_pert.append(zp.reshape(Xb.shape[0], M, -1))
                bar.update(Xb.shape[0])
        self.logits = torch.cat(chunks_clean).contiguous()
        self.logits_perturbed = torch.cat(chunks_pert).contiguous()
        self.device = device
        self._derive()
        self.precompute_seconds = time.perf_counter() - t0

    # -- helpers -------------------------------------------------------------------------
    def _derive(self) -> None:
        """Quantities derived from the stored tensors (after building or restoring)."""
        self.n_classes = int(self.logits.shape[1])
        self.n_starts = n_starts(self.X_pool.shape[-1], self.window)
        self._sizes = torch.bincount(self.blocks).to(self.logits.dtype)
        #: Entries in the largest block: the largest ``K`` a step can draw from one block.
        self.max_block_k = int(self._sizes.max())
        self._warned: set[str] = set()

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(message, stacklevel=3)

    def _values(self, X: torch.Tensor, rows: slice | torch.Tensor, entries: torch.Tensor | None = None):
        """Replacement values ``(B, K, C, L)`` of the bank entries of pool ``rows`` for series ``X``."""
        starts = self.starts[rows] if entries is None else self.starts[rows].gather(1, entries)
        B, K = starts.shape
        C = X.shape[1]
        if self.baseline in ("other_class", "same_class"):
            donors = self.donors[rows] if entries is None else self.donors[rows].gather(1, entries)
            return gather_windows(self.X_pool, donors, starts, self.window)
        if self.baseline == "zero":
            return X.new_zeros(B, K, C, self.window)
        return X.mean(dim=-1)[:, None, :, None].expand(B, K, C, self.window)  # "mean"

    def _entries_distinct_starts(
        self, index: torch.Tensor, k: int, generator: torch.Generator | None
    ) -> torch.Tensor:
        """``k`` entries per series with distinct starts, ignoring blocks (donors may repeat).

        A first set of random keys elects one entry per (series, start), the smallest key via
        ``scatter_reduce``; independent keys then rank the elected entries, the others behind.
        """
        B, M = index.shape[0], self.bank_size
        starts = self.starts[index]
        elect = _rand((B, M), generator, self.device)
        best = torch.full((B, self.n_starts), 2.0, device=self.device).scatter_reduce(
            1, starts, elect, reduce="amin", include_self=True
        )
        winner = elect == best.gather(1, starts)
        rank = _rand((B, M), generator, self.device) + (~winner).to(elect.dtype)
        return rank.argsort(dim=1)[:, :k].contiguous()

    def terms(self, index: torch.Tensor | None = None, entries: torch.Tensor | None = None) -> torch.Tensor:
        """Raw teacher terms ``tau^2 p_c (log p_c - log q_c)`` of the bank: ``(len(index), M or K, k)``."""
        idx = torch.arange(self.logits.shape[0], device=self.device) if index is None else index.to(self.device)
        zq = self.logits_perturbed[idx]
        if entries is not None:
            zq = zq.gather(1, entries.to(self.device)[..., None].expand(-1, -1, zq.shape[-1]))
        return kl_terms(self.logits[idx], zq, self.tau)

    # -- public --------------------------------------------------------------------------
    def sample_entries(
        self, index: torch.Tensor, n_windows: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``K`` bank entries (columns ``0..M-1``) per series of ``index``, all from one block.

        Per series a block is chosen uniformly among those of at least ``K`` entries. Inside it,
        each entry gets the priority ``r + u``: ``r`` its rank among the block's entries of the
        same donor (in random order), ``u`` a uniform offset drawn per donor; the ``K`` lowest
        priorities are taken. Every donor's first entry comes before any donor's second, so
        donors are distinct whenever the block holds ``K`` different ones and otherwise used
        at most ``ceil(K / E)`` times; with distinct donors (or a donor-less baseline) this is a
        uniformly random ``K``-subset of the block. ``K`` is capped at ``T-L`` and at ``M`` (a
        warning, once per bank, for ``T-L``). If ``K`` exceeds every block (the bank was built for
        a smaller ``n_windows``), entries with distinct starts are drawn from the whole row
        instead and donors may repeat (a warning, once per bank).
        """
        index = index.to(self.device)
        if n_windows > self.n_starts:
            self._warn_once(
                "starts",
                f"n_windows={n_windows} exceeds the {self.n_starts} possible window starts; "
                f"using all {self.n_starts} starts instead",
            )
        k = min(int(n_windows), self.n_starts, self.bank_size)
        if k > self.max_block_k:
            self._warn_once(
                "blocks",
                f"TeacherBank built for n_windows={self.n_windows} has blocks of at most {self.max_block_k} "
                f"entries, fewer than K={k}: donors may repeat within a series (rebuild the bank with "
                f"n_windows={k})",
            )
            return self._entries_distinct_starts(index, k, generator)
        B, M = index.shape[0], self.bank_size
        valid = (self._sizes >= k).expand(B, -1)
        pick = _rand(valid.shape, generator, self.device).masked_fill(~valid, 2.0).argmin(dim=1)
        inside = self.blocks[None, :] == pick[:, None]  # (B, M)
        if self.baseline in ("other_class", "same_class"):
            group, n_groups = self.donors[index], self.X_pool.shape[0]
        else:  # no donors: every entry is its own group
            group, n_groups = torch.arange(M, device=self.device).expand(B, M), M
        rank = _rank_within_groups(torch.where(inside, group, -1), _rand((B, M), generator, self.device))
        offset = _rand((B, n_groups), generator, self.device).gather(1, group)
        priority = (rank + offset).masked_fill(~inside, float("inf"))
        return priority.argsort(dim=1)[:, :k].contiguous()

    def sample(
        self, index: torch.Tensor, n_windows: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(starts (B, K), donors (B, K), teacher_terms (B, K, k))`` for pool rows ``index``.

        ``teacher_terms`` are the raw (unnormalised) per-class terms of :func:`kl_terms`;
        ``donors`` is ``-1`` for the zero / mean baselines.
        """
        index = index.to(self.device)
        entries = self.sample_entries(index, n_windows, generator)
        starts = self.starts[index].gather(1, entries)
        donors = self.donors[index].gather(1, entries)
        return starts, donors, self.terms(index, entries)

    def perturbed(self, X: torch.Tensor, index: torch.Tensor, entries: torch.Tensor) -> torch.Tensor:
        """Rebuild the perturbed copies ``(B*K, C, T)`` of the chosen bank ``entries`` for ``X``."""
        index = index.to(self.device)
        starts = self.starts[index].gather(1, entries)
        return apply_windows(X, starts, self._values(X, index, entries), self.window)

    _TENSORS = ("X_pool", "y_pool", "starts", "donors", "blocks", "logits", "logits_perturbed", "_sizes")

    def to(self, device: torch.device | str) -> TeacherBank:
        """Move every stored tensor to ``device``; returns ``self``."""
        device = torch.device(device)
        for name in self._TENSORS:
            setattr(self, name, getattr(self, name).to(device))
        self.device = device
        return self

    _STATE = ("window", "baseline", "bank_size", "n_windows", "starts", "donors", "blocks", "logits",
              "logits_perturbed", "precompute_seconds")

    def state_dict(self) -> dict[str, Any]:
        """What :meth:`from_state` needs to rebuild the bank without running the teacher (CPU tensors)."""
        state = {k: (v.cpu() if torch.is_tensor(v) else v) for k in self._STATE for v in [getattr(self, k)]}
        return {"format": self.FORMAT, **state}

    @classmethod
    def from_state(cls, state: dict[str, Any], X_pool: torch.Tensor | np.ndarray, y_pool: torch.Tensor | np.ndarray,
                   *, tau: float = 8.0, device: torch.device | str | None = None) -> TeacherBank:
        """A bank restored from :meth:`state_dict` over the same pool (``tau`` is free: logits are stored).

        Raises ``ValueError`` for a state of another :attr:`FORMAT` (e.g. a bank cached before
        format 2, whose starts include ``T-L`` and whose donors repeat): rebuild it.
        """
        if state.get("format") != cls.FORMAT:
            raise ValueError(
                f"bank state has format {state.get('format', 1)}, expected {cls.FORMAT}: rebuild the bank"
            )
        bank = cls.__new__(cls)
        for k in cls._STATE:
            setattr(bank, k, state[k])
        bank.X_pool = torch.as_tensor(np.asarray(X_pool), dtype=torch.float32).contiguous()
        bank.y_pool = torch.as_tensor(np.asarray(y_pool), dtype=torch.long).reshape(-1)
        if bank.logits.shape[0] != len(bank.y_pool):
            raise ValueError(f"bank holds {bank.logits.shape[0]} series but the pool has {len(bank.y_pool)}")
        bank.tau = float(tau)
        bank.device = torch.device("cpu")
        bank._derive()
        return bank.to(device) if device is not None else bank

    def nbytes(self) -> int:
        """Bytes held by the bank's own tensors (not counting the pool)."""
        tensors = (self.starts, self.donors, self.blocks, self.logits, self.logits_perturbed)
        return sum(t.numel() * t.element_size() for t in tensors)
