"""The scikit-learn estimator: fit/predict, clone, cross-validation and grid search."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, cross_val_score

from tsd_lib.data import make_synthetic
from tsd_lib.estimator import DistilledClassifier
from tsd_lib.models import build_model
from tsd_lib.runtime import set_seed
from tsd_lib.train import fit

TINY = dict(teacher="fcn_small", student="fcn_small", epochs=3, teacher_epochs=6, n_windows=3, tsd_bank_size=6,
            patience=3)


@pytest.fixture(scope="module")
def data():
    ds, _ = make_synthetic(n_train=48, n_test=24, length=48, window=8, seed=1)
    labels = np.array(["down", "up"])[ds.y_train]  # string labels, as users have them
    return ds.X_train, labels, ds.X_test, np.array(["down", "up"])[ds.y_test]


def test_fit_predict_score(data):
    X, y, X_test, y_test = data
    est = DistilledClassifier(method="kd+tsd", **TINY).fit(X, y)
    assert list(est.classes_) == ["down", "up"]
    proba = est.predict_proba(X_test)
    assert proba.shape == (len(X_test), 2) and np.allclose(proba.sum(1), 1, atol=1e-5)
    assert set(est.predict(X_test)) <= {"down", "up"}
    assert 0.0 <= est.score(X_test, y_test) <= 1.0
    assert est.history_.epochs_run == 3 and not est.teacher_.training


def test_clone_keeps_params_and_drops_fit(data):
    X, y, *_ = data
    est = DistilledClassifier(method="dkd+tsd", tau=2.0, **TINY)
    twin = clone(est)
    assert twin.get_params() == est.get_params()
    assert not hasattr(twin, "student_")
    twin.set_params(method="kd")
    assert twin.method == "kd" and est.method == "dkd+tsd"


def test_cross_val_score_runs(data):
    X, y, *_ = data
    scores = cross_val_score(DistilledClassifier(method="kd", **TINY), X, y, cv=2)
    assert scores.shape == (2,) and np.all((scores >= 0) & (scores <= 1))


def test_grid_search_over_methods(data):
    X, y, *_ = data
    search = GridSearchCV(DistilledClassifier(**TINY), {"method": ["ce", "kd+tsd"]}, cv=2)
    search.fit(X, y)
    assert search.best_params_["method"] in {"ce", "kd+tsd"}
    assert len(search.cv_results_["mean_test_score"]) == 2


def test_pretrained_teacher_module(data):
    X, y, X_test, _ = data
    probe = DistilledClassifier(**TINY)
    probe.classes_ = np.unique(y)
    ds = probe._dataset(X.astype(np.float32), np.searchsorted(probe.classes_, y))
    set_seed(0)
    teacher = build_model("fcn_small", 1, 2)
    fit(teacher, ds, epochs=2, progress=False)
    est = DistilledClassifier(**{**TINY, "teacher": teacher}).fit(X, y)
    assert est.teacher_history_ is None
    assert est.predict(X_test).shape == (len(X_test),)
    with pytest.raises(ValueError, match="teacher predicts 3 classes"):
        DistilledClassifier(**{**TINY, "teacher": build_model("fcn_small", 1, 3)}).fit(X, y)


def test_bad_input_is_rejected():
    with pytest.raises(ValueError):
        DistilledClassifier(**TINY).fit(np.full((10, 1, 20), np.nan), np.arange(10) % 2)
    with pytest.raises(ValueError, match="nope"):
        DistilledClassifier(method="nope", **TINY).fit(np.random.rand(10, 1, 20), np.arange(10) % 2)


@pytest.mark.parametrize("tau", [0, float("nan"), -1, float("inf")])
def test_a_bad_tau_is_a_clear_value_error(tau, data):
    X, y, *_ = data
    with pytest.raises(ValueError, match="tau must be a finite number > 0"):
        DistilledClassifier(**{**TINY, "tau": tau}).fit(X, y)


def test_a_bad_device_is_a_clear_value_error(data, monkeypatch):
    import torch

    X, y, *_ = data
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no CUDA GPU"):
        DistilledClassifier(**{**TINY, "device": "cuda"}).fit(X, y)
    with pytest.raises(ValueError, match="device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'bogus'"):
        DistilledClassifier(**{**TINY, "device": "bogus"}).fit(X, y)


def test_predict_refuses_series_of_another_length(data):
    X, y, X_test, _ = data
    est = DistilledClassifier(**{**TINY, "method": "ce"}).fit(X, y)
    with pytest.raises(ValueError, match="fitted on 1 x 48"):
        est.predict(X_test[:, :, :40])
    with pytest.raises(ValueError, match="fitted on 1 x 48"):
        est.predict_proba(np.concatenate([X_test, X_test], axis=1))
    assert est.predict(X_test[:, 0, :]).shape == (len(X_test),)  # 2-D (n, length) is one channel


def test_defaults_are_the_protocols():
    from dataclasses import fields

    from tsd_lib.experiment import RunConfig
    from tsd_lib.settings import TSD_RUN_FIELDS

    protocol = {f.name: f.default for f in fields(RunConfig)}
    est = DistilledClassifier()
    shared = set(est.get_params()) & set(protocol)
    assert shared >= {"epochs", "patience", "teacher_epochs", "val_fraction", "batch_size", "lr", *TSD_RUN_FIELDS}
    for name in shared:
        assert getattr(est, name) == protocol[name], name
