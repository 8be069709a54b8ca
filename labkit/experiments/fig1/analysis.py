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
    Returns one row per (N, size, seed): ``target``, ``tolerance``, ``t_red`` and
    ``t_prev``, the grid checkpoint before ``t_red`` (the red line is only known to lie in
    ``(t_prev, t_red]``: the statistics treat it as that interval, book design section
    11); per learning rate too, in an ``lr_sweep`` table."""
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
            t_red = float(reached.min()) if len(reached) else np.nan
            before = gs["t"][gs["t"] < t_red]
            rows.append({**setting, "size": size, "seed": seed, "target": target,
                         "tolerance": tolerance, "t_red": t_red,
                         "t_prev": float(before.max()) if len(before) else np.nan})
    return pd.DataFrame(rows)


def _settings(table: pd.DataFrame) -> list[str]:
    """What a red line is drawn per: the width, and the learning rate in a sweep."""
    return ["lr", "N"] if "lr" in table.columns else ["N"]


def red_line_summary(red: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Per (N, size): the mean ``t_red`` over the seeds that reached the target, an
    interval for it (``NaN`` with fewer than two), and how many seeds were censored.

    Each seed's red line is only known to lie in ``(t_prev, t_red]``, so the interval runs
    from the lower end of the t-interval of the ``t_prev`` values to the upper end of that
    of the ``t_red`` values (seeds tied on one checkpoint then give the grid's spacing, not
    a zero-width interval), kept at or above 0 iterations."""
    from labkit.algorithms.growth import t_interval

    rows = []
    keys = [*_settings(red), "size"]
    for key, g in red.groupby(keys):
        done = g.dropna(subset=["t_red"])
        t = done["t_red"].to_numpy(float)
        prev = done["t_prev"].fillna(0.0).to_numpy(float) if "t_prev" in done else t
        mean = float(t.mean()) if len(t) else np.nan
        if len(t) > 1:
            low = t_interval(prev, level, bounds=(0.0, np.inf))[1]
            high = t_interval(t, level, bounds=(0.0, np.inf))[2]
        else:
            low = high = np.nan
        rows.append({**dict(zip(keys, key, strict=True)), "target": float(g["target"].iloc[0]),
                     "t_red": mean, "low": low, "high": high,
                     "seeds": len(g), "censored": int(g["t_red"].isna().sum())})
    return pd.DataFrame(rows)


def red_line_growth(red: pd.DataFrame, horizon: int, *, n_boot: int = 200,
                    grid=None) -> pd.DataFrame:
    """How the red line grows with the sub-dataset size, per width, with chapter 4's
    statistics (:func:`labkit.growth_table`, one implementation): the Box-Cox fit on the
    per-seed ``t_red`` with its profile interval for ``p``, the likelihood-ratio test of
    the log law, the AIC gap and the held-out largest size. Each ``t_red`` enters as the
    interval ``(t_prev, t_red]`` it was read in (an interval-censored likelihood; tied
    seeds on the grid carry no information about spread); seeds that never reached the
    target are censored at ``horizon`` (the last grid checkpoint); a ``t_red`` of 0 carries
    no growth and is dropped, as chapter 4 drops its zero thresholds. ``grid``: the profile
    grid of ``p`` (:data:`labkit.algorithms.growth.P_GRID` by default)."""
    from labkit.experiments.threshold.analysis import growth_table

    keys = _settings(red)
    lower = red["t_prev"] if "t_prev" in red else red["t_red"]
    runs = pd.DataFrame({**{k: red[k] for k in keys}, "m": red["size"], "seed": red["seed"],
                         "dense_censored": red["t_red"].isna(),
                         "T_dense": red["t_red"].fillna(horizon),
                         "T_lower": lower.fillna(horizon)})
    return growth_table(runs, "T_dense", by=tuple(keys), n_boot=n_boot, lower="T_lower",
                        grid=grid).rename(columns={"runs": "seeds x sizes"})


def load_fig1_archive(name: str) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """An archived Figure 1 run (``results/archive/<name>/``, :func:`labkit.load_archive`):
    its table, its manifest, and its red line (:func:`red_line`) with the plateau and the
    tolerance its manifest records. Chapter 6."""
    from labkit.infra.runner import load_archive

    table, info = load_archive(name)
    fields = info["fields"]
    red = red_line(table, plateau_from=fields["plateau"][0], tolerance=fields["tolerance"])
    return table, info, red
