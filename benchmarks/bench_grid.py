"""Grid throughput: runs/hour of the local backend with 2 workers vs 1, and Dask vs local.

Runs a slice of the smoke profile (with 50 epochs per run, so that a run is long enough to
measure throughput rather than start-up) three times into fresh stores that already hold the trained
teacher (so only student runs are timed): local with 1 worker, local with 2 workers, and a
Dask LocalCluster with 2 workers. Worker pools are started and warmed (imports done) before
the clock starts, for joblib and Dask alike: the ratio measures the engines' per-run cost.
Writes ``benchmarks/results/bench_grid.json`` and prints the
same JSON object as its last line. Also turns the measured seconds per epoch into an upper-bound
cost table for the quick and paper profiles.

Usage (from the project root): ``python benchmarks/bench_grid.py``
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TSD_PROGRESS", "0")

import dask  # noqa: E402
from distributed import Client, LocalCluster  # noqa: E402
from joblib import Parallel, delayed  # noqa: E402

from tsd_lib.experiment import RunStore  # noqa: E402
from tsd_lib.grid import DASK_WORKER_CONFIG, run_grid  # noqa: E402
from tsd_lib.profiles import load_profile  # noqa: E402
from tsd_lib.utils import atomic_write_json, versions  # noqa: E402

N_RUNS = 16
EPOCHS = 50  # smoke runs train 2 epochs (~0.4 s): too short to see anything but start-up costs
OUT = Path("benchmarks/results/bench_grid.json")


def _warm() -> None:
    import tsd_lib.experiment  # noqa: F401  (workers pay their imports before the clock starts)


def timed(configs, store_root: Path, teacher_store: Path, backend: str, n_jobs: int, scheduler=None) -> dict:
    shutil.copytree(teacher_store / "teachers", store_root / "teachers")
    start = time.perf_counter()
    summary = run_grid(configs, RunStore(store_root), backend=backend, n_jobs=n_jobs, scheduler=scheduler,
                       show_progress=False)
    seconds = time.perf_counter() - start
    assert summary.failed == 0, summary.errors[:2]
    return {"backend": backend, "n_jobs": n_jobs, "runs": summary.done, "seconds": seconds,
            "runs_per_hour": 3600 * summary.done / seconds}


def cost_table(records: list[dict]) -> dict:
    per_epoch: dict[str, list[float]] = {}
    for r in records:
        per_epoch.setdefault(r["method"], []).append(r["train_seconds"] / max(1, r["epochs_run"]))
    med = {m: sorted(v)[len(v) // 2] for m, v in per_epoch.items()}
    fallback = sorted(med.values())[len(med) // 2]
    table = {}
    for name in ("quick", "paper"):
        configs = load_profile(name).configs()
        sec = sum(med.get(c.method, fallback) * c.epochs for c in configs)
        table[name] = {"runs": len(configs), "upper_bound_cpu_hours_smoke_models": sec / 3600}
    return {"seconds_per_epoch_by_method": med, "profiles": table,
            "note": "smoke-profile models and data; an upper bound (max epochs, no early stopping)"}


def main() -> dict:
    configs = [c.replace(epochs=EPOCHS, patience=EPOCHS) for c in load_profile("smoke").main_configs()[:N_RUNS]]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        teacher_store = tmp / "teacher"
        run_grid(configs[:1], RunStore(teacher_store), show_progress=False)  # trains the shared teacher
        results = [timed(configs, tmp / "s0", teacher_store, "local", 1)]
        Parallel(n_jobs=2, backend="loky")(delayed(_warm)() for _ in range(2))  # the pool is reused
        results.append(timed(configs, tmp / "s1", teacher_store, "local", 2))
        with dask.config.set(DASK_WORKER_CONFIG), \
                LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            client.run(_warm)
            results.append(timed(configs, tmp / "s2", teacher_store, "dask", 2, cluster.scheduler_address))
        records = RunStore(tmp / "s0").records()
    local1, local2, dask2 = results
    out = {
        "benchmark": "bench_grid", "profile": "smoke", "runs_per_pass": len(configs), "epochs_per_run": EPOCHS,
        "cpu_count": os.cpu_count(),
        "passes": results,
        "local2_over_local1": local2["runs_per_hour"] / local1["runs_per_hour"],
        "dask_over_local": dask2["runs_per_hour"] / local2["runs_per_hour"],
        "goal_dask_over_local": 0.9,
        "cost": cost_table(records), "versions": versions(),
    }
    atomic_write_json(OUT, out)
    return out


if __name__ == "__main__":
    print(json.dumps(main()))
