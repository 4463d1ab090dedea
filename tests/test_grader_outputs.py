"""``tsd grade``'s outputs and limits: grades are never lost or forged, limits mean what they say (issue 21)."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
from conftest import grading_notebook as _notebook

from tsd_lib import grading as G
from tsd_lib.cli import main
from tsd_lib.grading import sandbox

ASSIGNMENTS = Path(__file__).resolve().parents[1] / "assignments"




@pytest.fixture(autouse=True)
def _not_graded(monkeypatch):
    monkeypatch.delenv(G.SOCKET_ENV, raising=False)


@pytest.fixture
def no_grading(monkeypatch):
    import tsd_lib.grading.grader as grader

    monkeypatch.setattr(grader, "grade_notebook", lambda *a, **k: pytest.fail("a notebook was graded"))


def _refused(capsys, message: str) -> None:
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err
    assert len([line for line in err.splitlines() if line.strip()]) == 1, err


# ----------------------------------------------------------------------------- the output folder, before grading


def test_out_that_is_a_file_fails_before_grading(tmp_path, capsys, no_grading):
    subs = tmp_path / "subs"
    _notebook(subs / "a.ipynb", ["x = 1"])
    (tmp_path / "grades.txt").write_text("not a folder")
    assert main(["grade", str(subs), "--out", str(tmp_path / "grades.txt")]) == 2
    _refused(capsys, "is a file, not a folder")


def test_out_that_is_not_writable_fails_before_grading(tmp_path, capsys, no_grading, monkeypatch):
    subs, out = tmp_path / "subs", tmp_path / "locked"
    _notebook(subs / "a.ipynb", ["x = 1"])
    out.mkdir()
    out.chmod(0o555)
    if os.geteuid() == 0:  # root writes anywhere: make the check see what a user would
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, **k: False if Path(p) == out else real(p, mode, **k))
    try:
        assert main(["grade", str(subs), "--out", str(out)]) == 2
    finally:
        out.chmod(0o755)
    _refused(capsys, f"--out {out} is not writable")


@pytest.mark.parametrize("where", ["out", "parent"])
def test_symbolic_links_on_the_output_path_are_refused(where, tmp_path, capsys, no_grading):
    subs, real = tmp_path / "subs", tmp_path / "real"
    _notebook(subs / "a.ipynb", ["x = 1"])
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    out = link if where == "out" else link / "grades"
    assert main(["grade", str(subs), "--out", str(out)]) == 2
    _refused(capsys, f"{link} is a symbolic link")
    assert not any(real.iterdir())


def test_an_output_folder_with_other_files_is_refused_not_emptied(tmp_path, capsys, no_grading):
    subs, out = tmp_path / "subs", tmp_path / "mine"
    _notebook(subs / "a.ipynb", ["x = 1"])
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    assert main(["grade", str(subs), "--out", str(out)]) == 2
    _refused(capsys, "holds files tsd grade did not write (thesis.tex)")
    assert (out / "thesis.tex").read_text() == "precious"


def test_grading_an_empty_folder_leaves_no_output_folder(tmp_path, capsys):
    subs, out = tmp_path / "empty", tmp_path / "grades"
    subs.mkdir()
    assert main(["grade", str(subs), "--out", str(out)]) == 0
    assert not out.exists()
    assert "no notebooks found" in capsys.readouterr().out


# ----------------------------------------------------------------------------- what a submission leaves in the folder


FORGER = '''
import json
import os

os.makedirs(out, exist_ok=True)
forged = {"score": 12, "max_score": 12, "tests": []}
for name in ("c_ghost.results.json", "a_honest.results.json", "summary.csv"):
    with open(os.path.join(out, name), "w") as fh:
        json.dump(forged, fh)
with open(os.path.join(out, "old.results.json"), "w") as fh:  # an earlier grade, rewritten
    json.dump(forged, fh)
os.symlink("/etc/hostname", os.path.join(out, "b_forger.grade.json"))
os.makedirs(os.path.join(out, "b_forger.executed.ipynb"), exist_ok=True)
'''


def test_files_a_submission_writes_into_the_output_folder_are_removed(tmp_path, capsys):
    subs, out = tmp_path / "subs", tmp_path / "grades"
    _notebook(subs / "a_honest.ipynb", ["seed = 0"])
    _notebook(subs / "b_forger.ipynb", ['out = ""', FORGER])
    out.mkdir()
    (out / "kept.grade.json").write_text('{"score": 5}')  # reports of an earlier grading stay
    (out / "old.results.json").write_text('{"score": 1}')
    assert main(["grade", str(subs), "--out", str(out), "--timeout", "120", "-p", "out", str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    assert names == {f"{n}.{kind}" for n in ("a_honest", "b_forger") for kind in
                     ("grade.json", "results.json", "executed.ipynb")} | {"summary.csv", "summary.json",
                                                                            "kept.grade.json"}
    assert not any(p.is_symlink() for p in out.iterdir())
    assert json.loads((out / "a_honest.results.json").read_text())["score"] == 0
    forger = json.loads((out / "b_forger.grade.json").read_text())
    assert forger["status"] == "ok" and forger["score"] == 0
    assert (out / "b_forger.executed.ipynb").is_file()
    assert (out / "kept.grade.json").read_text() == '{"score": 5}'
    printed = capsys.readouterr().out
    assert "removed" in printed and "c_ghost.results.json" in printed and "old.results.json" in printed


def test_summary_lists_checks_in_notebook_order(tmp_path):
    subs, out = tmp_path / "subs", tmp_path / "grades"
    _notebook(subs / "nothing_done.ipynb", ["x = 1"])
    assert main(["grade", str(subs), "--out", str(out), "--timeout", "120"]) == 0
    with open(out / "summary.csv", newline="") as fh:
        header = next(csv.reader(fh))
    checks = [h for h in header if h.startswith("check_")]
    assert checks == list(G.POINTS[1]) == ["check_temperature_softmax", "check_kd_loss", "check_soft_target_entropy"]


# ----------------------------------------------------------------------------- what a submission can learn


SPY = '''
import os

worker = os.getppid()
with open(f"/proc/{worker}/cmdline", "rb") as fh:
    seen = fh.read().replace(b"\\0", b" ").decode()
with open(spyfile, "w") as fh:
    fh.write(seen)
'''


def test_a_submission_never_sees_other_submissions_paths(tmp_path):
    subs, spyfile = tmp_path / "secret_submissions", tmp_path / "spy.txt"
    _notebook(subs / "a_spy.ipynb", ['spyfile = ""', SPY])
    _notebook(subs / "b_other_student.ipynb", ["x = 1"])
    reports = G.grade(subs, out_dir=tmp_path / "grades", timeout=120, echo=False,
                      parameters={"spyfile": str(spyfile)})
    assert reports[0].status == "ok", reports[0].error
    seen = spyfile.read_text()
    assert "tsd_lib.grading" in seen  # the worker's command line indeed
    assert "secret_submissions" not in seen and "b_other_student" not in seen and ".ipynb" not in seen
    assert "spy.txt" not in seen  # parameters travel on stdin, not on the command line


# ----------------------------------------------------------------------------- memory


FORK_HOG = '''
import subprocess
import sys

CHILD = "import time; blob = b'x' * (300 * 2**20); time.sleep(4)"
children = [subprocess.Popen([sys.executable, "-c", CHILD]) for _ in range(4)]
for c in children:
    c.wait()
print("all children finished")
'''


def test_the_memory_limit_covers_every_process_of_a_notebook(tmp_path):
    """Four children of 300 MiB each stay under a 900 MiB limit one by one, not together."""
    nb = _notebook(tmp_path / "fork_hog.ipynb", ["seed = 0", FORK_HOG])
    report = G.grade_notebook(nb, timeout=120, memory_mb=900)
    assert report.status == "memory", (report.status, report.error)
    assert "together used more than 900 MiB" in report.error and "memory limit: 900 MiB" in report.error
    assert report.limits == {"timeout_s": 120, "memory_mb": 900}


def test_a_reference_solution_passes_at_the_smallest_memory_limit_accepted(tmp_path):
    subs, out = tmp_path / "subs", tmp_path / "grades"
    subs.mkdir()
    (subs / "01_kd_loss.ipynb").write_bytes((ASSIGNMENTS / "01_kd_loss" / "solution.ipynb").read_bytes())
    assert main(["grade", str(subs), "--out", str(out), "--timeout", "300", "-p", "epochs", "4", "--memory-mb",
                 str(sandbox.MIN_MEMORY_MB)]) == 0
    report = json.loads((out / "01_kd_loss.grade.json").read_text())
    assert report["status"] == "ok" and report["score"] == report["max_score"] == 12, report["error"]


def test_a_reference_solution_below_its_memory_need_fails_with_a_hint():
    """What MIN_MEMORY_MB guards against (through the API, which does not refuse it): the kernel of a
    reference solution cannot load torch in 1 GiB of address space; the report says why."""
    report = G.grade_notebook(ASSIGNMENTS / "01_kd_loss" / "solution.ipynb", timeout=120, memory_mb=1024,
                              parameters={"epochs": 4})
    assert report.status in ("crashed", "memory") and report.score == 0
    assert "memory limit: 1024 MiB" in report.error
    assert f"a reference solution needs about {sandbox.REFERENCE_MEMORY_MB} MiB" in report.error
    assert sandbox.REFERENCE_MEMORY_MB < sandbox.MIN_MEMORY_MB
