"""Tables 1-2 (Appendix E): pre-train a deep network with checkpoints, prune it by
layer-wise channel GFS at every checkpoint to a calibrated FLOP budget, against L1-norm and
random channel pruning at the same per-layer channel counts, fine-tune, evaluate. Chapter 7.

Protocol (TEXT unless marked): SGD with momentum 0.9, cosine learning rate from 0.1, batch
128 (:mod:`labkit.deeptrain`, crash-safe); the weight decay is 5e-4 on CIFAR10 (INFERRED,
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
through :func:`labkit.runner.run_cells`; inside a cell the layer-wise state is saved after
every group and the fine-tuning every ``checkpoint_every`` iterations, so a killed run
resumes without redoing finished work.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import json
import math
import shutil
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from labkit.channel_graph import Traced, find_groups, set_group_mask, shrink
from labkit.channel_prune import prune_group
from labkit.deepdata import Images, load_images, subset, validation_split
from labkit.deepnets import build, count_flops, count_params
from labkit.deeptrain import atomic_save, batches, load_state, sgd, train
from labkit.runner import ARCHIVE, run_cells
from labkit.store import ResultStore, code_digest

__all__ = ["Images", "load_images", "sgd", "run_table", "table_view", "paper_view",
           "protocol_table", "calibrate", "prunable_groups"]

CALIBRATION = ARCHIVE.parent / "calibration"  # committed calibrations (read first)
NAMES = {"mobilenet_v2": "MobileNetV2", "resnet34": "ResNet34"}


def build_net(cfg, data: Images, arch: str, width: float) -> torch.nn.Module:
    return build(arch, num_classes=data.num_classes, in_channels=data.in_channels,
                 width=width, small_input=data.small_input, seed=cfg.seed,
                 strides=cfg.mnv2_strides if arch == "mobilenet_v2" else None)


@torch.no_grad()
def accuracy(model, dataset: Dataset, device, batch_size: int = 500, workers: int = 0) -> float:
    model.eval()
    hits = n = 0
    for x, y in DataLoader(dataset, batch_size=batch_size, num_workers=workers):
        hits += int((model(x.to(device)).argmax(1) == y.to(device)).sum())
        n += len(y)
    return hits / n


# -- pre-training ---------------------------------------------------------------------------

def pretrain_key(cfg, arch: str, width: float, size: int) -> str:
    """Checkpoints depend on these settings and on the code (not on the pruning)."""
    blob = json.dumps([cfg.source, arch, width, list(cfg.mnv2_strides), size, cfg.val_size,
                       cfg.checkpoints[-1], cfg.lr, cfg.momentum, cfg.weight_decay,
                       cfg.batch_size, cfg.seed, code_digest("deepnets.py", "deeptrain.py",
                                                             "deepdata.py", "data.py")],
                      sort_keys=True)
    return f"{arch}-{size}-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"


def pretrained(cfg, data: Images, arch: str, width: float, size: int, t: int, *, root: Path,
               device) -> torch.nn.Module:
    """The dense network after ``t`` pre-training iterations. One crash-safe run per
    (arch, size) keeps every checkpoint of ``cfg``; a later ``t`` continues it."""
    folder = Path(root) / pretrain_key(cfg, arch, width, size)
    kept = folder / f"t{t}.pt"
    if kept.exists():
        return load_state(kept, device)["model"]
    model = build_net(cfg, data, arch, width).to(device)
    return train(model, data, subset(cfg, data, size), stop=t, total=cfg.checkpoints[-1],
                 lr=cfg.lr, cfg=cfg, seed=cfg.seed, device=device, folder=folder,
                 keep=cfg.checkpoints, desc=f"{arch} size={size}: pre-training to t={t}")


# -- what is pruned -------------------------------------------------------------------------

def _ye_skipped(model) -> set[str]:
    """Producers of the channels Ye et al.'s MobileNetV2 driver never prunes
    (``no_prune_list = [0, 1, 33, 34]`` over its 35 masks): the stem and the first block
    (0, 1), the last block's output (33) and the final 1x1 convolution (34)."""
    n = len(model.features)
    return {"features.0.0", "features.1.conv.1", f"features.{n - 2}.conv.2",
            f"features.{n - 1}.0"}


def prunable_groups(cfg, arch: str, model, example: torch.Tensor) -> list:
    """The channel groups a run prunes, input to output, found from the dependency graph
    (:func:`labkit.channel_graph.find_groups`). ``cfg.groups``: ``paper`` is ResNet34's 16
    block-inner groups, and for MobileNetV2 its 16 hidden groups and the stage streams
    (Ye et al. mask each block's projection output separately; the streams tie those of
    one stage, so here a stage's blocks lose the same channels) without Ye's skipped
    layers; ``inner`` the single-producer groups; ``all`` every supported group."""
    found = [g for g in find_groups(model, example) if g.supported]
    if cfg.groups == "all":
        return found
    if cfg.groups == "inner" or arch == "resnet34":
        return [g for g in found if g.kind == "inner"]
    skip = _ye_skipped(model)
    return [g for g in found if not set(g.producers) & skip]


def l1_scores(model, group) -> torch.Tensor:
    """Li et al.'s filter L1 norm of each channel: the sum of the absolute weights that
    produce it, over every producer of the group."""
    score = torch.zeros(group.C, dtype=torch.float64)
    for name in group.producers:
        W = model.get_submodule(name).weight.detach()
        if W.shape[0] != group.C:
            raise ValueError(f"groups: producer {name} has {W.shape[0]} outputs, the group "
                             f"{group.C}; L1 pruning needs one filter per channel")
        score += W.abs().flatten(1).sum(1).double().cpu()
    return score


# -- one layer-wise pruning run -------------------------------------------------------------

class _Setting:
    """What one cell's runs share: the data pool, the stopping-rule examples, the example
    input, the mini-batch source of the greedy steps."""

    def __init__(self, cfg, data: Images, size: int, t: int, device):
        self.cfg, self.data, self.device = cfg, data, device
        self.pool = subset(cfg, data, size)
        g = torch.Generator().manual_seed(cfg.seed + 7)
        ev = self.pool[torch.randperm(len(self.pool), generator=g)[:cfg.eval_size].numpy()]
        items = [data.train[int(i)] for i in ev]  # ImageNet: with its training transforms
        self.eval_X = torch.stack([x for x, _ in items]).to(device)
        self.eval_y = torch.as_tensor([int(y) for _, y in items]).to(device)
        self.example = self.eval_X[:1]
        self.seed = cfg.seed + 1_000 * (t + 1)
        self.layer_iters = math.ceil(cfg.layer_finetune_epochs * len(self.pool)
                                     / cfg.batch_size)

    @torch.no_grad()
    def eval_fn(self, model) -> float:
        return float((model(self.eval_X).argmax(1) == self.eval_y).double().mean())

    def mini_batch(self, j: int):
        return next(batches(self.data, self.pool, self.cfg.prune_batch, self.seed, j, j + 1,
                            device=self.device))


def layerwise(s: _Setting, arch: str, model, method: str, *, eps: float | None = None,
              kept: dict | None = None, folder: Path) -> tuple[torch.nn.Module, list[dict]]:
    """Prune ``model``'s groups input to output by ``method`` (``gfs`` with tolerance
    ``eps``; ``l1`` or ``random`` keeping ``kept[name]`` channels), each followed by the
    per-layer fine-tuning. The state is saved in ``folder`` after every group, and a call
    that finds it continues. Returns the masked network and one record per group."""
    cfg = s.cfg
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "layers.pt"
    gen = torch.Generator().manual_seed(s.seed + {"gfs": 0, "l1": 1, "random": 2}[method])
    if path.exists():
        state = load_state(path, s.device)
        work, done, used = state["work"], state["done"], state["used"]
        gen.set_state(state["gen"])
    else:
        work, done, used = copy.deepcopy(model).eval(), [], 0
    groups = prunable_groups(cfg, arch, work, s.example)
    traced = Traced(work) if method == "gfs" else None
    # a group starts from the network the previous one left: its accuracy is known
    before = done[-1]["acc_tuned"] if done else s.eval_fn(work)
    for i, g in enumerate(groups[len(done):], start=len(done)):
        if method == "gfs":
            res = prune_group(work, traced, g, lambda j, used=used: s.mini_batch(used + j),
                              s.eval_fn, eps=eps, max_keep=g.C,
                              n_candidates=cfg.n_candidates or None, gen=gen,
                              skip_eval=cfg.skip_eval or None, acc_before=before)
            used += len(res.order)
            k = len(res.order)
        else:
            k = kept[g.name]
            order = (torch.argsort(l1_scores(work, g), descending=True, stable=True)
                     if method == "l1" else torch.randperm(g.C, generator=gen))
            mu = torch.zeros(g.C)
            mu[order[:k]] = 1.0
            set_group_mask(g, mu)
        after = s.eval_fn(work)
        if s.layer_iters and k < g.C:  # Ye: no fine-tuning when every channel came back
            sgd(work, s.data, s.pool, start=0, stop=s.layer_iters, total=s.layer_iters,
                lr=cfg.layer_finetune_lr, cfg=cfg, seed=s.seed + 10 + i, device=s.device,
                momentum=cfg.layer_finetune_momentum, schedule="fixed",
                desc=f"{method} {g.name}: layer fine-tuning")
            work.eval()
        tuned = s.eval_fn(work) if s.layer_iters and k < g.C else after
        done.append({"group": g.name, "C": g.C, "kept": k, "acc_before": before,
                     "acc_pruned": after, "acc_tuned": tuned})
        before = tuned
        atomic_save({"work": work, "done": done, "used": used, "gen": gen.get_state()}, path)
    return work, done


def _reduction(s: _Setting, dense, small) -> dict:
    shape = tuple(s.example.shape[1:])
    return {"flops": count_flops(small, shape) / count_flops(dense, shape),
            "params": count_params(small) / count_params(dense)}


def deep_code() -> str:
    """Digest of the code a cell's or a calibration's numbers depend on (the modules and
    this module's computing functions, not its views), part of their keys."""
    return code_digest("deepnets.py", "channel_graph.py", "channel_prune.py",
                       "channel_gfs.py", "deeptrain.py", "deepdata.py", "data.py",
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
    from labkit.runner import _precompute

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


# -- the paper's numbers and the side-by-side views -------------------------------------------

# The paper's numbers (TEXT, Appendix E), test accuracy in percent.
PAPER_TABLE1 = pd.DataFrame(
    [("MobileNetV2", "10K", 82.32, 86.18, 86.11, 86.09, 83.13),
     ("MobileNetV2", "30K", 80.19, 87.79, 88.38, 88.67, 87.62),
     ("MobileNetV2", "50K", 86.71, 88.33, 91.79, 91.77, 91.44),
     ("ResNet34", "10K", 75.29, 85.47, 85.56, 85.01, 85.23),
     ("ResNet34", "30K", 84.06, 91.59, 92.31, 92.15, 92.14),
     ("ResNet34", "50K", 89.79, 91.34, 94.28, 94.23, 94.18)],
    columns=["model", "size", "20K", "40K", "60K", "80K", "Dense"])
PAPER_TABLE2 = pd.DataFrame(
    [("MobileNetV2", "60% (80%)", 70.05, 71.14, 71.53, 71.70),
     ("MobileNetV2", "40% (65%)", 69.23, 70.36, 71.10, 71.70),
     ("ResNet34", "60% (80%)", 71.68, 72.56, 72.65, 73.20),
     ("ResNet34", "40% (65%)", 69.87, 71.44, 71.33, 73.20)],
    columns=["model", "FLOP (param) ratio", "50 ep", "100 ep", "150 ep", "Dense"])


def _size_label(size: int) -> str:
    return "all" if size == 0 else f"{size:,}"


def table_view(table: pd.DataFrame, by: str = "size") -> pd.DataFrame:
    """GFS's fine-tuned test accuracy (%) per checkpoint in the paper's layout, the dense
    network at the last checkpoint, the baselines' mean gap to GFS and the achieved FLOP
    and parameter ratios (means over the checkpoints)."""
    rows = []
    for (arch, key), g in table.groupby(["arch", by], sort=False):
        gfs = g[g["method"] == "gfs"].sort_values("t")
        row = {"model": NAMES.get(arch, arch),
               by: _size_label(key) if by == "size" else key}
        row.update({f"t={t}": round(100 * a, 2)
                    for t, a in zip(gfs["t"], gfs["finetuned_acc"], strict=True)})
        row["Dense"] = round(100 * gfs["dense_acc"].iloc[-1], 2)
        for method in sorted(set(g["method"]) - {"gfs"}):
            other = g[g["method"] == method].sort_values("t")
            gap = other["finetuned_acc"].to_numpy() - gfs["finetuned_acc"].to_numpy()
            row[f"{method} - GFS"] = round(100 * float(gap.mean()), 2)
        row["FLOP ratio"] = round(float((gfs["flops"] / gfs["dense_flops"]).mean()), 3)
        row["param ratio"] = round(float((gfs["params"] / gfs["dense_params"]).mean()), 3)
        rows.append(row)
    return pd.DataFrame(rows)


def _align(paper_keys: list, ours: list) -> dict:
    """Our row or checkpoint standing beside each of the paper's: in order when the counts
    agree, else the ends aligned (the last checkpoint is the horizon in both)."""
    if len(paper_keys) == len(ours):
        return dict(zip(paper_keys, ours, strict=True))
    if len(ours) > len(paper_keys):
        return dict(zip(paper_keys, ours[-len(paper_keys):], strict=True))
    pairs = {paper_keys[0]: ours[0], paper_keys[-1]: ours[-1]}
    return {k: pairs.get(k) for k in paper_keys}


def paper_view(table: pd.DataFrame, which: str = "table1") -> pd.DataFrame:
    """The paper's Table 1 or 2 row by row with ours beside it: one row per (model, size or
    budget, checkpoint), the paper's accuracy, then ours for GFS and each baseline and the
    dense network at that checkpoint (fine-tuned test accuracy, %). The last row of each
    block is the dense network at the end of pre-training."""
    paper = PAPER_TABLE1 if which == "table1" else PAPER_TABLE2
    key = "size" if which == "table1" else "FLOP (param) ratio"
    ckpts = [c for c in paper.columns if c not in ("model", key, "Dense")]
    ts = sorted(table["t"].unique())
    by = "size" if which == "table1" else "target"
    # sizes ascending with 0 (all) last; budgets descending (60% before 40%, as printed)
    ours_keys = (sorted(table[by].unique(), key=lambda v: (v == 0, v)) if by == "size"
                 else sorted(table[by].unique(), reverse=True))
    row_map = _align(list(dict.fromkeys(paper[key])), ours_keys)
    t_map = _align(ckpts, ts)
    methods = list(dict.fromkeys(table["method"]))
    rows = []
    for _, prow in paper.iterrows():
        arch = {v: k for k, v in NAMES.items()}[prow["model"]]
        ours_key = row_map.get(prow[key])
        part = table[(table["arch"] == arch) & (table[by] == ours_key)]
        label = (_size_label(ours_key) if by == "size" else f"{ours_key:g}") \
            if ours_key is not None else "-"
        for c in [*ckpts, "Dense"]:
            t = t_map.get(c) if c != "Dense" else (ts[-1] if ts else None)
            row = {"model": prow["model"], f"paper {key}": prow[key], "ours": label,
                   "paper t": c, "t": t if t is not None else "-", "paper": prow[c]}
            at = part[part["t"] == t]
            for m in methods:
                v = at[at["method"] == m]["finetuned_acc"]
                row[m.upper() if m != "random" else "random"] = (
                    round(100 * float(v.iloc[0]), 2) if c != "Dense" and len(v) else None)
            dense = at["dense_acc"]
            row["dense"] = round(100 * float(dense.iloc[0]), 2) if len(dense) else None
            rows.append(row)
    return pd.DataFrame(rows)


# -- the protocol, disclosed ------------------------------------------------------------------

# What the paper (with Ye et al.'s code, which it follows) did, item by item; TEXT is the
# paper's text, INFERRED our reading, YE the reference code (ye2021github)
PAPER_PROTOCOL = {
    "table1": {
        "data": "CIFAR10, validation split held out (footnote 4; size not given)",
        "sub-dataset sizes": "10K, 30K, 50K (TEXT)",
        "networks": "ResNet34, MobileNetV2 at full width (TEXT)",
        "MobileNetV2 strides": "not given (CIFAR adaptation INFERRED)",
        "pre-training": "80K iterations, SGD momentum 0.9, cosine from 0.1, batch 128 (TEXT)",
        "weight decay": "not given; 5e-4 INFERRED (the cited CIFAR recipe)",
        "pruning checkpoints": "20K, 40K, 60K, 80K (TEXT)",
        "channel groups": "as Ye et al.: ResNet34 block-inner channels; MobileNetV2 hidden "
                          "and projection outputs, masks [0, 1, 33, 34] skipped (YE)",
        "budget": "40% fewer FLOPs, 20% fewer parameters; eps tuned per network (TEXT)",
        "candidates per step": "50 random (YE)",
        "stopping check": "on a training subset, once the mini-batch accuracy is within "
                          "0.05 of it (YE)",
        "per-layer fine-tuning": "0.1 epoch, lr 2.5e-3 fixed, no momentum (YE)",
        "final fine-tuning": "2,500 iterations from lr 0.01 (TEXT)",
        "baselines": "none in Tables 1-2",
    },
    "table2": {
        "data": "ImageNet, validation split held out (footnote 4)",
        "sub-dataset sizes": "full training set (TEXT)",
        "networks": "ResNet34, MobileNetV2 at full width (TEXT)",
        "MobileNetV2 strides": "torchvision's ImageNet strides",
        "pre-training": "150 epochs, SGD momentum 0.9, cosine from 0.1, batch 128 (TEXT)",
        "weight decay": "'same settings as [61]': 4e-5 in Ye et al.'s code (YE)",
        "pruning checkpoints": "50, 100, 150 epochs (TEXT)",
        "channel groups": "as Table 1 (YE)",
        "budget": "60% (80%) and 40% (65%) of FLOPs (parameters) kept (TEXT)",
        "candidates per step": "50 random (YE)",
        "stopping check": "on a training subset, once the mini-batch accuracy is within "
                          "0.05 of it (YE)",
        "per-layer fine-tuning": "0.1 epoch, lr 2.5e-3 fixed, no momentum (YE)",
        "final fine-tuning": "80 epochs (TEXT)",
        "baselines": "none in Tables 1-2",
    },
}


def describe(cfg) -> dict[str, str]:
    """The protocol items of a preset, in words, from its fields only."""
    sizes = ", ".join(_size_label(s) for s in cfg.sizes)
    nets = ", ".join(f"{NAMES[a]} x{w:g}" for a, w in zip(cfg.archs, cfg.widths, strict=True))
    groups = {"paper": "ResNet34 block-inner; MobileNetV2 hidden and stage streams, Ye's "
                       "skipped layers out (dependency graph)",
              "inner": "single-producer groups only", "all": "every supported group"}
    targets = ", ".join(f"{f:.0%} ({p:.0%})" for f, p in
                        zip(cfg.targets, cfg.param_targets, strict=True))
    return {
        "data": f"{cfg.source}, {cfg.val_size:,} training images held out for validation",
        "sub-dataset sizes": sizes + (" ('all' = outside the validation split)"
                                      if 0 in cfg.sizes else ""),
        "networks": nets,
        "MobileNetV2 strides": str(tuple(cfg.mnv2_strides)),
        "pre-training": (f"{cfg.checkpoints[-1]:,} iterations, SGD momentum {cfg.momentum:g}, "
                         f"cosine from {cfg.lr:g}, batch {cfg.batch_size}"),
        "weight decay": f"{cfg.weight_decay:g}",
        "pruning checkpoints": ", ".join(f"{t:,}" for t in cfg.checkpoints),
        "channel groups": groups[cfg.groups],
        "budget": (f"FLOPs (params) kept {targets}: eps calibrated per network to the FLOP "
                   f"target within {cfg.calibration_tol:g}; params reported"),
        "candidates per step": ("all" if not cfg.n_candidates
                                else f"{cfg.n_candidates} random"),
        "stopping check": (f"on {cfg.eval_size:,} training images"
                           + (f", once the mini-batch accuracy is within max"
                              f"({cfg.skip_eval:g}, eps) of it" if cfg.skip_eval
                              else ", every step")),
        "per-layer fine-tuning": (f"{cfg.layer_finetune_epochs:g} epoch, lr "
                                  f"{cfg.layer_finetune_lr:g} fixed, momentum "
                                  f"{cfg.layer_finetune_momentum:g}"),
        "final fine-tuning": f"{cfg.finetune_iters:,} iterations from lr {cfg.finetune_lr:g}",
        "baselines": ", ".join(m for m in cfg.methods if m != "gfs") or "none",
    }


def protocol_table(which: str, full, quick) -> pd.DataFrame:
    """item | paper | full preset | quick preset, the presets' columns generated from the
    config objects, so the table cannot go stale."""
    paper, f, q = PAPER_PROTOCOL[which], describe(full), describe(quick)
    return pd.DataFrame([{"item": k, "paper": paper[k], "full preset": f[k],
                          "quick preset": q[k]} for k in paper])


def load_latency(path: Path | None = None) -> pd.DataFrame:
    """``benchmarks/deep_latency.py``'s committed measurement (timings are not compared by
    nbval, so the chapter reads them)."""
    path = path or ARCHIVE.parent / "benchmarks" / "deep_latency.json"
    return pd.DataFrame(json.loads(Path(path).read_text())["rows"])
