"""The paper's protocol as archived (``results/<profile>/``, made by ``tsd archive``): what is
covered, the results of the complete datasets, and what the rest would cost (the results page)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tsd_lib.analysis.audit import capped_runs
from tsd_lib.analysis.costs import cost_tables
from tsd_lib.archive import Archive, archive_dir
from tsd_lib.profiles import Profile, load_profile
from tsd_lib.report import records_to_frame, selection_inflation, summary_table


@dataclass
class PaperArchive:
    """An archive, its profile, the records of its *complete* datasets and the coverage table."""

    archive: Archive
    profile: Profile
    records: list[dict[str, Any]]
    coverage: pd.DataFrame

    @property
    def complete(self) -> list[str]:
        return list(self.coverage.index[self.coverage["complete"]])

    @property
    def n_capped(self) -> int:
        return len(capped_runs(self.records)) if self.records else 0


def load_paper_archive(name: str = "paper-offline", *, path: str | os.PathLike | None = None,
                       profile: Profile | None = None) -> PaperArchive | None:
    """The archive of profile ``name`` (``results/<name>``, or ``path``; ``None`` when there is none):
    per dataset, archived runs and teachers against the profile's, and the records of the datasets
    whose every run is in."""
    folder = Path(path) if path is not None else archive_dir(name)
    if not (folder / "manifest.json").exists():
        return None
    archive, profile = Archive(folder), profile or load_profile(name)
    rows, records, every = [], [], profile.configs()
    for dataset in dict.fromkeys(c.dataset for c in every):  # canonical names, the profile's order
        configs = [c for c in every if c.dataset == dataset]
        teachers = configs[0].teacher_candidates()
        found = [archive.load_record(c) for c in configs if archive.has(c)]
        done = len(found) == len(configs)
        n_teachers = sum(archive.has_teacher(t) for t in teachers)
        rows.append({"dataset": dataset, "runs": f"{len(found)} / {len(configs)}",
                     "teachers": f"{n_teachers} / {len(teachers)}", "complete": done})
        if done:
            records += found
    return PaperArchive(archive, profile, records, pd.DataFrame(rows).set_index("dataset"))


def paper_results(paper: PaperArchive) -> dict[str, Any]:
    """For the complete datasets: the macro AUC-PR table (validation-selected setting, mean ± std over
    seeds), its summary, the TSD weight validation picked per dataset and method, and how much
    picking it on the test set would have inflated the result."""
    df = records_to_frame(paper.records)
    summary = summary_table(df, "auc_pr")
    inflation = selection_inflation(df, "auc_pr")
    tsd = inflation[inflation["method"].str.contains("tsd")]
    weights = tsd.pivot(index="dataset", columns="method", values="val_selected")
    return {"frame": df, "summary": summary, "weights": weights, "inflation": inflation}


def remaining_cost(paper: PaperArchive) -> str:
    """What the datasets not yet archived would cost at the archive's measured seconds per epoch."""
    missing = [d for d in paper.coverage.index if d not in paper.complete]
    if not missing or not paper.records:
        return "Every dataset of the profile is archived." if not missing else \
            "No dataset is complete yet, so no per-epoch cost has been measured."
    rest = dataclasses.replace(paper.profile, datasets=missing)
    costs = cost_tables(paper.records, [rest])
    hours = float(costs[1].iloc[0, -1]) if costs else np.nan
    return (f"Not archived yet: {', '.join(missing)}. At the per-epoch cost measured on the archived runs "
            f"({paper.archive.manifest.get('machine', {}).get('cpu', 'this machine')}), their "
            f"{len(rest.configs())} runs would take at most {hours:.1f} CPU hours (every student at its "
            f"{rest.run.get('epochs', 500)}-epoch cap; early stopping ends most runs far sooner, and larger "
            "series cost more per epoch than the small sets measured so far).")
