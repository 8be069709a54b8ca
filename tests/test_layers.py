"""labkit's layout (issue 35): the import graph, drawn from the source with ``ast``
(``tools/import_graph.py``), has no circle and no import from a lower layer to a higher one;
the flat ``lk.`` namespace is defined once, with no name given twice and every name
resolving; no module is longer than about 400 lines without saying why."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import import_graph  # noqa: E402

import labkit as lk  # noqa: E402


def test_every_module_is_in_a_layer():
    for name in import_graph.modules():
        import_graph.layer(name)  # raises for a module outside every layer


def test_no_circles_and_no_upward_imports():
    edges = import_graph.graph()
    assert import_graph.cycles(edges) == []
    assert import_graph.upward(edges) == []


def test_the_graph_sees_function_level_and_relative_imports(tmp_path):
    """The checks can fail: a circle made of a function-level import and a relative one,
    and an algorithm importing an experiment, are found."""
    pkg = tmp_path / "labkit"
    (pkg / "algorithms").mkdir(parents=True)
    (pkg / "experiments").mkdir()
    for folder in (pkg, pkg / "algorithms", pkg / "experiments"):
        (folder / "__init__.py").write_text("")
    (pkg / "algorithms" / "gfs.py").write_text(
        "def f():\n    from labkit.experiments import cell\n    return cell\n")
    (pkg / "experiments" / "cell.py").write_text("from ..algorithms import gfs\n")
    edges = import_graph.graph(tmp_path)
    assert edges["labkit.algorithms.gfs"] == {"labkit.experiments.cell"}
    assert edges["labkit.experiments.cell"] == {"labkit.algorithms.gfs"}
    assert import_graph.cycles(edges) == [["labkit.algorithms.gfs", "labkit.experiments.cell"]]
    assert import_graph.upward(edges) == [("labkit.algorithms.gfs", "labkit.experiments.cell")]


def test_the_command_reports_a_clean_graph():
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "import_graph.py")],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout[-2000:]
    assert "0 circles; 0 imports from a lower layer to a higher one" in out.stdout


def test_flat_namespace_is_defined_once_and_resolves():
    assert len(lk.__all__) == len(set(lk.__all__))
    for name in lk.__all__:
        assert getattr(lk, name) is not None, name
    # one table: every public name comes from it (or is the config registry, or a
    # subpackage reached as lk.<name>: the claims registry)
    assert set(lk.__all__) == {"config", *lk._SUBPACKAGES, *lk._NAMES}
    assert lk.claims.__name__ == "labkit.claims" and "claims" in dir(lk)


def test_a_name_given_twice_is_an_error(monkeypatch):
    table = dict(lk._API)
    table["labkit.infra.runner"] = (lk.EAGER, (*table["labkit.infra.runner"][1], "get_mode"))
    monkeypatch.setattr(lk, "_API", table)
    with pytest.raises(ImportError, match="'get_mode' is given by both"):
        lk._flatten()


def test_names_the_chapters_use_resolve():
    used = set()
    for chapter in sorted((ROOT / "chapters").glob("*.py")):
        for node in ast.walk(ast.parse(chapter.read_text())):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id == "lk"):
                used.add(node.attr)
    assert used, "no lk. names found in the chapters"
    missing = sorted(n for n in used if not hasattr(lk, n))
    assert missing == []


def test_long_modules_say_why():
    """No module over about 400 lines without a reason in its docstring ("longer than")."""
    for path in sorted((ROOT / "labkit").rglob("*.py")):
        lines = path.read_text().count("\n")
        if lines > 420:
            doc = ast.get_docstring(ast.parse(path.read_text())) or ""
            assert "longer than" in doc, f"{path.relative_to(ROOT)}: {lines} lines"
