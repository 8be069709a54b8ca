"""Chapter 9's analysis: the pruning threshold per seed, the paired improvement test, the bridge
to GFS at equal size, and the verdicts on Yang et al.'s claims.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from labkit.algorithms.growth import paired_difference, t_interval


def _crossing(fractions, errors, target: float) -> float:
    """The first pruning fraction at which ``errors`` reaches ``target``, interpolated
    linearly in ``log(1 - fraction)`` (the kept fraction's log) between grid points; NaN
    if it never does."""
    x = np.log(1 - np.asarray(fractions, dtype=float))
    e = np.asarray(errors, dtype=float)
    for i in range(1, len(e)):
        if e[i] >= target > e[i - 1]:
            w = (target - e[i - 1]) / (e[i] - e[i - 1])
            return float(1 - np.exp(x[i - 1] + w * (x[i] - x[i - 1])))
    return float("nan")


def prune_thresholds(table: pd.DataFrame, level: float) -> pd.DataFrame:
    """Per signal norm and seed: the dense network's test error and the *threshold*, the
    first pruning fraction at which the test error comes within ``level`` of chance
    (``0.5 - level``), read by :func:`_crossing`; ``censored`` where no fraction of the
    grid reaches it. The dense network (fraction 0) can never be the threshold unless it
    is itself at chance, which is then reported as such."""
    sweep = table[table["part"] == "sweep"].sort_values("fraction")
    rows = []
    for (mu, seed), g in sweep.groupby(["mu_norm", "seed"]):
        dense = float(g["test_error"].iloc[0])
        at = _crossing(g["fraction"], g["test_error"], 0.5 - level)
        rows.append({"mu_norm": mu, "seed": seed, "dense_test_error": dense,
                     "threshold": at, "censored": bool(np.isnan(at)),
                     "dense_at_chance": dense >= 0.5 - level})
    return pd.DataFrame(rows)


def threshold_summary(thresholds: pd.DataFrame) -> pd.DataFrame:
    """Mean threshold per signal norm with its 95% t-interval over the uncensored seeds,
    and the kept fraction ``1 - threshold`` at the mean."""
    rows = []
    for mu, g in thresholds.groupby("mu_norm"):
        v = g.loc[~g["censored"], "threshold"]
        mean, lo, hi = (t_interval(v, bounds=(0.0, 1.0)) if len(v) > 1
                        else (v.mean(), np.nan, np.nan))
        rows.append({"mu_norm": mu, "seeds": len(g), "censored": int(g["censored"].sum()),
                     "threshold": mean, "low": lo, "high": hi, "kept": 1 - mean})
    return pd.DataFrame(rows)


def improvement(table: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Test error at each pruning fraction minus the dense network's, paired by seed (the
    same data and initialization), with its t-interval at the Bonferroni level over the
    fractions (``level`` family-wise) and the training error there."""
    sweep = table[table["part"] == "sweep"]
    rows = []
    for mu, g in sweep.groupby("mu_norm"):
        wide = g.pivot_table(index="seed", columns="fraction", values="test_error")
        fractions = [f for f in wide.columns if f > 0]
        each = 1 - (1 - level) / len(fractions)
        for f in fractions:
            diff = paired_difference(wide[f], wide[0.0], level=each)
            rows.append({"mu_norm": mu, "fraction": f, "test_error": wide[f].mean(),
                         "minus_dense": diff["mean"], "low": diff["lo"], "high": diff["hi"],
                         "train_error": g.loc[g["fraction"] == f, "train_error"].mean()})
    return pd.DataFrame(rows)


def bridge_summary(table: pd.DataFrame) -> pd.DataFrame:
    """The bridge at equal kept size: per signal norm, kept fraction and method (GFS per
    pre-training length), the trained subnetwork's test error (mean and 95% t-interval
    over seeds), GFS's right after pruning, and the training error."""
    part = table[table["part"] == "bridge"]
    rows = []
    for (mu, keep, method, t), g in part.groupby(["mu_norm", "keep", "method", "t"]):
        mean, lo, hi = t_interval(g["test_error"], bounds=(0.0, 1.0))
        rows.append({"mu_norm": mu, "keep": keep, "k": int(g["k"].iloc[0]),
                     "method": method if method != "gfs" else f"gfs t={int(t)}",
                     "test_error": mean, "low": lo, "high": hi,
                     "pruned_test_error": g["pruned_test_error"].mean(),
                     "train_error": g["train_error"].mean()})
    return pd.DataFrame(rows)


def bridge_winners(table: pd.DataFrame) -> pd.DataFrame:
    """Per signal norm and kept fraction: the method of lowest mean test error, and each
    other method's paired difference to Yang et al.'s random mask (95% t-interval)."""
    part = table[table["part"] == "bridge"].copy()
    part["method"] = np.where(part["method"] == "gfs",
                              "gfs t=" + part["t"].astype(int).astype(str), part["method"])
    rows = []
    for (mu, keep), g in part.groupby(["mu_norm", "keep"]):
        wide = g.pivot_table(index="seed", columns="method", values="test_error")
        best = wide.mean().idxmin()
        row = {"mu_norm": mu, "keep": keep, "best": best,
               "best_error": wide[best].mean(), "random_mask": wide["random_mask"].mean()}
        for method in wide.columns:
            if method != "random_mask":
                d = paired_difference(wide[method], wide["random_mask"])
                row[f"{method} - mask"] = f"{d['mean']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}]"
        rows.append(row)
    return pd.DataFrame(rows)
