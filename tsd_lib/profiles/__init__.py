"""Profiles: named parameter sets that expand into a grid of :class:`RunConfig`.

A profile is only parameters (YAML, packaged in this folder). Schema (every key optional
except ``datasets`` and ``methods``)::

    name: quick                     # defaults to the file name
    description: one line
    datasets: [GunPoint, ...]       # names; "Synthetic" is the planted-pattern set
    data_dir: null                  # local archive copy for sets not shipped with aeon
    length: 100                     # series longer than this are resampled down (null keeps them)
    stretch: false                  # true: shorter series are stretched up to `length` too
    teacher: lstm_teacher
    teacher_seeds: [0]              # several: the teacher seed is chosen on validation data
    student: lstm_student
    seeds: [0, 1, 2]                # student seeds
    methods: [ce, kd, tsd, kd+tsd]  # "+"-joined loss names; CE is always included
    tsd_weights: [1.0]              # swept for every method that contains tsd
    grids:                          # the baselines' tuning budget: a method's setting swept like the
      kd: {tau: [1, 2, 4, 8, 16]}   # TSD weight and chosen on validation ("weight" or a term setting)
    tau: 8.0
    n_windows: 50                   # K
    window: 10                      # L
    epochs: 500
    patience: 50
    lr_schedule: null               # "paper" (the authors' per-batch MultiStepLR) or "step" (x0.5 per
                                    # 100 epochs); null: per architecture (LSTMs paper, conv nets step)
    warmup: null                    # epochs before patience counts; null: per architecture (LSTMs 200)
    budgets: [20, 40, 100, 300]     # also evaluate every run at these epoch budgets (chapter 6)
    teacher_epochs: null            # defaults to epochs
    teacher_patience: null
    saliency_eval_series: null      # cap on test series used by the saliency metrics
    tsd_bank_size: 200
    pairs:                          # other teacher/student pairs on some datasets (the paper's LSTMs)
      lstm: {datasets: [GunPoint], teacher: lstm_teacher, student: lstm_student,
             teacher_seeds: [1, 24, 300], methods: [ce, kd, tsd, kd+tsd]}   # may set tsd_weights, grids
    teacher_study:                  # teachers alone, every seed, under settings variants (chapter 1);
      - name: LSTM on GunPoint      # one study or a list of them
        dataset: GunPoint
        teacher: lstm_teacher
        seeds: [1, 24, 300, 49000, 1001]
        variants: {paper: {warmup: 0}, remedy: {}}
    baselines:                      # extra methods on one dataset (chapter 3), outside the main grid
      dataset: GunPoint
      methods: [fitnets, at, rkd, dt2w]
      seeds: [0]                    # default: the student seeds
    ablations:                      # extra runs: one dataset, each axis varied alone
      dataset: GunPoint
      seeds: [0]
      method: kd+tsd
      window: [5, 10, 20]           # any RunConfig field -> list of values
    chapters:                       # papermill parameters per chapter (notebook stem)
      01_teacher: {dataset: GunPoint}
    archive: studies                # a profile whose committed archive (results/studies/) supplies
                                    # the teacher study and ablations this profile does not run
    results: paper                  # the folder results/NAME that `tsd archive` writes (default: name)
    extend_to: 4000                 # `tsd archive`: a student or teacher the epoch cap ended is continued,
                                    # its cap doubled, up to this many epochs (see tsd_lib.runs.archive)
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tsd_lib.experiment import RunConfig
from tsd_lib.profiles.schema import RUN_SCHEMA, ProfileError, ProfileWarning, check_profile
from tsd_lib.settings import ProtocolSettings

__all__ = ["PROFILE_DIR", "Profile", "ProfileError", "ProfileWarning", "available_profiles", "load_profile"]

PROFILE_DIR = Path(__file__).parent

_RUN_KEYS = set(RUN_SCHEMA)



@dataclass
class Profile:
    """A parsed profile (see the module docstring for the schema)."""

    name: str
    datasets: list[str]
    methods: list[str]
    description: str = ""
    data_dir: str | None = None
    teacher_seeds: list[int] = field(default_factory=lambda: [0])
    seeds: list[int] = field(default_factory=lambda: [0])
    tsd_weights: list[float] = field(default_factory=lambda: [1.0])
    grids: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    run: dict[str, Any] = field(default_factory=dict)
    pairs: dict[str, dict[str, Any]] = field(default_factory=dict)
    teacher_study: dict[str, Any] | list[dict[str, Any]] = field(default_factory=dict)
    baselines: dict[str, Any] = field(default_factory=dict)
    ablations: dict[str, Any] = field(default_factory=dict)
    chapters: dict[str, dict[str, Any]] = field(default_factory=dict)
    _expanded: dict[str, list[RunConfig]] = field(default_factory=dict, init=False, repr=False, compare=False)
    archive: str | None = None
    results: str | None = None
    extend_to: int | None = None

    @property
    def results_name(self) -> str:
        """The folder under ``results/`` that this profile's archive is written to."""
        return self.results or self.name

    def base_config(self, dataset: str, **changes: Any) -> RunConfig:
        """The profile's settings for one dataset, with ``changes`` applied. Several teacher seeds
        become candidates, the teacher chosen among them on validation data."""
        teacher = {"teacher_seed": self.teacher_seeds[0]}
        if len(self.teacher_seeds) > 1:
            teacher["teacher_seeds"] = tuple(self.teacher_seeds)
        return RunConfig(dataset=dataset, data_dir=self.data_dir, **{**teacher, **self.run, **changes})

    def main_configs(self) -> list[RunConfig]:
        """The main grid: datasets x methods x (TSD weights or the method's grid) x student seeds."""
        return self._grid(self.datasets, self.methods)

    def _grid(self, datasets: list[str], methods: list[str], *, tsd_weights: list[float] | None = None,
              grids: dict[str, dict[str, list[Any]]] | None = None, **changes: Any) -> list[RunConfig]:
        out = []
        for dataset, method in itertools.product(datasets, methods):
            for tuned, seed in itertools.product(self.tunings(method, tsd_weights, grids), self.seeds):
                base = self.base_config(dataset, method=method, seed=seed, **changes)
                out.append(_tuned(base, tuned))
        return out

    def tunings(self, method: str, tsd_weights: list[float] | None = None,
                grids: dict[str, dict[str, list[Any]]] | None = None) -> list[dict[str, Any]]:
        """The settings a method is tuned over (each a ``RunConfig`` change): the TSD weights for a
        method with TSD, else the product of its ``grids`` axes (``weight`` or a term setting)."""
        if "tsd" in method.split("+"):
            return [{"weights": {"tsd": float(w)}} for w in (tsd_weights or self.tsd_weights)]
        grid = (self.grids if grids is None else grids).get(method)
        if not grid:
            return [{}]
        term = next(t.strip().lower() for t in method.split("+") if t.strip().lower() != "ce")
        out = []
        for values in itertools.product(*grid.values()):
            given = dict(zip(grid, values, strict=True))
            tuned: dict[str, Any] = {}
            if "weight" in given:
                tuned["weights"] = {term: float(given.pop("weight"))}
            if given:
                tuned["settings"] = {term: given}
            out.append(tuned)
        return out

    def pair_configs(self, name: str | None = None) -> list[RunConfig]:
        """The grid of the other teacher/student pairs (all, or the pair ``name``)."""
        out = []
        for pair_name, spec in self.pairs.items():
            if name not in (None, pair_name):
                continue
            spec = dict(spec)
            seeds = [int(s) for s in spec.pop("teacher_seeds", self.teacher_seeds)]
            teacher = {"teacher_seed": seeds[0], "teacher_seeds": tuple(seeds) if len(seeds) > 1 else ()}
            out += self._grid(list(spec.pop("datasets", self.datasets)), list(spec.pop("methods", self.methods)),
                              tsd_weights=spec.pop("tsd_weights", None), grids=spec.pop("grids", None),
                              **teacher, **spec)
        return out

    def teacher_study_configs(self) -> dict[str, dict[str, list[RunConfig]]]:
        """``{study: {variant: [one config per teacher seed]}}``: teachers trained alone (chapter 1)."""
        specs = self.teacher_study if isinstance(self.teacher_study, list) else [self.teacher_study]
        out = {}
        for spec in (dict(s) for s in specs if s):
            dataset = spec.pop("dataset", self.datasets[0])
            name = spec.pop("name", f"{dataset}: {spec.get('teacher', self.run.get('teacher', 'teacher'))}")
            seeds = [int(s) for s in spec.pop("seeds", self.teacher_seeds)]
            variants = spec.pop("variants", {"profile": {}})
            out[name] = {v: [self.base_config(dataset, **{**spec, **(changes or {}), "teacher_seed": s,
                                                          "teacher_seeds": ()}) for s in seeds]
                         for v, changes in variants.items()}
        return out

    def teacher_configs(self) -> list[RunConfig]:
        """Teachers the grid trains beyond those of its student runs (the teacher study)."""
        return [c for study in self.teacher_study_configs().values() for configs in study.values() for c in configs]

    def baseline_configs(self) -> list[RunConfig]:
        """Extra methods on one dataset over the student seeds (chapter 3)."""
        if not self.baselines:
            return []
        dataset = self.baselines.get("dataset", self.datasets[0])
        seeds = self.baselines.get("seeds", self.seeds)
        return [_tuned(self.base_config(dataset, method=m, seed=s), tuned)
                for m, s in itertools.product(self.baselines.get("methods", []), seeds) for tuned in self.tunings(m)]

    def ablation_spec(self) -> tuple[str, list[int], str, dict[str, list[Any]]]:
        """The ablations' dataset, seeds, method and ``{axis: values}``."""
        spec = dict(self.ablations)
        dataset = spec.pop("dataset", self.datasets[0])
        seeds = [int(s) for s in spec.pop("seeds", self.seeds)]
        method = spec.pop("method", ProtocolSettings.method)
        return dataset, seeds, method, spec

    def ablation_base(self, seed: int) -> RunConfig:
        """The setting every ablation run varies one axis of (for one seed)."""
        dataset, _, method, _ = self.ablation_spec()
        return self.base_config(dataset, method=method, seed=seed)

    def ablation_axes(self) -> list[tuple[str, Any, RunConfig]]:
        """``(axis, value, config)`` for every ablation run, the base setting included once per
        axis and seed (``value`` is then the base's own value of the axis)."""
        if not self.ablations:
            return []
        dataset, seeds, method, axes = self.ablation_spec()
        out = []
        for axis, values in axes.items():
            for seed in seeds:
                base = self.ablation_base(seed)
                own = base.terms.get("tsd") if axis == "tsd_weight" else getattr(base, axis)
                out.append((axis, own, base))
                for value in values:
                    if value == own:
                        continue
                    changes = {"weights": {"tsd": float(value)}} if axis == "tsd_weight" else {axis: value}
                    out.append((axis, value, self.base_config(dataset, method=method, seed=seed, **changes)))
        return out

    def ablation_configs(self) -> list[RunConfig]:
        """One axis varied at a time around the profile's settings, and the base runs (chapter 8)."""
        return list({c.key(): c for _, _, c in self.ablation_axes()}.values())

    def configs(self) -> list[RunConfig]:
        """Every run of the profile, main grid first, without duplicates. Expanded once per state of the
        profile (its ``repr``: a profile edited in place expands again), since the paper's expands to
        thousands of configs."""
        state = repr(self)
        if state not in self._expanded:
            seen, out = set(), []
            for c in self.main_configs() + self.pair_configs() + self.baseline_configs() + self.ablation_configs():
                if c.key() not in seen:
                    seen.add(c.key())
                    out.append(c)
            self._expanded.clear()
            self._expanded[state] = out
        return list(self._expanded[state])

    def chapter_parameters(self, chapter: str) -> dict[str, Any]:
        return dict(self.chapters.get(chapter, {}))


def _tuned(base: RunConfig, tuned: dict[str, Any]) -> RunConfig:
    """``base`` with a tuning's weights and term settings merged into its own."""
    if not tuned:
        return base
    weights = {**(base.weights or {}), **tuned.get("weights", {})}
    settings = {term: dict(given) for term, given in (base.settings or {}).items()}
    defaults = base.loss_settings()
    for term, given in tuned.get("settings", {}).items():
        changed = {k: v for k, v in given.items() if getattr(defaults.get(term), k, None) != v}  # one key per run
        if changed:
            settings.setdefault(term, {}).update(changed)
    config = base.replace(weights=weights or None, settings=settings or None)
    same = config.terms == base.terms and config.loss_settings() == defaults
    return base if same else config  # a grid value equal to the default is the default run


class _Loader(yaml.SafeLoader):
    """``yaml.safe_load`` that also notes every mapping key given twice (YAML keeps the last)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.repeated: list[tuple[Any, int, int]] = []  # (key, first line, repeated line)


def _mapping_noting_repeats(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    first: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            if key in first:
                loader.repeated.append((key, first[key], key_node.start_mark.line + 1))
            else:
                first[key] = key_node.start_mark.line + 1
        except TypeError:  # an unhashable key: construct_mapping says so
            pass
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_noting_repeats)


def _read_yaml(path: Path) -> Any:
    """The YAML document in ``path``; a :class:`ProfileWarning` for each key given twice."""
    loader = _Loader(path.read_text())
    try:
        raw = loader.get_single_data()
    finally:
        loader.dispose()
    for key, line, again in loader.repeated:
        warnings.warn(f"profile {path}: key {key!r} is given twice (lines {line} and {again}); the second value "
                      "is used, the first dropped", ProfileWarning, stacklevel=3)
    return raw


def available_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def load_profile(name_or_path: str | Path, *, data_dir: str | None = None) -> Profile:
    """Load a packaged profile by name (``quick``) or a YAML file by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PROFILE_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        raise ValueError(f"unknown profile {name_or_path!r}; packaged profiles: {', '.join(available_profiles())}")
    try:
        raw = _read_yaml(path)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ProfileError(f"profile {path}: not valid YAML{at}: {getattr(err, 'problem', err)}") from None
    raw = check_profile(raw or {}, str(path))
    profile = Profile(
        name=raw.get("name", path.stem), datasets=list(raw["datasets"]), methods=list(raw["methods"]),
        description=raw.get("description", ""), data_dir=data_dir or raw.get("data_dir"),
        teacher_seeds=list(raw.get("teacher_seeds", [0])), seeds=list(raw.get("seeds", [0])),
        tsd_weights=[float(w) for w in raw.get("tsd_weights", [1.0])], grids=dict(raw.get("grids") or {}),
        run={k: v for k, v in raw.items() if k in _RUN_KEYS},
        pairs=dict(raw.get("pairs") or {}), teacher_study=raw.get("teacher_study") or {},
        baselines=dict(raw.get("baselines") or {}), ablations=dict(raw.get("ablations") or {}),
        chapters=dict(raw.get("chapters") or {}), archive=raw.get("archive"),
        results=raw.get("results"), extend_to=raw.get("extend_to"),
    )
    if profile.archive is not None and profile.archive not in available_profiles():
        raise ProfileError(f"profile {path}: 'archive' names no packaged profile: {profile.archive!r}; "
                           f"profiles: {', '.join(available_profiles())}")
    if profile.results is not None and Path(profile.results).name != profile.results:
        raise ProfileError(f"profile {path}: 'results' must be a folder name under results/, got {profile.results!r}")
    try:  # every combination, with RunConfig's messages (e.g. a window longer than the series)
        profile.configs()
        profile.teacher_configs()
    except ValueError as err:
        raise ProfileError(f"profile {path}: {err}") from None
    return profile
