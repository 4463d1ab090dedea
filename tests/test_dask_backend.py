"""The Dask backend's worker settings: no frozen mmap threshold, no environment leaks."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from distributed import Client, LocalCluster

from tsd_lib.runs.dask_backend import dask_client, dask_map, local_cluster, preserved_environ


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def mmapped_blocks_for_1mib() -> int:
    """How many mmapped blocks a 1 MiB malloc adds, after one malloc/free of that size (glibc only).

    glibc's dynamic rule raises its mmap threshold when such a block is freed, so the second
    one comes from the heap, unless a trim threshold was set, which freezes the rule.
    """
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = _MallInfo2
    libc.malloc.restype = ctypes.c_void_p
    added = 0
    for _ in range(2):
        before = libc.mallinfo2().hblks
        block = libc.malloc(1 << 20)
        added = libc.mallinfo2().hblks - before
        libc.free(ctypes.c_void_p(block))
    return added


def probe(relax: bool = False) -> dict:
    from tsd_lib.runs.dask_backend import relax_malloc_trim

    relaxed = relax_malloc_trim() if relax else None
    return {"relaxed": relaxed, "mmapped": mmapped_blocks_for_1mib(),
            "trim_env": os.environ.get("MALLOC_TRIM_THRESHOLD_")}


def _has_mallinfo2() -> bool:
    try:
        return hasattr(ctypes.CDLL(None), "mallinfo2")
    except OSError:
        return False


glibc_only = pytest.mark.skipif(not _has_mallinfo2(), reason="needs glibc >= 2.33 (mallinfo2)")


@glibc_only
@pytest.mark.parametrize("trim_env", [None, "65536"])
def test_relax_malloc_trim_unfreezes_the_mmap_threshold(trim_env):
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_TRIM_THRESHOLD_"}
    if trim_env:
        env["MALLOC_TRIM_THRESHOLD_"] = trim_env
    code = "import json; from test_dask_backend import probe; print(json.dumps([probe(), probe(relax=True)]))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parent)
    before, after = json.loads(out.stdout.strip().splitlines()[-1])
    if trim_env:
        assert before["mmapped"] == 1, "a set trim threshold freezes glibc's mmap threshold at 128 KiB"
        assert after["relaxed"] is True and after["mmapped"] == 0
    else:
        assert after["relaxed"] is False and before["mmapped"] == after["mmapped"] == 0


@glibc_only
def test_local_cluster_workers_use_the_heap_and_leave_our_environment_alone():
    environ = dict(os.environ)
    with local_cluster(1) as cluster, Client(cluster) as client:
        assert dict(os.environ) == environ, "the nannies' variables leaked into this process"
        (worker_probe,) = client.run(probe).values()
    assert worker_probe["trim_env"] is None
    assert worker_probe["mmapped"] == 0


@glibc_only
def test_grid_plugin_fixes_workers_of_a_stock_cluster():
    with preserved_environ():
        cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None)
    with cluster:
        with Client(cluster) as client:
            (stock,) = client.run(probe).values()
        assert stock["trim_env"] == "65536" and stock["mmapped"] == 1  # Dask's default workers
        with dask_client(1, cluster.scheduler_address) as client:
            (result,) = dask_map(client, probe, [{}])
    assert result["mmapped"] == 0
