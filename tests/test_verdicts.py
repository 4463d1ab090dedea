"""The claims engine (``analysis.verdicts``) on runs whose truth is known, the dataset-level statistics
(``analysis.stats``) against hand-computed and textbook values, and ``tsd claims``."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import yaml
from scipy import stats as st

from tsd_lib.analysis.stats import (
    bootstrap_ci,
    friedman,
    holm,
    min_attainable_p,
    nemenyi_cd,
    paired_effect,
    tolerant_ranks,
    wilcoxon_paired,
)
from tsd_lib.analysis.verdicts import (
    VERDICTS,
    claims,
    claims_by_arm,
    claims_frame,
    claims_json,
    claims_text,
    verdict_summary,
)
from tsd_lib.cli import main
from tsd_lib.paths import ARCHIVE_ROOT
from tsd_lib.report import records_to_frame

METHODS = ("ce", "kd", "fitnets", "at", "rkd", "dkd", "dt2w", "tsd", "kd+tsd", "dkd+tsd")


def _is_tsd(method: str) -> bool:
    return "tsd" in method.split("+")


def runs(n_datasets: int, tsd_shift: float, *, seeds: int = 3, noise: float = 0.003, arm=("T", "S"), rng_seed=0):
    """Records of every method on ``n_datasets`` x ``seeds``: the non-TSD methods spread by 0.01 per
    method, every TSD variant ``tsd_shift`` above the best of them (AUC-PR, agreement, saliency and
    insertion; KL and deletion below), seed noise of sd ``noise``."""
    rng = np.random.default_rng(rng_seed)
    out = []
    for d in range(n_datasets):
        level = 0.5 + 0.03 * d
        for j, method in enumerate(METHODS):
            spread = 0.01 * (j % 7) * (1 - 2 * (d % 2)) * 0.5  # non-TSD order changes with the dataset
            shift = tsd_shift if _is_tsd(method) else 0.0
            for s in range(seeds):
                e = rng.normal(0, noise)
                v = level + 0.04 + shift + e if _is_tsd(method) else level + spread + e
                out.append({
                    "dataset": f"D{d}", "method": method, "seed": s, "teacher": arm[0], "student": arm[1],
                    "weights": {"tsd": 1.0} if _is_tsd(method) else None, "auc_pr": v, "val_auc_pr": v,
                    "val_loss": 1 - v, "agreement": 0.8 + shift + e, "kl_teacher_student": 0.2 - shift - e,
                    "saliency_spearman": 0.3 + shift + e, "faith_student_teacher_deletion": 0.3 - shift - e,
                    "faith_student_teacher_insertion": 0.5 + shift + e, "faith_student_own_deletion": 0.3,
                })
    return out


def by(found, claim, comparison, metric=None):
    (row,) = [c for c in found if c.claim == claim and c.comparison.startswith(comparison)
              and metric in (None, c.metric)]
    return row


# ---- statistics: golden values ------------------------------------------------------------------------------

def test_wilcoxon_exact_small_cases_by_hand():
    r = wilcoxon_paired([1, 2, 3, 4, 5], [0] * 5, resolution=1e-3)
    assert (r.statistic, r.n, r.n_ties) == (15, 5, 0) and r.p == pytest.approx(2 / 32)
    assert r.min_attainable_p == pytest.approx(0.0625) and r.direction == 1
    # d = -1, 2..5: W+ = 14; {2,3,4,5} and {1..5} reach >= 14, so one-sided 2/32, two-sided 4/32
    r = wilcoxon_paired([-1, 2, 3, 4, 5], [0] * 5, resolution=1e-3)
    assert r.statistic == 14 and r.p == pytest.approx(0.125)
    assert wilcoxon_paired([-1, 2, 3, 4, 5], [0] * 5, resolution=1e-3, alternative="greater").p == pytest.approx(2 / 32)
    # tied |d|: d = 1, -1, 2, 3 -> mid-ranks 1.5, 1.5, 3, 4; W+ = 8.5, reached by 3 of 16 sign patterns
    r = wilcoxon_paired([1, -1, 2, 3], [0, 0, 0, 0], resolution=1e-3)
    assert r.statistic == 8.5 and r.p == pytest.approx(6 / 16)
    # |d| below the resolution is a tie: dropped, never a win
    r = wilcoxon_paired([0.0005, 1, 2, 3], [0, 0, 0, 0], resolution=1e-3)
    assert (r.n, r.n_ties) == (3, 1) and r.p == pytest.approx(2 / 8) and r.min_attainable_p == pytest.approx(0.25)
    r = wilcoxon_paired([0.0004] * 8, [0] * 8, resolution=1e-3)
    assert (r.n, r.p, r.direction) == (0, 1.0, 0)
    assert min_attainable_p(0) == 1.0 and min_attainable_p(1) == 1.0 and min_attainable_p(5, "less") == 1 / 32


def test_wilcoxon_matches_scipy_exact_without_ties():
    d = np.random.default_rng(3).normal(0.3, 1, 11)
    ours = wilcoxon_paired(d, np.zeros(11), resolution=0)
    assert ours.p == pytest.approx(st.wilcoxon(d, method="exact").pvalue)
    assert ours.statistic == pytest.approx(st.wilcoxon(d, method="exact", alternative="greater").statistic)


def test_holm_on_a_known_vector():
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> monotone 0.02, 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    out = holm([0.5, math.nan, 0.01])
    assert math.isnan(out[1]) and out[[0, 2]] == pytest.approx([0.5, 0.02])


def test_friedman_on_demsar_2006_table_6():
    # AUC of C4.5 / +m / +cf / +m+cf on 14 UCI sets; the table prints "voting" rounded to 0.975, 0.975,
    # the paper's ranks (3.143, 2.000, 2.893, 1.964) need C4.5+cf just above, hence 0.97501
    auc = np.array([
        [.763, .768, .771, .798], [.599, .591, .590, .569], [.954, .971, .968, .967], [.628, .661, .654, .657],
        [.882, .888, .886, .898], [.936, .931, .916, .931], [.661, .668, .609, .685], [.583, .583, .563, .625],
        [.775, .838, .866, .875], [1, 1, 1, 1], [.940, .962, .965, .962], [.619, .666, .614, .669],
        [.972, .981, .97501, .975], [.957, .978, .946, .970]])
    r = friedman(auc)
    assert r.ranks.to_numpy() == pytest.approx([3.143, 2.000, 2.893, 1.964], abs=1e-3)
    assert (round(r.chi2, 2), round(r.f, 2), round(r.cd, 2)) == (9.28, 3.69, 1.25)
    assert r.f_p < 0.05 and (r.n, r.k) == (14, 4)
    assert nemenyi_cd(10, 1) / math.sqrt(10 * 11 / 6) == pytest.approx(3.164, abs=1e-3)  # Demšar's q for k = 10
    alike = friedman(np.tile([3.0, 2.0, 1.0], (5, 1)))
    assert alike.ranks.tolist() == [1, 2, 3] and math.isinf(alike.f) and alike.f_p == 0.0
    near = friedman([[1.0, 1.0004, 0.5], [1.0, 1.0004, 0.5]], resolution=1e-3)  # closer than the resolution: tied
    assert near.ranks.tolist() == [1.5, 1.5, 3]
    x = np.random.default_rng(0).integers(0, 4, (20, 6)).astype(float)  # with ties: the usual mid-ranks
    assert tolerant_ranks(x) == pytest.approx(st.rankdata(-x, axis=1))
    with pytest.raises(ValueError, match="2 complete datasets"):
        friedman([[1.0, 2.0], [np.nan, 1.0]])


def test_bootstrap_intervals():
    assert bootstrap_ci([2.0] * 6) == (2.0, 2.0)
    low, high = bootstrap_ci(np.arange(20.0), np.mean)
    assert low < 9.5 < high and (low, high) == bootstrap_ci(np.arange(20.0), np.mean)
    assert math.isnan(bootstrap_ci([])[0])
    value, low, high = paired_effect([1.1, 2.2, 3.3], [1, 2, 3], relative=True)
    assert value == pytest.approx(10) and low == pytest.approx(10) and high == pytest.approx(10)


# ---- the engine on runs whose truth is known -----------------------------------------------------------------

@pytest.fixture(scope="module")
def better():
    return claims(records_to_frame(runs(12, 0.1)))


def test_clearly_better_tsd_is_supported(better):
    assert by(better, "1", "tsd vs").verdict == "supported"
    assert by(better, "1", "all 10").p < 0.05  # Friedman rejects; Nemenyi's CD (3.9 ranks) is not reached
    gain = by(better, "2", "tsd vs ce")
    assert gain.verdict == "supported" and gain.n_datasets == 12 and gain.p == pytest.approx(2 / 2**12)
    assert gain.p_adjusted == pytest.approx(3 * 2 / 2**12) and gain.effect.ci_low > 3.7
    assert "outside the median's" in gain.note and "36 of 36 (dataset, seed) pairs" in gain.consistency
    assert all(c.verdict == "supported" for c in better if c.claim == "3")
    objective = by(better, "4", "tsd vs ce", "saliency Spearman (occlusion)")
    assert objective.note.startswith("the quantity TSD optimises") and not objective.decides
    ig = "integrated-gradients saliency Spearman"
    assert [c.verdict for c in better if c.metric == ig] == ["too few datasets"] * 3
    summary = verdict_summary(better)
    assert summary.tolist() == ["supported"] * 4 and set(summary.index) == {c.statement for c in better}


def test_identical_methods_are_inconclusive_and_ties_never_better():
    records = runs(12, 0.0, noise=0.0)
    for r in records:  # every TSD variant a hair (below the resolution) above CE's value on every run
        r.update({k: v for k, v in next(x for x in records if x["dataset"] == r["dataset"] and x["method"] == "ce"
                                        and x["seed"] == r["seed"]).items() if k not in ("method", "weights")})
        if _is_tsd(r["method"]):
            r["auc_pr"] += 0.0004
    found = claims(records_to_frame(records))
    gain = by(found, "2", "tsd vs ce")
    assert gain.verdict == "inconclusive" and gain.p == 1.0
    assert gain.consistency.startswith("tsd better than ce on 0 of 36 (dataset, seed) pairs (36 ties")
    assert all(c.verdict == "inconclusive" for c in found if c.n_datasets)
    assert set(verdict_summary(found)) == {"inconclusive"}


def test_clearly_worse_tsd_is_contradicted():
    found = claims(records_to_frame(runs(12, -0.2)))
    assert {by(found, "1", v).verdict for v in ("tsd vs", "kd+tsd vs", "dkd+tsd vs")} == {"contradicted"}
    assert by(found, "2", "kd+tsd vs kd").verdict == "contradicted"
    assert set(verdict_summary(found)) == {"contradicted"}


def test_five_datasets_are_too_few():
    found = claims(records_to_frame(runs(5, 0.1)))
    assert all(c.verdict == "too few datasets" for c in found if c.decides)
    assert set(verdict_summary(found)) == {"too few datasets"}
    assert by(found, "2", "tsd vs ce").p == pytest.approx(0.0625)  # every dataset agrees: still 2/2**5


def test_tables_json_and_arms(better):
    frame = claims_frame(better)
    assert len(frame) == len(better) and "p (Holm)" in frame and "n_datasets" not in frame
    assert set(frame["verdict"]) <= set(VERDICTS)
    rows = claims_json(better)
    json.dumps(rows, allow_nan=False)
    assert rows[0]["effect"]["name"].startswith("mean rank lead") and any(r["p"] is None for r in rows)
    assert "=> SUPPORTED" in claims_text(better)
    two = records_to_frame(runs(6, 0.1) + runs(6, 0.1, arm=("fcn", "fcn_small"), rng_seed=1))
    with pytest.raises(ValueError, match="claims_by_arm"):
        claims(two)
    arms = claims_by_arm(two)
    assert list(arms) == ["T -> S", "fcn -> fcn_small"] and all(len(v) == len(better) for v in arms.values())


# ---- tsd claims ------------------------------------------------------------------------------------------------

def tiny_runs(tmp_path, shift=0.1):
    """A tiny profile (7 datasets, CE and TSD at two weights, two seeds) written to ``tmp_path/p.yaml``
    and a converged record per run, TSD ``shift`` above CE: ``[(config, record)]``."""
    from tsd_lib.profiles import load_profile

    spec = {"name": "tiny-claims", "datasets": ["ItalyPowerDemand", "ECGFiveDays", "CBF", "Beef", "BeetleFly",
                                                 "GunPoint", "Coffee"],
            "methods": ["ce", "tsd"], "seeds": [0, 1], "tsd_weights": [0.1, 1.0], "teacher": "fcn_small",
            "student": "fcn_small", "epochs": 2}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(spec))
    from tsd_lib.experiment import data_fingerprint

    def fingerprint(c):  # the data the records stand for, where it loads here
        try:
            return data_fingerprint(c)
        except ValueError:
            return None

    out = []
    for i, c in enumerate(load_profile(tmp_path / "p.yaml").configs()):
        v = 0.6 + 0.01 * (i % 5) + (shift + (c.weights or {}).get("tsd", 0) / 100 if c.method == "tsd" else 0)
        out.append((c, {**c.to_dict(), "key": c.key(), "code": "test", "data_fingerprint": fingerprint(c),
                        "stopped_early": True, "epochs_run": 2,
                        "best_epoch": 1, "auc_pr": v, "val_auc_pr": v, "val_loss": 1 - v, "agreement": v,
                        "kl_teacher_student": 1 - v}))
    return out


def write_archive(folder, tmp_path, runs=True):
    """The tiny runs as an archive (its manifest only when not ``runs``)."""
    made = tiny_runs(tmp_path)
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps({"profile": str(tmp_path / "p.yaml")}))
    lines: dict[str, list[str]] = {}
    for c, record in made if runs else []:
        entry = {"kind": "run", "key": c.key(), "config": c.to_dict(), "record": record}
        lines.setdefault(c.dataset, []).append(json.dumps(entry))
    for dataset, rows in lines.items():
        (folder / f"{dataset}.jsonl").write_text("\n".join(rows) + "\n")


def test_cli_claims_on_a_tiny_archive(tmp_path, capsys):
    write_archive(tmp_path / "arch", tmp_path)
    assert main(["claims", "--archive", str(tmp_path / "arch"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["arm"] for r in rows} == {"fcn_small -> fcn_small"}
    gain = next(r for r in rows if r["claim"] == "2" and r["comparison"] == "tsd vs ce")
    assert gain["verdict"] == "supported" and gain["n_datasets"] == 7
    assert next(r for r in rows if r["comparison"] == "kd+tsd vs kd")["verdict"] == "too few datasets"
    assert main(["claims", "--archive", str(tmp_path / "arch")]) == 0
    assert "tsd vs ce" in capsys.readouterr().out


def test_cli_claims_on_a_profile_in_a_store(tmp_path, capsys):
    made = tiny_runs(tmp_path)
    for c, record in made[:-1]:  # one run missing: a warning, the rest still read
        (tmp_path / "store" / "runs" / c.key()).mkdir(parents=True)
        (tmp_path / "store" / "runs" / c.key() / "record.json").write_text(json.dumps(record))
    assert main(["claims", "--profile", str(tmp_path / "p.yaml"), "--store", str(tmp_path / "store")]) == 0
    out = capsys.readouterr()
    assert "1 of 42 runs of profile tiny-claims are missing" in out.err
    assert "== fcn_small -> fcn_small (profile tiny-claims" in out.out and "tsd vs ce" in out.out


def test_cli_claims_user_mistakes_are_one_line(tmp_path, capsys):
    assert main(["claims", "--archive", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no results archive" in err and "Traceback" not in err
    write_archive(tmp_path / "empty", tmp_path, runs=False)
    assert main(["claims", "--archive", str(tmp_path / "empty")]) == 2
    assert "no method whose every run is in" in capsys.readouterr().err
    assert main(["claims", "--archive", "paper", "--profile", "smoke"]) == 2


def test_cli_claims_on_the_committed_archive_supports_nothing(capsys, monkeypatch):
    """results/paper holds 5 complete datasets: 2/2**5 > 0.05, so no comparison on them can be supported."""
    monkeypatch.chdir(ARCHIVE_ROOT.parent)
    assert main(["claims", "--archive", "results/paper", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    few = [r for r in rows if 0 < r["n_datasets"] <= 5]
    assert rows and not [r for r in few if r["verdict"] == "supported"]
    assert all(r["verdict"] == "too few datasets" for r in few if r["decides"])
