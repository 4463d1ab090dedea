"""Records are tied to the code that made them: docstrings and comments do not count."""

from __future__ import annotations

from tsd_lib.provenance import RESULTS_MODULES, results_digest, source_digest

CODE = '''"""Module docstring."""


def f(x):
    """Doubles."""
    return 2 * x  # a comment
'''


def _digest(tmp_path, text: str) -> str:
    path = tmp_path / "mod.py"
    path.write_text(text)
    return source_digest([path])


def test_docstrings_comments_and_layout_do_not_change_the_digest(tmp_path):
    base = _digest(tmp_path, CODE)
    assert _digest(tmp_path, CODE.replace("Doubles.", "Twice x, see the book.")) == base
    assert _digest(tmp_path, CODE.replace("# a comment", "# another")) == base
    assert _digest(tmp_path, CODE.replace("\n\n\ndef", "\n\ndef").replace("2 * x", "2*x")) == base
    assert _digest(tmp_path, CODE.replace('    """Doubles."""\n', "")) == base


def test_code_changes_change_the_digest(tmp_path):
    base = _digest(tmp_path, CODE)
    assert _digest(tmp_path, CODE.replace("2 * x", "3 * x")) != base
    assert _digest(tmp_path, CODE.replace("return 2 * x", "return x + x")) != base


def test_results_digest_covers_the_result_modules():
    assert len(results_digest()) == 16
    assert {"losses", "saliency", "train.py", "models.py", "data"} <= set(RESULTS_MODULES)
    assert "report" not in RESULTS_MODULES and "book" not in RESULTS_MODULES


def test_result_modules_exist_and_leave_the_store_out():
    from tsd_lib.provenance import PACKAGE, _result_files

    assert all(p.is_file() for p in _result_files())  # a module split into a package is listed by its files
    listed = {str(p.relative_to(PACKAGE)) for p in _result_files()}
    assert {"experiment/config.py", "experiment/teachers.py", "experiment/runner.py"} <= listed
    assert "experiment/store.py" not in listed  # file handling and locks change no number


def test_results_modules_import_no_other_code_that_could_change_numbers():
    """Every ``tsd_lib`` module a results module imports is a results module itself, or one of the few
    that only store, name or time things: editing a progress bar never stales a run, and no code
    behind a number escapes the digest."""
    import ast

    from tsd_lib.provenance import PACKAGE, _result_files

    no_numbers = {"utils", "provenance", "paths", "experiment.store", "experiment"}
    results = {".".join(p.relative_to(PACKAGE).with_suffix("").parts).removesuffix(".__init__")
               for p in _result_files()}
    outside = set()
    for path in _result_files():
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else [])
            for name in names:
                if name.startswith("tsd_lib."):
                    module = name.removeprefix("tsd_lib.")
                    if module not in no_numbers and not any(module == r or module.startswith(r + ".")
                                                            for r in results):
                        outside.add(f"{path.name} imports {name}")
    assert not outside, sorted(outside)
    assert "utils.py" not in RESULTS_MODULES and "runtime.py" in RESULTS_MODULES
