"""The ``tsd`` command line."""

from __future__ import annotations

import json
import subprocess
import sys

from tsd_lib.cli import main


def test_help_lists_subcommands():
    out = subprocess.run([sys.executable, "-m", "tsd_lib", "--help"], capture_output=True, text=True, check=True)
    for command in ("datasets", "train"):
        assert command in out.stdout


def test_datasets_lists_offline_sets_with_sizes(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    line = next(row for row in out.splitlines() if row.startswith("GunPoint"))
    assert line.split()[1:] == ["50", "150", "1", "150", "2"]
    assert "ItalyPowerDemand" in out


def test_train_writes_checkpoint_and_metrics(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        [
            "train",
            "--dataset",
            "ItalyPowerDemand",
            "--model",
            "fcn_small",
            "--epochs",
            "2",
            "--quiet",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"] == "ItalyPowerDemand" and metrics["epochs_run"] == 2
    assert 0.0 <= metrics["test_accuracy"] <= 1.0 and 0.0 <= metrics["test_auc_pr"] <= 1.0
    assert {"torch", "tsd_lib", "aeon"} <= set(metrics["versions"])
    assert (out / "model.pt").stat().st_size > 0


def test_unknown_dataset_is_a_clean_error(capsys):
    assert main(["train", "--dataset", "NoSuchSet", "--epochs", "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "NoSuchSet" in err and "data_dir" in err
