"""Gradient saliency maps: vanilla gradients and integrated gradients (via captum).

Both return one value per timestep, ``(n, T)``, the per-channel attributions summed over
channels, so they can be compared with the sliding-window maps of :mod:`tsd_lib.saliency.maps`.
The target class is ``y`` when given, else the model's predicted class. The model runs in eval
mode (its mode is restored); on CUDA, cuDNN is disabled during the backward pass because
cuDNN's RNN backward refuses eval mode.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from tsd_lib.runtime import resolve_device

__all__ = ["gradient_map", "integrated_gradients_map"]

IG_BASELINES = ("zero", "mean")


@contextlib.contextmanager
def _grad_mode(model: nn.Module, device: torch.device) -> Iterator[None]:
    """Eval mode with gradients enabled; cuDNN off on CUDA (RNN backward needs train mode there)."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.enable_grad():
            if device.type == "cuda":
                with torch.backends.cudnn.flags(enabled=False):
                    yield
            else:
                yield
    finally:
        for m, mode in modes:
            m.training = mode


def _prepare(
    model: nn.Module,
    X: np.ndarray | torch.Tensor,
    y: np.ndarray | torch.Tensor | None,
    device: str | torch.device | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.device]:
    params = list(model.parameters())
    dev = resolve_device(device) if device is not None else (params[0].device if params else torch.device("cpu"))
    dtype = params[0].dtype if params and params[0].is_floating_point() else torch.float32
    x = (X if isinstance(X, torch.Tensor) else torch.as_tensor(np.asarray(X))).detach().to(dev, dtype)
    if x.dim() == 2:
        x = x.unsqueeze(1)
    if x.dim() != 3:
        raise ValueError(f"X must be (n, channels, length), got shape {tuple(x.shape)}")
    if y is None:
        with _grad_mode(model, dev), torch.no_grad():
            target = torch.cat([model(x[i : i + 256]).argmax(1) for i in range(0, len(x), 256)])
    else:
        target = (y if isinstance(y, torch.Tensor) else torch.as_tensor(np.asarray(y))).long().to(dev)
    return x, target, dev


def gradient_map(
    model: nn.Module,
    X: np.ndarray | torch.Tensor,
    y: np.ndarray | torch.Tensor | None = None,
    *,
    absolute: bool = True,
    batch_size: int = 256,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Vanilla gradient saliency ``(n, T)``: ``d z_c / d x``, summed over channels.

    ``absolute=True`` sums ``|grad|`` over channels (Simonyan et al., 2014); ``False`` sums the
    signed gradients. ``c = y`` if given, else the predicted class.
    """
    x, target, dev = _prepare(model, X, y, device)
    out = []
    with _grad_mode(model, dev):
        for i in range(0, len(x), batch_size):
            xb = x[i : i + batch_size].clone().requires_grad_(True)
            z = model(xb)
            (grad,) = torch.autograd.grad(z.gather(1, target[i : i + batch_size, None]).sum(), xb)
            out.append((grad.abs() if absolute else grad).sum(1).detach())
    return torch.cat(out).cpu().numpy().astype(np.float32)


def integrated_gradients_map(
    model: nn.Module,
    X: np.ndarray | torch.Tensor,
    y: np.ndarray | torch.Tensor | None = None,
    *,
    baseline: str | float | np.ndarray | torch.Tensor = "zero",
    steps: int = 32,
    absolute: bool = False,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    return_delta: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Integrated gradients ``(n, T)`` of the target logit, summed over channels.

    Uses captum's ``IntegratedGradients`` (a project dependency; Sundararajan et al., 2017)
    with ``steps`` Gauss-Legendre points. ``baseline``: ``"zero"``, ``"mean"`` (each series'
    per-channel mean over time, a constant series), a scalar, or an array broadcastable to
    ``X``. Completeness: a row of the map sums to about ``z_c(x) - z_c(baseline)``.
    ``absolute=True`` sums ``|attribution|`` over channels instead. With ``return_delta`` also
    returns captum's convergence deltas ``(n,)`` (sum of attributions minus the logit change).
    """
    from captum.attr import IntegratedGradients

    x, target, dev = _prepare(model, X, y, device)
    if isinstance(baseline, str):
        if baseline not in IG_BASELINES:
            raise ValueError(f"baseline must be one of {IG_BASELINES}, a number or an array, got {baseline!r}")
        base: float | torch.Tensor = 0.0 if baseline == "zero" else x.mean(-1, keepdim=True).expand_as(x)
    elif isinstance(baseline, int | float):
        base = float(baseline)
    else:
        b = baseline if isinstance(baseline, torch.Tensor) else torch.as_tensor(np.asarray(baseline))
        base = b.to(dev, x.dtype).expand_as(x)
    ig = IntegratedGradients(model)
    maps, deltas = [], []
    chunk = max(1, batch_size // max(1, steps))
    with _grad_mode(model, dev):
        for i in range(0, len(x), chunk):
            bb = base[i : i + chunk] if isinstance(base, torch.Tensor) else base
            att, delta = ig.attribute(
                x[i : i + chunk], baselines=bb, target=target[i : i + chunk], n_steps=int(steps),
                internal_batch_size=max(batch_size, steps), return_convergence_delta=True,
            )  # fmt: skip
            maps.append((att.abs() if absolute else att).sum(1).detach())
            deltas.append(delta.detach())
    out = torch.cat(maps).cpu().numpy().astype(np.float32)
    if return_delta:
        return out, torch.cat(deltas).cpu().numpy()
    return out
