"""The fast engines behind :func:`tsd_lib.saliency.maps.window_scores`.

An engine maps ``(model, xs (m, C, T), vals (m, K, C, L), starts (K,), L, batch_size, tick)``
to the logits ``(m, K, k)`` of the ``K`` perturbed copies of each series, where copy ``k``
holds ``vals[:, k]`` on ``[starts[k], starts[k] + L)`` (cut at the series end).

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

__all__ = ["conv_engine", "count_batches", "generic_engine", "lstm_engine", "pick_engine"]

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

Tick = Callable[[int], object]


def _insert(x: torch.Tensor, vals: torch.Tensor, offsets: torch.Tensor, window: int) -> torch.Tensor:
    """Copies of ``x`` (B, C, T') with ``vals`` (B, C, L) written at ``offsets`` (B,) (cut at T')."""
    b, c, length = x.shape
    out = F.pad(x, (0, window))
    idx = (offsets.view(-1, 1) + torch.arange(window, device=x.device)).view(b, 1, window).expand(b, c, window)
    out.scatter_(2, idx, vals)
    return out[..., :length]


def generic_engine(
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


def lstm_engine(
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


def conv_engine(
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


def count_batches(engine: Callable, n: int, n_k: int, batch_size: int, cuda: bool, chunk: int) -> int:
    """Forward passes an engine makes on ``n`` series fed ``chunk`` at a time (for the progress bar)."""
    total = 0
    for lo in range(0, n, chunk):
        m = min(chunk, n - lo)
        if engine is lstm_engine:
            sub, group = _lstm_blocks(m, batch_size, cuda)
            total += math.ceil(m / sub) * math.ceil(n_k / group)
        else:
            total += math.ceil(m * n_k / batch_size)
    return total


def pick_engine(model: nn.Module, probe: torch.Tensor, fast: bool) -> Callable:
    """The fastest engine whose clean logits match ``model(probe)``."""
    if not fast:
        return generic_engine
    candidates = []
    if _lstm_parts(model) is not None:
        candidates.append((lstm_engine, _lstm_clean))
    if _conv_plan(model) is not None:
        candidates.append((conv_engine, _conv_clean))
    if not candidates:
        return generic_engine
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
    return generic_engine
