"""Selecting each (dataset, method)'s setting on validation data, and what test-set selection would add."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tsd_lib.report.records import (
    GROUP_COLS,
    HYPER_COLS,
    SETTING_COLS,
    _frame,
    higher_is_better,
    order_methods,
    setting_label,
)


def _check_homogeneous(work: pd.DataFrame, keys: list[str]) -> None:
    varying = [c for c in HYPER_COLS if c in work and (work.groupby(keys, dropna=False)[c].nunique() > 1).any()]
    dup = "seed" in work and (work.groupby([*keys, "seed"], dropna=False).size() > 1).any()
    if varying or dup:
        what = f"{', '.join(varying)} vary" if varying else "a student seed repeats"
        warnings.warn(
            f"{what} within one (dataset, method, setting): runs of different configurations are "
            "averaged together; filter the frame or add the column to setting_cols",
            UserWarning, stacklevel=3,
        )


def _pick(table: pd.DataFrame, col: str, higher: bool, group_cols: Sequence[str]) -> np.ndarray:
    """Mask of the best row per group by ``col`` (ties: lower val_loss, then the label)."""
    key = table.assign(_k=(-table[col] if higher else table[col]).round(12), _l=table["val_loss"])
    best = key.sort_values(["_k", "_l", "setting"], na_position="last", kind="mergesort")
    best = best.groupby(list(group_cols), dropna=False, sort=False).head(1)
    return table.index.isin(best.index)


def settings_table(
    df: pd.DataFrame | Iterable[Mapping[str, Any]], metric: str = "auc_pr", *,
    setting_cols: Sequence[str] = SETTING_COLS, group_cols: Sequence[str] = GROUP_COLS,
) -> pd.DataFrame:
    """Every (dataset, method, setting): seeds, mean validation score/loss, test mean/std, and which is selected.

    ``selected_val`` marks the setting with the best mean ``val_<metric>`` (ties: lower mean
    ``val_loss``); ``selected_test`` the best mean test ``metric`` (what the authors did).
    """
    df = _frame(df)
    val_col = f"val_{metric}"
    for col in (metric, val_col):
        if col not in df:
            raise ValueError(f"records lack {col!r}: cannot select on {metric!r}")
    work = df.assign(
        setting=[setting_label(r, setting_cols) for r in df.reindex(columns=list(setting_cols)).to_dict("records")],
        _val_loss=df.get("val_loss", np.nan),
    )
    keys = [*group_cols, "setting"]
    _check_homogeneous(work, keys)
    aggs: dict[str, tuple[str, str]] = {c: (c, "first") for c in setting_cols if c in work}
    aggs |= dict(
        n_seeds=(metric, "size"), val_mean=(val_col, "mean"), val_loss=("_val_loss", "mean"),
        test_mean=(metric, "mean"), test_std=(metric, "std"),
    )
    table = work.groupby(keys, dropna=False, sort=False).agg(**aggs).reset_index()
    higher = higher_is_better(metric)
    table["selected_val"] = _pick(table, "val_mean", higher, group_cols)
    table["selected_test"] = _pick(table, "test_mean", higher, group_cols)
    return _sort(table, [*group_cols, *[c for c in setting_cols if c in table]])


def _sort(df: pd.DataFrame, cols: Sequence[str]) -> pd.DataFrame:
    rank = {m: i for i, m in enumerate(order_methods(df["method"].unique()))} if "method" in df else {}

    def key(s: pd.Series) -> pd.Series:
        if s.name == "method":
            return s.map(rank)
        if s.name == "dataset":
            return s.astype(str).str.lower()
        return s

    cols = [c for c in cols if c in df]
    return df.sort_values(cols, key=key, kind="mergesort", na_position="last").reset_index(drop=True)


def select(
    df: pd.DataFrame | Iterable[Mapping[str, Any]], metric: str = "auc_pr", by: str = "val", *,
    setting_cols: Sequence[str] = SETTING_COLS, group_cols: Sequence[str] = GROUP_COLS,
) -> pd.DataFrame:
    """The runs (all student seeds) of the selected setting for each (dataset, method).

    ``by="val"``: best mean ``val_<metric>`` over student seeds, ties broken by lower mean
    ``val_loss`` (the protocol used here). ``by="test"``: best mean test ``metric`` (the
    authors' protocol, kept to measure its optimism). ``by="default"``: no tuning, every method
    at its default setting (TSD weight 1, a baseline's untuned run).
    """
    if by not in ("val", "test", "default"):
        raise ValueError(f"by must be 'val', 'test' or 'default', not {by!r}")
    df = _frame(df)
    if by == "default":
        tuning = df["tuning"] if "tuning" in df else pd.Series(None, index=df.index)
        default = tuning.isna() & (df["tsd_weight"].isna() | (df["tsd_weight"] == 1.0))
        return _sort(df[default], [*group_cols, *setting_cols, "seed"])
    table = settings_table(df, metric, setting_cols=setting_cols, group_cols=group_cols)
    chosen = table.loc[table[f"selected_{by}"], [*group_cols, "setting"]]
    work = df.assign(
        setting=[setting_label(r, setting_cols) for r in df.reindex(columns=list(setting_cols)).to_dict("records")]
    )
    out = work.merge(chosen, on=[*group_cols, "setting"], how="inner")
    return _sort(out, [*group_cols, *setting_cols, "seed"])


def selection_inflation(
    df: pd.DataFrame | Iterable[Mapping[str, Any]], metric: str = "auc_pr", *,
    setting_cols: Sequence[str] = SETTING_COLS,
) -> pd.DataFrame:
    """Per dataset x method: test mean under validation vs test selection and the difference.

    ``inflation = test_mean_test_selected - test_mean_val_selected`` (sign flipped for
    lower-is-better metrics, so inflation is always >= 0).
    """
    table = settings_table(df, metric, setting_cols=setting_cols)
    g = table.groupby(list(GROUP_COLS), sort=False)
    val = table[table["selected_val"]].set_index(list(GROUP_COLS))
    test = table[table["selected_test"]].set_index(list(GROUP_COLS))
    out = pd.DataFrame({
        "n_settings": g.size(),
        "val_selected": val["setting"], "test_selected": test["setting"],
        "test_mean_val_selected": val["test_mean"], "test_mean_test_selected": test["test_mean"],
    })
    sign = 1.0 if higher_is_better(metric) else -1.0
    out["inflation"] = sign * (out["test_mean_test_selected"] - out["test_mean_val_selected"])
    return _sort(out.reset_index(), list(GROUP_COLS))



def validation_ties(
    df: pd.DataFrame | Iterable[Mapping[str, Any]], metric: str = "auc_pr", *,
    setting_cols: Sequence[str] = SETTING_COLS,
) -> pd.DataFrame:
    """Per (dataset, method) tuned over several settings: how many settings share the best mean
    validation score (a tie is broken by the validation loss, so validation barely chose), the
    selected setting's test mean and the range of test means over all settings."""
    table = settings_table(df, metric, setting_cols=setting_cols)
    rows = []
    for (dataset, method), group in table.groupby(list(GROUP_COLS), sort=False):
        if len(group) < 2:
            continue
        best = group["val_mean"].max() if higher_is_better(metric) else group["val_mean"].min()
        chosen = group[group["selected_val"]].iloc[0]
        rows.append({"dataset": dataset, "method": method, "settings": len(group),
                     "tied at best validation": int(np.isclose(group["val_mean"], best, rtol=0, atol=1e-12).sum()),
                     "selected": chosen["setting"], "test of selected": chosen["test_mean"],
                     "test, worst setting": group["test_mean"].min(), "test, best setting": group["test_mean"].max()})
    return pd.DataFrame(rows)
