"""Figures of the experiment chapters 6-8: Figure 1, Tables 1-2 as curves, distributed GFS
timings and its cost model."""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np

from labkit.plotting.style import ONE, _legend, _line_or_points, _panels, _styled

if TYPE_CHECKING:
    from labkit.distributed import CostModel

@_styled
def plot_fig1(table, red) -> plt.Figure:
    """Chapter 6, Figure 1 as lines: GFS subnetwork accuracy on the training sub-dataset
    against pre-training iterations, one line per sub-dataset size, one panel per width,
    and the red line's target (dashed; ``red`` from ``labkit.experiments.fig1.cell.red_line``)."""
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
        target = red.loc[red["N"] == N, "target"]
        if len(target):
            ax.axhline(target.iloc[0], color="r", ls="--", lw=1.5, label="red line's target")
        ax.set_title(f"N = {N}")
        ax.set_xlabel("pre-training iterations")
    axes[0].set_ylabel("GFS subnetwork accuracy\n(training sub-dataset)")
    _legend(fig, ncols=5)
    return fig


@_styled
def plot_fig1_heatmap(table, red, plateau_from: int | None = None) -> plt.Figure:
    """Chapter 6, Figure 1 as the paper lays it out (our reading of its figure): sub-dataset
    size against pre-training iterations, colour the mean GFS subnetwork accuracy, one panel
    per width; over it the red line (``red`` per seed, from
    ``labkit.experiments.fig1.cell.red_line``): each
    seed's ``t_red`` (open circles) and their mean (the line). Checkpoints are evenly spaced
    columns labelled with their iteration; columns from ``plateau_from`` on, past the dotted
    line, only estimate the target's plateau."""
    gfs = table[table["method"] == "gfs"].groupby(["N", "size", "t"])["accuracy"].mean()
    widths = sorted(table["N"].unique())
    fig, axes = _panels(len(widths), height=4.0, sharey=True)
    lo, hi = float(gfs.min()), float(gfs.max())
    for ax, N in zip(axes, widths, strict=True):
        grid = gfs.xs(N, level="N").unstack("t")
        ts, sizes = grid.columns.to_numpy(float), grid.index.to_numpy()
        image = ax.imshow(grid.to_numpy(), aspect="auto", origin="lower", cmap="viridis",
                          vmin=lo, vmax=hi, interpolation="nearest")
        ax.set_xticks(range(len(ts)), [f"{t:g}" for t in ts], rotation=60)
        ax.set_yticks(range(len(sizes)), [f"{s:,}" for s in sizes])
        if plateau_from is not None and (ts >= plateau_from).any():
            ax.axvline(np.argmax(ts >= plateau_from) - 0.5, color="w", ls=":", lw=1.5)
        row_of = dict(zip(sizes, range(len(sizes)), strict=True))  # size -> image row
        r = red[(red["N"] == N)].dropna(subset=["t_red"])
        x = np.interp(r["t_red"].to_numpy(float), ts, np.arange(len(ts)))
        ax.plot(x, r["size"].map(row_of), "o", mfc="none", mec="r", ms=6,
                label="red line, one seed")
        mean = r.groupby("size")["t_red"].mean()
        ax.plot(np.interp(mean.to_numpy(float), ts, np.arange(len(ts))),
                mean.index.map(row_of), "r-", lw=2, label="red line, mean over seeds")
        ax.set_title(f"N = {N}")
        ax.set_xlabel("pre-training iterations (checkpoints)")
    axes[0].set_ylabel("sub-dataset size")
    fig.colorbar(image, ax=list(axes), label="GFS subnetwork accuracy", shrink=0.9)
    _legend(fig, ncols=2)
    return fig


@_styled
def plot_red_line_lr(summary) -> plt.Figure:
    """Chapter 6, the learning-rate sensitivity: the red line (``summary`` from
    ``labkit.experiments.fig1.cell.red_line_summary`` on an ``lr_sweep`` table, one width)
    against the
    sub-dataset size, one line per learning rate, with its t-interval over seeds; left in
    iterations, right in iterations times the learning rate (the distance the mean-field
    step travels), which puts the rates on one curve if the step only rescales time."""
    fig, axes = _panels(2, height=4.0)
    for i, (lr, g) in enumerate(summary.groupby("lr")):
        g = g.sort_values("size")
        for ax, scale in zip(axes, (1.0, lr), strict=True):
            err = np.vstack([g["t_red"] - g["low"], g["high"] - g["t_red"]]) * scale
            ax.errorbar(g["size"], g["t_red"] * scale, yerr=np.nan_to_num(err), fmt="o-",
                        ms=4, capsize=3, color=plt.cm.viridis(0.85 * i / max(
                            1, summary["lr"].nunique() - 1)), label=f"lr = {lr:g}")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("sub-dataset size")
        sizes = sorted(summary["size"].unique())
        ax.set_xticks(sizes, [f"{s:,}" for s in sizes])
        ax.minorticks_off()
    axes[0].set_ylabel("red line: iterations")
    axes[1].set_ylabel("red line: iterations x lr")
    _legend(fig, ncols=4)
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
    """Chapter 7, Tables 1-2 as curves: test accuracy of the fine-tuned subnetwork against
    the pre-training checkpoint at which it was pruned, GFS solid, the L1-norm and random
    baselines (same per-layer channel counts) dashed and dotted, the dense network at that
    checkpoint thin grey; one panel per (architecture, ``by`` value: size or target)."""
    styles = {"gfs": ("-", "GFS"), "l1": ("--", "L1 norm"), "random": (":", "random")}
    keys = list(dict.fromkeys(zip(table["arch"], table[by], strict=True)))
    fig, axes = _panels(len(keys), height=3.4)
    for ax, (arch, key) in zip(axes, keys, strict=True):
        part = table[(table["arch"] == arch) & (table[by] == key)]
        for i, (method, (ls, label)) in enumerate(styles.items()):
            g = part[part["method"] == method].sort_values("t")
            if len(g):
                ax.plot(g["t"], 100 * g["finetuned_acc"], ls, marker="o", ms=3,
                        color=f"C{i}", label=label)
        dense = part[part["method"] == "gfs"].sort_values("t")
        ax.plot(dense["t"], 100 * dense["dense_acc"], "-", color="0.6", lw=1,
                label="dense")
        what = ("all" if key == 0 else f"{key:,}") if by == "size" else f"{key:.0%} FLOPs"
        ax.set_title(f"{arch}, {by} {what}" if by == "size" else f"{arch}, {what}")
        ax.set_xscale("log")  # ticks: the house style's (_styled)
        ax.set_xlabel("pre-training iterations before pruning")
        ax.set_ylabel("test accuracy (%)")
    axes[0].legend(loc="lower right")
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


def plot_channel_distributed(measured, model):
    """The paper's Figure 4 setting (Appendix D), chapter 8. Left: measured seconds per
    channel-GFS step on four ResNet34 blocks for each process count (``measured``: rows of
    ``benchmarks/channel_gfs_distributed.py`` with ``block, C, nprocs, step_s,
    oversubscribed``; oversubscribed runs hatched). Right: the fitted
    :class:`~labkit.distributed.ChannelCostModel`'s speed-up on ``P`` devices each as fast
    as the measuring machine (``model``: one row per block with ``block, C`` and
    ``model_step_s``, a dict from ``P`` to seconds), a model, not a measurement."""
    fig, (left, right) = _panels(2, height=4.0)
    blocks = sorted(measured["block"].unique())
    procs = sorted(measured["nprocs"].unique())
    width = 0.8 / len(procs)
    for j, P in enumerate(procs):
        rows = measured[measured["nprocs"] == P].set_index("block").loc[blocks]
        over = bool(rows["oversubscribed"].any())
        left.bar(np.arange(len(blocks)) + (j - (len(procs) - 1) / 2) * width, rows["step_s"],
                 width, color=f"C{j}", hatch="//" if over else None, edgecolor="white",
                 label=f"P = {P}" + (", oversubscribed" if over else ""))
    C = measured.drop_duplicates("block").set_index("block").loc[blocks, "C"]
    left.set_xticks(np.arange(len(blocks)),
                    [f"{b} ({c})" for b, c in zip(blocks, C, strict=True)])
    left.set_xlabel("ResNet34 block (channels $C$)")
    left.set_yscale("log")
    left.set_ylabel("measured seconds per step")
    for n, row in enumerate(model.itertuples()):
        steps = {int(P): t for P, t in row.model_step_s.items()}
        P = np.array(sorted(steps))
        t = np.array([steps[p] for p in P])
        right.plot(P, t[0] / t, "o-", color=f"C{n + len(procs)}", label=f"block {row.block}")
    right.plot([1, P.max()], [1, P.max()], color="0.6", lw=0.8, ls="--", label="ideal")
    right.set_xticks(P)
    right.set_xlabel("devices $P$ (model)")
    right.set_ylabel("model speed-up over $P=1$")
    # one legend per panel, in the corner each panel's data leave empty
    left.legend(loc="upper right")
    right.legend(loc="upper left")
    return fig
