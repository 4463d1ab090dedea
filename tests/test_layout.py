"""The package's layout: the root holds the core and the packages; no two modules share a name."""

from __future__ import annotations

from collections import Counter

from tsd_lib.paths import PACKAGE

#: The root's modules: the core every layer builds on, the command entry point and the sklearn API.
CORE = {"__init__", "__main__", "paths", "utils", "runtime", "provenance", "settings", "models", "metrics", "train",
        "estimator"}


def test_the_root_holds_the_core_and_the_packages():
    assert {p.stem for p in PACKAGE.glob("*.py")} == CORE
    packages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert {"runs", "book", "experiment", "analysis", "report", "grading", "losses", "saliency", "data"} <= packages


def test_no_two_modules_share_a_file_name():
    names = Counter(p.name for p in PACKAGE.rglob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    assert not [name for name, n in names.items() if n > 1]


def test_every_package_folder_has_an_init():
    """``setuptools.find_packages`` (pyproject) installs only folders with an ``__init__.py``: a folder
    of modules without one would be missing from an installed ``tsd_lib``."""
    folders = {p.parent for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}
    assert not [str(f.relative_to(PACKAGE)) for f in folders if not (f / "__init__.py").is_file()]
