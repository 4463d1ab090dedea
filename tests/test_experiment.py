"""Run configs, the run store (hit/miss, atomicity), records and stored models."""

from __future__ import annotations

import json

import numpy as np
import pytest

import tsd_lib.experiment as experiment
import tsd_lib.train
from tsd_lib.experiment import RunConfig, RunStore, get_dataset, load_student, load_teacher, run, runner, teachers
from tsd_lib.experiment import config as config_module
from tsd_lib.metrics import softmax
from tsd_lib.train import predict_logits

SMOKE = dict(
    dataset="ItalyPowerDemand",
    epochs=2,
    patience=2,
    teacher_epochs=2,
    n_windows=5,
    tsd_bank_size=10,
    saliency_eval_series=6,
)


def patch_fit(monkeypatch, fit):
    """Replace ``fit`` in the one training front-end (:func:`tsd_lib.train.train_model`) that teachers
    and students go through."""
    import tsd_lib.train

    monkeypatch.setattr(tsd_lib.train, "fit", fit)


def test_hash_covers_results_not_placement():
    base = RunConfig(**SMOKE)
    assert base.key() == RunConfig(**SMOKE, device="cpu", data_dir="/somewhere").key()
    assert base.key() != base.replace(seed=1).key()
    assert base.key() != base.replace(weights={"tsd": 10.0}).key()
    # default weights spelled out are the same run
    assert base.key() == base.replace(weights={"tsd": 1.0}).key()
    # TSD settings do not change a KD run; temperature does not change a CE run
    kd = base.replace(method="kd")
    assert kd.key() == kd.replace(n_windows=50, window=20).key()
    assert kd.key() != kd.replace(tau=2.0).key()
    ce = base.replace(method="ce")
    assert ce.key() == ce.replace(tau=2.0).key()
    # the student's seed and method do not change the teacher
    assert base.teacher_key() == base.replace(seed=3, method="ce").teacher_key()
    assert base.teacher_key() != base.replace(teacher_seed=1).teacher_key()


def test_config_validation():
    with pytest.raises(ValueError, match="nope"):
        RunConfig(dataset="GunPoint", method="kd+nope")
    with pytest.raises(ValueError, match="window"):
        RunConfig(dataset="GunPoint", window=100)
    cfg = RunConfig.from_dict({**RunConfig(**SMOKE).to_dict(), "accuracy": 0.9, "key": "x"})
    assert cfg == RunConfig(**SMOKE)


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    store = RunStore(tmp_path_factory.mktemp("store"))
    config = RunConfig(**SMOKE)
    return store, config, run(config, store, progress=False)


def test_record_holds_contract_fields(stored):
    _, config, record = stored
    for key in (
        "accuracy",
        "auc_pr",
        "roc_auc",
        "agreement",
        "kl_teacher_student",
        "ece",
        "saliency_spearman",
        "saliency_cosine",
        "teacher_accuracy",
        "val_accuracy",
        "val_auc_pr",
        "val_loss",
        "epochs_run",
        "train_seconds",
        "dataset",
        "method",
        "seed",
        "versions",
    ):
        assert key in record, key
    assert record["epochs_run"] == 2 and record["method"] == "kd+tsd"
    assert 0 <= record["accuracy"] <= 1 and 0 <= record["agreement"] <= 1
    assert -1 <= record["saliency_spearman"] <= 1
    assert record["key"] == config.key()


def test_store_hit_loads_without_training(stored, monkeypatch):
    store, config, record = stored

    def boom(*args, **kwargs):
        raise AssertionError("a stored run was retrained")

    patch_fit(monkeypatch, boom)
    assert run(config, store) == record
    assert RunConfig.from_dict(record) == config


def test_teacher_is_shared_between_students(stored, monkeypatch):
    store, config, _ = stored
    teacher_files = sorted(p.name for p in store.teacher_dir(config).iterdir())
    calls = []
    real_fit = tsd_lib.train.fit
    patch_fit(monkeypatch, lambda model, *a, **k: calls.append(model) or real_fit(model, *a, **k))
    other = config.replace(seed=1, method="ce")
    run(other, store, progress=False)
    assert len(calls) == 1, "only the student trains; the teacher comes from the store"
    assert sorted(p.name for p in store.teacher_dir(config).iterdir()) == teacher_files
    assert len(store.records()) == 2


def test_stored_student_reproduces_record(stored):
    store, config, record = stored
    data = get_dataset(config)
    student = load_student(record, store)
    proba = softmax(predict_logits(student, data.X_test))
    assert np.mean(proba.argmax(1) == data.y_test) == pytest.approx(record["accuracy"])
    teacher = load_teacher(config, store)
    assert not teacher.training
    with pytest.raises(FileNotFoundError, match="no stored run"):
        load_student(config.replace(seed=99), store)


def test_killed_run_leaves_no_record(tmp_path, monkeypatch):
    store = RunStore(tmp_path)
    config = RunConfig(**{**SMOKE, "method": "ce"})
    real = runner.atomic_write_json

    def dies_on_record(path, obj):
        if path.name == "record.json" and "runs" in path.parts:
            raise KeyboardInterrupt("killed")
        real(path, obj)

    monkeypatch.setattr(runner, "atomic_write_json", dies_on_record)
    with pytest.raises(KeyboardInterrupt):
        run(config, store, progress=False)
    assert not store.has(config)
    assert store.records() == []
    assert not list(tmp_path.rglob("*.tmp"))
    monkeypatch.setattr(runner, "atomic_write_json", real)
    record = run(config, store, progress=False)
    assert json.loads((store.run_dir(config) / "record.json").read_text()) == record


def test_teacher_bank_is_built_once_per_teacher(stored, monkeypatch):
    store, config, _ = stored
    banks = list(store.teacher_dir(config).glob("bank-*.pt"))
    assert len(banks) == 1

    def no_rebuild(*args, **kwargs):
        raise AssertionError("the bank was rebuilt")

    guard = type("NoBuild", (), {"__init__": no_rebuild, "from_state": teachers.TeacherBank.from_state})
    monkeypatch.setattr(teachers, "TeacherBank", guard)
    record = run(config.replace(seed=5), store, progress=False)
    assert record["seed"] == 5 and np.isfinite(record["accuracy"])


def test_records_say_how_training_ended(stored):
    store, config, record = stored
    assert record["stopped_early"] is False and record["best_epoch"] <= record["epochs_run"] == 2
    teacher = store.load_teacher_record(config)
    assert teacher["stopped_early"] is False and teacher["epochs_run"] == 2 and 1 <= teacher["best_epoch"] <= 2
    assert teacher["weights_digest"] == experiment.weights_digest(load_teacher(config, store))
    assert record["code"] == runner.results_digest() == teacher["code"]


def test_defaults_are_the_converged_protocol():
    c = RunConfig(dataset="GunPoint")  # the paper's LSTM pair
    assert (c.epochs, c.patience, c.lr, c.batch_size) == (1000, 50, 0.005, 32)
    t, s = c.train_config(teacher=True), c.train_config()
    assert (t.epochs, t.patience, t.lr, t.lr_schedule, t.warmup) == (1000, 50, 0.005, "paper", 200)
    assert (s.epochs, s.patience, s.lr, s.lr_schedule, s.warmup) == (1000, 50, 0.005, "step", 200)
    fcn = c.replace(teacher="fcn", student="fcn_small")
    t, s = fcn.train_config(teacher=True), fcn.train_config()
    assert (t.epochs, t.patience, t.lr_schedule, t.warmup) == (1000, 50, "paper", 0)
    assert (s.epochs, s.patience, s.lr_schedule, s.lr_step, s.warmup) == (1000, 50, "step", 100, 0)
    # a mixed pair: each model gets its own protocol
    mixed = c.replace(student="fcn_small")
    assert mixed.train_config(teacher=True).warmup == 200 and mixed.train_config().warmup == 0
    # spelling out the default protocol is the same run; another protocol is another run
    assert c.replace(student="fcn_small").replace(lr_schedule="step").key() == c.replace(student="fcn_small").key()
    assert c.replace(warmup=0).key() != c.key() and c.replace(warmup=0).teacher_key() != c.teacher_key()


def test_store_from_other_code_is_not_reused(stored, monkeypatch):
    # A results-changing code change moves every key: the old record is not served, the run
    # (and its teacher) are retrained.
    store, config, record = stored
    old_key, old_teacher = config.key(), config.teacher_key()
    monkeypatch.setattr(config_module, "results_digest", lambda: "0123456789abcdef")
    monkeypatch.setattr(runner, "results_digest", lambda: "0123456789abcdef")
    assert config.key() != old_key and config.teacher_key() != old_teacher
    assert not store.has(config)
    calls = []
    real_fit = tsd_lib.train.fit
    patch_fit(monkeypatch, lambda *a, **k: calls.append(1) or real_fit(*a, **k))
    fresh = run(config, store, progress=False)
    assert len(calls) == 2 and fresh["code"] == "0123456789abcdef"


def test_teacher_caches_follow_the_teacher_weights(stored):
    store, config, _ = stored
    data = get_dataset(config)
    teacher = load_teacher(config, store)
    before = experiment.teacher_test_proba(teacher, config, data, store)
    for p in teacher.parameters():  # a different teacher in the same folder
        p.data.add_(0.5)
    assert not np.allclose(experiment.teacher_test_proba(teacher, config, data, store), before)
    assert len(list(store.teacher_dir(config).glob("test-proba-*.npy"))) == 2


def test_budgets_are_evaluated_in_the_record(tmp_path):
    config = RunConfig(**{**SMOKE, "epochs": 4, "patience": 4}, method="kd", budgets=(1, 3, 10))
    record = run(config, RunStore(tmp_path), progress=False)
    assert set(record["budgets"]) == {"1", "3", "10"}
    assert record["budgets"]["10"]["accuracy"] == pytest.approx(record["accuracy"])
    assert record["budgets"]["10"]["saliency_spearman"] == pytest.approx(record["saliency_spearman"])
    for b in ("1", "3"):
        assert record["budgets"][b]["best_epoch"] <= int(b)
    assert config.key() != config.replace(budgets=()).key()


def test_teacher_seed_is_chosen_on_validation(tmp_path, monkeypatch):
    store = RunStore(tmp_path)
    config = RunConfig(**SMOKE, method="kd", teacher_seeds=(3, 4, 5))
    assert "teacher_seed" not in config.hashed_fields()
    assert config.key() == config.replace(teacher_seed=9).key()
    with pytest.raises(ValueError, match="teacher_candidates"):
        config.teacher_key()
    record = run(config, store, progress=False)
    teachers = {c.teacher_seed: store.load_teacher_record(c) for c in config.teacher_candidates()}
    best = min(teachers, key=lambda s: (-teachers[s]["val_auc_pr"], teachers[s]["val_loss"]))
    assert record["teacher_seed_chosen"] == best
    assert record["teacher_key"] == teachers[best]["teacher_key"]
    assert RunConfig.from_dict(record) == config
