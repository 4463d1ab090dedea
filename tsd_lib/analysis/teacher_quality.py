"""Teachers in view: every archived teacher beside the published FCN and ResNet accuracy and the
majority class, and the datasets where a conclusion about distillation rests on a weak teacher (the
results page)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy.stats import binomtest

from tsd_lib.analysis.published import published_fcn, published_resnet
from tsd_lib.analysis.ucr_sizes import majority_share
from tsd_lib.report.style import COLUMN_WIDTH, other_color
from tsd_lib.runs.archive import resolve_teachers

#: A teacher this far below the published FCN accuracy is weak.
WEAK_GAP = 0.10
#: A teacher whose test accuracy an exact one-sided binomial test cannot tell, at this level, from the
#: share of the largest test class (always predicting that class) is near chance.
CHANCE_LEVEL = 0.05
#: The flags that leave a dataset out of the strong-teacher view.
FLAGS = ("weak teacher", "near chance", "students beat it")


def teacher_quality(records: Iterable[Mapping[str, Any]],
                    teachers: Iterable[Mapping[str, Any]] = ()) -> pd.DataFrame:
    """Per (dataset, teacher architecture) of student records: the chosen teacher's test accuracy,
    the published FCN and ResNet accuracy, the gap to the FCN, the best student method's mean
    accuracy (over seeds, every setting), and four flags: the teacher is weak (more than
    :data:`WEAK_GAP` below the published FCN), near chance (:func:`near_chance`; ``None`` where the
    majority class or the number of test series is unknown), students beat it, and the epoch cap ended
    it (from the teacher records ``teachers``, found by seed and test metrics; ``None`` where none
    matches)."""
    df = pd.DataFrame([dict(r) for r in records])
    if df.empty:
        return pd.DataFrame(columns=["dataset", "teacher", "teacher accuracy", "published FCN", "published ResNet",
                                     "gap to FCN", "majority class", "best student", "best student accuracy",
                                     "weak teacher", "near chance", "chance p", "students beat it",
                                     "teacher capped"])
    teachers = list(teachers)
    rows = []
    for (dataset, teacher), group in df.groupby(["dataset", "teacher"], sort=False):
        best = group.groupby("method")["accuracy"].mean()
        fcn, resnet = published_fcn(dataset), published_resnet(dataset)
        first = group.iloc[0]
        acc = float(first["teacher_accuracy"])
        share, n_test = majority_share(dataset), first.get("n_test")
        p = None if share is None or pd.isna(n_test) else chance_p(acc, int(n_test), share)
        rows.append({"dataset": dataset, "teacher": teacher, "teacher accuracy": acc,
                     "published FCN": np.nan if fcn is None else fcn,
                     "published ResNet": np.nan if resnet is None else resnet,
                     "gap to FCN": np.nan if fcn is None else acc - fcn,
                     "majority class": np.nan if share is None else share,
                     "best student": best.idxmax(), "best student accuracy": float(best.max()),
                     "weak teacher": fcn is not None and acc < fcn - WEAK_GAP,
                     "near chance": None if p is None else p >= CHANCE_LEVEL, "chance p": np.nan if p is None else p,
                     "students beat it": bool(best.max() > acc), "teacher capped": _capped(first, teachers)})
    return pd.DataFrame(rows)


def _capped(run: Mapping[str, Any], teachers: list[Mapping[str, Any]]) -> bool | None:
    """Whether the epoch cap ended the teacher a run learned from: the teacher record of the run's dataset,
    architecture and chosen seed whose test accuracy and AUC-PR are the run's teacher's (``None``: none)."""
    found = [t for t in teachers
             if (t["dataset"], t["teacher"], t["teacher_seed"], t["test_accuracy"], t["test_auc_pr"])
             == (run["dataset"], run["teacher"], run.get("teacher_seed_chosen", run.get("teacher_seed")),
                 run["teacher_accuracy"], run.get("teacher_auc_pr"))]
    return not found[0]["stopped_early"] if found else None


def chance_p(accuracy: float, n_test: int, share: float) -> float:
    """The exact one-sided binomial p that a model with ``accuracy`` on ``n_test`` series beats always
    predicting the largest class (``share`` of the series): at or above :data:`CHANCE_LEVEL` the model is
    near chance."""
    return float(binomtest(round(accuracy * n_test), n_test, share, alternative="greater").pvalue)


def flagged(table: pd.DataFrame) -> pd.Series:
    """Per row of :func:`teacher_quality`, whether any of :data:`FLAGS` is set (an unknown flag is not)."""
    return table[list(FLAGS)].eq(True).any(axis=1)


def strong_teacher_datasets(table: pd.DataFrame) -> list[str]:
    """The datasets whose every teacher is neither weak, near chance nor beaten by its students."""
    bad = flagged(table).groupby(table["dataset"]).any()
    return [d for d, b in bad.items() if not b]


def variant_comparison(studies: Mapping[str, Mapping[str, list[Any]]], records: Any,
                       variants: tuple[str, ...]) -> pd.DataFrame:
    """Per teacher study (``Profile.teacher_study_configs()``) that holds all ``variants`` (the protocol's
    first, then the remedies), one row per dataset: each variant's mean test accuracy over the seeds whose
    teacher is in ``records`` (an archive or a store), the number of those seeds, their median best epoch
    and how many of them the epoch cap ended; and the published FCN."""
    rows = []
    for study in studies.values():
        if not set(variants) <= set(study):
            continue
        dataset = study[variants[0]][0].dataset
        seeds = study_seeds(study, records).groupby("variant")
        row: dict[str, Any] = {"dataset": dataset}
        for variant in variants:
            found = seeds.get_group(variant) if variant in seeds.groups else None
            row[variant] = np.nan if found is None else float(found["test accuracy"].mean())
            row[f"{variant}: seeds"] = 0 if found is None else len(found)
            row[f"{variant}: best epoch"] = np.nan if found is None else float(found["best epoch"].median())
            row[f"{variant}: capped"] = 0 if found is None else int((~found["stopped early"]).sum())
        fcn = published_fcn(dataset)
        row["published FCN"] = np.nan if fcn is None else fcn
        rows.append(row)
    return pd.DataFrame(rows).set_index("dataset") if rows else pd.DataFrame()


def study_seeds(study: Mapping[str, list[Any]], records: Any) -> pd.DataFrame:
    """One teacher study (``{variant: [one config per seed]}``) seed by seed: each archived teacher's variant,
    seed, test accuracy and AUC-PR, best epoch, epochs run and whether early stopping ended it (a teacher the
    cap ended is read at the end of its continuations, :func:`~tsd_lib.runs.archive.resolve_teachers`)."""
    study = {variant: resolve_teachers(configs, records.has_teacher, records.load_teacher_record)
             for variant, configs in study.items()}
    rows = [{"variant": variant, "seed": c.teacher_seed, "test accuracy": r["test_accuracy"],
             "test AUC-PR": r["test_auc_pr"], "best epoch": r["best_epoch"], "epochs run": r["epochs_run"],
             "stopped early": bool(r["stopped_early"])}
            for variant, configs in study.items() for c in configs if records.has_teacher(c)
            for r in [records.load_teacher_record(c)]]
    return pd.DataFrame(rows, columns=["variant", "seed", "test accuracy", "test AUC-PR", "best epoch", "epochs run",
                                       "stopped early"])


def comparison_numbers(table: pd.DataFrame, remedy: str, tol: float = 1e-9) -> dict[str, Any]:
    """For the prose, from :func:`variant_comparison`: its ``sets``, on how many of them the ``remedy``
    variant's mean test accuracy is above (``better``), equal to (``equal``) or below (``worse``) the
    protocol's, where both have a seed archived (``compared``), the largest difference either way in accuracy
    points (``largest_gain``: remedy minus protocol; ``largest_loss``: protocol minus remedy; 0 where none),
    the fewest seeds behind a mean (``seeds``; 0 before any) and the seeds the cap ended (``capped``)."""
    if table.empty or remedy not in table:
        return {"sets": len(table), "compared": 0, "better": 0, "equal": 0, "worse": 0,
                "largest_gain": 0.0, "largest_loss": 0.0, "seeds": 0, "capped": 0}
    variants = [c for c in table.columns if f"{c}: seeds" in table.columns]
    other = next(v for v in variants if v != remedy)
    diff = (table[remedy] - table[other]).dropna()
    seeds = table[[f"{other}: seeds", f"{remedy}: seeds"]].min(axis=1)
    return {"sets": len(table), "compared": len(diff), "better": int((diff > tol).sum()),
            "equal": int((diff.abs() <= tol).sum()), "worse": int((diff < -tol).sum()),
            "largest_gain": float(100 * max(0.0, diff.max())) if len(diff) else 0.0,  # 0.0 first: never -0.0
            "largest_loss": float(100 * max(0.0, -diff.min())) if len(diff) else 0.0,
            "seeds": int(seeds.min()) if len(seeds) else 0,
            "capped": int(sum(table[f"{v}: capped"].sum() for v in variants))}


def variant_plot(table: pd.DataFrame, variants: tuple[str, ...]) -> Figure:
    """:func:`variant_comparison` as a bare figure: per dataset, each variant's mean test accuracy (a bar; none
    where the variant has no seed) and the published FCN (a black line across the group); a line of text says
    so when no dataset has a study yet."""
    fig = Figure(figsize=(COLUMN_WIDTH, 3.2), layout="constrained")
    ax = fig.add_subplot()
    if table.empty:
        ax.set_axis_off()
        ax.text(0.5, 0.5, "No teacher of these variants is archived yet.", ha="center", va="center",
                transform=ax.transAxes)
        return fig
    x, width = np.arange(len(table)), 0.8 / len(variants)
    for j, variant in enumerate(variants):
        ax.bar(x + (j - (len(variants) - 1) / 2) * width, table[variant], width, color=other_color(j), label=variant)
    ax.hlines(table["published FCN"], x - 0.45, x + 0.45, color="black", lw=2, zorder=3, label="published FCN")
    ax.set(xticks=x, ylabel="mean test accuracy", ylim=(0, 1.05))
    ax.set_xticklabels(table.index)
    ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
    return fig
