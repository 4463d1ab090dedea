"""Profiles are checked against their schema when loaded: clear messages naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tsd_lib.profiles import ProfileError, load_profile

BASE = {"datasets": ["ItalyPowerDemand"], "methods": ["ce", "kd+tsd"], "seeds": [0], "epochs": 2}


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


def _profile(tmp_path: Path, **changes) -> Path:
    return _write(tmp_path, yaml.safe_dump({**BASE, **changes}))


@pytest.mark.parametrize(("changes", "message"), [
    ({"datasets": "ItalyPowerDemand"}, r"'datasets' must be a non-empty list, got 'ItalyPowerDemand'"),
    ({"epochs": "two"}, r"'epochs' must be an integer >= 1, got 'two'"),
    ({"seeds": "0"}, r"'seeds' must be a non-empty list"),
    ({"batch_size": 0}, r"'batch_size' must be an integer >= 1, got 0"),
    ({"tau": -2}, r"'tau' must be a finite number > 0, got -2"),
    ({"tau": 0}, r"'tau' must be a finite number > 0"),
    ({"tsd_score": "nope"}, r"'tsd_score' must be one of \['kl', 'target_prob'\]"),
    ({"tsd_baseline": "nope"}, r"'tsd_baseline' must be one of"),
    ({"saliency_eval_series": -5}, r"'saliency_eval_series' must be an integer >= 1 or null"),
    ({"chapters": ["01_teacher"]}, r"'chapters' must be a mapping"),
    ({"ablations": {"windw": [5]}}, r"unknown ablation axis 'windw'"),
    ({"ablations": {"window": 5}}, r"'window' must be a non-empty list, got 5"),
    ({"epoch": 3}, r"unknown keys \['epoch'\]"),
    ({"methods": ["nosuchloss"]}, r"nosuchloss"),
    ({"window": 30, "length": 24}, r"window"),
])
def test_bad_values_are_named_with_file_and_key(tmp_path, changes, message):
    path = _profile(tmp_path, **changes)
    with pytest.raises(ProfileError, match=message) as err:
        load_profile(path)
    assert str(path) in str(err.value)


def test_yaml_syntax_errors_say_where(tmp_path):
    path = _write(tmp_path, "datasets: [GunPoint\nmethods: [ce]\n")
    with pytest.raises(ProfileError, match=r"not valid YAML at line \d+"):
        load_profile(path)
    with pytest.raises(ProfileError, match="must hold a mapping"):
        load_profile(_write(tmp_path, "- a\n- b\n"))


def test_numbers_are_normalised_before_hashing(tmp_path):
    as_int = load_profile(_profile(tmp_path, tau=8)).configs()
    as_float = load_profile(_profile(tmp_path, tau=8.0)).configs()
    assert [c.key() for c in as_int] == [c.key() for c in as_float]
    assert isinstance(as_int[0].tau, float)


def test_configs_are_expanded_once_per_state_of_the_profile(tmp_path, monkeypatch):
    profile = load_profile(_profile(tmp_path, seeds=[0, 1]))
    first = profile.configs()
    calls = []
    main_configs = type(profile).main_configs
    monkeypatch.setattr(type(profile), "main_configs", lambda self: calls.append(1) or main_configs(self))
    again = profile.configs()
    assert again == first and again is not first and calls == []  # cached, and a copy the caller may edit
    again.clear()
    assert len(profile.configs()) == len(first) == 4  # 2 methods x 2 seeds
    profile.seeds = [0, 1, 2]  # edited in place: expanded again
    assert len(profile.configs()) == 6 and calls == [1]
