"""Teachers: our teachers beside the published FCN numbers, and the seed study (how often a
teacher fails to learn, under each settings variant, and which seed validation picks)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from tsd_lib.analysis.architectures import ARCH
from tsd_lib.analysis.published import published_fcn
from tsd_lib.archive import study_source
from tsd_lib.experiment import RunConfig, RunStore, choose_teacher, get_dataset, get_teacher
from tsd_lib.report.style import COLUMN_WIDTH, method_color, other_color

if TYPE_CHECKING:
    from torch import nn

    from tsd_lib.archive import Archive, Records
    from tsd_lib.data import Dataset
    from tsd_lib.profiles import Profile

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
        found = []
        for c in candidates:
            if c.teacher_key() in seen or not store.has_teacher(c):  # a damaged record counts as missing
                continue
            seen.add(c.teacher_key())
            found.append(_row(c, store.load_teacher_record(c)))
        if not found:
            continue
        best = min(range(len(found)), key=lambda i: (-np.nan_to_num(found[i]["val AUC-PR"]),
                                                  np.nan_to_num(found[i]["val loss"], nan=1e9)))
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


SEED_STUDY_COLUMNS = ["variant", "teacher", "teacher seed", "epochs run", "best epoch", "stopped early",
                      "val accuracy", "val loss", "test accuracy", "at chance", "chosen"]


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


def seed_study_summary(study: pd.DataFrame, title: str) -> list[str]:
    """One markdown line per variant: seeds at chance, the accuracy range, the seed validation picks."""
    lines = []
    for name, g in study.groupby("variant", sort=False):
        pick = g[g.chosen].iloc[0]
        lines.append(f"- **{title}, {name}**: {int(g['at chance'].sum())} of {len(g)} seeds stay at chance; test "
                     f"accuracy {g['test accuracy'].min():.3f}-{g['test accuracy'].max():.3f} (mean "
                     f"{g['test accuracy'].mean():.3f}); validation picks seed {int(pick['teacher seed'])} (test "
                     f"accuracy {pick['test accuracy']:.3f}, {int(pick['epochs run'])} epochs, best epoch "
                     f"{int(pick['best epoch'])}).")
    return lines


def training_note(histories: dict[str, dict[str, Any]]) -> str:
    """One sentence per teacher history: epochs run, the epoch kept and what ended training."""
    return " ".join(
        f"The {name} teacher ran {len(h['epochs'])} epochs and kept epoch {h['best_epoch']} "
        f"({'early stopping ended it' if h['stopped_early'] else 'the epoch cap ended it'})."
        for name, h in histories.items())


def literature_note(teachers: pd.DataFrame, source: str) -> str:
    """FCN teachers more than 3 points below the published accuracy (or that none is), and how many
    teachers early stopping ended (``teachers`` from :func:`teacher_table`)."""
    fcn = teachers[(teachers.teacher == "fcn") & teachers["published FCN"].notna()]
    far = fcn[fcn["gap to published"] < -0.03]
    if far.empty:
        gaps = (f"Every FCN teacher is within 3 points of the published accuracy (largest gap "
                f"{fcn['gap to published'].min():+.3f}).")
    else:
        gaps = ("More than 3 points below the published accuracy: "
                + ", ".join(f"{r.dataset} seed {r['teacher seed']} ({r['gap to published']:+.3f}"
                            f"{'' if r['stopped early'] else ', ended by the epoch cap'})" for _, r in far.iterrows())
                + "; section 1.7 measures the FCN teacher under both learning-rate schedules.")
    ended = (f" Early stopping ended {int(teachers['stopped early'].sum())} of {len(teachers)} teachers"
             + ("." if teachers["stopped early"].all() else "; the others ran into the epoch cap."))
    return f"Published: {source}. " + gaps + ended


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
                        store: RunStore | Archive | Records, arch: dict[str, str]) -> tuple[dict[str, int], list[str]]:
    """For each pair teacher trained with one fixed seed (no ``teacher_seeds``) that a study also trains
    over several seeds: the seed validation picks there (``{teacher key: seed}``) and a markdown line
    saying whether the profile uses it."""
    picks, lines = {}, []
    for pair in {c.teacher_key(): c for c in pairs if not c.teacher_seeds}.values():
        candidates = matching_candidates(pair, studies)
        if not candidates:
            continue
        picked = picks[pair.teacher_key()] = choose_seed(candidates, store)
        lines.append(
            f"- The profile's {arch.get(pair.teacher, pair.teacher)} teacher on {pair.dataset} uses seed "
            f"{pair.teacher_seed}: "
            + ("the seed validation picks among " if picked == pair.teacher_seed else
               f"**not** the seed validation picks ({picked}) among ")
            + f"{', '.join(str(c.teacher_seed) for c in candidates)} in the study above.")
    return picks, lines


#: The columns of the chapter's table of teachers.
TEACHER_COLUMNS = ["dataset", "teacher", "teacher seed", "chosen", "epochs run", "best epoch", "stopped early",
                   "val accuracy", "test accuracy", "test AUC-PR", "published FCN", "gap to published"]


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


def studies_summary(studies: dict[str, tuple[pd.DataFrame, np.ndarray]], pick_lines: list[str], profile: str) -> str:
    """Markdown: one line per study variant (:func:`seed_study_summary`), then the lines of
    :func:`profile_study_picks`; a note when the profile has no teacher study."""
    lines = [line for title, (study, _) in studies.items() for line in seed_study_summary(study, title)]
    return "\n".join(lines + pick_lines) or f"*Profile `{profile}` has no teacher study.*"


@dataclass
class TeacherStudies:
    """Chapter 1's teacher studies as shown: ``outputs`` in display order (markdown and tables), ``picks``, the
    seed validation picks for each single-seed pair teacher (:func:`profile_study_picks`), and ``figure``, every
    study's bars in one bare figure (:func:`seed_studies_plot`, numbered by the chapter)."""

    outputs: list[Any]
    picks: dict[str, int]
    figure: Figure


def profile_teacher_studies(profile: Profile, store: RunStore) -> TeacherStudies:
    """``profile``'s teacher studies, read from its own store or its archive's
    (:func:`~tsd_lib.archive.study_source`): the archive's description when they come from one, then per
    study its title and its :data:`SEED_STUDY_COLUMNS` table, and last :func:`studies_summary` (with the
    profile's pair teachers checked against the studies); the studies' :func:`seed_studies_plot`."""
    from IPython.display import Markdown

    source_profile, source = study_source(profile, store)
    outputs: list[Any] = [] if source_profile is profile else [Markdown(source.archive.describe())]
    studies = teacher_studies(source_profile.teacher_study_configs(), source)
    for title, (study, _) in studies.items():
        table = study[SEED_STUDY_COLUMNS].style.format(precision=3).hide(axis="index")
        outputs += [Markdown(f"**{title}**"), table]
    picks, lines = profile_study_picks(profile.pair_configs(), source_profile.teacher_study_configs(), source, ARCH)
    outputs.append(Markdown(studies_summary(studies, lines, profile.name)))
    return TeacherStudies(outputs, picks, seed_studies_plot(studies))
