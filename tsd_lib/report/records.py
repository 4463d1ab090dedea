"""Run records as one frame: reading a store, method order, settings labels, metric direction and names."""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

METHOD_ORDER: tuple[str, ...] = ("ce", "kd", "fitnets", "at", "rkd", "dkd", "dt2w", "tsd", "kd+tsd", "dkd+tsd")
GROUP_COLS: tuple[str, ...] = ("dataset", "method")
SETTING_COLS: tuple[str, ...] = ("teacher_seed", "tsd_weight", "tuning")
LOWER_IS_BETTER = frozenset({"ece", "kl_teacher_student", "js_teacher_student", "val_loss", "loss"})
METRIC_LABELS = {
    "auc_pr": "macro AUC-PR", "auc_pr_trapezoid": "macro AUC-PRC (trapezoidal)",
    "accuracy": "accuracy", "roc_auc": "ROC-AUC", "ap_micro": "micro AP",
    "agreement": "teacher-student agreement", "kl_teacher_student": "KL(teacher || student)",
    "js_teacher_student": "JS(teacher, student)", "ece": "ECE", "saliency_spearman": "saliency Spearman",
    "saliency_cosine": "saliency cosine", "saliency_topk_iou": "saliency top-10 IoU",
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


def tuning_label(weights: Any, settings: Any) -> str | None:
    """A baseline's tuned setting as a label (``"tau=4"``, ``"dt2w weight=0.1"``): the weights other
    than CE's and TSD's that differ from 1, and the term settings a run sets; None for the default."""
    parts = [f"{k} weight={_fmt_value(v)}" for k, v in sorted(_parse_weights(weights).items())
             if k not in ("ce", "tsd") and v != 1.0]
    if isinstance(settings, str):
        settings = json.loads(settings) if settings.strip() else None
    if isinstance(settings, Mapping):
        parts += [f"{k}={_fmt_value(v)}" for given in settings.values() for k, v in sorted(dict(given).items())]
    return ", ".join(parts) or None


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
    parts = [_fmt_value(row[c]) if c == "tuning" else f"{c}={_fmt_value(row[c])}"
             for c in cols if c in row and not _is_missing(row[c])]
    return ", ".join(parts) or "default"


def records_to_frame(records: Iterable[Mapping[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    """One row per completed run, plus ``tsd_weight``, ``other_weights``, ``tuning`` and ``setting`` columns.

    ``tsd_weight`` is ``weights["tsd"]`` (default 1.0) for methods using TSD and NaN otherwise;
    ``tuning`` a baseline's tuned setting (:func:`tuning_label`); ``setting`` labels (teacher_seed,
    tsd_weight, tuning). Records with an ``error`` key are skipped.
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
    settings = df["settings"] if "settings" in df else pd.Series([None] * len(df), index=df.index)
    df["tuning"] = [tuning_label(w, st) for w, st in zip(weights, settings, strict=True)]
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

