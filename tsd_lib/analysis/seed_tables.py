"""Runs over student seeds and their tables: the runs of every method and seed, "mean ± std" per method
(for readers: method names, column headers in words, 3 significant digits), tables for readers in
general, and which runs come from an archive."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tsd_lib.experiment import RunConfig, run

if TYPE_CHECKING:
    from tsd_lib.profiles import Profile


#: The book's names of the methods, as tables and prose write them.
METHOD_LABELS = {"ce": "CE", "kd": "KD", "fitnets": "FitNets", "at": "AT", "rkd": "RKD", "dkd": "DKD",
                 "dt2w": "DT2W", "tsd": "TSD", "kd+tsd": "KD+TSD", "dkd+tsd": "DKD+TSD", "teacher": "teacher"}

#: Column headers in words (with units) of the students' metrics, for tables readers see.
METRIC_COLUMNS = {"accuracy": "test accuracy", "auc_pr": "test macro AUC-PR",
                  "agreement": "agreement with the teacher", "kl_teacher_student": "KL(teacher ‖ student), nats",
                  "train_seconds": "training time (s)"}


def method_label(method: str) -> str:
    """The book's name of a method (:data:`METHOD_LABELS`); a combination such as ``"kd+at"`` as ``"KD+AT"``."""
    return METHOD_LABELS.get(method) or "+".join(METHOD_LABELS.get(m, m.upper()) for m in method.split("+"))


def _decimals(x: float, digits: int) -> int | None:
    """Decimals that show ``x`` to ``digits`` significant digits (None: too small for fixed point)."""
    if x == 0 or not np.isfinite(x):
        return digits - 1
    decimals = max(0, digits - 1 - int(np.floor(np.log10(abs(x)))))
    return decimals if decimals <= 6 else None


def significant(x: float | None, digits: int = 3) -> str:
    """``x`` to ``digits`` significant digits, trailing zeros kept (``0.950``, ``0.0234``, ``12.3``,
    ``1,234``), in scientific notation below 1e-4 (``1.20e-05``); exact zero as ``0``, missing as ``"–"``."""
    if x is None or pd.isna(x):
        return "–"
    if x == 0:
        return "0"
    decimals = _decimals(float(x), digits)
    return f"{x:.{digits - 1}e}" if decimals is None else f"{x:,.{decimals}f}"


def mean_std(mean: float, std: float, decimals: int = 3, *, significant: int | None = None) -> str:
    """``"0.912 ± 0.015"``; the mean alone when ``std`` is missing (one seed), ``"–"`` without a mean. With
    ``significant``, the mean has that many significant digits and the std the same decimals
    (``"0.0234 ± 0.0051"``, ``"12.3 ± 1.2"``)."""
    if pd.isna(mean):
        return "–"
    if significant is not None:
        decimals = _decimals(float(mean if mean != 0 or pd.isna(std) else std), significant)
        if decimals is None:
            e = significant - 1
            return f"{mean:.{e}e}" if pd.isna(std) else f"{mean:.{e}e} ± {std:.{e}e}"
    if pd.isna(std):
        return f"{mean:.{decimals}f}"
    return f"{mean:.{decimals}f} ± {std:.{decimals}f}"


def seed_stats(frame: pd.DataFrame, metrics: Sequence[str], methods: Sequence[str]) -> pd.DataFrame:
    """Per method (rows, in ``methods`` order): ``(metric, "mean")`` and ``(metric, "std")`` over seeds."""
    missing = [m for m in metrics if m not in frame]
    if missing:
        raise ValueError(f"the runs have no column {missing[0]!r}; pick metrics among {sorted(frame.columns)}")
    return frame.groupby("method")[list(metrics)].agg(["mean", "std"]).reindex(list(methods))


def seed_table(frame: pd.DataFrame, metrics: Sequence[str], methods: Sequence[str], *, decimals: int = 3,
               labels: Mapping[str, str] | None = None, seeds_column: bool = False,
               significant: int | None = None) -> pd.DataFrame:
    """Method x metric table of "mean ± std" over the runs of ``frame`` (one row per run, a ``method``
    column); ``labels`` renames metric columns, ``seeds_column`` adds the number of runs first,
    ``significant`` formats each cell to that many significant digits (:func:`mean_std`)."""
    stats = seed_stats(frame, metrics, methods)
    table = pd.DataFrame({m: [mean_std(stats.at[k, (m, "mean")], stats.at[k, (m, "std")], decimals,
                                       significant=significant) for k in methods]
                          for m in metrics}, index=pd.Index(list(methods), name="method"))
    if seeds_column:
        table.insert(0, "seeds", frame.groupby("method").size().reindex(list(methods)).fillna(0).astype(int))
    return table.rename(columns=dict(labels or {}))


def students_table(frame: pd.DataFrame, metrics: Sequence[str], methods: Sequence[str]) -> pd.DataFrame:
    """:func:`seed_table` for readers: the methods by their names (:func:`method_label`, index ``method``),
    metric columns in words with units (:data:`METRIC_COLUMNS`), every cell "mean ± std" over the seeds to
    3 significant digits."""
    table = seed_table(frame, metrics, methods, labels=METRIC_COLUMNS, significant=3)
    return table.rename(index=method_label)


def student_runs(profile: Profile, dataset: str, methods: Sequence[str], *, teacher_seed: int,
                 source: Any = None) -> tuple[dict[tuple[str, int], RunConfig], pd.DataFrame]:
    """Every (method, student seed) of ``profile`` on ``dataset`` with ``teacher_seed``: the configs, keyed
    by method and seed, and a frame of their records (one row per run). Without ``source`` a missing run is
    trained and stored first (:func:`~tsd_lib.experiment.run`); with one (a run store or a
    :class:`~tsd_lib.runs.archive.Records`) the records are read from it."""
    configs = {(m, s): profile.base_config(dataset, teacher_seed=teacher_seed, method=m, seed=s)
               for m in methods for s in profile.seeds}
    load = run if source is None else source.load_record
    return configs, pd.DataFrame([load(c) for c in configs.values()])


def archived_runs(source: Any, configs: Iterable[Any]) -> list[Any]:
    """The ``configs`` that ``source`` (a :class:`~tsd_lib.runs.archive.Records`) reads from its results archive,
    because the profile does not train them; ``[]`` when every run is in the store (or ``source`` is the
    store)."""
    configs = list(configs)
    return list(source.from_archive(configs)) if hasattr(source, "from_archive") else []


def by_method(summary: Any) -> pd.DataFrame:
    """Method x dataset "mean ± std" of a :class:`~tsd_lib.report.tables.Summary`, plus the mean over datasets."""
    text = summary.text.T
    text["mean over datasets"] = [f"{v:.3f}" for v in summary.mean.mean(axis=0).reindex(text.index)]
    return text


def across_datasets(frame: pd.DataFrame, metrics: Sequence[str],
                    methods: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Mean over datasets per (method, seed), then over seeds: the "mean ± std" table, the
    :func:`seed_stats` and the per-seed frame (one row per method and seed)."""
    per_seed = frame.groupby(["method", "seed"])[list(metrics)].mean().reset_index()
    return seed_table(per_seed, metrics, methods), seed_stats(per_seed, metrics, methods), per_seed


def readers_table(frame: pd.DataFrame, columns: Mapping[str, str] | Sequence[str] | None = None, *,
                  caption: str | None = None) -> Any:
    """A table for readers (a pandas ``Styler``): ``frame``'s ``columns`` in order (all by default), renamed
    when ``columns`` maps raw names to headers in words; an unnamed integer index (row numbers) hidden, a
    named one kept; booleans as "yes"/"no"; floats to 3 significant digits (:func:`significant`, ``"–"`` when
    missing); an optional caption."""
    columns = dict(columns) if isinstance(columns, Mapping) else {c: c for c in (columns or frame.columns)}
    view = frame[list(columns)].copy()
    for c in view.columns:
        if view[c].dtype == bool or (view[c].dtype == object and view[c].map(type).eq(bool).any()):
            view[c] = view[c].map(lambda v: "yes" if v is True or v is np.True_ else
                                  "no" if v is False or v is np.False_ else v)
    floats = [columns[c] for c in view.columns if pd.api.types.is_float_dtype(view[c])]
    styler = view.rename(columns=columns).style.format(significant, subset=floats)
    if view.index.name is None and pd.api.types.is_integer_dtype(view.index):  # row numbers, not a meaning
        styler = styler.hide(axis="index")
    return styler.set_caption(caption) if caption else styler


def mean_gap(stats: pd.DataFrame, method: str, other: str, metric: str, *,
             decimals: int | None = None) -> dict[str, Any]:
    """How ``method``'s mean ``metric`` over seeds stands against ``other``'s (rows of :func:`seed_stats`), for
    a chapter's prose: the difference of the means, ``method`` minus ``other`` (``gap``) and its size
    (``size``); the side in a word (``side``: ``"above"``, ``"below"`` or ``"level with"``); the yardstick,
    the larger of the two seed standard deviations (``spread``, NaN with one seed); and whether the difference
    exceeds it, in words (``reading``: ``"larger than"``, ``"within"``, or ``"not comparable with"`` without
    a spread). With ``decimals``, every number is taken as the prose shows it, rounded to that many decimals,
    so that the difference a reader computes from the quoted means is the one quoted."""
    return gap_words(stats.at[method, (metric, "mean")], stats.at[other, (metric, "mean")],
                     [stats.at[m, (metric, "std")] for m in (method, other)], decimals=decimals)


def gap_words(mean: float, other: float, stds: Sequence[float], *, decimals: int | None = None) -> dict[str, Any]:
    """:func:`mean_gap` from two means and their seed standard deviations ``stds`` (NaN: one seed)."""
    if decimals is not None:
        mean, other, stds = round(float(mean), decimals), round(float(other), decimals), [
            s if pd.isna(s) else round(float(s), decimals) for s in stds]
    gap = float(mean - other) if decimals is None else round(float(mean - other), decimals)
    spread = float("nan") if all(pd.isna(s) for s in stds) else float(np.nanmax(np.asarray(stds, dtype=float)))
    side = "above" if gap > 0 else "below" if gap < 0 else "level with"
    reading = "not comparable with" if np.isnan(spread) else "larger than" if abs(gap) > spread else "within"
    return {"gap": gap, "size": abs(gap), "side": side, "spread": spread, "reading": reading}


def against_reference(stats: pd.DataFrame, methods: Sequence[str], reference: str, metric: str) -> dict[str, Any]:
    """Which of ``methods`` have a mean ``metric`` over seeds above ``reference``'s (rows of :func:`seed_stats`),
    for a chapter's prose: their names (:func:`method_label`, ``", "``-joined, ``"none"`` when empty) and count,
    all of them (``above``), those above by more than the seed spread (``above_beyond``) and those below by more
    than it (``below_beyond``; the spread as :func:`mean_gap` takes it), and how many methods were compared
    (``n``)."""
    gaps = {m: mean_gap(stats, m, reference, metric) for m in methods if m != reference}
    groups = {"above": [m for m, g in gaps.items() if g["side"] == "above"],
              "above_beyond": [m for m, g in gaps.items() if g["side"] == "above" and g["reading"] == "larger than"],
              "below_beyond": [m for m, g in gaps.items() if g["side"] == "below" and g["reading"] == "larger than"]}
    out: dict[str, Any] = {"n": len(gaps)}
    for name, group in groups.items():
        out[name] = ", ".join(method_label(m) for m in group) or "none"
        out[f"n_{name}"] = len(group)
    return out
