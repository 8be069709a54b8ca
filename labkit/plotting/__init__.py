"""Figures for the book: one function per figure kind, each returning a Figure.

Styling lives here so chapters stay one call per figure (book design, sections 6 and 10).
Every figure is drawn in one house style (:mod:`~labkit.plotting.style`: ``RC``, applied by
``_styled``); the figures themselves are in :mod:`~labkit.plotting.theory` (chapters 1-3 and 5),
:mod:`~labkit.plotting.threshold` (chapter 4), :mod:`~labkit.plotting.experiments`
(chapters 6-8), :mod:`~labkit.plotting.neighbours` (chapters 9-10) and
:mod:`~labkit.plotting.stopping` (chapter 11):

- at most :data:`COLUMN_PX` pixels wide at :data:`DPI`, so the page shows it at its natural
  size, and every text at least 10 pt there (:data:`MIN_FONT_PT`);
- at most two panels per row;
- legends outside the data (``_legend``: one figure legend below or beside the panels);
- enough labelled ticks on log axes (``_ticks``); fitted curves only over the data.

``tests/test_plotting.py`` checks each figure function against these rules. :func:`show`
displays a figure and records it for the page's numbered, captioned figure (myst-nb glue).
"""

from labkit.plotting.experiments import (
    plot_channel_distributed,
    plot_deep_table,
    plot_fig1,
    plot_fig1_heatmap,
    plot_methods,
    plot_red_line_lr,
    plot_speedup,
    plot_step_times,
)
from labkit.plotting.neighbours import (
    plot_gfs_diet,
    plot_imp,
    plot_lmc,
    plot_prune_bridge,
    plot_prune_fraction,
)
from labkit.plotting.stopping import plot_stop_points, plot_stop_tradeoff
from labkit.plotting.style import COLUMN_PX, DPI, MIN_FONT_PT, ONE, RC, TWO, glue_text, show
from labkit.plotting.theory import (
    draw_polytope,
    plot_condition,
    plot_kappa,
    plot_lemma1,
    plot_lemma3,
    plot_loss_vs_k,
    plot_polytopes,
    plot_sigma_min,
)
from labkit.plotting.threshold import (
    plot_dense_vs_t,
    plot_form,
    plot_movement,
    plot_pruned_vs_t,
    plot_threshold,
)

__all__ = [
    "plot_stop_points", "plot_stop_tradeoff",
    "COLUMN_PX", "DPI", "MIN_FONT_PT", "ONE", "RC", "TWO", "draw_polytope",
    "plot_channel_distributed", "plot_condition",
    "plot_deep_table", "plot_dense_vs_t", "plot_fig1", "plot_fig1_heatmap", "plot_form",
    "plot_lemma1",
    "plot_lemma3", "plot_loss_vs_k", "plot_methods",
    "plot_red_line_lr", "plot_movement", "plot_polytopes",
    "plot_gfs_diet", "plot_imp", "plot_lmc", "plot_prune_bridge", "plot_prune_fraction",
    "plot_pruned_vs_t", "plot_sigma_min", "plot_kappa",
    "plot_speedup", "plot_step_times", "plot_threshold", "show", "glue_text",
]
