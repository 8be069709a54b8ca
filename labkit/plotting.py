"""Figures for the book: one function per figure kind, each returning a Figure.

Styling lives here so chapters stay one call per figure (book design, sections 6 and 10).
Every figure is drawn in one house style (:data:`RC`, applied by :func:`_styled`):

- at most :data:`COLUMN_PX` pixels wide at :data:`DPI`, so the page shows it at its natural
  size, and every text at least 10 pt there (:data:`MIN_FONT_PT`);
- at most two panels per row;
- legends outside the data (:func:`_legend`: one figure legend below or beside the panels);
- enough labelled ticks on log axes (:func:`_ticks`); fitted curves only over the data.

``tests/test_plotting.py`` checks each figure function against these rules. :func:`show`
displays a figure and records it for the page's numbered, captioned figure (myst-nb glue).
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import ticker
from scipy.spatial import ConvexHull

if TYPE_CHECKING:
    from labkit.distributed import CostModel

DPI = 100
COLUMN_PX = 940  # the article column is ~960 px at a 1280 px window (book/static/labkit.css)
MIN_FONT_PT = 10
ONE = (6.4, 4.2)  # one panel (inches)
TWO = (9.2, 4.0)  # two panels side by side: COLUMN_PX at DPI, with the saved margin
RC = {
    "figure.dpi": DPI, "savefig.dpi": DPI, "figure.constrained_layout.use": True,
    "font.size": 11, "axes.titlesize": 11, "axes.labelsize": 11, "xtick.labelsize": 10,
    "ytick.labelsize": 10, "legend.fontsize": 10, "figure.titlesize": 12,
    "legend.frameon": False,
}


def _np(a) -> np.ndarray:
    return a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)


def _styled(fn):
    """Draw ``fn``'s figure in the house style, then give every log axis enough ticks."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with plt.rc_context(RC):
            fig = fn(*args, **kwargs)
            for ax in fig.axes:
                _ticks(ax)
        return fig
    return wrapper


def _plain(value, _pos=None) -> str:
    return f"{value:g}"


def _ticks(ax) -> None:
    """Log axes spanning fewer than three decades get ticks at 1, 2 and 5 of each decade,
    labelled as plain numbers, so that every axis has at least three labelled ticks."""
    for axis, scale, (lo, hi) in ((ax.xaxis, ax.get_xscale(), ax.get_xlim()),
                                  (ax.yaxis, ax.get_yscale(), ax.get_ylim())):
        lo, hi = sorted((lo, hi))
        if scale != "log" or lo <= 0 or math.log10(hi / lo) >= 3:
            continue
        subs = (1.0, 2.0, 5.0) if math.log10(hi / lo) >= 0.7 else (1.0, 1.5, 2.0, 3.0, 5.0, 7.0)
        axis.set_major_locator(ticker.LogLocator(base=10, subs=subs))
        axis.set_major_formatter(ticker.FuncFormatter(_plain))
        axis.set_minor_formatter(ticker.NullFormatter())


def _legend(fig, where: str = "below", ncols: int | None = None) -> None:
    """One legend for the whole figure, outside every panel: the entries of all axes,
    each label once, ``below`` the panels or to the ``right``."""
    entries = {}
    for ax in fig.axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if not label.startswith("_"):
                entries.setdefault(label, handle)
    if not entries:
        return
    loc = "outside lower center" if where == "below" else "outside right upper"
    ncols = ncols or (min(3, len(entries)) if where == "below" else 1)
    fig.legend(list(entries.values()), list(entries), loc=loc, ncols=ncols)


def _panels(n: int, *, height: float = 3.6, **kwargs):
    """``n`` panels, at most two per row; a single panel gets the one-panel size."""
    cols = min(2, n)
    rows = math.ceil(n / cols)
    size = ONE if n == 1 else (TWO[0], height * rows)
    fig, axes = plt.subplots(rows, cols, figsize=size, squeeze=False, **kwargs)
    for ax in axes.flat[n:]:
        ax.remove()
    return fig, axes.flat[:n]


def show(fig, name: str) -> None:
    """Display ``fig`` and record it as ``name`` for the page (myst-nb ``glue``), where a
    ``{glue:figure}`` block gives it a number and a caption; the cell is tagged
    ``remove-output`` so the page shows it once. Closes ``fig`` (the inline backend would
    draw it a second time)."""
    try:
        from myst_nb import glue
    except ImportError:  # no book tooling: show it if IPython is there (a chapter run as a
        try:             # plain script, e.g. on the GPU machine, has neither)
            from IPython.display import display
        except ImportError:
            display = None
        if display is not None:
            display(fig)
    else:
        glue(name, fig, display=True)
    plt.close(fig)


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
    """Chapter 3: ``max_i ||Phi_i|| / sqrt(m)`` and the relative first-layer movement along
    GD, per width, for each step scaling (a table from ``lemma3_movement``)."""
    scalings = list(dict.fromkeys(df["scaling"]))
    cols = len(scalings)
    fig, axes = plt.subplots(2, cols, figsize=(TWO[0] if cols > 1 else ONE[0], 6.4),
                             squeeze=False, sharex=True)
    for col, scaling in enumerate(scalings):
        part = df[df["scaling"] == scaling]
        for i, (N, g) in enumerate(part.groupby("N")):
            t = np.maximum(g["t"], 1)  # t = 0 drawn at 1 on the log axis
            axes[0, col].semilogx(t, g["max_norm/sqrt_m"], "o-", color=f"C{i}", label=f"N = {N}")
            axes[1, col].semilogx(t, g["rel_movement"], "o-", color=f"C{i}", label=f"N = {N}")
        axes[0, col].set_title(f"{scaling} step")
        axes[1, col].set_xlabel("GD iteration $t$ (0 drawn at 1)")
    axes[0, 0].set_ylabel(r"$\max_i\|\Phi_i\|/\sqrt{m}$")
    axes[1, 0].set_ylabel(r"$\|W_t-W_0\|_F/\|W_0\|_F$")
    _legend(fig, ncols=4)
    return fig


def _line_or_points(ax, x, y, *args, **kwargs):
    """A line through three or more points; fewer are drawn as points only."""
    style = "o-" if len(x) >= 3 else "o"
    return ax.plot(x, y, style, *args, **kwargs)


@_styled
def plot_pruned_vs_t(df, T=None) -> plt.Figure:
    """Chapter 4: pruned loss (median over seeds) against pre-training iterations, one line
    per dataset size ``m``, one panel per width ``N``; ``T`` (from ``thresholds``) marks each
    curve's mean threshold ``T*`` (dotted vertical line, same colour)."""
    widths = sorted(df["N"].unique())
    fig, axes = _panels(len(widths), height=4.0, sharey=True)
    for ax, N in zip(axes, widths, strict=True):
        for i, (m, g) in enumerate(df[df["N"] == N].groupby("m")):
            med = g.groupby("t")["pruned_loss"].median()
            _line_or_points(ax, 1 + med.index, med.values, ms=3, color=f"C{i}",
                            label=f"m = {m}")
            if T is not None:
                t_star = T[(T["N"] == N) & (T["m"] == m)]["T_star"].mean()
                ax.axvline(1 + t_star, color=f"C{i}", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"N = {N}")
        ax.set_xlabel("1 + pre-training iterations $t$")
    if T is not None:
        axes[0].plot([], [], color="0.4", lw=0.8, ls=":", label=r"$1 + T^\star$ (dotted)")
    axes[0].set_ylabel(r"pruned loss $\ell(z_k)$, median over seeds")
    _legend(fig, ncols=4)
    return fig


@_styled
def plot_threshold(summary, fits: dict | None = None) -> plt.Figure:
    """Chapter 4: mean ``T*(m)`` with bootstrap intervals per width, on a log ``m`` axis, and
    the fitted growth laws (``fits`` maps each width to a ``fit_growth`` table), drawn over
    the measured ``m`` only and only where they are non-negative (a threshold is)."""
    from labkit.pretraining import growth_law

    fig, ax = plt.subplots(figsize=ONE)
    for i, (N, g) in enumerate(summary.groupby("N")):
        ax.errorbar(g["m"], g["T_mean"], yerr=[g["T_mean"] - g["T_lo"], g["T_hi"] - g["T_mean"]],
                    fmt="o", color=f"C{i}", capsize=3, label=f"N = {N}: mean, 90% interval")
        grid = np.geomspace(g["m"].min(), g["m"].max(), 100)
        table = (fits or {}).get(N)
        for j, (model, row) in enumerate(table.iterrows() if table is not None else []):
            curve = growth_law(model, row["theta"])(grid)
            ax.plot(grid, np.where(curve >= 0, curve, np.nan), color=f"C{i}",
                    ls=["--", ":"][j % 2], lw=1, label=f"N = {N}: fit {model}")
    ax.set_xscale("log")
    ax.set_xlabel("dataset size $m$")
    ax.set_ylabel(r"threshold $T^\star$ (GD iterations)")
    _legend(fig, where="right")
    return fig


@_styled
def plot_mechanism(summary) -> plt.Figure:
    """Chapter 4: ``T*`` against ``kappa^2`` of the initial feature matrix and against the
    inverse empirical GD rate, per ``(m, N)``."""
    fig, axes = _panels(2, height=4.0, sharey=True)
    for i, (N, g) in enumerate(summary.groupby("N")):
        axes[0].loglog(g["kappa"] ** 2, 1 + g["T_mean"], "o", color=f"C{i}", label=f"N = {N}")
        axes[1].loglog(1 / g["rate"], 1 + g["T_mean"], "o", color=f"C{i}", label=f"N = {N}")
    axes[0].set_xlabel(r"$\kappa^2$ of $\Phi_0$ (mean over seeds)")
    axes[1].set_xlabel("1 / empirical linear rate of the dense loss")
    axes[0].set_ylabel(r"$1 + T^\star$")
    _legend(fig)
    return fig


@_styled
def plot_sigma_min(grid) -> plt.Figure:
    """Chapter 5, Figure 2 analog: simulated ``sigma_min(Phi_0)`` against ``N`` (mean and
    standard deviation over repetitions), one colour per input dimension ``d``, with the
    kernel prediction (dashed, per ``d``) and the Gaussian edge (black, dotted); one panel
    per activation and ``m``, two to a row."""
    panels = list(grid.groupby(["activation", "m"]))
    fig, axes = _panels(len(panels), height=3.4, sharey=True, sharex=True)
    for ax, ((activation, m), g) in zip(axes, panels, strict=True):
        for i, (d, gd) in enumerate(g.groupby("d")):
            ax.errorbar(gd["N"], gd["sigma_min_mean"], yerr=gd["sigma_min_std"], fmt="o",
                        ms=4, color=f"C{i}", capsize=2, label=f"d = {d}: simulated")
            ax.plot(gd["N"], gd["kernel_prediction"], "--", color=f"C{i}", lw=1,
                    label=f"d = {d}: kernel view")
        edge = g.drop_duplicates("N")
        ax.plot(edge["N"], edge["edge_prediction"], "k:",
                label=r"Gaussian edge $s(\sqrt{N}-\sqrt{m})$")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"{activation}, m = {m}")
    for ax in axes[-2:]:
        ax.set_xlabel("width $N$")
    for ax in axes[::2]:
        ax.set_ylabel(r"$\sigma_{\min}(\Phi_0)$")
    _legend(fig)
    return fig


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


@_styled
def plot_fig1(table, red) -> plt.Figure:
    """Chapter 6, Figure 1 analog: GFS subnetwork accuracy on the training sub-dataset
    against pre-training iterations, one line per sub-dataset size, one panel per width,
    with the red line of ``labkit.red_line``."""
    gfs = table[table["method"] == "gfs"].groupby(["N", "size", "t"])["accuracy"].mean()
    widths = sorted(table["N"].unique())
    fig, axes = _panels(len(widths), height=4.0, sharey=True)
    for ax, N in zip(axes, widths, strict=True):
        gN = gfs.xs(N, level="N")
        n_sizes = gN.index.get_level_values("size").nunique()
        for i, (size, g) in enumerate(gN.groupby(level="size")):
            t = g.index.get_level_values("t")
            _line_or_points(ax, t, g.values, ms=3,
                            color=plt.cm.viridis(0.9 * i / max(1, n_sizes - 1)),
                            label=f"{size} examples")
        r = red[(red["N"] == N)].dropna()
        acc = [gN.loc[(s, t)] for s, t in zip(r["size"], r["t_red"], strict=True)]
        ax.plot(r["t_red"], acc, "r-", lw=2, label="red line")
        ax.set_title(f"N = {N}")
        ax.set_xlabel("pre-training iterations")
    axes[0].set_ylabel("GFS subnetwork accuracy\n(training sub-dataset)")
    _legend(fig, ncols=5)
    return fig


@_styled
def plot_methods(table, size) -> plt.Figure:
    """Chapter 6: GFS against the magnitude and random baselines and the dense network on
    one sub-dataset size, mean and spread over seeds, one panel per width."""
    part = table[table["size"] == size]
    widths = sorted(part["N"].unique())
    fig, axes = _panels(len(widths), height=4.0, sharey=True)
    for ax, N in zip(axes, widths, strict=True):
        for i, (method, g) in enumerate(part[part["N"] == N].groupby("method")):
            s = g.groupby("t")["accuracy"]
            ax.errorbar(s.mean().index, s.mean(), yerr=s.std().fillna(0), fmt="o-", ms=3,
                        capsize=2, color=f"C{i}", label=method)
        ax.set_title(f"N = {N}, {size} examples")
        ax.set_xlabel("pre-training iterations")
    axes[0].set_ylabel("accuracy on the\ntraining sub-dataset")
    _legend(fig, ncols=4)
    return fig


@_styled
def plot_deep_table(table, by: str = "size") -> plt.Figure:
    """Chapter 7, Tables 1-2 as curves: test accuracy of the fine-tuned subnetwork (solid)
    and of the dense network (dashed) against the pre-training checkpoint at which it was
    pruned, one panel per architecture, one colour per ``by`` value (size or eps)."""
    archs = list(dict.fromkeys(table["arch"]))
    fig, axes = _panels(len(archs), height=4.0)
    for ax, arch in zip(axes, archs, strict=True):
        part = table[table["arch"] == arch]
        for i, (key, g) in enumerate(part.groupby(by)):
            g = g.sort_values("t")
            _line_or_points(ax, g["t"], 100 * g["finetuned_acc"], color=f"C{i}",
                            label=f"{by} {key}")
            ax.plot(g["t"], 100 * g["dense_acc"], "--", color=f"C{i}", alpha=0.6)
        ax.set_title(arch)
        ax.set_xlabel("pre-training iterations before pruning")
    axes[0].plot([], [], "k-", label="fine-tuned subnetwork (solid)")
    axes[0].plot([], [], "k--", alpha=0.6, label="dense network (dashed)")
    axes[0].set_ylabel("test accuracy (%)")
    _legend(fig, ncols=4)
    return fig


@_styled
def plot_step_times(table, model: CostModel | None = None):
    """Measured seconds per step against the number of processes ``P``, one line per size
    ``N x m`` (rows of :func:`labkit.measure_steps`), with the fitted ``model`` dashed; hollow
    markers are oversubscribed runs. Chapter 8."""
    fig, ax = plt.subplots(figsize=ONE)
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
    if model is not None:
        ax.plot([], [], "k--", lw=1, label="cost model (dashed)")
    if "oversubscribed" in table and table["oversubscribed"].any():
        ax.plot([], [], "ko", mfc="white", label="more processes than cores")
    ax.set_yscale("log")
    ax.set_xticks(sorted(table["nprocs"].unique()))
    ax.set_xlabel("processes $P$")
    ax.set_ylabel("time per step (ms)")
    _legend(fig, where="right")
    return fig


@_styled
def plot_speedup(model: CostModel, m: int, *, widths, nprocs=(2, 4), channels=(),
                 max_procs: int = 64, itemsize: int = 8):
    """What the fitted ``model`` predicts. Left: time per step against ``P`` up to
    ``max_procs`` for each width in ``widths``; right: the speed-up over ``P = 1`` against
    the width ``N`` for each ``P`` in ``nprocs``, with the block widths ``channels`` marked
    (the Figure 4 setting). Chapter 8."""
    fig, (left, right) = _panels(2, height=4.0)
    P = np.unique(np.geomspace(1, max_procs, 40).astype(int))
    for n, N in enumerate(widths):
        left.loglog(P, 1e3 * model.step_time(N, m, P, itemsize), color=f"C{n}",
                    label=f"N = {N:,}")
    left.set_xlabel("processes $P$")
    left.set_ylabel("predicted time per step (ms)")
    Ns = np.unique(np.geomspace(8, 10 * max(widths), 200).astype(int))
    for n, p in enumerate(nprocs):
        right.semilogx(Ns, model.speedup(Ns, m, p, itemsize), color=f"C{n + len(widths)}",
                       label=f"P = {p}")
        if len(channels):
            right.plot(channels, model.speedup(np.asarray(channels), m, p, itemsize), "o",
                       color=f"C{n + len(widths)}")
    right.axhline(1, color="0.6", lw=0.8)
    for c in channels:
        right.axvline(c, color="0.85", lw=0.8, zorder=0)
    right.set_xlabel("neurons (channels) $N$")
    right.set_ylabel("predicted speed-up over $P=1$")
    _legend(fig, ncols=5)
    return fig
