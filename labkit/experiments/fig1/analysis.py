"""Chapter 6's analysis: the red line (the pre-training at which GFS's subnetwork reaches its
plateau) per seed and setting, its growth with the dataset size, the archived runs and the
verdicts on Figure 1's claims.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def red_line(table: pd.DataFrame, *, plateau_from: int, tolerance: float) -> pd.DataFrame:
    """Figure 1's red line, per seed, in our operational form (chapter 6).

    The paper's: for each sub-dataset size, the first checkpoint at which the GFS
    subnetwork reaches the best accuracy of the largest size; its point at the largest size
    is then reached by definition. Ours: the target of width ``N`` is the largest size's
    **plateau**, the mean GFS accuracy over seeds and over the checkpoints ``t >=
    plateau_from`` (trained past the grid only to estimate it), minus ``tolerance``; for
    each size and seed, ``t_red`` is the first grid checkpoint (``t < plateau_from``) at
    which that seed's GFS accuracy reaches the target, ``NaN`` (censored) if none does.
    No point is fixed by the definition: the plateau checkpoints are never candidates.
    Returns one row per (N, size, seed): ``target``, ``tolerance``, ``t_red`` (per
    learning rate too, in an ``lr_sweep`` table)."""
    g = table[table["method"] == "gfs"]
    if not (g["t"] >= plateau_from).any():
        raise ValueError(f"plateau_from: no checkpoint at or after {plateau_from}; the "
                         "plateau is estimated from checkpoints past the grid")
    rows = []
    keys = _settings(table)
    for key, gN in g.groupby(keys):
        setting = dict(zip(keys, key, strict=True))
        largest = gN[gN["size"] == gN["size"].max()]
        target = float(largest[largest["t"] >= plateau_from]["accuracy"].mean()) - tolerance
        grid = gN[gN["t"] < plateau_from]
        for (size, seed), gs in grid.groupby(["size", "seed"]):
            reached = gs[gs["accuracy"] >= target]["t"]
            rows.append({**setting, "size": size, "seed": seed, "target": target,
                         "tolerance": tolerance,
                         "t_red": float(reached.min()) if len(reached) else np.nan})
    return pd.DataFrame(rows)


def _settings(table: pd.DataFrame) -> list[str]:
    """What a red line is drawn per: the width, and the learning rate in a sweep."""
    return ["lr", "N"] if "lr" in table.columns else ["N"]


def red_line_summary(red: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Per (N, size): the mean ``t_red`` over the seeds that reached the target, its
    t-interval (``NaN`` with fewer than two), and how many seeds were censored."""
    from labkit.algorithms.growth import t_interval

    rows = []
    keys = [*_settings(red), "size"]
    for key, g in red.groupby(keys):
        t = g["t_red"].dropna().to_numpy(float)
        mean = float(t.mean()) if len(t) else np.nan
        _, low, high = t_interval(t, level) if len(t) > 1 else (mean, np.nan, np.nan)
        rows.append({**dict(zip(keys, key, strict=True)), "target": float(g["target"].iloc[0]),
                     "t_red": mean, "low": low, "high": high,
                     "seeds": len(g), "censored": int(g["t_red"].isna().sum())})
    return pd.DataFrame(rows)


def red_line_growth(red: pd.DataFrame, horizon: int, *, n_boot: int = 200) -> pd.DataFrame:
    """How the red line grows with the sub-dataset size, per width, with chapter 4's
    statistics (:func:`labkit.growth_table`, one implementation): the Box-Cox fit on the
    per-seed ``t_red`` with its profile interval for ``p``, the likelihood-ratio test of
    the log law, the AIC gap and the held-out largest size. Seeds that never reached the
    target are censored at ``horizon`` (the last grid checkpoint); a ``t_red`` of 0 carries
    no growth and is dropped, as chapter 4 drops its zero thresholds."""
    from labkit.experiments.threshold.analysis import growth_table

    keys = _settings(red)
    runs = pd.DataFrame({**{k: red[k] for k in keys}, "m": red["size"], "seed": red["seed"],
                         "dense_censored": red["t_red"].isna(),
                         "T_dense": red["t_red"].fillna(horizon)})
    return growth_table(runs, "T_dense", by=tuple(keys), n_boot=n_boot).rename(
        columns={"runs": "seeds x sizes"})


def load_fig1_archive(name: str) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """An archived Figure 1 run (``results/archive/<name>/``, :func:`labkit.load_archive`):
    its table, its manifest, and its red line (:func:`red_line`) with the plateau and the
    tolerance its manifest records. Chapter 6."""
    from labkit.infra.runner import load_archive

    table, info = load_archive(name)
    fields = info["fields"]
    red = red_line(table, plateau_from=fields["plateau"][0], tolerance=fields["tolerance"])
    return table, info, red


def _settings_of(runs: dict):
    """``(label, key, red rows, growth row)`` for every red line of ``runs``, which maps a
    source label to ``(table, red, growth, grid_end)``."""
    for label, (_, red, growth, _) in runs.items():
        keys = _settings(red)
        for key, r in red.groupby(keys):
            sel = np.ones(len(growth), dtype=bool)
            for k, v in zip(keys, key, strict=True):
                sel &= (growth[k] == v).to_numpy()
            name = ", ".join(f"{k}={v:g}" for k, v in zip(keys, key, strict=True))
            yield label, name, r, growth[sel].iloc[0] if sel.any() else None


def _grows(runs: dict) -> tuple[str, bool]:
    """Every seed's red line at the largest size after every seed's at the smallest (a
    censored seed counts as later than the grid)."""
    texts, ok = [], True
    for label, name, r, _ in _settings_of(runs):
        t = r.assign(t=r["t_red"].fillna(np.inf)).groupby("size")["t"]
        small, large = t.get_group(r["size"].min()), t.get_group(r["size"].max())
        means = r.groupby("size")["t_red"].mean()
        sep = large.min() > small.max()
        ok &= bool(sep)
        texts.append(f"{label} {name}: {means.iloc[0]:,.0f} -> {means.iloc[-1]:,.0f}"
                     f"{'' if sep else ' (seeds overlap)'}")
    return "; ".join(texts), ok


def _log_law(runs: dict) -> tuple[str, str]:
    """The profile intervals of the Box-Cox ``p``: all hold 0 and exclude 1 (reproduced),
    some exclude 0 (not reproduced), otherwise consistent but not decided."""
    texts, verdicts = [], []
    for label, name, _, g in _settings_of(runs):
        if g is None or not np.isfinite(g["p"]):
            texts.append(f"{label} {name}: no fit")
            verdicts.append("undecided")
            continue
        texts.append(f"{label} {name}: p = {g['p']:.2f} [{g['p_lo']:.2f}, {g['p_hi']:.2f}]")
        if g["p_lo"] > 0 or g["p_hi"] < 0:
            verdicts.append("not reproduced")
        else:
            verdicts.append("reproduced" if g["p_hi"] < 1 else "undecided")
    verdict = ("not reproduced" if "not reproduced" in verdicts else
               "reproduced" if set(verdicts) == {"reproduced"} else
               "consistent, not decided")
    return "; ".join(texts), verdict


def _at_init(runs: dict) -> tuple[str, str]:
    """Pre-training must raise every size's GFS accuracy (mean over seeds) from ``t = 0``
    to its plateau by more than the red line's tolerance (reproduced); "partly" if so, but
    some seed already reaches the red line's cross-size target at ``t = 0`` (possible when
    the largest size is barely learned, so that target is low)."""
    texts, gaps_ok, at_zero = [], True, 0
    for label, (table, red, _, grid_end) in runs.items():
        g, keys = table[table["method"] == "gfs"], [*_settings(red), "size"]
        start = g[g["t"] == 0].groupby(keys)["accuracy"].mean()
        gap = g[g["t"] > grid_end].groupby(keys)["accuracy"].mean() - start
        tolerance = red.groupby(keys)["tolerance"].first().reindex(gap.index)
        gaps_ok &= bool((gap > tolerance).all())
        zero = int((red["t_red"] == 0).sum())
        at_zero += zero
        texts.append(f"{label}: {start.min():.2f}-{start.max():.2f} at t=0, pre-training "
                     f"adds {100 * gap.min():.1f}-{100 * gap.max():.1f} points; "
                     f"{zero} of {len(red)} seed red lines at t=0")
    verdict = ("not reproduced" if not gaps_ok else "partly" if at_zero else "reproduced")
    return "; ".join(texts), verdict


def _narrower(runs: dict) -> tuple[str, str]:
    """Narrowest minus widest width's GFS accuracy at the end of the grid, paired by size
    and seed, with its t-interval: reproduced if above 0, not reproduced otherwise."""
    from labkit.algorithms.growth import paired_difference

    texts, verdicts = [], []
    for label, (table, _, _, grid_end) in runs.items():
        widths = sorted(table["N"].unique())
        if len(widths) < 2:
            continue
        g = table[(table["method"] == "gfs") & (table["t"] == grid_end)]
        acc = g.pivot_table(index=["size", "seed"], columns="N", values="accuracy")
        d = paired_difference(acc[widths[0]], acc[widths[-1]])
        texts.append(f"{label}: N={widths[0]} minus N={widths[-1]} = "
                     f"{100 * d['mean']:+.2f} [{100 * d['lo']:+.2f}, {100 * d['hi']:+.2f}] "
                     f"points ({d['n']} pairs)")
        verdicts.append("reproduced" if d["lo"] > 0 else "not reproduced")
    if not texts:
        return "one width only", "not tested"
    return "; ".join(texts), ("reproduced" if set(verdicts) == {"reproduced"} else
                              "not reproduced" if "reproduced" not in verdicts else "partly")


def fig1_verdict_table(quick: dict, archived: dict) -> pd.DataFrame:
    """Chapter 6's verdicts: each claim of Section 5, what the quick and the archived runs
    measured, and a verdict decided by a stated rule from the archived runs. ``quick`` and
    ``archived`` map a source label to ``(table, red, growth, grid_end)``
    (:func:`run_fig1`, :func:`red_line`, :func:`red_line_growth`, the last grid
    checkpoint). Rules: the growth is reproduced if at every width every seed's red line
    at the largest size comes after every seed's at the smallest; the log law by
    :func:`_log_law`; no good subnetwork at initialization by :func:`_at_init`; narrower
    is better if the paired difference's interval is above 0."""
    rows = []
    q, a = _grows(quick), _grows(archived)
    rows.append(("the pre-training needed grows with the dataset size", "yes", q[0], a[0],
                 "reproduced" if a[1] else "not reproduced"))
    q, a = _log_law(quick), _log_law(archived)
    rows.append(("the growth is logarithmic (Box-Cox p = 0)", "\"seemingly\"", q[0], a[0],
                 a[1]))
    q, a = _at_init(quick), _at_init(archived)
    rows.append(("no good subnetwork at initialization", "yes", q[0], a[0], a[1]))
    q, a = _narrower(quick), _narrower(archived)
    rows.append(("narrower dense networks give better subnetworks", "yes", q[0], a[0],
                 a[1]))
    return pd.DataFrame(rows, columns=["claim (Section 5)", "paper", "quick", "archived",
                                       "verdict"])
