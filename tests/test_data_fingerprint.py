"""Records are tied to the data they were computed on: an edited dataset file, or a ``data_dir`` set
that shadows a shipped one, is retrained (never served from the store) and run keys stay unchanged."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from tsd_lib.cli import main
from tsd_lib.data import ShadowedDatasetWarning, load_dataset
from tsd_lib.experiment import RunConfig, RunStore, StoreWarning, data_fingerprint, get_dataset, get_teacher, run

TINY = dict(epochs=2, patience=2, teacher_epochs=2, length=None, teacher="fcn_small", student="fcn_small",
            method="ce", saliency_eval_series=4)
RESULTS = Path(__file__).resolve().parents[1] / "results"


def _write_set(root: Path, name: str, n_train: int, n_test: int, *, flip: bool = False, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("TRAIN", n_train), ("TEST", n_test)):
        labels = np.arange(n) % 2 + 1
        if flip and split == "TEST":
            labels = 3 - labels
        X = rng.normal(size=(n, 16)) + labels[:, None]
        rows = ["\t".join([str(lab), *(f"{v:.5f}" for v in x)]) for lab, x in zip(labels, X, strict=True)]
        (folder / f"{name}_{split}.tsv").write_text("\n".join(rows) + "\n")


def test_the_fingerprint_follows_every_split_and_the_class_names(tiny_dataset):
    data = tiny_dataset
    base = data.fingerprint()
    assert base == data.fingerprint() and len(base) == 16
    data.y_test = data.y_test[::-1].copy()
    assert data.fingerprint() != base
    data.y_test = data.y_test[::-1].copy()
    data.class_names = list(reversed(data.class_names))
    assert data.fingerprint() != base


def test_an_edited_dataset_file_is_retrained_with_its_key_unchanged(tmp_path):
    _write_set(tmp_path / "data", "Toy", 20, 20)
    config = RunConfig(dataset="Toy", data_dir=str(tmp_path / "data"), **TINY)
    store = RunStore(tmp_path / "store")
    first = run(config, store, progress=False)
    key = config.key()
    assert first["n_test"] == 20 and first["data_fingerprint"] == data_fingerprint(config)

    _write_set(tmp_path / "data", "Toy", 20, 30, flip=True)  # test labels flipped, 10 rows added
    assert RunConfig(dataset="Toy", data_dir=str(tmp_path / "data"), **TINY).key() == key
    with pytest.warns(StoreWarning, match=f"run {key} of Toy was computed on other data"):
        assert not store.has(config)
    second = run(config, store, progress=False)
    assert second["n_test"] == 30 and second["data_fingerprint"] != first["data_fingerprint"]
    assert run(config, store, progress=False) == second  # now served from the store


def test_a_teacher_trained_on_other_data_is_retrained(tmp_path):
    _write_set(tmp_path / "data", "Toy", 20, 20)
    config = RunConfig(dataset="Toy", data_dir=str(tmp_path / "data"), **TINY)
    store = RunStore(tmp_path / "store")
    _, record = get_teacher(config, get_dataset(config), store)
    assert record["data_fingerprint"] == data_fingerprint(config) and store.has_teacher(config)
    _write_set(tmp_path / "data", "Toy", 24, 20, seed=1)
    with pytest.warns(StoreWarning, match="teacher .* computed on other data"):
        assert not store.has_teacher(config)
    _, again = get_teacher(config, get_dataset(config), store)
    assert again["data_fingerprint"] == data_fingerprint(config) != record["data_fingerprint"]


def test_a_record_without_a_fingerprint_is_not_served(tmp_path):
    _write_set(tmp_path / "data", "Toy", 20, 20)
    config = RunConfig(dataset="Toy", data_dir=str(tmp_path / "data"), **TINY)
    store = RunStore(tmp_path / "store")
    run(config, store, progress=False)
    path = store.run_dir(config) / "record.json"
    record = json.loads(path.read_text())
    del record["data_fingerprint"]
    path.write_text(json.dumps(record))
    with pytest.warns(StoreWarning, match="before records carried their data's fingerprint: it is not used"):
        assert not store.has(config)
    shutil.rmtree(tmp_path / "data" / "Toy")  # data that cannot be loaded leaves nothing to compare with
    assert store.has(config)


def test_a_data_dir_set_shadowing_a_shipped_one_is_named_and_never_served_for_it(tmp_path, gunpoint):
    _write_set(tmp_path / "data", "GunPoint", 20, 16)
    with pytest.warns(ShadowedDatasetWarning, match="in place of the GunPoint shipped with aeon"):
        shadow = load_dataset("gunpoint", data_dir=tmp_path / "data", length=None)
    assert len(shadow.y_test) == 16
    with warnings.catch_warnings():
        warnings.simplefilter("error", ShadowedDatasetWarning)
        load_dataset("GunPoint", length=None)  # the shipped set alone: no warning

    shipped = RunConfig(dataset="GunPoint", **{**TINY, "length": 16})
    mine = RunConfig(dataset="gunpoint", data_dir=str(tmp_path / "data"), **{**TINY, "length": 16})
    assert shipped.key() == mine.key()  # the key names the set, not the files
    store = RunStore(tmp_path / "store")
    record = run(shipped, store, progress=False)
    assert record["n_test"] == 150
    with pytest.warns(ShadowedDatasetWarning):
        assert not store.has(mine)


def test_the_cli_retrains_an_edited_dataset_instead_of_loading_it(tmp_path, capsys):
    _write_set(tmp_path / "data", "Toy", 20, 20)
    args = ["distill", "--dataset", "Toy", "--data-dir", str(tmp_path / "data"), "--store", str(tmp_path / "store"),
            "--method", "ce", "--teacher", "fcn_small", "--student", "fcn_small", "--epochs", "2",
            "--teacher-epochs", "2", "--length", "16", "--quiet"]

    def n_test(out: str) -> int:
        folder = next(line.split(" in ", 1)[1] for line in out.splitlines() if line.startswith(("stored", "loaded")))
        return json.loads((Path(folder) / "record.json").read_text())["n_test"]

    assert main(args) == 0
    first = capsys.readouterr()
    assert "stored in" in first.out and n_test(first.out) == 20
    _write_set(tmp_path / "data", "Toy", 20, 30, flip=True)
    assert main(args) == 0
    second = capsys.readouterr()
    assert "stored in" in second.out and "loaded from" not in second.out and n_test(second.out) == 30
    assert "computed on other data" in second.err
    assert main(args) == 0
    assert "loaded from" in capsys.readouterr().out


def test_every_committed_record_carries_its_data_fingerprint():
    lines = [json.loads(line) for path in sorted(RESULTS.glob("*/*.jsonl")) for line in path.read_text().splitlines()]
    assert lines, "no committed archive records"
    missing = [(e["config"]["dataset"], e["key"]) for e in lines if not e["record"].get("data_fingerprint")]
    assert not missing, f"{len(missing)} archived records lack data_fingerprint, e.g. {missing[:3]}"


def test_every_committed_key_recomputes_unchanged_from_its_config_and_code():
    """The fingerprint lives in the record, not the key: each archived key is the hash of its config's
    fields under the code that made it, as before records carried fingerprints."""
    from tsd_lib.experiment import digest

    entries = [json.loads(line) for path in sorted(RESULTS.glob("*/*.jsonl")) for line in path.read_text().splitlines()]
    wrong = []
    for e in entries:
        config = RunConfig.from_dict(e["config"])
        fields = config.hashed_fields() if e["kind"] == "run" else config.teacher_fields()
        if digest({**fields, "code": e["record"]["code"]}) != e["key"]:
            wrong.append((e["config"]["dataset"], e["kind"], e["key"]))
    assert entries and not wrong, f"{len(wrong)} of {len(entries)} keys changed, e.g. {wrong[:3]}"
