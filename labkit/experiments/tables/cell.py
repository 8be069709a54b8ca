"""Tables 1-2 (Appendix E): pre-train a deep network with checkpoints, prune it by
layer-wise channel GFS at every checkpoint to a calibrated FLOP budget, against L1-norm and
random channel pruning at the same per-layer channel counts, fine-tune, evaluate. Chapter 7.

Protocol (TEXT unless marked): SGD with momentum 0.9, cosine learning rate from 0.1, batch
128 (:mod:`labkit.deep.train`, crash-safe); the weight decay is 5e-4 on CIFAR10 (INFERRED,
the recipe the paper cites) and 4e-5 on ImageNet (Ye et al.'s code, which the paper says it
follows). The layer-wise procedure is Ye et al.'s: groups pruned input to output
(:func:`prunable_groups`; for MobileNetV2 the hidden channels and the stage streams, their
``no_prune_list = [0, 1, 33, 34]`` skipped), each followed by 0.1 epoch of SGD at a fixed
rate 2.5e-3 without momentum. The tolerance ``eps`` is calibrated once per (architecture,
FLOP target) by bracketed bisection at the last checkpoint on the largest sub-dataset
(:func:`calibrate`; the paper tuned it on a validation split, footnote 4), and stored:
``results/calibration`` holds the committed ones, so a chapter does not repeat the search.

One cell per (arch, size, target, checkpoint) prunes with GFS, then with each baseline at
GFS's per-layer channel counts (the same per-layer and final fine-tuning), removes the
pruned channels physically and measures test accuracy, FLOPs and parameters. Cells run
through :func:`labkit.infra.runner.run_cells`; inside a cell the layer-wise state is saved after
every group and the fine-tuning every ``checkpoint_every`` iterations, so a killed run
resumes without redoing finished work.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import shutil
from pathlib import Path

import pandas as pd
import torch

from labkit.deep.data import Images, load_images, validation_split
from labkit.deep.graph import shrink
from labkit.deep.nets import count_flops, count_params
from labkit.deep.train import sgd, train
from labkit.experiments.tables.layerwise import (
    _reduction,
    _Setting,
    _ye_skipped,
    accuracy,
    build_net,
    l1_scores,
    layerwise,
    pretrain_key,
    pretrained,
    prunable_groups,
)
from labkit.infra.runner import ARCHIVE, run_cells
from labkit.infra.store import ResultStore, code_digest

__all__ = ["Images", "load_images", "sgd", "run_table", "calibrate", "prunable_groups"]

CALIBRATION = ARCHIVE.parent / "calibration"  # committed calibrations (read first)
NAMES = {"mobilenet_v2": "MobileNetV2", "resnet34": "ResNet34"}


def deep_code() -> str:
    """Digest of the code a cell's or a calibration's numbers depend on (the modules and
    this module's computing functions, not its views), part of their keys."""
    return code_digest("deep/nets.py", "deep/graph.py", "deep/prune.py",
                       "deep/channel_gfs.py", "deep/train.py", "deep/data.py", "infra/data.py",
                       build_net, accuracy, pretrain_key, pretrained, _ye_skipped,
                       prunable_groups, l1_scores, _Setting, layerwise, _reduction,
                       prune_cell, calibrate)


# -- a cell ---------------------------------------------------------------------------------

def prune_cell(cfg, data: Images, cell: dict, *, root: Path, device) -> dict:
    """Prune the checkpoint of one cell with GFS and each baseline, fine-tune, shrink,
    evaluate on the test set."""
    arch, width, size, t, eps = (cell[k] for k in ("arch", "width", "size", "t", "eps"))
    model = pretrained(cfg, data, arch, width, size, t, root=root / "checkpoints",
                       device=device)
    s = _Setting(cfg, data, size, t, device)
    key = hashlib.sha256(json.dumps(cell, sort_keys=True).encode()).hexdigest()[:16]
    folder = root / "work" / key
    shape = tuple(s.example.shape[1:])
    out = {"dense_acc": accuracy(model, data.test, device, workers=cfg.workers),
           "dense_flops": count_flops(model, shape), "dense_params": count_params(model),
           "eps": eps, "methods": {}}
    kept = None
    for method in cfg.methods:
        work, layers = layerwise(s, arch, model, method, eps=eps, kept=kept,
                                 folder=folder / method)
        kept = kept or {r["group"]: r["kept"] for r in layers}
        small = shrink(work, s.example).eval()
        pruned_acc = accuracy(small, data.test, device, workers=cfg.workers)
        small = train(small, data, s.pool, stop=cfg.finetune_iters, total=cfg.finetune_iters,
                      lr=cfg.finetune_lr, cfg=cfg, seed=s.seed + 2, device=device,
                      folder=folder / method / "finetune", desc=f"{method}: fine-tuning")
        out["methods"][method] = {
            "pruned_acc": pruned_acc,
            "finetuned_acc": accuracy(small, data.test, device, workers=cfg.workers),
            "flops": count_flops(small, shape), "params": count_params(small),
            "kept_channels": sum(r["kept"] for r in layers) / sum(r["C"] for r in layers),
            "layers": layers}
    shutil.rmtree(folder, ignore_errors=True)  # the cell's result is all that is kept
    return out


COLUMNS = ["dense_acc", "pruned_acc", "finetuned_acc", "flops", "dense_flops", "params",
           "dense_params", "kept_channels"]


def _rows(cell: dict, payload: dict) -> pd.DataFrame:
    rows = []
    for method, r in payload["methods"].items():
        row = {k: cell[k] for k in ("arch", "size", "target", "t")}
        row.update(eps=payload["eps"], method=method)
        row.update({k: payload[k] for k in ("dense_acc", "dense_flops", "dense_params")})
        row.update({k: r[k] for k in ("pruned_acc", "finetuned_acc", "flops", "params",
                                      "kept_channels")})
        rows.append(row)
    return pd.DataFrame(rows)[["arch", "size", "target", "t", "eps", "method", *COLUMNS]]


@functools.cache
def _images(source: str) -> Images:
    return load_images(source)


class _one_thread:
    """Cells and calibrations compute in one thread, in a pool worker or not, so that their
    numbers do not depend on how many run at once."""

    def __enter__(self):
        self.saved = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc):
        torch.set_num_threads(self.saved)


def _cell_worker(cfg, root: str, device: str, data, cell: dict) -> dict:
    with _one_thread():
        return prune_cell(cfg, data or _images(cfg.source), cell, root=Path(root),
                          device=torch.device(device))


def _calibration_worker(cfg, root: str, device: str, data, params: dict) -> dict:
    with _one_thread():
        return calibrate(cfg, data or _images(cfg.source), params["arch"], params["width"],
                         params["target"], root=Path(root), device=torch.device(device))


# -- calibration ----------------------------------------------------------------------------

def _largest(sizes) -> int:
    return 0 if 0 in sizes else max(sizes)


def calibration_params(cfg, arch: str, width: float, target: float) -> dict:
    """What a calibration depends on: the pruning and pre-training settings and the code,
    not the final fine-tuning, the baselines or the checkpoint cadence."""
    skip = {"finetune_iters", "finetune_lr", "methods", "checkpoint_every", "sizes",
            "targets", "param_targets", "archs", "widths", "workers", "processes",
            "checkpoints"}
    base = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in skip}
    return {**base, "arch": arch, "width": width, "target": target,
            "size": _largest(cfg.sizes), "t": cfg.checkpoints[-1],
            "horizon": cfg.checkpoints[-1], "code": deep_code()}


def calibrate(cfg, data: Images, arch: str, width: float, target: float, *, root: Path,
              device) -> dict:
    """The tolerance ``eps`` that prunes ``arch`` to ``target`` of its FLOPs (within
    ``cfg.calibration_tol``) at the last checkpoint on the largest sub-dataset: bisection
    on ``eps`` (larger ``eps``, earlier stops, fewer FLOPs) with the secant point inside
    the bracket, at most ``cfg.calibration_steps`` GFS runs. Returns the chosen ``eps``,
    its kept fractions, its validation accuracy (before the final fine-tuning), every probe
    and whether the probes were monotone."""
    p = calibration_params(cfg, arch, width, target)
    model = pretrained(cfg, data, arch, width, p["size"], p["t"], root=root / "checkpoints",
                       device=device)
    s = _Setting(cfg, data, p["size"], p["t"], device)
    _, val = validation_split(cfg, data)
    val_set = torch.utils.data.Subset(data.train, val.tolist())
    probes = []

    def probe(eps: float) -> dict:
        folder = root / "work" / f"calibrate-{arch}-{target}-{eps:.6f}"
        work, layers = layerwise(s, arch, model, "gfs", eps=eps, folder=folder)
        small = shrink(work, s.example).eval()
        rec = {"eps": eps, **_reduction(s, model, small),
               "val_acc": accuracy(small, val_set, device, workers=cfg.workers),
               "kept": [r["kept"] for r in layers]}
        shutil.rmtree(folder, ignore_errors=True)
        probes.append(rec)
        return rec

    # a bracket [lo, hi] of (eps, kept FLOPs) around the target, widened by factors of 4
    # from a typical value, then narrowed at the secant point in log(eps), kept inside
    eps, lo, hi, best = 0.05, None, None, None
    for _ in range(cfg.calibration_steps):
        rec = probe(eps)
        if best is None or abs(rec["flops"] - target) < abs(best["flops"] - target):
            best = rec
        if abs(rec["flops"] - target) <= cfg.calibration_tol:
            break
        if rec["flops"] > target:
            lo = (eps, rec["flops"])
        else:
            hi = (eps, rec["flops"])
        if hi is None:
            if eps >= 0.99:
                break
            eps = min(0.99, 4 * eps)
        elif lo is None:
            if eps <= 1e-5:
                break
            eps = eps / 4
        else:
            w = (lo[1] - target) / max(lo[1] - hi[1], 1e-12)
            u0, u1 = math.log(lo[0]), math.log(hi[0])
            eps = math.exp(u0 + min(max(w, 0.25), 0.75) * (u1 - u0))
    ordered = sorted(probes, key=lambda r: r["eps"])
    pairs = zip(ordered, ordered[1:], strict=False)
    monotone = all(a["flops"] >= b["flops"] for a, b in pairs)
    return {**best, "target": target, "probes": probes,
            "monotone": monotone, "within_tol": abs(best["flops"] - target)
            <= cfg.calibration_tol}


def calibrations(cfg, *, out, device, data: Images | None = None, workers: int = 1,
                 store_root: Path | None = None, compute: bool = True) -> dict:
    """``{(arch, target): calibration}``: the repository's stored ones
    (``results/calibration``) where they match, the others computed (``workers``
    one-thread processes) and stored under ``store_root`` (default ``out``); with
    ``compute=False`` a missing one is ``None``."""
    from labkit.infra.runner import _precompute

    committed = ResultStore(CALIBRATION)
    store = ResultStore(store_root or Path(out) / "deep" / "calibration")
    wanted = {(a, t): calibration_params(cfg, a, w, t)
              for a, w in zip(cfg.archs, cfg.widths, strict=True) for t in cfg.targets}
    todo = [p for p in wanted.values() if committed.load("deep", p) is None]
    if todo and compute:
        _pretrain_all(cfg, data, sizes=[_largest(cfg.sizes)], out=out, device=device)
        work = functools.partial(_calibration_worker, cfg, str(Path(out) / "deep"),
                                 str(device), data)
        if workers > 1:
            _precompute(store, "deep", todo, work, workers)
        for p in todo:
            store.get_or_compute("deep", p, lambda p=p: work(p))
    return {k: committed.load("deep", p) or store.load("deep", p) for k, p in wanted.items()}


def _pretrain_all(cfg, data, *, sizes, out, device) -> None:
    """Every pre-training run a table needs, to its last checkpoint, in this process (the
    pool workers then only read checkpoints)."""
    data = data or _images(cfg.source)
    for arch, width in zip(cfg.archs, cfg.widths, strict=True):
        for size in sizes:
            pretrained(cfg, data, arch, width, size, cfg.checkpoints[-1],
                       root=Path(out) / "deep" / "checkpoints", device=device)


# -- the table ------------------------------------------------------------------------------

def run_table(cfg, *, out, device=None, name: str = "table1", data: Images | None = None,
              only: dict | None = None, dry_run: bool = False,
              eps: dict | None = None, workers: int | None = None) -> pd.DataFrame:
    """Every (arch, size, target, checkpoint) cell of ``cfg``, resumable under ``out``, one
    row per cell and method (``gfs`` and the baselines) with dense, pruned and fine-tuned
    test accuracy, FLOPs and parameters (of the physically smaller network) and the
    fraction of channels kept; ``only`` selects cells, ``dry_run`` returns the plan.
    ``eps``: ``{(arch, target): eps}`` instead of the calibrated values (tests).
    ``workers`` (default ``cfg.processes``): one-thread processes computing cells at once.
    The data are loaded only when something is computed."""
    device = torch.device(device or "cpu")
    workers = cfg.processes if workers is None else workers
    if eps is None:  # a dry run shows the cells of the stored calibrations, if any
        cal = calibrations(cfg, out=out, device=device, data=data, workers=workers,
                           compute=not dry_run)
        eps = {k: c["eps"] for k, c in cal.items() if c is not None}
    eps = dict(eps or {})
    code = deep_code()
    cells = [{**cfg.cell_params(), "code": code, "arch": arch, "width": width, "size": size,
              "target": target, "eps": eps.get((arch, target)), "t": t}
             for arch, width in zip(cfg.archs, cfg.widths, strict=True)
             for size in cfg.sizes for target in cfg.targets for t in cfg.checkpoints]
    store = ResultStore(Path(out) / "deep" / "cells")
    if not dry_run and any(store.load("deep", c) is None for c in cells):
        _pretrain_all(cfg, data, sizes=cfg.sizes, out=out, device=device)
    work = functools.partial(_cell_worker, cfg, str(Path(out) / "deep"), str(device), data)
    return run_cells(name, cfg, cells, work, _rows, out=out, device=device, shared="deep",
                     only=only, dry_run=dry_run, workers=workers)


def calibration_table(cfg, *, out, device=None, data: Images | None = None) -> pd.DataFrame:
    """One row per (arch, FLOP target): the calibrated ``eps``, the kept FLOP and parameter
    fractions it reached beside the targets, its validation accuracy, the probes made."""
    cal = calibrations(cfg, out=out, device=torch.device(device or "cpu"), data=data,
                       workers=cfg.processes)
    p_target = dict(zip(cfg.targets, cfg.param_targets, strict=True))
    return pd.DataFrame([{"model": NAMES.get(a, a), "FLOP target": t,
                          "FLOPs kept": round(c["flops"], 3), "param target": p_target[t],
                          "params kept": round(c["params"], 3), "eps": round(c["eps"], 4),
                          "val acc": round(c["val_acc"], 3), "probes": len(c["probes"]),
                          "monotone": c["monotone"]} for (a, t), c in cal.items()])
