"""Figures of chapter 4: the regime (weight movement against the width), the dense and
pruned losses along pre-training, the thresholds against ``m`` with their fitted growth,
and the thresholds against the derivation's prediction."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from labkit.plotting.style import _legend, _line_or_points, _panels, _styled

RULES = {"theorem": "Theorem 2's step", "mean_field": "mean-field step (contrast)"}


def _rules(df) -> list[str]:
    return [s for s in RULES if s in set(df["scaling"])]


@_styled
def plot_movement(mv) -> plt.Figure:
    """Relative first-layer movement ``||W_t - W_0||_F / ||W_0||_F`` (left) and second-layer
    movement ``||b_t - b_0|| / ||b_0||`` (right) against the width, mean over seeds, one
    line per step rule (:func:`labkit.regime_movement`)."""
    fig, axes = _panels(2, height=3.8)
    for i, s in enumerate(_rules(mv)):
        g = mv[mv["scaling"] == s].groupby("N").mean(numeric_only=True)
        for ax, col in zip(axes, ("rel_first", "rel_second"), strict=True):
            _line_or_points(ax, g.index, g[col], color=f"C{i}", label=RULES[s])
    for ax, what in zip(axes, ("first layer (log scale)", "second layer"), strict=True):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("width $N$")
        ax.set_title(what)
    axes[0].set_yscale("log")  # orders of magnitude; the second layer's stays of order one
    axes[1].set_ylim(bottom=0)
    axes[0].set_ylabel("relative movement after training")
    _legend(fig)
    return fig


def _by_m(df, d, N):
    g = df[(df["d"] == d) & (df["N"] == N)]
    if g.empty:
        raise ValueError(f"d, N: no runs at d = {d}, N = {N}")
    return g


@_styled
def plot_dense_vs_t(df, *, d: int, N: int, delta: float) -> plt.Figure:
    """The dense loss along pre-training (median over seeds, every kept step), one line per
    ``m``, one panel per step rule, at input dimension ``d`` and width ``N``; the level
    ``delta`` whose first crossing is ``T_dense`` (dashed)."""
    g = _by_m(df[df["kind"] == "history"], d, N)
    rules = _rules(g)
    fig, axes = _panels(len(rules), height=3.8, sharey=True)
    for ax, s in zip(axes, rules, strict=True):
        for i, (m, gm) in enumerate(g[g["scaling"] == s].groupby("m")):
            med = gm.groupby("t")["dense_loss"].median()
            ax.plot(1 + med.index, med.values, color=f"C{i}", label=f"m = {m}")
        ax.axhline(delta, color="0.3", ls="--", lw=1, label=rf"$\delta$ = {delta:g}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(RULES[s])
        ax.set_xlabel("1 + pre-training iterations $t$")
    axes[0].set_ylabel("dense loss $L(t)$, median over seeds")
    _legend(fig, ncols=4)
    return fig


@_styled
def plot_pruned_vs_t(df, *, d: int, N: int, k: int) -> plt.Figure:
    """The GFS loss with ``k`` neurons at every checkpoint (median over seeds), one line per
    ``m``, one panel per step rule, at ``d`` and ``N``."""
    g = _by_m(df[df["kind"] == "checkpoint"], d, N)
    rules = _rules(g)
    fig, axes = _panels(len(rules), height=3.8, sharey=True)
    for ax, s in zip(axes, rules, strict=True):
        for i, (m, gm) in enumerate(g[g["scaling"] == s].groupby("m")):
            med = gm.groupby("t")[f"pruned_{k}"].median()
            _line_or_points(ax, 1 + med.index, med.values, ms=3, color=f"C{i}",
                            label=f"m = {m}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(RULES[s])
        ax.set_xlabel("1 + pre-training iterations $t$")
    axes[0].set_ylabel(rf"GFS loss with $k$ = {k}, median over seeds")
    _legend(fig, ncols=4)
    return fig


@_styled
def plot_threshold(runs, growth, *, value: str = "T_dense", N: int) -> plt.Figure:
    """Per-seed thresholds against ``m`` at width ``N`` (filled: reached; open: censored at
    the horizon), one colour per ``d``, one panel per step rule, with the Box-Cox fit of
    ``growth`` (:func:`labkit.threshold_runs`, :func:`labkit.growth_table`) over the
    measured ``m``."""
    from labkit.algorithms.growth import boxcox_term

    censored = {"T_dense": "dense_censored", "T_prune": "prune_censored"}[value]
    runs = runs[runs["N"] == N]
    rules = _rules(runs)
    fig, axes = _panels(len(rules), height=3.8, sharey=True)
    for ax, s in zip(axes, rules, strict=True):
        for i, (d, g) in enumerate(runs[runs["scaling"] == s].groupby("d")):
            jitter = np.exp(0.04 * (i - 0.5))  # the two d side by side at each m
            hit, cen = g[~g[censored]], g[g[censored]]
            ax.plot(hit["m"] * jitter, hit[value], "o", ms=3, color=f"C{i}", alpha=0.7,
                    label=f"d = {d}: per seed")
            ax.plot(cen["m"] * jitter, cen[value], "o", ms=4, mfc="none", color=f"C{i}",
                    label=f"d = {d}: censored" if len(cen) else "_")
            fit = growth[(growth["scaling"] == s) & (growth["d"] == d) & (growth["N"] == N)]
            if len(fit) and np.isfinite(fit["p"].iloc[0]):
                r = fit.iloc[0]
                grid = np.geomspace(g["m"].min(), g["m"].max(), 100)
                curve = r["a"] + r["b"] * boxcox_term(grid, r["p"])
                ax.plot(grid, np.where(curve > 0, curve, np.nan), color=f"C{i}", lw=1,
                        label=f"d = {d}: Box-Cox fit")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(f"{RULES[s]}, N = {N}")
        ax.set_xlabel("dataset size $m$")
    label = {"T_dense": r"$T_{\mathrm{dense}}$", "T_prune": r"$T_{\mathrm{prune}}$"}[value]
    axes[0].set_ylabel(f"{label} (GD iterations)")
    _legend(fig, ncols=3)
    return fig


@_styled
def plot_form(runs) -> plt.Figure:
    """Left: the measured ``T_dense`` against the derivation's bound ``T_bound`` (Theorem 2's
    step; the diagonal is equality, the bound holds below it). Right: ``T_dense`` against
    ``kappa^2`` of ``Phi_0`` for both step rules. One dot per run that reached ``delta``."""
    runs = runs[~runs["dense_censored"]]
    fig, axes = _panels(2, height=3.8)
    th = runs[runs["scaling"] == "theorem"]
    for i, (d, g) in enumerate(th.groupby("d")):
        axes[0].loglog(g["T_bound"], g["T_dense"], "o", ms=3, color=f"C{i}", alpha=0.7,
                       label=f"d = {d}")
    if len(th):
        lim = [max(1.0, th[["T_bound", "T_dense"]].min().min()),
               th[["T_bound", "T_dense"]].max().max()]
        axes[0].plot(lim, lim, "k--", lw=1, label="equality")
    axes[0].set_xlabel(r"bound $\log(L_0/\delta)\,/\,(-2\log(1-1/\kappa^2))$")
    axes[0].set_ylabel("measured $T_{dense}$")
    axes[0].set_title(RULES["theorem"])
    for j, s in enumerate(_rules(runs)):
        g = runs[runs["scaling"] == s]
        axes[1].loglog(g["kappa"] ** 2, g["T_dense"], "s" if j else "o", ms=3, alpha=0.6,
                       color=f"C{j + 2}", label=RULES[s])
    axes[1].set_xlabel(r"$\kappa^2$ of $\Phi_0$")
    axes[1].set_title("both step rules")
    _legend(fig, ncols=3)
    return fig
