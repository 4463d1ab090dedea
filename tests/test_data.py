"""Tests of tsd_lib.data: loading, preprocessing, splits, offline behaviour, synthetic set."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from tsd_lib import data as D
from tsd_lib.data import (
    Dataset,
    DatasetNotAvailableError,
    available_datasets,
    dataset_info,
    download,
    encode_labels,
    load_dataset,
    make_synthetic,
    resample,
    shorten,
    stratified_split,
    validate_arrays,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "UCRArchive_2018"
requires_shared = pytest.mark.skipif(not SHARED.exists(), reason="../shared/data/UCRArchive_2018 absent")


def _write_tsv(path: Path, labels, X) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = ["\t".join([str(lab), *(repr(float(v)) for v in x)]) for lab, x in zip(labels, X, strict=True)]
    path.write_text("\n".join(rows) + "\n")


def _write_ts(path: Path, labels, X, name: str) -> None:
    """A small equal-length .ts file, multivariate channels separated by ':'."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n, c, length = X.shape
    classes = " ".join(sorted(set(labels)))
    head = [
        f"@problemName {name}",
        "@timeStamps false",
        "@missing false",
        f"@univariate {'true' if c == 1 else 'false'}",
        *([f"@dimensions {c}"] if c > 1 else []),
        "@equalLength true",
        f"@seriesLength {length}",
        f"@classLabel true {classes}",
        "@data",
    ]
    body = [
        ":".join(",".join(repr(float(v)) for v in ch) for ch in x) + f":{lab}" for x, lab in zip(X, labels, strict=True)
    ]
    path.write_text("\n".join(head + body) + "\n")


# --------------------------------------------------------------------------- shipped sets


def test_gunpoint_shapes_dtypes():
    ds = load_dataset("GunPoint")
    assert isinstance(ds, Dataset)
    assert ds.X_train.shape == (40, 1, 150) and ds.X_val.shape == (10, 1, 150)
    assert ds.X_test.shape == (150, 1, 150)
    for X in (ds.X_train, ds.X_val, ds.X_test):
        assert X.dtype == np.float32
    for y in (ds.y_train, ds.y_val, ds.y_test):
        assert y.dtype == np.int64
    assert set(np.unique(ds.y_test)) == {0, 1}
    assert ds.class_names == ["1", "2"]
    assert (ds.n_channels, ds.length, ds.n_classes) == (1, 150, 2)
    assert ds.summary()["n_train"] == 40 and "GunPoint" in repr(ds)
    X, y = ds.split("val")
    assert X is ds.X_val and y is ds.y_val
    first = ds.X_test.copy()
    ds.X_test[:] = 0  # callers cannot corrupt the loader's cache
    np.testing.assert_array_equal(load_dataset("GunPoint").X_test, first)


def test_gunpoint_fixture_and_znorm(gunpoint):
    assert gunpoint.X_train.shape == (40, 1, 100)
    for X in (gunpoint.X_train, gunpoint.X_test):
        np.testing.assert_allclose(X.mean(axis=-1), 0.0, atol=1e-5)
        np.testing.assert_allclose(X.std(axis=-1), 1.0, atol=1e-4)


def test_name_matching_and_aliases():
    assert load_dataset("gun_point", val_fraction=0).name == "GunPoint"
    assert load_dataset("GUNPOINT", val_fraction=0).X_val.shape == (0, 1, 150)
    assert load_dataset("italy_power_demand").name == "ItalyPowerDemand"
    assert download.archive_name("50words") == "FiftyWords"
    assert download.archive_name("wafer") == "Wafer"


def test_available_datasets_shipped():
    names = available_datasets()
    for n in ("GunPoint", "ItalyPowerDemand", "ArrowHead", "BasicMotions", "OSULeaf"):
        assert n in names
    assert "Covid3Month" not in names  # regression set, not classification
    info = dataset_info("GunPoint")
    assert info == {
        "name": "GunPoint",
        "n_train": 50,
        "n_test": 150,
        "n_channels": 1,
        "length": 150,
        "n_classes": 2,
        "source": "aeon",
    }


def test_stratified_and_deterministic_split():
    import torch

    a = load_dataset("OSULeaf", split_seed=3)
    np.random.seed(123)
    torch.manual_seed(123)
    b = load_dataset("OSULeaf", split_seed=3)
    np.random.seed(999)
    c = load_dataset("OSULeaf", split_seed=4)
    np.testing.assert_array_equal(a.X_val, b.X_val)
    np.testing.assert_array_equal(a.y_train, b.y_train)
    assert not np.array_equal(a.X_val, c.X_val)
    p_tr = np.bincount(a.y_train, minlength=a.n_classes) / len(a.y_train)
    p_va = np.bincount(a.y_val, minlength=a.n_classes) / len(a.y_val)
    assert np.abs(p_tr - p_va).max() < 0.05
    assert len(a.y_val) == 40 and len(a.y_train) == 160


def test_split_fallback_keeps_every_class_in_train():
    y = np.array([0, 0, 0, 0, 1, 2, 2])
    with pytest.warns(UserWarning, match="too few"):
        tr, va = stratified_split(y, 0.3, seed=0)
    assert set(y[tr]) == {0, 1, 2}
    assert len(np.intersect1d(tr, va)) == 0 and len(tr) + len(va) == len(y)


def test_resample_italy_and_ramp():
    ds = load_dataset("ItalyPowerDemand", length=100, normalise="none")
    raw = load_dataset("ItalyPowerDemand", normalise="none")
    assert raw.length == 24 and ds.X_train.shape[1:] == (1, 100)
    # endpoints are kept by a [0, 1] grid
    np.testing.assert_allclose(ds.X_test[:, :, 0], raw.X_test[:, :, 0], rtol=1e-6)
    np.testing.assert_allclose(ds.X_test[:, :, -1], raw.X_test[:, :, -1], rtol=1e-6)
    ramp = np.stack([np.linspace(0, 23, 24), np.linspace(5, -5, 24)])[None]  # (1, 2, 24)
    out = resample(ramp, 100)
    np.testing.assert_allclose(out[0, 0], np.linspace(0, 23, 100), atol=1e-5)
    np.testing.assert_allclose(out[0, 1], np.linspace(5, -5, 100), atol=1e-5)
    # matches np.interp per series
    x = np.random.default_rng(0).normal(size=(3, 1, 17))
    ref = np.interp(np.linspace(0, 1, 50), np.linspace(0, 1, 17), x[1, 0])
    np.testing.assert_allclose(resample(x, 50)[1, 0], ref, atol=1e-5)


def test_stretch_false_only_shortens():
    # the TSD authors: series longer than `length` are interpolated down, shorter ones kept
    italy = load_dataset("ItalyPowerDemand", length=100, normalise="none", stretch=False)
    raw = load_dataset("ItalyPowerDemand", normalise="none")
    assert italy.length == 24
    np.testing.assert_array_equal(italy.X_test, raw.X_test)
    gun = load_dataset("GunPoint", length=100, normalise="none", stretch=False)
    assert gun.length == 100
    np.testing.assert_array_equal(gun.X_test, load_dataset("GunPoint", length=100, normalise="none").X_test)
    # by hand: linear interpolation with aligned endpoints, 5 -> 3 points reads 0, 2, 4
    x = np.array([[[0.0, 1.0, 4.0, 9.0, 16.0]]])
    np.testing.assert_allclose(shorten(x, 3), [[[0.0, 4.0, 16.0]]])
    np.testing.assert_array_equal(shorten(x, 8), x.astype(np.float32))
    mixed = [np.arange(12.0)[None], np.arange(6.0)[None], np.arange(3.0)[None]]
    np.testing.assert_allclose(shorten(mixed[:2], 6)[0, 0], np.linspace(0, 11, 6), atol=1e-6)
    with pytest.raises(ValueError, match="stretch=True"):
        shorten(mixed, 6)  # 6 and 3 points cannot share one array without stretching


def test_multivariate_basicmotions():
    ds = load_dataset("BasicMotions", length=50)
    assert ds.X_train.shape == (32, 6, 50) and ds.X_test.shape == (40, 6, 50)
    assert ds.n_classes == 4 and sorted(ds.class_names) == ds.class_names
    np.testing.assert_allclose(ds.X_test.std(axis=-1), 1.0, atol=1e-3)


def test_normalise_options():
    mm = load_dataset("ItalyPowerDemand", normalise="minmax")
    assert mm.X_train.min() >= 0 and mm.X_train.max() <= 1 + 1e-6
    assert np.allclose(mm.X_train.max(axis=-1), 1.0)
    with pytest.raises(ValueError, match="normalise"):
        load_dataset("GunPoint", normalise="robust")
    const = D.normalise_series(np.ones((2, 1, 5)), "znorm")
    assert np.all(const == 0)


# --------------------------------------------------------------------------- offline behaviour


def test_unknown_name_fails_fast_offline():
    t = time.monotonic()
    with pytest.raises(DatasetNotAvailableError) as err:
        load_dataset("NoSuchDataset123")
    assert time.monotonic() - t < 5
    msg = str(err.value)
    assert "data_dir" in msg and "GunPoint" in msg
    assert isinstance(err.value, ValueError)
    with pytest.raises(DatasetNotAvailableError, match="not available offline"):
        load_dataset("Wafer")  # a real archive name, but not shipped


def test_allow_download_fails_fast_without_download(monkeypatch):
    def no_download(*a, **k):  # guard: the test must never download
        raise AssertionError("aeon download called")

    import aeon.datasets

    monkeypatch.setattr(aeon.datasets, "load_classification", no_download)
    t = time.monotonic()
    with pytest.raises(DatasetNotAvailableError):
        load_dataset("NoSuchDataset123", allow_download=True)
    assert time.monotonic() - t < 5
    # a real archive name: the connectivity probe must fail (or be stubbed off) quickly
    monkeypatch.setattr(download, "_probe", lambda *a, **k: False)
    t = time.monotonic()
    with pytest.raises(DatasetNotAvailableError, match="no network"):
        load_dataset("Wafer", allow_download=True)
    assert time.monotonic() - t < 5


def test_probe_is_bounded():
    t = time.monotonic()
    ok = download._probe("tsd-book.invalid", 443, timeout=1.0)
    assert ok is False and time.monotonic() - t < 3


# --------------------------------------------------------------------------- data_dir layouts


def test_ts_layout(tmp_path):
    rng = np.random.default_rng(0)
    X_tr, X_te = rng.normal(size=(12, 2, 30)), rng.normal(size=(6, 2, 30))
    y_tr, y_te = ["up", "down"] * 6, ["down", "up"] * 3
    _write_ts(tmp_path / "Toy" / "Toy_TRAIN.ts", y_tr, X_tr, "Toy")
    _write_ts(tmp_path / "Toy" / "Toy_TEST.ts", y_te, X_te, "Toy")
    assert "Toy" in available_datasets(tmp_path)
    ds = load_dataset("toy", data_dir=tmp_path, normalise=None, val_fraction=0)
    assert ds.name == "Toy" and ds.X_train.shape == (12, 2, 30)
    assert ds.class_names == ["down", "up"]
    np.testing.assert_allclose(ds.X_train, X_tr.astype(np.float32), rtol=1e-6)
    np.testing.assert_array_equal(ds.y_test, [0, 1] * 3)
    assert dataset_info("Toy", tmp_path)["n_channels"] == 2
    assert dataset_info("Toy", tmp_path)["source"] == "data_dir"


def test_tsv_layout_string_labels(tmp_path):
    rng = np.random.default_rng(1)
    _write_tsv(tmp_path / "Letters" / "Letters_TRAIN.tsv", ["b", "a"] * 5, rng.normal(size=(10, 20)))
    _write_tsv(tmp_path / "Letters" / "Letters_TEST.tsv", ["a", "b", "a"], rng.normal(size=(3, 20)))
    ds = load_dataset("Letters", data_dir=tmp_path, val_fraction=0.2)
    assert ds.class_names == ["a", "b"]
    np.testing.assert_array_equal(ds.y_test, [0, 1, 0])
    assert ds.X_train.shape == (8, 1, 20) and ds.X_val.shape == (2, 1, 20)
    assert sorted(ds.y_val.tolist()) == [0, 1]


def test_numeric_labels_sorted_numerically():
    (y_tr, y_te), names = encode_labels(np.array(["10", "-1", "2", "2"]), np.array([2.0, 10]))
    assert names == ["-1", "2", "10"]
    np.testing.assert_array_equal(y_tr, [2, 0, 1, 1])
    np.testing.assert_array_equal(y_te, [1, 2])
    with pytest.raises(ValueError, match="do not occur"):
        encode_labels(np.array(["a", "b"]), np.array(["c"]))


def test_bad_data_rejected(tmp_path):
    X = np.random.default_rng(2).normal(size=(6, 10))
    X_nan = X.copy()
    X_nan[2, 5:] = np.nan  # UCR-style NaN padding
    _write_tsv(tmp_path / "Nan" / "Nan_TRAIN.tsv", [1, 2] * 3, X_nan)
    _write_tsv(tmp_path / "Nan" / "Nan_TEST.tsv", [1, 2], X[:2])
    with pytest.raises(ValueError, match="Nan.*NaN"):
        load_dataset("Nan", data_dir=tmp_path)
    _write_tsv(tmp_path / "One" / "One_TRAIN.tsv", [1] * 6, X)
    _write_tsv(tmp_path / "One" / "One_TEST.tsv", [1, 1], X[:2])
    with pytest.raises(ValueError, match="One.*1 class"):
        load_dataset("One", data_dir=tmp_path)
    _write_tsv(tmp_path / "Len" / "Len_TRAIN.tsv", [1, 2] * 3, X)
    _write_tsv(tmp_path / "Len" / "Len_TEST.tsv", [1, 2], X[:2, :8])
    with pytest.raises(ValueError, match="Len.*length"):
        load_dataset("Len", data_dir=tmp_path)
    assert load_dataset("Len", data_dir=tmp_path, length=16).X_test.shape == (2, 1, 16)


def test_validate_arrays():
    X, y = validate_arrays(np.zeros((4, 2, 5), dtype=np.float64), [0, 1, 0, 1], "user")
    assert X.dtype == np.float32 and X.shape == (4, 2, 5)
    with pytest.raises(ValueError, match="user.*3-D"):
        validate_arrays(np.zeros((4, 5)), [0, 1, 0, 1], "user")
    assert validate_arrays(np.zeros((4, 5)), None, allow_2d=True)[0].shape == (4, 1, 5)
    with pytest.raises(ValueError, match="4 series but y has 3"):
        validate_arrays(np.zeros((4, 1, 5)), [0, 1, 0], "user")
    with pytest.raises(ValueError, match="infinite"):
        validate_arrays(np.full((2, 1, 3), np.inf), [0, 1])


@requires_shared
def test_shared_ucr_tsv_sets(shared_ucr_dir):
    beetle = load_dataset("BeetleFly", data_dir=shared_ucr_dir, length=100)
    assert beetle.n_classes == 2 and beetle.X_test.shape == (20, 1, 100)
    assert len(beetle.y_train) + len(beetle.y_val) == 20
    beef = load_dataset("beef", data_dir=shared_ucr_dir)
    assert beef.n_classes == 5 and beef.class_names == ["1", "2", "3", "4", "5"]
    assert beef.X_test.shape == (30, 1, 470)
    assert set(np.unique(beef.y_val)) == set(range(5))  # 6 val samples, stratified
    assert "CBF" in available_datasets(shared_ucr_dir)


# --------------------------------------------------------------------------- synthetic


def test_synthetic_shapes_and_masks(synthetic):
    ds, mask = synthetic
    assert ds.name == "Synthetic" and ds.X_test.shape == (40, 1, 64) and mask.shape == (40, 64)
    assert len(ds.y_train) + len(ds.y_val) == 60 and ds.X_train.dtype == np.float32
    assert set(ds.masks) == {"train", "val", "test"}
    np.testing.assert_array_equal(ds.masks["test"], mask)
    for split in ("train", "val", "test"):
        m = ds.masks[split]
        assert m.shape == (len(ds.split(split)[1]), 64)
        assert np.all(m.sum(axis=1) == 8)
        # one contiguous run of ones per series
        assert np.all(np.abs(np.diff(m, axis=1)).sum(axis=1) <= 2)
    starts = mask.argmax(axis=1)
    assert len(np.unique(starts)) > 5  # random position per series
    a, b = make_synthetic(n_train=60, n_test=40, length=64, window=8, seed=0)
    np.testing.assert_array_equal(a.X_test, ds.X_test)
    np.testing.assert_array_equal(b, mask)


def test_synthetic_mask_marks_planted_window():
    ds, mask = make_synthetic(n_train=20, n_test=30, length=50, window=6, noise=0.0, amplitude=2.0, seed=3)
    X = ds.X_test[:, 0]
    inside = mask.astype(bool)
    assert np.all(X[~inside] == 0)  # noise-free: nothing outside the window
    assert np.all(np.abs(X[inside]).reshape(30, 6).max(axis=1) > 0.5)


def test_synthetic_classes_differ_only_inside_window():
    ds, mask = make_synthetic(n_train=400, n_test=400, length=60, window=10, seed=1, val_fraction=0)
    X, y, inside = ds.X_test[:, 0], ds.y_test, mask.astype(bool)
    out0, out1 = X[(y == 0)[:, None] & ~inside], X[(y == 1)[:, None] & ~inside]
    assert abs(out0.mean()) < 0.05 and abs(out1.mean()) < 0.05
    assert abs(out0.std() - out1.std()) < 0.05
    in0 = X[y == 0][inside[y == 0]].reshape(-1, 10).mean(axis=0)
    in1 = X[y == 1][inside[y == 1]].reshape(-1, 10).mean(axis=0)
    assert np.abs(in0 - in1).max() > 2.0  # class patterns clearly differ inside the window
    assert ds.n_classes == 2 and make_synthetic(n_classes=3, n_train=30, n_test=9)[0].n_classes == 3
