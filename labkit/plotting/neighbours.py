"""Figures of the neighbouring papers' chapters: pruning before training (chapter 9) and
lottery tickets on a data diet (chapter 10)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from labkit.algorithms.growth import t_interval
from labkit.plotting.style import _legend, _panels, _styled


def _mean_ci(values, lo: float = -np.inf, hi: float = np.inf) -> tuple[float, float, float]:
    """Mean and the distances down and up to its 95% t-interval, clipped to [lo, hi]."""
    v = np.asarray(values, dtype=float)
    if len(v) < 2 or np.all(v == v[0]):
        return float(v.mean()), 0.0, 0.0
    mean, low, high = t_interval(v)
    return mean, mean - max(low, lo), min(high, hi) - mean


@_styled
def plot_prune_fraction(table, thresholds=None) -> plt.Figure:
    """Chapter 9: the final training loss (left) and test error (right) against the kept
    fraction of weights ``1 - fraction`` (log axis, the dense network at 1), one line per
    signal norm, mean and 95% t-interval over seeds; dotted, each norm's mean threshold
    (``thresholds`` from ``labkit.experiments.prune_init.cell.threshold_summary``)."""
    sweep = table[table["part"] == "sweep"]
    fig, (left, right) = _panels(2, height=4.0)
    norms = sorted(sweep["mu_norm"].unique())
    for i, mu in enumerate(norms):
        g = sweep[sweep["mu_norm"] == mu]
        kept = 1 - np.array(sorted(g["fraction"].unique()))
        for ax, col, lo, hi in ((left, "train_loss", 0, np.inf), (right, "test_error", 0, 1)):
            stats = np.array([_mean_ci(g.loc[np.isclose(g["fraction"], 1 - k), col], lo, hi)
                              for k in kept])
            if col == "train_loss":  # a log axis: the interval's lower end above 0
                stats[:, 1] = np.minimum(stats[:, 1], 0.9 * stats[:, 0])
            ax.errorbar(kept, stats[:, 0], yerr=stats[:, 1:].T, fmt="o-", ms=3, capsize=2,
                        color=f"C{i}", label=f"||mu|| = {mu:g}")
        if thresholds is not None:
            row = thresholds[thresholds["mu_norm"] == mu]
            if len(row) and np.isfinite(row["kept"].iloc[0]):
                right.axvline(row["kept"].iloc[0], color=f"C{i}", ls=":", lw=1.5)
    right.axhline(0.5, color="0.5", ls="--", lw=1, label="chance")
    right.set_ylim(0, 0.62)
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xlabel("kept fraction of weights (1 - pruning fraction)")
    left.set_yscale("log")
    left.set_ylabel("training loss after GD")
    right.set_ylabel("test error")
    _legend(fig, ncols=len(norms) + 1)
    return fig


@_styled
def plot_prune_bridge(summary) -> plt.Figure:
    """Chapter 9's bridge: test error of the trained subnetwork against the kept fraction
    (the same number of weights for every method), one panel per signal norm (at most
    two: the smallest and largest), mean and 95% t-interval over seeds; GFS at
    initialization and after the longest pre-training, random whole neurons and Yang et
    al.'s random mask."""
    norms = sorted(summary["mu_norm"].unique())
    norms = norms if len(norms) <= 2 else [norms[0], norms[-1]]
    gfs = sorted(m for m in summary["method"].unique() if m.startswith("gfs"))
    gfs = sorted(gfs, key=lambda m: int(m.split("=")[1]))
    methods = {"random_mask": ("s-", "random mask (Yang et al.)"),
               "random_neurons": ("^--", "random neurons"),
               gfs[0]: ("o:", "GFS at initialization"),
               gfs[-1]: ("o-", f"GFS after {gfs[-1].split('=')[1]} steps")}
    fig, axes = _panels(len(norms), height=4.0, sharey=True)
    for ax, mu in zip(axes, norms, strict=True):
        part = summary[summary["mu_norm"] == mu]
        for i, (method, (fmt, label)) in enumerate(methods.items()):
            g = part[part["method"] == method].sort_values("keep")
            ax.errorbar(g["keep"], g["test_error"],
                        yerr=[g["test_error"] - g["low"].clip(lower=0),
                              g["high"].clip(upper=1) - g["test_error"]],
                        fmt=fmt, ms=4, capsize=2, color=f"C{i}", label=label)
        ax.axhline(0.5, color="0.5", ls="--", lw=1)
        ax.set_ylim(0, 0.62)
        ax.set_xscale("log")
        ax.set_xlabel("kept fraction (weights or neurons)")
        ax.set_title(f"||mu|| = {mu:g}")
    axes[0].set_ylabel("test error after training")
    _legend(fig, ncols=2)
    return fig


_DIET_STYLE = {"full": "-", "random": "--", "easy": "-.", "hard": ":", "easy_global": ":"}


@_styled
def plot_imp(summary) -> plt.Figure:
    """Chapter 10: IMP's test error against the density kept (log axis, dense at 1), mean
    and 95% t-interval over seeds. Left: rewinding to each step of full-data pre-training;
    right: the diets against full data at the same step (``summary`` from
    ``labkit.experiments.diet.cell.imp_summary``)."""
    fig, (left, right) = _panels(2, height=4.0, sharey=True)
    full = summary[summary["diet"] == "full"]
    steps = sorted(full["t"].unique())
    for i, t in enumerate(steps):
        g = full[full["t"] == t].sort_values("density")
        left.errorbar(g["density"], g["test_error"],
                      yerr=[(g["test_error"] - g["low"]).fillna(0),
                            (g["high"] - g["test_error"]).fillna(0)],
                      fmt="o-", ms=3, capsize=2, color=plt.cm.viridis(0.9 * i / max(
                          1, len(steps) - 1)), label=f"rewind to t = {t}")
    diets = [d for d in summary["diet"].unique() if d != "full"]
    if diets:
        t = int(summary.loc[summary["diet"] == diets[0], "t"].iloc[0])
        for i, diet in enumerate(["full", *diets]):
            g = summary[(summary["diet"] == diet) & (summary["t"] == t)].sort_values(
                "density")
            right.errorbar(g["density"], g["test_error"],
                           yerr=[(g["test_error"] - g["low"]).fillna(0),
                                 (g["high"] - g["test_error"]).fillna(0)],
                           fmt="o" + _DIET_STYLE.get(diet, "-"), ms=3, capsize=2,
                           color=f"C{i}", label=f"{diet} data")
        right.set_title(f"pre-training data, t = {t}")
        right.legend(loc="best")
    left.set_title("rewind step, full data")
    left.legend(loc="best")
    for ax in (left, right):
        ax.set_xscale("log")
        ax.invert_xaxis()
        ax.set_xlabel("fraction of weights kept")
    left.set_ylabel("test error after IMP")
    return fig


@_styled
def plot_lmc(table) -> plt.Figure:
    """Chapter 10: test error along the linear path between two copies trained from each
    rewind point (full data), dense (left) and under IMP's last mask (right); one line
    per rewind step, mean over seeds (``table`` the run's tidy table)."""
    part = table[(table["part"] == "lmc") & (table["diet"] == "full")]
    fig, axes = _panels(2, height=4.0, sharey=True)
    for ax, which in zip(axes, ("dense", "sparse"), strict=True):
        g = part[part["lmc"] == which]
        steps = sorted(g["t"].unique())
        for i, t in enumerate(steps):
            paths = np.array([[float(v) for v in p.split()] for p in g.loc[g["t"] == t,
                                                                            "path"]])
            alphas = np.linspace(0, 1, paths.shape[1])
            ax.plot(alphas, paths.mean(0), "o-", ms=3,
                    color=plt.cm.viridis(0.9 * i / max(1, len(steps) - 1)),
                    label=f"from t = {t}")
        density = g["density"].mean()
        ax.set_title("dense" if which == "dense" else f"IMP mask, {density:.1%} kept")
        ax.set_xlabel("interpolation alpha")
    axes[0].set_ylabel("test error")
    _legend(fig, ncols=min(5, len(part["t"].unique())))
    return fig


@_styled
def plot_gfs_diet(table, red) -> plt.Figure:
    """Chapter 10's bridge: the GFS subnetwork's accuracy on the full set of digits
    against pre-training iterations; left, pre-trained on a fraction of the data (pruned
    on all of it); right, pre-trained on all of it and pruned on a fraction; mean over
    seeds, the red line's target dashed (``red`` from
    ``labkit.experiments.diet.cell.gfs_red_line``)."""
    g = table[table["part"] == "gfs"]
    fig, (left, right) = _panels(2, height=4.0, sharey=True)
    fractions = sorted(g["f"].unique())
    for ax, mode in ((left, "pretrain"), (right, "prune")):
        for i, f in enumerate(fractions):
            h = g[(g["mode"] == mode) & (g["f"] == f)]
            if mode == "prune" and f == 1.0:
                h = g[(g["mode"] == "pretrain") & (g["f"] == 1.0)]
            if not len(h):
                continue
            mean = h.groupby("t")["accuracy"].mean()
            ax.plot(mean.index, mean.values, "o-", ms=3,
                    color=plt.cm.viridis(0.9 * i / max(1, len(fractions) - 1)),
                    label=f"{f:g} of the data")
        if len(red):
            ax.axhline(red["target"].iloc[0], color="r", ls="--", lw=1.5,
                       label="red line's target")
        ax.set_xlabel("pre-training iterations")
    left.set_title("pre-trained on a fraction")
    right.set_title("pruned on a fraction")
    left.set_ylabel("GFS subnetwork accuracy\n(all 5,000 digits)")
    _legend(fig, ncols=len(fractions) + 1)
    return fig
