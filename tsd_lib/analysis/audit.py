"""Convergence audit: did early stopping end every run, or did the epoch cap?

A run whose record says ``stopped_early: false`` ran into its epoch cap while its validation
loss was still improving within the patience window: it is not converged, and the chapters say so
wherever such a run stands behind a number.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd


def _frame(records: Iterable[Mapping[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    df = records if isinstance(records, pd.DataFrame) else pd.DataFrame([dict(r) for r in records])
    for col in ("stopped_early", "epochs_run", "best_epoch", "epochs"):
        if col not in df:
            raise ValueError(f"records lack {col!r}: they were made before convergence was recorded")
    return df


def capped_runs(records: Iterable[Mapping[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    """The runs the epoch cap ended (``stopped_early`` false)."""
    df = _frame(records)
    return df[~df["stopped_early"].astype(bool)]


def converged_only(records: Iterable[Mapping[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    """The runs early stopping ended."""
    df = _frame(records)
    return df[df["stopped_early"].astype(bool)]


def convergence_audit(records: Iterable[Mapping[str, Any]] | pd.DataFrame,
                      by: tuple[str, ...] = ("method",)) -> pd.DataFrame:
    """Per group: runs, runs ended by the cap, the cap, and the best epoch (median, max) and
    epochs run (max), so a reader sees how far below the cap training ended."""
    df = _frame(records)
    out = df.groupby(list(by), sort=False).agg(
        runs=("stopped_early", "size"),
        capped=("stopped_early", lambda s: int((~s.astype(bool)).sum())),
        epoch_cap=("epochs", "max"),
        best_epoch_median=("best_epoch", "median"),
        best_epoch_max=("best_epoch", "max"),
        epochs_run_max=("epochs_run", "max"),
    )
    return out

