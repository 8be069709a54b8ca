"""Figures for the book: one function per figure kind, each returning a Figure.

Styling lives here so chapters stay one call per figure (book design, section 6).
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
from scipy.spatial import ConvexHull

if TYPE_CHECKING:
    from labkit.distributed import CostModel


def _np(a) -> np.ndarray:
    return a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)


def _width_panels(widths, height: float = 4.2):
    """One panel per network width, sharing the y axis."""
    fig, axes = plt.subplots(1, len(widths), figsize=(5.4 * len(widths), height),
                             squeeze=False, sharey=True)
    return fig, axes


def _finish(fig, axes, ylabel: str, legend_size: int = 8) -> plt.Figure:
    axes[0, 0].set_ylabel(ylabel)
    axes[0, -1].legend(fontsize=legend_size)
    fig.tight_layout()
    return fig


def draw_polytope(ax, Phi, y, *, title: str = "", k_lattice: int = 0, path=None):
    """Draw the marginal polytope ``conv{Phi_i}`` (eq. 7) for ``m = 2`` data points on ``ax``.

    Neurons are the vertices' candidates (dots), the dense output is their mean (the
    centroid), ``y`` is the label vector. ``k_lattice > 0`` adds every multiset of that
    size as a small point (the subnetworks of size k); ``path`` (a sequence of pruned
    outputs ``z_1, z_2, ...``) draws the GFS trajectory. Chapter 1.
    """
    Phi, y = _np(Phi), _np(y)
    if Phi.shape[1] != 2:
        raise ValueError(f"Phi: the polytope can be drawn for m = 2 only, got m = {Phi.shape[1]}")
    if k_lattice:
        pts = np.array([Phi[list(S)].mean(0) for S in
                        itertools.combinations_with_replacement(range(len(Phi)), k_lattice)])
        ax.scatter(*pts.T, s=3, color="0.7", label=f"subnetworks with k={k_lattice}", zorder=1)
    hull = ConvexHull(Phi)
    ring = np.append(hull.vertices, hull.vertices[0])
    ax.fill(*Phi[ring].T, alpha=0.15, color="C0", zorder=0)
    ax.plot(*Phi[ring].T, color="C0", lw=1)
    ax.scatter(*Phi.T, s=25, color="C0", label=r"neurons $\Phi_i$", zorder=2)
    ax.scatter(*Phi.mean(0), marker="s", s=60, color="C2", label=r"dense $f_{[N]}$", zorder=3)
    ax.scatter(*y, marker="*", s=200, color="C3", label=r"labels $y$", zorder=3)
    if path is not None:
        path = _np(path)
        ax.plot(*path.T, "-o", color="C1", ms=3, lw=1, label="GFS path $z_k$", zorder=4)
    ax.set_xlabel("output on $x_1$")
    ax.set_ylabel("output on $x_2$")
    ax.set_title(title)
    ax.set_aspect("equal", adjustable="datalim")
    return ax


def plot_polytopes(panels: dict, y, **kwargs) -> plt.Figure:
    """Side-by-side :func:`draw_polytope` panels, one per ``title -> Phi`` entry."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.6), squeeze=False)
    for ax, (title, Phi) in zip(axes[0], panels.items(), strict=True):
        draw_polytope(ax, Phi, y, title=title, **kwargs)
    axes[0, -1].legend(loc="best", fontsize=8)
    fig.tight_layout()
    return fig


def plot_loss_vs_k(curves: dict, *, reference: float | None = None,
                   ylabel: str = r"$\ell(z_k)$", title: str = "",
                   slopes: bool = True) -> plt.Figure:
    """Loss (or excess loss) against the number of selected neurons ``k`` on log-log axes,
    with ``c/k`` and ``c ln(k)/k`` guides anchored at the first curve's ``k = 1`` value.
    ``reference`` draws a horizontal line (e.g. the dense loss). Chapter 2, Lemma 1."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for label, values in curves.items():
        values = _np(values)
        ax.loglog(np.arange(1, len(values) + 1), values, label=label)
    if slopes:
        first = _np(next(iter(curves.values())))
        k = np.arange(1, len(first) + 1)
        c = first[0]
        ax.loglog(k, c / k, "k--", lw=0.8, label=r"$c/k$")
        ax.loglog(k[1:], c * np.log(k[1:]) / k[1:], "k:", lw=0.8, label=r"$c\,\ln k/k$")
    if reference is not None:
        ax.axhline(reference, color="0.4", lw=0.8, ls="-.", label="dense loss")
    ax.set_xlabel("neurons selected $k$")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_lemma1(panels: dict) -> plt.Figure:
    """Chapter 3: GFS loss against Lemma 1's bound and each of its terms, log-log, one
    panel per ``title -> Lemma1Bound``."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2), squeeze=False)
    for ax, (title, b) in zip(axes[0], panels.items(), strict=True):
        k = np.arange(1, len(b.total) + 1)
        ax.loglog(k, b.losses, color="k", lw=2, label=r"GFS loss $\ell(z_k)$")
        ax.loglog(k, b.total, color="C3", label="Lemma 1 bound")
        ax.loglog(k, b.paper_form, color="C3", ls=":", label=r"with $\ln k$ and $L$")
        ax.loglog(k, b.init, color="C0", ls="--", label=r"$\ell(z_1)/k$")
        ax.loglog(k[1:], b.diameter_term[1:], color="C1", ls="--",
                  label=r"$D^2(H_k-1)/(mk)$")
        ax.loglog(k[1:], b.dense_term[1:], color="C2", ls="--", label=r"$(1-1/k)L_{dense}$")
        ax.set_xlabel("neurons selected $k$")
        ax.set_title(title)
    axes[0, 0].set_ylabel("loss")
    axes[0, -1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_lemma3(df) -> plt.Figure:
    """Chapter 3: ``max_i ||Phi_i|| / sqrt(m)`` and the relative first-layer movement along
    GD, per width, for each step scaling (a table from ``lemma3_movement``)."""
    scalings = list(dict.fromkeys(df["scaling"]))
    fig, axes = plt.subplots(2, len(scalings), figsize=(5.2 * len(scalings), 6.4),
                             squeeze=False, sharex=True)
    for col, scaling in enumerate(scalings):
        part = df[df["scaling"] == scaling]
        for i, (N, g) in enumerate(part.groupby("N")):
            t = np.maximum(g["t"], 1)  # t = 0 drawn at 1 on the log axis
            axes[0, col].semilogx(t, g["max_norm/sqrt_m"], "o-", color=f"C{i}", label=f"N={N}")
            axes[1, col].semilogx(t, g["rel_movement"], "o-", color=f"C{i}", label=f"N={N}")
        axes[0, col].set_title(f"{scaling} step")
        axes[1, col].set_xlabel("GD iteration $t$ (0 drawn at 1)")
    axes[0, 0].set_ylabel(r"$\max_i\|\Phi_i\|/\sqrt{m}$")
    axes[1, 0].set_ylabel(r"$\|W_t-W_0\|_F/\|W_0\|_F$")
    axes[0, -1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_pruned_vs_t(df, T=None) -> plt.Figure:
    """Chapter 4: pruned loss (median over seeds) against pre-training iterations, one line
    per dataset size ``m``, one panel per width ``N``; ``T`` (from ``thresholds``) marks each
    curve's mean threshold."""
    widths = sorted(df["N"].unique())
    fig, axes = _width_panels(widths)
    for ax, N in zip(axes[0], widths, strict=True):
        for i, (m, g) in enumerate(df[df["N"] == N].groupby("m")):
            med = g.groupby("t")["pruned_loss"].median()
            ax.loglog(1 + med.index, med.values, "o-", ms=3, color=f"C{i}", label=f"m={m}")
            if T is not None:
                t_star = T[(T["N"] == N) & (T["m"] == m)]["T_star"].mean()
                ax.axvline(1 + t_star, color=f"C{i}", lw=0.8, ls=":")
        ax.set_title(f"N = {N}")
        ax.set_xlabel("1 + pre-training iterations $t$")
    return _finish(fig, axes, r"pruned loss $\ell(z_k)$ (median over seeds)")


def plot_threshold(summary, fits: dict | None = None) -> plt.Figure:
    """Chapter 4: mean ``T*(m)`` with bootstrap intervals per width, on a log ``m`` axis, and
    the fitted growth laws: ``fits`` maps each width to a ``fit_growth`` table."""
    from labkit.pretraining import growth_law

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for i, (N, g) in enumerate(summary.groupby("N")):
        ax.errorbar(g["m"], g["T_mean"], yerr=[g["T_mean"] - g["T_lo"], g["T_hi"] - g["T_mean"]],
                    fmt="o", color=f"C{i}", capsize=3, label=f"N = {N}")
        grid = np.geomspace(g["m"].min(), g["m"].max(), 100)
        table = (fits or {}).get(N)
        for j, (model, row) in enumerate(table.iterrows() if table is not None else []):
            ax.plot(grid, growth_law(model, row["theta"])(grid), color=f"C{i}",
                    ls=["--", ":"][j % 2], lw=1, label=f"N = {N}: {model}")
    ax.set_xscale("log")
    ax.set_xlabel("dataset size $m$")
    ax.set_ylabel(r"threshold $T^\star$ (GD iterations)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_mechanism(summary) -> plt.Figure:
    """Chapter 4: ``T*`` against ``kappa^2`` of the initial feature matrix and against the
    inverse empirical GD rate, per ``(m, N)``."""
    fig, axes = plt.subplots(1, 2, figsize=(10.4, 4.0), sharey=True)
    for i, (N, g) in enumerate(summary.groupby("N")):
        axes[0].loglog(g["kappa"] ** 2, 1 + g["T_mean"], "o", color=f"C{i}", label=f"N = {N}")
        axes[1].loglog(1 / g["rate"], 1 + g["T_mean"], "o", color=f"C{i}", label=f"N = {N}")
    axes[0].set_xlabel(r"$\kappa^2$ of $\Phi_0$ (mean over seeds)")
    axes[1].set_xlabel("1 / empirical linear rate of the dense loss")
    axes[1].xaxis.set_minor_formatter(plt.NullFormatter())
    axes[0].set_ylabel(r"$1 + T^\star$")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_sigma_min(grid) -> plt.Figure:
    """Chapter 5, Figure 2 analog: simulated ``sigma_min(Phi_0)`` against ``N`` (mean and
    standard deviation over repetitions), one colour per input dimension ``d``, with the
    kernel prediction (dashed, per ``d``) and the Gaussian edge (black, dotted)."""
    panels = list(grid.groupby(["activation", "m"]))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.8), squeeze=False,
                             sharey=True)
    for ax, ((activation, m), g) in zip(axes[0], panels, strict=True):
        for i, (d, gd) in enumerate(g.groupby("d")):
            ax.errorbar(gd["N"], gd["sigma_min_mean"], yerr=gd["sigma_min_std"], fmt="o",
                        ms=4, color=f"C{i}", capsize=2, label=f"simulated, d={d}")
            ax.plot(gd["N"], gd["kernel_prediction"], "--", color=f"C{i}", lw=1,
                    label=f"kernel view, d={d}")
        edge = g.drop_duplicates("N")
        ax.plot(edge["N"], edge["edge_prediction"], "k:", label=r"$s(\sqrt{N}-\sqrt{m})$")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"{activation}, m = {m}")
        ax.set_xlabel("width $N$")
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
    axes[0, 0].set_ylabel(r"$\sigma_{\min}(\Phi_0)$")
    axes[0, -1].legend(fontsize=6)
    fig.tight_layout()
    return fig


def plot_condition(gauss) -> plt.Figure:
    """Chapter 5, Figure 3 analog: condition number of standard Gaussian ``m x N`` matrices
    against ``N`` (mean and standard deviation) with the Bai-Yin limit."""
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    for i, (m, g) in enumerate(gauss.groupby("m")):
        ax.errorbar(g["N"], g["kappa_mean"], yerr=g["kappa_std"], fmt="o", color=f"C{i}",
                    capsize=2, label=f"simulated, m={m}")
        ax.plot(g["N"], g["bai_yin_kappa"], "-", color=f"C{i}", lw=1, label=f"Bai-Yin, m={m}")
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(plt.NullFormatter())
    ax.set_xlabel("width $N$")
    ax.set_ylabel(r"condition number $\kappa$")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_fig1(table, red) -> plt.Figure:
    """Chapter 6, Figure 1 analog: GFS subnetwork accuracy on the training sub-dataset
    against pre-training iterations, one line per sub-dataset size, one panel per width,
    with the red line of ``labkit.red_line``."""
    gfs = table[table["method"] == "gfs"].groupby(["N", "size", "t"])["accuracy"].mean()
    widths = sorted(table["N"].unique())
    fig, axes = _width_panels(widths)
    for ax, N in zip(axes[0], widths, strict=True):
        gN = gfs.xs(N, level="N")
        n_sizes = gN.index.get_level_values("size").nunique()
        for i, (size, g) in enumerate(gN.groupby(level="size")):
            t = g.index.get_level_values("t")
            ax.plot(t, g.values, "o-", ms=3, color=plt.cm.viridis(0.9 * i / max(1, n_sizes - 1)),
                    label=f"{size} examples")
        r = red[(red["N"] == N)].dropna()
        acc = [gN.loc[(s, t)] for s, t in zip(r["size"], r["t_red"], strict=True)]
        ax.plot(r["t_red"], acc, "r-", lw=2, label="red line")
        ax.set_title(f"N = {N}")
        ax.set_xlabel("pre-training iterations")
    return _finish(fig, axes, "GFS subnetwork accuracy (training sub-dataset)", 7)


def plot_methods(table, size) -> plt.Figure:
    """Chapter 6: GFS against the magnitude and random baselines and the dense network on
    one sub-dataset size, mean and spread over seeds, one panel per width."""
    part = table[table["size"] == size]
    widths = sorted(part["N"].unique())
    fig, axes = _width_panels(widths, height=4.0)
    for ax, N in zip(axes[0], widths, strict=True):
        for i, (method, g) in enumerate(part[part["N"] == N].groupby("method")):
            s = g.groupby("t")["accuracy"]
            ax.errorbar(s.mean().index, s.mean(), yerr=s.std().fillna(0), fmt="o-", ms=3,
                        capsize=2, color=f"C{i}", label=method)
        ax.set_title(f"N = {N}, {size} examples")
        ax.set_xlabel("pre-training iterations")
    return _finish(fig, axes, "accuracy on the training sub-dataset")


def plot_deep_table(table, by: str = "size") -> plt.Figure:
    """Chapter 7, Tables 1-2 as curves: test accuracy of the fine-tuned subnetwork (solid)
    and of the dense network (dashed) against the pre-training checkpoint at which it was
    pruned, one panel per architecture, one colour per ``by`` value (size or eps)."""
    archs = list(dict.fromkeys(table["arch"]))
    fig, axes = _width_panels(archs)
    for ax, arch in zip(axes[0], archs, strict=True):
        part = table[table["arch"] == arch]
        for i, (key, g) in enumerate(part.groupby(by)):
            g = g.sort_values("t")
            ax.plot(g["t"], 100 * g["finetuned_acc"], "o-", color=f"C{i}",
                    label=f"{by} {key}: subnetwork")
            ax.plot(g["t"], 100 * g["dense_acc"], "--", color=f"C{i}", alpha=0.6,
                    label=f"{by} {key}: dense")
        ax.set_title(arch)
        ax.set_xlabel("pre-training iterations before pruning")
    return _finish(fig, axes, "test accuracy (%)", 7)


def plot_step_times(table, model: CostModel | None = None):
    """Measured seconds per step against the number of processes ``P``, one line per size
    ``N x m`` (rows of :func:`labkit.measure_steps`), with the fitted ``model`` dashed; hollow
    markers are oversubscribed runs. Chapter 8."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for n, ((N, m), rows) in enumerate(table.groupby(["N", "m"])):
        rows = rows.sort_values("nprocs")
        color = f"C{n}"
        ax.plot(rows["nprocs"], 1e3 * rows["step_s"], "-", color=color,
                label=f"N = {N:,}, m = {m:,}")
        over = (rows["oversubscribed"].to_numpy(bool) if "oversubscribed" in rows
                else np.zeros(len(rows), bool))
        for part, face in ((rows[~over], color), (rows[over], "white")):
            ax.plot(part["nprocs"], 1e3 * part["step_s"], "o", color=color, mfc=face)
        if model is not None:
            P = np.arange(1, rows["nprocs"].max() + 1)
            t = model.step_time(N, m, P, int(rows["itemsize"].iloc[0]))
            ax.plot(P, 1e3 * t, "--", color=color, lw=1)
    ax.set_yscale("log")
    ax.set_xticks(sorted(table["nprocs"].unique()))
    ax.set_xlabel("processes $P$")
    ax.set_ylabel("time per step (ms)")
    ax.set_title("measured (dots; hollow: more processes than cores)"
                 + (", cost model (dashed)" if model else ""), fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def plot_speedup(model: CostModel, m: int, *, widths, nprocs=(2, 4), channels=(),
                 max_procs: int = 64, itemsize: int = 8):
    """What the fitted ``model`` predicts. Left: time per step against ``P`` up to
    ``max_procs`` for each width in ``widths``; right: the speed-up over ``P = 1`` against
    the width ``N`` for each ``P`` in ``nprocs``, with the block widths ``channels`` marked
    (the Figure 4 setting). Chapter 8."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10.5, 3.8))
    P = np.unique(np.geomspace(1, max_procs, 40).astype(int))
    for n, N in enumerate(widths):
        left.loglog(P, 1e3 * model.step_time(N, m, P, itemsize), color=f"C{n}",
                    label=f"N = {N:,}")
    left.set_xlabel("processes $P$")
    left.set_ylabel("predicted time per step (ms)")
    left.legend(fontsize=8)
    Ns = np.unique(np.geomspace(8, 10 * max(widths), 200).astype(int))
    for n, p in enumerate(nprocs):
        right.semilogx(Ns, model.speedup(Ns, m, p, itemsize), color=f"C{n}", label=f"P = {p}")
        if len(channels):
            right.plot(channels, model.speedup(np.asarray(channels), m, p, itemsize), "o",
                       color=f"C{n}")
    right.axhline(1, color="0.6", lw=0.8)
    for c in channels:
        right.axvline(c, color="0.85", lw=0.8, zorder=0)
    right.set_xlabel("neurons (channels) $N$")
    right.set_ylabel("predicted speed-up over $P=1$")
    right.legend(fontsize=8)
    fig.suptitle(f"cost model fitted on this machine, m = {m:,}", fontsize=10)
    fig.tight_layout()
    return fig
