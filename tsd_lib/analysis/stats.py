"""Dataset-level statistics for the claims (datasets are the unit of replication): the Wilcoxon
signed-rank test, the Friedman test with Iman-Davenport's F and Nemenyi's critical difference,
Holm's step-down adjustment and percentile bootstrap intervals over datasets.

Reference: J. Demšar, "Statistical comparisons of classifiers over multiple data sets", JMLR 7 (2006).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as st

ALTERNATIVES = ("two-sided", "greater", "less")


@dataclass(frozen=True)
class WilcoxonResult:
    """``statistic`` is W+ (the rank sum of the positive differences ``a - b``), ``n`` the pairs left
    after the ties, ``min_attainable_p`` the smallest p any signs of those ``n`` pairs could give."""

    statistic: float
    p: float
    n: int
    n_ties: int
    min_attainable_p: float

    @property
    def direction(self) -> int:
        """+1 when ``a`` tends above ``b`` (W+ above its null mean n(n+1)/4), -1 below, 0 neither."""
        return int(np.sign(self.statistic - self.n * (self.n + 1) / 4))


def min_attainable_p(n: int, alternative: str = "two-sided") -> float:
    """The smallest exact signed-rank p with ``n`` non-tied pairs: every sign alike has probability
    1/2**n, so two-sided min(1, 2/2**n) (n=5: 0.0625) and one-sided 1/2**n; n=0 gives 1."""
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be one of {ALTERNATIVES}, not {alternative!r}")
    if n <= 0:
        return 1.0
    return min(1.0, (2.0 if alternative == "two-sided" else 1.0) / 2.0**n)


def wilcoxon_paired(a: Sequence[float], b: Sequence[float], *, resolution: float,
                    alternative: str = "two-sided") -> WilcoxonResult:
    """Wilcoxon signed-rank test of the paired values ``a`` and ``b`` (one pair per dataset).

    With d = a - b, a difference with |d| < ``resolution`` is a tie and is dropped (Wilcoxon's
    zero method, ``zero_method="wilcox"``): ties never count for either side. The remaining n
    |d| get mid-ranks r_i and W+ = sum of r_i over d_i > 0. The p-value is exact for every n: the
    null distribution of W+ (each sign +/- with probability 1/2, given the mid-ranks) is built by
    convolution over the doubled ranks, so tied |d| are handled exactly too. Two-sided
    p = min(1, 2 min(P(W+ >= w), P(W+ <= w))); "greater": P(W+ >= w); "less": P(W+ <= w).
    """
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be one of {ALTERNATIVES}, not {alternative!r}")
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if d.shape != (d.size,) or np.isnan(d).any():
        raise ValueError("a and b must be 1-d sequences of equal length without NaN")
    kept = d[np.abs(d) >= resolution]
    n, ties = kept.size, d.size - kept.size
    if n == 0:
        return WilcoxonResult(0.0, 1.0, 0, ties, 1.0)
    doubled = np.rint(2 * st.rankdata(np.abs(kept))).astype(int)  # mid-ranks are multiples of 1/2
    dist = np.zeros(doubled.sum() + 1)
    dist[0] = 1.0
    for r in doubled:  # P(2 W+ = s): each rank joins W+ with probability 1/2
        dist[r:] = 0.5 * dist[r:] + 0.5 * dist[:-r]
        dist[:r] *= 0.5
    w2 = int(doubled[kept > 0].sum())
    upper, lower = min(1.0, dist[w2:].sum()), min(1.0, dist[: w2 + 1].sum())
    p = {"two-sided": min(1.0, 2 * min(upper, lower)), "greater": upper, "less": lower}[alternative]
    return WilcoxonResult(w2 / 2, float(p), n, ties, min_attainable_p(n, alternative))


@dataclass(frozen=True)
class FriedmanResult:
    """The Friedman test over ``n`` datasets (rows) and ``k`` methods (columns); ``ranks`` are the
    average ranks (1 = best), ``cd`` Nemenyi's critical difference at ``alpha``."""

    chi2: float
    p: float
    f: float
    f_p: float
    ranks: pd.Series
    n: int
    k: int
    cd: float
    alpha: float


def nemenyi_cd(k: int, n: int, alpha: float = 0.05) -> float:
    """Nemenyi's critical difference of average ranks: CD = q_alpha sqrt(k(k+1) / (6 n)), with
    q_alpha the studentized range quantile (k means, infinite df) over sqrt(2)
    (k=4: 2.569, k=10: 3.164, Demšar's table 5)."""
    q = st.studentized_range.ppf(1 - alpha, k, np.inf) / np.sqrt(2)
    return float(q * np.sqrt(k * (k + 1) / (6 * n)))


def tolerant_ranks(matrix: np.ndarray, resolution: float = 0.0) -> np.ndarray:
    """Ranks within each row, 1 = highest: r_i = 1 + #{j: x_j - x_i >= resolution} + (#{j != i:
    |x_j - x_i| < resolution} / 2), so scores closer than ``resolution`` share their mean rank (with
    ``resolution`` 0, the usual mid-ranks). Every row's ranks still sum to k(k+1)/2."""
    x = np.asarray(matrix, dtype=float)
    diff = x[:, None, :] - x[:, :, None]  # [row, i, j] = x_j - x_i
    tie = (np.abs(diff) < resolution) | (diff == 0)
    return 1 + ((diff > 0) & ~tie).sum(axis=2) + 0.5 * (tie.sum(axis=2) - 1)


def friedman(matrix: pd.DataFrame | np.ndarray, alpha: float = 0.05, *, resolution: float = 0.0) -> FriedmanResult:
    """Friedman test on a datasets x methods matrix of scores, higher better (rows with a NaN are
    left out). Per row the methods get ranks r_ij (:func:`tolerant_ranks`: 1 = best, scores closer
    than ``resolution`` tie); R_j = mean_i r_ij. chi2_F = 12N / (k(k+1)) [sum_j R_j^2 - k(k+1)^2 / 4]
    with k-1 df (no tie correction, as in Demšar 2006); Iman-Davenport F_F = (N-1) chi2_F / (N(k-1) -
    chi2_F) with (k-1, (k-1)(N-1)) df (infinite, p = 0, when every row ranks the methods alike)."""
    frame = pd.DataFrame(matrix).dropna()
    n, k = frame.shape
    if n < 2 or k < 2:
        raise ValueError(f"the Friedman test needs >= 2 complete datasets and >= 2 methods, got {n} x {k}")
    ranks = pd.Series(tolerant_ranks(frame.to_numpy(), resolution).mean(axis=0), index=frame.columns)
    chi2 = float(12 * n / (k * (k + 1)) * (np.sum(ranks.to_numpy() ** 2) - k * (k + 1) ** 2 / 4))
    denom = n * (k - 1) - chi2
    f = float(np.inf if denom <= 1e-12 else (n - 1) * chi2 / denom)
    f_p = 0.0 if np.isinf(f) else float(st.f.sf(f, k - 1, (k - 1) * (n - 1)))
    return FriedmanResult(chi2, float(st.chi2.sf(chi2, k - 1)), f, f_p, ranks, n, k, nemenyi_cd(k, n, alpha), alpha)


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjustment: with the m finite p sorted p_(1) <= ... <= p_(m),
    p~_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)); monotone in p, capped at 1, NaN kept."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    order = finite[np.argsort(p[finite], kind="stable")]
    m = order.size
    out[order] = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    return out


def bootstrap_ci(values: Sequence[float], stat: Callable[..., np.ndarray] = np.median, n_boot: int = 10000,
                 seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of ``stat`` over datasets: resample the n values with
    replacement ``n_boot`` times, take the (1-level)/2 and (1+level)/2 quantiles of the statistic.
    ``stat`` is called as ``stat(array, axis=1)``; (NaN, NaN) without values."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return float("nan"), float("nan")
    idx = np.random.default_rng(seed).integers(0, x.size, size=(n_boot, x.size))
    boot = stat(x[idx], axis=1)
    low, high = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def paired_effect(a: Sequence[float], b: Sequence[float], *, relative: bool = False,
                  stat: Callable[..., np.ndarray] = np.median, n_boot: int = 10000, seed: int = 0,
                  level: float = 0.95) -> tuple[float, float, float]:
    """``stat`` of the per-dataset changes and its bootstrap interval: (value, low, high), the
    changes a_i - b_i, or 100 (a_i - b_i) / b_i (%) when ``relative``."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    change = 100 * (a - b) / b if relative else a - b
    if change.size == 0:
        return float("nan"), float("nan"), float("nan")
    return (float(stat(change[None, :], axis=1)[0]),
            *bootstrap_ci(change, stat, n_boot=n_boot, seed=seed, level=level))
