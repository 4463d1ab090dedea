"""The profile schema: every key's type and range, checked when a profile is loaded.

``check_profile(raw, file)`` returns the profile with numbers normalised (``tau: 8`` becomes
``8.0``, so a profile and ``--tau 8.0`` give one run key) or raises ``ValueError`` with a
message naming the file and the key, before any run is expanded or trained. A list that repeats
a value (``seeds: [0, 0]``, whose repeats the grid drops) gives a :class:`ProfileWarning` naming
the file and the key.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import fields
from typing import Any

from tsd_lib.experiment import RunConfig
from tsd_lib.experiment.config import normalised
from tsd_lib.settings import TSD_RUN_FIELDS

Check = Callable[[Any, str], Any]


class ProfileError(ValueError):
    """A profile that does not follow the schema."""


class ProfileWarning(UserWarning):
    """Something a profile gives that is dropped: a repeated list value, a key given twice."""


def _warn_repeats(values: list[Any], where: str) -> None:
    seen, repeated = set(), []
    for v in values:
        try:
            if v in seen and v not in repeated:
                repeated.append(v)
            seen.add(v)
        except TypeError:  # unhashable (a mapping): not a value a grid repeats
            return
    if repeated:
        warnings.warn(f"{where} lists {', '.join(map(repr, repeated))} more than once; the repeats are dropped "
                      "(each run is trained once)", ProfileWarning, stacklevel=4)


def _fail(where: str, what: str, value: Any) -> None:
    raise ProfileError(f"{where} must be {what}, got {value!r}")


def _int(low: int | None = None, optional: bool = False) -> Check:
    def check(v: Any, where: str) -> int | None:
        if v is None and optional:
            return None
        if isinstance(v, bool) or not isinstance(v, int) or (low is not None and v < low):
            _fail(where, f"an integer{'' if low is None else f' >= {low}'}{' or null' if optional else ''}", v)
        return int(v)
    return check


def _float(low: float = 0.0, high: float | None = None, strict: bool = True) -> Check:
    def check(v: Any, where: str) -> float:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool)
        ok = ok and (v > low if strict else v >= low) and (high is None or v < high)
        if not ok:
            bounds = f"{'>' if strict else '>='} {low:g}" + ("" if high is None else f" and < {high:g}")
            _fail(where, f"a number {bounds}", v)
        return float(v)
    return check


def _str(choices: tuple[str, ...] | None = None, optional: bool = False) -> Check:
    def check(v: Any, where: str) -> str | None:
        if v is None and optional:
            return None
        if not isinstance(v, str) or (choices is not None and v not in choices):
            _fail(where, f"one of {list(choices)}" if choices else "a string", v)
        return v
    return check


def _bool(v: Any, where: str) -> bool:
    if not isinstance(v, bool):
        _fail(where, "true or false", v)
    return v


def _list(item: Check, nonempty: bool = True) -> Check:
    def check(v: Any, where: str) -> list[Any]:
        if not isinstance(v, list) or (nonempty and not v):
            _fail(where, "a non-empty list" if nonempty else "a list", v)
        out = [item(x, f"{where}[{i}]") for i, x in enumerate(v)]
        _warn_repeats(out, where)
        return out
    return check


def _mapping(v: Any, where: str) -> dict[str, Any]:
    if not isinstance(v, Mapping):
        _fail(where, "a mapping (key: value)", v)
    return dict(v)


def _grids(value: Any, where: str) -> dict[str, dict[str, list[Any]]]:
    """``{method: {setting: [values]}}``: ``weight`` (the method's distillation term's weight) or
    one of that term's settings (``tau``, ``beta``, ``gamma``, ...), each a non-empty list."""
    out = {}
    for method, axes in _mapping(value, where).items():
        here = f"{where}: {method!r}"
        terms = [t.strip().lower() for t in str(method).split("+") if t.strip().lower() != "ce"]
        if len(terms) != 1 or terms[0] == "tsd":
            raise ProfileError(f"{here}: a grid tunes one distillation term other than TSD (whose weight "
                               f"'tsd_weights' sweeps), e.g. kd or dt2w; got {method!r}")
        out[str(method)] = {str(axis): _list(lambda v, w: v)(values, f"{here}: {axis!r}")
                            for axis, values in _mapping(axes, here).items()}
    return out


def _field(name: str) -> Check:
    """The check of :class:`RunConfig` field ``name``: RunConfig's own
    (:func:`~tsd_lib.experiment.config.normalised`), its message naming the profile's key."""
    def check(v: Any, where: str) -> Any:
        try:
            return normalised(name, v, where)
        except ValueError as err:
            raise ProfileError(str(err)) from None
    return check


#: RunConfig fields a profile may set: the keys a run reads, each checked by RunConfig itself.
_RUN_FIELDS = ("length", "stretch", "teacher", "student", "epochs", "patience", "teacher_epochs", "teacher_patience",
               "saliency_eval_series", "batch_size", "lr", "val_fraction", "split_seed", "lr_schedule", "warmup",
               *TSD_RUN_FIELDS)
#: The keys a run reads and their checks (``budgets`` a list whose repeats warn, ``settings`` a mapping).
RUN_SCHEMA: dict[str, Check] = {**{name: _field(name) for name in _RUN_FIELDS},
                                "budgets": _list(_int(1), nonempty=False), "settings": _mapping}

#: Every top-level key and its check.
SCHEMA: dict[str, Check] = {
    **RUN_SCHEMA, "name": _str(), "description": _str(), "data_dir": _str(optional=True),
    "datasets": _list(_str()), "methods": _list(_str()), "teacher_seeds": _list(_int(0)),
    "seeds": _list(_int(0)), "tsd_weights": _list(_float()), "pairs": _mapping, "teacher_study": lambda v, w: v,
    "baselines": _mapping, "ablations": _mapping, "chapters": _mapping, "archive": _str(optional=True),
    "results": _str(optional=True), "extend_to": _int(1, optional=True), "grids": _grids,
}

_FIELDS = {f.name for f in fields(RunConfig)}



def _run_changes(spec: Mapping[str, Any], where: str, extra: Mapping[str, Check]) -> dict[str, Any]:
    out = {}
    for key, value in spec.items():
        check = extra.get(key) or RUN_SCHEMA.get(key)
        if check is None:
            raise ProfileError(f"{where}: unknown key {key!r}; allowed: {sorted({*extra, *RUN_SCHEMA})}")
        out[key] = check(value, f"{where}: {key!r}")
    return out


def _ablations(spec: dict[str, Any], where: str) -> dict[str, Any]:
    out = _run_changes({k: spec[k] for k in ("dataset", "seeds", "method") if k in spec}, where,
                       {"dataset": _str(), "seeds": _list(_int(0)), "method": _str()})
    for axis, values in spec.items():
        if axis in out:
            continue
        check = _float() if axis == "tsd_weight" else RUN_SCHEMA.get(axis)
        if check is None:
            allowed = sorted({"tsd_weight", *(set(RUN_SCHEMA) & _FIELDS)})
            raise ProfileError(f"{where}: unknown ablation axis {axis!r}; axes: {allowed}")
        out[axis] = _list(check)(values, f"{where}: {axis!r}")
    return out


def _teacher_study(value: Any, where: str) -> list[dict[str, Any]]:
    specs = value if isinstance(value, list) else [value]
    out = []
    for i, spec in enumerate(specs):
        here = f"{where}[{i}]" if isinstance(value, list) else where
        spec = _mapping(spec, here)
        variants = {name: _run_changes(_mapping(ch or {}, f"{here}: variant {name!r}"), f"{here}: variant {name!r}", {})
                    for name, ch in _mapping(spec.pop("variants", {"profile": {}}), f"{here}: 'variants'").items()}
        spec = _run_changes(spec, here, {"name": _str(), "dataset": _str(), "seeds": _list(_int(0))})
        out.append({**spec, "variants": variants})
    return out


def check_profile(raw: Any, file: str) -> dict[str, Any]:
    """The profile ``raw`` (parsed YAML) checked against :data:`SCHEMA`, numbers normalised."""
    where = f"profile {file}"
    if not isinstance(raw, Mapping):
        raise ProfileError(f"{where}: the file must hold a mapping of keys, got {type(raw).__name__}")
    unknown = set(raw) - set(SCHEMA)
    if unknown:
        raise ProfileError(f"{where}: unknown keys {sorted(unknown)}; known keys: {sorted(SCHEMA)}")
    for key in ("datasets", "methods"):
        if key not in raw:
            raise ProfileError(f"{where}: '{key}' is required (a non-empty list)")
    out = {key: SCHEMA[key](value, f"{where}: '{key}'") for key, value in raw.items()}
    if "pairs" in out:
        out["pairs"] = {name: _run_changes(_mapping(spec, f"{where}: pair {name!r}"), f"{where}: pair {name!r}",
                                           {"datasets": _list(_str()), "methods": _list(_str()),
                                            "teacher_seeds": _list(_int(0)), "tsd_weights": _list(_float()),
                                            "grids": _grids})
                        for name, spec in out["pairs"].items()}
    if "teacher_study" in out:
        out["teacher_study"] = _teacher_study(out["teacher_study"], f"{where}: 'teacher_study'")
    if "baselines" in out:
        out["baselines"] = _run_changes(out["baselines"], f"{where}: 'baselines'",
                                        {"dataset": _str(), "methods": _list(_str()), "seeds": _list(_int())})
    if "ablations" in out:
        out["ablations"] = _ablations(out["ablations"], f"{where}: 'ablations'")
    if "chapters" in out:
        out["chapters"] = {stem: _mapping(params or {}, f"{where}: chapter {stem!r}")
                           for stem, params in out["chapters"].items()}
    return out
