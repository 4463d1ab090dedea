"""What the paper's datasets cost: measured on the paper archive's complete datasets, estimated for the rest.

The model. A run's training seconds scale with its work units, training series x time steps
(:func:`~tsd_lib.analysis.ucr_sizes.work_units`). Each kind of run, a student's (teacher, student, method)
or a teacher's architecture, has a rate: the training seconds measured on the complete datasets, the
continuations past the epoch cap included, per work unit of the profile's runs of that kind there. A
dataset's estimate sums rate x units over the profile's runs and teachers on it. The model is checked on
the complete datasets themselves: each, left out in turn, is estimated from the others and its measured
hours divided by that estimate (the ``ratio``); the smallest and largest ratios give every estimate its
range. Training time only: evaluation and the faithfulness measurements come on top.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from tsd_lib.analysis.paper_views import PaperArchive
from tsd_lib.analysis.ucr_sizes import UCR_SIZES, work_units
from tsd_lib.experiment import RunConfig
from tsd_lib.profiles import Profile, load_profile
from tsd_lib.runs.archive_readme import manifest_machines
from tsd_lib.settings import ProtocolSettings

Kind = tuple[str, ...]


def _kind(teacher: str, student: str | None, method: str | None) -> Kind:
    return (teacher,) if student is None else (teacher, student, str(method))


def _planned(profile: Profile, datasets: Iterable[str]) -> dict[str, list[tuple[Kind, float]]]:
    """Per dataset, the (kind, work units) of each run and teacher the profile trains there. The teachers
    are read off the runs' teacher fields (one per candidate seed), cheaper than building each candidate's
    config, and the profile's teacher studies are added."""
    wanted, out = set(datasets), defaultdict(list)
    teachers = set()
    for c in profile.configs():  # once: a profile of 30 datasets expands to thousands of configs
        if c.dataset in wanted:
            out[c.dataset].append((_kind(c.teacher, c.student, c.method), _units(c)))
            seeds = c.teacher_seeds or (c.teacher_seed,)
            teachers |= {(c.dataset, c.teacher, seed, c.length, c.stretch) for seed in seeds}
    teachers |= {(t.dataset, t.teacher, t.teacher_seed, t.length, t.stretch) for t in profile.teacher_configs()
                 if t.dataset in wanted}
    for dataset, teacher, _, length, stretch in teachers:
        out[dataset].append((_kind(teacher, None, None), work_units(dataset, length, stretch)))
    return out


def _units(config: RunConfig) -> float:
    return work_units(config.dataset, config.length, config.stretch)


def _measured(records: Iterable[Mapping[str, Any]]) -> dict[str, dict[Kind, float]]:
    """Per dataset and kind, the archived training seconds (runs, their continuations and teachers)."""
    out: dict[str, dict[Kind, float]] = defaultdict(lambda: defaultdict(float))
    for r in records:
        out[r["dataset"]][_kind(r["teacher"], r.get("student"), r.get("method"))] += float(r["train_seconds"])
    return out


def _rates(measured: Mapping[str, Mapping[Kind, float]], planned: Mapping[str, list[tuple[Kind, float]]],
           datasets: Iterable[str]) -> dict[Kind, float]:
    """Seconds per work unit of each kind, pooled over ``datasets``."""
    seconds, units = defaultdict(float), defaultdict(float)
    for dataset in datasets:
        for kind, n in planned[dataset]:
            units[kind] += n
        for kind, s in measured[dataset].items():
            seconds[kind] += s
    return {kind: seconds[kind] / units[kind] for kind in units if units[kind] > 0}


def _estimate(plan: list[tuple[Kind, float]], rates: Mapping[Kind, float]) -> float:
    """Seconds for one dataset's runs and teachers; a kind never measured takes the median rate of its group
    (students or teachers)."""
    fallback = {size: float(np.median([r for k, r in rates.items() if len(k) == size] or [np.nan]))
                for size in (1, 3)}
    return sum(rates.get(kind, fallback[len(kind)]) * n for kind, n in plan)


def coverage_and_cost(paper: PaperArchive, full: Profile | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The paper's datasets (``full``, default the ``paper`` profile's 30; sets without known sizes are left
    out): archived or not, the CPU hours measured on each complete one and estimated for the rest (with the
    range the left-out check gives); and for the prose: how many are archived completely (``complete`` of
    ``datasets``), the hours measured on them (``measured``), the ``rest`` and their estimated ``hours``
    (``hours_low`` to ``hours_high``), the left-out check's smallest and largest ratio of measured to
    estimated hours (``ratio_low``, ``ratio_high``, over ``checked`` datasets; NaN below two), the archive's
    ``cpu`` and the series ``length``."""
    full = full or load_profile("paper")
    shown = [d for d in full.datasets if d in UCR_SIZES]
    complete = [d for d in paper.complete if d in UCR_SIZES]
    cpus = dict.fromkeys(m.get("cpu") for m in manifest_machines(paper.archive.manifest))
    cpu = " and ".join(c for c in cpus if c) or "the archive's machine"
    measured = _measured([*paper.archive.records(), *paper.archive.teacher_records()])
    made = _planned(paper.profile, complete)
    ratios = [sum(measured[d].values()) / _estimate(made[d], _rates(measured, made, set(complete) - {d}))
              for d in complete] if len(complete) > 1 else []
    low, high = (min(ratios), max(ratios)) if ratios else (np.nan, np.nan)
    rates = _rates(measured, made, complete)
    plans = _planned(full, shown)
    rows = []
    for dataset in shown:
        done = dataset in complete
        expected = np.nan if done or not rates else _estimate(plans[dataset], rates) / 3600
        rows.append({"dataset": dataset, "train series": UCR_SIZES[dataset][0], "length": UCR_SIZES[dataset][2],
                     "archived runs": paper.coverage["runs"].get(dataset) or "not in this archive's profile",
                     "complete": done,
                     "CPU hours (measured)": sum(measured[dataset].values()) / 3600 if done else np.nan,
                     "CPU hours (expected)": expected, "CPU hours (low)": expected * low,
                     "CPU hours (high)": expected * high})
    table = pd.DataFrame(rows).set_index("dataset") if rows else pd.DataFrame()
    rest = table[~table["complete"]] if rows else table

    def total(column: str) -> float:
        return float(rest[column].sum(min_count=1)) if rows else np.nan

    return table, {"complete": len(complete), "datasets": len(shown), "rest": len(rest),
                   "measured": float(sum(sum(measured[d].values()) for d in complete)) / 3600,
                   "hours": total("CPU hours (expected)"), "hours_low": total("CPU hours (low)"),
                   "hours_high": total("CPU hours (high)"), "ratio_low": low, "ratio_high": high,
                   "checked": len(ratios), "cpu": cpu,
                   "length": paper.profile.run.get("length", ProtocolSettings.length)}
