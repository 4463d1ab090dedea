"""Teachers: our teachers beside the published FCN numbers, the chapter's teachers in one table, and the
seed study (how often a teacher fails to learn, under each settings variant, and which seed validation
picks), as tables for readers and numbers for the chapter's prose."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from tsd_lib.analysis.architectures import ARCH
from tsd_lib.analysis.published import published_fcn
from tsd_lib.analysis.seed_tables import readers_table
from tsd_lib.experiment import RunConfig, RunStore, choose_teacher, get_dataset, get_teacher
from tsd_lib.experiment.teachers import teacher_rank
from tsd_lib.report.style import COLUMN_WIDTH, method_color, other_color
from tsd_lib.runs.archive import study_source

if TYPE_CHECKING:
    from torch import nn

    from tsd_lib.data import Dataset
    from tsd_lib.profiles import Profile
    from tsd_lib.runs.archive import Archive, Records

#: A teacher "stays at chance" when its test accuracy is within this margin of the majority-class rate.
CHANCE_MARGIN = 0.05


def _num(x: float | None) -> float:
    return math.nan if x is None else float(x)  # null: no validation split


def _row(config: RunConfig, record: dict[str, Any]) -> dict[str, Any]:
    return {"dataset": config.dataset, "teacher": config.teacher, "teacher seed": config.teacher_seed,
            "epochs run": record["epochs_run"], "best epoch": record["best_epoch"],
            "stopped early": record["stopped_early"], "val accuracy": _num(record["val_accuracy"]),
            "val AUC-PR": _num(record["val_auc_pr"]), "val loss": _num(record["val_loss"]),
            "test accuracy": record["test_accuracy"], "test AUC-PR": record["test_auc_pr"],
            "train seconds": record["train_seconds"]}


def teacher_table(configs: list[RunConfig], store: RunStore | Archive | Records) -> pd.DataFrame:
    """One row per stored teacher of ``configs`` (every candidate seed; from a run store or a
    results archive), with ``chosen`` (the seed validation picks) and, for FCN teachers, the
    published FCN accuracy and our gap."""
    rows, seen = [], set()
    for config in configs:
        candidates = config.teacher_candidates()
        found, records = [], []
        for c in candidates:
            if c.teacher_key() in seen or not store.has_teacher(c):  # a damaged record counts as missing
                continue
            seen.add(c.teacher_key())
            records.append(store.load_teacher_record(c))
            found.append(_row(c, records[-1]))
        if not found:
            continue
        best = min(range(len(found)), key=lambda i: teacher_rank(records[i]))
        for i, row in enumerate(found):
            row["chosen"] = i == best or len(candidates) == 1
            pub = published_fcn(row["dataset"]) if row["teacher"] == "fcn" else None
            row["published FCN"] = math.nan if pub is None else pub
            row["gap to published"] = row["test accuracy"] - row["published FCN"]
        rows += found
    if not rows:
        raise ValueError("no stored teacher for these configs: run the profile's grid first")
    return pd.DataFrame(rows)


def seed_study(variants: dict[str, list[RunConfig]], store: RunStore | Archive | Records,
               y_test: np.ndarray) -> pd.DataFrame:
    """Per settings variant and teacher seed: the teacher's scores, whether it stayed at chance
    (test accuracy within :data:`CHANCE_MARGIN` of the majority-class rate of ``y_test``) and
    which seed validation picks within the variant."""
    majority = float(np.bincount(np.asarray(y_test)).max() / len(y_test))
    frames = []
    for name, configs in variants.items():
        table = teacher_table([c.replace(teacher_seeds=tuple(x.teacher_seed for x in configs))
                               for c in configs[:1]], store)
        table.insert(0, "variant", name)
        table["at chance"] = table["test accuracy"] <= majority + CHANCE_MARGIN
        frames.append(table)
    if not frames:
        raise ValueError("the profile has no teacher study")
    return pd.concat(frames, ignore_index=True)


def choose_seed(candidates: list[RunConfig], store: RunStore | Archive | Records) -> int:
    """The teacher seed validation picks among ``candidates`` (one config per seed, stored), by the
    rule of :func:`tsd_lib.experiment.choose_teacher`."""
    config = candidates[0].replace(teacher_seeds=tuple(c.teacher_seed for c in candidates))
    table = teacher_table([config], store)
    return int(table.loc[table.chosen, "teacher seed"].iloc[0])


def matching_candidates(pair: RunConfig, studies: dict[str, dict[str, list[RunConfig]]]) -> list[RunConfig]:
    """The study variant that trains ``pair``'s teacher under the same settings over several seeds
    (``[]`` when no study does)."""
    def settings(c: RunConfig) -> dict[str, Any]:
        return {k: v for k, v in c.teacher_fields().items() if k != "teacher_seed"}

    target = settings(pair.teacher_candidates()[0])
    for variants in studies.values():
        for configs in variants.values():
            if len(configs) > 1 and settings(configs[0]) == target:
                return configs
    return []


#: The columns of a seed study's table, with their headers in words.
SEED_STUDY_COLUMNS = {"variant": "variant", "teacher": "teacher", "teacher seed": "teacher seed",
                      "epochs run": "epochs run", "best epoch": "best epoch", "stopped early": "stopped early",
                      "val accuracy": "validation accuracy", "val loss": "validation loss",
                      "test accuracy": "test accuracy", "at chance": "at chance", "chosen": "chosen on validation"}


def seed_study_plot(study: pd.DataFrame, y_test: np.ndarray, title: str) -> Figure:
    """Test accuracy per teacher seed and variant, against the majority-class rate (a bare figure, not
    pyplot's: ``display(fig)`` shows it)."""
    fig = Figure(figsize=(COLUMN_WIDTH, 3.0), layout="constrained")
    _seed_study_bars(fig.add_subplot(), study, y_test, title)
    return fig


def seed_studies_plot(studies: dict[str, tuple[pd.DataFrame, np.ndarray]]) -> Figure:
    """Every teacher study of :func:`teacher_studies` in one bare figure, a :func:`seed_study_plot` panel per
    study (one above the other); with no study, a line saying so."""
    fig = Figure(figsize=(COLUMN_WIDTH, 0.4 + 2.7 * max(1, len(studies))), layout="constrained")
    if not studies:
        ax = fig.add_subplot()
        ax.set_axis_off()
        ax.text(0.5, 0.5, "This profile has no teacher study.", ha="center", va="center", transform=ax.transAxes)
        return fig
    for ax, (title, (study, y_test)) in zip(fig.subplots(len(studies), 1, squeeze=False)[:, 0], studies.items(),
                                            strict=True):
        _seed_study_bars(ax, study, y_test, title)
    return fig


def _seed_study_bars(ax: Any, study: pd.DataFrame, y_test: np.ndarray, title: str) -> None:
    order = list(dict.fromkeys(study["variant"]))
    wide = study.pivot(index="teacher seed", columns="variant", values="test accuracy")[order]
    wide.plot.bar(ax=ax, rot=0, width=0.8, color=[other_color(j) for j in range(len(order))])
    majority = float(np.bincount(np.asarray(y_test)).max() / len(y_test))
    ax.axhline(majority, color="0.2", ls="--", lw=1, label="majority-class rate")
    ax.set(ylabel="test accuracy", ylim=(0, 1.05))
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)


#: The columns of :func:`study_overview`.
OVERVIEW_COLUMNS = ["study", "variant", "seeds", "seeds at chance", "lowest test accuracy", "mean test accuracy",
                    "highest test accuracy", "seed validation picks", "its test accuracy", "its epochs run",
                    "its best epoch"]


def study_overview(studies: dict[str, tuple[pd.DataFrame, np.ndarray]]) -> pd.DataFrame:
    """One row per study and variant of :func:`teacher_studies`: the seeds trained, how many stayed at chance,
    the lowest, mean and highest test accuracy, and the seed validation picks with its test accuracy, epochs
    run and best epoch."""
    rows = []
    for title, (study, _) in studies.items():
        for name, g in study.groupby("variant", sort=False):
            pick = g[g.chosen].iloc[0]
            rows.append({"study": title, "variant": name, "seeds": len(g), "seeds at chance": int(g["at chance"].sum()),
                         "lowest test accuracy": float(g["test accuracy"].min()),
                         "mean test accuracy": float(g["test accuracy"].mean()),
                         "highest test accuracy": float(g["test accuracy"].max()),
                         "seed validation picks": int(pick["teacher seed"]),
                         "its test accuracy": float(pick["test accuracy"]), "its epochs run": int(pick["epochs run"]),
                         "its best epoch": int(pick["best epoch"])})
    return pd.DataFrame(rows, columns=OVERVIEW_COLUMNS)


def _seed_choice(config: RunConfig, picks: dict[str, int]) -> str:
    """How ``config``'s teacher seed was chosen: on validation among candidates, or fixed by the profile and
    checked (or not) against the seed a teacher study's validation picks (``picks``, by teacher key)."""
    if config.teacher_seeds:
        return f"the best on validation among seeds {', '.join(map(str, config.teacher_seeds))}"
    picked = picks.get(config.teacher_key())
    if picked is None:
        return "set by the profile; no study checks it"
    if picked == config.teacher_seed:
        return "set by the profile; the seed validation picks in section 1.7"
    return f"set by the profile; validation picks seed {picked} in section 1.7"


def studies_at_chance(studies: dict[str, tuple[pd.DataFrame, np.ndarray]]) -> tuple[int, int]:
    """How many distinct teachers the studies of :func:`teacher_studies` trained, and how many of them stayed at
    chance; a variant that two studies share (same data set, teacher, variant and seed) counts once."""
    if not studies:
        return 0, 0
    every = pd.concat([study for study, _ in studies.values()], ignore_index=True)
    unique = every.drop_duplicates(["dataset", "teacher", "variant", "teacher seed"])
    return len(unique), int(unique["at chance"].sum())


def chapter_teachers(config: RunConfig, record: dict[str, Any], *, pair: RunConfig | None = None,
                     alt: tuple[RunConfig, dict[str, Any]] | None = None,
                     picks: dict[str, int] | None = None) -> pd.DataFrame:
    """The teachers chapter 1 trains on its data set, one row each (index: the labels of
    :func:`teacher_histories`): the profile's (``config``, ``record``) and, with ``pair`` and its chosen ``alt``
    (config, record), the paper's pair teacher; their seed, how that seed was chosen (among several on
    validation, or set by the profile and checked against a teacher study's pick, ``picks``), epochs run,
    the epoch kept, what ended training and their test scores."""
    def row(c: RunConfig, r: dict[str, Any], how: str) -> dict[str, Any]:
        return {"seed": int(r.get("teacher_seed", c.teacher_seed)), "how the seed was chosen": how,
                "epochs run": r["epochs_run"], "best epoch (weights kept)": r["best_epoch"],
                "training ended by": "early stopping" if r["stopped_early"] else "the epoch cap",
                "test accuracy": float(r["test_accuracy"]), "test macro AUC-PR": float(r["test_auc_pr"])}

    rows = {f"{ARCH[config.teacher]} (profile)": row(config, record, _seed_choice(config, picks or {}))}
    if pair is not None and alt is not None:
        alt_cfg, alt_record = alt
        rows[f"{ARCH[alt_cfg.teacher]} (paper's pair, seed {alt_cfg.teacher_seed})"] = row(
            alt_cfg, alt_record, _seed_choice(pair, picks or {}))
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("teacher")


def literature_gaps(teachers: pd.DataFrame, margin: float = 0.03) -> dict[str, float]:
    """What the table of :func:`teacher_table` shows against the literature: how many teachers it lists and how
    many early stopping ended, how many FCN teachers have a published accuracy, how many of those are more
    than ``margin`` below it, and the largest shortfall (most negative gap; NaN without a published number)."""
    fcn = teachers[(teachers.teacher == "fcn") & teachers["published FCN"].notna()]
    return {"n_teachers": len(teachers), "n_stopped_early": int(teachers["stopped early"].sum()),
            "n_published": len(fcn), "n_below": int((fcn["gap to published"] < -margin).sum()),
            "largest_shortfall": float(fcn["gap to published"].min()) if len(fcn) else math.nan}


def literature_plot(teachers: pd.DataFrame, arch: dict[str, str]) -> Figure:
    """Bars: each chosen teacher's test accuracy beside the published FCN accuracy."""
    chosen = teachers[teachers.chosen]
    ax = chosen.plot.bar(x="dataset", y=["test accuracy", "published FCN"], figsize=(COLUMN_WIDTH, 3.2), rot=0,
                         ylim=(0, 1.05), color=[method_color("teacher"), "0.7"])
    ax.set_xticklabels([f"{r.dataset}\n{arch.get(r.teacher, r.teacher)}" for _, r in chosen.iterrows()], fontsize=9)
    ax.set(xlabel="", ylabel="test accuracy", title="Our teachers (chosen seed) and the published FCN")
    ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
    ax.figure.set_layout_engine("constrained")
    return ax.figure


def profile_study_picks(pairs: list[RunConfig], studies: dict[str, dict[str, list[RunConfig]]],
                        store: RunStore | Archive | Records, arch: dict[str, str]
                        ) -> tuple[dict[str, int], pd.DataFrame]:
    """For each pair teacher trained with one fixed seed (no ``teacher_seeds``) that a study also trains
    over several seeds: the seed validation picks there (``{teacher key: seed}``) and a table, one row per
    such teacher: its label, data set, the seed the profile uses, the seed validation picks and the
    candidate seeds."""
    picks, rows = {}, []
    for pair in {c.teacher_key(): c for c in pairs if not c.teacher_seeds}.values():
        candidates = matching_candidates(pair, studies)
        if not candidates:
            continue
        picked = picks[pair.teacher_key()] = choose_seed(candidates, store)
        rows.append({"teacher": arch.get(pair.teacher, pair.teacher), "dataset": pair.dataset,
                     "seed the profile uses": pair.teacher_seed, "seed validation picks": picked,
                     "candidate seeds": ", ".join(str(c.teacher_seed) for c in candidates)})
    return picks, pd.DataFrame(rows, columns=["teacher", "dataset", "seed the profile uses", "seed validation picks",
                                              "candidate seeds"])


#: The columns of the chapter's table of teachers, with their headers in words.
TEACHER_COLUMNS = {"dataset": "dataset", "teacher": "teacher", "teacher seed": "teacher seed",
                   "chosen": "chosen on validation", "epochs run": "epochs run", "best epoch": "best epoch",
                   "stopped early": "stopped early", "val accuracy": "validation accuracy",
                   "test accuracy": "test accuracy", "test AUC-PR": "test macro AUC-PR",
                   "published FCN": "published FCN accuracy", "gap to published": "ours minus published"}


def teacher_view(teachers: pd.DataFrame, columns: dict[str, str] | None = None, caption: str | None = None) -> Any:
    """A table of teachers (:func:`teacher_table` or :func:`seed_study`) for readers: ``columns`` (default
    :data:`TEACHER_COLUMNS`) with headers in words, architectures by their labels (:data:`ARCH`), yes/no,
    3 significant digits (:func:`~tsd_lib.analysis.seed_tables.readers_table`)."""
    view = teachers.assign(teacher=teachers["teacher"].map(lambda t: ARCH.get(t, t)))
    return readers_table(view, columns or TEACHER_COLUMNS, caption=caption)


def profile_teacher(profile: Profile, dataset: str, store: RunStore, *, teacher_seed: int
                    ) -> tuple[RunConfig, Dataset, nn.Module, dict[str, Any]]:
    """Where a chapter starts: ``profile``'s base config on ``dataset`` with ``teacher_seed``, its data set,
    and its teacher with the teacher's record (trained and stored when missing, by
    :func:`~tsd_lib.experiment.get_teacher`)."""
    config = profile.base_config(dataset, teacher_seed=teacher_seed)
    data = get_dataset(config)
    teacher, record = get_teacher(config, data, store)
    return config, data, teacher, record


def book_teacher_configs(profile: Profile) -> list[RunConfig]:
    """One config per teacher the profile trains: the base teacher of each data set, then one per
    (data set, teacher) of the other pairs."""
    pairs = {c.dataset + c.teacher: c for c in profile.pair_configs()}
    return [profile.base_config(ds) for ds in profile.datasets] + list(pairs.values())


def paper_pair(profile: Profile, config: RunConfig, data: Dataset, store: RunStore
               ) -> tuple[RunConfig | None, tuple[RunConfig, dict[str, Any]] | None]:
    """The profile's other pair on ``config``'s data set (a different teacher) and its teacher as
    :func:`~tsd_lib.experiment.choose_teacher` picks it (config, record); ``(None, None)`` without one."""
    pair = next((c for c in profile.pair_configs() if c.dataset == config.dataset and c.teacher != config.teacher),
                None)
    if pair is None:
        return None, None
    chosen, _, record = choose_teacher(pair, data, store)
    return pair, (chosen, record)


def teacher_histories(store: RunStore, config: RunConfig, alt: RunConfig | None, arch: dict[str, str]
                      ) -> dict[str, dict[str, Any]]:
    """Training histories of the profile's teacher and, if given, the paper's pair teacher ``alt``."""
    out = {f"{arch[config.teacher]} (profile)": store.load_teacher_history(config)}
    if alt is not None:
        out[f"{arch[alt.teacher]} (paper's pair, seed {alt.teacher_seed})"] = store.load_teacher_history(alt)
    return out


def teacher_studies(studies: dict[str, dict[str, list[RunConfig]]], store: RunStore | Archive | Records
                    ) -> dict[str, tuple[pd.DataFrame, np.ndarray]]:
    """Per study: its :func:`seed_study` and the test labels its majority-class rate comes from."""
    out = {}
    for title, variants in studies.items():
        y_test = get_dataset(next(iter(variants.values()))[0]).y_test
        out[title] = seed_study(variants, store, y_test), y_test
    return out


@dataclass
class TeacherStudies:
    """Chapter 1's teacher studies as shown: ``outputs``, the tables in display order, ``picks``, the seed
    validation picks for each single-seed pair teacher (:func:`profile_study_picks`), ``overview``, one row per
    study variant (:func:`study_overview`), ``figure``, every study's bars in one bare figure
    (:func:`seed_studies_plot`, numbered by the chapter), and how many distinct teachers the studies trained
    and how many stayed at chance (:func:`studies_at_chance`)."""

    outputs: list[Any]
    picks: dict[str, int]
    overview: pd.DataFrame
    figure: Figure
    n_teachers: int = 0
    n_at_chance: int = 0


def profile_teacher_studies(profile: Profile, store: RunStore) -> TeacherStudies:
    """``profile``'s teacher studies, read from its own store or its archive's
    (:func:`~tsd_lib.runs.archive.study_source`): per study its :data:`SEED_STUDY_COLUMNS` table (captioned with the
    study's title), the :func:`study_overview` of every variant and, when the profile fixes the seed of a pair
    teacher that a study trains, the table of :func:`profile_study_picks`; the studies' :func:`seed_studies_plot`."""
    source_profile, source = study_source(profile, store)
    outputs: list[Any] = []
    studies = teacher_studies(source_profile.teacher_study_configs(), source)
    for title, (study, _) in studies.items():
        outputs.append(teacher_view(study, SEED_STUDY_COLUMNS, caption=f"{title}: every seed of every variant"))
    overview = study_overview(studies)
    if len(overview):
        outputs.append(readers_table(overview, caption="Every variant in one row"))
    picks, table = profile_study_picks(profile.pair_configs(), source_profile.teacher_study_configs(), source, ARCH)
    if len(table):
        outputs.append(readers_table(table, caption="The profile's single-seed pair teachers against the studies"))
    return TeacherStudies(outputs, picks, overview, seed_studies_plot(studies), *studies_at_chance(studies))
