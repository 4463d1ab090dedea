"""Window perturbations: random window starts and donors, replacement values, perturbed copies.

Step 1 of TSD (see :mod:`tsd_lib.saliency.perturb`): for each series, ``K`` distinct window
starts and, per start, a donor series; the copy takes the donor's values on the window.
Everything is vectorised over the batch and takes an optional ``torch.Generator``.
"""

from __future__ import annotations

import warnings

import torch

from tsd_lib.settings import BASELINES, TSDSettings

__all__ = [
    "BASELINES",
    "apply_windows",
    "baseline_windows",
    "draw_donors",
    "draw_starts",
    "gather_windows",
    "n_starts",
    "perturb",
    "uniform_keys",
]



# ----------------------------------------------------------------------------- random draws
def uniform_keys(
    shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device | str | None
) -> torch.Tensor:
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
    keys = uniform_keys((batch, n), generator, device)
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
    keys = uniform_keys((B, N), generator, y.device).masked_fill(~eligible, float("inf"))
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
    n_windows: int = TSDSettings.n_windows,
    window: int = TSDSettings.window,
    baseline: str = TSDSettings.baseline,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """TSD's perturbations: ``K`` window replacements per series.

    Returns ``(copies, starts)``: ``copies`` ``(B*K, C, T)`` with row ``b*K + k`` the series
    ``X[b]`` whose window ``[t, t+L)``, ``t = starts[b, k]``, is replaced according to
    ``baseline`` (:func:`baseline_windows`); ``starts`` ``(B, K)`` are distinct per series
    (:func:`draw_starts`). Defaults: :class:`~tsd_lib.settings.TSDSettings` (the authors' ``K``, ``L``).
    """
    if X.dim() != 3:
        raise ValueError(f"X must be shaped (batch, channels, length), got {tuple(X.shape)}")
    B, _, T = X.shape
    starts = draw_starts(B, n_windows, T, window, generator=generator, device=X.device)
    values = baseline_windows(X, y, X_pool, y_pool, starts, window, baseline=baseline, generator=generator)
    return apply_windows(X, starts, values, window), starts
