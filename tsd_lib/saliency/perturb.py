"""Window perturbations: the core of Temporal Saliency Distillation (TSD).

TSD (Hewa Dehigahawattage, Nandakishor & Palaniswami, "Learning to Reason: Temporal Saliency
Distillation for Interpretable Knowledge Transfer", ECAI 2025, arXiv 2601.04263) measures how
much each subsequence matters to a classifier by *replacing* it and watching the prediction
move:

1. **Perturb.** For a series ``x`` (``C`` channels, length ``T``) pick ``K`` distinct window
   starts ``t`` and, for each, a donor series ``x'`` from the training pool with a *different*
   label. The perturbed copy ``x~(t)`` equals ``x`` except on ``[t, t+L)``, where it takes the
   donor's values ``x'[:, t:t+L]`` (:func:`perturb`).
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

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

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
    """Number of admissible window starts ``t in {0, ..., T-L}``, i.e. ``T - L + 1``."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if window > length:
        raise ValueError(f"window ({window}) is longer than the series ({length})")
    return length - window + 1


def draw_starts(
    batch: int,
    n_windows: int,
    length: int,
    window: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``K`` distinct random window starts per series, shape ``(batch, K)``, dtype long.

    Starts lie in ``0..T-L`` inclusive (``T-L+1`` choices, so the window ``[t, t+L)`` always
    fits; the authors' code draws from ``0..T-L-1``, one fewer choice). Each row is a uniformly
    random ``K``-subset in random order (the first ``K`` columns of the argsort of random keys).
    If ``K`` exceeds ``T-L+1`` every start is used (``K`` becomes ``T-L+1``) and a warning says so.
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
    logits: torch.Tensor, logits_perturbed: torch.Tensor, y: torch.Tensor, tau: float, eps: float = 1e-8
) -> torch.Tensor:
    """Variant saliency: drop of the target-class probability, ``p_y - q_{t,y}``, shape ``(B, K)``.

    ``p = softmax(z(x)/tau)``, ``q_t = softmax(z(x~(t))/tau)``; normalised like
    :func:`distribution_shift` (mean of the strictly positive entries + ``eps``).
    """
    B, k = logits.shape
    y = y.reshape(-1, 1).to(logits.device)
    p_y = F.softmax(logits / tau, dim=-1).gather(1, y)  # (B, 1)
    q = F.softmax(logits_perturbed.reshape(B, -1, k) / tau, dim=-1)
    q_y = q.gather(2, y[:, None, :].expand(B, q.shape[1], 1)).squeeze(-1)  # (B, K)
    return normalise_shift(p_y - q_y, eps)


# ----------------------------------------------------------------------------- teacher bank
def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


class TeacherBank:
    """Teacher side of TSD, precomputed once per training series.

    The teacher is frozen, so its saliency on a perturbation depends only on (series, window
    start, donor). For every pool series ``i`` the bank draws ``M = bank_size`` perturbations
    (default 200 = 4x the ``K = 50`` used per step): window starts (``M`` distinct when
    ``M <= T-L+1``, otherwise every start repeated in fresh random permutations) and donors
    (:func:`draw_donors`: other-class, without replacement where possible), and stores the
    teacher's clean logits ``logits`` ``(N, k)`` and perturbed logits ``logits_perturbed``
    ``(N, M, k)`` (computed in batches under ``torch.no_grad`` with the teacher in eval mode).
    Raw logits rather than the per-class terms ``tau^2 p_c (log p_c - log q_c)`` are stored:
    same memory, independent of ``tau`` and also serving the target-probability variant; the
    raw terms are :meth:`terms` (``kl_terms`` of the stored logits). No perturbed series are
    stored: a training step rebuilds them from ``starts``/``donors`` by a gather.

    At each step :meth:`sample` picks ``K`` entries per series with *distinct* starts (a
    uniformly random ``K``-subset of starts, and for each a uniformly random one of its bank
    entries), which matches the distribution of fresh sampling up to the finite donor set.
    Normalisation depends on the batch and is applied at step time, exactly as
    :func:`distribution_shift` does.

    Supported baselines: ``BANK_BASELINES`` (``"noise"`` is redrawn at every use and cannot be
    banked). ``precompute_seconds`` records the build time.
    """

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
        t0 = time.perf_counter()
        device = torch.device(device) if device is not None else _model_device(teacher)
        teacher.to(device)
        teacher.eval()
        X_pool = torch.as_tensor(np.asarray(X_pool) if not torch.is_tensor(X_pool) else X_pool)
        y_pool = torch.as_tensor(np.asarray(y_pool) if not torch.is_tensor(y_pool) else y_pool)
        self.X_pool = X_pool.to(device=device, dtype=torch.float32).contiguous()
        self.y_pool = y_pool.to(device=device, dtype=torch.long).reshape(-1)
        N, _, T = self.X_pool.shape
        self.window = int(window)
        self.tau = float(tau)
        self.baseline = baseline
        self.bank_size = M = int(bank_size)
        n = n_starts(T, self.window)
        gen = torch.Generator().manual_seed(int(seed))

        # Starts: ceil(M / n) random permutations of all starts per series, first M kept.
        reps = math.ceil(M / n)
        keys = torch.rand((N, reps, n), generator=gen)
        self.starts = keys.argsort(dim=-1).reshape(N, reps * n)[:, :M].contiguous().to(device)
        if baseline in ("other_class", "same_class"):
            self.donors = draw_donors(
                self.y_pool.cpu(), self.y_pool.cpu(), M, same_class=baseline == "same_class", generator=gen
            ).to(device)
        else:
            self.donors = torch.full((N, M), -1, dtype=torch.long, device=device)

        k = int(getattr(teacher, "n_classes", 0)) or None
        self.logits = torch.empty(0)
        self.logits_perturbed = torch.empty(0)
        rows = max(1, int(batch_size) // M)
        bar = progress(total=N, desc="teacher bank", unit="series", enabled=show_progress, leave=False)
        chunks_clean, chunks_pert = [], []
        with torch.no_grad(), bar:
            for i0 in range(0, N, rows):
                sl = slice(i0, min(N, i0 + rows))
                Xb = self.X_pool[sl]
                copies = apply_windows(Xb, self.starts[sl], self._values(Xb, sl), self.window)
                chunks_clean.append(teacher(Xb).float())
                chunks_pert.append(teacher(copies).float().reshape(Xb.shape[0], M, -1))
                bar.update(Xb.shape[0])
        self.logits = torch.cat(chunks_clean).contiguous()
        self.logits_perturbed = torch.cat(chunks_pert).contiguous()
        self.n_classes = k or self.logits.shape[1]
        self.device = device
        self.precompute_seconds = time.perf_counter() - t0

    # -- helpers -------------------------------------------------------------------------
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
        """``K`` bank entries (columns ``0..M-1``) per series of ``index``, with distinct starts.

        Random keys per entry; within each (series, start) only the entry with the smallest key
        competes (so a uniformly random entry of that start), the others are pushed behind;
        the ``K`` smallest keys win. If fewer than ``K`` distinct starts are banked, repeats of
        a start fill the rest.
        """
        index = index.to(self.device)
        B, M = index.shape[0], self.bank_size
        K = min(int(n_windows), M)
        starts = self.starts[index]  # (B, M)
        keys = _rand((B, M), generator, self.device)
        n = self.X_pool.shape[-1] - self.window + 1
        best = torch.full((B, n), 2.0, device=self.device).scatter_reduce(
            1, starts, keys, reduce="amin", include_self=True
        )
        winner = keys == best.gather(1, starts)
        keys = torch.where(winner, keys, keys + 1.0)
        return keys.argsort(dim=1)[:, :K].contiguous()

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

    def to(self, device: torch.device | str) -> TeacherBank:
        """Move every stored tensor to ``device``; returns ``self``."""
        device = torch.device(device)
        for name in ("X_pool", "y_pool", "starts", "donors", "logits", "logits_perturbed"):
            setattr(self, name, getattr(self, name).to(device))
        self.device = device
        return self

    def nbytes(self) -> int:
        """Bytes held by the bank's own tensors (not counting the pool)."""
        return sum(t.numel() * t.element_size() for t in (self.starts, self.donors, self.logits, self.logits_perturbed))
