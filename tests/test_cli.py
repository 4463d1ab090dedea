"""The ``tsd`` command line."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml

from tsd_lib.cli import main


def test_help_lists_subcommands():
    out = subprocess.run([sys.executable, "-m", "tsd_lib", "--help"], capture_output=True, text=True, check=True)
    for command in ("datasets", "train"):
        assert command in out.stdout


def test_datasets_lists_offline_sets_with_sizes(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    line = next(row for row in out.splitlines() if row.startswith("GunPoint"))
    assert line.split()[1:] == ["50", "150", "1", "150", "2", "aeon"]
    assert "ItalyPowerDemand" in out


def test_datasets_of_a_profile_say_where_each_comes_from(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for split, n in (("TRAIN", 6), ("TEST", 4)):
        rows = [f"{i % 2}\t" + "\t".join(f"{v:.4f}" for v in rng.normal(size=12)) for i in range(n)]
        path = tmp_path / "archive" / "Toy" / f"Toy_{split}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(rows) + "\n")
    profile = tmp_path / "mixed.yaml"
    profile.write_text(yaml.safe_dump({"datasets": ["GunPoint", "Toy", "Synthetic", "Wafer", "NoSuchSet"],
                                          "methods": ["ce"]}))
    assert main(["datasets", "--profile", str(profile), "--data-dir", str(tmp_path / "archive")]) == 1
    lines = {row.split()[0]: row for row in capsys.readouterr().out.splitlines() if row.startswith("  ")}
    assert "shipped with aeon (50 train / 150 test)" in lines["GunPoint"]
    assert "in --data-dir (6 train / 4 test)" in lines["Toy"]
    assert "generated" in lines["Synthetic"]
    assert "MISSING, downloadable" in lines["Wafer"]
    assert "MISSING, unknown to aeon" in lines["NoSuchSet"]
    assert main(["datasets", "--profile", "quick"]) == 0
    assert "all datasets available" in capsys.readouterr().out


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


@pytest.mark.parametrize(("argv", "message"), [
    (["distill", "--dataset", "GunPoint", "--tau", "0"], "--tau must be a finite number > 0"),
    (["distill", "--dataset", "GunPoint", "--tau", "-2"], "--tau must be a finite number > 0"),
    (["distill", "--dataset", "GunPoint", "--weights", "[1, 2]"], "--weights must be a JSON object"),
    (["distill", "--dataset", "GunPoint", "--weights", "{tsd: 1"], "--weights is not valid JSON"),
    (["distill", "--dataset", "GunPoint", "--saliency-eval-series", "-5"], "--saliency-eval-series must be >= 1"),
    (["distill", "--dataset", "GunPoint", "--device", "tpu"], "--device must be 'auto', 'cpu', 'cuda'"),
    (["train", "--dataset", "GunPoint", "--epochs", "0"], "--epochs must be an integer >= 1"),
])
def test_bad_options_fail_fast_without_a_traceback(argv, message, capsys, monkeypatch):
    import tsd_lib.experiment as experiment

    monkeypatch.setattr(experiment, "run", lambda *a, **k: pytest.fail("work started"))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_cuda_on_a_cpu_machine_is_refused(capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["train", "--dataset", "GunPoint", "--device", "cuda"]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err


def test_store_that_is_a_file_is_refused(tmp_path, capsys):
    store = tmp_path / "store"
    store.write_text("not a folder")
    assert main(["status", "--profile", "smoke", "--store", str(store)]) == 2
    assert "is a file" in capsys.readouterr().err
