"""Tables and figures from run records, with hyper-parameters selected on validation data.

The paper's scripts picked the TSD weight and the teacher seed by TEST-set score. Here every
(dataset, method) gets the *setting* (teacher seed, TSD weight) with the best mean validation
macro AUC-PR over student seeds (ties: lower mean validation loss); all student seeds of that
setting are then reported on the test split. :func:`selection_inflation` shows how much
selecting on the test set would have added.

The module works from plain record dicts (as written by ``tsd_lib.experiment.run``, or read
back with :func:`records_from_store`), so it also runs on results copied from another machine.
"""

from __future__ import annotations

import contextlib
import html
import json
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from tsd_lib.utils import atomic_write_bytes

METHOD_ORDER: tuple[str, ...] = ("ce", "kd", "fitnets", "at", "rkd", "dkd", "dt2w", "tsd", "kd+tsd", "dkd+tsd")
GROUP_COLS: tuple[str, ...] = ("dataset", "method")
SETTING_COLS: tuple[str, ...] = ("teacher_seed", "tsd_weight")
DEFAULT_PAIRS: tuple[tuple[str, str], ...] = (("kd", "kd+tsd"), ("dkd", "dkd+tsd"), ("ce", "tsd"))
LOWER_IS_BETTER = frozenset({"ece", "kl_teacher_student", "js_teacher_student", "val_loss", "loss"})
METRIC_LABELS = {
    "auc_pr": "macro AUC-PR", "accuracy": "accuracy", "roc_auc": "ROC-AUC", "ap_micro": "micro AP",
    "agreement": "teacher-student agreement", "kl_teacher_student": "KL(teacher || student)",
    "js_teacher_student": "JS(teacher, student)", "ece": "ECE", "saliency_spearman": "saliency Spearman",
}
# Config fields that should not vary inside one (dataset, method, setting); a sweep over one
# of them (e.g. a window-length study) must be filtered out or added to ``setting_cols``.
HYPER_COLS: tuple[str, ...] = (
    "teacher", "student", "tau", "n_windows", "window", "epochs", "patience", "split_seed", "length",
    "val_fraction", "batch_size", "lr", "teacher_epochs", "teacher_patience", "tsd_bank_size", "tsd_reduce",
    "tsd_score", "tsd_baseline", "other_weights",
)
FIDELITY_COLS: tuple[str, ...] = (
    "accuracy", "auc_pr", "agreement", "kl_teacher_student", "js_teacher_student", "ece",
    "saliency_spearman", "saliency_cosine", "saliency_topk_iou",
)
_METRIC_COLS = {*METRIC_LABELS, *FIDELITY_COLS, *LOWER_IS_BETTER, "val_accuracy", "val_auc_pr", "teacher_accuracy",
                "teacher_auc_pr"}
_NO_RUNS = "no completed runs: every record is missing or failed (has an 'error' key)"


class Summary(NamedTuple):
    """A dataset x method table: ``text`` ("mean ± std"), numeric ``mean``, ``std`` and ``count``."""

    text: pd.DataFrame
    mean: pd.DataFrame
    std: pd.DataFrame
    count: pd.DataFrame


# ----------------------------------------------------------------------------- records


def records_from_store(root: str | Path) -> list[dict[str, Any]]:
    """Read every ``ROOT/runs/*/record.json`` (or ``ROOT/*/record.json`` when ROOT is the runs folder)."""
    root = Path(root)
    folder = root / "runs" if (root / "runs").is_dir() else root
    out = []
    for path in sorted(folder.glob("*/record.json")):
        try:
            rec = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            warnings.warn(f"damaged record {path} ({err}); left out until `tsd grid` retrains it", stacklevel=2)
            continue
        if isinstance(rec, dict) and "error" not in rec:
            out.append(rec)
    return out


def order_methods(methods: Iterable[str]) -> list[str]:
    """Methods in reading order: ``METHOD_ORDER`` first, the others alphabetically."""
    methods = list(dict.fromkeys(methods))
    rank = {m: i for i, m in enumerate(METHOD_ORDER)}
    return sorted(methods, key=lambda m: (rank.get(m, len(rank)), str(m)))


def _parse_weights(weights: Any) -> dict[str, float]:
    if weights is None or (isinstance(weights, float) and math.isnan(weights)):
        return {}
    if isinstance(weights, str):
        weights = json.loads(weights) if weights.strip() else {}
    return {str(k): float(v) for k, v in dict(weights).items()}


def _tsd_weight(method: Any, weights: Any) -> float:
    if "tsd" not in str(method).split("+"):
        return float("nan")
    return float(_parse_weights(weights).get("tsd", 1.0))


def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float | np.floating) and math.isnan(v))


def _fmt_value(v: Any) -> str:
    if isinstance(v, float | np.floating) and float(v).is_integer():
        return str(int(v))
    if isinstance(v, float | np.floating):
        return f"{float(v):g}"
    return str(v)


def setting_label(row: Mapping[str, Any], cols: Sequence[str] = SETTING_COLS) -> str:
    """A readable, hashable label such as ``"teacher_seed=0, tsd_weight=10"`` (missing values left out)."""
    parts = [f"{c}={_fmt_value(row[c])}" for c in cols if c in row and not _is_missing(row[c])]
    return ", ".join(parts) or "default"


def records_to_frame(records: Iterable[Mapping[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    """One row per completed run, plus ``tsd_weight``, ``other_weights`` and ``setting`` columns.

    ``tsd_weight`` is ``weights["tsd"]`` (default 1.0) for methods using TSD and NaN otherwise;
    ``setting`` labels (teacher_seed, tsd_weight). Records with an ``error`` key are skipped.
    """
    if isinstance(records, pd.DataFrame):
        records = records.to_dict("records")
    rows = [dict(r) for r in records if isinstance(r, Mapping) and _is_missing(r.get("error"))]
    if not rows:
        raise ValueError(_NO_RUNS)
    df = pd.DataFrame(rows)
    for col in GROUP_COLS:
        if col not in df:
            raise ValueError(f"records lack the {col!r} field")
    if "error" in df:
        df = df.drop(columns="error")
    for col in _METRIC_COLS & set(df.columns):  # null (no validation split, an undefined metric) -> NaN
        df[col] = pd.to_numeric(df[col])
    if "teacher_seed" not in df:
        df["teacher_seed"] = np.nan
    weights = df["weights"] if "weights" in df else pd.Series([None] * len(df), index=df.index)
    df["tsd_weight"] = [_tsd_weight(m, w) for m, w in zip(df["method"], weights, strict=True)]
    df["other_weights"] = [
        json.dumps({k: v for k, v in sorted(_parse_weights(w).items()) if k != "tsd"}) for w in weights
    ]
    df["setting"] = [setting_label(r) for r in df[list(SETTING_COLS)].to_dict("records")]
    return df.reset_index(drop=True)


def _frame(df: pd.DataFrame | Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    if isinstance(df, pd.DataFrame) and "tsd_weight" in df and "setting" in df:
        if df.empty:
            raise ValueError(_NO_RUNS)
        return df
    return records_to_frame(df)


def higher_is_better(metric: str) -> bool:
    """False for losses, divergences and calibration error; True for scores."""
    return metric.removeprefix("val_") not in LOWER_IS_BETTER


def metric_label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric)


# ----------------------------------------------------------------------------- selection


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
    authors' protocol, kept to measure its optimism).
    """
    if by not in ("val", "test"):
        raise ValueError(f"by must be 'val' or 'test', not {by!r}")
    df = _frame(df)
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


# ----------------------------------------------------------------------------- tables


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


def _md_cell(v: Any, decimals: int) -> str:
    if isinstance(v, float | np.floating):
        return "" if math.isnan(v) else f"{v:.{decimals}f}"
    return str(v).replace("|", "\\|")


def _best_mask(numeric: pd.DataFrame, best: str | None) -> pd.DataFrame:
    mask = pd.DataFrame(False, index=numeric.index, columns=numeric.columns)
    if best not in ("max", "min"):
        return mask
    values = numeric.apply(pd.to_numeric, errors="coerce")
    target = values.max(axis=1) if best == "max" else values.min(axis=1)
    return values.sub(target, axis=0).abs().le(1e-12)


def write_table(
    frame: pd.DataFrame | pd.Series, path_stem: str | Path, *, numeric: pd.DataFrame | None = None,
    best: str | None = None, index: bool = True, decimals: int = 3, title: str | None = None,
) -> dict[str, Path]:
    """Write ``frame`` as ``<stem>.csv``, ``<stem>.md`` and a styled ``<stem>.html``.

    With ``best="max"`` or ``"min"`` the best cell of each row (judged on ``numeric``, default
    ``frame``) is bold in the markdown and HTML versions. Returns ``{"csv"|"md"|"html": path}``.
    """
    if isinstance(frame, pd.Series):
        frame = frame.to_frame()
    stem = Path(path_stem)
    mask = _best_mask(frame if numeric is None else numeric.reindex_like(frame), best)
    table = frame.reset_index() if index else frame.reset_index(drop=True)
    mask = (pd.concat([pd.DataFrame(False, index=frame.index, columns=frame.index.names), mask], axis=1)
            if index else mask).reset_index(drop=True)
    mask.columns = table.columns
    header = [str(c) for c in table.columns]

    def cells(fmt: Any) -> list[list[str]]:
        rows = enumerate(table.itertuples(index=False))
        return [[fmt(v, bool(mask.iat[i, j])) for j, v in enumerate(row)] for i, row in rows]

    md_rows = cells(lambda v, b: f"**{_md_cell(v, decimals)}**" if b else _md_cell(v, decimals))
    md = ["| " + " | ".join(_md_cell(h, decimals) for h in header) + " |", "|" + "---|" * len(header)]
    md += [f"| {' | '.join(r)} |" for r in md_rows]
    if title:
        md = [f"**{title}**", "", *md]
    html_rows = cells(lambda v, b: f"<td><b>{html.escape(_md_cell(v, decimals))}</b></td>" if b
                      else f"<td>{html.escape(_md_cell(v, decimals))}</td>")
    page = "\n".join([
        "<!DOCTYPE html>", "<html><head><meta charset=\"utf-8\">",
        f"<title>{html.escape(title or stem.name)}</title>",
        "<style>table.tsd{border-collapse:collapse;font-family:sans-serif;font-size:13px}"
        "table.tsd th,table.tsd td{border:1px solid #ccc;padding:3px 8px;text-align:right}"
        "table.tsd th{background:#f0f0f0}table.tsd td:first-child{text-align:left}"
        "table.tsd tr:nth-child(even){background:#fafafa}table.tsd b{color:#0b4f9c}</style></head><body>",
        f"<h3>{html.escape(title)}</h3>" if title else "",
        "<table class=\"tsd\"><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr></thead>",
        "<tbody>", *("<tr>" + "".join(r) + "</tr>" for r in html_rows), "</tbody></table></body></html>", "",
    ])
    paths = {"csv": stem.with_suffix(".csv"), "md": stem.with_suffix(".md"), "html": stem.with_suffix(".html")}
    atomic_write_bytes(paths["csv"], frame.to_csv(index=index).encode())
    atomic_write_bytes(paths["md"], ("\n".join(md) + "\n").encode())
    atomic_write_bytes(paths["html"], page.encode())
    return paths


# ----------------------------------------------------------------------------- figures


def _placeholder(message: str, title: str = "", size: tuple[float, float] = (6.0, 2.0)) -> Figure:
    fig = Figure(figsize=size)
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, fontsize=10, transform=ax.transAxes)
    if title:
        ax.set_title(title)
    return fig


def _save(fig: Figure, path: str | Path | None) -> Figure:
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=150, bbox_inches="tight")  # a bare Figure renders with the Agg canvas
    return fig


def _close(fig: Figure) -> None:
    import matplotlib.pyplot as plt

    plt.close(fig)  # no-op for figures pyplot does not manage


def critical_difference(
    mean_frame: pd.DataFrame, path: str | Path | None = None, *, higher_is_better: bool = True,
    alpha: float = 0.1, title: str | None = None,
) -> Figure:
    """aeon's critical-difference diagram (Wilcoxon + Holm cliques) of a dataset x method frame.

    Uses datasets where every method ran. With fewer than 2 datasets or 2 methods (or when aeon
    fails) a placeholder figure saying why is drawn instead; never raises for small inputs.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = _complete(mean_frame)
    n_data, n_methods = full.shape
    if n_data < 2 or n_methods < 2:
        why = (f"Critical-difference diagram needs >= 2 datasets and >= 2 methods with complete results;\n"
               f"have {n_data} dataset(s) x {n_methods} method(s).")
        return _save(_placeholder(why, title or ""), path)
    try:
        from aeon.visualisation import plot_critical_difference

        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            fig, ax = plot_critical_difference(
                full.to_numpy(dtype=float), [str(c) for c in full.columns], lower_better=not higher_is_better,
                alpha=alpha, width=7, textspace=1.6,
            )
        _close(fig)
    except Exception as exc:  # noqa: BLE001 - a report must not die on a plotting corner case
        return _save(_placeholder(f"Critical-difference diagram failed: {exc}", title or ""), path)
    ax.set_title(title or f"Average ranks over {n_data} datasets (alpha={alpha}, Wilcoxon-Holm cliques)",
                 fontsize=9, pad=4)
    return _save(fig, path)


def baseline_vs_tsd_scatter(
    mean_frame: pd.DataFrame, pairs: Sequence[tuple[str, str]] = DEFAULT_PAIRS, path: str | Path | None = None, *,
    metric: str = "auc_pr", tol: float = 1e-9, label_points: int = 15,
) -> Figure:
    """One panel per (baseline, TSD variant) pair: datasets as points, diagonal y = x.

    Points above the diagonal are datasets where adding TSD helps (for higher-is-better
    metrics). Pairs whose methods are absent are skipped; dataset names are shown when there
    are at most ``label_points`` datasets.
    """
    avail = [(b, t) for b, t in pairs
             if b in mean_frame and t in mean_frame and mean_frame[[b, t]].notna().all(axis=1).any()]
    if not avail:
        return _save(_placeholder(f"No (baseline, TSD) pair with results among {list(pairs)}."), path)
    fig = Figure(figsize=(4.2 * len(avail), 4.2), layout="constrained")
    axes = fig.subplots(1, len(avail), squeeze=False)[0]
    higher = higher_is_better(metric)
    for ax, (base, tsd) in zip(axes, avail, strict=True):
        pair = mean_frame[[base, tsd]].dropna()
        x, y = pair[base].to_numpy(float), pair[tsd].to_numpy(float)
        d = (y - x) if higher else (x - y)
        lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
        pad = max((hi - lo) * 0.08, 0.01)
        lo, hi = lo - pad, hi + pad
        ax.plot([lo, hi], [lo, hi], color="0.5", lw=1, ls="--", zorder=1)
        colors = np.where(d > tol, "tab:blue", np.where(d < -tol, "tab:red", "0.4"))
        ax.scatter(x, y, c=colors, s=28, edgecolor="k", linewidth=0.4, zorder=2)
        if len(pair) <= label_points:
            for name, xi, yi in zip(pair.index, x, y, strict=True):
                ax.annotate(str(name), (xi, yi), fontsize=6, xytext=(3, 2), textcoords="offset points")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_aspect("equal")
        ax.set_xlabel(f"{base} (test {metric_label(metric)})")
        ax.set_ylabel(f"{tsd} (test {metric_label(metric)})")
        w, t, l = int((d > tol).sum()), int((np.abs(d) <= tol).sum()), int((d < -tol).sum())
        side = "above" if higher else "below"
        ax.set_title(f"{tsd} vs {base}: W/T/L {w}/{t}/{l}\n({side} the diagonal: {tsd} better)", fontsize=9)
    return _save(fig, path)


def fidelity_plot(
    df: pd.DataFrame | Iterable[Mapping[str, Any]], path: str | Path | None = None, *, select_metric: str = "auc_pr",
    metrics: Sequence[str] = ("agreement", "kl_teacher_student", "saliency_spearman"),
) -> Figure:
    """Box + strip plots per method of teacher-student fidelity (validation-selected runs)."""
    import seaborn as sns

    sel = select(df, select_metric, "val")
    methods = order_methods(sel["method"].unique())
    fig = Figure(figsize=(max(4.0, 0.65 * len(methods) + 1.5) * len(metrics) / 1.6, 3.8), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, col in zip(axes, metrics, strict=True):
        arrow = "↓" if not higher_is_better(col) else "↑"
        ax.set_title(f"{metric_label(col)} {arrow}", fontsize=10)
        data = sel[["method", col]].dropna() if col in sel else pd.DataFrame()
        if data.empty:
            ax.set_axis_off()
            ax.text(0.5, 0.5, f"{col}: not recorded", ha="center", va="center", transform=ax.transAxes)
            continue
        data = data.assign(method=data["method"].astype(str))
        sns.boxplot(data=data, x="method", y=col, order=methods, ax=ax, color="#cfe0f3", showfliers=False,
                    linewidth=0.8)
        sns.stripplot(data=data, x="method", y=col, order=methods, ax=ax, color="k", size=2.5, alpha=0.6,
                      jitter=0.2)
        ax.set_xlabel("")
        ax.set_ylabel(col)
        ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    fig.suptitle("Teacher-student fidelity on the test split (validation-selected settings)", fontsize=10)
    return _save(fig, path)


def selection_plot(
    df: pd.DataFrame | Iterable[Mapping[str, Any]], metric: str = "auc_pr", path: str | Path | None = None,
) -> Figure:
    """Per method, the per-dataset gain test-set selection would add over validation selection."""
    infl = selection_inflation(df, metric)
    infl = infl[infl["n_settings"] > 1]
    if infl.empty:
        msg = "Every (dataset, method) has a single setting: validation and test selection coincide."
        return _save(_placeholder(msg, "Selection inflation"), path)
    methods = order_methods(infl["method"].unique())
    fig = Figure(figsize=(max(4.0, 0.8 * len(methods) + 2), 3.6), layout="constrained")
    ax = fig.add_subplot()
    rng = np.random.default_rng(0)
    for i, m in enumerate(methods):
        v = infl.loc[infl["method"] == m, "inflation"].to_numpy(float)
        ax.scatter(i + rng.uniform(-0.15, 0.15, len(v)), v, s=14, color="tab:orange", edgecolor="k", linewidth=0.3)
        ax.plot([i - 0.3, i + 0.3], [np.nanmean(v)] * 2, color="k", lw=2)
    ax.axhline(0, color="0.5", lw=1, ls="--")
    ax.set_xticks(range(len(methods)), methods, rotation=45, fontsize=8)
    ax.set_ylabel(f"test {metric_label(metric)}:\ntest-selected − val-selected")
    ax.set_title("How much selecting on the test set would inflate results (bar = mean)", fontsize=10)
    return _save(fig, path)


# ----------------------------------------------------------------------------- report


def _jsonable(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for col in out.columns:
        if out[col].map(lambda v: isinstance(v, dict | list | tuple)).any():
            out[col] = out[col].map(lambda v: json.dumps(v, sort_keys=True, default=str)
                                    if isinstance(v, dict | list | tuple) else v)
    return out


def _md_table(frame: pd.DataFrame, decimals: int = 3) -> str:
    header = [str(c) for c in frame.columns]
    lines = [f"| {' | '.join(header)} |", "|" + "---|" * len(header)]
    lines += [f"| {' | '.join(_md_cell(v, decimals) for v in row)} |" for row in frame.itertuples(False)]
    return "\n".join(lines)


def write_report(
    records: Iterable[Mapping[str, Any]] | pd.DataFrame, out_dir: str | Path, metric: str = "auc_pr",
) -> dict[str, Path]:
    """Write every table (CSV/MD/HTML), figure (PNG) and a README.md into ``out_dir``.

    Settings (teacher seed, TSD weight) are selected on validation ``metric`` (ties: validation
    loss). Returns ``{file name: path}``. Raises ``ValueError`` when no run completed.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}

    def add(written: dict[str, Path]) -> None:
        paths.update({p.name: p for p in written.values()})

    def figure(fig: Figure, name: str) -> None:
        _save(fig, out / name)
        _close(fig)
        paths[name] = out / name

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = records_to_frame(records)
        higher = higher_is_better(metric)
        best = "max" if higher else "min"
        summaries = {metric: summary_table(df, metric, select_metric=metric)}
        if metric != "accuracy" and "accuracy" in df:
            summaries["accuracy"] = summary_table(df, "accuracy", select_metric=metric)
        for m, s in summaries.items():
            add(write_table(s.text, out / f"summary_{m}", numeric=s.mean, best="max" if higher_is_better(m) else "min",
                            title=f"Test {metric_label(m)}, mean ± std over student seeds (selected on validation "
                                  f"{metric_label(metric)})"))
            add(write_table(s.mean, out / f"summary_{m}_mean", numeric=s.mean, best=best, decimals=4))
        ranks = pd.DataFrame({f"rank_{m}": average_ranks(s.mean, higher_is_better(m)) for m, s in summaries.items()})
        ranks = ranks.reindex(ranks.iloc[:, 0].sort_values(kind="mergesort").index)
        ranks["n_datasets"] = len(_complete(summaries[metric].mean))
        add(write_table(ranks, out / "ranks", title="Average rank over datasets (1 = best)"))
        wtl = win_tie_loss(summaries[metric].mean, baseline=("ce", "kd"), higher_is_better=higher)
        add(write_table(wtl, out / "win_tie_loss", index=False, decimals=4,
                        title=f"Wins/ties/losses vs baseline (test {metric_label(metric)})"))
        infl = selection_inflation(df, metric)
        add(write_table(infl, out / "inflation", index=False, decimals=4,
                        title="Test score under validation selection vs test selection (the authors' protocol)"))
        fid = fidelity_table(df, metric)
        add(write_table(fid, out / "fidelity", decimals=4, title="Fidelity (mean over datasets, validation-selected)"))
        settings = settings_table(df, metric)
        atomic_write_bytes(out / "settings.csv", settings.to_csv(index=False).encode())
        paths["settings.csv"] = out / "settings.csv"
        selected = _jsonable(select(df, metric, "val"))
        atomic_write_bytes(out / "selected_runs.csv", selected.to_csv(index=False).encode())
        paths["selected_runs.csv"] = out / "selected_runs.csv"

        figure(critical_difference(summaries[metric].mean, higher_is_better=higher,
                                   title=f"Test {metric_label(metric)}: average ranks"), f"cd_{metric}.png")
        figure(baseline_vs_tsd_scatter(summaries[metric].mean, metric=metric), f"scatter_{metric}.png")
        figure(fidelity_plot(df, select_metric=metric), "fidelity.png")
        figure(selection_plot(df, metric), f"selection_{metric}.png")
    notes = list(dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, UserWarning)))

    label = metric_label(metric)
    seeds = sorted(df["seed"].dropna().unique().tolist()) if "seed" in df else []
    tsd_rows = infl[infl["n_settings"] > 1]
    by_method = tsd_rows.groupby("method")["inflation"].agg(["mean", "max", "size"]).reindex(
        order_methods(tsd_rows["method"].unique()))
    lines = [
        "# TSD reproduction report", "",
        "**Protocol.** TSD weight and teacher seed selected on validation "
        f"{label} (ties: validation loss); the authors selected on the test set; "
        "the inflation table (`inflation.*`) shows the difference. Every number below is a test-split "
        "score, mean ± std over the student seeds of the selected setting.", "",
        f"- completed runs: {len(df)}; datasets: {df['dataset'].nunique()}; methods: "
        f"{', '.join(order_methods(df['method'].unique()))}; student seeds: {', '.join(map(_fmt_value, seeds))}",
        "",
        f"## Average ranks (test {label}, 1 = best)", "",
        _md_table(ranks.reset_index()), "",
        "## Selection inflation (test-selected − validation-selected test score)", "",
    ]
    if by_method.empty:
        lines.append("Each (dataset, method) has one setting: nothing was selected.")
    else:
        lines.append(_md_table(by_method.rename(columns={"size": "n_datasets"}).reset_index(), 4))
    lines += ["", "## Files", "", *(f"- `{name}`" for name in sorted(paths)), ""]
    if notes:
        lines += ["## Notes", "", *(f"- {n}" for n in notes), ""]
    atomic_write_bytes(out / "README.md", "\n".join(lines).encode())
    paths["README.md"] = out / "README.md"
    return paths
