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
        mean, lo, hi = t_interval(v) if len(v) > 1 else (v.mean(), np.nan, np.nan)
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
        mean, lo, hi = t_interval(g["test_error"])
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


def prune_init_verdicts(quick: pd.DataFrame, archived: pd.DataFrame, level: float
                        ) -> pd.DataFrame:
    """Yang et al.'s claims, with what the quick and archived runs show and a verdict by
    a stated rule from the archived run:

    - *fits and generalizes below a threshold*: every run below the smallest per-seed
      threshold fits its training set (training error 0), and the mean test error stays
      within ``level`` of the dense network's up to at least half the weights pruned;
    - *improves with the fraction, within limits*: some fraction's test error is below the
      dense network's with a Bonferroni 95% interval below 0 (at some signal norm);
    - *above a threshold, memorizes noise and guesses*: past every seed's threshold every
      run still fits its training set and every run's test error is within ``level`` of
      chance (*partly*: every run fits and at least half are at chance); the share of runs
      whose signal patch keeps under a tenth of the dense network's margin (the fit comes
      from the noise) is reported beside it.
    """
    def facts(table):
        th = prune_thresholds(table, level)
        sweep = table[table["part"] == "sweep"]
        imp = improvement(table)
        fits, as_good, memo, guess, noise_wins = [], [], [], [], []
        for mu, g in sweep.groupby("mu_norm"):
            t_mu = th[th["mu_norm"] == mu]
            first = t_mu["threshold"].min()
            below = g[g["fraction"] < first] if not np.isnan(first) else g
            fits.append(float((below["train_error"] == 0).mean()))
            mean = g.groupby("fraction")["test_error"].mean()
            worse = mean.index[mean > mean.iloc[0] + level]
            as_good.append(float(mean.index[mean.index < worse.min()].max()
                                 if len(worse) else mean.index.max()))
            last = t_mu["threshold"].max()
            above = g[g["fraction"] > last] if not np.isnan(last) else g.iloc[:0]
            if len(above):
                memo.append(float((above["train_error"] == 0).mean()))
                guess.append(float((above["test_error"] >= 0.5 - level).mean()))
                dense_signal = g.loc[g["fraction"] == 0, "signal_margin"].mean()
                noise_wins.append(float((above["signal_margin"] < 0.1 * dense_signal)
                                        .mean()))
        best = imp.loc[imp["high"] < 0]
        return {"th": th, "fits": min(fits), "as_good": min(as_good), "imp": imp,
                "best": best, "memo": memo, "guess": guess, "noise_wins": noise_wins,
                "censored": int(th["censored"].sum()), "seeds": len(th)}

    q, a = facts(quick), facts(archived)

    def fit_text(f):
        return (f"{f['fits']:.0%} of runs below the threshold fit the training set; mean "
                f"test error within {level:g} of the dense network's up to fraction "
                f"{f['as_good']:g}")

    def imp_text(f):
        if len(f["best"]):
            r = f["best"].sort_values("minus_dense").iloc[0]
            return (f"yes at ||mu|| = {r['mu_norm']:g}, fraction {r['fraction']:g}: "
                    f"{r['minus_dense']:+.3f} [{r['low']:+.3f}, {r['high']:+.3f}]")
        r = f["imp"].sort_values("minus_dense").iloc[0]
        return (f"no interval below 0; best {r['minus_dense']:+.3f} [{r['low']:+.3f}, "
                f"{r['high']:+.3f}] (||mu|| = {r['mu_norm']:g}, fraction {r['fraction']:g})")

    def memo_text(f):
        if not f["memo"]:
            return f"no fraction past every seed's threshold ({f['censored']} censored)"
        return (f"past every seed's threshold: {min(f['memo']):.0%} of runs fit the "
                f"training set, {min(f['guess']):.0%} are within {level:g} of chance, "
                f"{min(f['noise_wins']):.0%} keep under 10% of the dense signal margin")

    fits = a["fits"] == 1 and a["as_good"] >= 0.5
    memo = bool(a["memo"]) and min(a["memo"]) == 1 and min(a["guess"]) == 1
    guess_only = bool(a["memo"]) and min(a["memo"]) == 1 and min(a["guess"]) >= 0.5
    rows = [
        ("Below a threshold on the pruning fraction, GD drives the training loss to zero "
         "and the network generalizes", fit_text(q), fit_text(a),
         "reproduced" if fits else "not reproduced"),
        ("The generalization improves as the pruning fraction grows, within limits",
         imp_text(q), imp_text(a), "reproduced" if len(a["best"]) else "not reproduced"),
        ("Above a threshold the network still fits the training data, by memorizing "
         "noise, and is no better than chance", memo_text(q), memo_text(a),
         "reproduced" if memo else ("partly" if guess_only else "not reproduced")),
    ]
    return pd.DataFrame(rows, columns=["their claim", "quick", "archived", "verdict"])
