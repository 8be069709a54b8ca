"""Every figure function of labkit.plotting against the house style (book design, section 10),
measured on the drawn figure in display coordinates:

- the saved image (``bbox_inches="tight"``, as the notebook and the page store it) fits the
  article column, so the page shows it at its natural size;
- every visible text is at least 10 pt at that size;
- at most two panels per row;
- no legend's box contains a plotted data point (markers, line vertices, error-bar ends);
- every axis has at least three labelled ticks.

``LABKIT_FIGURES_DIR=DIR`` saves each tested figure there, to look at.

The inputs are small real runs of the experiments (a few seconds in all) where that is
cheap, and small tables of the right shape otherwise. ``test_checker_catches`` shows that
each rule fails on a figure that breaks it.
"""

from __future__ import annotations

import functools
import io
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.image import imread  # noqa: E402

import labkit as lk  # noqa: E402
from labkit import config  # noqa: E402
from labkit import plotting as P  # noqa: E402

# ------------------------------------------------------------------------------ the checker


def _points(ax) -> np.ndarray:
    """Display coordinates of everything plotted in ``ax`` that a legend could hide."""
    pts = []
    for line in ax.get_lines():
        if line.get_visible() and len(line.get_xydata()):
            pts.append(line.get_transform().transform(line.get_xydata()))
    for coll in ax.collections:
        offsets = coll.get_offsets()
        if len(offsets):
            pts.append(coll.get_offset_transform().transform(offsets))
        for path in coll.get_paths():  # error bars: segments
            if len(path.vertices) <= 4:
                pts.append(coll.get_transform().transform(path.vertices))
    pts = [p for p in pts if len(p)]
    if not pts:
        return np.empty((0, 2))
    pts = np.concatenate(pts)
    pts = pts[np.isfinite(pts).all(1)]
    box = ax.get_window_extent()
    inside = ((pts[:, 0] >= box.x0) & (pts[:, 0] <= box.x1)
              & (pts[:, 1] >= box.y0) & (pts[:, 1] <= box.y1))
    return pts[inside]  # outside the axes a point is clipped, not drawn


def _panel_rows(fig) -> list[int]:
    """Number of panels in each row (axes whose vertical extents overlap)."""
    axes = [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]
    rows: list[list] = []
    for ax in sorted(axes, key=lambda a: -a.get_position().y1):
        pos = ax.get_position()
        for row in rows:
            other = row[0].get_position()
            if min(pos.y1, other.y1) - max(pos.y0, other.y0) > 0.5 * pos.height:
                row.append(ax)
                break
        else:
            rows.append([ax])
    return [len(r) for r in rows]


def house_style_problems(fig) -> list[str]:
    problems = []
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")  # as the inline backend stores it
    buf.seek(0)
    width = imread(buf).shape[1]
    if width > P.COLUMN_PX:
        problems.append(f"saved image {width} px wide, the column holds {P.COLUMN_PX}")
    scale = min(1.0, P.COLUMN_PX / width)  # the page shrinks a wider image
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for text in fig.findobj(matplotlib.text.Text):
        if text.get_visible() and text.get_text().strip() and text.get_figure() is fig:
            shown = text.get_fontsize() * fig.dpi / 96 * scale  # CSS points on the page
            if shown < P.MIN_FONT_PT - 1e-9:
                problems.append(f"text {text.get_text()[:30]!r} at {shown:.1f} pt")
    if max(_panel_rows(fig), default=0) > 2:
        problems.append(f"panels per row: {_panel_rows(fig)}")
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend())]
    for legend in legends:
        box = legend.get_window_extent(renderer)
        for ax in fig.axes:
            pts = _points(ax)
            hit = ((pts[:, 0] > box.x0) & (pts[:, 0] < box.x1)
                   & (pts[:, 1] > box.y0) & (pts[:, 1] < box.y1))
            if hit.any():
                problems.append(f"legend covers {int(hit.sum())} data points of "
                                f"{ax.get_title()!r}")
    for ax in fig.axes:
        colorbar = getattr(ax, "_colorbar", None)  # its short side carries no scale
        short = None if colorbar is None else "x" if colorbar.orientation == "vertical" else "y"
        for name, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
            if not axis.get_visible() or not ax.axison or name == short:
                continue
            lo, hi = sorted(ax.get_xlim() if name == "x" else ax.get_ylim())
            labelled = [t for t in axis.get_major_ticks() if lo <= t.get_loc() <= hi
                        and any(label.get_visible() and label.get_text().strip()
                                for label in (t.label1, t.label2))]
            shared = (ax.get_shared_x_axes() if name == "x" else ax.get_shared_y_axes())
            if len(labelled) < 3 and len(shared.get_siblings(ax)) == 1:
                problems.append(f"{ax.get_title()!r}: {name} axis has {len(labelled)} "
                                "labelled ticks")
    return problems


# ------------------------------------------------------------------------------ the inputs


@pytest.fixture(scope="module")
def threshold_run(tmp_path_factory):
    cfg = config.get("threshold", grid=((64, (4, 8, 16)), (32, (4, 8))), d_values=(3, 10),
                     seeds=(0, 1, 2), k=4, checkpoints=(0, 20, 50, 100, 150, 200),
                     deltas=(1e-2, 3e-3, 1e-3), delta=3e-3, n_boot=20, movement_m=4,
                     movement_widths=(16, 32, 64), movement_steps=50)
    df = lk.run_threshold(cfg, out=tmp_path_factory.mktemp("thr"))
    runs = lk.threshold_runs(df, delta=cfg.delta, tol=cfg.tol)
    growth = lk.growth_table(runs, n_boot=cfg.n_boot)
    return cfg, df, runs, growth, lk.regime_movement(cfg)


@pytest.fixture(scope="module")
def fig1_run(tmp_path_factory):
    cfg = config.get("fig1", sizes=(40, 80, 120), widths=(24, 40), seeds=(0, 1), k=6,
                     batch_size=16, checkpoints=(0, 5, 15), plateau=(25,))
    table = lk.run_fig1(cfg, out=tmp_path_factory.mktemp("fig1"))
    return table, lk.red_line(table, plateau_from=25, tolerance=0.05)


def _lr_summary():
    """A red-line summary of the shape an ``lr_sweep`` run gives (one row per lr, size)."""
    rows = [{"lr": lr, "N": 200, "size": size, "target": 0.97, "t_red": t / lr,
             "low": 0.8 * t / lr, "high": 1.2 * t / lr, "seeds": 2, "censored": 0}
            for lr in (0.25, 0.5, 1.0) for size, t in ((500, 200), (1000, 300), (5000, 700))]
    return pd.DataFrame(rows)


def _bounds():
    X, y = lk.teacher_student(30, 4, seed=0)
    net = lk.TwoLayerNet(4, 20, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        Phi = net.neuron_outputs(X)
    return {"t = 0": lk.lemma1_bound(Phi, y, 40), "t = 0 again": lk.lemma1_bound(Phi, y, 40)}


def _deep_table():
    rows = [{"arch": arch, "size": size, "t": t, "method": method,
             "finetuned_acc": 0.5 + 0.001 * t + 0.05 * j - 0.02 * i,
             "dense_acc": 0.6 + 0.001 * t}
            for arch in ("resnet34", "mobilenet_v2") for j, size in enumerate((1000, 0))
            for t in (15, 30, 60, 120) for i, method in enumerate(("gfs", "l1", "random"))]
    return pd.DataFrame(rows)


def _step_table():
    rows = [{"N": N, "m": m, "nprocs": p, "itemsize": 8, "step_s": 1e-4 * N * m / 1e6 / p
             + 1e-4 * (p > 1), "comm_s": 1e-4 * (p > 1), "oversubscribed": p > 2}
            for N, m in ((500, 2000), (4000, 2000)) for p in (1, 2, 3)]
    return pd.DataFrame(rows)


@functools.lru_cache(maxsize=1)
def _prune_init_run():
    """A small real chapter 9 run (about a second): two signal norms, two seeds."""
    import tempfile

    from labkit.experiments.prune_init import analysis as prune_init_analysis
    from labkit.experiments.prune_init import cell as prune_init

    cfg = config.get("prune_init", m=10, m_test=50, d=40, N=32, mu_norms=(1.0, 3.0),
                     steps=20, fractions=(0.0, 0.5, 0.9, 0.99), keep=(0.0625, 0.125, 0.25),
                     pretrain=(0, 5, 20), seeds=(0, 1))
    with tempfile.TemporaryDirectory() as out:
        table = prune_init.run_prune_init(cfg, out=out)
    thresholds = prune_init_analysis.prune_thresholds(table, 0.05)
    return table, prune_init_analysis.threshold_summary(thresholds), \
        prune_init_analysis.bridge_summary(table)


def _diet_config():
    return config.get("diet", image_size=8, width=2, steps=20, rewinds=(0, 5), diets=("random",),
                      diet_step=5, diet_size=50, rounds=3, lmc_alphas=3, bn_batches=2,
                      lmc_examples=50, seeds=(0, 1), gfs_N=20, gfs_k=5,
                      gfs_fractions=(0.5, 1.0), gfs_checkpoints=(0, 10, 20),
                      gfs_plateau=(30,), gfs_batch=16, gfs_seeds=(0, 1))


@functools.lru_cache(maxsize=1)
def _diet_run():
    """A small real chapter 10 run (seconds): a width-2 ResNet-8 on 8x8 digits."""
    import tempfile

    from labkit.experiments.diet import analysis as diet_analysis
    from labkit.experiments.diet import cell as diet

    cfg = _diet_config()
    with tempfile.TemporaryDirectory() as out:
        table = diet.run_diet(cfg, out=out)
    return table, diet_analysis.gfs_red_line(table, cfg.gfs_plateau[0], 0.2)


MODEL = lk.CostModel(overhead_s=2e-5, s_per_entry=1e-9, latency_s=3e-5, bandwidth_Bps=2e9)


def _figures(threshold_run, fig1_run):
    cfg, df, runs, growth, mv = threshold_run
    table, red = fig1_run
    X, y = lk.teacher_student(2, 2, seed=0)
    Phi = torch.randn(7, 2, generator=torch.Generator().manual_seed(0))
    cfg1 = config.get("lemma1", m=40, widths=(20, 40), lemma3_checkpoints=(0, 10, 30))
    cfg5 = config.get("rmt", m_values=(20, 40), d_values=(5, 10), N_values=(40, 80, 160),
                      reps=2)
    return {
        "plot_polytopes": lambda: lk.plot_polytopes({"at init": Phi, "trained": Phi * 0.5},
                                                    y, k_lattice=2),
        "plot_loss_vs_k": lambda: lk.plot_loss_vs_k(
            {"GFS": 1 / np.arange(1, 65), "FW": 1.2 / np.arange(1, 65)}, reference=0.01),
        "plot_lemma1": lambda: lk.plot_lemma1(_bounds()),
        "plot_lemma3": lambda: lk.plot_lemma3(lk.lemma3_movement(cfg1)),
        "plot_movement": lambda: lk.plot_movement(mv),
        "plot_dense_vs_t": lambda: lk.plot_dense_vs_t(df, d=3, N=64, delta=cfg.delta),
        "plot_pruned_vs_t": lambda: lk.plot_pruned_vs_t(df, d=3, N=64, k=cfg.k),
        "plot_threshold": lambda: lk.plot_threshold(runs, growth, N=64),
        "plot_form": lambda: lk.plot_form(runs),
        "plot_sigma_min": lambda: lk.plot_sigma_min(lk.sigma_min_grid(cfg5)),
        "plot_kappa": lambda: lk.plot_kappa(lk.sigma_min_grid(cfg5)),
        "plot_condition": lambda: lk.plot_condition(
            lk.gaussian_condition((20, 40), (40, 80, 160), 3)),
        "plot_fig1": lambda: lk.plot_fig1(table, red),
        "plot_fig1_heatmap": lambda: lk.plot_fig1_heatmap(table, red, plateau_from=25),
        "plot_methods": lambda: lk.plot_methods(table, 80),
        "plot_red_line_lr": lambda: lk.plot_red_line_lr(_lr_summary()),
        "plot_deep_table": lambda: lk.plot_deep_table(_deep_table(), by="size"),
        "plot_step_times": lambda: lk.plot_step_times(_step_table(), MODEL),
        "plot_speedup": lambda: lk.plot_speedup(MODEL, 2000, widths=(10**3, 10**4),
                                                nprocs=(2, 4), channels=(64, 512)),
        "plot_channel_distributed": lambda: lk.plot_channel_distributed(*_figure4()),
        "plot_prune_fraction": lambda: lk.plot_prune_fraction(*_prune_init_run()[:2]),
        "plot_prune_bridge": lambda: lk.plot_prune_bridge(_prune_init_run()[2]),
        "plot_imp": lambda: lk.plot_imp(lk.imp_summary(_diet_run()[0])),
        "plot_lmc": lambda: lk.plot_lmc(_diet_run()[0]),
        "plot_gfs_diet": lambda: lk.plot_gfs_diet(*_diet_run()),
        "plot_stop_tradeoff": lambda: lk.plot_stop_tradeoff(_stopping_run()[2]),
        "plot_stop_points": lambda: lk.plot_stop_points(
            *_stopping_run()[:2], ["bound c=0.1", "stability tol=0.1", "Early-Bird tol=0.1"]),
    }


@functools.cache
def _stopping_run():
    """Chapter 11's experiment at a tiny size (about a second): the table, the stops and
    their summary."""
    import tempfile

    from labkit.experiments.stopping import analysis as tr_analysis
    from labkit.experiments.stopping import cell as tr

    cfg = config.StoppingConfig(testbeds=("teacher_student", "mnist1d"), seeds=(0, 1),
                                ts_m=(8,), ts_N=64, ts_k=4, ts_steps=60, ts_every=10,
                                fig1_N=40, fig1_k=10, fig1_steps=60, fig1_every=10,
                                mnist1d_size=100, window=2)
    with tempfile.TemporaryDirectory() as out:
        table = tr.run_stopping(cfg, out=out)
    stop = tr_analysis.rule_stops(table, cfg)
    return table, stop, tr_analysis.stop_summary(stop)


def _figure4():
    """Rows shaped like benchmarks/channel_gfs_distributed.py's, from a ChannelCostModel."""
    from labkit.distributed import ChannelCostModel

    measured, model = [], []
    for block, C, fixed in ((1, 64, 30.0), (8, 256, 8.0), (14, 512, 1.0), (16, 512, 0.2)):
        cm = ChannelCostModel(fixed, 0.5 * fixed / 10, 0.001)
        for procs in (1, 2, 3):
            measured.append({"block": block, "C": C, "nprocs": procs,
                             "step_s": float(cm.step_time(50, procs)),
                             "oversubscribed": procs > 2})
        model.append({"block": block, "C": C,
                      "model_step_s": {p: float(cm.step_time(50, p)) for p in (1, 2, 3, 4)}})
    return pd.DataFrame(measured), pd.DataFrame(model)


FIGURES = ["plot_polytopes", "plot_loss_vs_k", "plot_lemma1", "plot_lemma3",
           "plot_movement", "plot_dense_vs_t", "plot_pruned_vs_t", "plot_threshold",
           "plot_form", "plot_sigma_min", "plot_kappa",
           "plot_condition", "plot_fig1", "plot_fig1_heatmap", "plot_methods", "plot_red_line_lr",
           "plot_deep_table",
           "plot_step_times", "plot_speedup", "plot_channel_distributed",
           "plot_prune_fraction", "plot_prune_bridge", "plot_imp", "plot_lmc",
           "plot_gfs_diet", "plot_stop_tradeoff", "plot_stop_points"]


def test_every_figure_function_is_tested():
    public = {n for n in dir(P) if n.startswith("plot_")}
    assert public == set(FIGURES), public ^ set(FIGURES)


@pytest.mark.parametrize("name", FIGURES)
def test_figure_follows_the_house_style(name, threshold_run, fig1_run):
    fig = _figures(threshold_run, fig1_run)[name]()
    if os.environ.get("LABKIT_FIGURES_DIR"):  # to look at them: the images as stored
        fig.savefig(Path(os.environ["LABKIT_FIGURES_DIR"]) / f"{name}.png", bbox_inches="tight")
    try:
        assert house_style_problems(fig) == []
    finally:
        plt.close(fig)


# ------------------------------------------------------------------- the checker can fail


def test_checker_catches_each_broken_rule():
    fig, ax = plt.subplots(figsize=(12, 3), dpi=100)  # too wide
    ax.plot(np.linspace(0, 1, 400), np.linspace(0, 1, 400), "o", label="data")
    ax.legend(loc="center")  # over the data
    ax.set_title("tiny", fontsize=6)  # too small
    found = house_style_problems(fig)
    plt.close(fig)
    assert any("px wide" in p for p in found)
    assert any("legend covers" in p for p in found)
    assert any("'tiny'" in p and "pt" in p for p in found)
    fig, axes = plt.subplots(1, 3, figsize=(9, 3), dpi=100)  # three panels in a row
    axes[0].set_xscale("log")
    axes[0].set_xlim(2, 3)
    axes[0].set_xticks([2.5])
    found = house_style_problems(fig)
    plt.close(fig)
    assert any("panels per row: [3]" in p for p in found)
    assert any("x axis has 1 labelled ticks" in p for p in found)
