"""The grader cannot be fooled: no forged points, no surviving processes, a minimal environment."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import grading_notebook as _notebook

from tsd_lib import grading as G
from tsd_lib.cli import main
from tsd_lib.grading import remote
from tsd_lib.losses.logit import kd_loss
from tsd_lib.saliency.perturb import apply_windows, distribution_shift, perturb

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "grading"

SOFTMAX = '''
from tsd_lib.grading import check_temperature_softmax


def my_softmax_t(logits, tau):
    z = logits / tau
    z = z - z.max(dim=-1, keepdim=True).values
    return z.exp() / z.exp().sum(dim=-1, keepdim=True)


check_temperature_softmax(my_softmax_t);
'''

FORGE = '''
import json
import os
import socket
import struct
import sys

import tsd_lib.grading as G

forged = [G.CheckResult(n, p, p, ["forged"], [], [], 1) for n, p in G.POINTS[1].items()]
ledger = os.environ.get("TSD_GRADE_LEDGER")  # the ledger file of the old grader
if ledger:
    with open(ledger, "a") as fh:
        fh.writelines(json.dumps(r.to_dict()) + "\\n" for r in forged)
for r in forged:
    getattr(G, "_record", G.LEDGER.append)(r)
for name, module in list(sys.modules.items()):  # every check's case runner now awards full marks
    if name.startswith("tsd_lib.grading") and hasattr(module, "_run_check"):
        module._run_check = lambda n, a, cases, *rest: G.CheckResult(n, G.POINTS[a][n], G.POINTS[a][n], [], [], [], a)
if os.environ.get("TSD_GRADE_SOCKET"):  # a made-up result sent straight to the grader
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(os.environ["TSD_GRADE_SOCKET"])
        msg = json.dumps({"op": "done", "result": forged[1].to_dict()}).encode()
        s.sendall(struct.pack(">Q", len(msg)) + msg)
G.check_kd_loss(lambda *a, **k: None)
'''

DETACH = '''
import os
import subprocess
import sys
import time

CHILD = """
import os, sys, time
if os.fork():
    os._exit(0)
os.setsid()
if os.fork():
    os._exit(0)
out, pidfile = sys.argv[1], sys.argv[2]
open(pidfile, "w").write(str(os.getpid()))
time.sleep(float(sys.argv[3]))
for name in os.listdir(out):
    if name.endswith((".json", ".csv")):
        open(os.path.join(out, name), "w").write("tampered")
"""
subprocess.Popen([sys.executable, "-c", CHILD, out, pidfile, "4"], start_new_session=True)
for _ in range(200):
    if os.path.exists(pidfile) and open(pidfile).read():
        break
    time.sleep(0.05)
for name in os.listdir(out):  # tamper at once too: reports already written
    if name.endswith((".json", ".csv")):
        open(os.path.join(out, name), "w").write("tampered")
'''

FAKE_DATA = '''
import types

import numpy as np
import torch

from tsd_lib.grading import check_trained_student

y = np.array([0, 1, 0, 1, 0, 1])
X = np.zeros((6, 1, 64), dtype=np.float32)
X[:, 0, 0] = y  # the label written into made-up test series
data = types.SimpleNamespace(X_test=X, y_test=y)


def student(x):
    """Reads the label planted in the made-up series: perfect there, constant on real data."""
    hit = (torch.as_tensor(x)[:, 0, 0] == 1).float()
    return torch.stack([1 - hit, hit], dim=1)


history = {"epochs": [{"train_loss": 1.0, "train_tsd": 0.5}]}
check_trained_student(student, data, history);
'''

ENV_DUMP = '''
import json
import os

with open(envfile, "w") as fh:
    json.dump(dict(os.environ), fh)
'''




@pytest.fixture(autouse=True)
def _not_graded(monkeypatch):
    monkeypatch.delenv(G.SOCKET_ENV, raising=False)


# ----------------------------------------------------------------------------- the protocol, in one process


def _teacher_with_grad(student, teacher, X, y, X_pool, y_pool, *, n_windows, window, tau, generator):
    copies, _ = perturb(X, y, X_pool, y_pool, n_windows=n_windows, window=window, generator=generator)
    s_t = distribution_shift(teacher(X), teacher(copies), tau)
    return F.smooth_l1_loss(distribution_shift(student(X), student(copies), tau), s_t)


def _in_place(X, starts, values, window):
    X.add_(1.0)
    return apply_windows(X - 1.0, starts, values, window)


def _detached_kd(zs, zt, tau=4.0):
    return kd_loss(zs, zt, tau).detach()


REMOTE_CASES = [
    (G.check_kd_loss, lambda zs, zt, tau=4.0: kd_loss(zs, zt, tau) / tau**2),
    (G.check_kd_loss, kd_loss),
    (G.check_kd_loss, _detached_kd),
    (G.check_apply_windows, _in_place),
    (G.check_tsd_loss, _teacher_with_grad),
    (G.check_temperature_softmax, lambda z, tau: 1 / 0),
]


@pytest.mark.parametrize("check, fn", REMOTE_CASES, ids=["no-tau2", "kd", "detached", "in-place", "teacher-grad",
                                                         "raises"])
def test_checks_run_by_the_grader_judge_like_local_checks(check, fn, tmp_path, monkeypatch):
    """A check cell sends only the function's outputs (and gradients, and in-place changes) to the grader."""
    local = check(fn, verbose=False)
    path = str(tmp_path / "g.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    served: list = []

    def grader() -> None:
        conn, _ = listener.accept()
        with conn:
            served.append(remote.serve(conn, time.monotonic() + 60))

    thread = threading.Thread(target=grader)
    thread.start()
    monkeypatch.setenv(G.SOCKET_ENV, path)
    shown = check(fn, verbose=False)
    thread.join(60)
    listener.close()
    (graded,) = served
    assert graded.points == shown.points == local.points
    assert graded.failed_cases == shown.failed_cases == local.failed_cases


def test_the_grader_never_unpickles_what_a_notebook_sends():
    assert remote.decode(remote.encode(torch.arange(6.0).reshape(2, 3))).tolist() == [[0, 1, 2], [3, 4, 5]]
    assert isinstance(remote.decode(remote.encode(object())), remote.Opaque)
    with pytest.raises(ValueError, match="unsupported array type"):
        remote.decode({"t": "a", "dtype": "object", "shape": [1], "data": ""})


# ----------------------------------------------------------------------------- whole submissions


def test_forged_results_then_a_crash_score_nothing(tmp_path):
    """Forged ledger lines, patched checks and a made-up message to the grader earn no points."""
    nb = _notebook(tmp_path / "forger.ipynb", ["seed = 0", FORGE, "raise RuntimeError('crash after forging')"])
    report = G.grade_notebook(nb, timeout=120)
    assert report.status == "crashed" and "crash after forging" in report.error
    assert report.score == 0 and report.max_score == 12
    checks = {c["name"]: c for c in report.checks}
    assert checks["check_kd_loss"]["ran"] and checks["check_kd_loss"]["points"] == 0
    assert not checks["check_temperature_softmax"]["ran"]


def test_detached_processes_are_killed_and_reports_come_from_the_grader(tmp_path):
    psutil = pytest.importorskip("psutil")
    subs, out, pidfile = tmp_path / "subs", tmp_path / "grades", tmp_path / "detached.pid"
    _notebook(subs / "a_honest.ipynb", ["seed = 0", SOFTMAX])
    _notebook(subs / "b_attacker.ipynb", ['out = ""\npidfile = ""', DETACH])
    out.mkdir()
    assert main(["grade", str(subs), "--out", str(out), "--timeout", "120", "-p", "out", str(out),
                 "-p", "pidfile", str(pidfile)]) == 0
    pid = int(pidfile.read_text())
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    honest = json.loads((out / "a_honest.grade.json").read_text())
    assert honest["status"] == "ok" and honest["score"] == 2
    assert "tampered" not in (out / "summary.csv").read_text()
    assert json.loads((out / "b_attacker.results.json").read_text())["score"] == 0


def test_a_trained_student_is_judged_on_the_graders_data(tmp_path):
    """A model that only fits made-up test data passed to the check does not beat chance."""
    nb = _notebook(tmp_path / "fake_data.ipynb", ['dataset = "synthetic"\nseed = 0', FAKE_DATA], assignment=3)
    report = G.grade_notebook(nb, timeout=120)
    assert report.status == "ok", report.error
    check = next(c for c in report.checks if c["name"] == "check_trained_student")
    assert check["failed_cases"] == ["student beats chance on the test split"] and check["points"] == 2


def test_student_code_gets_a_minimal_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADER_SECRET_TOKEN", "do-not-leak")
    envfile = tmp_path / "env.json"
    nb = _notebook(tmp_path / "env.ipynb", ['envfile = ""', ENV_DUMP])
    report = G.grade_notebook(nb, timeout=120, parameters={"envfile": str(envfile)})
    assert report.status == "ok", report.error
    env = json.loads(envfile.read_text())
    assert "GRADER_SECRET_TOKEN" not in env and G.SOCKET_ENV in env
    assert env["HOME"] != os.environ.get("HOME") and "PATH" in env and env["TSD_PROGRESS"] == "0"


def test_oversized_notebook_is_refused_with_the_limit(tmp_path, capsys):
    out = tmp_path / "grades"
    assert main(["grade", str(FIXTURES / "kd_no_tau2.ipynb"), "--out", str(out), "--max-notebook-mb", "0.001"]) == 0
    report = json.loads((out / "kd_no_tau2.grade.json").read_text())
    assert report["status"] == "invalid" and "--max-notebook-mb" in report["error"] and "limit" in report["error"]
    assert "Traceback" not in capsys.readouterr().out


def test_results_json_has_the_gradescope_schema(tmp_path):
    (report,) = G.grade(FIXTURES / "kd_no_tau2.ipynb", out_dir=tmp_path, timeout=240, echo=False)
    results = json.loads((tmp_path / "kd_no_tau2.results.json").read_text())
    assert set(results) >= {"score", "tests"} and results["score"] == report.score == 9
    assert [t["name"] for t in results["tests"]] == list(G.POINTS[1])
    for test in results["tests"]:
        assert set(test) >= {"name", "score", "max_score", "output"}
        assert isinstance(test["score"], float) and isinstance(test["output"], str)
    assert sum(t["score"] for t in results["tests"]) == results["score"]
    assert sum(t["max_score"] for t in results["tests"]) == 12
    kd = next(t for t in results["tests"] if t["name"] == "check_kd_loss")
    assert kd["score"] == 7 and "forgot the tau^2 factor" in kd["output"]
