"""Figures of the theory chapters 1-3 and 5: the polytope, GFS rates, Lemmas 1 and 3,
sigma_min and condition numbers (chapter 4's are in :mod:`labkit.plotting.threshold`)."""

from __future__ import annotations

import itertools

import matplotlib.pyplot as plt
import numpy as np
from scipy.spatial import ConvexHull

from labkit.plotting.style import ONE, TWO, _legend, _np, _panels, _styled


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


@_styled
def plot_polytopes(panels: dict, y, **kwargs) -> plt.Figure:
    """Side-by-side :func:`draw_polytope` panels, one per ``title -> Phi`` entry. Chapter 1."""
    fig, axes = _panels(len(panels), height=4.2)
    for ax, (title, Phi) in zip(axes, panels.items(), strict=True):
        draw_polytope(ax, Phi, y, title=title, **kwargs)
    _legend(fig, ncols=4)
    return fig


@_styled
def plot_loss_vs_k(curves: dict, *, reference: float | None = None,
                   ylabel: str = r"$\ell(z_k)$", title: str = "",
                   slopes: bool = True) -> plt.Figure:
    """Loss (or excess loss) against the number of selected neurons ``k`` on log-log axes,
    with ``c/k`` and ``c ln(k)/k`` guides anchored at the first curve's ``k = 1`` value.
    ``reference`` draws a horizontal line (e.g. the dense loss). Chapter 2, Lemma 1."""
    fig, ax = plt.subplots(figsize=ONE)
    for label, values in curves.items():
        values = _np(values)
        ax.loglog(np.arange(1, len(values) + 1), values, label=label)
    if slopes:
        first = _np(next(iter(curves.values())))
        k = np.arange(1, len(first) + 1)
        c = first[0]
        ax.loglog(k, c / k, "k--", lw=0.8, label=r"guide $c/k$")
        ax.loglog(k[1:], c * np.log(k[1:]) / k[1:], "k:", lw=0.8, label=r"guide $c\,\ln k/k$")
    if reference is not None:
        ax.axhline(reference, color="0.4", lw=0.8, ls="-.", label="dense loss")
    ax.set_xlabel("neurons selected $k$")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    _legend(fig, where="right")
    return fig


@_styled
def plot_lemma1(panels: dict) -> plt.Figure:
    """Chapter 3: GFS loss against Lemma 1's bound and each of its terms, log-log, one
    panel per ``title -> Lemma1Bound``."""
    fig, axes = _panels(len(panels), height=4.0, sharey=True)
    for ax, (title, b) in zip(axes, panels.items(), strict=True):
        k = np.arange(1, len(b.total) + 1)
        ax.loglog(k, b.losses, color="k", lw=2, label=r"GFS loss $\ell(z_k)$")
        ax.loglog(k, b.total, color="C3", label="Lemma 1 bound (our statement)")
        ax.loglog(k, b.paper_form, color="C3", ls=":", label=r"bound with $\ln k$ and $L$")
        ax.loglog(k, b.init, color="C0", ls="--", label=r"term $\ell(z_1)/k$")
        ax.loglog(k[1:], b.diameter_term[1:], color="C1", ls="--",
                  label=r"term $D^2(H_k-1)/(mk)$")
        ax.loglog(k[1:], b.dense_term[1:], color="C2", ls="--",
                  label=r"term $(1-1/k)L_{\mathrm{dense}}$")
        ax.set_xlabel("neurons selected $k$")
        ax.set_title(title)
    axes[0].set_ylabel("loss")
    _legend(fig)
    return fig


@_styled
def plot_lemma3(df) -> plt.Figure:
    """Chapter 3: what Lemma 3 controls along GD, per width, one row per step rule (a table
    from ``lemma3_movement``). Left: the output weights' movement ``max_i |b_i(t) - b_i(0)|``
    (dots) and its bound ``lemma3_b_bound`` (dashed); right: the first layer's relative
    movement."""
    scalings = list(dict.fromkeys(df["scaling"]))
    rows = len(scalings)
    # one scale per column, so that the step rules compare at a glance
    fig, axes = plt.subplots(rows, 2, figsize=(TWO[0], 2.6 * rows + 0.6), squeeze=False,
                             sharex=True, sharey="col")
    for row, scaling in enumerate(scalings):
        part = df[(df["scaling"] == scaling) & (df["t"] > 0)]  # no movement at t = 0
        for i, (N, g) in enumerate(part.groupby("N")):
            axes[row, 0].loglog(g["t"], g["max_b_move"], "o-", color=f"C{i}", label=f"N = {N}")
            axes[row, 0].loglog(g["t"], g["b_move_bound"], "--", color=f"C{i}", lw=1)
            axes[row, 1].loglog(g["t"], g["rel_first"], "o-", color=f"C{i}")
        name = scaling.replace("_", "-")
        axes[row, 0].set_ylabel(f"{name} step\n" + r"$\max_i|b_i(t)-b_i(0)|$")
        axes[row, 1].set_ylabel(r"$\|W_t-W_0\|_F/\|W_0\|_F$")
    axes[0, 0].set_title("output weights (dashed: Lemma 3's bound)")
    axes[0, 1].set_title("first layer")
    for ax in axes[-1]:
        ax.set_xlabel("GD iteration $t$")
    _legend(fig, ncols=4)
    return fig


def _rmt_panels(grid, stat: str, lines, ylabel: str, extra=None) -> plt.Figure:
    """Chapter 5's panel layout: one panel per activation and ``m`` (two to a row), the
    simulated ``{stat}_mean`` with its standard deviation per input dimension ``d`` and,
    per ``d``, the prediction columns ``lines`` (``(column, style, width, label)``);
    ``extra(ax, g)`` draws what does not depend on ``d``."""
    panels = list(grid.groupby(["activation", "m"]))
    fig, axes = _panels(len(panels), height=3.4, sharey=True, sharex=True)
    for ax, ((activation, m), g) in zip(axes, panels, strict=True):
        for i, (d, gd) in enumerate(g.groupby("d")):
            ax.errorbar(gd["N"], gd[f"{stat}_mean"], yerr=gd[f"{stat}_std"], fmt="o", ms=4,
                        color=f"C{i}", capsize=2, label=f"d = {d}: simulated")
            for column, style, width, label in lines:
                ax.plot(gd["N"], gd[column], style, color=f"C{i}", lw=width,
                        label=f"d = {d}: {label}")
        if extra is not None:
            extra(ax, g)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"{activation}, m = {m}")
    for ax in axes[-2:]:
        ax.set_xlabel("width $N$")
    for ax in axes[::2]:
        ax.set_ylabel(ylabel)
    _legend(fig)
    return fig


@_styled
def plot_sigma_min(grid) -> plt.Figure:
    """Chapter 5, Figure 2 analog: simulated ``sigma_min(Phi_0)`` against ``N`` (mean and
    standard deviation over repetitions), one colour per input dimension ``d``, with the
    generalized Marchenko-Pastur edge (solid) and the kernel prediction (dashed), per ``d``,
    and the Gaussian edge (black, dotted); one panel per activation and ``m``, two to a
    row."""
    def gaussian_edge(ax, g):  # the same for every d
        edge = g.drop_duplicates("N")
        ax.plot(edge["N"], edge["edge_prediction"], "k:",
                label=r"Gaussian edge $s(\sqrt{N}-\sqrt{m})$")

    return _rmt_panels(grid, "sigma_min",
                       [("mp_prediction", "-", 1, "Marchenko-Pastur edge"),
                        ("kernel_prediction", "--", 1, "kernel view")],
                       r"$\sigma_{\min}(\Phi_0)$", extra=gaussian_edge)


@_styled
def plot_kappa(grid) -> plt.Figure:
    """Chapter 5: the condition number ``kappa`` of ``Phi_0`` against ``N`` (mean and
    standard deviation over repetitions), one colour per input dimension ``d``, with the
    generalized Marchenko-Pastur prediction ``sqrt(upper / lower edge)`` (solid) and the
    infinite-width limit ``sqrt(lambda_max(K) / lambda_min(K))`` (dotted), per ``d``; one
    panel per activation and ``m``, two to a row (a table from ``sigma_min_grid``)."""
    return _rmt_panels(grid, "kappa",
                       [("mp_kappa", "-", 1, "Marchenko-Pastur"),
                        ("kappa_inf", ":", 1.5, "infinite width")],
                       r"$\kappa(\Phi_0)$")


@_styled
def plot_condition(gauss) -> plt.Figure:
    """Chapter 5, Figure 3 analog: condition number of standard Gaussian ``m x N`` matrices
    against ``N`` (mean and standard deviation) with the Bai-Yin limit."""
    fig, ax = plt.subplots(figsize=ONE)
    for i, (m, g) in enumerate(gauss.groupby("m")):
        ax.errorbar(g["N"], g["kappa_mean"], yerr=g["kappa_std"], fmt="o", color=f"C{i}",
                    capsize=2, label=f"m = {m}: simulated")
        ax.plot(g["N"], g["bai_yin_kappa"], "-", color=f"C{i}", lw=1,
                label=f"m = {m}: Bai-Yin limit")
    ax.set_xscale("log")
    ax.set_xlabel("width $N$")
    ax.set_ylabel(r"condition number $\kappa$")
    _legend(fig, where="right")
    return fig
