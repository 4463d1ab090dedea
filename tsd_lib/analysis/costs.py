"""The reproducing page: what each profile runs, what it costs on the machine that built the book, and the
facts its instructions quote (the grid's time, the torch pin, the Python versions, the grid benchmark)."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterable, Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tsd_lib.paths import PROJECT_ROOT
from tsd_lib.profiles import available_profiles, load_profile


def _profiles(profiles: Iterable[Any] | None) -> list[Any]:
    return list(profiles) if profiles is not None else [load_profile(n) for n in available_profiles()]


def profiles_table(profiles: Iterable[Any] | None = None) -> pd.DataFrame:
    """One row per profile (default: every shipped one): sizes of its grid, its epoch cap and description."""
    rows = [{"profile": p.name, "datasets": len(p.datasets), "methods": len(p.methods),
             "student seeds": len(p.seeds), "teacher seeds": len(p.teacher_seeds),
             "TSD weights": len(p.tsd_weights), "max epochs": p.run.get("epochs", 500),
             "runs": len(p.configs()), "description": " ".join(p.description.split())}
            for p in _profiles(profiles)]
    return pd.DataFrame(rows).set_index("profile")


def cost_tables(records: Iterable[Mapping[str, Any]],
                profiles: Iterable[Any] | None = None) -> tuple[pd.Series, pd.DataFrame, dict[str, Any]]:
    """From stored runs: median seconds per epoch per method, each profile's upper-bound cost in hours
    (every run at its epoch cap; a method never run costs the median; NaN without any run) and, for the
    prose, how many ``runs`` the store holds, their wall time in ``minutes`` and the ``device`` most of them
    used ("none" without any run)."""
    records = list(records)
    frame = pd.DataFrame(records) if records else pd.DataFrame(columns=["method", "train_seconds", "epochs_run",
                                                                         "wall_seconds"], dtype=float)
    per_method = (frame["train_seconds"] / frame["epochs_run"].clip(lower=1)).groupby(frame["method"]).median()
    device = frame["device_used"].mode().iloc[0] if "device_used" in frame and len(frame) else "none"
    column = f"upper bound ({device}), hours"
    rows = []
    for p in _profiles(profiles):
        configs = p.configs()
        sec = sum(per_method.get(c.method, per_method.median()) * c.epochs for c in configs)
        rows.append({"profile": p.name, "runs": len(configs), "epochs per run (max)": p.run.get("epochs", 500),
                     column: sec / 3600})
    minutes = float(frame["wall_seconds"].sum() / 60) if "wall_seconds" in frame else float("nan")
    return (per_method.rename("median s / epoch (this machine)"), pd.DataFrame(rows).set_index("profile"),
            {"runs": len(frame), "minutes": minutes, "device": device})


def grid_time(profile: Any, records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """For the prose: of the ``profile``'s grid (``profile.configs()``, what ``tsd reproduce`` trains first),
    how many runs the ``records`` hold (``runs`` of ``configs``) and their recorded wall time in ``minutes``
    (training, the teacher a run trained first, evaluation; summed over runs, NaN without any)."""
    keys = {c.key() for c in profile.configs()}
    mine = [r for r in records if r.get("key") in keys]
    seconds = [float(r["wall_seconds"]) for r in mine if r.get("wall_seconds") is not None]
    return {"runs": len(mine), "configs": len(keys), "minutes": sum(seconds) / 60 if seconds else float("nan")}


def lock_pin(package: str = "torch", lock: str | Path = PROJECT_ROOT / "requirements-lock.txt") -> str:
    """The version ``lock`` pins ``package`` to (``package==X`` line); without a lock or a pin there, the
    installed version without its local label (``2.13.0+cpu`` -> ``2.13.0``); "unknown" without either."""
    lock = Path(lock)
    if lock.exists():
        found = re.search(rf"^{re.escape(package)}==([^\s;#]+)", lock.read_text(), re.M | re.I)
        if found:
            return found.group(1)
    try:
        return version(package).split("+")[0]
    except PackageNotFoundError:
        return "unknown"


def python_versions(pyproject: str | Path = PROJECT_ROOT / "pyproject.toml") -> str:
    """The Python minor versions ``requires-python`` admits, "3.11 or 3.12" (from 3.8 to 3.19; "any"
    without a bound)."""
    from packaging.specifiers import SpecifierSet

    spec = tomllib.loads(Path(pyproject).read_text())["project"].get("requires-python", "")
    found = [f"3.{m}" for m in range(8, 20) if SpecifierSet(spec).contains(f"3.{m}")] if spec else []
    if not found:
        return "any"
    return found[0] if len(found) == 1 else f"{', '.join(found[:-1])} or {found[-1]}"


def grid_benchmark(path: str | Path = PROJECT_ROOT / "benchmarks" / "results" / "bench_grid.json") -> dict[str, Any]:
    """For the prose, from ``benchmarks/bench_grid.py``'s last result: the runs per hour of the grid's own
    Dask cluster (``dask_over_local``) and of a stock Dask cluster with the grid's worker plugin
    (``stock_over_local``), each relative to joblib's, the ``workers`` per backend and the machine's
    ``cores``; NaN (and 0) without a result."""
    path = Path(path)
    if not path.exists():
        return {"dask_over_local": np.nan, "stock_over_local": np.nan, "workers": 0, "cores": 0}
    result = json.loads(path.read_text())
    workers = {p.get("n_jobs") for p in result.get("passes", {}).get("local", [])}
    return {"dask_over_local": float(result.get("dask_over_local", np.nan)),
            "stock_over_local": float(result.get("dask_stock_cluster_over_local", np.nan)),
            "workers": int(max(workers)) if workers else 0, "cores": int(result.get("cpu_count") or 0)}
