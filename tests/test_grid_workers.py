"""The grid's worker processes die with the grid, however it dies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

# Opens a Dask cluster of one worker and prints the pids of the processes it started. Then it stalls
# the worker's event loop (without holding the GIL), so that the worker can't close itself for having
# lost its scheduler; the worker says when it is stalled.
_DASK_GRID = """
import json, os, time
import psutil
from tsd_lib.runs.dask_backend import dask_client

async def stall():
    print("stalled", flush=True)
    time.sleep(60)

with dask_client(1) as client:
    pids = set(client.run(os.getpid).values()) | {p.pid for p in psutil.Process().children(recursive=True)}
    print(json.dumps(sorted(pids)), flush=True)
    client.run(stall, wait=False)
    time.sleep(60)
"""


def _gone(proc: psutil.Process) -> bool:
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.skipif(sys.platform != "linux", reason="Linux process semantics")
def test_dask_workers_die_when_the_grid_is_killed():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parents[1]),
                                                                     os.environ.get("PYTHONPATH")]))}
    grid = subprocess.Popen([sys.executable, "-c", _DASK_GRID], stdout=subprocess.PIPE, text=True, env=env)
    hung = threading.Timer(60, grid.kill)  # a grid that never gets its cluster up fails the test, no more
    hung.start()
    started: list[psutil.Process] = []
    try:
        started = [psutil.Process(pid) for pid in json.loads(grid.stdout.readline() or "[]")]
        stalled = grid.stdout.readline()
    finally:
        hung.cancel()
        grid.kill()  # SIGKILL: the grid gets no chance to close its cluster
        grid.wait()
        grid.stdout.close()
    try:
        assert started and stalled == "stalled\n", "the grid's worker did not start or stall"
        deadline = time.monotonic() + 10
        while not all(_gone(p) for p in started) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert all(_gone(p) for p in started), "processes outlived the grid that started them"
    finally:
        for proc in started:
            if not _gone(proc):
                proc.kill()


def test_loky_replacing_a_grown_worker_is_not_reported_as_a_leak():
    """loky replaces a worker whose memory grew by 300 MB between two calls and warns of a memory leak; the
    pool hides that one warning (loky's own text, checked here) and no other."""
    import inspect
    import warnings

    from joblib.externals.loky import process_executor

    from tsd_lib.runs.grid import _WORKER_REPLACED, _executor

    source = " ".join(inspect.getsource(process_executor).split()).replace('" "', "")  # joined literals
    assert _WORKER_REPLACED in source
    with warnings.catch_warnings(record=True) as shown, _executor("local", 2, None) as map_calls:
        warnings.warn(f"{_WORKER_REPLACED}. This can be caused by a too short worker timeout or by a memory leak.",
                      UserWarning, stacklevel=1)
        warnings.warn("a damaged record", UserWarning, stacklevel=1)
        assert list(map_calls([])) == []
    assert [str(w.message) for w in shown] == ["a damaged record"]
