"""``tsd verify``: re-run archived configs in a fresh store and compare with the archive.

A reader can check any number of a results archive without trusting it: each chosen config is
trained again from scratch (teacher included) and its metrics are set beside the archived ones.
With one torch thread per run, the same machine and library versions reproduce a record
exactly; another CPU may change floating-point kernels, hence a tolerance.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch

from tsd_lib.archive import Archive, sample_entries
from tsd_lib.experiment import RunConfig, RunStore, run
from tsd_lib.grid import RUN_THREADS
from tsd_lib.provenance import results_digest

#: The metrics compared (a record's headline numbers).
METRICS: tuple[str, ...] = ("accuracy", "auc_pr", "saliency_spearman", "agreement", "teacher_accuracy")
#: Absolute tolerance on every metric: exact on the archive's machine; another CPU's kernels may
#: round differently, which training can amplify a little.
TOLERANCE = 0.01


@dataclass
class Verification:
    """Per re-run config: archived vs reproduced metrics, and whether all match."""

    table: pd.DataFrame
    tolerance: float
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(len(self.table)) and bool(self.table["match"].all())

    def __str__(self) -> str:
        lines = [*self.notes, self.table.to_string(index=False, float_format=lambda v: f"{v:.4f}")]
        n_ok = int(self.table["match"].sum()) if len(self.table) else 0
        lines.append(f"{n_ok} of {len(self.table)} runs match the archive within {self.tolerance:g}")
        return "\n".join(lines)


def _close(a: Any, b: Any, tol: float) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return abs(float(a) - float(b)) <= tol


def verify(archive: Archive, *, sample: int | None = None, keys: list[str] | None = None, seed: int = 0,
           data_dir: str | None = None, store: str | None = None, tolerance: float = TOLERANCE) -> Verification:
    """Re-run archived run configs (``keys``, or ``sample`` chosen with ``seed``) into ``store``
    (default: a temporary folder) and compare :data:`METRICS`."""
    entries = sample_entries(archive, sample, keys=keys or (), seed=seed)
    notes = []
    if archive.stale:
        notes.append(f"note: the archive was made by code {', '.join(sorted(archive.codes))}, the current code is "
                     f"{results_digest()}: differences are expected where that code changed results")
    threads = torch.get_num_threads()
    torch.set_num_threads(RUN_THREADS)  # as the grid trains every run: results depend on the thread count
    try:
        rows = _rerun(entries, store, data_dir, tolerance)
    finally:
        torch.set_num_threads(threads)
    return Verification(pd.DataFrame(rows), tolerance, notes)


def _rerun(entries: list[dict[str, Any]], store: str | None, data_dir: str | None, tolerance: float) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="tsd-verify-") as tmp:
        fresh = RunStore(store or tmp)
        for entry in entries:
            config = RunConfig.from_dict({**entry["config"], **({"data_dir": data_dir} if data_dir else {})})
            reproduced = run(config, fresh, progress=False)
            archived = entry["record"]
            row: dict[str, Any] = {"key": entry["key"], "dataset": config.dataset, "method": config.method,
                                   "seed": config.seed}
            diffs = []
            for metric in METRICS:
                row[f"{metric} (archive)"], row[f"{metric} (now)"] = archived.get(metric), reproduced.get(metric)
                diffs.append(_close(archived.get(metric), reproduced.get(metric), tolerance))
            row["epochs (archive/now)"] = f"{archived.get('epochs_run')}/{reproduced.get('epochs_run')}"
            row["match"] = all(diffs)
            rows.append(row)
    return rows
