"""Chapter 10's analysis: IMP's matching sparsity, the rewinding and data-diet effects, linear
mode connectivity and what it predicts, GFS's red line against the pre-training data, and
the verdicts on Paul et al.'s claims.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _interval(values, bounds=(0.0, 1.0)) -> tuple[float, float, float]:
    """Mean and 95% t-interval over seeds, inside ``bounds`` (errors and barriers are
    fractions); NaN ends with one seed."""
    from labkit.algorithms.growth import t_interval

    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return float(v.mean()), float("nan"), float("nan")
    return t_interval(v, bounds=bounds)


def imp_summary(table: pd.DataFrame) -> pd.DataFrame:
    """IMP's test error per rewind point (its data and step) and round: the density kept
    and the mean test error with its 95% t-interval over seeds (NaN with one seed)."""
    imp = table[table["part"] == "imp"]
    rows = []
    for (diet, t, r), g in imp.groupby(["diet", "t", "round"]):
        mean, lo, hi = _interval(g["test_error"])
        rows.append({"diet": diet, "t": int(t), "round": int(r),
                     "density": g["density"].mean(), "test_error": mean, "low": lo,
                     "high": hi, "seeds": len(g)})
    return pd.DataFrame(rows)


def matching(table: pd.DataFrame, tol: float) -> pd.DataFrame:
    """Per IMP cell (seed, diet, rewind step): the dense network's test error (round 0,
    trained from the same rewind point), the *matching density* (the lowest density down
    to which every round is within ``tol`` of it), and the test error and density of the
    sparsest round."""
    imp = table[table["part"] == "imp"].sort_values("round")
    rows = []
    for (seed, diet, t), g in imp.groupby(["seed", "diet", "t"]):
        dense = float(g["test_error"].iloc[0])
        ok = (g["test_error"] <= dense + tol).to_numpy()
        last = int(np.argmin(ok)) - 1 if not ok.all() else len(ok) - 1
        rows.append({"seed": seed, "diet": diet, "t": int(t), "dense_error": dense,
                     "matching_density": float(g["density"].iloc[last]),
                     "sparsest_density": float(g["density"].iloc[-1]),
                     "sparsest_error": float(g["test_error"].iloc[-1])})
    return pd.DataFrame(rows)


def _paired(a: pd.Series, b: pd.Series) -> dict:
    from labkit.algorithms.growth import paired_difference

    both = pd.concat([a, b], axis=1, keys=["a", "b"]).dropna()
    if len(both) < 2:
        d = float((both["a"] - both["b"]).mean()) if len(both) else float("nan")
        return {"mean": d, "lo": float("nan"), "hi": float("nan"), "n": len(both)}
    return paired_difference(both["a"], both["b"])


def rewind_effect(table: pd.DataFrame, tol: float) -> pd.DataFrame:
    """Each rewind point against rewinding to initialization (full data), paired by seed:
    the sparsest round's test error minus step 0's (negative: rewinding later helps), with
    its 95% t-interval, and the mean matching densities."""
    m = matching(table, tol)
    full = m[m["diet"] == "full"].set_index(["t", "seed"])
    rows = []
    for t in sorted(full.index.get_level_values("t").unique()):
        if t == 0:
            continue
        d = _paired(full.loc[t, "sparsest_error"], full.loc[0, "sparsest_error"])
        rows.append({"t": t, "sparsest_error": full.loc[t, "sparsest_error"].mean(),
                     "minus_step0": d["mean"], "low": d["lo"], "high": d["hi"],
                     "matching_density": full.loc[t, "matching_density"].mean(),
                     "matching_density_step0": full.loc[0, "matching_density"].mean()})
    return pd.DataFrame(rows)


def diet_effect(table: pd.DataFrame, tol: float) -> pd.DataFrame:
    """Each diet against full-data pre-training for the same number of steps, paired by
    seed: the sparsest round's test error difference (95% t-interval), the matching
    densities, and the test error of the rewind point itself."""
    m = matching(table, tol).set_index(["diet", "t", "seed"])
    rew = table[table["part"] == "rewind"].set_index(["diet", "t", "seed"])["test_error"]
    rew, m = rew.sort_index(), m.sort_index()
    rows = []
    for diet, t in sorted({(d, t) for d, t, _ in m.index if d != "full"}):
        d = _paired(m.loc[(diet, t), "sparsest_error"], m.loc[("full", t), "sparsest_error"])
        rows.append({"diet": diet, "t": t, "sparsest_error": m.loc[(diet, t),
                                                                   "sparsest_error"].mean(),
                     "minus_full": d["mean"], "low": d["lo"], "high": d["hi"],
                     "matching_density": m.loc[(diet, t), "matching_density"].mean(),
                     "full_matching_density": m.loc[("full", t), "matching_density"].mean(),
                     "rewind_point_error": rew.loc[(diet, t)].mean()})
    return pd.DataFrame(rows)


def lmc_summary(table: pd.DataFrame) -> pd.DataFrame:
    """The error barrier and the fraction of connected training examples from each rewind
    point, dense and under the last round's mask, mean and 95% t-interval over seeds."""
    part = table[table["part"] == "lmc"]
    rows = []
    for (diet, t, which), g in part.groupby(["diet", "t", "lmc"]):
        mean, lo, hi = _interval(g["barrier"])
        rows.append({"diet": diet, "t": int(t), "network": which,
                     "density": g["density"].mean(), "barrier": mean, "low": lo,
                     "high": hi, "connected": g["connected"].mean(),
                     "stable": float((g["barrier"] < 0.02).mean())})
    return pd.DataFrame(rows)


def lmc_predicts(table: pd.DataFrame, tol: float) -> dict:
    """Paul et al.'s predictor across every IMP cell: the Spearman correlation between
    the fraction of training examples connected in the dense network from the rewind
    point and the sparsest round's test error (negative: more connected, better IMP),
    and the same for the dense error barrier."""
    from scipy.stats import spearmanr

    m = matching(table, tol).set_index(["seed", "diet", "t"])
    lm = table[(table["part"] == "lmc") & (table["lmc"] == "dense")].set_index(
        ["seed", "diet", "t"])
    both = m.join(lm[["connected", "barrier"]], how="inner")
    out = {"cells": len(both)}
    for col in ("connected", "barrier"):
        if len(both) >= 3 and both[col].nunique() > 1:
            r = spearmanr(both[col], both["sparsest_error"])
            out[col] = (float(r.statistic), float(r.pvalue))
        else:
            out[col] = (float("nan"), float("nan"))
    return out


def gfs_red_line(table: pd.DataFrame, plateau_from: int, tolerance: float) -> pd.DataFrame:
    """The bridge's red line per (mode, fraction, seed): the first grid checkpoint at which
    the GFS subnetwork (scored on the full set) reaches the target, the full-data run's
    plateau (mean over seeds at the checkpoints from ``plateau_from``) minus
    ``tolerance``; censored if never on the grid. The plateau checkpoints are never
    candidates, so no point is fixed by the target's definition."""
    g = table[table["part"] == "gfs"]
    ref = g[(g["mode"] == "pretrain") & (g["f"] == 1.0) & (g["t"] >= plateau_from)]
    target = ref["accuracy"].mean() - tolerance
    grid = g[g["t"] < plateau_from]
    rows = []
    for (mode, f, seed), h in grid.groupby(["mode", "f", "seed"]):
        h = h.sort_values("t")
        hit = h[h["accuracy"] >= target]
        rows.append({"mode": mode, "f": f, "seed": seed, "target": target,
                     "t_red": float(hit["t"].iloc[0]) if len(hit) else float("nan"),
                     "censored": not len(hit),
                     "best": float(h["accuracy"].max())})
    return pd.DataFrame(rows)


def gfs_red_summary(red: pd.DataFrame) -> pd.DataFrame:
    """The red line per (mode, fraction): mean over the seeds that reached the target,
    its 95% t-interval, how many were censored, and the best accuracy on the grid."""
    rows = []
    for (mode, f), g in red.groupby(["mode", "f"]):
        v = g.loc[~g["censored"], "t_red"]
        mean, lo, hi = _interval(v, (0.0, np.inf)) if len(v) else (float("nan"),) * 3
        rows.append({"mode": mode, "f": f, "t_red": mean, "low": lo, "high": hi,
                     "censored": int(g["censored"].sum()), "seeds": len(g),
                     "best": g["best"].mean()})
    return pd.DataFrame(rows)
