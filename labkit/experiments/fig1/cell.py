"""Figure 1 (Section 5): how much pre-training before GFS finds a good subnetwork, on MNIST.

Protocol (TEXT): labels binarized (digit < 5 -> 0), ReLU hidden layer, sigmoid output,
binary cross-entropy; class-balanced sub-datasets of several sizes; pre-training with
checkpoints; at every checkpoint the dense network is pruned by GFS to ``k`` hidden
neurons and the pruned network's accuracy on the whole training sub-dataset is recorded, no
fine-tuning; several trials. Optimizer, learning rate and batch size were lost: we use
mini-batch SGD with the mean-field step (``lr * N`` per neuron), all exposed in the config.
GFS selects without replacement by default (as Ye et al.'s code, which the paper ran), so
the subnetwork has ``k`` distinct neurons; the baselines at the same checkpoints take the
same number of distinct neurons: the largest-magnitude ones (``|b_i| * ||w_i||``) and random
ones. Random streams are separate: mini-batches come from one generator per seed that
nothing else draws from, so the trajectory does not depend on where the checkpoints fall,
and the random baseline at checkpoint ``t`` from its own generator seeded by ``(seed, t)``.
Chapter 6 (issue 18).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from labkit.algorithms.gfs import greedy_forward_selection
from labkit.algorithms.model import TwoLayerNet
from labkit.infra.data import balanced_subset, binarize, load_mnist, load_mnist1d
from labkit.infra.runner import run_cells, step_bar

NAME = "fig1"
METHODS = ("gfs", "magnitude", "random", "dense")


def load_data(cfg):
    """The data source of the preset, inputs scaled to unit norm (Assumption 2): MNIST
    digits (784 pixels), or a pool of ``max(cfg.sizes)`` MNIST-1D signals (length 40,
    generated with seed 0; the sub-datasets are drawn from it)."""
    if cfg.source == "mnist1d":
        X, labels = load_mnist1d(-(-max(cfg.sizes) // 10) * 10, seed=0)
    else:
        X, labels = load_mnist(cfg.source)
    if max(cfg.sizes) > len(labels):
        raise ValueError(f"sizes: {max(cfg.sizes)} exceeds the {len(labels)} digits of "
                         f"source {cfg.source!r}")
    return X / X.norm(dim=1, keepdim=True).clamp_min(1e-12), labels


def _accuracy(z: torch.Tensor, y: torch.Tensor) -> float:
    return float(((z > 0).to(y.dtype) == y).to(torch.float64).mean())


def random_baseline_generator(seed: int, t: int) -> torch.Generator:
    """The random baseline's generator at checkpoint ``t`` of seed ``seed``: its own stream,
    so that neither the checkpoint list nor the order of evaluation changes the draw."""
    state = np.random.SeedSequence([int(seed), int(t), 0xF161]).generate_state(2)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def evaluate(W, b, X, y, k: int, gen: torch.Generator, *, replacement: bool = False) -> dict:
    """Accuracy on ``(X, y)`` of the dense network and of three subnetworks: GFS with ``k``
    selections (``k`` distinct neurons without replacement; with replacement a multiset,
    its distinct neurons counted), and the magnitude and random baselines with as many
    distinct neurons as the GFS subnetwork has (``gen`` draws the random ones)."""
    N = W.shape[0]
    Phi = b[:, None] * torch.relu(W @ X.T)  # (N, m) pre-sigmoid contributions
    gfs = greedy_forward_selection(Phi, y, k, loss="bce", replacement=replacement)
    counts = torch.as_tensor(gfs.counts, dtype=Phi.dtype, device=Phi.device)
    distinct = int((gfs.counts > 0).sum())
    magnitude = torch.topk(b.abs() * W.norm(dim=1), distinct).indices
    random = torch.randperm(N, generator=gen)[:distinct].to(Phi.device)
    return {"gfs": _accuracy(counts @ Phi / k, y),
            "magnitude": _accuracy(Phi[magnitude].mean(0), y),
            "random": _accuracy(Phi[random].mean(0), y),
            "dense": _accuracy(Phi.mean(0), y),
            "gfs_distinct": distinct, "gfs_bce": float(gfs.losses[-1])}


def _sgd_step(cfg, X, y, W, b, gens, t: int) -> None:
    """Iteration ``t`` of mean-field SGD on every seed at once (one batched program)."""
    S, size, d = X.shape
    N = W.shape[1]
    idx = torch.stack([torch.randint(size, (cfg.batch_size,), generator=g)
                       for g in gens]).to(X.device)
    Xb = torch.gather(X, 1, idx[..., None].expand(-1, -1, d))
    z = torch.bmm(torch.relu(torch.bmm(Xb, W.transpose(1, 2))), b[..., None])[..., 0] / N
    loss = F.binary_cross_entropy_with_logits(z, torch.gather(y, 1, idx),
                                              reduction="none").mean(1)
    if not torch.isfinite(loss).all():
        bad = [cfg.seeds[j] for j in range(S) if not torch.isfinite(loss[j])]
        raise FloatingPointError(f"fig1: non-finite loss at iteration {t} "
                                 f"(size={size}, N={N}, seeds={bad}, lr={cfg.lr})")
    W.grad = b.grad = None
    loss.sum().backward()
    with torch.no_grad():
        W -= cfg.lr * N * W.grad
        b -= cfg.lr * N * b.grad


def train_cell(cfg, X_all, labels, cell, device) -> dict:
    """Pre-train ``len(cfg.seeds)`` networks of width ``N`` on one sub-dataset, all seeds as
    one batched program, evaluating at every checkpoint."""
    size, N = cell["size"], cell["N"]
    subsets = [balanced_subset(labels, size, seed=s) for s in cfg.seeds]
    X = torch.stack([X_all[i] for i in subsets]).to(device)  # (S, size, d)
    y = torch.stack([binarize(labels[i]) for i in subsets]).to(device)
    nets = [TwoLayerNet(X.shape[2], N, activation="relu", output="sigmoid",
                        generator=torch.Generator().manual_seed(s)) for s in cfg.seeds]
    W = torch.stack([n.W.detach() for n in nets]).to(device).requires_grad_()
    b = torch.stack([n.b.detach() for n in nets]).to(device).requires_grad_()
    # mini-batches only: nothing else draws from these generators
    batch_gens = [torch.Generator().manual_seed(10_000 + s) for s in cfg.seeds]
    checkpoints = cfg.all_checkpoints()
    rows, t = [], 0
    with step_bar(checkpoints[-1], f"size={size} N={N}: pre-training") as bar:
        for target in checkpoints:
            for it in range(t, target):
                _sgd_step(cfg, X, y, W, b, batch_gens, it)
                bar.update()
            t = target
            with torch.no_grad():
                for j, seed in enumerate(cfg.seeds):
                    acc = evaluate(W[j], b[j], X[j], y[j], cfg.k,
                                   random_baseline_generator(seed, t),
                                   replacement=cfg.replacement)
                    rows.append({"t": t, "seed": seed, **acc})
    return {"rows": rows}


def cell_work(cfg, cell: dict) -> float:
    """Floating-point operations of one cell, roughly (``--dry-run``'s estimate): SGD on every
    seed (``6 B N d`` per iteration) and, at every checkpoint, one pass of the sub-dataset
    through the network and GFS (``2 N size`` per selected neuron)."""
    size, N, S, C = cell["size"], cell["N"], len(cfg.seeds), len(cfg.all_checkpoints())
    d = 40 if cfg.source == "mnist1d" else 784  # signal length or pixels
    train = 6 * cfg.batch_size * N * d * cfg.all_checkpoints()[-1]
    return S * (train + C * (2 * size * N * d + 2 * cfg.k * N * size))


def run_fig1(cfg, *, out, device=None, name: str = NAME, only: dict | None = None,
             dry_run: bool = False) -> pd.DataFrame:
    """The whole sweep over ``cfg.sizes x cfg.widths`` (each cell all seeds), resumable
    under ``out``. Returns the tidy table: one row per size, width, seed, checkpoint and
    method, with the accuracy on the training sub-dataset; ``only`` selects cells,
    ``dry_run`` returns the plan instead. The data are loaded only when a cell is computed,
    so a finished run, or a plan, needs none."""
    device = torch.device(device or "cpu")
    data = functools.cache(lambda: load_data(cfg))
    # a cell's "lr" overrides cell_params' (the same value unless lr_sweep is set)
    cells = [{**cfg.cell_params(), "lr": lr, "size": size, "N": N}
             for lr in (cfg.lr_sweep or (cfg.lr,)) for N in cfg.widths for size in cfg.sizes]

    def to_rows(cell, payload):
        df = pd.DataFrame(payload["rows"], columns=["t", "seed", *METHODS, "gfs_distinct",
                                                    "gfs_bce"])
        df = df.melt(id_vars=["t", "seed", "gfs_distinct", "gfs_bce"], value_vars=METHODS,
                     var_name="method", value_name="accuracy")
        df.insert(0, "N", cell["N"])
        df.insert(0, "size", cell["size"])
        if cfg.lr_sweep:
            df.insert(0, "lr", cell["lr"])
        return df

    def compute(cell):
        return train_cell(dataclasses.replace(cfg, lr=cell["lr"]), *data(), cell, device)

    return run_cells(name, cfg, cells, compute,
                     to_rows, out=out, device=device, only=only, dry_run=dry_run,
                     work=lambda cell: cell_work(cfg, cell))
