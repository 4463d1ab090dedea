"""Sliding-window (occlusion) saliency maps, as TSD's teacher sees a series.

For every window start ``a`` (``0, stride, 2*stride, ...``) the series is copied with the window
``[a, a+L)`` replaced by baseline values (by default the same window of a training series of
another class, TSD's perturbation) and the model's reaction is scored:

* ``score="kl"``: TSD's distribution shift summed over classes,
  ``tau^2 * KL(softmax(z/tau) || softmax(z~/tau))`` (Hewa Dehigahawattage et al., ECAI 2025).
  TSD divides the scores of a training batch by their mean positive value; for a map that
  factor only rescales it, so scores are left raw unless ``normalize=True`` (then each series'
  window scores are divided by the mean of its positive ones);
* ``score="target_logit"``: the drop of the target logit ``z_c(x) - z_c(x~)``, which is what
  captum's ``Occlusion`` computes.

Each timestep gets the mean score of the windows covering it (0 if none covers it). Window
starts follow captum's ``Occlusion``: ``ceil((T - L) / stride) + 1`` starts, so with a stride
that does not divide ``T - L`` the last window is cut off at the series end. With
``baseline="zero"`` and ``score="target_logit"`` the map equals captum's
``Occlusion(model).attribute(X, sliding_window_shapes=(C, L), strides=(1, stride),
baselines=0, target=c)`` (identical across channels).

Speed ("recompute less"): the perturbed copies are scored by one of three engines, chosen
automatically and checked on the clean batch (a mismatch falls back to the generic engine):

* LSTM classifiers (``model.lstm`` + ``model.head`` on the last step): a recurrence before the
  window is untouched, so the clean per-step states of every layer are computed once and each
  perturbed copy only runs its suffix from the window start (about half the work);
* FCN-style conv nets (``model.blocks`` of stride-1 "same" convolutions and pointwise layers,
  global average pooling, ``model.head``): a window only changes outputs within its receptive
  field, so the conv stack (eval BatchNorm folded into the convolutions) is re-run on a crop
  of ``L + 2R`` steps (``R`` = total halo; out-of-series positions are zeroed before every
  convolution, exactly as "same" padding does) and the pooled sum is patched;
* anything else: full forward passes of ``batch_size`` perturbed copies.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tsd_lib.models import SameConv1d
from tsd_lib.saliency.perturb import BASELINES, baseline_windows, kl_terms
from tsd_lib.utils import progress as progress_bar
from tsd_lib.utils import progress_enabled, resolve_device

__all__ = ["SCORES", "saliency_map", "window_scores", "window_starts", "windows_to_map"]

SCORES = ("kl", "target_logit")
#: Series per call of ``baseline_windows``: fixed so that donor draws depend only on the data
#: and the generator seed, never on the model or ``batch_size``.
_SERIES_CHUNK = 256
_POINTWISE = (
    nn.BatchNorm1d,
    nn.ReLU,
    nn.LeakyReLU,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    nn.Tanh,
    nn.Sigmoid,
    nn.Identity,
    nn.Dropout,
)


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
    window: int = 10,
    stride: int = 1,
    baseline: str = "other_class",
    score: str = "kl",
    tau: float = 8.0,
    normalize: bool = False,
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
        normalize: divide each series' scores by the mean of its positive scores (+1e-8).
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
                normalize, generator, int(batch_size), progress, dev, dtype, fast,
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
    window: int = 10,
    stride: int = 1,
    baseline: str = "other_class",
    score: str = "kl",
    tau: float = 8.0,
    normalize: bool = False,
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
    kw |= dict(score=score, tau=tau, normalize=normalize, generator=generator, batch_size=batch_size)
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
    normalize: bool,
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
    engine = _pick_engine(model, Xd[: min(n, 64)], fast) if n else _generic_engine
    n_k = len(starts)
    n_batches = _count_batches(engine, n, n_k, batch_size, dev.type == "cuda")
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
    if normalize:
        pos = np.where(out > 0, out, 0.0)
        denom = pos.sum(1, keepdims=True) / np.maximum((out > 0).sum(1, keepdims=True), 1) + 1e-8
        out = out / denom
    return out, starts


# --------------------------------------------------------------------------- engines
# An engine maps (model, xs (m, C, T), vals (m, K, C, L), starts (K,), L, batch_size, tick)
# to perturbed logits (m, K, k).

Tick = Callable[[int], object]


def _insert(x: torch.Tensor, vals: torch.Tensor, offsets: torch.Tensor, window: int) -> torch.Tensor:
    """Copies of ``x`` (B, C, T') with ``vals`` (B, C, L) written at ``offsets`` (B,) (cut at T')."""
    b, c, length = x.shape
    out = F.pad(x, (0, window))
    idx = (offsets.view(-1, 1) + torch.arange(window, device=x.device)).view(b, 1, window).expand(b, c, window)
    out.scatter_(2, idx, vals)
    return out[..., :length]


def _generic_engine(
    model: nn.Module, xs: torch.Tensor, vals: torch.Tensor, starts: np.ndarray, window: int,
    batch_size: int, tick: Tick,
) -> torch.Tensor:  # fmt: skip
    m, n_k = vals.shape[:2]
    starts_t = torch.as_tensor(starts, device=xs.device)
    flat_vals = vals.reshape(m * n_k, *vals.shape[2:])
    outs = []
    for lo in range(0, m * n_k, batch_size):
        p = torch.arange(lo, min(m * n_k, lo + batch_size), device=xs.device)
        xb = _insert(xs[p // n_k], flat_vals[p], starts_t[p % n_k], window)
        outs.append(model(xb))
        tick(1)
    return torch.cat(outs).view(m, n_k, -1)


# ----- LSTM: prefix sharing


def _lstm_parts(model: nn.Module) -> tuple[nn.LSTM, nn.Module] | None:
    lstm, head = getattr(model, "lstm", None), getattr(model, "head", None)
    if not isinstance(lstm, nn.LSTM) or not isinstance(head, nn.Module):
        return None
    if not lstm.batch_first or lstm.bidirectional or lstm.proj_size:
        return None
    return lstm, head


def _lstm_states(lstm: nn.LSTM, x: torch.Tensor, upto: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-layer states after ``t`` steps, ``t = 0..upto``: ``h, c`` shaped ``(layers, B, upto+1, H)``."""
    b, hidden = x.shape[0], lstm.hidden_size
    hs, cs = [], []
    inp = x[:, :upto]
    for layer in range(lstm.num_layers):
        w_ih, w_hh = getattr(lstm, f"weight_ih_l{layer}"), getattr(lstm, f"weight_hh_l{layer}")
        gx = inp @ w_ih.T
        if lstm.bias:
            gx = gx + getattr(lstm, f"bias_ih_l{layer}") + getattr(lstm, f"bias_hh_l{layer}")
        h = x.new_zeros(b, hidden)
        c = x.new_zeros(b, hidden)
        h_seq, c_seq = [h], [c]
        for t in range(upto):
            i, f, g, o = (gx[:, t] + h @ w_hh.T).chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            h_seq.append(h)
            c_seq.append(c)
        hs.append(torch.stack(h_seq, 1))
        cs.append(torch.stack(c_seq, 1))
        inp = hs[-1][:, 1:]
    return torch.stack(hs), torch.stack(cs)


def _lstm_engine(
    model: nn.Module, xs: torch.Tensor, vals: torch.Tensor, starts: np.ndarray, window: int,
    batch_size: int, tick: Tick,
) -> torch.Tensor:  # fmt: skip
    lstm, head = _lstm_parts(model)  # type: ignore[misc]
    m, n_k = vals.shape[:2]
    sub, group = _lstm_blocks(m, batch_size, xs.device.type == "cuda")
    chunks = []
    for lo in range(0, m, sub):
        x = xs[lo : lo + sub]
        b = x.shape[0]
        h_all, c_all = _lstm_states(lstm, x.transpose(1, 2), int(starts.max()))
        rows = []
        for k0 in range(0, n_k, group):
            g = min(group, n_k - k0)
            t0 = int(starts[k0])
            suffix = x[..., t0:].repeat_interleave(g, dim=0)
            offs = torch.as_tensor(starts[k0 : k0 + g] - t0, device=x.device).repeat(b)
            v = vals[lo : lo + sub, k0 : k0 + g].reshape(b * g, *vals.shape[2:])
            xb = _insert(suffix, v, offs, window)
            h0 = h_all[:, :, t0].repeat_interleave(g, dim=1)
            c0 = c_all[:, :, t0].repeat_interleave(g, dim=1)
            seq, _ = lstm(xb.transpose(1, 2), (h0.contiguous(), c0.contiguous()))
            rows.append(head(seq[:, -1]).view(b, g, -1))
            tick(1)
        chunks.append(torch.cat(rows, 1))
    return torch.cat(chunks, 0)


#: On CPU an LSTM forward is about as efficient per row at 64 rows as at 256, while grouping
#: ``g`` window starts in one call (all run from the group's first start) wastes ``(g-1)/2``
#: steps per window, so CPU calls aim at this many rows; GPUs fill ``batch_size``.
_LSTM_CPU_ROWS = 64


def _lstm_blocks(m: int, batch_size: int, cuda: bool) -> tuple[int, int]:
    """(series per block, window starts per forward)."""
    sub = max(1, min(m, batch_size))
    rows = batch_size if cuda else min(batch_size, _LSTM_CPU_ROWS)
    return sub, max(1, rows // sub)


def _lstm_clean(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    lstm, head = _lstm_parts(model)  # type: ignore[misc]
    seq, _ = lstm(x.transpose(1, 2))
    return head(seq[:, -1])


# ----- conv nets: receptive-field crops


@dataclass
class _ConvStep:
    """A stride-1 convolution applied without padding (``left``/``right``: its "same" halo).

    An eval-mode ``BatchNorm1d`` right after the convolution is folded into ``weight``/``bias``.
    """

    weight: torch.Tensor
    bias: torch.Tensor | None
    dilation: int
    groups: int
    left: int
    right: int

    def fold(self, bn: nn.BatchNorm1d) -> None:
        inv = torch.rsqrt(bn.running_var + bn.eps)
        scale = bn.weight * inv if bn.affine else inv
        shift = bn.bias if bn.affine else torch.zeros_like(scale)
        bias = self.bias if self.bias is not None else torch.zeros_like(scale)
        self.weight = self.weight * scale.view(-1, 1, 1)
        self.bias = (bias - bn.running_mean) * scale + shift


def _conv_halo(m: nn.Module) -> tuple[int, int] | None:
    """(left, right) zero padding of a length-preserving stride-1 conv, or None."""
    if not isinstance(m, nn.Conv1d) or m.stride != (1,) or m.padding_mode != "zeros":
        return None
    span = m.dilation[0] * (m.kernel_size[0] - 1)
    if isinstance(m, SameConv1d):
        left = m.padding[0]
        right = left + int(m.extra_right)
    elif type(m) is nn.Conv1d:
        if m.padding == "same":
            left, right = span // 2, span - span // 2
        elif isinstance(m.padding, tuple) and m.padding[0] * 2 == span:
            left = right = m.padding[0]
        else:
            return None
    else:
        return None
    return (left, right) if left + right == span else None


def _conv_plan(model: nn.Module) -> list[_ConvStep | nn.Module] | None:
    """Layers of ``model.blocks`` if all are stride-1 "same" convs or pointwise (eval) layers.

    BatchNorm must use running statistics (eval mode), so that it acts per timestep.
    """
    blocks, head = getattr(model, "blocks", None), getattr(model, "head", None)
    if blocks is None or not isinstance(head, nn.Module):
        return None
    try:
        mods = [m for block in blocks for m in (block if isinstance(block, nn.Sequential) else [block])]
    except TypeError:
        return None
    plan: list[_ConvStep | nn.Module] = []
    for m in mods:
        if isinstance(m, nn.Conv1d):
            halo = _conv_halo(m)
            if halo is None:
                return None
            plan.append(_ConvStep(m.weight, m.bias, m.dilation[0], m.groups, *halo))
        elif isinstance(m, nn.BatchNorm1d):
            if m.training or m.running_mean is None or m.running_var is None:
                return None
            if plan and isinstance(plan[-1], _ConvStep):
                plan[-1].fold(m)
            else:
                plan.append(m)
        elif isinstance(m, _POINTWISE):
            plan.append(m)
        else:
            return None
    return plan if any(isinstance(p, _ConvStep) for p in plan) else None


def _conv_apply(plan: list[_ConvStep | nn.Module], x: torch.Tensor, valid: Callable | None = None) -> torch.Tensor:
    """Run the plan with "same" padding (``valid=None``) or on crops, zeroing out-of-series steps.

    ``valid(offset, width)`` returns a ``(B, 1, width)`` mask of the crop positions (starting
    ``offset`` steps into the crop's input) that lie inside the series.
    """
    offset = 0
    for step in plan:
        if isinstance(step, _ConvStep):
            if valid is None:
                x = F.pad(x, (step.left, step.right))
            else:
                x = x * valid(offset, x.shape[-1])
            offset += step.left
            x = F.conv1d(x, step.weight, step.bias, dilation=step.dilation, groups=step.groups)
        elif isinstance(step, nn.ReLU):
            x = F.relu(x) if torch.is_grad_enabled() else F.relu_(x)
        else:
            x = step(x)
    if valid is not None:
        x = x * valid(offset, x.shape[-1])
    return x


def _conv_engine(
    model: nn.Module, xs: torch.Tensor, vals: torch.Tensor, starts: np.ndarray, window: int,
    batch_size: int, tick: Tick,
) -> torch.Tensor:  # fmt: skip
    plan = _conv_plan(model)
    assert plan is not None
    steps = [p for p in plan if isinstance(p, _ConvStep)]
    r_left, r_right = sum(s.left for s in steps), sum(s.right for s in steps)
    halo = r_left + r_right
    m, n_k = vals.shape[:2]
    length = xs.shape[-1]
    feats = _conv_apply(plan, xs)  # (m, D, T)
    total = feats.sum(-1)
    # input crop [a - halo, a + L + halo); final affected features [a - r_right, a + L + r_left)
    x_pad = F.pad(xs, (halo, halo + window)).unfold(2, window + 2 * halo, 1)  # (m, C, P, W)
    f_pad = F.pad(feats, (r_right, r_left + window)).unfold(2, window + halo, 1)  # (m, D, P, W')
    starts_t = torch.as_tensor(starts, device=xs.device)
    flat_vals = vals.reshape(m * n_k, *vals.shape[2:])
    ar = torch.arange(window + 2 * halo, device=xs.device)
    outs = []
    for lo in range(0, m * n_k, batch_size):
        p = torch.arange(lo, min(m * n_k, lo + batch_size), device=xs.device)
        s, a = p // n_k, starts_t[p % n_k]
        crop = x_pad[s, :, a].clone()  # (B, C, W)
        crop[..., halo : halo + window] = flat_vals[p]
        pos0 = a.view(-1, 1, 1) - halo

        def valid(offset: int, width: int, pos0: torch.Tensor = pos0) -> torch.Tensor:
            pos = pos0 + offset + ar[:width]
            return ((pos >= 0) & (pos < length)).to(xs.dtype)

        new = _conv_apply(plan, crop, valid)  # (B, D, L + halo)
        emb = (total[s] - f_pad[s, :, a].sum(-1) + new.sum(-1)) / length
        outs.append(model.head(emb))
        tick(1)
    return torch.cat(outs).view(m, n_k, -1)


def _conv_clean(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    plan = _conv_plan(model)
    assert plan is not None
    return model.head(_conv_apply(plan, x).mean(-1))


def _count_batches(engine: Callable, n: int, n_k: int, batch_size: int, cuda: bool) -> int:
    """Forward passes an engine makes (for the progress bar)."""
    total = 0
    for lo in range(0, n, _SERIES_CHUNK):
        m = min(_SERIES_CHUNK, n - lo)
        if engine is _lstm_engine:
            sub, group = _lstm_blocks(m, batch_size, cuda)
            total += math.ceil(m / sub) * math.ceil(n_k / group)
        else:
            total += math.ceil(m * n_k / batch_size)
    return total


def _pick_engine(model: nn.Module, probe: torch.Tensor, fast: bool) -> Callable:
    """The fastest engine whose clean logits match ``model(probe)``."""
    if not fast:
        return _generic_engine
    candidates = []
    if _lstm_parts(model) is not None:
        candidates.append((_lstm_engine, _lstm_clean))
    if _conv_plan(model) is not None:
        candidates.append((_conv_engine, _conv_clean))
    if not candidates:
        return _generic_engine
    ref = model(probe)
    for engine, clean in candidates:
        try:
            got = clean(model, probe)
        except (RuntimeError, ValueError, TypeError):
            continue
        tol = 1e-4 * (1.0 + ref.abs().max().item())
        if got.shape == ref.shape and (got - ref).abs().max().item() <= tol:
            return engine
    warnings.warn(
        f"{type(model).__name__} looks like an LSTM/FCN but its forward differs from the shortcut; "
        "using full forward passes for the saliency map",
        stacklevel=3,
    )
    return _generic_engine
