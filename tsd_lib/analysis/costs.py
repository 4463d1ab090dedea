"""The reproducing page: what each profile runs, and what it costs on the machine that built the book."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

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
