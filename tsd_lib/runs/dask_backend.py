"""The grid's Dask backend: a LocalCluster (or a given scheduler) whose workers train at full speed.

Two settings of a stock Dask worker slow a run of many small, Python-driven torch calls:

- Dask's nannies export ``MALLOC_TRIM_THRESHOLD_=65536`` before they start a worker. Setting
  glibc's trim threshold also freezes its mmap threshold at 128 KiB, so every tensor larger
  than that is a fresh, zero-filled ``mmap`` that is unmapped again when freed. On the grid
  benchmark's runs this made training about 30 % slower per run than in a joblib worker
  (``benchmarks/bench_grid.py``). Our clusters start without the variable; on workers of a
  given scheduler, :class:`TorchWorkerSetup` restores glibc's steady-state thresholds.
- Dask's statistical profiler samples every worker's stacks every 10 ms; our clusters turn it off.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import dask
from distributed import Client, LocalCluster, as_completed
from distributed.diagnostics.plugin import WorkerPlugin

# Config for the clusters we start (dotted keys merge into Dask's defaults).
DASK_WORKER_CONFIG = {
    "distributed.worker.profile.enabled": False,
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
}

# glibc's mallopt parameters and the largest mmap threshold its dynamic rule grows to (64-bit).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024


def relax_malloc_trim() -> bool:
    """Undo a ``MALLOC_TRIM_THRESHOLD_`` set in this process's environment; True if it did.

    Sets the mmap threshold to 32 MiB and the trim threshold to twice that, where glibc's
    dynamic rule would have taken them. A no-op without the variable or off glibc.
    """
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)) and bool(
        mallopt(_M_TRIM_THRESHOLD, 2 * _MMAP_THRESHOLD_MAX))


class TorchWorkerSetup(WorkerPlugin):
    """Runs :func:`relax_malloc_trim` on every worker of the cluster, present and future."""

    name = "tsd-torch-worker-setup"

    def setup(self, worker: Any) -> None:
        relax_malloc_trim()


@contextmanager
def preserved_environ() -> Iterator[None]:
    """Put this process's environment back on exit: Dask's nannies export their variables
    (``OMP_NUM_THREADS=1``, ``MALLOC_TRIM_THRESHOLD_``, ...) into it before starting a worker,
    and processes started later (joblib's workers, say) would inherit them."""
    environ = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(environ)


@contextmanager
def local_cluster(n_workers: int) -> Iterator[LocalCluster]:
    """A LocalCluster of single-threaded worker processes, started with :data:`DASK_WORKER_CONFIG`
    and without changing this process's environment. Its scheduler and nannies run in this process;
    Dask ends each worker process as soon as this one dies, however it dies (a thread in the worker
    watches a pipe from it), so a killed grid leaves no worker behind."""
    with preserved_environ(), dask.config.set(DASK_WORKER_CONFIG):
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None)
    with cluster:
        yield cluster


@contextmanager
def dask_client(n_workers: int, scheduler: str | None = None) -> Iterator[Client]:
    """A client of ``scheduler`` (or of a new :func:`local_cluster`), with :class:`TorchWorkerSetup` registered."""
    with local_cluster(n_workers) if scheduler is None else nullcontext() as cluster, \
            Client(scheduler or cluster) as client:
        client.register_plugin(TorchWorkerSetup())
        yield client


def dask_map(client: Client, fn: Callable[..., dict[str, Any]],
             calls: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """``fn(**call)`` for every call on the client's workers, yielded as they finish."""
    futures = [client.submit(fn, **c, pure=False) for c in calls]
    for fut in as_completed(futures):
        yield fut.result()
