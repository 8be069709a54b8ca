"""Resumable experiment runs: cells through a :class:`~labkit.infra.store.ResultStore`, a tidy
results table and a manifest (chapters 4 and 6, and ``python -m labkit run``).

A run writes into ``<out>/<experiment>/``: one checksummed JSON per finished cell (under
``cells/``), ``results.csv`` (the tidy table) and ``manifest.json`` (git revision, device,
library versions, wall time, seeds, config, how many cells are done). Both files are
rewritten atomically after every finished cell, so a killed run leaves a table of every
cell it finished; rerun, it skips them. ``only`` runs a subset of the cells and
``dry_run`` lists them with a cost estimate instead (:func:`plan`).
"""

from __future__ import annotations

import ast
import contextlib
import contextvars
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

from labkit.infra.cpu_pins import thread_env
from labkit.infra.runtime import get_mode
from labkit.infra.store import ResultStore, write_text_atomic

PROGRESS_ENV = "LABKIT_PROGRESS"  # 1 / 0: progress bars on / off, whatever else holds
# seconds per unit of a cell's work (FLOPs) before any cell of the run has been timed: an
# order of magnitude only, said so wherever it is used
NOMINAL_FLOPS = {"cpu": 2e10, "cuda": 2e12}


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    shell = shell.get_ipython() if shell is not None else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def progress_enabled() -> bool:
    """Progress bars for a person: at a terminal or in a Jupyter kernel (``tqdm.auto``
    draws a widget there); never under CI, pytest or nbval (whose references would hold
    them; the test configuration sets ``$LABKIT_PROGRESS=0`` for the kernels it starts).
    ``$LABKIT_PROGRESS`` (1 or 0), when set, decides alone."""
    flag = os.environ.get(PROGRESS_ENV)
    if flag is not None:
        return flag.strip().lower() not in ("", "0", "false", "no", "off")
    if os.environ.get("CI") or "PYTEST_CURRENT_TEST" in os.environ:
        return False
    return sys.stderr.isatty() or _in_notebook()


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass


@contextlib.contextmanager
def step_bar(total: int, desc: str, unit: str = "it"):
    """A progress bar inside one cell (pre-training iterations, say), below the bar over
    cells, gone when the cell ends; a no-op object when bars are off."""
    if not progress_enabled() or total <= 0:
        yield _NoBar()
        return
    from tqdm.auto import tqdm

    with tqdm(total=total, desc=desc, unit=unit, leave=False, position=1) as bar:
        yield bar


def git_revision() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parents[1], timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def labkit_modified() -> bool | None:
    """Whether the working tree's ``labkit/`` differs from ``HEAD`` (``None``: no git)."""
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--", "."],
                             capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parents[1])
        return bool(out.stdout.strip()) if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def manifest(cfg, device, wall_s: float, computed: int, reused: int,
             revision: tuple[str, bool | None]) -> dict:
    """The run's record. ``revision``: the commit (and whether labkit had uncommitted
    changes) when the run started, the code it loaded; asked at each write instead, a
    commit made during a long run would be recorded for cells computed before it."""
    commit, modified = revision
    return {
        "config": type(cfg).__name__, "fields": dataclasses.asdict(cfg),
        "digest": cfg.digest(), "git_revision": commit, "labkit_modified": modified,
        "device": str(device),
        "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                        else platform.processor() or platform.machine()),
        "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
        "wall_time_s": round(wall_s, 3), "cells_computed": computed, "cells_reused": reused,
        "seeds": list(getattr(cfg, "seeds", [])),
    }


def parse_only(items) -> dict:
    """``["m=10,20", "N=200"]`` (the CLI's ``--only``) -> ``{"m": [10, 20], "N": [200]}``;
    values are Python literals where they parse as one, else strings."""
    only = {}
    for item in items or ():
        key, sep, text = item.partition("=")
        if not sep or not key.strip() or not text.strip():
            raise ValueError(f"--only: expected FIELD=VALUE[,VALUE...], got {item!r}")
        only.setdefault(key.strip(), []).extend(_literal(v) for v in text.split(","))
    return only


def _literal(text: str):
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        return text.strip()


def select_cells(cells: list[dict], only: dict | None) -> list[dict]:
    """The cells whose parameters take one of the listed values for every key of ``only``
    (``None`` or empty: all). An unknown key, or a selection matching nothing, is an error
    naming what exists."""
    if not only:
        return list(cells)
    keys = sorted({k for c in cells for k in c})
    for key in only:
        if key not in keys:
            raise ValueError(f"--only: {key!r} is not a cell parameter; allowed: "
                             f"{', '.join(keys)}")
    chosen = [c for c in cells if all(c.get(k) in v for k, v in only.items())]
    if not chosen:
        values = {k: _distinct(c[k] for c in cells if k in c) for k in only}
        raise ValueError("--only: no cell matches " + ", ".join(
            f"{k} in {v}" for k, v in only.items()) + "; the cells have " + "; ".join(
            f"{k}: {', '.join(vals)}" for k, vals in values.items()))
    return chosen


def _distinct(values) -> list[str]:
    found = {json.dumps(v, sort_keys=True): v for v in values}
    try:
        ordered = sorted(found.values())
    except TypeError:  # mixed types: keep the cells' order
        ordered = list(found.values())
    return [repr(v) for v in ordered]


def _varying(cells: list[dict]) -> list[str]:
    """The parameters that tell the cells apart (the rest is the same in every cell)."""
    keys = list(dict.fromkeys(k for c in cells for k in c))
    return [k for k in keys if len({json.dumps(c.get(k), sort_keys=True) for c in cells}) > 1]


def _label(cell: dict, keys) -> str:
    return " ".join(f"{k}={cell[k]}" for k in keys if k in cell) or "the cell"


def plan(name: str, cells: list[dict], *, store: ResultStore, work, device) -> pd.DataFrame:
    """What a run would do, computing nothing: one row per cell with the parameters that
    vary, whether it is ``done`` (its seconds as measured) or still ``todo``, its work
    (``work(cell)``, floating-point operations, an estimate) and the estimated seconds: the
    work times this run's measured seconds per operation where some cells were timed, else
    an assumed nominal rate (:data:`NOMINAL_FLOPS`; the column ``basis`` says which)."""
    keys = _varying(cells)
    rows = []
    for cell in cells:
        done = store.load(name, cell) is not None
        seconds = store.seconds(name, cell) if done else None
        rows.append({**{k: cell.get(k) for k in keys}, "status": "done" if done else "todo",
                     "work_gflop": work(cell) / 1e9 if work else float("nan"),
                     "seconds": float("nan") if seconds is None else seconds})
    table = pd.DataFrame(rows)
    rate, basis = _rate(table, device)
    table["est_s"] = table["work_gflop"] * 1e9 / rate
    table.loc[table["status"] == "done", "est_s"] = 0.0
    table["basis"] = basis
    return table


def _rate(table: pd.DataFrame, device) -> tuple[float, str]:
    """Operations per second for :func:`plan`'s estimates: measured on the timed finished
    cells of ``table`` (columns ``status``, ``work_gflop``, ``seconds``) when there are
    any, else the assumed :data:`NOMINAL_FLOPS` of the device's type."""
    timed = table[(table["status"] == "done") & table["seconds"].notna()]
    if len(timed) and timed["work_gflop"].sum() > 0 and timed["seconds"].sum() > 0:
        return timed["work_gflop"].sum() * 1e9 / timed["seconds"].sum(), "measured"
    return NOMINAL_FLOPS.get(torch.device(device).type, NOMINAL_FLOPS["cpu"]), "assumed"


_REUSE_ONLY = contextvars.ContextVar("labkit_reuse_only", default=False)
_BUDGET = contextvars.ContextVar("labkit_budget_s", default=None)


@contextlib.contextmanager
def reusing_only():
    """Inside this block :func:`run_cells` computes nothing: it tabulates the finished
    cells and skips the others (the command line's ``--reuse-only``), e.g. to write the
    table of a sweep that other processes are still filling."""
    token = _REUSE_ONLY.set(True)
    try:
        yield
    finally:
        _REUSE_ONLY.reset(token)


@contextlib.contextmanager
def within_budget(seconds: float | None):
    """Inside this block :func:`run_cells` starts no cell that its estimate (:func:`plan`'s:
    the operations of the cell at the rate measured on the run's finished cells, else the
    assumed nominal rate) says would end more than ``seconds`` after the run started; it
    skips it and says so (the command line's ``--budget``: a GPU loan's prepared runs stop
    before a cell they cannot finish, and the next loan continues). ``None``: no limit."""
    if seconds is not None and not seconds > 0:
        raise ValueError(f"--budget: must be a positive number of seconds, got {seconds!r}")
    token = _BUDGET.set(seconds)
    try:
        yield
    finally:
        _BUDGET.reset(token)


def _fits(store: ResultStore, key: str, cells: list[dict], cell: dict, work, device,
          left: float) -> tuple[bool, float]:
    """Whether ``cell``'s estimated seconds fit in the ``left`` seconds of the budget."""
    if work is None:
        return True, float("nan")
    table = plan(key, cells, store=store, work=work, device=device)
    est = float(work(cell)) / _rate(table, device)[0]
    return est <= left, est


def _compute_and_store(root: str, key: str, cell: dict, compute) -> float:
    """A pool worker: compute one cell and store it (atomically) before returning."""
    start = time.perf_counter()
    payload = compute(cell)
    seconds = time.perf_counter() - start
    ResultStore(root).save(key, cell, payload, seconds=seconds)
    return seconds


def _precompute(store: ResultStore, key: str, cells: list[dict], compute, workers: int
                ) -> set[str]:
    """Compute the missing cells in ``workers`` spawned processes of one thread each (so
    their numbers do not depend on ``workers``: the cells must compute in one thread in
    the calling process too); each stores its cell when done. ``compute`` must be
    picklable. Returns the keys computed."""
    import concurrent.futures as cf
    import multiprocessing

    missing = [c for c in cells if store.load(key, c) is None]
    if not missing:
        return set()
    done = set()
    with thread_env(1), cf.ProcessPoolExecutor(
            min(workers, len(missing)), mp_context=multiprocessing.get_context("spawn")) as ex:
        futures = {ex.submit(_compute_and_store, str(store.root), key, c, compute):
                   store.key(key, c) for c in missing}
        try:
            for f in cf.as_completed(futures):
                f.result()  # a worker's exception surfaces here, with its traceback
                done.add(futures[f])
        except BaseException:
            for f in futures:
                f.cancel()
            raise
    return done


def run_cells(name: str, cfg, cells, compute, to_rows, *, out: str | os.PathLike,
              device, shared: str | None = None, only: dict | None = None,
              dry_run: bool = False, work=None, workers: int = 1) -> pd.DataFrame:
    """Run every cell (a dict of parameters) of an experiment: ``compute(cell)`` returns a
    JSON-ready payload, ``to_rows(cell, payload)`` the cell's rows of the tidy table. Finished
    cells are read back from ``out``; ``results.csv`` and ``manifest.json`` are rewritten
    after every cell (the manifest's ``cell_seconds``: the compute time of the cells so far,
    as recorded when each was computed, whichever run computed it). Runs naming the same
    ``shared`` store (e.g. Tables 1 and 2) reuse each other's cells. ``only`` selects cells
    (:func:`select_cells`); ``dry_run`` returns :func:`plan` (``work(cell)``: the cell's
    estimated floating-point operations). ``workers > 1`` computes the missing cells first
    in that many one-thread processes (``compute`` picklable)."""
    root, device = Path(out) / name, torch.device(device)
    store = ResultStore(Path(out) / shared / "cells" if shared else root / "cells")
    key = shared or name
    cells = select_cells(list(cells), only)
    if dry_run:
        return plan(key, cells, store=store, work=work, device=device)
    keys = _varying(cells)
    revision = (git_revision(), labkit_modified())  # the code this process runs
    start, computed, frames, cell_s = time.perf_counter(), 0, [], 0.0
    total = len(cells)
    if _REUSE_ONLY.get():
        cells = [c for c in cells if store.load(key, c) is not None]
        if not cells:
            raise ValueError(f"--reuse-only: no finished cell of {name} under {root}")
    archived = _from_archive(store, key, cells)
    pooled = _precompute(store, key, cells, compute, workers) if workers > 1 else set()
    budget, skipped = _BUDGET.get(), []
    bar = None
    if progress_enabled():
        from tqdm.auto import tqdm

        bar = tqdm(total=len(cells), desc=name, unit="cell")
    try:
        for cell in cells:
            if bar is not None:
                bar.set_postfix_str(_label(cell, keys))
            if budget is not None and store.load(key, cell) is None:
                left = budget - (time.perf_counter() - start)
                fits, est = _fits(store, key, cells, cell, work, device, left)
                if not fits:
                    skipped.append(cell)
                    print(f"{name}: not started within the budget: {_label(cell, keys)} "
                          f"(estimated {est:.0f} s, {max(left, 0):.0f} s left)")
                    if bar is not None:
                        bar.update()
                    continue
            payload, fresh = store.get_or_compute(key, cell, lambda cell=cell: compute(cell))
            computed += fresh or store.key(key, cell) in pooled
            cell_s += store.seconds(key, cell) or 0.0  # as measured when it was computed
            frames.append(to_rows(cell, payload))
            done = len(frames)
            root.mkdir(parents=True, exist_ok=True)
            write_text_atomic(root / "results.csv",
                          pd.concat(frames, ignore_index=True).to_csv(index=False))
            info = manifest(cfg, device, time.perf_counter() - start, computed,
                            done - computed, revision)
            info.update(cells_done=done, cells_total=total, complete=done == total,
                        from_archive=archived,
                        only=only or None, cell_seconds=round(cell_s, 3))
            write_text_atomic(root / "manifest.json", json.dumps(info, indent=2))
            if bar is not None:
                bar.update()
    finally:
        if bar is not None:
            bar.close()
    if skipped:
        print(f"{name}: {len(skipped)} of {total} cells left for a later run (--budget)")
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


ARCHIVE = Path(__file__).resolve().parents[2] / "results" / "archive"


def _from_archive(store: ResultStore, key: str, cells: list[dict]) -> int:
    """Full mode only (a chapter run with ``LABKIT_MODE=full``, in JupyterLab say): copy into
    ``store`` every cell of ``cells`` that ``results/archive/<key>/`` holds and ``store``
    lacks, so that a committed run (a GPU archive, for one) is shown, not recomputed. A
    cell's key is its parameters and code digest, so a copied cell is the same computation;
    quick mode never reads the archive (nbval must recompute every number). Returns how
    many cells were copied, and says so when any were."""
    archive = ResultStore(ARCHIVE / key / "cells")
    if get_mode() != "full" or not archive.root.is_dir() or \
            archive.root.resolve() == store.root.resolve():
        return 0
    copied = 0
    for cell in cells:
        if store.load(key, cell) is None:
            payload = archive.load(key, cell)
            if payload is not None:
                store.save(key, cell, payload, seconds=archive.seconds(key, cell))
                copied += 1
    if copied:
        print(f"{key}: {copied} of {len(cells)} cells read from the archived run "
              f"{archive.root.parent}")
    return copied


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


def find_archive(name: str, root: str | os.PathLike = ARCHIVE
                 ) -> tuple[pd.DataFrame, dict] | None:
    """:func:`load_archive`, or ``None`` when the run has not been archived (yet): the GPU
    runs of issue 24 (``tools/gpu_runs/``), which chapters show when a loan has made them."""
    folder = Path(root) / name
    if not (folder / "results.csv").is_file() or not (folder / "manifest.json").is_file():
        return None
    return load_archive(name, root)

