"""Grid throughput: runs/hour of the local backend with 2 workers vs 1, and Dask vs local.

Runs a slice of the smoke profile (with 30 epochs per run, so that a run is long enough to
measure throughput rather than start-up) into fresh stores that already hold the trained teacher
(so only student runs are timed): once with 1 local worker, then ROUNDS rounds of three 2-worker
engines: local (joblib), the grid's Dask LocalCluster, and a stock LocalCluster (Dask's default
settings, standing in for a user's own cluster reached with ``--scheduler``; the grid registers
its worker plugin there). Worker pools are started and warmed (imports done) before the clock
starts, for joblib and Dask alike, so the ratios measure the engines' per-run cost. This
machine's speed drifts by +-10-25 % from one minute to the next (shared cores), so engines are
compared round by round (their order rotates) and the median of the per-round ratios is
reported. Writes ``benchmarks/results/bench_grid.json`` and prints the same JSON object as its
last line. Also turns the measured seconds per epoch into an upper-bound cost table for the
quick and paper profiles.

Usage (from the project root): ``python benchmarks/bench_grid.py``
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("TSD_PROGRESS", "0")

from distributed import Client, LocalCluster  # noqa: E402
from joblib import Parallel, delayed  # noqa: E402

from tsd_lib.experiment import RunStore  # noqa: E402
from tsd_lib.profiles import load_profile  # noqa: E402
from tsd_lib.runs.dask_backend import local_cluster, preserved_environ  # noqa: E402
from tsd_lib.runs.grid import run_grid  # noqa: E402
from tsd_lib.utils import atomic_write_json, versions  # noqa: E402

N_RUNS = 12
EPOCHS = 30  # smoke runs train 2 epochs (~0.4 s): too short to see anything but start-up costs
ROUNDS = 4
OUT = Path("benchmarks/results/bench_grid.json")


def _warm() -> None:
    import tsd_lib.experiment  # noqa: F401  (workers pay their imports before the clock starts)


@contextmanager
def _stock_cluster() -> Iterator[LocalCluster]:
    """A LocalCluster with Dask's default settings (this process's environment left as it was)."""
    with preserved_environ():
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    with cluster:
        yield cluster


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


def _paired_ratio(passes: dict[str, list[dict]], a: str, b: str) -> float:
    """Median over rounds of engine ``a``'s runs/hour over engine ``b``'s in the same round."""
    pairs = zip(passes[a], passes[b], strict=True)
    return statistics.median(pa["runs_per_hour"] / pb["runs_per_hour"] for pa, pb in pairs)


def main() -> dict:
    configs = [c.replace(epochs=EPOCHS, patience=EPOCHS) for c in load_profile("smoke").main_configs()[:N_RUNS]]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        teacher_store = tmp / "teacher"
        run_grid(configs[:1], RunStore(teacher_store), show_progress=False)  # trains the shared teacher
        # In this process, before any cluster: a LocalCluster's scheduler runs in this process too.
        local1 = timed(configs, tmp / "one_worker", teacher_store, "local", 1)
        records = RunStore(tmp / "one_worker").records()
        Parallel(n_jobs=2, backend="loky")(delayed(_warm)() for _ in range(2))  # the pool is reused
        with local_cluster(2) as ours, _stock_cluster() as stock:
            for cluster in (ours, stock):
                with Client(cluster) as client:
                    client.run(_warm)
            engines = [("local", "local", None), ("dask", "dask", ours.scheduler_address),
                       ("dask_stock_cluster", "dask", stock.scheduler_address)]
            passes: dict[str, list[dict]] = {name: [] for name, _, _ in engines}
            for r in range(ROUNDS):
                for name, backend, scheduler in engines[r % 3:] + engines[:r % 3]:  # no engine always goes first
                    passes[name].append(timed(configs, tmp / f"{name}-round{r}", teacher_store, backend, 2, scheduler))
    local2 = statistics.median(p["runs_per_hour"] for p in passes["local"])
    out = {
        "benchmark": "bench_grid", "profile": "smoke", "runs_per_pass": len(configs), "epochs_per_run": EPOCHS,
        "rounds": ROUNDS, "cpu_count": os.cpu_count(),
        "passes": {"local_1_worker": [local1], **passes},
        "local2_over_local1": local2 / local1["runs_per_hour"],
        "dask_over_local": _paired_ratio(passes, "dask", "local"),
        "dask_stock_cluster_over_local": _paired_ratio(passes, "dask_stock_cluster", "local"),
        "goal_dask_over_local": 0.9,
        "cost": cost_table(records), "versions": versions(),
    }
    atomic_write_json(OUT, out)
    return out


if __name__ == "__main__":
    print(json.dumps(main()))
