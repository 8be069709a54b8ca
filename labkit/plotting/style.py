"""The house style of the book's figures (book design, section 10) and the helpers every
figure function uses; see :mod:`labkit.plotting`."""

from __future__ import annotations

import functools
import math

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import ticker

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


def glue_text(**texts: str) -> dict[str, str]:
    """Record each computed sentence or number under its name for the page (myst-nb
    ``glue``; a ``{glue:text}`` role in the markdown shows it), so that numbers in the
    prose are computed, not typed (book design, section 11). Returns them, for a reader
    running the chapter in JupyterLab (the page shows them where the prose cites them:
    tag the cell ``remove-output``)."""
    try:
        from myst_nb import glue
    except ImportError:
        glue = None
    for name, text in texts.items():
        if glue is not None:
            glue(name, str(text), display=False)
    return texts


def _line_or_points(ax, x, y, *args, **kwargs):
    """A line through three or more points; fewer are drawn as points only."""
    style = "o-" if len(x) >= 3 else "o"
    return ax.plot(x, y, style, *args, **kwargs)
