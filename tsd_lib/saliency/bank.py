"""The teacher side of TSD, precomputed once per training series: :class:`TeacherBank`."""

from __future__ import annotations

import math
import time
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from tsd_lib.saliency.shift import kl_terms, model_device, perturbed_logits
from tsd_lib.saliency.windows import apply_windows, gather_windows, n_starts, uniform_keys
from tsd_lib.settings import TSDSettings
from tsd_lib.utils import progress

__all__ = ["BANK_BASELINES", "TeacherBank"]

#: Baselines a :class:`TeacherBank` can store (``noise`` is redrawn at every use, so it cannot).
BANK_BASELINES = ("other_class", "same_class", "zero", "mean")




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
    (default: :class:`~tsd_lib.settings.TSDSettings`', 4x the ``K`` used per step) and the
    teacher's clean logits ``logits``
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
        bank_size: int = TSDSettings.bank_size,
        window: int = TSDSettings.window,
        tau: float = TSDSettings.tau,
        baseline: str = TSDSettings.baseline,
        n_windows: int = TSDSettings.n_windows,
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
        device = torch.device(device) if device is not None else model_device(teacher)
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
        elect = uniform_keys((B, M), generator, self.device)
        best = torch.full((B, self.n_starts), 2.0, device=self.device).scatter_reduce(
            1, starts, elect, reduce="amin", include_self=True
        )
        winner = elect == best.gather(1, starts)
        rank = uniform_keys((B, M), generator, self.device) + (~winner).to(elect.dtype)
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
        pick = uniform_keys(valid.shape, generator, self.device).masked_fill(~valid, 2.0).argmin(dim=1)
        inside = self.blocks[None, :] == pick[:, None]  # (B, M)
        if self.baseline in ("other_class", "same_class"):
            group, n_groups = self.donors[index], self.X_pool.shape[0]
        else:  # no donors: every entry is its own group
            group, n_groups = torch.arange(M, device=self.device).expand(B, M), M
        rank = _rank_within_groups(torch.where(inside, group, -1), uniform_keys((B, M), generator, self.device))
        offset = uniform_keys((B, n_groups), generator, self.device).gather(1, group)
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
                   *, tau: float = TSDSettings.tau, device: torch.device | str | None = None) -> TeacherBank:
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
