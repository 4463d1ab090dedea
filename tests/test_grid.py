"""Profiles and the resumable grid: local and Dask backends, failures, kill-and-resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import tsd_lib.runs.grid as grid
from tsd_lib.experiment import RunStore
from tsd_lib.profiles import available_profiles, load_profile
from tsd_lib.runs.grid import grid_status, run_grid

TINY = {
    "datasets": ["ItalyPowerDemand"],
    "methods": ["ce", "kd", "kd+tsd"],
    "seeds": [0, 1],
    "tsd_weights": [1.0],
    "teacher": "fcn_small",
    "student": "fcn_small",
    "epochs": 1,
    "patience": 1,
    "teacher_epochs": 1,
    "n_windows": 3,
    "tsd_bank_size": 6,
    "saliency_eval_series": 4,
}


def _profile_file(tmp_path: Path, **changes) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({**TINY, **changes}))
    return path


def test_packaged_profiles_parse():
    assert {"smoke", "quick", "paper", "paper-smoke"} <= set(available_profiles())
    paper = load_profile("paper")
    assert len(paper.datasets) == 30 and paper.seeds == [1, 24, 300, 49000, 1001]
    assert paper.run["teacher_epochs"] == 500 and paper.run["epochs"] == 1000 and paper.run["patience"] == 50
    assert sorted(paper.tsd_weights) == [0.1, 0.5, 1.0, 10.0, 100.0]
    quick = load_profile("quick")
    assert len(quick.seeds) >= 3 and "Synthetic" in quick.datasets
    smoke = load_profile("smoke")
    keys = [c.key() for c in smoke.configs()]
    assert len(keys) == len(set(keys)) and len(smoke.ablation_configs()) > 0


def test_profile_expansion_sweeps_tsd_weight_only_for_tsd(tmp_path):
    profile = load_profile(_profile_file(tmp_path, tsd_weights=[0.1, 10.0]))
    configs = profile.main_configs()
    # ce and kd once per seed; kd+tsd once per (weight, seed)
    assert len(configs) == 2 + 2 + 2 * 2
    assert {c.weights["tsd"] for c in configs if c.method == "kd+tsd"} == {0.1, 10.0}


def test_bad_profiles_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown profile"):
        load_profile("nope")
    with pytest.raises(ValueError, match="unknown keys"):
        load_profile(_profile_file(tmp_path, epoch=3))
    with pytest.raises(ValueError, match="nosuchloss"):
        load_profile(_profile_file(tmp_path, methods=["nosuchloss"]))


def test_local_grid_runs_then_skips_and_reports_status(tmp_path):
    store = RunStore(tmp_path / "store")
    configs = load_profile(_profile_file(tmp_path)).configs()
    first = run_grid(configs, store, show_progress=False)
    assert (first.done, first.failed, first.skipped) == (len(configs), 0, 0)
    again = run_grid(configs, store, show_progress=False)
    assert (again.done, again.skipped) == (0, len(configs))
    status = grid_status(configs, store)
    assert status["done"].sum() == len(configs) and status["missing"].sum() == 0


def test_failures_are_recorded_and_retried(tmp_path, monkeypatch):
    store = RunStore(tmp_path / "store")
    configs = load_profile(_profile_file(tmp_path)).configs()
    real_run = grid.run

    def flaky(config, store, **kw):
        if config.method == "kd":
            raise RuntimeError("simulated crash")
        return real_run(config, store, **kw)

    monkeypatch.setattr(grid, "run", flaky)
    summary = run_grid(configs, store, show_progress=False)
    assert summary.failed == 2 and summary.done == len(configs) - 2
    failures = store.failures()
    assert len(failures) == 2 and all(
        "simulated crash" in f["error"] and "Traceback" in f["traceback"] for f in failures
    )
    assert grid_status(configs, store)["failed"].sum() == 2
    # without --retry-failed the failures stay; with it they rerun (and now succeed)
    assert run_grid(configs, store, show_progress=False).failed == 2
    monkeypatch.setattr(grid, "run", real_run)
    retried = run_grid(configs, store, retry_failed=True, show_progress=False)
    assert retried.done == 2 and retried.failed == 0 and store.failures() == []


def test_missing_dataset_is_one_failure(tmp_path):
    store = RunStore(tmp_path / "store")
    configs = load_profile(_profile_file(tmp_path, datasets=["NoSuchSet"])).configs()
    summary = run_grid(configs, store, show_progress=False)
    assert summary.failed == len(configs) and summary.done == 0
    failures = store.failures()
    assert len(failures) == 1 and failures[0]["key"] == "dataset-NoSuchSet"
    assert "data_dir" in failures[0]["error"]


def test_records_do_not_depend_on_the_worker_layout(tmp_path):
    # One torch thread per run, whatever --n-jobs: a store resumed with another layout stays one
    # set of results.
    configs = load_profile(_profile_file(tmp_path, epochs=3, patience=3, teacher_epochs=3)).configs()
    records = []
    for n_jobs in (1, 2):
        store = RunStore(tmp_path / f"store{n_jobs}")
        assert run_grid(configs, store, n_jobs=n_jobs, show_progress=False).done == len(configs)
        records.append({r["key"]: r for r in store.records()})
    assert records[0].keys() == records[1].keys()
    timing = {"train_seconds", "wall_seconds"}
    for key, record in records[0].items():
        assert {k: v for k, v in record.items() if k not in timing} == \
            {k: v for k, v in records[1][key].items() if k not in timing}, key
    assert grid.RUN_THREADS == 1


def test_dask_local_cluster_runs_the_grid(tmp_path):
    pytest.importorskip("distributed")
    store = RunStore(tmp_path / "store")
    configs = load_profile(_profile_file(tmp_path, methods=["ce", "kd"])).configs()
    summary = run_grid(configs, store, backend="dask", n_jobs=2, show_progress=False)
    assert summary.done == len(configs) and summary.failed == 0
    assert len(store.records()) == len(configs)


def test_killed_grid_resumes_without_duplicates(tmp_path):
    profile = _profile_file(tmp_path, seeds=[0, 1, 2, 3])
    store = tmp_path / "store"
    n = len(load_profile(profile).configs())
    cmd = [sys.executable, "-m", "tsd_lib", "grid", "--profile", str(profile), "--store", str(store), "--quiet"]
    env = {**os.environ, "TSD_PROGRESS": "0"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(store.glob("runs/*/record.json"))) < 2:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = len(list(store.glob("runs/*/record.json")))
    assert 2 <= partial < n, "the grid was killed mid-way"
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    records = [json.loads(p.read_text()) for p in store.glob("runs/*/record.json")]
    assert len(records) == n and len({r["key"] for r in records}) == n


def _children(pid: int) -> set[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return {int(p) for p in out.split()}


def test_killed_grid_leaves_no_workers(tmp_path):
    profile = _profile_file(tmp_path, seeds=[0, 1, 2, 3], epochs=30, patience=30)
    store = tmp_path / "store"
    cmd = [sys.executable, "-m", "tsd_lib", "grid", "--profile", str(profile), "--store", str(store), "--quiet",
           "--n-jobs", "2"]
    proc = subprocess.Popen(cmd, env={**os.environ, "TSD_PROGRESS": "0"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(store.glob("teachers/*/record.json")):
        time.sleep(0.2)
    time.sleep(1.0)  # the student phase has started its workers
    workers = _children(proc.pid)
    assert workers, "the grid started no worker processes"
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 30
    alive = workers
    while alive and time.monotonic() < deadline:
        alive = {p for p in alive if Path(f"/proc/{p}").exists() and "zombie" not in _state(p)}
        time.sleep(0.2)
    assert not alive, f"worker processes {sorted(alive)} outlived the killed grid"


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split("\n")[0].lower()
    except (OSError, IndexError):
        return "zombie"


def test_paper_smoke_profile_end_to_end(tmp_path, shared_ucr_dir):
    from tsd_lib.report import write_report

    profile = load_profile("paper-smoke", data_dir=str(shared_ucr_dir))
    store = RunStore(tmp_path / "store")
    summary = run_grid(profile.configs(), store, n_jobs=2, show_progress=False)
    assert summary.failed == 0, summary.errors[:3]
    records = store.records()
    assert {r["dataset"] for r in records} == {"BeetleFly", "Beef", "ECGFiveDays"}
    assert {r["method"] for r in records} == set(profile.methods)
    written = write_report(records, tmp_path / "report")
    assert all(Path(p).stat().st_size > 0 for p in written.values())


def test_profile_teachers_are_trained_beside_the_runs(tmp_path):
    study = [{"name": "s", "dataset": "ItalyPowerDemand", "teacher": "fcn_small", "seeds": [5, 6],
              "variants": {"a": {}, "b": {"lr_schedule": "step"}}}]
    profile = load_profile(_profile_file(tmp_path, methods=["ce"], seeds=[0], teacher_study=study))
    teachers = profile.teacher_configs()
    assert len(teachers) == 4
    store = RunStore(tmp_path / "store")
    summary = run_grid(profile.configs(), store, teachers=teachers, show_progress=False)
    assert summary.done == len(profile.configs()) and not summary.errors
    assert all((store.teacher_dir(t) / "record.json").exists() for t in teachers)
    # a second call trains nothing
    again = run_grid(profile.configs(), store, teachers=teachers, show_progress=False)
    assert again.skipped == len(profile.configs()) and again.done == 0


def test_a_run_another_grid_finished_meanwhile_counts_as_skipped(tmp_path):
    """Two grids on one store: the one that waited for a run's lock while the other trained it
    does not count it as trained (each counts only what it trained)."""
    import shutil
    import threading

    from tsd_lib.experiment import run

    (config,) = load_profile(_profile_file(tmp_path, methods=["ce"], seeds=[0])).configs()
    other, store = RunStore(tmp_path / "other"), RunStore(tmp_path / "store")
    run(config, other, progress=False)  # what the other grid trains
    summaries = []
    with store.lock(f"run-{config.key()}"):  # the other grid holds the run's lock
        waiting = threading.Thread(target=lambda: summaries.append(run_grid([config], store, show_progress=False)))
        waiting.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list(store.root.glob("teachers/*/record.json")):
            time.sleep(0.1)
        time.sleep(0.5)  # the waiting grid is at the run's lock now
        shutil.copytree(other.run_dir(config), store.run_dir(config))
    waiting.join(120)
    (summary,) = summaries
    assert (summary.done, summary.skipped, summary.failed) == (0, 1, 0), summary


def test_local_workers_are_capped_at_the_cores(tmp_path, monkeypatch):
    from joblib.externals import loky

    seen = {}

    class NoPool:  # starts no process, whatever it is asked for
        def shutdown(self, wait=True):
            seen["shutdown"] = wait

    def spy(*args, max_workers=None, **kwargs):
        seen["max_workers"] = max_workers
        return NoPool()

    monkeypatch.setattr(loky, "get_reusable_executor", spy)
    monkeypatch.setattr(grid, "cores", lambda: 2)
    with grid._executor("local", 100000, None) as map_calls:
        assert list(map_calls([])) == []
    assert seen == {"max_workers": 2, "shutdown": True}
