"""Runs over student seeds and their tables: the runs of every method and seed, "mean ± std" per method
and its caption, and how two methods compare."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tsd_lib.experiment import RunConfig, run

if TYPE_CHECKING:
    from tsd_lib.profiles import Profile


def mean_std(mean: float, std: float, decimals: int = 3) -> str:
    """``"0.912 ± 0.015"``; the mean alone when ``std`` is missing (one seed), ``"–"`` without a mean."""
    if pd.isna(mean):
        return "–"
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
               labels: Mapping[str, str] | None = None, seeds_column: bool = False) -> pd.DataFrame:
    """Method x metric table of "mean ± std" over the runs of ``frame`` (one row per run, a ``method``
    column); ``labels`` renames metric columns, ``seeds_column`` adds the number of runs first."""
    stats = seed_stats(frame, metrics, methods)
    table = pd.DataFrame({m: [mean_std(stats.at[k, (m, "mean")], stats.at[k, (m, "std")], decimals) for k in methods]
                          for m in metrics}, index=pd.Index(list(methods), name="method"))
    if seeds_column:
        table.insert(0, "seeds", frame.groupby("method").size().reindex(list(methods)).fillna(0).astype(int))
    return table.rename(columns=dict(labels or {}))


def student_runs(profile: Profile, dataset: str, methods: Sequence[str], *, teacher_seed: int,
                 source: Any = None) -> tuple[dict[tuple[str, int], RunConfig], pd.DataFrame]:
    """Every (method, student seed) of ``profile`` on ``dataset`` with ``teacher_seed``: the configs, keyed
    by method and seed, and a frame of their records (one row per run). Without ``source`` a missing run is
    trained and stored first (:func:`~tsd_lib.experiment.run`); with one (a run store or a
    :class:`~tsd_lib.archive.Records`) the records are read from it."""
    configs = {(m, s): profile.base_config(dataset, teacher_seed=teacher_seed, method=m, seed=s)
               for m in methods for s in profile.seeds}
    load = run if source is None else source.load_record
    return configs, pd.DataFrame([load(c) for c in configs.values()])


def seeds_caption(name: str, seeds: Sequence[int], teacher: Mapping[str, Any] | None = None) -> str:
    """The line above a seed table: ``"**D**, 2 student seeds (0, 1)"``, then the teacher's test accuracy
    and AUC-PR (``teacher``: its record) or, without one, ``", test split:"``."""
    head = f"**{name}**, {len(seeds)} student seeds ({', '.join(map(str, seeds))})"
    if teacher is None:
        return head + ", test split:"
    return f"{head}; teacher: accuracy {teacher['test_accuracy']:.3f}, AUC-PR {teacher['test_auc_pr']:.3f}."


def compare_means(stats: pd.DataFrame, a: str, b: str, metric: str) -> str:
    """``"0.900 vs 0.800: higher than, a gap larger than the seed-to-seed spread"``: method ``a`` against
    ``b`` on ``metric`` (``stats`` from :func:`seed_stats`); with one seed the spread is unknown."""
    (ma, sa), (mb, sb) = ((stats.at[m, (metric, "mean")], stats.at[m, (metric, "std")]) for m in (a, b))
    noise = np.nanmax([sa, sb]) if not (np.isnan(sa) and np.isnan(sb)) else np.nan
    word = "higher than" if ma > mb else "lower than" if ma < mb else "equal to"
    if np.isnan(noise):
        verdict = "with a single seed we cannot tell whether that exceeds seed noise"
    elif abs(ma - mb) > noise:
        verdict = "a gap larger than the seed-to-seed spread"
    else:
        verdict = "a gap within the seed-to-seed spread"
    return f"{ma:.3f} vs {mb:.3f}: {word}, {verdict}"


def archived_note(source: Any, configs: Iterable[Any], profile: str) -> str | None:
    """Which of ``configs`` ``source`` (a :class:`~tsd_lib.archive.Records`) reads from its archive because
    ``profile`` does not train them, or None when every run is in the store (or ``source`` is the store)."""
    configs = list(configs)
    archived = source.from_archive(configs) if hasattr(source, "from_archive") else []
    if not archived:
        return None
    return (f"{len(archived)} of these {len(configs)} runs (the feature baselines' seeds "
            f"{', '.join(sorted({str(c.seed) for c in archived}))}) are not trained by `{profile}`. "
            + source.archive.describe())


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
