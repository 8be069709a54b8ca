"""Small experiments that chapters run in one call; each takes a config from
:mod:`labkit.config` and returns a tidy list of rows (one dict per measurement).

Long, resumable sweeps (chapters 4 and 6) will live here too.
"""

from __future__ import annotations

import torch

from labkit.data import teacher_student
from labkit.frank_wolfe import best_multiset, polytope_min
from labkit.gfs import greedy_forward_selection
from labkit.model import TwoLayerNet
from labkit.train import pretrain_gd

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
    import pandas as pd

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
    import numpy as np
    import pandas as pd

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
