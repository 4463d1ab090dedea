"""The results archive: export, lookups across code versions, ``tsd verify``, the committed studies."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from tsd_lib.analysis.teacher_views import choose_seed, matching_candidates
from tsd_lib.cli import main
from tsd_lib.experiment import RunConfig, RunStore, StoreWarning, data_fingerprint
from tsd_lib.profiles import load_profile
from tsd_lib.runs.archive import (
    Archive,
    Records,
    archive_dir,
    extension,
    extension_chain,
    resolve_teachers,
    study_source,
    teacher_chain,
)
from tsd_lib.runs.archive_making import (
    _Known,
    export_archive,
    extensions_to_train,
    make_archive,
    teacher_extensions_to_train,
)
from tsd_lib.runs.grid import run_grid
from tsd_lib.runs.verify import choose

TINY = {
    "name": "tiny", "description": "two runs and a two-seed teacher study",
    "datasets": ["ItalyPowerDemand"], "methods": ["ce", "kd+tsd"], "seeds": [0],
    "teacher": "fcn", "student": "fcn_small", "epochs": 2, "patience": 2, "teacher_epochs": 2,
    "n_windows": 2, "window": 5, "tsd_bank_size": 4, "saliency_eval_series": 4,
    "teacher_study": {"name": "FCN", "dataset": "ItalyPowerDemand", "seeds": [0, 1]},
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny profile, its store and its archive (made once for the module)."""
    root = tmp_path_factory.mktemp("archive")
    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    profile = load_profile(path)
    store = RunStore(root / "store")
    summary = make_archive(profile, store, root / "out", command="tsd archive --profile tiny.yaml", show_progress=False)
    assert summary.failed == 0
    return profile, store, root / "out"


def test_export_holds_every_record_with_its_config(tiny):
    profile, store, out = tiny
    archive = Archive.load(out)
    assert len(archive.records()) == 2 and len(archive.teacher_records()) == 2
    for config in profile.configs():
        assert archive.load_record(config) == store.load_record(config)
    for config in profile.teacher_configs():
        assert archive.has_teacher(config)
        assert archive.load_teacher_record(config) == store.load_teacher_record(config)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["runs"] == 2 and manifest["teachers"] == 2 and manifest["missing"] == 0
    assert "tsd archive --profile tiny.yaml" in (out / "README.md").read_text()
    here = manifest["machine"]
    assert manifest["datasets"] == {"ItalyPowerDemand": {"runs": 2, "of": 2, "continuations": 0, "teachers": 2,
                                                         "machines": [here]}}
    assert manifest["machines"] == [here]
    assert "| ItalyPowerDemand | 2 of 2 | 0 | 2 |" in (out / "README.md").read_text()
    assert not archive.stale
    facts = archive.facts()  # what a chapter glues: every record made by the current code
    assert (facts["profile"], facts["runs"], facts["teachers"], facts["earlier"]) == ("tiny", 2, 2, "none")
    assert (facts["own"], facts["certified"], facts["stale"], facts["stale_methods"]) == (4, 0, 0, "none")
    assert all(type(v) in (int, str) for v in facts.values())
    missing = profile.base_config("ItalyPowerDemand", method="kd", seed=5)
    assert not archive.has(missing)
    with pytest.raises(FileNotFoundError, match="not in the archive"):
        archive.load_record(missing)


def test_records_are_found_after_the_code_changed_and_marked_stale(tiny, monkeypatch):
    profile, _, out = tiny
    config = profile.configs()[0]
    before = config.key()
    monkeypatch.setattr("tsd_lib.experiment.config.results_digest", lambda: "0000000000000000")
    monkeypatch.setattr("tsd_lib.runs.certification.results_digest", lambda: "0000000000000000")
    assert config.key() != before  # a run store would retrain it ...
    archive = Archive.load(out)
    assert archive.has(config) and archive.stale  # ... the archive still shows it, marked as made by other code
    facts = archive.facts()
    assert facts["code"] == "0000000000000000" and facts["earlier"] == archive.load_record(config)["code"]
    assert (facts["own"], facts["certified"], facts["stale"]) == (0, 0, 4)  # nothing certified: all stale
    assert facts["stale_methods"] == "ce, kd+tsd, teachers"


def test_export_again_is_identical(tiny, tmp_path):
    profile, store, out = tiny
    export_archive(profile, store, tmp_path, command="tsd archive --profile tiny.yaml")
    for file in out.glob("*.jsonl"):
        assert (tmp_path / file.name).read_bytes() == file.read_bytes()


def test_verify_reproduces_and_catches_a_changed_number(tiny, tmp_path, capsys):
    _, _, out = tiny
    assert main(["verify", "--archive", str(out), "--sample", "2"]) == 0
    printed = capsys.readouterr().out
    assert "2 of 2 runs match" in printed and "another CPU" not in printed and "made on this CPU" in printed
    forged = tmp_path / "forged"
    forged.mkdir()
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["datasets"]["ItalyPowerDemand"]["machines"] = [{"cpu": "Other CPU", "cores": 2}]
    (forged / "manifest.json").write_text(json.dumps(manifest))
    lines = []
    for line in (out / "ItalyPowerDemand.jsonl").read_text().splitlines():
        entry = json.loads(line)
        if entry["kind"] == "run":
            entry["record"]["accuracy"] += 0.1
        lines.append(json.dumps(entry))
    (forged / "ItalyPowerDemand.jsonl").write_text("\n".join(lines))
    key = next(json.loads(x)["key"] for x in lines if json.loads(x)["kind"] == "run")
    assert main(["verify", "--archive", str(forged), "--key", key[:8]]) == 1
    printed = capsys.readouterr().out
    assert "0 of 1 runs match" in printed and "1 of the 1 runs belong to datasets made in whole or in part on " \
        "another CPU (Other CPU)" in printed
    assert main(["verify", "--archive", str(forged), "--sample", "1", "--cpu", "here"]) == 2  # no dataset made here
    assert "names no dataset made on this CPU" in capsys.readouterr().err
    assert main(["verify", "--archive", str(out), "--sample", "1", "--cpu", "here"]) == 0
    assert "1 of 1 runs match" in capsys.readouterr().out
    assert main(["verify", "--archive", str(forged), "--key", "ffffffff"]) == 2
    assert main(["verify", "--archive", str(tmp_path / "none"), "--sample", "1"]) == 2


def test_verify_samples_the_datasets_this_cpu_made(tiny, tmp_path):
    _, _, out = tiny
    manifest = json.loads((out / "manifest.json").read_text())
    here = manifest["machine"]
    manifest["datasets"]["Elsewhere"] = {**manifest["datasets"]["ItalyPowerDemand"],  # made here and elsewhere
                                         "machines": [here, {"cpu": "Other CPU", "cores": 2}]}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "ItalyPowerDemand.jsonl").write_text((out / "ItalyPowerDemand.jsonl").read_text())
    moved = [json.loads(line) for line in (out / "ItalyPowerDemand.jsonl").read_text().splitlines()]
    for entry in moved:
        entry["config"]["dataset"], entry["key"] = "Elsewhere", "e" + entry["key"][1:]
    (tmp_path / "Elsewhere.jsonl").write_text("\n".join(json.dumps(e) for e in moved))
    mixed = Archive.load(tmp_path)
    entries, made, notes = choose(mixed, 4, seed=3)  # auto: only the runs this CPU made
    assert {e["config"]["dataset"] for e in entries} == {"ItalyPowerDemand"} and len(entries) == 2
    assert made == {"ItalyPowerDemand": True} and "the 1 of 2 datasets made on this CPU" in notes[0]
    entries, made, notes = choose(mixed, 4, seed=3, cpu="any")
    assert {e["config"]["dataset"] for e in entries} == {"ItalyPowerDemand", "Elsewhere"} and len(entries) == 4
    assert made == {"ItalyPowerDemand": True, "Elsewhere": False} and len(notes) == 1
    assert "2 of the 4 runs belong to datasets made in whole or in part on another CPU (Other CPU)" in notes[0]
    key = next(e["key"] for e in moved if e["kind"] == "run")
    entries, _, notes = choose(mixed, None, keys=[key])  # a named run is re-run whatever made it
    assert [e["key"] for e in entries] == [key] and "another CPU" in notes[0]
    with pytest.raises(ValueError, match="--cpu must be one of"):
        choose(mixed, 1, cpu="mine")


def test_a_damaged_archive_line_is_named(tiny, tmp_path):
    _, _, out = tiny
    (tmp_path / "manifest.json").write_text((out / "manifest.json").read_text())
    (tmp_path / "X.jsonl").write_text('{"kind": "run"}\n')
    with pytest.raises(ValueError, match=r"X.jsonl, line 1"):
        Archive(tmp_path)


def test_ablation_axes_include_the_base_runs_once():
    profile = load_profile("studies")
    axes = profile.ablation_axes()
    _, seeds, _, spec = profile.ablation_spec()
    for axis, values in spec.items():
        rows = [(v, c) for a, v, c in axes if a == axis]
        base = profile.ablation_base(seeds[0])
        own = base.terms["tsd"] if axis == "tsd_weight" else getattr(base, axis)
        assert sorted({v for v, _ in rows}, key=str) == sorted({own, *values}, key=str)
        assert len(rows) == len(seeds) * len({own, *values})
    keys = [c.key() for c in profile.ablation_configs()]
    assert len(keys) == len(set(keys))


# The committed archive of the studies profile, which the quick book reads.

def test_studies_share_the_quick_settings(tmp_path):
    quick, studies = load_profile("quick"), load_profile("studies")
    assert quick.run == studies.run and quick.seeds == studies.seeds and quick.datasets == studies.datasets
    profile, source = study_source(quick, RunStore(tmp_path))
    assert profile.name == "studies" and isinstance(source, Records)
    config = profile.ablation_configs()[0]
    assert source.from_archive([config]) == [config]  # an empty store: the archive answers


def test_committed_studies_archive_is_complete():
    profile, archive = load_profile("studies"), Archive.load("studies")
    assert archive.path == archive_dir("studies")
    missing = [c for c in profile.configs() if not archive.has(c)]
    missing += [t for t in profile.teacher_configs() if not archive.has_teacher(t)]
    assert not missing, f"{len(missing)} studies runs not archived: rerun `tsd archive --profile studies`"


def test_committed_paper_archive_holds_the_required_sets_converged():
    from tsd_lib.analysis.paper_views import load_paper_archive

    paper = load_paper_archive("paper")
    assert paper.archive.profile == "paper-offline" and paper.profile.results_name == "paper"
    required = {"ItalyPowerDemand", "BeetleFly", "Beef", "CBF", "ECGFiveDays"}
    settled = {(r["dataset"], r["method"]) for r in paper.by_method["main"]}
    waiting = {(d, m) for d, m, done in zip(paper.extensions["dataset"], paper.extensions["method"],
                                           paper.extensions["stopped early"], strict=True) if not done}
    ready = required - {d for d, _ in waiting}  # sets with no run awaiting a continuation
    defaults = [r for r in paper.defaults if r["dataset"] in required]
    assert ready <= {r["dataset"] for r in defaults} and len(ready) >= 3
    assert len(defaults) == 10 * 5 * len({r["dataset"] for r in defaults})  # every method untuned, 5 seeds
    for group in ((d, m) for d in required for m in ("tsd", "kd+tsd", "dkd+tsd")):  # 5 weights x 5 seeds each
        assert group in settled or group in waiting, f"{group}: neither archived whole nor awaiting a continuation"
    assert sum(r["method"] == "tsd" for r in paper.by_method["main"] if r["dataset"] in required) == 25 * 5
    assert all(r["stopped_early"] for r in paper.by_method["main"] + paper.defaults), "a reported run is capped"
    assert all(r["stopped_early"] for r in paper.records if r["dataset"] in ready)  # the complete, settled sets
    continued = paper.extensions[paper.extensions["dataset"].isin(ready)]
    assert len(continued) and continued["stopped early"].all()  # sets with no run awaiting one: all converged
    runs = resolve_teachers([c for c in paper.profile.main_configs() if c.dataset in set(paper.complete) & ready],
                            paper.archive.has_teacher, paper.archive.load_teacher_record)  # continued teachers
    assert all(paper.archive.faithfulness(c) is not None or not paper.archive.load_record(c)["stopped_early"]
               for c in runs)  # every converged run carries its faithfulness
    assert set(paper.profile.configs()) <= set(load_profile("paper").configs())  # the paper profile's own runs


def test_committed_paper_archive_distils_each_arm_from_one_teacher_per_dataset():
    """Every run of an arm on a dataset learned from the same teacher weights (seed and test metrics), and
    that teacher is archived beside them."""
    archive = Archive.load(archive_dir("paper"))
    seen: dict[tuple[str, str], set[tuple]] = {}
    for r in archive.records():
        seen.setdefault((r["dataset"], r["teacher"]), set()).add(
            (r["teacher_seed_chosen"], r["teacher_accuracy"], r["teacher_auc_pr"]))
    assert {k: v for k, v in seen.items() if len(v) > 1} == {}
    teachers = {(t["dataset"], t["teacher"], t["teacher_seed"], t["test_accuracy"], t["test_auc_pr"])
                for t in archive.teacher_records()}
    assert all((*k, *next(iter(v))) in teachers for k, v in seen.items())


def test_quick_lstm_teacher_seed_is_the_one_validation_picks_in_the_archive():
    quick, studies = load_profile("quick"), load_profile("studies")
    pair = quick.pair_configs("lstm")[0]
    candidates = matching_candidates(pair, studies.teacher_study_configs())
    assert len(candidates) == 5 and all(c.teacher == "lstm_teacher" and c.dataset == "GunPoint" for c in candidates)
    assert choose_seed(candidates, Archive.load("studies")) == pair.teacher_seed


def test_exported_entries_carry_no_machine_paths(tiny):
    from tsd_lib.runs.archive_making import _portable

    assert _portable({"data_dir": "/some/where", "a": 1}) == {"data_dir": None, "a": 1}
    _, _, out = tiny
    for entry in Archive.load(out).entries:
        assert entry["config"].get("data_dir") is None and entry["record"].get("data_dir") is None


def test_each_dataset_names_the_machines_that_made_its_records(tiny, tmp_path, monkeypatch):
    """An export on another machine keeps the machine that made the records it keeps (a manifest older than
    per-dataset machines names one for all) and adds its own for the records it exports."""
    import shutil

    from tsd_lib.runs import archive_making

    profile, store, out = tiny
    old, new = ({"cpu": f"{name} CPU", "cores": 2, "gpu": None, "system": "Linux"} for name in ("Old", "New"))
    archive = _copy(out, tmp_path / "arch")
    manifest = json.loads((archive / "manifest.json").read_text())
    manifest["machine"] = old
    for d in manifest["datasets"].values():
        del d["machines"]
    (archive / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setattr(archive_making, "machine", lambda: new)
    partial = RunStore(tmp_path / "partial")  # this machine trained one of the two runs again, and no teacher
    shutil.copytree(store.run_dir(profile.configs()[0]), partial.run_dir(profile.configs()[0]))
    manifest = export_archive(profile, partial, archive)
    assert manifest["datasets"]["ItalyPowerDemand"]["machines"] == [old, new] and manifest["machines"] == [old, new]
    assert "Machines: Old CPU, 2 cores, no GPU (ItalyPowerDemand); New CPU, 2 cores, no GPU (ItalyPowerDemand)" \
        in (archive / "README.md").read_text()
    assert Archive.load(archive).facts()["machine"] == "Old CPU (2 cores) and New CPU (2 cores)"
    manifest = export_archive(profile, RunStore(tmp_path / "empty"), archive)  # a fresh machine: every record kept
    assert manifest["machines"] == [old, new]
    manifest = export_archive(profile, store, archive)  # every record exported again here
    assert manifest["datasets"]["ItalyPowerDemand"]["machines"] == [new]
    assert "- Machine: New CPU, 2 cores, no GPU\n" in (archive / "README.md").read_text()


def test_paper_archive_coverage_results_and_cost(tmp_path):
    from tsd_lib.analysis.paper_cost import coverage_and_cost
    from tsd_lib.analysis.paper_views import (
        faithfulness_table,
        load_paper_archive,
        paper_results,
        weights_view,
    )
    from tsd_lib.runs.grid import measure_faithfulness

    spec = {"name": "tiny-paper", "datasets": ["ItalyPowerDemand", "synthetic"], "methods": ["ce", "tsd"],
            "seeds": [0, 1], "tsd_weights": [0.1, 10.0], "teacher": "fcn_small", "student": "fcn_small", "epochs": 2,
            "patience": 2, "teacher_epochs": 2, "n_windows": 2, "window": 5, "tsd_bank_size": 4,
            "saliency_eval_series": 4}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(spec))
    profile = load_profile(tmp_path / "p.yaml")
    store = RunStore(tmp_path / "store")
    ipd = [c for c in profile.configs() if c.dataset == "ItalyPowerDemand"]
    assert run_grid(ipd, store, show_progress=False).failed == 0  # one dataset of two
    export_archive(profile, store, tmp_path / "out")
    assert faithfulness_table(load_paper_archive(path=tmp_path / "out", profile=profile)).empty  # none measured yet
    assert measure_faithfulness(ipd, store, show_progress=False).done == 6
    export_archive(profile, store, tmp_path / "out")
    assert load_paper_archive("tiny-paper", path=tmp_path / "none", profile=profile) is None
    paper = load_paper_archive("tiny-paper", path=tmp_path / "out", profile=profile)
    assert paper.complete == ["ItalyPowerDemand"] and len(paper.records) == 6  # ce x 2 seeds + tsd x 2 weights x 2
    assert paper.coverage.loc["Synthetic", "runs"] == "0 / 6"
    assert paper.coverage.loc["ItalyPowerDemand", "teachers"] == "1 / 1"
    results = paper_results(paper)
    assert list(results["summary"].mean.columns) == ["ce", "tsd"]
    assert list(results["weights"].columns) == ["tsd weight", "teacher seed"]
    assert results["weights"].loc["ItalyPowerDemand"].tolist() in ([0.1, 0], [10.0, 0])
    weights = weights_view(results["weights"])
    assert list(weights.columns) == ["TSD weight chosen, TSD", "teacher seed"] and weights.index.name == "dataset"
    assert weights.loc["ItalyPowerDemand"].tolist() in (["0.1", "0"], ["10", "0"])  # as the profile writes them
    assert (results["inflation"]["inflation"] >= 0).all()
    assert set(results["wtl"]["baseline"]) == {"ce"} and results["wtl"]["n_datasets"].tolist() == [1]
    full = load_profile(tmp_path / "p.yaml")
    full.datasets = ["ItalyPowerDemand", "ECGFiveDays", "Synthetic"]  # Synthetic: no UCR size, left out
    table, numbers = coverage_and_cost(paper, full)
    assert list(table.index) == ["ItalyPowerDemand", "ECGFiveDays"]
    assert table.loc["ItalyPowerDemand", "complete"] and np.isnan(table.loc["ItalyPowerDemand", "CPU hours (expected)"])
    # ECGFiveDays: the same runs and teachers, 23 series x 100 steps (resampled from 136) vs ItalyPowerDemand's
    # 67 x 24, so its estimate is the measured hours scaled by the work units
    measured = sum(r["train_seconds"] for r in [*paper.archive.records(), *paper.archive.teacher_records()]) / 3600
    assert table.loc["ItalyPowerDemand", "CPU hours (measured)"] == pytest.approx(measured)
    assert table.loc["ECGFiveDays", "CPU hours (expected)"] == pytest.approx(measured * (23 * 100) / (67 * 24))
    assert np.isnan(table.loc["ECGFiveDays", "CPU hours (high)"])  # one complete dataset: nothing to check on
    assert {k: numbers[k] for k in ("complete", "datasets", "rest", "length", "checked")} == \
        {"complete": 1, "datasets": 2, "rest": 1, "length": 100, "checked": 0}
    assert numbers["hours"] == pytest.approx(table.loc["ECGFiveDays", "CPU hours (expected)"])
    assert numbers["measured"] == pytest.approx(measured)
    faith = faithfulness_table(paper)
    assert list(faith.index) == ["teacher", "ce", "tsd"] and faith.loc["ce"].between(0, 1).all()
    assert faith.loc["teacher"].isna().tolist() == [False, True, False, True]  # the teacher has only its own ranking
    assert paper.claim_records == [] and paper.defaults == []  # 2 epochs: every run capped, none compared


def test_capped_runs_are_continued_and_the_chain_is_archived(tmp_path):
    from tsd_lib.analysis.paper_views import extension_numbers, load_paper_archive

    spec = {"name": "capped", "datasets": ["ItalyPowerDemand"], "methods": ["ce"], "seeds": [0],
            "teacher": "fcn_small", "student": "fcn_small", "epochs": 2, "patience": 50, "teacher_epochs": 2,
            "saliency_eval_series": 4, "extend_to": 8}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(spec))
    profile = load_profile(tmp_path / "c.yaml")
    store = RunStore(tmp_path / "store")
    assert make_archive(profile, store, tmp_path / "out", show_progress=False).failed == 0
    (config,) = resolve_teachers(profile.configs(), store.has_teacher, store.load_teacher_record)
    chain = extension_chain(config, store.has, store.load_record)
    assert [c.epochs for c in chain] == [2, 4, 8]  # patience 50: the cap ends each; 16 would pass extend_to
    assert extensions_to_train([config], store, 8) == [] and extensions_to_train([config], store, 16)[0].epochs == 16
    first, second = (store.load_history(c)["epochs"] for c in chain[:2])
    assert second[:2] == [{**e, "seconds": second[i]["seconds"]} for i, e in enumerate(first)]  # the same start
    archive = Archive.load(tmp_path / "out")
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["runs"] == 1 and manifest["extensions"] == 2
    extends = sorted(str(e.get("extends")) for e in archive.entries if e["kind"] == "run")
    assert extends == sorted([config.key()] * 2 + ["None"])
    assert archive.converged_record(config)["epochs_run"] == 8
    assert archive.faithfulness(chain[-1])["key"] == chain[-1].key() and archive.faithfulness(config) is None
    paper = load_paper_archive(path=tmp_path / "out", profile=profile)
    (record,) = paper.records
    assert record["epochs"] == 2 and record["extended_to"] == 8 and paper.n_capped == 1
    row = paper.extensions.iloc[0]
    assert (row["cap"], row["continued to"], row["stopped early"]) == (2, 8, False)
    assert extension_numbers(paper) == {"capped": 1, "methods": "ce", "continued": 1, "waiting": 0, "settled": 0,
                                        "longest": 8, "max_change": pytest.approx(abs(row["change"])),
                                        "mean_change": pytest.approx(row["change"]), "still_capped": 1}
    (path,) = (tmp_path / "out").glob("*.jsonl")  # the first run leaves the archive (it is to be retrained):
    path.write_text("\n".join(line for line in path.read_text().splitlines()
                               if '"extends"' in line or '"kind": "teacher"' in line) + "\n")
    kept = export_archive(profile, RunStore(tmp_path / "empty"), tmp_path / "out")
    assert (kept["runs"], kept["extensions"]) == (0, 2)  # its continuations are still the profile's: kept


@pytest.fixture
def other_code(tmp_path, monkeypatch):
    """The results code digest as after an edit of a results module (the code itself unchanged)."""
    import tsd_lib.provenance as provenance

    edit = tmp_path / "edited_module.py"
    edit.write_text("EDITED = True\n")
    files = provenance._result_files
    provenance.results_digest.cache_clear()
    monkeypatch.setattr(provenance, "_result_files", lambda: [*files(), edit])
    yield provenance.results_digest()
    provenance.results_digest.cache_clear()


def _copy(out, dest):
    dest.mkdir()
    for file in out.iterdir():
        (dest / file.name).write_bytes(file.read_bytes())
    return dest


@pytest.fixture(scope="module")
def archive_code(tmp_path_factory):
    """A copy of the code that made the tiny archive (a folder holding its tsd_lib)."""
    import shutil

    import tsd_lib

    tree = tmp_path_factory.mktemp("archive-code")
    shutil.copytree(Path(tsd_lib.__file__).parent, tree / "tsd_lib", ignore=shutil.ignore_patterns("__pycache__"))
    return tree


def test_certify_a_results_preserving_change(tiny, tmp_path, other_code, archive_code):
    profile, _, out = tiny
    archive = Archive.load(_copy(out, tmp_path / "arch"))
    assert archive.stale
    assert main(["verify", "--archive", str(archive.path), "--certify", "--baseline", str(archive_code)]) == 0
    archive = Archive.load(archive.path)
    cert = archive.manifest["certified"][other_code]
    assert cert["methods"] == {"ce": True, "kd+tsd": True} and cert["teachers"]
    assert not archive.stale
    assert {k: archive.facts()[k] for k in ("code", "own", "certified", "stale")} == \
        {"code": other_code, "own": 0, "certified": 4, "stale": 0}
    store = RunStore(tmp_path / "fresh")  # a fresh machine: nothing is retrained, nothing is lost
    summary = make_archive(profile, store, archive.path, show_progress=False)
    assert summary.done == 0 and not list((tmp_path / "fresh").glob("runs/*"))
    again = Archive.load(archive.path)
    assert len(again.records()) == 2 and other_code in again.manifest["certified"]


def test_certify_marks_a_results_changing_method_stale_and_archive_retrains_it(tiny, tmp_path, other_code,
                                                                               archive_code, monkeypatch):
    from dataclasses import replace

    from tsd_lib.losses.registry import LOSSES

    profile, _, out = tiny
    archive = Archive.load(_copy(out, tmp_path / "arch"))
    tsd = LOSSES["tsd"]
    monkeypatch.setitem(LOSSES, "tsd", replace(tsd, compute=lambda o, b, s: 2.0 * tsd.compute(o, b, s)))
    assert main(["verify", "--archive", str(archive.path), "--certify", "--baseline", str(archive_code)]) == 1
    archive = Archive.load(archive.path)
    assert archive.manifest["certified"][other_code]["methods"] == {"ce": True, "kd+tsd": False}
    assert archive.stale
    assert {k: archive.facts()[k] for k in ("own", "certified", "stale", "stale_methods")} == \
        {"own": 0, "certified": 3, "stale": 1, "stale_methods": "kd+tsd"}
    store = RunStore(tmp_path / "fresh")
    summary = make_archive(profile, store, archive.path, show_progress=False)
    assert summary.done == 1  # kd+tsd retrained; ce carried over
    retrained = next(c for c in profile.configs() if c.method == "kd+tsd")
    assert store.has(retrained) and not store.has(next(c for c in profile.configs() if c.method == "ce"))
    assert not Archive.load(archive.path).stale


def test_certificates_chain_method_by_method():
    from tsd_lib.runs.certification import archive_code, is_current

    cert = {"teachers": True, "sample": [], "date": "-"}
    manifest = {"certified": {"B": {**cert, "equals": ["A"], "methods": {"ce": True, "kd": False}},
                              "C": {**cert, "equals": ["B"], "methods": {"ce": True, "kd": True}}}}
    assert is_current({"code": "A", "method": "ce"}, manifest, "C")
    assert not is_current({"code": "A", "method": "kd"}, manifest, "C")  # stale under B stays stale
    assert is_current({"code": "B", "method": "kd"}, manifest, "C") and is_current({"code": "A"}, manifest, "C")
    assert not is_current({"code": "C", "method": "ce"}, manifest, "B")  # a certificate is not symmetric
    no_teachers = {"certified": {**manifest["certified"], "C": {**manifest["certified"]["C"], "teachers": False}}}
    assert not is_current({"code": "B", "method": "ce"}, no_teachers, "C")
    entries = [{"record": {"code": "A", "method": "ce"}}, {"record": {"code": "B", "method": "kd"}}]
    assert archive_code(entries, manifest) == "C"  # every record current for it, the newest certificate
    assert archive_code(entries, {}) == "A"  # a tie without certificates: the first in order


def test_certify_again_after_a_second_change_keeps_every_record(tiny, tmp_path, other_code, archive_code,
                                                                 monkeypatch):
    import tsd_lib.provenance as provenance

    profile, _, out = tiny
    archive = Archive.load(_copy(out, tmp_path / "arch"))
    assert main(["verify", "--archive", str(archive.path), "--certify", "--baseline", str(archive_code)]) == 0
    second = tmp_path / "second_edit.py"
    second.write_text("EDITED_AGAIN = True\n")
    files = provenance._result_files
    provenance.results_digest.cache_clear()
    monkeypatch.setattr(provenance, "_result_files", lambda: [*files(), second])
    third = provenance.results_digest()
    assert third != other_code and Archive.load(archive.path).stale
    assert main(["verify", "--archive", str(archive.path), "--certify", "--baseline", str(archive_code)]) == 0
    archive = Archive.load(archive.path)
    assert archive.manifest["certified"][third]["equals"] == [other_code]  # re-ran the last certified code
    assert not archive.stale and len(archive.current_entries()) == len(archive.entries)
    summary = make_archive(profile, RunStore(tmp_path / "fresh"), archive.path, show_progress=False)
    assert summary.done == 0


def test_an_archived_record_of_other_data_is_retrained(tiny, tmp_path):
    """tsd archive keeps an archived record only while its config loads the data it was computed on."""
    profile, _, out = tiny
    arch = _copy(out, tmp_path / "arch")
    (path,) = arch.glob("*.jsonl")
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    ce = next(e for e in entries if e["kind"] == "run" and e["config"]["method"] == "ce")
    ce["record"]["data_fingerprint"] = "0" * 16  # computed on other data
    path.write_text("\n".join(json.dumps(e, sort_keys=True) for e in entries) + "\n")
    store = RunStore(tmp_path / "fresh")
    with pytest.warns(StoreWarning, match=f"archived run {ce['key']} of ItalyPowerDemand was computed on other data"):
        summary = make_archive(profile, store, arch, show_progress=False)
    assert summary.done == 1 and store.has(RunConfig.from_dict(ce["config"]))
    (again,) = [e for e in Archive.load(arch).entries if e["key"] == ce["key"]]
    assert again["record"]["data_fingerprint"] == data_fingerprint(RunConfig.from_dict(ce["config"]))


def test_the_certify_sample_covers_each_method_on_as_many_datasets_as_hold_it():
    from types import SimpleNamespace

    from tsd_lib.runs.verify import certify_sample

    def entry(dataset, method, seed):
        return {"kind": "run", "key": f"{dataset}-{method}-{seed}", "record": {"code": "A", "method": method},
                "config": {"dataset": dataset, "method": method, "seed": seed}}

    entries = [entry("D1", m, s) for m in ("ce", "fitnets") for s in (0, 1)]
    entries += [entry(d, "ce", s) for d in ("D2", "D3", "D4") for s in (0, 1)]
    sample = certify_sample(SimpleNamespace(entries=entries, manifest={}, path="-"))
    picked = {(e["config"]["dataset"], e["config"]["method"]) for e in sample}
    assert ("D1", "fitnets") in picked and len({d for d, m in picked if m == "ce"}) == 3 and len(sample) == 4


def test_capped_teachers_are_continued_before_any_student_learns_from_them(tmp_path):
    """The cap ends the teacher (patience 50, 2 epochs): it is trained again with twice the cap until
    ``extend_to``, and the student learns from the last one; the archive keeps the chain, and an export
    from a fresh machine (an empty store) finds it again."""
    spec = {"name": "capped", "datasets": ["ItalyPowerDemand"], "methods": ["ce"], "seeds": [0],
            "teacher": "fcn_small", "student": "fcn_small", "epochs": 8, "patience": 50, "teacher_epochs": 2,
            "saliency_eval_series": 4, "extend_to": 8, "teacher_study": {"name": "alone", "seeds": [5]}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(spec))
    profile = load_profile(tmp_path / "c.yaml")
    store = RunStore(tmp_path / "store")
    assert make_archive(profile, store, tmp_path / "out", show_progress=False).failed == 0
    (base,) = profile.configs()
    chain = teacher_chain(base, store.has_teacher, store.load_teacher_record)
    assert [c.teacher_epochs for c in chain] == [2, 4, 8]  # 16 would pass extend_to
    (config,) = resolve_teachers([base], store.has_teacher, store.load_teacher_record)
    assert config == chain[-1] and store.has(config) and not store.has(base)  # no student of a capped teacher
    assert store.load_record(config)["teacher_key"] == config.teacher_key()
    first, second = (store.load_teacher_history(c)["epochs"] for c in chain[:2])
    assert second[:2] == [{**e, "seconds": second[i]["seconds"]} for i, e in enumerate(first)]  # the same start
    known = _Known(store, [])
    assert teacher_extensions_to_train([base], known, 8) == []
    assert [t.teacher_epochs for t in teacher_extensions_to_train([base], known, 16)] == [16]
    archive = Archive.load(tmp_path / "out")
    teachers = [e["record"] for e in archive.entries if e["kind"] == "teacher"]
    assert sorted((r["teacher_seed"], r["epochs_run"]) for r in teachers) == [(0, 2), (0, 4), (0, 8), (5, 2), (5, 4),
                                                                               (5, 8)]  # the study's too
    assert [e["config"]["teacher_epochs"] for e in archive.entries if e["kind"] == "run"] == [8]
    again = export_archive(profile, RunStore(tmp_path / "empty"), tmp_path / "out")
    assert (again["runs"], again["teachers"], again["missing"]) == (1, 6, 0)
    from tsd_lib.analysis.paper_views import load_paper_archive

    (record,) = load_paper_archive(path=tmp_path / "out", profile=profile).records
    assert record["teacher_epochs"] == 8


def test_a_continuation_whose_first_run_is_only_archived_is_exported(tmp_path):
    """After a code change the store holds a continuation but not the archived run it continues: the
    export still finds the chain through the archive and adds the continuation."""
    spec = {"name": "capped", "datasets": ["ItalyPowerDemand"], "methods": ["ce"], "seeds": [0],
            "teacher": "fcn_small", "student": "fcn_small", "epochs": 2, "patience": 50, "teacher_epochs": 2,
            "saliency_eval_series": 4, "extend_to": 2}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(spec))
    first = RunStore(tmp_path / "first")
    make_archive(load_profile(tmp_path / "c.yaml"), first, tmp_path / "out", show_progress=False)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({**spec, "extend_to": 4}))
    profile = load_profile(tmp_path / "c.yaml")
    (config,) = resolve_teachers(profile.configs(), first.has_teacher, first.load_teacher_record)
    fresh = RunStore(tmp_path / "fresh")  # holds only the continuation
    assert run_grid([extension(config)], fresh, show_progress=False).failed == 0 and not fresh.has(config)
    manifest = export_archive(profile, fresh, tmp_path / "out")
    assert manifest["runs"] == 1 and manifest["extensions"] == 1
    archive = Archive.load(tmp_path / "out")
    assert archive.converged_record(config)["epochs_run"] == 4


@pytest.mark.parametrize("older", ["no faithfulness", "no gradient agreement"])
def test_an_archived_run_without_faithfulness_is_remade_and_measured(tiny, tmp_path, older):
    """A run archived (by older, certified code) without its faithfulness, or with one older code
    measured without a measure the current code takes, on a machine whose store lacks its model: tsd
    archive trains that run again, measures it and keeps the same record."""
    profile, _, out = tiny
    arch = _copy(out, tmp_path / "arch")
    (path,) = arch.glob("*.jsonl")
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    ce = next(e for e in entries if e["kind"] == "run" and e["config"]["method"] == "ce")
    if older == "no faithfulness":
        del ce["faithfulness"]
    else:
        del ce["faithfulness"]["gradient_agreement"]
    path.write_text("\n".join(json.dumps(e, sort_keys=True) for e in entries) + "\n")
    store = RunStore(tmp_path / "fresh")
    config = RunConfig.from_dict(ce["config"])
    assert make_archive(profile, store, arch, show_progress=False, remeasure=False).done == 0  # coverage first
    kept = Archive.load(arch).faithfulness(config) or {}
    assert not store.has(config) and "gradient_agreement" not in kept
    summary = make_archive(profile, store, arch, show_progress=False)
    assert summary.done == 1 and store.has(config)  # only the unmeasured run, not kd+tsd
    assert not store.has(next(c for c in profile.configs() if c.method == "kd+tsd"))
    archive = Archive.load(arch)
    assert archive.faithfulness(config)["key"] == ce["key"] and "gradient_agreement" in archive.faithfulness(config)
    timeless = lambda record: {k: v for k, v in record.items() if not k.endswith("seconds")}  # noqa: E731
    assert timeless(archive.load_record(config)) == timeless(ce["record"])


def test_an_archived_run_distilled_from_other_teacher_weights_is_retrained(tiny, tmp_path):
    """Code certified equal can train other weights on another machine: an archived run whose teacher
    metrics are not the archived teacher's is not used (a warning counts them) and is trained again, so
    that every method on a dataset learns from one teacher; the others are kept."""
    profile, _, out = tiny
    arch = _copy(out, tmp_path / "arch")
    (path,) = arch.glob("*.jsonl")
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    run = next(e for e in entries if e["kind"] == "run" and e["config"]["method"] == "kd+tsd")
    run["record"]["teacher_auc_pr"] += 0.01
    path.write_text("\n".join(json.dumps(e, sort_keys=True) for e in entries) + "\n")
    config = RunConfig.from_dict(run["config"])
    kept = export_archive(profile, RunStore(tmp_path / "empty"), _copy(arch, tmp_path / "exported"))
    assert (kept["runs"], kept["missing"]) == (1, 1)  # an export drops it at once: it is to be retrained
    assert not Archive.load(tmp_path / "exported").has(config)
    store = RunStore(tmp_path / "fresh")
    with pytest.warns(StoreWarning, match="1 archived runs of ItalyPowerDemand were distilled from other weights"):
        summary = make_archive(profile, store, arch, show_progress=False)
    assert summary.done == 1 and store.has(config)
    assert not store.has(next(c for c in profile.configs() if c.method == "ce"))  # the other run is kept
    teacher = Archive.load(arch).load_teacher_record(config)
    assert Archive.load(arch).load_record(config)["teacher_auc_pr"] == teacher["test_auc_pr"]


def test_export_drops_archived_entries_the_profile_no_longer_plans(tiny, tmp_path):
    """When a profile's settings change (here the teacher's cap), the records of the old settings are not
    the profile's any more: the export keeps the runs still planned and drops the others."""
    profile, _, out = tiny
    arch = _copy(out, tmp_path / "arch")
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump({**TINY, "teacher_epochs": 3}))  # every teacher (seeds 0, 1) changes
    new = load_profile(changed)
    manifest = export_archive(new, RunStore(tmp_path / "empty"), arch)
    archive = Archive.load(arch)
    assert (manifest["runs"], manifest["teachers"], manifest["missing"]) == (0, 0, 2 + 2)
    assert not any(archive.has(c) for c in [*new.configs(), *profile.configs()])
    assert not any(archive.has_teacher(t) for t in [*new.teacher_configs(), *profile.teacher_configs()])
    again = export_archive(profile, RunStore(tmp_path / "empty"), _copy(out, tmp_path / "same"))
    assert (again["runs"], again["teachers"], again["missing"]) == (2, 2, 0)  # unchanged settings keep all


def test_archive_trains_the_datasets_asked_for_and_keeps_the_others(tmp_path, capsys):
    spec = {**TINY, "name": "two", "datasets": ["ItalyPowerDemand", "synthetic"], "methods": ["ce"]}
    del spec["teacher_study"]
    (tmp_path / "two.yaml").write_text(yaml.safe_dump(spec))
    profile = load_profile(tmp_path / "two.yaml")
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"Nope: not a dataset of profile two \(its datasets: ItalyPowerDemand, "):
        make_archive(profile, RunStore(tmp_path / "s0"), out, show_progress=False, datasets=["Nope"])
    assert main(["archive", "--profile", str(tmp_path / "two.yaml"), "--store", str(tmp_path / "s0"),
                 "--out", str(out), "--datasets", "Nope", "--quiet"]) != 0
    assert "Nope: not a dataset of profile two" in capsys.readouterr().err and not out.exists()
    synthetic = profile.configs()[-1].dataset
    first = make_archive(profile, RunStore(tmp_path / "s1"), out, show_progress=False, datasets=[synthetic])
    assert first.done == 1 and [p.stem for p in out.glob("*.jsonl")] == [synthetic]
    second = make_archive(profile, RunStore(tmp_path / "s2"), out, show_progress=False, datasets=["ItalyPowerDemand"])
    assert second.done == 1  # a fresh store: the synthetic run is not trained again, and not lost
    assert sorted(p.stem for p in out.glob("*.jsonl")) == sorted(["ItalyPowerDemand", synthetic])
    assert Archive.load(out).manifest["runs"] == 2
