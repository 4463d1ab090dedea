"""Malformed data files and too-short series are rejected clearly; dataset names are canonical."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from tsd_lib.cli import main
from tsd_lib.data import (
    MIN_SERIES_LENGTH,
    DatasetNotAvailableError,
    canonical_dataset_name,
    dataset_info,
    load_dataset,
    resample,
    validate_arrays,
)


def _write(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def _rows(n: int, length: int, sep: str = "\t", seed: int = 0) -> list[str]:
    X = np.random.default_rng(seed).normal(size=(n, length))
    return [sep.join([str(i % 2 + 1), *(repr(float(v)) for v in x)]) for i, x in enumerate(X)]


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    """A data_dir with a good set, a comma-separated one, one with an empty series, one of length 1."""
    _write(tmp_path / "Good" / "Good_TRAIN.tsv", _rows(6, 12))
    _write(tmp_path / "Good" / "Good_TEST.tsv", _rows(4, 12, seed=1))
    _write(tmp_path / "Comma" / "Comma_TRAIN.tsv", _rows(6, 12, sep=","))
    _write(tmp_path / "Comma" / "Comma_TEST.tsv", _rows(4, 12, sep=","))
    _write(tmp_path / "Empty" / "Empty_TRAIN.tsv", _rows(6, 12)[:4] + ["1", "2\t"])  # lines 5, 6: no values
    _write(tmp_path / "Empty" / "Empty_TEST.tsv", _rows(4, 12, seed=1))
    _write(tmp_path / "Point" / "Point_TRAIN.tsv", _rows(6, 1))
    _write(tmp_path / "Point" / "Point_TEST.tsv", _rows(4, 1, seed=1))
    return tmp_path


def test_comma_separated_file_names_file_and_line(archive):
    with pytest.raises(ValueError, match=r"Comma_TRAIN\.tsv, line 1: .*comma-separated.*tabs"):
        load_dataset("Comma", data_dir=archive)
    with pytest.raises(ValueError, match=r"Comma_TRAIN\.tsv, line 1"):
        dataset_info("Comma", data_dir=archive)


def test_zero_length_series_names_file_and_line(archive):
    with pytest.raises(ValueError, match=r"Empty_TRAIN\.tsv, line 5: a series of length 0"):
        load_dataset("Empty", data_dir=archive, length=20)
    with pytest.raises(ValueError, match=r"Empty_TRAIN\.tsv, line 5"):
        dataset_info("Empty", data_dir=archive)


@pytest.mark.parametrize("length", [1, MIN_SERIES_LENGTH - 1])
def test_too_short_series_are_rejected(tmp_path, length):
    _write(tmp_path / "Short" / "Short_TRAIN.tsv", _rows(6, length))
    _write(tmp_path / "Short" / "Short_TEST.tsv", _rows(4, length, seed=1))
    msg = rf"Short \(train\): a series has {length} point\(s\); series need at least {MIN_SERIES_LENGTH}"
    for kw in ({}, {"length": 100}, {"length": 100, "stretch": False}):
        with pytest.raises(ValueError, match=msg):
            load_dataset("Short", data_dir=tmp_path, **kw)
    with pytest.raises(ValueError, match=msg):
        dataset_info("Short", data_dir=tmp_path)


def test_minimum_length_series_and_target_length():
    assert MIN_SERIES_LENGTH == 3
    with pytest.raises(ValueError, match="at least 2"):
        resample(np.ones((2, 1, 1)), 10)  # was: repeated into a constant series
    with pytest.raises(ValueError, match=f"length must be >= {MIN_SERIES_LENGTH}"):
        load_dataset("GunPoint", length=MIN_SERIES_LENGTH - 1)
    assert load_dataset("GunPoint", length=MIN_SERIES_LENGTH).length == MIN_SERIES_LENGTH


def test_cli_datasets_lists_broken_sets_with_reason(archive, capsys):
    assert main(["datasets", "--data-dir", str(archive)]) == 0
    out = capsys.readouterr().out
    table, _, broken = out.partition("cannot be loaded")
    listed = {line.split()[0] for line in table.splitlines() if line.strip()}
    assert "Good" in listed and not listed & {"Comma", "Empty", "Point"}
    assert "Comma: " in broken and "comma-separated" in broken
    assert "Empty: " in broken and "line 5" in broken
    assert "Point: " in broken and f"at least {MIN_SERIES_LENGTH}" in broken


def test_cli_train_on_broken_file_is_one_line_error(archive, capsys):
    for name, what in (("Comma", "comma-separated"), ("Empty", "length 0"), ("Point", "at least")):
        args = ["train", "--dataset", name, "--data-dir", str(archive), "--epochs", "1", "--quiet"]
        assert main([*args, "--out", str(archive / "out")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("tsd train: error: ") and what in err and "Traceback" not in err


def test_canonical_dataset_name(tmp_path):
    assert canonical_dataset_name("gunpoint") == "GunPoint"
    assert canonical_dataset_name("ITALYPOWERDEMAND") == "ItalyPowerDemand"
    assert canonical_dataset_name("Gun_Point") == "GunPoint"
    assert canonical_dataset_name("50words") == "FiftyWords"  # an archive name, not shipped
    assert canonical_dataset_name("wafer") == "Wafer"
    assert canonical_dataset_name("NoSuchSet") == "NoSuchSet"
    assert canonical_dataset_name("synthetic-easy") == "synthetic-easy"
    _write(tmp_path / "MySet" / "MySet_TRAIN.tsv", _rows(6, 12))
    _write(tmp_path / "MySet" / "MySet_TEST.tsv", _rows(4, 12, seed=1))
    assert canonical_dataset_name("myset", data_dir=tmp_path) == "MySet"
    assert canonical_dataset_name("myset") == "myset"
    assert load_dataset("mYsEt", data_dir=tmp_path).name == canonical_dataset_name("mYsEt", tmp_path)


def test_download_paths_fail_fast_offline(monkeypatch):
    from tsd_lib.data import download

    monkeypatch.setattr(download, "_probe", lambda *a, **k: False)
    with pytest.raises(DatasetNotAvailableError, match="no network.*available offline"):
        load_dataset("wafer", allow_download=True)
    with pytest.raises(DatasetNotAvailableError, match="not available offline"):
        dataset_info("Wafer")  # never downloads


def test_cli_datasets_of_a_profile_say_why_a_set_cannot_load(archive, tmp_path, capsys):
    profile = tmp_path / "broken.yaml"
    profile.write_text(yaml.safe_dump({"datasets": ["Good", "Comma", "Point"], "methods": ["ce"]}))
    assert main(["datasets", "--profile", str(profile), "--data-dir", str(archive)]) == 1
    lines = {row.split()[0]: row for row in capsys.readouterr().out.splitlines() if row.startswith("  ")}
    assert "available" in lines["Good"]
    assert "CANNOT BE LOADED" in lines["Comma"] and "comma-separated" in lines["Comma"]
    assert "CANNOT BE LOADED" in lines["Point"] and f"at least {MIN_SERIES_LENGTH}" in lines["Point"]


def test_user_arrays_of_too_short_series_are_rejected():
    with pytest.raises(ValueError, match=f"X: a series has 2 point.*at least {MIN_SERIES_LENGTH}"):
        validate_arrays(np.random.default_rng(0).normal(size=(4, 1, 2)), [0, 1, 0, 1], "X")
    with pytest.raises(ValueError, match="at least"):
        validate_arrays(np.ones((4, 1)), None, "X", allow_2d=True)  # (n, L=1) read as univariate
