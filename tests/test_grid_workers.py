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
