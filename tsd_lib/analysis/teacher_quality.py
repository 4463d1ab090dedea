"""Teachers in view: every archived teacher beside the published FCN and ResNet accuracy and the
majority class, and the datasets where a conclusion about distillation rests on a weak teacher (the
results page)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
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
#: A teacher this close to the published FCN accuracy (or above it) reproduces it.
REPRODUCED_GAP = 0.03
#: How :func:`against_published` reads a teacher's gap to the published FCN, in that order.
READINGS = (f"within {round(100 * REPRODUCED_GAP)} points", "within sampling error", "a remedy closes it",
            "unexplained")


def teacher_quality(records: Iterable[Mapping[str, Any]],
                    teachers: Iterable[Mapping[str, Any]] = ()) -> pd.DataFrame:
    """Per (dataset, teacher architecture) of student records: the chosen teacher's test accuracy,
    the published FCN and ResNet accuracy, the gap to the FCN, the best student method's mean
    accuracy (over seeds, every setting), the number of test series, and four flags: the teacher is weak (more than
    :data:`WEAK_GAP` below the published FCN), near chance (:func:`chance_p`; ``None`` where the
    majority class or the number of test series is unknown), students beat it, and the epoch cap ended
    it (from the teacher records ``teachers``, found by seed and test metrics; ``None`` where none
    matches)."""
    df = pd.DataFrame([dict(r) for r in records])
    if df.empty:
        return pd.DataFrame(columns=["dataset", "teacher", "teacher accuracy", "published FCN", "published ResNet",
                                     "gap to FCN", "majority class", "test series", "best student",
                                     "best student accuracy", "weak teacher", "near chance", "chance p",
                                     "students beat it", "teacher capped"])
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
                     "test series": np.nan if pd.isna(n_test) else int(n_test),
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


def against_published(table: pd.DataFrame, teacher: str, studies: Mapping[str, Mapping[str, list[Any]]],
                      records: Any, protocol: Collection[str] = ()) -> pd.DataFrame:
    """Per dataset, how ``teacher``'s gap to the published FCN reads (:func:`teacher_quality` rows): within
    :data:`REPRODUCED_GAP`; else within the test set's sampling error (an exact two-sided binomial test of its
    correct test series against the published accuracy, ``p`` at or above :data:`CHANCE_LEVEL`); else a remedy
    closes it (some variant of a teacher study of that teacher on that dataset, ``studies`` as in
    :func:`variant_comparison` with the study's baseline first, reaches within :data:`REPRODUCED_GAP` of the
    published FCN on its mean over the seeds archived in ``records``; a variant whose every teacher key is in
    ``protocol``, the arm's own candidates, is no remedy); else unexplained. The best remedy and its mean are
    given where a study has one."""
    remedies = _best_remedies(studies, records, teacher, set(protocol))
    rows = []
    for _, row in table[(table["teacher"] == teacher) & table["published FCN"].notna()].iterrows():
        acc, fcn, n = row["teacher accuracy"], row["published FCN"], row["test series"]
        p = np.nan if pd.isna(n) else float(binomtest(round(acc * n), int(n), fcn).pvalue)
        name, remedy = remedies.get(row["dataset"], ("none", np.nan))
        reading = READINGS[0] if acc >= fcn - REPRODUCED_GAP else READINGS[1] if p >= CHANCE_LEVEL \
            else READINGS[2] if remedy >= fcn - REPRODUCED_GAP else READINGS[3]
        rows.append({"dataset": row["dataset"], "teacher accuracy": acc, "published FCN": fcn, "gap": acc - fcn,
                     "p against published": p, "best remedy": name, "remedy accuracy": remedy, "reading": reading})
    return pd.DataFrame(rows, columns=["dataset", "teacher accuracy", "published FCN", "gap", "p against published",
                                       "best remedy", "remedy accuracy", "reading"])


def _best_remedies(studies: Mapping[str, Mapping[str, list[Any]]], records: Any, teacher: str,
                   protocol: set[str]) -> dict[str, tuple[str, float]]:
    """Per dataset, the variant of ``teacher``'s studies, neither the first nor the arm's ``protocol`` (teacher
    keys), with the highest mean test accuracy over its archived seeds, and that mean."""
    best: dict[str, tuple[str, float]] = {}
    for study in studies.values():
        first = next(iter(study.values()))
        if not first or first[0].teacher != teacher:
            continue
        remedies = [v for i, (v, configs) in enumerate(study.items())
                    if i and not {c.teacher_key() for c in configs} <= protocol]
        seeds = study_seeds(study, records)
        means = seeds[seeds["variant"].isin(remedies)].groupby("variant")["test accuracy"].mean()
        dataset = first[0].dataset
        if len(means) and means.max() > best.get(dataset, (None, -np.inf))[1]:
            best[dataset] = (str(means.idxmax()), float(means.max()))
    return best


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
