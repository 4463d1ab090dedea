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


#: What must reproduce exactly for a certificate: the headline numbers and how training ended.
CERTIFY_RUN = (*METRICS, "epochs_run", "best_epoch", "val_loss")
CERTIFY_TEACHER = ("test_accuracy", "test_auc_pr", "epochs_run", "best_epoch", "weights_digest")


def certify_sample(archive: Archive, *, datasets: list[str] | None = None, n_datasets: int = 3,
                   seed: int = 0) -> list[dict[str, Any]]:
    """One archived run per method on each of ``n_datasets`` datasets (``datasets``, else chosen at
    random with ``seed`` among those holding every method); first runs of a chain, not continuations."""
    import random

    runs = [e for e in archive.entries if e["kind"] == "run" and "extends" not in e]
    methods = sorted({e["config"]["method"] for e in runs})
    by_dataset = {d: [e for e in runs if e["config"]["dataset"] == d] for d in sorted({e["config"]["dataset"]
                                                                                      for e in runs})}
    if datasets is None:
        full = [d for d, es in by_dataset.items() if {e["config"]["method"] for e in es} == set(methods)]
        datasets = sorted(random.Random(seed).sample(full, min(n_datasets, len(full))))
    unknown = [d for d in datasets if d not in by_dataset]
    if unknown:
        raise ValueError(f"no archived runs of {', '.join(unknown)} in {archive.path}; "
                         f"datasets: {', '.join(by_dataset)}")
    rng = random.Random(seed)
    return [rng.choice(es) for d in datasets for m in methods
            if (es := [e for e in by_dataset[d] if e["config"]["method"] == m])]


@dataclass
class Certificate:
    """The outcome of :func:`certify`: per sampled run and teacher whether it reproduced exactly."""

    runs: pd.DataFrame
    teachers: pd.DataFrame
    entry: dict[str, Any]

    @property
    def ok(self) -> bool:
        return bool(self.entry["teachers"]) and all(self.entry["methods"].values())

    def __str__(self) -> str:
        stale = sorted(m for m, ok in self.entry["methods"].items() if not ok)
        verdict = ("certified: every sampled number reproduced exactly" if self.ok else
                   "not certified for: " + ", ".join(stale or ["every method (a teacher differs)"]))
        return "\n".join([self.runs.to_string(index=False), self.teachers.to_string(index=False),
                          f"{self.entry['digest']} vs {', '.join(self.entry['equals'])}: {verdict}"])


def certify(archive: Archive, *, datasets: list[str] | None = None, seed: int = 0, data_dir: str | None = None,
            store: str | None = None) -> Certificate:
    """Re-run :func:`certify_sample` (teachers retrained too) under the current code and record in the
    archive's manifest, per method, whether every number reproduced exactly
    (:mod:`tsd_lib.certification`); a method that differs is stale and ``tsd archive`` retrains it."""
    from tsd_lib.archive import teacher_signature, write_certificate

    entries = certify_sample(archive, datasets=datasets, seed=seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(RUN_THREADS)
    try:
        with tempfile.TemporaryDirectory(prefix="tsd-certify-") as tmp:
            fresh = RunStore(store or tmp)
            rows = _compare(entries, fresh, data_dir, CERTIFY_RUN, lambda c, s: run(c, s, progress=False))
            archived = {teacher_signature(RunConfig.from_dict(e["config"])): e for e in archive.entries
                        if e["kind"] == "teacher" and e["config"]["dataset"] in {r["dataset"] for r in rows}}
            teachers = [e for e in archived.values() if fresh.has_teacher(RunConfig.from_dict(e["config"]))]
            trows = _compare(teachers, fresh, data_dir, CERTIFY_TEACHER, lambda c, s: s.load_teacher_record(c))
    finally:
        torch.set_num_threads(threads)
    runs, tdf = pd.DataFrame(rows), pd.DataFrame(trows)
    methods = {m: bool(g["match"].all()) for m, g in runs.groupby("method")}
    entry = {"digest": results_digest(), "equals": sorted({e["record"]["code"] for e in entries + teachers}),
             "methods": methods, "teachers": bool(len(tdf)) and bool(tdf["match"].all()),
             "sample": sorted(e["key"] for e in entries), "datasets": sorted(set(runs["dataset"]))}
    return Certificate(runs, tdf, write_certificate(archive, entry))


def _compare(entries: list[dict[str, Any]], store: RunStore, data_dir: str | None, names: tuple[str, ...],
             reproduce: Any) -> list[dict[str, Any]]:
    rows = []
    for entry in entries:
        config = RunConfig.from_dict({**entry["config"], **({"data_dir": data_dir} if data_dir else {})})
        now, before = reproduce(config, store), entry["record"]
        diffs = [name for name in names if name in before and not _same(before[name], now.get(name))]
        rows.append({"kind": entry["kind"], "dataset": config.dataset,
                     "method": config.method if entry["kind"] == "run" else config.teacher,
                     "seed": config.seed if entry["kind"] == "run" else config.teacher_seed,
                     "differs in": ", ".join(diffs) or "-", "match": not diffs})
    return rows


def _same(a: Any, b: Any) -> bool:
    nan = isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
    return a == b or nan
