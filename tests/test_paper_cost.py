"""The cost model of the paper's datasets (:mod:`tsd_lib.analysis.paper_cost`) on known truth."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from tsd_lib.analysis.paper_cost import coverage_and_cost
from tsd_lib.analysis.ucr_sizes import work_units
from tsd_lib.profiles import Profile

SETS = ["ECGFiveDays", "SonyAIBORobotSurface1", "MoteStrain"]  # 23, 20 and 20 training series


def _paper(seconds_per_unit: dict[str, float], continued: float = 0.0) -> SimpleNamespace:
    """An archive whose first two sets are complete: every run and teacher there took ``seconds_per_unit``
    of its dataset per work unit, and each CE run was continued once at ``continued`` times its cost."""
    profile = Profile(name="p", datasets=SETS, methods=["ce", "kd"], seeds=[0, 1],
                      run={"teacher": "fcn", "student": "lstm_student", "length": 100})
    records, teachers = [], []
    for c in profile.configs():
        if c.dataset in seconds_per_unit:
            cost = seconds_per_unit[c.dataset] * work_units(c.dataset, 100)
            records.append({"dataset": c.dataset, "teacher": c.teacher, "student": c.student, "method": c.method,
                            "train_seconds": cost})
            if c.method == "ce" and continued:
                records.append({**records[-1], "train_seconds": continued * cost})
    for dataset, rate in seconds_per_unit.items():
        teachers.append({"dataset": dataset, "teacher": "fcn", "train_seconds": rate * work_units(dataset, 100)})
    archive = SimpleNamespace(records=lambda: records, teacher_records=lambda: teachers,
                              manifest={"machine": {"cpu": "test CPU"}})
    coverage = pd.DataFrame({"runs": {d: ("4 / 4" if d in seconds_per_unit else "0 / 4") for d in SETS}})
    return SimpleNamespace(archive=archive, profile=profile, complete=list(seconds_per_unit), coverage=coverage)


def test_the_estimate_scales_the_measured_rate_and_counts_continuations():
    paper = _paper({"ECGFiveDays": 2.0, "SonyAIBORobotSurface1": 2.0}, continued=1.0)
    table, numbers = coverage_and_cost(paper, paper.profile)
    units = work_units("MoteStrain", 100)  # 20 series x 84 steps (shorter than 100: not resampled)
    # per dataset: 2 CE runs (each trained twice: the run and its continuation), 2 KD runs, 1 teacher
    assert table.loc["MoteStrain", "CPU hours (expected)"] == pytest.approx(2.0 * units * (2 * 2 + 2 + 1) / 3600)
    assert table.loc["SonyAIBORobotSurface1", "CPU hours (measured)"] == pytest.approx(2.0 * 20 * 70 * 7 / 3600)
    assert numbers["ratio_low"] == pytest.approx(1.0) and numbers["ratio_high"] == pytest.approx(1.0)
    assert numbers["checked"] == 2 and numbers["rest"] == 1 and numbers["cpu"] == "test CPU"


def test_the_left_out_check_gives_the_range():
    paper = _paper({"ECGFiveDays": 1.0, "SonyAIBORobotSurface1": 3.0})
    table, numbers = coverage_and_cost(paper, paper.profile)
    # each set, left out, is priced at the other's rate: measured / estimate = 1/3 and 3
    assert (numbers["ratio_low"], numbers["ratio_high"]) == pytest.approx((1 / 3, 3.0))
    row = table.loc["MoteStrain"]
    pooled = (1.0 * work_units("ECGFiveDays", 100) + 3.0 * work_units("SonyAIBORobotSurface1", 100)) / \
        (work_units("ECGFiveDays", 100) + work_units("SonyAIBORobotSurface1", 100))
    assert row["CPU hours (expected)"] == pytest.approx(pooled * work_units("MoteStrain", 100) * 5 / 3600)
    assert (row["CPU hours (low)"], row["CPU hours (high)"]) == pytest.approx(
        (row["CPU hours (expected)"] / 3, row["CPU hours (expected)"] * 3))
    assert numbers["hours_high"] == pytest.approx(row["CPU hours (high)"])
    assert np.isnan(table.loc["ECGFiveDays", "CPU hours (expected)"])


def test_no_complete_dataset_prices_nothing():
    paper = _paper({})
    table, numbers = coverage_and_cost(paper, paper.profile)
    assert table["CPU hours (expected)"].isna().all() and np.isnan(numbers["hours"])
    assert numbers["complete"] == 0 and numbers["checked"] == 0 and numbers["measured"] == 0


def test_the_cost_names_every_cpu_that_made_the_archive():
    paper = _paper({"ECGFiveDays": 2.0, "SonyAIBORobotSurface1": 2.0})
    paper.archive.manifest = {"machine": {"cpu": "B CPU"}, "machines": [{"cpu": "A CPU"}, {"cpu": "B CPU"}]}
    assert coverage_and_cost(paper, paper.profile)[1]["cpu"] == "A CPU and B CPU"
