"""Teachers: our teachers beside the published FCN numbers, and the seed study (how often a
teacher fails to learn, under each settings variant, and which seed validation picks)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from tsd_lib.analysis.published import published_fcn
from tsd_lib.experiment import RunConfig, RunStore

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


def teacher_table(configs: list[RunConfig], store: RunStore) -> pd.DataFrame:
    """One row per stored teacher of ``configs`` (every candidate seed), with ``chosen`` (the
    seed validation picks) and, for FCN teachers, the published FCN accuracy and our gap."""
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


def seed_study(variants: dict[str, list[RunConfig]], store: RunStore, y_test: np.ndarray) -> pd.DataFrame:
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
