"""Put the verified outputs of the reference notebooks into the book's jupyter-cache.

The book is built with ``execute_notebooks: cache`` (myst-nb + jupyter-cache). myst-nb
reads ``chapters/NN_name.py`` with ``jupytext.reads(text, fmt="py:percent")`` and looks
the notebook up in the cache by a hash of its notebook ``kernelspec`` and its code cells
(source and cell metadata; markdown and outputs are not hashed; see
``jupyter_cache.cache.main.JupyterCacheBase.create_hashed_notebook``). On a hit it
renders the cached outputs and executes nothing.

For each chapter we therefore read the ``.py`` exactly as myst-nb does, copy in the
outputs (and execution counts, ``language_info``, widget state) of
``tests/notebooks/NN_name.ipynb``, and cache that notebook: its hash is by construction
the one myst-nb computes. A chapter is primed only if its code cells equal the reference
notebook's cell for cell and every one of them was executed; otherwise it is left out and
the build executes it (and ``build_book.py --require-cache`` fails).

In CI this runs after pytest, whose strict nbval run has just checked that re-executing
each reference notebook reproduces its stored outputs, so the book shows outputs that
were verified in the same run, and every chapter is executed once.
"""

from __future__ import annotations

import argparse
import copy
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = ROOT / "chapters"
NOTEBOOKS = ROOT / "tests" / "notebooks"
# must match _config.yml: execute.cache is empty, so myst-nb uses <outdir>/../.jupyter_cache
DEFAULT_CACHE = ROOT / "_build" / ".jupyter_cache"
CHAPTER_FMT = "py:percent"  # _config.yml: nb_custom_formats .py -> jupytext.reads(fmt=...)


def read_like_mystnb(chapter: Path):
    """Read a chapter the way myst-nb does (Sphinx reads sources as utf-8-sig)."""
    import jupytext

    return jupytext.reads(chapter.read_text(encoding="utf-8-sig"), fmt=CHAPTER_FMT)


def merged_notebook(chapter: Path, reference: Path):
    """Return (notebook to cache, None) or (None, reason it cannot be primed)."""
    import nbformat

    if not reference.is_file():
        return None, f"no reference notebook {reference.relative_to(ROOT)}"
    nb = read_like_mystnb(chapter)
    ref = nbformat.read(reference, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    ref_code = [c for c in ref.cells if c.cell_type == "code"]
    if [c.source for c in code] != [c.source for c in ref_code]:
        return None, "its code cells differ from the reference notebook (stale reference)"
    if any(c.execution_count is None for c in ref_code if c.source.strip()):
        return None, "the reference notebook has unexecuted code cells"
    for cell, ref_cell in zip(code, ref_code, strict=True):
        cell.outputs = copy.deepcopy(ref_cell.outputs)
        cell.execution_count = ref_cell.execution_count
    # rendered with the notebook (myst-nb merges these keys from the cache); kernelspec
    # is left as the chapter has it, since it is part of the hash
    for key in ("language_info", "widgets"):
        if key in ref.metadata:
            nb.metadata[key] = copy.deepcopy(ref.metadata[key])
    return nb, None


def prime(cache_path: Path = DEFAULT_CACHE, chapters: list[Path] | None = None,
          clear: bool = True) -> dict[str, str | None]:
    """Prime the cache; return {chapter stem: None if primed else the reason}."""
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    if clear and cache_path.exists():
        shutil.rmtree(cache_path)  # no stale executions of older chapter/labkit versions
    cache = get_cache(str(cache_path))
    result: dict[str, str | None] = {}
    for chapter in chapters if chapters is not None else sorted(CHAPTERS.glob("[0-9]*.py")):
        reference = NOTEBOOKS / f"{chapter.stem}.ipynb"
        nb, reason = merged_notebook(chapter, reference)
        if nb is None:
            result[chapter.stem] = reason
            continue
        cache.cache_notebook_bundle(
            CacheBundleIn(nb, str(chapter.resolve()),
                          data={"source": str(reference.relative_to(ROOT))}),
            check_validity=False,
            overwrite=True,
        )
        # the lookup myst-nb will do must hit
        cache.match_cache_notebook(read_like_mystnb(chapter))
        result[chapter.stem] = None
    return result


def report(result: dict[str, str | None]) -> None:
    for stem, reason in result.items():
        if reason is None:
            print(f"prime_cache: {stem}: outputs from tests/notebooks/{stem}.ipynb")
        else:
            print(f"prime_cache: {stem}: NOT primed ({reason}); the build will execute it")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Prime the book's jupyter-cache.")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 unless every chapter was primed")
    args = parser.parse_args(argv)
    result = prime(args.cache)
    report(result)
    if args.strict and any(r is not None for r in result.values()):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
