"""Teachers: our teachers beside the published FCN numbers, and the seed study (how often a
teacher fails to learn, under each settings variant, and which seed validation picks)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tsd_lib.analysis.published import published_fcn
from tsd_lib.experiment import RunConfig, RunStore

if TYPE_CHECKING:
    import matplotlib.figure

    from tsd_lib.archive import Archive, Records

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


def seed_study_plot(study: pd.DataFrame, y_test: np.ndarray, title: str) -> matplotlib.figure.Figure:
    """Test accuracy per teacher seed and variant, against the majority-class rate."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 2.8), layout="constrained")
    order = list(dict.fromkeys(study["variant"]))
    wide = study.pivot(index="teacher seed", columns="variant", values="test accuracy")[order]
    wide.plot.bar(ax=ax, rot=0, width=0.8)
    majority = float(np.bincount(np.asarray(y_test)).max() / len(y_test))
    ax.axhline(majority, color="tab:red", ls="--", lw=1, label="majority-class rate")
    ax.set(ylabel="test accuracy", ylim=(0, 1.05), title=title)
    ax.legend(fontsize=7, loc="lower right")
    return fig


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
