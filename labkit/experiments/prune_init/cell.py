"""Chapter 9: pruning before training (Yang, Liang, Guo, Wu, Wang 2023), and GFS beside it.

**The data model** (our reconstruction of their setting, which follows Cao et al.'s
signal-plus-noise patches): a label ``y = +-1`` with equal probability and an input of two
patches ``x = [y mu, xi]``, the signal ``mu = ||mu|| e_1`` and the noise
``xi ~ N(0, sigma_p^2 (I - e_1 e_1^T))`` (orthogonal to the signal).

**The network**: ``N`` filters ``w_i`` in ``R^d``, the first ``N/2`` voting for ``+1`` and the
others for ``-1`` (``s_i = +-1``), each applied to both patches::

    f(x) = (2/N) sum_i s_i sum_p sigma(<w_i * M_i, x_p>),   sigma(z) = relu(z)**power,

which is ``F_{+1} - F_{-1}`` with the usual ``1/(N/2)`` second layer, and eq. (2)'s mean
over neurons of ``Phi_i = 2 s_i sum_p sigma(.)`` in this book's notation. ``M`` is Yang et
al.'s random mask at initialization: every entry kept independently with probability
``1 - fraction``. Full-batch gradient descent on the logistic loss
``mean_j log(1 + exp(-y_j f(x_j)))`` with the mean-field step ``lr * N`` (so that a neuron's
update does not shrink with the width), from ``w_i ~ N(0, init_scale^2 I)``.

**The bridge** (ours): at the same number of kept weights, a random mask at
``1 - keep``, ``keep * N`` random whole neurons, and ``keep * N`` neurons chosen by GFS
(without replacement, on the training loss) from the dense network after ``t`` steps of
pre-training; each subnetwork then trained for ``steps`` steps. GFS's subnetworks are also
scored right after pruning, as the paper under study does.

Random streams are separate: the data (training and test), the initialization, each
fraction's mask and the random neurons have their own generators, seeded by the seed and a
fixed offset, so that adding a fraction or a bridge setting changes no other number.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from labkit.algorithms.gfs import greedy_forward_selection
from labkit.algorithms.sparsity import random_mask
from labkit.infra.runner import run_cells

NAME = "prune_init"
# generator offsets: one stream per purpose (seed * _STRIDE + offset)
_STRIDE, _DATA, _TEST, _INIT, _NEURONS, _MASK = 1_000_003, 1, 2, 3, 4, 100


def _gen(seed: int, offset: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * _STRIDE + offset)


def patch_data(m: int, d: int, mu_norm: float, sigma_p: float,
               generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``m`` draws of the data model: inputs ``(m, 2, d)`` (signal patch, noise patch) and
    labels ``(m,)`` in ``{-1, +1}``."""
    y = torch.randint(0, 2, (m,), generator=generator).float() * 2 - 1
    xi = torch.randn(m, d, generator=generator) * sigma_p
    xi[:, 0] = 0  # the noise is orthogonal to mu = ||mu|| e_1
    signal = torch.zeros(m, d)
    signal[:, 0] = y * mu_norm
    return torch.stack([signal, xi], 1), y


def signs(N: int) -> torch.Tensor:
    """The second layer: ``+1`` for the first ``N/2`` filters, ``-1`` for the others."""
    return torch.cat([torch.ones(N // 2), -torch.ones(N - N // 2)])


def neuron_outputs(W, M, s, X, power: int) -> torch.Tensor:
    """``Phi`` for a batch of networks: ``W``, ``M`` of shape ``(B, N, d)``, ``s`` of shape
    ``(B, N)``, ``X`` of shape ``(m, P, d)`` -> ``(B, N, m)``, row ``i`` = ``2 s_i sum_p
    sigma(<w_i * M_i, x_p>)`` (the network is their mean over ``N``)."""
    z = torch.einsum("bnd,jpd->bnjp", W * M, X)
    return 2 * s[:, :, None] * (torch.relu(z) ** power).sum(-1)


def logits(W, M, s, X, power: int) -> torch.Tensor:
    """``f(x)`` of every network of the batch on every point: ``(B, m)``."""
    return neuron_outputs(W, M, s, X, power).mean(1)


def logistic(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean logistic loss ``log(1 + exp(-y z))`` over the last axis."""
    return F.softplus(-y * z).mean(-1)


def train_gd(W, M, s, X, y, *, steps: int, lr: float, power: int, snapshots=()):
    """Full-batch GD on the logistic loss for a batch of independent networks (step
    ``lr * N`` per network of ``N`` filters). Returns the trained weights, the loss after
    every step ``(B, steps)`` and ``{t: weights at step t}`` for ``t`` in ``snapshots``."""
    W = W.clone().requires_grad_(True)
    step = lr * W.shape[1]
    losses, saved = torch.empty(W.shape[0], steps, device=W.device), {}
    if 0 in snapshots:
        saved[0] = W.detach().clone()
    for t in range(steps):
        loss = logistic(logits(W, M, s, X, power), y)
        (grad,) = torch.autograd.grad(loss.sum(), W)
        with torch.no_grad():
            W -= step * grad
        losses[:, t] = loss.detach()
        if t + 1 in snapshots:
            saved[t + 1] = W.detach().clone()
    return W.detach(), losses, saved


def _errors(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (z * y <= 0).float().mean(-1)  # a zero logit counts as a mistake


def _evaluate(W, M, s, data, power) -> dict:
    """Final training loss, training and test error, and where the training margin comes
    from: ``y f`` on the signal patch alone and on the noise patch alone."""
    (X, y), (Xt, yt) = data
    z = logits(W, M, s, X, power)
    out = {"train_loss": logistic(z, y), "train_error": _errors(z, y),
           "test_error": _errors(logits(W, M, s, Xt, power), yt)}
    for name, p in (("signal_margin", 0), ("noise_margin", 1)):
        out[name] = (logits(W, M, s, X[:, p:p + 1], power) * y).mean(-1)
    return {k: v.tolist() for k, v in out.items()}


def _loss_at(losses: torch.Tensor, steps: int) -> dict:
    """The training loss at log-spaced steps (and the last), for the curves."""
    ts = sorted({1, *np.unique(np.geomspace(1, steps, 12).round().astype(int)).tolist()})
    return {str(t): losses[:, t - 1].tolist() for t in ts}


def run_cell(cfg, cell: dict, device="cpu") -> dict:
    """One signal norm and seed: the fraction sweep and the bridge. Every random draw is
    made on the CPU (the same numbers on any device), then moved to ``device``."""
    seed, mu = cell["seed"], cell["mu_norm"]

    def on(*tensors):
        return tuple(t.to(device) for t in tensors)

    train = on(*patch_data(cfg.m, cfg.d, mu, cfg.sigma_p, _gen(seed, _DATA)))
    test = on(*patch_data(cfg.m_test, cfg.d, mu, cfg.sigma_p, _gen(seed, _TEST)))
    data, (X, y), N = (train, test), train, cfg.N
    W0, s = on(torch.randn(N, cfg.d, generator=_gen(seed, _INIT)) * cfg.init_scale,
               signs(N))

    # the sweep: one network per fraction, the same initialization, its own mask
    F_ = len(cfg.fractions)
    (M,) = on(torch.stack([random_mask((N, cfg.d), f, _gen(seed, _MASK + i))
                           for i, f in enumerate(cfg.fractions)]))
    W, losses, saved = train_gd(W0.expand(F_, -1, -1), M, s.expand(F_, -1), X, y,
                                steps=cfg.steps, lr=cfg.lr, power=cfg.power,
                                snapshots=set(cfg.pretrain))
    sweep = {"kept": M.mean((1, 2)).tolist(), **_evaluate(W, M, s.expand(F_, -1), data,
                                                          cfg.power),
             "loss_at": _loss_at(losses, cfg.steps)}

    # the bridge: the dense network (fraction 0) after each pre-training length
    bridge = []
    y01 = (y + 1) / 2
    for j, keep in enumerate(cfg.keep):
        k = round(keep * N)
        nets, labels = [], []
        for t in cfg.pretrain:
            Wt = saved[t][0]
            Phi = neuron_outputs(Wt[None], torch.ones_like(Wt)[None], s[None], X, cfg.power)[0]
            S = torch.as_tensor(greedy_forward_selection(Phi, y01, k, loss="bce",
                                                         replacement=False).order,
                                device=Wt.device)
            nets.append((Wt[S], s[S]))
            labels.append(("gfs", t))
        (R,) = on(torch.randperm(N, generator=_gen(seed, _NEURONS + 1000 * j))[:k])
        nets.append((W0[R], s[R]))
        labels.append(("random_neurons", 0))
        Wb, sb = torch.stack([w for w, _ in nets]), torch.stack([v for _, v in nets])
        Mb = torch.ones_like(Wb)
        pruned = _evaluate(Wb, Mb, sb, data, cfg.power)
        Wb, _, _ = train_gd(Wb, Mb, sb, X, y, steps=cfg.steps, lr=cfg.lr, power=cfg.power)
        trained = _evaluate(Wb, Mb, sb, data, cfg.power)
        # Yang et al.'s random mask at the same number of weights
        (Mr,) = on(random_mask((N, cfg.d), 1 - keep, _gen(seed, _MASK + 500 + j))[None])
        Wr, _, _ = train_gd(W0[None], Mr, s[None], X, y, steps=cfg.steps, lr=cfg.lr,
                            power=cfg.power)
        masked = _evaluate(Wr, Mr, s[None], data, cfg.power)
        for i, (method, t) in enumerate(labels):
            bridge.append({"keep": keep, "k": k, "method": method, "t": t,
                           "pruned_test_error": pruned["test_error"][i],
                           **{key: v[i] for key, v in trained.items()}})
        bridge.append({"keep": keep, "k": k, "method": "random_mask", "t": 0,
                       "pruned_test_error": float("nan"),
                       **{key: v[0] for key, v in masked.items()}})
    return {"sweep": sweep, "bridge": bridge}


def gfs_classes(cfg, seed: int, mu_norm: float, t: int = 0) -> pd.DataFrame:
    """Which filters GFS picks from the dense network after ``t`` steps (the bridge's
    selection, recomputed for one seed): per kept fraction, how many vote for each class."""
    (X, y), N = patch_data(cfg.m, cfg.d, mu_norm, cfg.sigma_p, _gen(seed, _DATA)), cfg.N
    W = torch.randn(N, cfg.d, generator=_gen(seed, _INIT)) * cfg.init_scale
    s = signs(N)
    if t:
        W = train_gd(W[None], torch.ones_like(W)[None], s[None], X, y, steps=t, lr=cfg.lr,
                     power=cfg.power)[0][0]
    Phi = neuron_outputs(W[None], torch.ones_like(W)[None], s[None], X, cfg.power)[0]
    rows = []
    for keep in cfg.keep:
        k = round(keep * N)
        S = greedy_forward_selection(Phi, (y + 1) / 2, k, loss="bce", replacement=False).order
        rows.append({"keep": keep, "k": k, "t": t, "votes_plus": int((s[S] > 0).sum()),
                     "votes_minus": int((s[S] < 0).sum()),
                     "share_plus_labels": float((y > 0).float().mean())})
    return pd.DataFrame(rows)


def _rows(cell: dict, payload: dict) -> pd.DataFrame:
    sweep = payload["sweep"]
    rows = []
    for i, fraction in enumerate(payload["fractions"]):
        rows.append({"part": "sweep", **cell, "fraction": fraction, "kept": sweep["kept"][i],
                     **{k: sweep[k][i] for k in ("train_loss", "train_error", "test_error",
                                                  "signal_margin", "noise_margin")},
                     **{f"loss_t{t}": sweep["loss_at"][t][i]
                        for t in sorted(sweep["loss_at"], key=int)}})
    bridge = ("keep", "k", "method", "t", "pruned_test_error", "train_loss", "train_error",
              "test_error", "signal_margin", "noise_margin")  # a stored payload's keys sort
    rows += [{"part": "bridge", **cell, **{c: r[c] for c in bridge}} for r in payload["bridge"]]
    return pd.DataFrame(rows)


class _Compute:
    """Picklable ``compute`` for the runner (one cell at a time)."""

    def __init__(self, cfg, device):
        self.cfg, self.device = cfg, device

    def __call__(self, cell):
        out = run_cell(self.cfg, cell, self.device)
        out["fractions"] = list(self.cfg.fractions)
        return out


def cell_work(cfg, cell: dict) -> float:
    """Floating-point operations of a cell (forward and backward: about 3 x 2 N d 2m per
    network and step), for the runner's cost estimate."""
    nets = len(cfg.fractions) + len(cfg.keep) * (1 + sum(
        (len(cfg.pretrain) + 1) * keep for keep in cfg.keep) / len(cfg.keep))
    return 12.0 * cfg.N * cfg.d * cfg.m * cfg.steps * nets


def run_prune_init(cfg, *, out, device=None, name: str = NAME, only=None,
                   dry_run: bool = False) -> pd.DataFrame:
    """Every (signal norm, seed) cell, resumable (:func:`labkit.infra.runner.run_cells`), on
    ``device`` (default the CPU; the numbers agree across devices to rounding)."""
    params = cfg.cell_params()
    cells = [{**c, **params} for c in cfg.cells()]

    def to_rows(cell, payload):
        return _rows({"mu_norm": cell["mu_norm"], "seed": cell["seed"]}, payload)

    device = torch.device(device or "cpu")
    return run_cells(name, cfg, cells, _Compute(cfg, device), to_rows, out=out,
                     device=device, only=only, dry_run=dry_run,
                     work=lambda c: cell_work(cfg, c))


# ---- analysis (not part of a cell's key) -------------------------------------------------
