"""The ``tsd`` sub-commands, one ``cmd_*(args) -> exit code`` each (library imports inside: a fast ``--help``)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from tsd_lib.cli.checks import train_out
from tsd_lib.settings import ProtocolSettings

SOURCES = {"aeon": "shipped with aeon", "data_dir": "in --data-dir", "cache": "in aeon's download cache"}


def _profile_datasets(args: argparse.Namespace) -> int:
    from tsd_lib.data import DatasetNotAvailableError, dataset_info, is_downloadable
    from tsd_lib.profiles import load_profile

    profile = load_profile(args.profile, data_dir=args.data_dir)
    missing = []
    print(f"profile {profile.name}: {len(profile.datasets)} datasets")
    for name in profile.datasets:
        if name.lower().startswith("synthetic"):
            print(f"  {name:<32} available (generated)")
            continue
        try:
            info = dataset_info(name, data_dir=profile.data_dir)
            print(f"  {name:<32} available, {SOURCES[info['source']]} "
                  f"({info['n_train']} train / {info['n_test']} test)")
        except DatasetNotAvailableError:
            missing.append(name)
            how = "downloadable through aeon (needs the network)" if is_downloadable(name) else "unknown to aeon"
            print(f"  {name:<32} MISSING, {how}")
        except ValueError as err:
            missing.append(name)
            print(f"  {name:<32} CANNOT BE LOADED: {err}")
    if missing:
        print(f"\n{len(missing)} missing: {', '.join(missing)}.\nPass --data-dir with a local copy of the "
              "UCR archive (NAME/NAME_TRAIN.tsv or NAME/NAME_TRAIN.ts); with network access, "
              "tsd_lib.data.load_dataset(name, allow_download=True) fetches a set through aeon.")
        return 1
    print("\nall datasets available")
    return 0



#: How ``tsd datasets`` tries each set: as ``tsd train`` and ``tsd distill`` load it by default.
TRY_LOAD = {"length": ProtocolSettings.length, "stretch": False}


def cmd_datasets(args: argparse.Namespace) -> int:
    from tsd_lib.data import available_datasets, dataset_info, load_dataset

    if args.profile:
        return _profile_datasets(args)
    rows, broken = [], []
    for name in available_datasets(data_dir=args.data_dir):
        try:  # the sizes, then the set loaded once (NaN, one class, test labels unseen in train fail here)
            info = dataset_info(name, data_dir=args.data_dir)
            load_dataset(name, data_dir=args.data_dir, **TRY_LOAD)
            rows.append((name, info))
        except ValueError as err:
            broken.append((name, " ".join(str(err).split())))
    header = f"{'dataset':<28}{'train':>7}{'test':>7}{'channels':>10}{'length':>8}{'classes':>9}  source"
    print(header)
    print("-" * len(header))
    for name, info in rows:
        info = {k: ("var" if v is None else v) for k, v in info.items()}
        print(
            f"{name:<28}{info['n_train']:>7}{info['n_test']:>7}{info['n_channels']:>10}"
            f"{info['length']:>8}{info['n_classes']:>9}  {info['source']}"
        )
    print(f"\n{len(rows)} datasets load offline. Others: pass --data-dir with a local archive copy.")
    if broken:
        print(f"\n{len(broken)} found but cannot be loaded (as `tsd train` loads them: --length 100):")
        for name, reason in broken:
            print(f"  {name}: {reason}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from tsd_lib.data import load_dataset
    from tsd_lib.experiment import default_protocol, save_model
    from tsd_lib.metrics import classification_metrics, softmax
    from tsd_lib.runtime import resolve_device
    from tsd_lib.train import TrainConfig, predict_logits, train_model
    from tsd_lib.utils import atomic_write_json, versions

    data = load_dataset(
        args.dataset, length=args.length or None, split_seed=args.split_seed, data_dir=args.data_dir, stretch=False
    )
    config = TrainConfig(
        epochs=args.epochs, patience=args.patience, seed=args.seed, device=args.device,
        progress=False if args.quiet else None, desc=f"{args.model} on {data.name}", **default_protocol(args.model),
    )
    start = time.perf_counter()
    model, history = train_model(args.model, data, config)
    wall = time.perf_counter() - start
    proba = softmax(predict_logits(model, data.X_test, device=args.device))
    metrics = classification_metrics(data.y_test, proba)
    record = {
        "dataset": data.name, "model": args.model, "seed": args.seed, "split_seed": args.split_seed,
        "length": data.length, **{f"test_{k}": v for k, v in metrics.items()},
        "epochs_run": history.epochs_run, "best_epoch": history.best_epoch, "stopped_early": history.stopped_early,
        **{f"{k}_used": getattr(config, k) for k in ("lr_schedule", "warmup")}, "wall_seconds": wall,
        "device": str(resolve_device(args.device)), "versions": versions(),
    }
    out = Path(train_out(args))
    save_model(out / "model.pt", args.model, model, data)
    atomic_write_json(out / "metrics.json", record)
    atomic_write_json(out / "history.json", history.to_dict())
    print(json.dumps({k: v for k, v in record.items() if k != "versions"}, indent=2))
    print(f"wrote {out / 'metrics.json'}")
    return 0


def _print_record(record: dict) -> None:
    keys = ["dataset", "method", "seed", "accuracy", "auc_pr", "roc_auc", "agreement", "kl_teacher_student",
            "js_teacher_student", "ece", "saliency_spearman", "saliency_cosine", "teacher_accuracy",
            "val_accuracy", "val_auc_pr", "epochs_run", "train_seconds", "key"]
    width = max(map(len, keys))
    for k in keys:
        v = record.get(k)
        print(f"{k:<{width}}  {v:.4f}" if isinstance(v, float) else f"{k:<{width}}  {v}")


def cmd_distill(args: argparse.Namespace) -> int:
    from tsd_lib.experiment import RunConfig, RunStore, get_dataset, run
    from tsd_lib.settings import TSD_RUN_FIELDS

    weights = json.loads(args.weights) if args.weights else None
    config = RunConfig(
        dataset=args.dataset, data_dir=args.data_dir, length=args.length or None, split_seed=args.split_seed,
        teacher=args.teacher, teacher_seed=args.teacher_seed, student=args.student, method=args.method,
        weights=weights, epochs=args.epochs, teacher_epochs=args.teacher_epochs, patience=args.patience,
        seed=args.seed, device=args.device, saliency_eval_series=args.saliency_eval_series,
        **{name: getattr(args, name) for name in TSD_RUN_FIELDS},
    )
    store = RunStore(args.store)
    cached = store.has(config)
    record = run(config, store, progress=False if args.quiet else None)
    print(f"{'loaded from' if cached else 'stored in'} {store.run_dir(config)}")
    _print_record(record)
    if store.has_teacher(config):
        data = get_dataset(config)
        for line in teacher_warnings(store.load_teacher_record(config), data.y_test, data.n_classes):
            print(f"tsd distill: warning: {line}", file=sys.stderr)
    return 0


#: How close to chance a teacher's test accuracy may come before ``tsd distill`` warns.
CHANCE_MARGIN = 0.05


def teacher_warnings(teacher: dict, y_test, n_classes: int) -> list[str]:  # noqa: ANN001
    """What is wrong with the teacher students learn from: it stopped at its epoch cap (not early
    stopping), or its test accuracy is within :data:`CHANCE_MARGIN` of chance (the majority class's
    share of the test split, or 1/k)."""
    import numpy as np

    out = []
    if teacher.get("stopped_early") is False:
        out.append(f"the teacher stopped at its {teacher.get('epochs_run')}-epoch cap, not by early stopping "
                   "(it may still improve): pass a larger --teacher-epochs")
    accuracy = teacher.get("test_accuracy")
    y = np.asarray(y_test)
    if accuracy is not None and len(y):
        k = max(int(n_classes), 1)
        majority = float(np.bincount(y).max() / len(y))
        if accuracy < majority + CHANCE_MARGIN or accuracy < 1 / k + CHANCE_MARGIN:
            out.append(f"the teacher is near chance: test accuracy {accuracy:.3f}, the majority class is "
                       f"{majority:.3f} of the test set ({k} classes); its students learn little from it")
    return out


def cmd_grid(args: argparse.Namespace) -> int:
    from tsd_lib.experiment import RunStore
    from tsd_lib.profiles import load_profile
    from tsd_lib.runs.grid import run_grid

    profile = load_profile(args.profile, data_dir=args.data_dir)
    store = RunStore(args.store)
    configs = profile.configs()
    print(f"profile {profile.name}: {len(configs)} runs, store {store.root}, backend {args.backend}")
    summary = run_grid(configs, store, backend=args.backend, n_jobs=args.n_jobs, scheduler=args.scheduler,
                       teachers=profile.teacher_configs(),
                       retry_failed=args.retry_failed, show_progress=False if args.quiet else None)
    print(summary)
    for err in summary.errors[:10]:
        print(f"  failed: {err.get('dataset', '')} {err.get('key', '')}: {err['error']}")
    if len(summary.errors) > 10:
        print(f"  ... {len(summary.errors) - 10} more; see `tsd status --profile {profile.name}`")
    return 0 if summary.failed == 0 else 1


def cmd_status(args: argparse.Namespace) -> int:
    from tsd_lib.experiment import RunStore
    from tsd_lib.profiles import load_profile
    from tsd_lib.runs.grid import grid_status

    profile = load_profile(args.profile, data_dir=args.data_dir)
    store = RunStore(args.store)
    table = grid_status(profile.configs(), store)
    print(table.to_string())
    total = table.sum()
    print(f"\ntotal: {total['done']} done, {total['failed']} failed, {total['missing']} missing")
    for failure in store.failures():
        print(f"  {failure.get('key')}: {failure.get('error')}")
    for path in store.damaged():
        print(f"  damaged (counted as missing; `tsd grid` retrains it): {path}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from tsd_lib.experiment import RunStore
    from tsd_lib.profiles import load_profile
    from tsd_lib.report import write_report

    profile = load_profile(args.profile, data_dir=args.data_dir)
    store = RunStore(args.store)
    keys = {c.key() for c in profile.main_configs()}
    records = store.current_records(profile.main_configs())
    missing = keys - {r.get("key") for r in records}
    if missing:
        damaged = [p for p in store.damaged() if p.parent.name in missing]
        print(f"tsd report: warning: {len(missing)} of {len(keys)} runs of profile {profile.name} are missing "
              f"from {store.root} ({len(damaged)} of them damaged); run `tsd grid --profile {args.profile}`",
              file=sys.stderr)
        for path in damaged:
            print(f"  damaged: {path}", file=sys.stderr)
    out = Path(args.out or f"reports/{profile.name}")
    written = write_report(records, out)
    print(f"{len(records)} runs -> {len(written)} files in {out}")
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from tsd_lib.book.reproduce import ChapterFailed, reproduce

    try:
        results = reproduce(args.profile, chapters=args.chapters, data_dir=args.data_dir, store=args.store,
                            n_jobs=args.n_jobs, force=args.force)
    except ChapterFailed as err:
        print(f"tsd reproduce: {err}", file=sys.stderr)
        return 1
    except RuntimeError as err:
        print(f"tsd reproduce: {err}", file=sys.stderr)
        return 1
    for r in results:
        note = "unchanged, not re-executed" if r.cached else f"{r.seconds:6.1f} s"
        print(f"  {r.chapter:<28} {note}  -> {r.output}")
    ran = sum(not r.cached for r in results)
    print(f"{ran} chapters executed, {len(results) - ran} unchanged; "
          "build the site with: jupyter-book build . -W --keep-going")
    return 0


def _names(text: str | None) -> list[str] | None:
    """A comma-separated list (``--datasets``) as names, or ``None`` when not given."""
    return [name.strip() for name in text.split(",") if name.strip()] if text else None


def cmd_archive(args: argparse.Namespace) -> int:
    from tsd_lib.experiment import RunStore
    from tsd_lib.profiles import load_profile
    from tsd_lib.runs.archive import archive_dir
    from tsd_lib.runs.archive_making import make_archive

    profile = load_profile(args.profile, data_dir=args.data_dir)
    out = Path(args.out) if args.out else archive_dir(profile.results_name)
    store = RunStore(args.store)
    print(f"profile {profile.name}: {len(profile.configs())} runs -> archive {out} (store {store.root})")
    command = f"tsd archive --profile {args.profile}" + (" --data-dir DIR" if args.data_dir else "")  # no local path
    summary = make_archive(profile, store, out, n_jobs=args.n_jobs, command=command,
                           show_progress=False if args.quiet else None, datasets=_names(args.datasets),
                           remeasure=args.remeasure)
    print(summary)
    for err in summary.errors[:10]:
        print(f"  failed: {err.get('dataset', '')} {err.get('key', '')}: {err['error']}")
    return 0 if summary.failed == 0 else 1


def cmd_verify(args: argparse.Namespace) -> int:
    from tsd_lib.runs.archive import Archive
    from tsd_lib.runs.verify import certify, verify

    archive = Archive.load(args.archive)  # a malformed line fails here, naming its file, before any training
    if not any(e["kind"] == "run" for e in archive.entries):
        raise ValueError(f"the archive {archive.path} holds no run records (a manifest without records); "
                         "fill it with `tsd archive --profile NAME`")
    if args.certify:
        cert = certify(archive, datasets=_names(args.datasets), seed=args.seed, data_dir=args.data_dir,
                       store=args.store, baseline=args.baseline)
        print(cert)
        return 0 if cert.ok else 1
    result = verify(archive, sample=args.sample, keys=args.key, seed=args.seed,
                    data_dir=args.data_dir, store=args.store, tolerance=args.tolerance, cpu=args.cpu)
    print(result)
    return 0 if result.ok else 1


def _claims_records(args: argparse.Namespace) -> tuple[list[dict], str]:
    """The runs ``tsd claims`` reads: an archive's complete datasets, or a profile's runs in a store."""
    if args.profile:
        from tsd_lib.experiment import RunStore
        from tsd_lib.profiles import load_profile

        profile = load_profile(args.profile)
        store = RunStore(args.store)
        keys = {c.key() for c in profile.main_configs() + profile.pair_configs()}
        records = store.current_records(profile.main_configs() + profile.pair_configs())
        if not records:
            raise ValueError(f"no runs of profile {profile.name} in {store.root}; "
                             f"run `tsd grid --profile {args.profile}`")
        if len(records) < len(keys):
            print(f"tsd claims: warning: {len(keys) - len(records)} of {len(keys)} runs of profile {profile.name} "
                  f"are missing from {store.root}", file=sys.stderr)
        return records, f"profile {profile.name}, store {store.root}"
    from tsd_lib.analysis.paper_views import load_paper_archive

    path = Path(args.archive)
    by_path = path.exists() or path.is_absolute() or len(path.parts) > 1
    paper = load_paper_archive(path=path) if by_path else load_paper_archive(args.archive)
    if paper is None:
        raise FileNotFoundError(f"no results archive {args.archive!r} (no manifest.json); "
                                "make one with `tsd archive --profile NAME`")
    records = paper.claim_records
    if not records:
        raise ValueError(f"the archive {paper.archive.path} holds no method whose every run is in yet")
    capped = sum(not r["stopped_early"] for r in records)
    if capped:
        print(f"tsd claims: warning: {capped} runs still hit the epoch cap", file=sys.stderr)
    return records, (f"archive {paper.archive.path}: each comparison on the datasets where both methods' runs "
                     "are all archived")


def cmd_claims(args: argparse.Namespace) -> int:
    from tsd_lib.analysis.verdicts import claims_by_arm, claims_json, claims_text
    from tsd_lib.report import records_to_frame

    if args.profile and args.archive:
        raise ValueError("give --archive or --profile, not both")
    if not args.profile:
        args.archive = args.archive or "paper"
    records, source = _claims_records(args)
    by_arm = claims_by_arm(records_to_frame(records))
    if args.json:
        rows = [{"arm": arm, **row} for arm, found in by_arm.items() for row in claims_json(found)]
        print(json.dumps(rows, indent=1, ensure_ascii=False, allow_nan=False))
        return 0
    for arm, found in by_arm.items():
        print(f"== {arm} ({source}) ==\n{claims_text(found)}\n")
    return 0


def cmd_site_check(args: argparse.Namespace) -> int:
    html = Path(args.html)
    if not (html / "index.html").exists():
        raise FileNotFoundError(f"--html {html}: no built site there; build it with `make book`")
    try:
        from tsd_lib.book.site_check import check_site, screenshots
    except ImportError as err:
        raise FileNotFoundError(f"tsd site-check needs the dev extra (pip install -e '.[dev]'): {err}") from None
    reports = check_site(html)
    problems = [p for r in reports for p in r.problems]
    for problem in problems:
        print(problem)
    print(f"{len(reports)} pages checked offline, {len(problems)} problems")
    for path in screenshots(html, Path(args.screenshots)) if args.screenshots else []:
        print(f"wrote {path}")
    return 1 if problems else 0


def cmd_pdf(args: argparse.Namespace) -> int:
    from tsd_lib.book.pdf import build_pdf

    out = Path(args.out)
    pages, seconds = build_pdf(Path(args.html), out, toc=Path(args.toc))
    print(f"wrote {out}: {pages} pages, {out.stat().st_size / 2**20:.1f} MiB in {seconds:.0f} s")
    return 0


def cmd_grade(args: argparse.Namespace) -> int:
    from tsd_lib.grading import grade_command

    return grade_command(args.path, assignment=args.assignment, parameters=args.parameter, timeout=args.timeout,
                         memory_mb=args.memory_mb, max_notebook_mb=args.max_notebook_mb or None, out=args.out)

