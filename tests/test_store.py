"""The run store heals damage, trains each run once under concurrency, refuses a read-only
folder up front and writes strict JSON; RunConfig validates and normalises its values."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tsd_lib.cli import main
from tsd_lib.experiment import (
    RunConfig,
    RunStore,
    StoreError,
    StoreWarning,
    load_student,
    load_teacher,
    run,
    weights_digest,
)
from tsd_lib.runs.grid import grid_status, run_grid

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(dataset="ItalyPowerDemand", teacher="fcn_small", student="fcn_small", epochs=1, patience=1,
            teacher_epochs=1, n_windows=3, tsd_bank_size=6, saliency_eval_series=4)


def _strict(text: str) -> object:
    def refuse(name: str) -> None:
        raise ValueError(f"bare {name} in JSON")
    return json.loads(text, parse_constant=refuse)


@pytest.fixture()
def stored(tmp_path):
    store = RunStore(tmp_path / "store")
    config = RunConfig(**TINY, method="kd+tsd")
    return store, config, run(config, store, progress=False)


# ------------------------------------------------------------------ damaged records


def test_truncated_record_is_missing_named_and_retrained(stored):
    store, config, record = stored
    path = store.run_dir(config) / "record.json"
    path.write_text(path.read_text()[:40])
    assert not store.has(config)
    assert store.damaged() == [path]
    with pytest.warns(StoreWarning, match=str(path)):
        assert store.records() == []
    assert grid_status([config], store)["missing"].sum() == 1
    summary = run_grid([config], store, show_progress=False)
    assert summary.done == 1 and store.has(config) and store.damaged() == []
    assert store.load_record(config)["accuracy"] == pytest.approx(record["accuracy"])


def test_status_and_report_name_damaged_runs(tmp_path, capsys):
    profile = tmp_path / "tiny.yaml"
    profile.write_text(yaml.safe_dump({**{k: v for k, v in TINY.items() if k != "dataset"},
                                       "datasets": ["ItalyPowerDemand"], "methods": ["ce", "kd"], "seeds": [0]}))
    store = tmp_path / "store"
    args = ["--profile", str(profile), "--store", str(store)]
    assert main(["grid", *args, "--quiet"]) == 0
    path = sorted(store.glob("runs/*/record.json"))[0]
    path.write_text("{\"accuracy\": 0.")
    capsys.readouterr()
    assert main(["status", *args]) == 0
    out = capsys.readouterr().out
    assert "1 done, 0 failed, 1 missing" in out
    assert f"damaged (counted as missing; `tsd grid` retrains it): {path}" in out
    main(["report", *args, "--out", str(tmp_path / "report")])
    err = capsys.readouterr().err
    assert "1 of 2 runs of profile tiny are missing" in err and f"damaged: {path}" in err
    assert main(["grid", *args, "--quiet"]) == 0
    assert "1 already in the store, 1 trained" in capsys.readouterr().out


def test_damaged_failure_file_is_named_and_skipped(stored, capsys):
    store, config, _ = stored
    store.record_failure("good", {"key": "good", "error": "ValueError: x"})
    bad = store.failure_path("bad")
    bad.write_text("{\"key\": \"ba")
    with pytest.warns(StoreWarning, match=str(bad)):
        assert [f["key"] for f in store.failures()] == ["good"]
    with pytest.warns(StoreWarning):
        assert grid_status([config], store)["done"].sum() == 1
    with pytest.warns(StoreWarning):
        assert run_grid([config.replace(seed=1)], store, show_progress=False).done == 1


# ------------------------------------------------------------------ damaged teacher files


def test_corrupt_teacher_model_is_named_and_retrained(stored):
    store, config, _ = stored
    model = store.teacher_dir(config) / "model.pt"
    model.write_bytes(model.read_bytes()[:100])
    with pytest.raises(StoreError, match=f"damaged teacher model {model}.*rerun `tsd grid`"):
        load_teacher(config, store)
    with pytest.warns(StoreWarning, match=str(model)):
        record = run(config.replace(method="kd"), store, progress=False)
    assert np.isfinite(record["accuracy"])
    assert store.load_teacher_record(config)["weights_digest"] == weights_digest(load_teacher(config, store))


def test_teacher_weights_that_do_not_match_the_record_are_retrained(stored):
    store, config, _ = stored
    path = store.teacher_dir(config) / "model.pt"
    blob = torch.load(path, weights_only=True)
    first = next(iter(blob["state_dict"]))
    blob["state_dict"][first] = blob["state_dict"][first] + 1.0  # bytes changed, file still loads
    torch.save(blob, path)
    with pytest.warns(StoreWarning, match="do not match its record"):
        run(config.replace(method="kd"), store, progress=False)
    assert store.load_teacher_record(config)["weights_digest"] == weights_digest(load_teacher(config, store))


def test_corrupt_bank_and_cached_arrays_are_recomputed(stored):
    store, config, _ = stored
    folder = store.teacher_dir(config)
    files = [*folder.glob("bank-*.pt"), *folder.glob("test-proba-*.npy"), *folder.glob("saliency-*.npy")]
    assert len(files) == 3
    for f in files:
        f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2])
    with pytest.warns(StoreWarning) as caught:
        record = run(config.replace(seed=1), store, progress=False)
    named = " ".join(str(w.message) for w in caught)
    assert all(str(f) in named for f in files), named
    assert np.isfinite(record["accuracy"])
    for f in files:  # rewritten whole
        torch.load(f, weights_only=True) if f.suffix == ".pt" else np.load(f)


def test_corrupt_student_model_names_the_file_and_the_fix(stored):
    store, config, record = stored
    path = store.run_dir(config) / "model.pt"
    path.write_bytes(b"garbage")
    with pytest.raises(StoreError, match=f"damaged student model {path}.*delete"):
        load_student(record, store)


# ------------------------------------------------------------------ two grids, one store


SCRIPT = textwrap.dedent("""
    import os, sys, time
    import tsd_lib.train
    from tsd_lib.experiment import RunConfig
    from tsd_lib.runs.grid import run_grid

    store, log, tiny = sys.argv[1], sys.argv[2], eval(sys.argv[3])
    real = tsd_lib.train.fit

    def fit(model, data, objective=None, *args, **kwargs):  # teachers train on CE: no objective
        with open(log, "a") as fh:
            fh.write(f"{'teacher' if objective is None else 'student'} {os.getpid()}\\n")
        time.sleep(1.0)  # both processes are surely inside the grid at once
        return real(model, data, objective, *args, **kwargs)

    tsd_lib.train.fit = fit
    with open(log + ".ready", "a") as fh:
        fh.write("x")
    while len(open(log + ".ready").read()) < 2:
        time.sleep(0.05)
    summary = run_grid([RunConfig(**tiny, method=m) for m in ("ce", "kd")], store, show_progress=False)
    assert summary.failed == 0, summary.errors
""")


def test_two_grids_on_one_store_train_each_run_once(tmp_path):
    script, log, store = tmp_path / "grid.py", tmp_path / "fits.log", tmp_path / "store"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TSD_PROGRESS": "0"}
    procs = [subprocess.Popen([sys.executable, str(script), str(store), str(log), repr(TINY)], env=env,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
    fits = log.read_text().split()[::2]
    assert fits.count("teacher") == 1 and fits.count("student") == 2, log.read_text()
    assert len(RunStore(store).records()) == 2


def test_lock_is_released_when_its_process_dies(tmp_path):
    store = RunStore(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from tsd_lib.experiment import RunStore
        with RunStore({str(tmp_path)!r}).lock("run-x"):
            print("held", flush=True)
            time.sleep(60)
    """)], env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    holder.kill()
    holder.wait()
    with store.lock("run-x"):  # would wait forever on a stale lock
        pass


# ------------------------------------------------------------------ read-only stores


def test_check_writable_names_the_folder(tmp_path, monkeypatch):
    RunStore(tmp_path).check_writable()
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(StoreError, match=f"run store {tmp_path} is not writable.*--store"):
        RunStore(tmp_path).check_writable()
    with pytest.raises(StoreError, match="is not writable"):
        RunStore(tmp_path / "not" / "yet").check_writable()  # the folder that would hold it


@pytest.mark.parametrize("argv", [
    ["grid", "--profile", "smoke"],
    ["distill", "--dataset", "ItalyPowerDemand"],
    ["reproduce", "--profile", "smoke"],
    ["train", "--dataset", "ItalyPowerDemand"],
])
def test_read_only_store_fails_before_training(argv, tmp_path, monkeypatch, capsys):
    import tsd_lib.runs.grid

    ro = tmp_path / "ro"
    ro.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: not str(p).startswith(str(ro)) and real_access(p, mode))
    monkeypatch.setattr(tsd_lib.train, "fit", lambda *a, **k: pytest.fail("training started"))
    monkeypatch.setattr(tsd_lib.runs.grid, "run", lambda *a, **k: pytest.fail("training started"))
    place = ["--out", str(ro / "t")] if argv[0] == "train" else ["--store", str(ro)]
    assert main([*argv, *place]) == 2
    err = capsys.readouterr().err
    assert "is not writable" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_chmod_read_only_store_is_refused(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert main(["distill", "--dataset", "ItalyPowerDemand", "--store", str(ro)]) == 2
        assert "is not writable" in capsys.readouterr().err
    finally:
        ro.chmod(0o755)


# ------------------------------------------------------------------ strict JSON


def test_no_validation_split_writes_null_not_nan(tmp_path):
    store = RunStore(tmp_path)
    config = RunConfig(**{**TINY, "val_fraction": 0.0}, method="kd")
    record = run(config, store, progress=False)
    assert record["val_loss"] is None and record["val_auc_pr"] is None
    for path in [store.run_dir(config) / "record.json", store.run_dir(config) / "history.json",
                 store.teacher_dir(config) / "record.json"]:
        _strict(path.read_text())
    assert _strict((store.run_dir(config) / "record.json").read_text()) == record
    from tsd_lib.report import records_to_frame, summary_table

    records = [record, {**record, "seed": 1, "key": "other"}]
    assert records_to_frame(records)["val_loss"].isna().all()
    assert summary_table(records).count.to_numpy().sum() == 2


def test_json_writer_refuses_nothing_and_writes_null(tmp_path):
    from tsd_lib.utils import atomic_write_json

    atomic_write_json(tmp_path / "x.json", {"a": float("nan"), "b": [np.float32("inf"), 1.5]})
    assert _strict((tmp_path / "x.json").read_text()) == {"a": None, "b": [None, 1.5]}


# ------------------------------------------------------------------ RunConfig values


@pytest.mark.parametrize(("change", "field"), [
    ({"tau": 0}, "tau"), ({"tau": -2.0}, "tau"), ({"tau": "8"}, "tau"), ({"window": 0}, "window"),
    ({"n_windows": 0}, "n_windows"), ({"epochs": 0}, "epochs"), ({"epochs": "two"}, "epochs"),
    ({"epochs": True}, "epochs"), ({"epochs": 2.5}, "epochs"), ({"batch_size": 0}, "batch_size"),
    ({"patience": 0}, "patience"), ({"teacher_epochs": 0}, "teacher_epochs"),
    ({"teacher_patience": -1}, "teacher_patience"), ({"val_fraction": 1.0}, "val_fraction"),
    ({"val_fraction": -0.1}, "val_fraction"), ({"saliency_eval_series": -5}, "saliency_eval_series"),
    ({"tsd_bank_size": -1}, "tsd_bank_size"), ({"lr": 0}, "lr"), ({"tsd_reduce": "mean"}, "tsd_reduce"),
    ({"tsd_score": "l2"}, "tsd_score"), ({"tsd_baseline": "x"}, "tsd_baseline"), ({"teacher": "gpt"}, "teacher"),
    ({"student": "nope"}, "student"), ({"seed": "0"}, "seed"), ({"stretch": "yes"}, "stretch"),
    ({"budgets": [0]}, "budgets"), ({"weights": {"tsd": "ten"}}, "weights"), ({"lr_schedule": "cos"}, "lr_schedule"),
])
def test_bad_values_are_rejected_naming_the_field(change, field):
    with pytest.raises(ValueError, match=f"RunConfig: {field}"):
        RunConfig(**{**TINY, **change})


def test_numbers_and_dataset_names_are_normalised_before_hashing():
    base = RunConfig(**TINY, tau=8.0)
    assert RunConfig(**TINY, tau=8).key() == base.key() and isinstance(RunConfig(**TINY, tau=8).tau, float)
    same = RunConfig(**{**TINY, "epochs": 1.0, "dataset": "italypowerdemand"}, tau=8)
    assert same.key() == base.key() and same.dataset == "ItalyPowerDemand" and isinstance(same.epochs, int)
    assert RunConfig(**{**TINY, "dataset": "GUNPOINT"}).dataset == "GunPoint"
    assert RunConfig(**{**TINY, "dataset": "synthetic"}).dataset == "Synthetic"
    assert RunConfig(**{**TINY, "dataset": "NoSuchSet"}).dataset == "NoSuchSet"
    assert RunConfig(**TINY, weights={"tsd": 10}).key() == RunConfig(**TINY, weights={"tsd": 10.0}).key()
    assert RunConfig.from_dict(base.to_dict()) == base


@pytest.mark.parametrize(("key", "bad", "good"), [
    ("tau", 0, 8), ("epochs", "two", 3), ("batch_size", 0, 1), ("tsd_score", "x", "target_prob"),
    ("val_fraction", 1.0, 0.0), ("length", 1, 50), ("tsd_bank_size", -1, 0), ("warmup", -1, 0),
    ("lr_schedule", "cos", "step"), ("saliency_eval_series", -5, 2), ("split_seed", -1, 3),
    ("tsd_baseline", "x", "zero"), ("teacher_epochs", 0, None),
])
def test_profile_schema_and_run_config_agree(key, bad, good):
    from tsd_lib.profiles.schema import RUN_SCHEMA, ProfileError

    with pytest.raises(ProfileError, match=key):
        RUN_SCHEMA[key](bad, key)
    with pytest.raises(ValueError, match=f"RunConfig: {key}"):
        RunConfig(**{**TINY, key: bad})
    assert RunConfig(**{**TINY, key: RUN_SCHEMA[key](good, key)}) == RunConfig(**{**TINY, key: good})


def test_per_term_settings_are_validated_normalised_and_hashed():
    from tsd_lib.settings import DKDSettings

    dkd = {**TINY, "method": "dkd"}
    base = RunConfig(**dkd)
    two = RunConfig(**dkd, settings={"dkd": {"beta": 2}})
    assert two.key() != base.key() and two.key() == RunConfig(**dkd, settings={"dkd": {"beta": 2.0}}).key()
    assert RunConfig(**dkd, settings={}).key() == base.key()
    assert two.loss_settings()["dkd"] == DKDSettings(alpha=1.0, beta=2.0, tau=base.tau)
    assert RunConfig.from_dict(two.to_dict()) == two
    with pytest.raises(ValueError, match=r"RunConfig: settings: .*\['rkd'\] that the method does not use"):
        RunConfig(**dkd, settings={"rkd": {"w_dist": 25}})
    with pytest.raises(ValueError, match="RunConfig: settings: unknown setting"):
        RunConfig(**dkd, settings={"dkd": {"gamma": 1}})
    with pytest.raises(ValueError, match="free of 'tsd'"):
        RunConfig(**{**TINY, "method": "kd+tsd"}, settings={"tsd": {"n_windows": 3}})


def test_a_run_of_the_same_key_distilled_from_another_teacher_is_retrained(tmp_path):
    """A run's key hashes the student's protocol, not the teacher's: with an LSTM student (warm-up 200 by
    default) and an FCN teacher (none), ``warmup=200`` changes only the teacher. The store tells the two
    runs apart by the teacher that each was distilled from."""
    store = RunStore(tmp_path / "store")
    plain = RunConfig(**{**TINY, "teacher": "fcn", "student": "lstm_student"}, method="kd")
    warm = plain.replace(warmup=200)
    assert plain.key() == warm.key() and plain.teacher_key() != warm.teacher_key()
    run(plain, store, progress=False)
    assert store.has(plain)
    with pytest.warns(StoreWarning, match="distilled from another teacher"):
        assert not store.has(warm)
    assert run(warm, store, progress=False)["teacher_key"] == warm.teacher_key()
    assert store.has(warm) and not store.has(plain)
