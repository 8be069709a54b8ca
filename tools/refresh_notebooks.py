"""(Re)generate the executed quick-mode reference notebooks ``tests/notebooks/NN_name.ipynb``.

Each chapter ``chapters/NN_name.py`` (Jupytext percent format) is the only source. Its
reference notebook holds the outputs of one quick-mode run; nbval re-executes it in the
test suite and compares, and ``tools/prime_cache.py`` hands the same verified outputs to
the book build, so every chapter is executed once per CI run.

    python tools/refresh_notebooks.py                 # execute every chapter (quick mode)
    python tools/refresh_notebooks.py 02_gfs_frank_wolfe   # one chapter (name or path)
    python tools/refresh_notebooks.py --inputs-only   # sources only, keep stored outputs

``--inputs-only`` runs ``jupytext --to ipynb --update`` (byte-identical output when the
notebook is already in sync, so ``git diff --exit-code tests/notebooks`` detects a stale
reference). Execution runs in ``tests/notebooks/`` (the folder nbval runs it in) with
``LABKIT_MODE=quick``, the CPU pins of ``labkit.infra.cpu_pins`` (so the stored numbers are the
ones every machine reproduces) and a fresh, empty ``LABKIT_RESULTS`` folder per chapter (so
no stored cell of an earlier run is read), in the ``python3`` kernel of this environment.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import labkit_env  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = ROOT / "chapters"
NOTEBOOKS = ROOT / "tests" / "notebooks"
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}
TIMEOUT_S = 600  # per cell, as in _config.yml (execute.timeout)


def chapter_paths(names: list[str]) -> list[Path]:
    """Resolve chapter names ('01_network', '01_network.py', 'chapters/01_network.py')."""
    if not names:
        paths = sorted(CHAPTERS.glob("[0-9]*.py"))
        if not paths:
            sys.exit(f"refresh_notebooks: no chapters/*.py under {CHAPTERS}")
        return paths
    paths = []
    for name in names:
        path = CHAPTERS / (Path(name).stem + ".py")
        if not path.is_file():
            sys.exit(f"refresh_notebooks: no chapter {path.relative_to(ROOT)}")
        paths.append(path)
    return paths


def notebook_path(chapter: Path) -> Path:
    return NOTEBOOKS / (chapter.stem + ".ipynb")


def update_inputs(chapter: Path) -> None:
    """Refresh the notebook's cells from the chapter, keeping stored outputs."""
    target = notebook_path(chapter)
    cmd = [sys.executable, "-m", "jupytext", "--quiet", "--to", "ipynb", "--update",
           "-o", str(target), str(chapter)]
    if not target.exists():
        cmd.remove("--update")
    subprocess.run(cmd, check=True, cwd=ROOT)


def execute(chapter: Path) -> float:
    """Execute the chapter in quick mode and write its reference notebook."""
    import jupytext
    from nbclient import NotebookClient

    # the kernel inherits all of this: quick mode, the CPU pins, a fresh results folder
    results = tempfile.mkdtemp(prefix="labkit-refresh-")
    labkit_env.set_kernel_env("quick", results)
    nb = jupytext.read(chapter)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    NOTEBOOKS.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    client = NotebookClient(
        nb,
        timeout=TIMEOUT_S,
        kernel_name=KERNELSPEC["name"],
        allow_errors=False,
        record_timing=False,  # no timestamps in cell metadata: keeps diffs to real changes
        resources={"metadata": {"path": str(NOTEBOOKS)}},  # cwd, as under nbval
    )
    try:
        client.execute()
    finally:
        shutil.rmtree(results, ignore_errors=True)
    seconds = time.perf_counter() - start
    jupytext.write(nb, notebook_path(chapter))
    # normalise through the same path --inputs-only takes, so that a refresh of the
    # inputs of an up-to-date notebook is byte-identical
    update_inputs(chapter)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("chapters", nargs="*", help="chapter names (default: all)")
    parser.add_argument("--inputs-only", action="store_true",
                        help="refresh cell sources only, keep stored outputs (no execution)")
    args = parser.parse_args(argv)
    for chapter in chapter_paths(args.chapters):
        rel = notebook_path(chapter).relative_to(ROOT)
        if args.inputs_only:
            update_inputs(chapter)
            print(f"refresh_notebooks: inputs of {rel} refreshed")
        else:
            seconds = execute(chapter)
            print(f"refresh_notebooks: {rel} executed in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
