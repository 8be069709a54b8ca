"""Resumable experiment runs: cells through a :class:`~labkit.store.ResultStore`, a tidy
results table and a manifest (chapters 4 and 6, and ``python -m labkit run``).

A run writes into ``<out>/<experiment>/``: one checksummed JSON per finished cell (under
``cells/``), ``results.csv`` (the tidy table) and ``manifest.json`` (git revision, device,
library versions, wall time, seeds, config). A killed run restarts and skips finished cells.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from labkit.store import ResultStore


def progress_enabled() -> bool:
    """tqdm bars only for a person at a terminal: never under CI or pytest."""
    return not (os.environ.get("CI") or "PYTEST_CURRENT_TEST" in os.environ
                or not sys.stderr.isatty())


def git_revision() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def manifest(cfg, device, wall_s: float, computed: int, reused: int) -> dict:
    return {
        "config": type(cfg).__name__, "fields": dataclasses.asdict(cfg),
        "digest": cfg.digest(), "git_revision": git_revision(),
        "device": str(device),
        "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                        else platform.processor() or platform.machine()),
        "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
        "wall_time_s": round(wall_s, 3), "cells_computed": computed, "cells_reused": reused,
        "seeds": list(getattr(cfg, "seeds", [])),
    }


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def run_cells(name: str, cfg, cells, compute, to_rows, *, out: str | os.PathLike,
              device, shared: str | None = None) -> pd.DataFrame:
    """Run every cell (a dict of parameters) of an experiment: ``compute(cell)`` returns a
    JSON-ready payload, ``to_rows(cell, payload)`` the cell's rows of the tidy table. Finished
    cells are read back from ``out``; results and manifest are written at the end. Runs
    naming the same ``shared`` store (e.g. Tables 1 and 2) reuse each other's cells."""
    root = Path(out) / name
    store = ResultStore(Path(out) / shared / "cells" if shared else root / "cells")
    start, computed, frames = time.perf_counter(), 0, []
    iterator = cells
    if progress_enabled():
        from tqdm.auto import tqdm

        iterator = tqdm(cells, desc=name)
    for cell in iterator:
        payload, fresh = store.get_or_compute(shared or name, cell, lambda cell=cell: compute(cell))
        computed += fresh
        frames.append(to_rows(cell, payload))
    table = pd.concat(frames, ignore_index=True)
    root.mkdir(parents=True, exist_ok=True)
    _atomic_write(root / "results.csv", table.to_csv(index=False))
    info = manifest(cfg, device, time.perf_counter() - start, computed, len(cells) - computed)
    _atomic_write(root / "manifest.json", json.dumps(info, indent=2))
    return table


ARCHIVE = Path(__file__).resolve().parent.parent / "results" / "archive"


def load_archive(name: str, root: str | os.PathLike = ARCHIVE) -> tuple[pd.DataFrame, dict]:
    """A finished run stored in the repository (``results/archive/<name>/``): its results
    table and manifest. Chapters show such runs beside their live quick runs."""
    folder = Path(root) / name
    try:
        table = pd.read_csv(folder / "results.csv")
        info = json.loads((folder / "manifest.json").read_text())
    except FileNotFoundError as err:
        raise FileNotFoundError(f"no archived run {name!r} under {folder}; make it with: "
                                f"python -m labkit run {name} --out {Path(root)}") from err
    return table, info
