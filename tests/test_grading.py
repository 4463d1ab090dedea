"""Course assignments: check functions, the `tsd grade` grader and the assignment notebooks."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
import time
from pathlib import Path

import nbformat
import pytest
import torch
import torch.nn.functional as F

from tsd_lib import grading as G
from tsd_lib.cli import main
from tsd_lib.grading.checks_saliency import _reference_saliency_map
from tsd_lib.losses.logit import kd_loss
from tsd_lib.losses.tsd import tsd_loss
from tsd_lib.saliency.perturb import apply_windows, distribution_shift, kl_terms, perturb

REPO = Path(__file__).resolve().parents[1]
ASSIGNMENTS = REPO / "assignments"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "grading"


@pytest.fixture(autouse=True)
def _not_graded(monkeypatch):
    """Checks called by tests run here, even when the tests themselves run under a grader."""
    monkeypatch.delenv(G.SOCKET_ENV, raising=False)


def _softmax_t(z, tau):
    return torch.softmax(z / tau, dim=-1)


def _entropy(z, tau):
    log_p = F.log_softmax(z / tau, dim=-1)
    return -(log_p.exp() * log_p).sum(-1)


REFERENCES = {
    "check_temperature_softmax": (G.check_temperature_softmax, (_softmax_t,)),
    "check_kd_loss": (G.check_kd_loss, (kd_loss,)),
    "check_soft_target_entropy": (G.check_soft_target_entropy, (_entropy,)),
    "check_apply_windows": (G.check_apply_windows, (apply_windows,)),
    "check_window_saliency": (G.check_window_saliency, (_reference_saliency_map,)),
    "check_planted_saliency": (G.check_planted_saliency, (_reference_saliency_map,)),
    "check_distribution_shift": (G.check_distribution_shift, (distribution_shift,)),
    "check_tsd_loss": (G.check_tsd_loss, (tsd_loss,)),
}


# ----------------------------------------------------------------------------- checks


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_reference_implementations_score_full_marks(name, capsys):
    check, args = REFERENCES[name]
    result = check(*args)
    assignment = next(a for a, table in G.POINTS.items() if name in table)
    assert result.name == name and result.assignment == assignment
    assert result.points == result.max_points == G.POINTS[assignment][name], result.messages
    assert result.passed and not result.messages
    out = capsys.readouterr().out
    assert f"{name}: {result.max_points:g}/{result.max_points:g} points" in out


def test_points_registry_covers_every_check():
    checks = {name for table in G.POINTS.values() for name in table}
    assert checks == {n for n in G.__all__ if n.startswith("check_")}
    assert set(G.POINTS) == set(G.ASSIGNMENTS) == {1, 2, 3}


def test_kd_without_tau_squared_loses_exactly_the_scaling_case(capsys):
    def no_tau2(zs, zt, tau=4.0):
        return kd_loss(zs, zt, tau) / tau**2

    r = G.check_kd_loss(no_tau2)
    assert r.points == 7 and r.failed_cases == ["tau^2 scaling (tau = 2, 4, 8)"]
    assert "forgot the tau^2 factor" in r.messages[0] and "expected" in r.messages[0]
    assert "✘ tau^2 scaling" in capsys.readouterr().out


def test_kd_in_the_wrong_direction_is_explained():
    r = G.check_kd_loss(lambda zs, zt, tau=4.0: kd_loss(zt, zs, tau))
    assert "random batch, tau = 1" in r.failed_cases and r.points <= 3
    assert any("wrong direction" in m and "KL(p_T || p_S)" in m for m in r.messages)


def test_kd_mean_reduction_and_naive_log_are_explained():
    def mean_reduction(zs, zt, tau=4.0):
        return F.kl_div(F.log_softmax(zs / tau, -1), F.softmax(zt / tau, -1), reduction="sum") / zs.numel() * tau**2

    def naive(zs, zt, tau=4.0):
        p_s, p_t = torch.softmax(zs / tau, -1), torch.softmax(zt / tau, -1)
        return tau**2 * (p_t * (p_t.log() - p_s.log())).sum(-1).mean()

    r = G.check_kd_loss(mean_reduction)
    assert any("reduction='batchmean'" in m for m in r.messages)
    r = G.check_kd_loss(naive)
    assert r.failed_cases == ["extreme logits stay finite"] and "F.log_softmax" in r.messages[0]


@pytest.mark.parametrize(
    "bad",
    [
        lambda *a, **k: (_ for _ in ()).throw(NotImplementedError()),
        lambda *a, **k: 1 / 0,
        lambda *a, **k: "a string",
        lambda *a, **k: None,
        42,
    ],
    ids=["not-implemented", "raises", "string", "none", "not-callable"],
)
def test_checks_never_raise_on_broken_student_code(bad, capsys):
    for check in (G.check_temperature_softmax, G.check_kd_loss, G.check_soft_target_entropy, G.check_apply_windows,
                  G.check_window_saliency, G.check_planted_saliency, G.check_distribution_shift, G.check_tsd_loss):
        result = check(bad)
        assert result.points == 0 and result.messages and not result.passed
    out = capsys.readouterr().out
    assert "0/" in out


def test_not_implemented_stops_early_with_one_message():
    def stub(*_):
        raise NotImplementedError

    r = G.check_kd_loss(stub)
    assert len(r.messages) == 1 and "not implemented yet" in r.messages[0]
    assert len(r.failed_cases) == r.total_cases == 8


def test_distribution_shift_nan_when_nothing_moves():
    def nan_on_zero(z, zp, tau, reduce="none"):
        s = kl_terms(z, zp, tau)
        s = s.sum(-1) if reduce == "sum" else s
        return s / (s[s > 0].mean() + 1e-8)

    r = G.check_distribution_shift(nan_on_zero)
    assert r.failed_cases == ["identical logits give zeros, not NaN"] and r.points == 3


def test_tsd_loss_mistakes_lose_the_right_cases():
    def teacher_with_grad(student, teacher, X, y, X_pool, y_pool, *, n_windows, window, tau, generator):
        copies, _ = perturb(X, y, X_pool, y_pool, n_windows=n_windows, window=window, generator=generator)
        s_t = distribution_shift(teacher(X), teacher(copies), tau)
        return F.smooth_l1_loss(distribution_shift(student(X), student(copies), tau), s_t)

    def perturb_twice(student, teacher, X, y, X_pool, y_pool, *, n_windows, window, tau, generator):
        kw = dict(n_windows=n_windows, window=window, generator=generator)
        c1, _ = perturb(X, y, X_pool, y_pool, **kw)
        c2, _ = perturb(X, y, X_pool, y_pool, **kw)
        with torch.no_grad():
            s_t = distribution_shift(teacher(X), teacher(c1), tau)
        return F.smooth_l1_loss(distribution_shift(student(X), student(c2), tau), s_t)

    r = G.check_tsd_loss(teacher_with_grad)
    assert r.failed_cases == ["teacher gets no gradient and is not changed"] and "torch.no_grad" in r.messages[0]
    r = G.check_tsd_loss(perturb_twice)
    assert "student identical to the teacher gives 0" in r.failed_cases
    assert any("same perturbed copies" in m for m in r.messages)


def test_window_saliency_and_apply_windows_mistakes_are_explained():
    r = G.check_window_saliency(lambda m, X, D, L, tau=8.0: _reference_saliency_map(m, X, D, L, tau, cover="sum"))
    assert any("MEAN score" in m for m in r.messages)

    def window_major(X, starts, values, window):
        B, K = starts.shape
        return apply_windows(X, starts, values, window).reshape(B, K, *X.shape[1:]).transpose(0, 1).flatten(0, 1)

    r = G.check_apply_windows(window_major)
    assert any("series-major" in m for m in r.messages)


def test_result_only_checks(synthetic):
    data, truth = synthetic
    r = G.check_synthetic_validation(truth + 0.0, truth, 1.0)
    assert r.points == 2
    r = G.check_synthetic_validation(None, truth, None)
    assert r.points == 0 and "`maps` is None" in r.messages[0]
    r = G.check_ablation([{"setting": "w", "value": 0, "accuracy": 0.8}, {"setting": "w", "value": 1, "accuracy": 0.9}],
                         "Adding the term raised accuracy slightly, within seed noise for one seed.")
    assert r.points == 2
    r = G.check_ablation([], "TODO")
    assert r.points == 0
    r = G.check_trained_student(None, data, {"epochs": [{"train_loss": 1.0}]})
    assert r.passed_cases == ["training loss finite in every epoch"]
    assert any("no `tsd` term" in m for m in r.messages)


def test_scoring_keeps_the_last_result_of_each_check():
    r1 = G.check_kd_loss(lambda zs, zt, tau=4.0: kd_loss(zs, zt, tau) / tau**2, verbose=False)
    r2 = G.check_kd_loss(kd_loss, verbose=False)  # a re-run replaces the earlier result
    r3 = G.check_tsd_loss(tsd_loss, verbose=False)  # another assignment: ignored for assignment 1
    score, total, rows = G.score_results([r1, r2, r3], 1)
    assert (score, total) == (8.0, 12.0)
    assert {r["name"]: r["ran"] for r in rows} == {"check_temperature_softmax": False, "check_kd_loss": True,
                                                   "check_soft_target_entropy": False}
    assert G.LEDGER[-1] is r3


# ----------------------------------------------------------------------------- assignment notebooks


def _builder():
    spec = importlib.util.spec_from_file_location("build_assignments", ASSIGNMENTS / "build_assignments.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(spec.name, None)
    return module


def test_assignment_files_are_built_from_their_source():
    assert _builder().main(["--check"]) == 0
    for folder in ("01_kd_loss", "02_window_saliency", "03_tsd_loss"):
        source = nbformat.read(ASSIGNMENTS / folder / "source.ipynb", as_version=4)
        assert any("### BEGIN SOLUTION" in c.source for c in source.cells)


def test_builder_resolves_solution_and_prompt_markers():
    versions = _builder().versions
    src = 'def f(x):\n    """Doc."""\n    ### BEGIN SOLUTION\n    return x + 1\n    ### END SOLUTION\n'
    assert versions(src) == ('def f(x):\n    """Doc."""\n    raise NotImplementedError  # TODO\n',
                             'def f(x):\n    """Doc."""\n    return x + 1\n')
    prompt = ("### BEGIN PROMPT\nanswer = None  # TODO\n### END PROMPT\n"
              "### BEGIN SOLUTION\nanswer = 42\n### END SOLUTION")
    assert versions(prompt) == ("answer = None  # TODO", "answer = 42")
    assert versions("Question?\n### BEGIN SOLUTION\nAnswer.\n### END SOLUTION", code=False) == (
        "Question?", "Question?\nAnswer.")
    assert versions("x = 1") is None
    for bad in ("### BEGIN SOLUTION\nx = 1", "x = 1\n### END SOLUTION", "### BEGIN PROMPT\nx\n### END PROMPT\ny = 2",
                "### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION"):
        with pytest.raises(ValueError, match="line|closed"):
            versions(bad, where="cell c0")


@pytest.mark.parametrize("folder", ["01_kd_loss", "02_window_saliency", "03_tsd_loss"])
def test_assignment_notebooks_are_well_formed(folder):
    number = int(folder[:2])
    for version in ("student", "solution"):
        nb = nbformat.read(ASSIGNMENTS / folder / f"{version}.ipynb", as_version=4)
        nbformat.validate(nb)
        assert nb.metadata["tsd_assignment"] == number and nb.metadata["kernelspec"]["name"] == "python3"
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1 and "seed" in tagged[0].source
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code)
        calls = "".join(c.source for c in code)
        for check in G.POINTS[number]:
            assert f"{check}(" in calls
        todos = [c for c in code if "NotImplementedError  # TODO" in c.source]
        assert (len(todos) > 0) == (version == "student")
    page = (ASSIGNMENTS / folder / "page.md").read_text()
    assert page.startswith("(assignment-") and ":::{admonition} Solution" not in page


def _solution_only_lines(folder: str) -> set[str]:
    """Lines between the solution markers of a source that appear nowhere in the student notebook."""
    builder = _builder()
    source = builder.read_source(folder)
    student = {line.strip() for c in builder.notebook(source, "student").cells for line in c.source.splitlines()}
    lines = {line.strip() for c in source.cells for line in builder.solution_lines(c.source)}
    return {line for line in lines if sum(ch.isalnum() for ch in line) >= 4 and line not in student}  # not "])"


def _page_lines(text: str) -> set[str]:
    return {line.strip() for line in text.splitlines()}


@pytest.mark.parametrize("folder", ["01_kd_loss", "02_window_saliency", "03_tsd_loss"])
def test_published_assignment_pages_show_no_solution(folder, monkeypatch):
    """The committed (published) page is the student's: no solution line, no model answer; the instructor
    edition, built from the same source, has them all (so the comparison can fail)."""
    monkeypatch.delenv("TSD_INSTRUCTOR", raising=False)
    builder = _builder()
    secret = _solution_only_lines(folder)
    assert len(secret) >= 3, folder
    committed = (ASSIGNMENTS / folder / "page.md").read_text()
    assert not secret & _page_lines(committed), sorted(secret & _page_lines(committed))[:5]
    assert "dropdown" not in committed and "Model answers" not in committed and "solution.ipynb" not in committed
    source = builder.read_source(folder)
    instructor = builder.page(source, folder, edition="instructor", expected=builder.load_expected(folder))
    assert secret <= _page_lines(instructor) and "Instructor edition" in instructor
    assert "{download}`solution.ipynb <solution.ipynb>`" in instructor
    monkeypatch.setenv("TSD_INSTRUCTOR", "1")
    assert builder._edition(False) == "instructor"
    assert builder.main(["--check"]) == 0  # --check compares with the student edition whatever the flag


@pytest.mark.parametrize("folder", ["01_kd_loss", "02_window_saliency", "03_tsd_loss"])
def test_assignment_pages_link_the_student_notebook(folder):
    page = (ASSIGNMENTS / folder / "page.md").read_text()
    assert "{download}`student.ipynb <student.ipynb>`" in page
    assert (ASSIGNMENTS / folder / "student.ipynb").exists()


def test_ungraded_tasks_show_what_you_should_see():
    """Tagged cells of assignment 1's ungraded task get the reference solution's recorded output."""
    builder = _builder()
    source = builder.read_source("01_kd_loss")
    expected = builder.load_expected("01_kd_loss")
    assert builder.expected_is_current(expected, source)
    tagged = [c for c in source.cells if builder.EXPECTED_TAG in c.metadata.get("tags", [])]
    assert len(tagged) == 3 and all(expected["cells"][c.id]["text"] for c in tagged)
    page = (ASSIGNMENTS / "01_kd_loss" / "page.md").read_text()
    assert page.count(":::{admonition} What you should see") == 3
    assert "teacher test accuracy: 0." in page and "|grad tau^2 KL|" in page
    # the tag builds the page only: the notebooks students and graders get do not carry it
    for version in ("student", "solution"):
        nb = nbformat.read(ASSIGNMENTS / "01_kd_loss" / f"{version}.ipynb", as_version=4)
        assert not any(builder.EXPECTED_TAG in c.metadata.get("tags", []) for c in nb.cells)
    # a changed solution makes the recorded output stale, which --check reports
    source.cells[4].source += "\n# changed"
    assert not builder.expected_is_current(expected, source)
    box = builder._what_you_should_see({"text": "", "figures": 2})
    assert "drew 2 figures." in box and "```text" not in box


# ----------------------------------------------------------------------------- grader (separate processes)


def test_tsd_grade_all_solution_notebooks_end_to_end(tmp_path, capsys):
    """Every reference solution scores full marks when executed by the grader (tiny epochs)."""
    subs, out = tmp_path / "solutions", tmp_path / "grades"
    subs.mkdir()
    for folder in ("01_kd_loss", "02_window_saliency", "03_tsd_loss"):
        (subs / f"{folder}.ipynb").write_bytes((ASSIGNMENTS / folder / "solution.ipynb").read_bytes())
    assert main(["grade", str(subs), "-p", "epochs", "4", "--out", str(out), "--timeout", "300"]) == 0
    rows = {Path(r["notebook"]).stem: r for r in csv.DictReader((out / "summary.csv").open())}
    assert set(rows) == {"01_kd_loss", "02_window_saliency", "03_tsd_loss"}
    for name, row in rows.items():
        assert row["status"] == "ok" and row["score"] == row["max_score"], (name, row)
        report = json.loads((out / f"{name}.grade.json").read_text())
        assert report["parameters"] == {"epochs": 4} and report["assignment"] == int(name[:2])
        assert all(c["ran"] and not c["failed_cases"] for c in report["checks"]), report["checks"]
        assert (out / f"{name}.executed.ipynb").exists()
    printed = capsys.readouterr().out
    assert "score: 12/12" in printed and "score: 15/15" in printed and "summary.csv" in printed


def test_tsd_grade_student_notebooks_score_zero_with_clear_feedback(tmp_path):
    """The student versions (stubs) earn nothing, and the feedback says what is missing."""
    subs, out = tmp_path / "students", tmp_path / "grades"
    subs.mkdir()
    for folder in ("01_kd_loss", "02_window_saliency", "03_tsd_loss"):
        (subs / f"{folder}.ipynb").write_bytes((ASSIGNMENTS / folder / "student.ipynb").read_bytes())
    assert main(["grade", str(subs), "-p", "epochs", "1", "--out", str(out), "--timeout", "300"]) == 0
    for folder in ("01_kd_loss", "02_window_saliency", "03_tsd_loss"):
        report = json.loads((out / f"{folder}.grade.json").read_text())
        assert report["score"] == 0 and report["max_score"] == sum(G.POINTS[int(folder[:2])].values())
        first = report["checks"][0]
        assert first["ran"] and "not implemented yet" in first["messages"][0], first


def _solution_functions(folder: str) -> dict:
    """The ``def my_...`` cells of a solution notebook, executed in a namespace with their imports."""
    import numpy as np

    namespace = {"torch": torch, "F": F, "np": np, "perturb": perturb}
    nb = nbformat.read(ASSIGNMENTS / folder / "solution.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.source.startswith("def my_"):
            exec(cell.source, namespace)
    return namespace


def test_solution_functions_score_full_marks_in_process():
    ns = _solution_functions("01_kd_loss")
    for check, fn in [(G.check_temperature_softmax, "my_softmax_t"), (G.check_kd_loss, "my_kd_loss"),
                      (G.check_soft_target_entropy, "my_soft_target_entropy")]:
        assert check(ns[fn], verbose=False).passed
    ns = _solution_functions("02_window_saliency")
    for check, fn in [(G.check_apply_windows, "my_apply_windows"), (G.check_window_saliency, "my_saliency_map"),
                      (G.check_planted_saliency, "my_saliency_map")]:
        assert check(ns[fn], verbose=False).passed
    ns = _solution_functions("03_tsd_loss")
    assert G.check_distribution_shift(ns["my_distribution_shift"], verbose=False).passed
    assert G.check_tsd_loss(ns["my_tsd_loss"], verbose=False).passed


def test_wrong_solution_fixture_loses_the_right_points(tmp_path):
    report = G.grade_notebook(FIXTURES / "kd_no_tau2.ipynb", timeout=240, out_dir=tmp_path)
    assert report.status == "ok" and report.score == 9 and report.max_score == 12
    checks = {c["name"]: c for c in report.checks}
    assert checks["check_temperature_softmax"]["points"] == 2
    assert checks["check_kd_loss"]["points"] == 7
    assert checks["check_kd_loss"]["failed_cases"] == ["tau^2 scaling (tau = 2, 4, 8)"]
    assert "forgot the tau^2 factor" in checks["check_kd_loss"]["messages"][0]
    assert not checks["check_soft_target_entropy"]["ran"]


def test_crashing_notebook_keeps_points_of_earlier_checks():
    report = G.grade_notebook(FIXTURES / "crash_after_check.ipynb", timeout=240)
    assert report.status == "crashed" and report.failing_cell == 5
    assert "ZeroDivisionError" in report.error and "cell 5" in report.error
    assert report.score == 2


def test_timeout_kills_the_kernel(tmp_path):
    psutil = pytest.importorskip("psutil")
    pidfile = tmp_path / "kernel.pid"
    start = time.perf_counter()
    report = G.grade_notebook(FIXTURES / "sleeps.ipynb", timeout=5, parameters={"pidfile": str(pidfile)})
    assert report.status == "timeout" and "5 s" in report.error
    assert time.perf_counter() - start < 30
    if pidfile.exists():  # the kernel got as far as writing its pid
        pid = int(pidfile.read_text())
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_memory_hog_is_reported():
    report = G.grade_notebook(FIXTURES / "memory_hog.ipynb", timeout=120, memory_mb=1500)
    assert report.status == "memory", report
    assert "MemoryError" in report.error


def test_folder_with_invalid_files_gets_a_summary(tmp_path, capsys):
    subs = tmp_path / "submissions"
    subs.mkdir()
    (subs / "essay.ipynb").write_text("My essay about distillation, not a notebook.")
    (subs / "broken.ipynb").write_text('{"cells": "oops", "nbformat": 4, "metadata": {}}')
    unknown = nbformat.v4.new_notebook()
    nbformat.write(unknown, subs / "no_metadata.ipynb")
    empty = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1", id="c0")])
    empty.metadata.update(tsd_assignment=2, kernelspec={"name": "python3", "display_name": "Python 3",
                                                        "language": "python"})
    nbformat.write(empty, subs / "nothing_done.ipynb")
    out = tmp_path / "grades"
    assert main(["grade", str(subs), "--out", str(out), "--timeout", "120"]) == 0
    rows = {Path(r["notebook"]).name: r for r in csv.DictReader((out / "summary.csv").open())}
    assert rows["essay.ipynb"]["status"] == "invalid" and "invalid JSON" in rows["essay.ipynb"]["error"]
    assert rows["broken.ipynb"]["status"] == "invalid" and "nbformat" in rows["broken.ipynb"]["error"]
    assert rows["no_metadata.ipynb"]["status"] == "invalid" and "--assignment" in rows["no_metadata.ipynb"]["error"]
    assert rows["nothing_done.ipynb"]["status"] == "ok" and rows["nothing_done.ipynb"]["score"] == "0"
    assert rows["nothing_done.ipynb"]["max_score"] == "12"
    assert "Traceback" not in capsys.readouterr().out


def test_grade_missing_path_is_a_clean_error(tmp_path, capsys):
    assert main(["grade", str(tmp_path / "nope.ipynb"), "--out", str(tmp_path / "g")]) == 2
    assert "no such file" in capsys.readouterr().err
