"""``tsd`` refuses bad inputs at once, with one line naming the option or file (issue 21)."""

from __future__ import annotations

import json
import shutil
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from tsd_lib.cli import build_parser, main

REPO = Path(__file__).resolve().parents[1]
STUDIES = REPO / "results" / "studies"


@pytest.fixture
def no_work(monkeypatch):
    """Any training, grading or archiving started by a command fails the test."""
    import tsd_lib.experiment
    import tsd_lib.grading.grader
    import tsd_lib.runs.archive_making
    import tsd_lib.runs.grid
    import tsd_lib.runs.verify

    def started(*a, **k):
        pytest.fail("work started before the bad input was refused")

    for module, name in [(tsd_lib.experiment, "run"), (tsd_lib.runs.verify, "run"), (tsd_lib.runs.grid, "run_grid"),
                         (tsd_lib.runs.archive_making, "make_archive"), (tsd_lib.grading.grader, "grade_notebook")]:
        monkeypatch.setattr(module, name, started)


def _one_error_line(capsys, message: str) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert any(message in line for line in lines), err
    assert "Traceback" not in err
    assert len([line for line in lines if ": error: " in line]) == 1, err
    return err


# ----------------------------------------------------------------------------- option values


BAD = [
    (["verify", "--archive", "studies", "--tolerance", "nan"], "--tolerance must be >= 0 and finite"),
    (["verify", "--archive", "studies", "--tolerance", "inf"], "--tolerance must be >= 0 and finite"),
    (["verify", "--archive", "studies", "--tolerance", "-1"], "--tolerance must be >= 0 and finite"),
    (["grade", ".", "--timeout", "nan"], "--timeout must be a number of seconds > 0"),
    (["grade", ".", "--timeout", "inf"], "--timeout must be a number of seconds > 0"),
    (["grade", ".", "--timeout", "1e12"], "at most 86400 (one day)"),
    (["grade", ".", "--timeout", "0"], "--timeout must be a number of seconds > 0"),
    (["grade", ".", "--timeout", "-5"], "--timeout must be a number of seconds > 0"),
    (["grade", ".", "--memory-mb", "-1"], "--memory-mb must be at least"),
    (["grade", ".", "--memory-mb", "0"], "--memory-mb must be at least"),
    (["grade", ".", "--max-notebook-mb", "nan"], "--max-notebook-mb must be >= 0 and finite"),
    (["grade", ".", "--max-notebook-mb", "-1"], "--max-notebook-mb must be >= 0 and finite"),
    (["distill", "--dataset", "GunPoint", "--weights", '{"tsd": -5}'], "--weights must be finite numbers >= 0"),
    (["distill", "--dataset", "GunPoint", "--weights", '{"tsd": NaN}'], "--weights must be finite numbers >= 0"),
    (["distill", "--dataset", "GunPoint", "--weights", '{"tsd": Infinity}'], "--weights must be finite numbers"),
    (["distill", "--dataset", "GunPoint", "--weights", '{"tsdd": 1}'], "--weights names unknown loss term"),
    (["distill", "--dataset", "GunPoint", "--tau", "nan"], "--tau must be a finite number > 0"),
    (["distill", "--dataset", "GunPoint", "--tau", "inf"], "--tau must be a finite number > 0"),
    (["distill", "--dataset", "GunPoint", "--seed", str(2**70)], "--seed must be an integer from 0 to 2**63 - 1"),
    (["distill", "--dataset", "GunPoint", "--seed", str(2**63)], "--seed must be an integer from 0 to 2**63 - 1"),
    (["distill", "--dataset", "GunPoint", "--seed", "-1"], "--seed must be an integer from 0 to 2**63 - 1"),
    (["distill", "--dataset", "GunPoint", "--teacher-seed", str(2**64)], "--teacher-seed must be an integer"),
    (["train", "--dataset", "GunPoint", "--split-seed", "-3"], "--split-seed must be an integer"),
    (["verify", "--archive", "studies", "--sample", "1", "--seed", str(2**70)], "--seed must be an integer"),
    (["distill", "--dataset", "GunPoint", "--teacher-epochs", "0"], "--teacher-epochs must be an integer >= 1"),
    (["grid", "--profile", "smoke", "--n-jobs", "0"], "--n-jobs must be >= 1"),
    (["archive", "--profile", "smoke", "--n-jobs", "-2"], "--n-jobs must be >= 1"),
    (["reproduce", "--profile", "smoke", "--n-jobs", "0"], "--n-jobs must be >= 1"),
    (["reproduce", "--profile", "smoke", "--chapters", ""], "--chapters '' names no chapter"),
    (["reproduce", "--profile", "smoke", "--chapters", " , "], "names no chapter"),
    (["reproduce", "--profile", "smoke", "--chapters", "abc"], "'abc' is not a chapter number"),
    (["reproduce", "--profile", "smoke", "--chapters", "2,x"], "'x' is not a chapter number"),
]


@pytest.mark.parametrize(("argv", "message"), BAD, ids=[" ".join(a[:1] + a[-2:]) for a, _ in BAD])
def test_bad_values_fail_fast_in_one_line(argv, message, capsys, no_work, tmp_path, monkeypatch):
    monkeypatch.setenv("TSD_RUNS", str(tmp_path / "runs"))
    monkeypatch.chdir(tmp_path)
    start = time.perf_counter()
    assert main(argv) == 2
    assert time.perf_counter() - start < 5
    _one_error_line(capsys, message)


def test_the_memory_limit_below_a_reference_solution_is_refused_and_explained(capsys, no_work, tmp_path):
    from tsd_lib.grading.sandbox import MIN_MEMORY_MB, REFERENCE_MEMORY_MB

    assert main(["grade", str(tmp_path), "--memory-mb", str(MIN_MEMORY_MB - 1), "--out", str(tmp_path / "g")]) == 2
    err = _one_error_line(capsys, f"at least {MIN_MEMORY_MB}")
    assert "reference solution" in err and str(REFERENCE_MEMORY_MB) in err
    text = _option_help(_help(capsys, "grade"))["--memory-mb"]
    assert f"at least {MIN_MEMORY_MB}" in text and str(REFERENCE_MEMORY_MB) in text
    assert "each of its processes" in text and "all of them together" in text


# ----------------------------------------------------------------------------- n-jobs


@pytest.mark.parametrize("command", ["grid", "archive", "reproduce"])
def test_n_jobs_above_the_cores_is_capped_with_a_warning(command, capsys, monkeypatch, tmp_path):
    import tsd_lib.book.reproduce
    import tsd_lib.runs.archive_making
    import tsd_lib.runs.grid

    seen = {}

    def fake(*args, n_jobs=None, **kwargs):
        seen["n_jobs"] = n_jobs
        raise ValueError("stopped here by the test")

    monkeypatch.setattr(tsd_lib.runs.grid, "run_grid", fake)
    monkeypatch.setattr(tsd_lib.runs.archive_making, "make_archive", fake)
    monkeypatch.setattr(tsd_lib.book.reproduce, "reproduce", fake)
    argv = [command, "--profile", "smoke", "--store", str(tmp_path / "store"), "--n-jobs", "100000"]
    assert main(argv + (["--out", str(tmp_path / "archive")] if command == "archive" else [])) == 2
    assert seen["n_jobs"] == tsd_lib.runs.grid.cores()
    err = capsys.readouterr().err
    assert f"--n-jobs 100000 is more than the {tsd_lib.runs.grid.cores()} cores here" in err
    assert "Traceback" not in err


# ----------------------------------------------------------------------------- one line instead of a traceback


@pytest.mark.parametrize("command", ["train", "distill"])
def test_a_diverged_run_is_one_line(command, capsys, monkeypatch, tmp_path):
    import tsd_lib.experiment
    import tsd_lib.train

    def diverge(*args, **kwargs):
        raise tsd_lib.train.TrainingDivergedError("loss became nan at epoch 3; try a smaller learning rate")

    monkeypatch.setattr(tsd_lib.train, "fit", diverge)
    monkeypatch.setattr(tsd_lib.experiment, "run", diverge)
    monkeypatch.setenv("TSD_RUNS", str(tmp_path / "runs"))
    assert main([command, "--dataset", "GunPoint", "--epochs", "1", "--quiet"]) == 1
    _one_error_line(capsys, "training diverged: loss became nan at epoch 3")


@pytest.mark.parametrize("command", ["report", "archive"])
def test_out_that_is_a_file_is_refused_before_any_work(command, capsys, no_work, tmp_path):
    out = tmp_path / "taken"
    out.write_text("a file")
    assert main([command, "--profile", "smoke", "--store", str(tmp_path / "store"), "--out", str(out)]) == 2
    _one_error_line(capsys, f"{out} is a file, not a folder")


def _archive(folder: Path, lines: list[str] | bytes, name: str = "GunPoint.jsonl") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(STUDIES / "manifest.json", folder / "manifest.json")
    data = lines if isinstance(lines, bytes) else ("\n".join(lines) + "\n").encode()
    (folder / name).write_bytes(data)
    return folder


def _run_line() -> dict:
    for line in (STUDIES / "GunPoint.jsonl").read_text().splitlines():
        entry = json.loads(line)
        if entry["kind"] == "run":
            return entry
    raise AssertionError("no run in results/studies/GunPoint.jsonl")


@pytest.mark.parametrize("field", ["kind", "key", "record"])
def test_an_archive_line_missing_a_field_names_file_and_line(field, capsys, no_work, tmp_path):
    from tsd_lib.runs.archive import Archive

    entry = _run_line()
    good = json.dumps(entry)
    entry.pop(field)
    folder = _archive(tmp_path / "arch", [good, json.dumps(entry)])
    with pytest.raises(ValueError, match=rf"GunPoint.jsonl, line 2: .*missing '{field}'"):
        Archive(folder)
    assert main(["verify", "--archive", str(folder), "--sample", "1"]) == 2
    _one_error_line(capsys, "GunPoint.jsonl, line 2")


def test_an_archived_metric_that_is_not_a_number_is_named_before_any_training(capsys, no_work, tmp_path):
    entry = _run_line()
    entry["record"]["accuracy"] = "abc"
    folder = _archive(tmp_path / "arch", [json.dumps(entry)])
    assert main(["verify", "--archive", str(folder), "--sample", "1"]) == 2
    err = _one_error_line(capsys, "GunPoint.jsonl, line 1")
    assert "'accuracy'" in err and "'abc'" in err


def test_binary_junk_in_an_archive_names_the_file(capsys, no_work, tmp_path):
    folder = _archive(tmp_path / "arch", b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x00junk")
    assert main(["verify", "--archive", str(folder), "--sample", "1"]) == 2
    _one_error_line(capsys, f"{folder / 'GunPoint.jsonl'}: not an archive file")


def test_an_archive_without_records_is_a_clear_line(capsys, no_work, tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    shutil.copy(STUDIES / "manifest.json", folder / "manifest.json")
    assert main(["verify", "--archive", str(folder), "--sample", "2"]) == 2
    _one_error_line(capsys, "holds no run records")


# ----------------------------------------------------------------------------- datasets that do not load


def _tsv(folder: Path, name: str, train: list[str], test: list[str]) -> None:
    for split, rows in (("TRAIN", train), ("TEST", test)):
        path = folder / name / f"{name}_{split}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(rows) + "\n")


def test_datasets_lists_sets_that_fail_to_load_apart(tmp_path, capsys):
    rng = np.random.default_rng(0)

    def rows(labels, nan=False):
        out = []
        for label in labels:
            values = [f"{v:.4f}" for v in rng.normal(size=12)]
            if nan:
                values[3] = "NaN"
            out.append("\t".join([str(label), *values]))
        return out

    archive = tmp_path / "archive"
    _tsv(archive, "Good", rows([0, 1] * 4), rows([0, 1] * 2))
    _tsv(archive, "HasNaN", rows([0, 1] * 4, nan=True), rows([0, 1] * 2))
    _tsv(archive, "OneClass", rows([1] * 8), rows([1] * 4))
    _tsv(archive, "Unseen", rows([0, 1] * 4), rows([0, 2] * 2))
    assert main(["datasets", "--data-dir", str(archive)]) == 0
    out = capsys.readouterr().out
    table, _, broken = out.partition("cannot be loaded")
    listed = {line.split()[0] for line in table.splitlines() if line and not line.startswith(("-", "dataset"))}
    assert "Good" in listed and not {"HasNaN", "OneClass", "Unseen"} & listed
    reasons = {line.split(":")[0].strip(): line for line in broken.splitlines() if line.startswith("  ")}
    assert "NaN" in reasons["HasNaN"]
    assert "1 class" in reasons["OneClass"]
    assert "do not occur in the training split" in reasons["Unseen"]


# ----------------------------------------------------------------------------- profiles with repeats


def test_profile_repeats_are_named_not_dropped_silently(tmp_path, capsys):
    from tsd_lib.profiles import ProfileWarning, load_profile

    path = tmp_path / "repeats.yaml"
    path.write_text("datasets: [GunPoint]\nmethods: [ce, kd, kd]\nseeds: [0, 0, 0]\nepochs: 2\nepochs: 3\n")
    with pytest.warns(ProfileWarning) as caught:
        profile = load_profile(path)
    messages = [str(w.message) for w in caught]
    assert any(str(path) in m and "'seeds'" in m and "0" in m for m in messages), messages
    assert any(str(path) in m and "'methods'" in m and "'kd'" in m for m in messages), messages
    assert any(str(path) in m and "'epochs' is given twice (lines 4 and 5)" in m for m in messages), messages
    assert profile.run["epochs"] == 3 and len(profile.configs()) == 2
    assert main(["status", "--profile", str(path), "--store", str(tmp_path / "store")]) == 0
    err = capsys.readouterr().err
    assert err.count("tsd status: warning: profile") == 3 and "Traceback" not in err


def test_packaged_profiles_have_no_repeats():
    from tsd_lib.profiles import ProfileWarning, available_profiles, load_profile

    with warnings.catch_warnings():
        warnings.simplefilter("error", ProfileWarning)
        for name in available_profiles():
            load_profile(name)


# ----------------------------------------------------------------------------- friction


def _help(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--help"])
    assert exit_.value.code == 0
    return capsys.readouterr().out


def _option_help(text: str) -> dict[str, str]:
    """``--help`` output -> ``{option: its help text on one line}``."""
    blocks: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("  -"):
            current = line.split()[0].rstrip(",")
            if current == "-p":
                current = "--parameter"
            blocks[current] = [line]
        elif current and line.startswith("    "):
            blocks[current].append(line)
        else:
            current = None
    return {k: " ".join(" ".join(v).split()) for k, v in blocks.items()}


def test_distill_help_shows_defaults(capsys):
    options = _option_help(_help(capsys, "distill"))
    for option, default in [("--teacher-epochs", "500"), ("--epochs", "1000"), ("--tau", "8.0"),
                            ("--n-windows", "50"), ("--window", "10"), ("--method", "kd+tsd"),
                            ("--teacher", "lstm_teacher"), ("--student", "lstm_student"), ("--patience", "50"),
                            ("--seed", "0"), ("--teacher-seed", "0"), ("--length", "100"), ("--device", "auto")]:
        assert f"(default: {default})" in options[option], (option, options[option])


@pytest.mark.parametrize("command", ["grid", "status", "report", "reproduce", "archive", "datasets"])
def test_profile_help_lists_every_packaged_profile(command, capsys):
    from tsd_lib.profiles import available_profiles

    text = " ".join(_help(capsys, command).split())
    assert all(name in text for name in available_profiles())


def test_train_writes_under_the_run_store_with_the_readme_epochs(tmp_path, monkeypatch, capsys):
    runs, cwd = tmp_path / "runs", tmp_path / "elsewhere"
    cwd.mkdir()
    monkeypatch.setenv("TSD_RUNS", str(runs))
    monkeypatch.chdir(cwd)
    args = build_parser().parse_args(["train", "--dataset", "ItalyPowerDemand"])
    assert f"up to {args.epochs} epochs" in (REPO / "README.md").read_text()
    assert main(["train", "--dataset", "ItalyPowerDemand", "--model", "fcn_small", "--epochs", "1", "--quiet"]) == 0
    assert (runs / "train" / "ItalyPowerDemand-fcn_small-seed0" / "metrics.json").exists()
    assert not any(cwd.iterdir())
    store = tmp_path / "store"
    assert main(["train", "--dataset", "ItalyPowerDemand", "--model", "fcn_small", "--epochs", "1", "--quiet",
                 "--store", str(store)]) == 0
    assert (store / "train" / "ItalyPowerDemand-fcn_small-seed0" / "model.pt").exists()


def test_raw_user_warnings_are_one_tidy_line(capsys, monkeypatch):
    import tsd_lib.profiles

    def noisy(*args, **kwargs):
        warnings.warn("a library's note\nover two lines", UserWarning, stacklevel=1)
        raise ValueError("stopped here by the test")

    monkeypatch.setattr(tsd_lib.profiles, "load_profile", noisy)
    assert main(["status", "--profile", "smoke"]) == 2
    err = capsys.readouterr().err
    assert "tsd status: warning: a library's note over two lines\n" in err
    assert "UserWarning" not in err and ".py:" not in err


# ----------------------------------------------------------------------------- distill's teacher


def test_distill_caps_the_teacher_apart_and_warns_when_it_stopped_at_the_cap(tmp_path, capsys):
    store = tmp_path / "store"
    argv = ["distill", "--dataset", "ItalyPowerDemand", "--teacher", "fcn_small", "--student", "fcn_small",
            "--method", "kd", "--epochs", "3", "--teacher-epochs", "2", "--saliency-eval-series", "2",
            "--quiet", "--store", str(store)]
    assert main(argv) == 0
    (teacher,) = [json.loads(p.read_text()) for p in store.glob("teachers/*/record.json")]
    (student,) = [json.loads(p.read_text()) for p in store.glob("runs/*/record.json")]
    assert teacher["epochs_run"] == 2 and teacher["teacher_epochs"] == 2 and student["epochs_run"] == 3
    err = capsys.readouterr().err
    assert "tsd distill: warning: the teacher stopped at its 2-epoch cap" in err and "--teacher-epochs" in err
    assert build_parser().parse_args(["distill", "--dataset", "X"]).teacher_epochs == 500


def test_teacher_warnings_name_a_capped_or_near_chance_teacher():
    from tsd_lib.cli.commands import teacher_warnings

    y = np.array([0] * 70 + [1] * 30)
    good = {"stopped_early": True, "epochs_run": 120, "test_accuracy": 0.95}
    assert teacher_warnings(good, y, 2) == []
    (capped,) = teacher_warnings({**good, "stopped_early": False, "epochs_run": 500}, y, 2)
    assert "500-epoch cap" in capped
    (majority,) = teacher_warnings({**good, "test_accuracy": 0.72}, y, 2)  # within 0.05 of the 0.70 majority
    assert "near chance" in majority and "0.700" in majority
    balanced = np.arange(100) % 4
    (chance,) = teacher_warnings({**good, "test_accuracy": 0.28}, balanced, 4)  # below 1/k + 0.05
    assert "near chance" in chance
    assert teacher_warnings({**good, "test_accuracy": 0.31}, balanced, 4) == []
