"""Dataset x method summaries of the selected runs, fidelity per method, average ranks, wins/ties/losses."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from tsd_lib.report.records import FIDELITY_COLS, _is_missing, order_methods
from tsd_lib.report.selection import select


class Summary(NamedTuple):
    """A dataset x method table: ``text`` ("mean ± std"), numeric ``mean``, ``std`` and ``count``."""

    text: pd.DataFrame
    mean: pd.DataFrame
    std: pd.DataFrame
    count: pd.DataFrame


def _pivot(sel: pd.DataFrame, metric: str, how: str) -> pd.DataFrame:
    per = sel.groupby(["dataset", "method"])[metric]
    frame = getattr(per, how)().unstack("method")
    frame = frame.reindex(columns=order_methods(frame.columns))
    frame = frame.reindex(index=sorted(frame.index, key=lambda s: str(s).lower()))
    frame.index.name, frame.columns.name = "dataset", "method"
    return frame


def _mean_std(mean: float, std: float, decimals: int) -> str:
    if _is_missing(mean):
        return "–"
    if _is_missing(std):
        return f"{mean:.{decimals}f}"
    return f"{mean:.{decimals}f} ± {std:.{decimals}f}"


def summary_table(
    df: pd.DataFrame | Iterable[Mapping[str, Any]], metric: str = "auc_pr", *, select_metric: str = "auc_pr",
    by: str = "val", decimals: int = 3,
) -> Summary:
    """Dataset x method test ``metric``, "mean ± std" over the student seeds of the selected setting.

    The setting is chosen on ``val_<select_metric>`` (by="val") or on test ``select_metric``
    (by="test"); std is the sample std (ddof=1), left out when there is one seed.
    """
    sel = select(df, select_metric, by)
    if metric not in sel:
        raise ValueError(f"records lack {metric!r}")
    mean, std, count = (_pivot(sel, metric, how) for how in ("mean", "std", "count"))
    text = pd.DataFrame(
        [[_mean_std(mean.at[d, m], std.at[d, m], decimals) for m in mean.columns] for d in mean.index],
        index=mean.index, columns=mean.columns,
    )
    return Summary(text, mean, std, count.fillna(0).astype(int))


def fidelity_table(df: pd.DataFrame | Iterable[Mapping[str, Any]], select_metric: str = "auc_pr") -> pd.DataFrame:
    """Per method: mean over datasets (each the mean of its student seeds) of accuracy and fidelity metrics."""
    sel = select(df, select_metric, "val")
    cols = [c for c in FIDELITY_COLS if c in sel]
    per = sel.groupby(["dataset", "method"])[cols].mean().groupby("method").mean()
    per.insert(0, "n_datasets", sel.groupby("method")["dataset"].nunique())
    return per.reindex(order_methods(per.index))


def _complete(mean_frame: pd.DataFrame) -> pd.DataFrame:
    frame = mean_frame.dropna(axis=1, how="all")
    full = frame.dropna(axis=0, how="any")
    dropped = frame.index.difference(full.index)
    if len(dropped):
        warnings.warn(
            f"{len(dropped)} dataset(s) lack a method and are left out of ranks: {', '.join(map(str, dropped))}",
            UserWarning, stacklevel=3,
        )
    return full


def average_ranks(mean_frame: pd.DataFrame, higher_is_better: bool = True) -> pd.Series:
    """Mean rank per method (1 = best; ties share the average rank) over datasets with every method.

    ``mean_frame`` is dataset x method. Methods never run are dropped; datasets missing any
    method are left out (with a warning). ``result.attrs["n_datasets"]`` says how many count.
    """
    full = _complete(mean_frame)
    ranks = full.rank(axis=1, ascending=not higher_is_better, method="average")
    out = ranks.mean(axis=0).sort_values(kind="mergesort").rename("average_rank")
    out.index.name = "method"
    out.attrs["n_datasets"] = len(full)
    return out


def win_tie_loss(
    mean_frame: pd.DataFrame, baseline: str | Sequence[str] = "ce", tol: float = 1e-9, higher_is_better: bool = True,
) -> pd.DataFrame:
    """Wins/ties/losses of every method against ``baseline`` (one name or several) over datasets.

    A tie is ``|method - baseline| <= tol``; only datasets where both ran count. Also gives the
    mean and median difference (method - baseline) and a two-sided Wilcoxon signed-rank p-value.
    Baselines not in the frame are skipped.
    """
    from scipy.stats import wilcoxon

    baselines = [baseline] if isinstance(baseline, str) else list(baseline)
    rows = []
    for base in baselines:
        if base not in mean_frame:
            continue
        for method in order_methods(mean_frame.columns):
            if method == base:
                continue
            pair = mean_frame[[base, method]].dropna()
            diff = pair[method] - pair[base]
            if not higher_is_better:
                diff = -diff
            p = float("nan")
            if (diff.abs() > tol).sum() >= 2:
                with warnings.catch_warnings(), np.errstate(all="ignore"):
                    warnings.simplefilter("ignore")
                    with contextlib.suppress(ValueError):
                        p = float(wilcoxon(diff.to_numpy(), zero_method="wilcox").pvalue)
            rows.append({
                "baseline": base, "method": method, "wins": int((diff > tol).sum()),
                "ties": int((diff.abs() <= tol).sum()), "losses": int((diff < -tol).sum()),
                "n_datasets": len(diff), "mean_diff": float(diff.mean()) if len(diff) else float("nan"),
                "median_diff": float(diff.median()) if len(diff) else float("nan"), "p_wilcoxon": p,
            })
    cols = ["baseline", "method", "wins", "ties", "losses", "n_datasets", "mean_diff", "median_diff", "p_wilcoxon"]
    return pd.DataFrame(rows, columns=cols)

