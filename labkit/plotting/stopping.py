"""Chapter 11's figures: where the stopping rules stop, and what it saves and costs."""

from __future__ import annotations

import matplotlib.pyplot as plt

from labkit.plotting.style import _legend, _panels, _styled

MARKERS = {"bound": "s", "stability": "o", "early_bird": "^"}
FAMILY = {"bound": "bound rule", "stability": "GFS selection stability",
          "early_bird": "Early-Bird (mask distance)"}


def _family(label: str) -> str:
    return ("bound" if label.startswith("bound") else "early_bird"
            if label.startswith("Early") else "stability")


@_styled
def plot_stop_tradeoff(summary) -> plt.Figure:
    """Chapter 11: the fraction of pre-training each rule saves (x) against what pruning
    at its stop costs (y), with the seeds' 95% intervals on both; left the loss testbed
    (relative increase of the pruned loss), right the accuracy testbeds (points lost).
    Marker: the rule family; colour: the testbed and setting (``summary`` from
    :func:`labkit.experiments.stopping.cell.stop_summary`)."""
    fig, axes = _panels(2, height=4.2)
    settings = list(dict.fromkeys(zip(summary["testbed"], summary["setting"], strict=True)))
    colors = {s: plt.cm.tab10(i % 10) for i, s in enumerate(settings)}
    for ax, loss in zip(axes, (True, False), strict=True):
        part = summary[summary["testbed"].isin(("teacher_student", "chapter4")) == loss]
        for r in part.itertuples():
            fam = _family(r.rule)
            ax.errorbar(r.saved, r.cost, xerr=[[r.saved - r.saved_lo], [r.saved_hi - r.saved]],
                        yerr=[[r.cost - r.cost_lo], [r.cost_hi - r.cost]],
                        fmt=MARKERS[fam], ms=5, capsize=2, alpha=0.8,
                        color=colors[(r.testbed, r.setting)])
        ax.axhline(0, color="0.5", lw=0.8)
        ax.set_xlabel("pre-training saved")
        ax.set_xlim(-0.05, 1.05)
        ax.set_ylabel("relative increase of pruned loss" if loss
                      else "accuracy lost (fraction)")
        ax.set_title("teacher-student (loss)" if loss else "classification (accuracy)")
    for (bed, setting), c in colors.items():
        axes[0].plot([], [], "-", color=c, lw=4, label=f"{bed} {setting}")
    for fam, marker in MARKERS.items():
        axes[0].plot([], [], marker, color="0.3", ls="none", label=FAMILY[fam])
    _legend(fig, ncols=3)
    return fig


@_styled
def plot_stop_points(table, stop, labels) -> plt.Figure:
    """Chapter 11: the outcome of pruning at every check (mean over seeds) on each
    testbed, one panel per setting, with where each rule of ``labels`` stopped on each
    seed marked on the curve (``table`` the run's tidy table, ``stop`` from
    :func:`labkit.experiments.stopping.cell.rule_stops`)."""
    settings = list(dict.fromkeys(zip(table["testbed"], table["setting"], strict=True)))
    fig, axes = _panels(len(settings), height=3.2)
    axes = list(getattr(axes, "flat", [axes]))
    for ax, (bed, setting) in zip(axes, settings, strict=False):
        g = table[(table["testbed"] == bed) & (table["setting"] == setting)]
        mean = g.groupby("t")["outcome"].mean()
        ax.plot(mean.index, mean.values, "-", color="0.3", lw=1.5, label="pruned at t")
        for i, label in enumerate(labels):
            s = stop[(stop["testbed"] == bed) & (stop["setting"] == setting)
                     & (stop["label"] == label) & stop["fired"]]
            if len(s):
                ax.plot(s["t_stop"], mean.reindex(s["t_stop"]).values + 0 * i,
                        MARKERS[_family(label)], ms=7, alpha=0.7, ls="none",
                        color=plt.cm.tab10(i), label=label)
        ax.set_title(f"{bed}, {setting}")
        ax.set_xlabel("pre-training iteration t")
        ax.set_ylabel("pruned loss" if bed in ("teacher_student", "chapter4")
                      else "pruned accuracy")
    _legend(fig, ncols=min(4, len(labels) + 1))
    return fig
