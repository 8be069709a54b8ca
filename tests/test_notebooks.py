"""Guards around the chapters and their quick-mode reference notebooks.

nbval (run by the same pytest command, see pyproject.toml) re-executes every
``tests/notebooks/NN_name.ipynb`` and compares it with its stored outputs. That is only a
test of the chapter if (a) every chapter has a reference notebook that was really executed
and is in the book, and (b) the notebook's cells are the chapter's current cells. These
tests check both; they read files only and take well under a second.
"""

from __future__ import annotations

from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9]*.py"))
NOTEBOOKS = ROOT / "tests" / "notebooks"
REFRESH = "python tools/refresh_notebooks.py"


def _ids(paths):
    return [p.stem for p in paths]


def _toc_files(node) -> set[str]:
    """All ``file:`` entries of a jupyter-book _toc.yml, at any depth."""
    found = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("file", "root") and isinstance(value, str):
                found.add(str(Path(value).with_suffix("")))
            else:
                found |= _toc_files(value)
    elif isinstance(node, list):
        for item in node:
            found |= _toc_files(item)
    return found


def _reference(chapter: Path) -> Path:
    return NOTEBOOKS / f"{chapter.stem}.ipynb"


def test_there_are_chapters():
    assert CHAPTERS, "no chapters/NN_name.py found"


def test_every_reference_notebook_has_a_chapter():
    orphans = [p.name for p in NOTEBOOKS.glob("*.ipynb")
               if not (ROOT / "chapters" / f"{p.stem}.py").is_file()]
    assert not orphans, f"reference notebooks without a chapter: {orphans}; delete them"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=_ids(CHAPTERS))
def test_chapter_is_in_toc(chapter):
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf8"))
    entry = f"chapters/{chapter.stem}"
    assert entry in _toc_files(toc), f"{entry} is not listed in _toc.yml"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=_ids(CHAPTERS))
def test_reference_notebook_is_executed(chapter):
    ref = _reference(chapter)
    assert ref.is_file(), (
        f"{ref.relative_to(ROOT)} is missing; make it with: {REFRESH} {chapter.stem}")
    nb = nbformat.read(ref, as_version=4)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", (
        f"{ref.name}: kernelspec must be python3; regenerate with: {REFRESH} {chapter.stem}")
    # nbval passes trivially on cells that have no stored outputs, so the notebook must
    # have been executed: every non-empty code cell has an execution count (in order)
    # and the notebook as a whole has outputs to compare.
    code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    counts = [c.get("execution_count") for c in code]
    unexecuted = [i for i, c in enumerate(counts) if c is None]
    assert not unexecuted, (
        f"{ref.name}: {len(unexecuted)} code cell(s) were never executed; "
        f"regenerate with: {REFRESH} {chapter.stem}")
    assert counts == sorted(counts), f"{ref.name}: cells executed out of order"
    assert any(c.get("outputs") for c in code), (
        f"{ref.name} has no stored outputs; regenerate with: {REFRESH} {chapter.stem}")


@pytest.mark.parametrize("chapter", CHAPTERS, ids=_ids(CHAPTERS))
def test_reference_notebook_matches_chapter(chapter):
    """Drift guard: the notebook's cells are exactly those jupytext reads from the .py."""
    ref = _reference(chapter)
    if not ref.is_file():
        pytest.skip("missing reference notebook (reported by test_reference_notebook_is_executed)")
    expected = [(c.cell_type, c.source) for c in jupytext.read(chapter).cells]
    stored = [(c.cell_type, c.source) for c in nbformat.read(ref, as_version=4).cells]
    if stored != expected:
        pairs = zip(stored, expected, strict=False)
        first = next((i for i, (a, b) in enumerate(pairs) if a != b),
                     min(len(stored), len(expected)))
        pytest.fail(
            f"{ref.relative_to(ROOT)} is stale: its cells differ from "
            f"chapters/{chapter.name} (first difference at cell {first}; "
            f"{len(stored)} vs {len(expected)} cells). Re-execute it with: "
            f"{REFRESH} {chapter.stem}", pytrace=False)


CODE_WIDTH = 88  # characters: what the article column shows without a scroll bar


@pytest.mark.parametrize("chapter", CHAPTERS, ids=_ids(CHAPTERS))
def test_code_cells_fit_the_column(chapter):
    """Code cells are read on the page, so they stay within 88 characters (ruff allows
    100 in the library; markdown cells may hold longer display math)."""
    nb = jupytext.read(chapter)
    long = [f"cell {n}: {line[:60]}... ({len(line)} characters)"
            for n, cell in enumerate(nb.cells) if cell.cell_type == "code"
            for line in cell.source.splitlines() if len(line) > CODE_WIDTH]
    assert not long, f"{chapter.name}: lines over {CODE_WIDTH} characters:\n" + "\n".join(long)
