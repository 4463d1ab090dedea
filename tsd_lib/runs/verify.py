"""``tsd verify``: re-run archived configs in a fresh store and compare with the archive.

A reader can check any number of a results archive without trusting it: each chosen config is
trained again from scratch (teacher included) and its metrics are set beside the archived ones.
With one torch thread per run, the same machine and library versions reproduce a record
exactly; another CPU may change floating-point kernels, hence a tolerance.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from tsd_lib.runs.archive import Archive, sample_entries
from tsd_lib.runs.archive_readme import dataset_machines
from tsd_lib.runs.certification import archive_code, is_current
from tsd_lib.experiment import RunConfig, RunStore, run
from tsd_lib.runs.grid import RUN_THREADS
from tsd_lib.paths import PROJECT_ROOT
from tsd_lib.provenance import results_digest
from tsd_lib.utils import machine

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


#: Which archived runs ``tsd verify`` samples, by the CPU that made them.
CPU_CHOICES = ("auto", "here", "any")


def verify(archive: Archive, *, sample: int | None = None, keys: list[str] | None = None, seed: int = 0,
           data_dir: str | None = None, store: str | None = None, tolerance: float = TOLERANCE,
           cpu: str = "auto") -> Verification:
    """Re-run archived run configs (``keys``, or ``sample`` chosen with ``seed`` among the runs
    :func:`choose` allows for ``cpu``) into ``store`` (default: a temporary folder) and compare :data:`METRICS`."""
    if not (isinstance(tolerance, (int, float)) and math.isfinite(tolerance) and tolerance >= 0):
        raise ValueError(f"--tolerance must be a finite number >= 0, got {tolerance}")
    if not any(e["kind"] == "run" for e in archive.entries):
        raise ValueError(f"the archive {archive.path} holds no run records (a manifest without records); "
                         "fill it with `tsd archive --profile NAME`")
    entries, made, notes = choose(archive, sample, keys=keys, seed=seed, cpu=cpu)
    if archive.stale:
        notes.append(f"note: the archive was made by code {', '.join(sorted(archive.codes))}, the current code is "
                     f"{results_digest()}: differences are expected where that code changed results")
    threads = torch.get_num_threads()
    torch.set_num_threads(RUN_THREADS)  # as the grid trains every run: results depend on the thread count
    try:
        rows = _rerun(entries, store, data_dir, tolerance)
    finally:
        torch.set_num_threads(threads)
    table = pd.DataFrame(rows)
    if len(table):
        table.insert(len(table.columns) - 1, "made on this CPU", [made[d] for d in table["dataset"]])
    return Verification(table, tolerance, notes)


def choose(archive: Archive, sample: int | None, *, keys: list[str] | None = None, seed: int = 0,
           cpu: str = "auto") -> tuple[list[dict[str, Any]], dict[str, bool], list[str]]:
    """The run entries to re-run, whether this CPU made each one's dataset, and notes.

    Only the CPU that made a record reproduces it exactly: another CPU's math libraries (MKL, oneDNN)
    round differently and training amplifies it. The manifest names the CPUs that made each dataset's
    records, not each record's, so a dataset counts as made here only when this CPU is the only one it
    names. ``cpu="auto"`` samples among those datasets when there are any, else among all; ``"here"``
    requires them; ``"any"`` samples all. ``keys`` name runs whatever made them."""
    if cpu not in CPU_CHOICES:
        raise ValueError(f"--cpu must be one of {', '.join(CPU_CHOICES)}, got {cpu!r}")
    here = machine()["cpu"]
    datasets = sorted({e["config"]["dataset"] for e in archive.entries})
    made_by = {d: {m.get("cpu") for m in dataset_machines(archive.manifest, d)} for d in datasets}
    ours = [d for d in datasets if made_by[d] == {here}]
    others = sorted({c for cs in made_by.values() for c in cs if c and c != here})
    notes = []
    if cpu == "here" and not ours:
        raise ValueError(f"the manifest of {archive.path} names no dataset made on this CPU ({here}) alone; its "
                         f"records were made on {', '.join(others)}")
    narrow = not keys and cpu != "any" and bool(ours) and len(ours) < len(datasets)
    if narrow:
        notes.append(f"note: sampled among the {len(ours)} of {len(datasets)} datasets made on this CPU ({here}) alone "
                     f"({', '.join(ours)}), the runs it can reproduce exactly; the others were made in whole or in "
                     f"part on {', '.join(others)}: verify them there (`--cpu any` samples them here too, compared "
                     "within the tolerance)")
    entries = sample_entries(archive, sample, keys=keys or (), seed=seed, datasets=ours if narrow else None)
    made = {e["config"]["dataset"]: e["config"]["dataset"] in ours for e in entries}
    elsewhere = sorted({c for d, mine in made.items() if not mine for c in made_by[d] if c and c != here})
    if elsewhere:
        n = sum(not made[e["config"]["dataset"]] for e in entries)
        notes.append(f"note: {n} of the {len(entries)} runs belong to datasets made in whole or in part on another CPU "
                     f"({', '.join(elsewhere)}) than this one ({here}); the CPU that made a record reproduces it "
                     "exactly, but another CPU's math libraries (MKL, oneDNN) round differently and training "
                     "amplifies it, so such a run can differ beyond the tolerance with the same code")
    return entries, made, notes


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
    random with ``seed`` among those holding the most methods, every method where enough datasets
    do: a method archived on fewer datasets is sampled where it is); first runs of a chain, not continuations,
    among the records current for :func:`~tsd_lib.runs.certification.archive_code` (made by it or certified)."""
    import random

    code = archive_code(archive.entries, archive.manifest)
    runs = [e for e in archive.entries if e["kind"] == "run" and "extends" not in e
            and is_current(e["record"], archive.manifest, code)]
    methods = sorted({e["config"]["method"] for e in runs})
    by_dataset = {d: [e for e in runs if e["config"]["dataset"] == d] for d in sorted({e["config"]["dataset"]
                                                                                      for e in runs})}
    if datasets is None:  # datasets holding every method first, then those holding the most
        rng = random.Random(seed)
        order = sorted(by_dataset, key=lambda d: (-len({e["config"]["method"] for e in by_dataset[d]}), rng.random()))
        datasets = sorted(order[:n_datasets])
    unknown = [d for d in datasets if d not in by_dataset]
    if unknown:
        raise ValueError(f"no archived runs of {', '.join(unknown)} in {archive.path}; "
                         f"datasets: {', '.join(by_dataset)}")
    rng = random.Random(seed)
    return [rng.choice(es) for d in datasets for m in methods
            if (es := [e for e in by_dataset[d] if e["config"]["method"] == m])]


@dataclass
class Certificate:
    """The outcome of :func:`certify`: per sampled run and teacher, the numbers of the code that made
    the archive and of the current code, both re-run here, and whether they are identical."""

    runs: pd.DataFrame
    teachers: pd.DataFrame
    entry: dict[str, Any]

    @property
    def ok(self) -> bool:
        return bool(self.entry["teachers"]) and all(self.entry["methods"].values())

    def __str__(self) -> str:
        stale = sorted(m for m, ok in self.entry["methods"].items() if not ok)
        verdict = ("certified: every sampled number of the current code equals the archive code's, re-run "
                   "on this machine" if self.ok else
                   "not certified for: " + ", ".join(stale or ["every method (a teacher differs)"]))
        drift = self.entry.get("machine_drift")
        lines = [self.runs.to_string(index=False), self.teachers.to_string(index=False),
                 f"{self.entry['digest']} vs {', '.join(self.entry['equals'])}: {verdict}"]
        if drift is not None:
            lines.append(f"(the archive code re-run here differs from the archive itself by up to {drift:.4g} in "
                         "the compared metrics: what another CPU does to the same code)")
        return "\n".join(lines)


def certify(archive: Archive, *, datasets: list[str] | None = None, seed: int = 0, data_dir: str | None = None,
            store: str | None = None, baseline: str | os.PathLike | None = None) -> Certificate:
    """Certify that the current code computes what the code that made ``archive`` computes.

    :func:`certify_sample` is re-run twice on this machine, teachers retrained: once by the archive's
    code (``baseline``: a folder holding its ``tsd_lib``; default, the git commit of this repository
    whose results digest is the archive's) and once by the current code; numbers are compared
    exactly. Re-running the old code here, not reading the archive, keeps the machine out of the
    comparison (another CPU rounds differently, which training amplifies). Per method the outcome
    goes into the archive's manifest (:mod:`tsd_lib.runs.certification`); a method that differs is stale
    and ``tsd archive`` retrains it."""
    from tsd_lib.runs.archive_making import write_certificate

    entries = certify_sample(archive, datasets=datasets, seed=seed)
    codes = [archive_code(archive.entries, archive.manifest)]
    names = {e["config"]["dataset"] for e in entries}
    teachers = [e for e in archive.entries if e["kind"] == "teacher" and e["config"]["dataset"] in names
                and is_current(e["record"], archive.manifest, codes[0])]
    with tempfile.TemporaryDirectory(prefix="tsd-certify-") as tmp, _baseline_tree(baseline, codes[0], tmp) as old:
        before = _run_with(old, entries, teachers, data_dir, Path(store or tmp) / "archive-code")
        threads = torch.get_num_threads()
        torch.set_num_threads(RUN_THREADS)
        try:
            fresh = RunStore(Path(store or tmp) / "current-code")
            now = [run(_config(e, data_dir), fresh, progress=False) for e in entries]
            now_teachers = [fresh.load_teacher_record(c) if fresh.has_teacher(c) else None
                            for c in (_config(e, data_dir) for e in teachers)]
        finally:
            torch.set_num_threads(threads)
    rows = _compare(entries, before["runs"], now, CERTIFY_RUN)
    trained = [(e, b, n) for e, b, n in zip(teachers, before["teachers"], now_teachers, strict=True) if b and n]
    trows = _compare(*(list(x) for x in zip(*trained, strict=True)), CERTIFY_TEACHER) if trained else []
    runs, tdf = pd.DataFrame(rows), pd.DataFrame(trows)
    drift = max((abs(float(b[m]) - float(e["record"][m])) for e, b in zip(entries, before["runs"], strict=True)
                 for m in METRICS if isinstance(e["record"].get(m), float) and isinstance(b.get(m), float)),
                default=0.0)
    entry = {"digest": results_digest(), "equals": codes, "methods": {m: bool(g["match"].all())
                                                                       for m, g in runs.groupby("method")},
             "teachers": bool(len(tdf)) and bool(tdf["match"].all()), "sample": sorted(e["key"] for e in entries),
             "datasets": sorted(names), "machine_drift": drift}
    return Certificate(runs, tdf, write_certificate(archive, entry))


def _config(entry: dict[str, Any], data_dir: str | None) -> RunConfig:
    given = {"data_dir": os.path.abspath(os.path.expanduser(data_dir))} if data_dir else {}
    return RunConfig.from_dict({**entry["config"], **given})


_OLD_CODE = """
import json, sys
import torch
torch.set_num_threads(1)
from tsd_lib.experiment import RunConfig, RunStore, run
from tsd_lib.provenance import results_digest
from tsd_lib.utils import machine
req = json.load(sys.stdin)
store = RunStore(req["store"])
runs = [run(RunConfig.from_dict(c), store, progress=False) for c in req["runs"]]
teachers = [store.load_teacher_record(t) if store.has_teacher(t) else None
            for t in map(RunConfig.from_dict, req["teachers"])]
print(json.dumps({"digest": results_digest(), "runs": runs, "teachers": teachers}))
"""


def _run_with(tree: Path, entries: list[dict], teachers: list[dict], data_dir: str | None, store: Path) -> dict:
    """The records the code in ``tree`` (a folder holding ``tsd_lib``) computes for ``entries``."""
    request = {"store": str(store), "runs": [_config(e, data_dir).to_dict() for e in entries],
               "teachers": [_config(e, data_dir).to_dict() for e in teachers]}
    env = {**os.environ, "PYTHONPATH": str(tree), "TSD_PROGRESS": "0"}
    done = subprocess.run([sys.executable, "-c", _OLD_CODE], input=json.dumps(request), capture_output=True,
                          text=True, env=env, cwd=tree, check=False)
    if done.returncode:
        raise RuntimeError(f"the archive's code in {tree} failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def _baseline_tree(baseline: str | os.PathLike | None, code: str, tmp: str) -> Iterator[Path]:
    """A folder holding the ``tsd_lib`` whose results digest is ``code``: ``baseline`` (a folder, or a
    git revision of this repository), else the newest commit touching ``tsd_lib`` with it (the list of
    results modules itself changes between commits)."""
    if baseline is not None and Path(baseline).is_dir():
        yield Path(baseline)
        return
    revs = [str(baseline)] if baseline is not None else _git("log", "--format=%H", "--", "tsd_lib")
    for rev in revs:
        tree = Path(tmp) / f"code-{rev[:12]}"
        tree.mkdir()
        archive = subprocess.run(["git", "-C", str(PROJECT_ROOT), "archive", rev, "tsd_lib"], capture_output=True,
                                 check=False)
        if archive.returncode:
            raise ValueError(f"not a git revision of {PROJECT_ROOT}: {rev}")
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
        if _digest_of(tree) == code:
            yield tree
            return
    raise ValueError(f"no commit of this repository has results code {code}: pass --baseline REV (or a folder "
                     "holding that tsd_lib)")


def _digest_of(tree: Path) -> str:
    done = subprocess.run([sys.executable, "-c", "from tsd_lib.provenance import results_digest as d; print(d())"],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(tree)}, cwd=tree,
                          check=False)
    return done.stdout.strip()


def _git(*args: str) -> list[str]:
    done = subprocess.run(["git", "-C", str(PROJECT_ROOT), *args], capture_output=True, text=True, check=False)
    if done.returncode:
        raise ValueError(f"git {' '.join(args[:1])} failed in {PROJECT_ROOT}: pass --baseline FOLDER")
    return done.stdout.split()


def _compare(entries: list[dict[str, Any]], before: list[dict[str, Any]], now: list[dict[str, Any]],
             names: tuple[str, ...]) -> list[dict[str, Any]]:
    rows = []
    for entry, old, new in zip(entries, before, now, strict=True):
        config = RunConfig.from_dict(entry["config"])
        diffs = [name for name in names if name in old and not _same(old[name], new.get(name))]
        rows.append({"kind": entry["kind"], "dataset": config.dataset,
                     "method": config.method if entry["kind"] == "run" else config.teacher,
                     "seed": config.seed if entry["kind"] == "run" else config.teacher_seed,
                     "differs in": ", ".join(diffs) or "-", "match": not diffs})
    return rows


def _same(a: Any, b: Any) -> bool:
    nan = isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
    return a == b or nan
