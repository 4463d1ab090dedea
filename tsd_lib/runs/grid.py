"""Run many configs unattended, resumably, on local processes (joblib) or on Dask.

One code path: :func:`execute` trains one config into the store and never raises (a failure
is written to ``failures/<key>.json`` with its traceback); the backend only decides where it
runs. Teachers are trained first, once each, so parallel students never race to train the
same teacher. Completed runs are skipped, so a killed grid resumes where it stopped; a damaged record counts as
missing and is retrained. Two grids on one store train each run and teacher once (per-run locks,
:meth:`tsd_lib.experiment.RunStore.lock`), and each counts only what it trained: a run another
grid finished while this one waited for its lock counts as skipped. Local workers are at most
the machine's cores and die with the grid, however it ends (Linux ``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import os
import signal
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from tsd_lib.data import dataset_info
from tsd_lib.experiment import SYNTHETIC_PREFIX, RunConfig, RunStore, get_dataset, get_teacher, run
from tsd_lib.experiment.faithfulness import has_faithfulness, run_faithfulness
from tsd_lib.utils import progress

BACKENDS = ("local", "dask")


@dataclass
class GridSummary:
    """What a grid call did: counts, and the failures with their messages."""

    total: int = 0
    skipped: int = 0
    done: int = 0
    failed: int = 0
    seconds: float = 0.0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def __str__(self) -> str:
        return (f"{self.total} runs: {self.skipped} already in the store, {self.done} trained, "
                f"{self.failed} failed ({self.seconds:.0f} s)")


#: Torch threads per run, whatever the worker layout: results do not depend on ``n_jobs`` or the
#: machine's core count (intra-op threads change floating-point summation order); runs are the
#: unit of parallelism.
RUN_THREADS = 1


def _die_with_parent(parent: int | None = None) -> None:
    """Ask Linux to end this worker when the process that started it dies (a killed grid leaves no
    worker processes behind); a no-op elsewhere. With ``parent`` (that process's pid), a worker
    whose parent died before the request took effect ends at once."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        return
    if parent is not None and os.getppid() != parent:  # orphaned already: no signal will come
        os._exit(1)


def _one_line_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001
    return f"tsd grid worker: warning: {' '.join(str(message).split())} ({category.__name__})\n"


def _init_worker(parent: int | None = None) -> None:
    """A local worker: it dies with the grid (:func:`_die_with_parent`) and prints each warning as
    one line, as the ``tsd`` command does."""
    _die_with_parent(parent)
    import warnings

    warnings.formatwarning = _one_line_warning


def cores() -> int:
    """The cores this process may run on: the most local workers a grid starts."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class _RunCounter(RunStore):
    """The store, noting whether :func:`~tsd_lib.experiment.run` found ``key``'s record already there
    once it held the run's lock (another grid trained it meanwhile): then this grid skipped it."""

    def __init__(self, root: str | os.PathLike, config: RunConfig) -> None:
        super().__init__(root)
        self.config, self.found_done = config, False

    @contextmanager
    def lock(self, name: str) -> Iterator[None]:
        with super().lock(name):
            if name == f"run-{self.config.key()}" and self.has(self.config):  # complete, not merely present
                self.found_done = True
            yield


def execute(config: dict[str, Any], store_root: str, threads: int = 1, teacher_only: bool = False,
            faithfulness: bool = False) -> dict[str, Any]:
    """Run one config (a dict, so it pickles anywhere) into the store, or only its teacher, or only
    the faithfulness of the finished run; return its status: ``done``, ``failed``, or ``skipped``
    when the run was found finished (by another grid on the same store)."""
    import torch

    torch.set_num_threads(threads)
    os.environ["TSD_PROGRESS"] = "0"
    cfg = RunConfig.from_dict(config)
    store = RunStore(store_root)
    key = f"teacher-{cfg.teacher_key()}" if teacher_only else f"faithfulness-{cfg.key()}" if faithfulness else cfg.key()
    start = time.perf_counter()
    try:
        if teacher_only:
            get_teacher(cfg, get_dataset(cfg), store, progress=False)
        elif faithfulness:
            run_faithfulness(cfg, store)
        else:
            if store.has(cfg):
                return {"key": key, "status": "skipped", "dataset": cfg.dataset}
            counter = _RunCounter(store_root, cfg)
            run(cfg, counter, progress=False)
            if counter.found_done:
                store.clear_failure(key)
                return {"key": key, "status": "skipped", "dataset": cfg.dataset}
    except Exception as err:  # noqa: BLE001 - a grid records every failure and goes on
        info = {"key": key, "config": config, "error": f"{type(err).__name__}: {err}",
                "traceback": traceback.format_exc(), "seconds": time.perf_counter() - start}
        store.record_failure(key, info)
        return {"key": key, "status": "failed", "error": info["error"], "dataset": cfg.dataset}
    store.clear_failure(key)
    return {"key": key, "status": "done", "seconds": time.perf_counter() - start, "dataset": cfg.dataset}


#: Rough relative cost of a run's terms (measured per epoch on the quick profile, small FCN student):
#: the grid starts the costliest runs first, so two workers do not end on one long run.
_TERM_COST = {"tsd": 5.0, "rkd": 4.0, "dt2w": 3.0, "at": 1.5, "fitnets": 1.5}


def expected_cost(config: RunConfig, teacher: bool = False) -> float:
    """A relative cost estimate used only to order work (longest first)."""
    model = config.teacher if teacher else config.student
    cost = 3.0 if model.startswith("lstm") else 1.0
    if not teacher:
        for term in config.terms:
            cost *= _TERM_COST.get(term, 1.0) * (config.n_windows / 10 if term == "tsd" else 1.0)
    return cost


def check_datasets(configs: Iterable[RunConfig]) -> dict[str, str]:
    """Datasets that cannot be loaded, with the reason: one check per dataset."""
    missing = {}
    for name, data_dir in {(c.dataset, c.data_dir) for c in configs}:
        if name.lower().startswith(SYNTHETIC_PREFIX):
            continue
        try:
            dataset_info(name, data_dir=data_dir)
        except ValueError as err:
            missing[name] = str(err)
    return missing


MapFn = Callable[[list[dict[str, Any]]], Iterator[dict[str, Any]]]


_WORKER_REPLACED = "A worker stopped while some jobs were given to the executor"


@contextmanager
def _executor(backend: str, n_jobs: int, scheduler: str | None) -> Iterator[MapFn]:
    """A function running ``execute(**call)`` for a list of calls on the backend, yielding results as
    they finish. One pool (or Dask cluster) serves every call made inside the context."""
    if backend == "dask":
        from tsd_lib.runs.dask_backend import dask_client, dask_map

        with dask_client(n_jobs, scheduler) as client:
            yield lambda calls: dask_map(client, execute, calls)
    elif min(n_jobs, cores()) == 1:
        yield lambda calls: (execute(**c) for c in calls)
    else:
        from concurrent.futures import as_completed

        from joblib.externals.loky import get_reusable_executor

        # loky replaces a worker whose memory grew by 300 MB since its first call (torch's allocator keeps
        # what it took), between two calls: nothing is lost, and the grid counts every failure itself, so its
        # "A worker stopped ... a memory leak" warning tells a user nothing
        warnings.filterwarnings("ignore", message=_WORKER_REPLACED, category=UserWarning)
        # at most one worker per core; every worker ends when this process dies: a killed grid leaves no
        # workers behind; an idle worker (waiting while the other trains the last teacher) is kept for
        # 10 minutes, not loky's 10 s
        executor = get_reusable_executor(max_workers=min(n_jobs, cores()), initializer=_init_worker,
                                         initargs=(os.getpid(),), timeout=600)
        try:
            yield lambda calls: (f.result() for f in as_completed([executor.submit(execute, **c) for c in calls]))
        finally:
            executor.shutdown(wait=True)  # the workers' memory is free once the grid is done


def run_grid(
    configs: list[RunConfig], store: RunStore | str | None = None, *, backend: str = "local", n_jobs: int = 1,
    scheduler: str | None = None, retry_failed: bool = False, show_progress: bool | None = None,
    teachers: list[RunConfig] | None = None,
) -> GridSummary:
    """Run every config not yet in the store; failures are recorded and the grid goes on.

    ``teachers`` are configs whose teachers are trained too (``Profile.teacher_configs()``), with
    the teachers of the runs, before any student.

    Without ``retry_failed``, configs that failed before are left alone (``tsd status`` lists
    them). A dataset that cannot be loaded is one failure, not one per run.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose from {BACKENDS}")
    store = store if isinstance(store, RunStore) else RunStore(store)
    store.check_writable()  # before any training: a read-only store fails at once, with one line
    start = time.perf_counter()
    summary = GridSummary(total=len(configs))
    failed_before = {f["key"] for f in store.failures()}
    todo = []
    for c in configs:
        if store.has(c):
            summary.skipped += 1
        elif retry_failed or c.key() not in failed_before:
            todo.append(c)
        else:
            summary.failed += 1

    missing = check_datasets(todo)
    for name, reason in missing.items():
        store.record_failure(f"dataset-{name}", {"key": f"dataset-{name}", "dataset": name, "error": reason})
        summary.errors.append({"dataset": name, "error": reason})
    blocked = [c for c in todo if c.dataset in missing]
    summary.failed += len(blocked)
    todo = [c for c in todo if c.dataset not in missing]
    for name in {c.dataset for c in todo}:
        store.clear_failure(f"dataset-{name}")
    unloadable = check_datasets(teachers or [])  # once, not once per teacher
    extra = [t for t in teachers or [] if t.dataset not in unloadable and not store.has_teacher(t)
             and (retry_failed or f"teacher-{t.teacher_key()}" not in failed_before)]

    if todo or extra:
        with _executor(backend, n_jobs, scheduler) as map_calls:
            _train(todo, store, map_calls, RUN_THREADS, summary, show_progress, extra)
    summary.seconds = time.perf_counter() - start
    return summary


def _train(todo: list[RunConfig], store: RunStore, map_calls: MapFn, threads: int, summary: GridSummary,
           show_progress: bool | None, extra_teachers: list[RunConfig]) -> None:
    """Teachers first (one run each), then the students of every teacher that trained."""
    root = str(store.root)
    teachers = {t.teacher_key(): t for c in todo for t in c.teacher_candidates() if not store.has_teacher(t)}
    teachers.update({t.teacher_key(): t for t in extra_teachers})
    bar = progress(total=summary.total, initial=summary.total - len(todo), enabled=show_progress, desc="grid",
                   unit="run")
    bar.set_postfix_str(f"teachers 0/{len(teachers)}")
    bad_teachers = set()
    teacher_calls = [{"config": c.to_dict(), "store_root": root, "threads": threads, "teacher_only": True}
                     for c in sorted(teachers.values(), key=lambda t: -expected_cost(t, teacher=True))]
    for i, result in enumerate(map_calls(teacher_calls)):
        if result["status"] == "failed":
            bad_teachers.add(result["key"].removeprefix("teacher-"))
            summary.errors.append(result)
        bar.set_postfix_str(f"teachers {i + 1}/{len(teachers)}")

    students = [c for c in todo if not {t.teacher_key() for t in c.teacher_candidates()} & bad_teachers]
    summary.failed += len(todo) - len(students)
    bar.update(len(todo) - len(students))
    calls = [{"config": c.to_dict(), "store_root": root, "threads": threads}
             for c in sorted(students, key=lambda c: -expected_cost(c))]
    for result in map_calls(calls):
        if result["status"] == "done":
            summary.done += 1
        elif result["status"] == "skipped":  # another grid on this store finished it first
            summary.skipped += 1
        else:
            summary.failed += 1
            summary.errors.append(result)
        bar.update(1)
        remaining = summary.total - summary.skipped - summary.done - summary.failed
        bar.set_postfix(done=summary.skipped + summary.done, failed=summary.failed, remaining=remaining)
    bar.close()


def measure_faithfulness(configs: list[RunConfig], store: RunStore | str | None = None, *, n_jobs: int = 1,
                         show_progress: bool | None = None) -> GridSummary:
    """:func:`~tsd_lib.experiment.faithfulness.run_faithfulness` for every finished run of ``configs``
    that has none stored yet, ``n_jobs`` at a time."""
    store = store if isinstance(store, RunStore) else RunStore(store)
    start = time.perf_counter()
    todo = [c for c in configs if store.has(c) and not has_faithfulness(c, store)]
    summary = GridSummary(total=len(configs), skipped=len(configs) - len(todo))
    if todo:
        calls = [{"config": c.to_dict(), "store_root": str(store.root), "threads": RUN_THREADS, "faithfulness": True}
                 for c in todo]
        bar = progress(total=len(todo), enabled=show_progress, desc="faithfulness", unit="run")
        with _executor("local", n_jobs, None) as map_calls:
            for result in map_calls(calls):
                summary.done += result["status"] == "done"
                if result["status"] not in ("done", "skipped"):
                    summary.failed += 1
                    summary.errors.append(result)
                bar.update(1)
        bar.close()
    summary.seconds = time.perf_counter() - start
    return summary


def grid_status(configs: list[RunConfig], store: RunStore | str | None = None) -> pd.DataFrame:
    """Done, failed and missing runs per dataset and method."""
    store = store if isinstance(store, RunStore) else RunStore(store)
    failed = {f["key"] for f in store.failures()}
    counts: Counter[tuple[str, str, str]] = Counter()
    for c in configs:
        if store.has(c):
            state = "done"
        elif {c.key(), f"dataset-{c.dataset}", *(f"teacher-{t.teacher_key()}" for t in c.teacher_candidates())} \
                & failed:
            state = "failed"
        else:
            state = "missing"
        counts[(c.dataset, c.method, state)] += 1
    rows = {}
    for (dataset, method, state), n in counts.items():
        rows.setdefault((dataset, method), {"done": 0, "failed": 0, "missing": 0})[state] = n
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index = pd.MultiIndex.from_tuples(frame.index, names=["dataset", "method"])
    return frame.sort_index()
