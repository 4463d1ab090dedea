"""Teachers in view: every archived teacher beside the published FCN and ResNet accuracy, and the
datasets where a conclusion about distillation rests on a weak teacher (the results page)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from tsd_lib.analysis.published import published_fcn, published_resnet

#: A teacher this far below the published FCN accuracy is weak.
WEAK_GAP = 0.10


def teacher_quality(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Per (dataset, teacher architecture) of student records: the chosen teacher's test accuracy,
    the published FCN and ResNet accuracy, the gap to the FCN, the best student method's mean
    accuracy (over seeds, every setting), and two flags: the teacher is weak (more than
    :data:`WEAK_GAP` below the published FCN) or students beat it."""
    df = pd.DataFrame([dict(r) for r in records])
    if df.empty:
        return pd.DataFrame(columns=["dataset", "teacher", "teacher accuracy", "published FCN", "published ResNet",
                                     "gap to FCN", "best student", "best student accuracy", "weak teacher",
                                     "students beat it"])
    rows = []
    for (dataset, teacher), group in df.groupby(["dataset", "teacher"], sort=False):
        best = group.groupby("method")["accuracy"].mean()
        fcn, resnet = published_fcn(dataset), published_resnet(dataset)
        acc = float(group["teacher_accuracy"].iloc[0])
        rows.append({"dataset": dataset, "teacher": teacher, "teacher accuracy": acc,
                     "published FCN": np.nan if fcn is None else fcn,
                     "published ResNet": np.nan if resnet is None else resnet,
                     "gap to FCN": np.nan if fcn is None else acc - fcn,
                     "best student": best.idxmax(), "best student accuracy": float(best.max()),
                     "weak teacher": fcn is not None and acc < fcn - WEAK_GAP,
                     "students beat it": bool(best.max() > acc)})
    return pd.DataFrame(rows)


def strong_teacher_datasets(table: pd.DataFrame) -> list[str]:
    """The datasets whose every teacher is neither weak nor beaten by its students."""
    flagged = table.groupby("dataset")[["weak teacher", "students beat it"]].any().any(axis=1)
    return [d for d, bad in flagged.items() if not bad]


def resampling_cost(studies: Mapping[str, Mapping[str, list[Any]]], records: Any) -> pd.DataFrame:
    """Per teacher study (``Profile.teacher_study_configs()``: a dataset's teachers under the variants
    "resampled to 100" and "full length"): each variant's mean test accuracy over the seeds whose
    teacher is in ``records`` (an archive or a store), the number of seeds, and the published FCN."""
    rows = []
    for name, variants in studies.items():
        row: dict[str, Any] = {"dataset": name}
        for variant, configs in variants.items():
            found = [records.load_teacher_record(c)["test_accuracy"] for c in configs if records.has_teacher(c)]
            row[variant] = float(np.mean(found)) if found else np.nan
            row[f"{variant}: seeds"] = len(found)
        fcn = published_fcn(next(iter(variants.values()))[0].dataset)
        row["published FCN"] = np.nan if fcn is None else fcn
        rows.append(row)
    return pd.DataFrame(rows).set_index("dataset") if rows else pd.DataFrame()


def resampling_numbers(table: pd.DataFrame, full: str = "full length", tol: float = 1e-9) -> dict[str, Any]:
    """For the prose, from :func:`resampling_cost`: the study's ``sets``, on how many of them the ``full``
    variant's mean test accuracy is above (``full_better``), equal to (``equal``) or below (``full_worse``)
    the other variant's (the protocol's), where both have a seed archived, and the largest difference either
    way in accuracy points (``largest_gain``: full minus the other; ``largest_loss``: the other minus full;
    0 where none), and the fewest seeds behind a mean (``seeds``; 0 before any)."""
    if table.empty or full not in table:
        return {"sets": len(table), "compared": 0, "full_better": 0, "equal": 0, "full_worse": 0,
                "largest_gain": 0.0, "largest_loss": 0.0, "seeds": 0}
    other = next(c for c in table.columns if c != full and not c.endswith(": seeds") and c != "published FCN")
    diff = (table[full] - table[other]).dropna()
    seeds = table[[f"{other}: seeds", f"{full}: seeds"]].min(axis=1)
    return {"sets": len(table), "compared": len(diff), "full_better": int((diff > tol).sum()),
            "equal": int((diff.abs() <= tol).sum()), "full_worse": int((diff < -tol).sum()),
            "largest_gain": float(100 * max(diff.max(), 0.0)) if len(diff) else 0.0,
            "largest_loss": float(100 * max(-diff.min(), 0.0)) if len(diff) else 0.0,
            "seeds": int(seeds.min()) if len(seeds) else 0}
