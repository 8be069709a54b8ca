"""Chapter 9's claims (Yang et al. 2023 on pruning before training, and the book's bridge
to GFS), decided on the archived run ``prune_init_cpu`` (signal-plus-noise patches, 10
seeds, three signal strengths) over the settings neither paper fixes: the level that
defines "generalizes" and "at chance" (3, 5, 10 points) and seed subsets (every seed,
the even and the odd half)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from labkit.claims.evidence import archive, outcome
from labkit.claims.registry import Claim

NAME = "prune_init_cpu"
LEVELS = (0.05, 0.03, 0.10)


def _table(seeds: str) -> pd.DataFrame:
    t = archive(NAME)[0]
    if seeds == "even":
        t = t[t["seed"] % 2 == 0]
    elif seeds == "odd":
        t = t[t["seed"] % 2 == 1]
    return t


def _settings() -> list[tuple[str, dict]]:
    return [(f"level {100 * lv:g} pt, {seeds} seeds", {"level": lv, "seeds": seeds})
            for seeds in ("all", "even", "odd") for lv in LEVELS]


def _seed_settings() -> list[tuple[str, dict]]:
    return [(f"{seeds} seeds", {"seeds": seeds}) for seeds in ("all", "even", "odd")]


def below(s: dict):
    """Every run below the smallest per-seed threshold fits its training set and the mean
    test error stays within ``level`` of the dense network's up to at least half the
    weights pruned -> reproduced; otherwise not reproduced."""
    from labkit.experiments.prune_init.analysis import prune_thresholds

    table, level = _table(s["seeds"]), s["level"]
    th = prune_thresholds(table, level)
    sweep = table[table["part"] == "sweep"]
    fits, as_good = [], []
    for mu, g in sweep.groupby("mu_norm"):
        first = th[th["mu_norm"] == mu]["threshold"].min()
        under = g[g["fraction"] < first] if np.isfinite(first) else g
        fits.append(float((under["train_error"] == 0).mean()))
        mean = g.groupby("fraction")["test_error"].mean()
        worse = mean.index[mean > mean.iloc[0] + level]
        as_good.append(float(mean.index[mean.index < worse.min()].max() if len(worse)
                             else mean.index.max()))
    text = (f"{min(fits):.0%} of the runs below the threshold fit the training set; the "
            f"mean test error within {100 * level:g} points of the dense network's up to "
            f"{min(as_good):.1%} pruned")
    ok = min(fits) == 1 and min(as_good) >= 0.5
    return outcome("reproduced" if ok else "not reproduced", text)


def improves(s: dict):
    """Test error minus the dense network's, paired by seed, Bonferroni 95% over the
    fractions of each signal strength: some interval below 0 -> reproduced; no fraction's
    mean below the dense network's -> not reproduced; mean dips that no interval resolves
    -> not decided (with how many seed-and-signal pairs dip at their best fraction)."""
    from labkit.experiments.prune_init.analysis import improvement

    table = _table(s["seeds"])
    imp = improvement(table)
    sweep = table[(table["part"] == "sweep")]
    wide = sweep.pivot_table(index=["mu_norm", "seed"], columns="fraction",
                             values="test_error")
    dips = int((wide.drop(columns=0.0).min(axis=1) < wide[0.0]).sum())
    best = imp.sort_values("minus_dense").iloc[0]
    text = (f"largest dip {100 * best['minus_dense']:+.1f} points [{100 * best['low']:+.1f}, "
            f"{100 * best['high']:+.1f}] (signal {best['mu_norm']:g}, {best['fraction']:.0%} "
            f"pruned); {dips} of {len(wide)} seed-and-signal pairs dip below the dense "
            f"network at their best fraction")
    if (imp["high"] < 0).any():
        return outcome("reproduced", text)
    if (imp["minus_dense"] >= 0).all():
        return outcome("not reproduced", text)
    return outcome("not decided", text)


def above(s: dict):
    """Past every seed's threshold, every run still fits its training set and every run's
    test error is within ``level`` of chance -> reproduced; every run fits and at least
    half are at chance -> partly; otherwise not reproduced. Precondition: some fraction of
    the grid lies past every seed's threshold."""
    from labkit.experiments.prune_init.analysis import prune_thresholds

    table, level = _table(s["seeds"]), s["level"]
    th = prune_thresholds(table, level)
    sweep = table[table["part"] == "sweep"]
    memo, guess = [], []
    for mu, g in sweep.groupby("mu_norm"):
        last = th[th["mu_norm"] == mu]["threshold"].max()
        past = g[g["fraction"] > last] if np.isfinite(last) else g.iloc[:0]
        if len(past):
            memo.append(float((past["train_error"] == 0).mean()))
            guess.append(float((past["test_error"] >= 0.5 - level).mean()))
    if not memo:
        return outcome("not decided", "no fraction past every seed's threshold",
                       holds=False, reason="no fraction of the grid lies past every "
                       "seed's threshold")
    text = (f"past every seed's threshold {min(memo):.0%} of the runs fit the training "
            f"set and {min(guess):.0%} are within {100 * level:g} points of chance")
    if min(memo) == 1 and min(guess) == 1:
        return outcome("reproduced", text)
    if min(memo) == 1 and min(guess) >= 0.5:
        return outcome("partly", text)
    return outcome("not reproduced", text)


def _bridge_settings() -> list[tuple[str, dict]]:
    keeps = sorted(archive(NAME)[0].query("part == 'bridge'")["keep"].unique())
    return [(f"kept {k:.0%}, within {100 * tol:g} pt", {"keep": k, "tol": tol})
            for tol in (0.02, 0.01, 0.03) for k in keeps]


def bridge(s: dict):
    """(Ours) GFS's subnetwork after the full pre-training, right after selection,
    against the dense network (fraction 0), paired by seed at every signal strength,
    95% t-interval: every interval inside +-``tol`` -> reproduced; some interval
    entirely outside -> not reproduced; otherwise not decided."""
    from labkit.algorithms.growth import paired_difference

    t = archive(NAME)[0]
    dense = t[(t["part"] == "sweep") & (t["fraction"] == 0)].set_index(
        ["mu_norm", "seed"])["test_error"]
    b = t[(t["part"] == "bridge") & (t["method"] == "gfs") & (t["keep"] == s["keep"])]
    # GFS's own output: the pruned network right after selection, before any training
    b = b[b["t"] == b["t"].max()].set_index(["mu_norm", "seed"])["pruned_test_error"]
    inside, outside, parts = [], [], []
    for mu in sorted(b.index.get_level_values(0).unique()):
        d = paired_difference(b.loc[mu], dense.loc[mu].reindex(b.loc[mu].index))
        inside.append(-s["tol"] <= d["lo"] and d["hi"] <= s["tol"])
        outside.append(d["lo"] > s["tol"] or d["hi"] < -s["tol"])
        parts.append(f"signal {mu:g}: {100 * d['mean']:+.1f} [{100 * d['lo']:+.1f}, "
                     f"{100 * d['hi']:+.1f}]")
    text = "GFS minus dense, points: " + "; ".join(parts)
    verdict = ("reproduced" if all(inside) else "not reproduced" if any(outside) else
               "not decided")
    return outcome(verdict, text)


CLAIMS = [
    Claim("yang-below", "Below a threshold pruning fraction, gradient descent drives the "
          "training loss to zero and the randomly pruned network generalizes",
          "Yang et al. (2023), main theorem", "TEXT (their model; our reading of its "
          "patches)", (9,), "neighbours",
          "their model: signal-plus-noise patches, a two-layer convolutional network, "
          "random pruning at initialization",
          "every run below the smallest per-seed threshold fits its training set and the "
          "mean test error stays within the level of the dense network's up to at least "
          "half the weights pruned",
          "the level (3, 5, 10 points); every seed, the even and the odd half",
          lambda s: below(s), _settings, labkit="`lk.run_prune_init`, `lk.prune_thresholds`"),
    Claim("yang-improves", "The generalization improves as the pruning fraction grows, "
          "within limits", "Yang et al. (2023)", "TEXT", (9,), "neighbours",
          "as above",
          "some fraction's test error below the dense network's with its Bonferroni 95% "
          "interval below 0 (reproduced); no mean below (not reproduced); dips that no "
          "interval resolves (not decided)",
          "every seed, the even and the odd half",
          lambda s: improves(s), _seed_settings, labkit="`lk.improvement`",
          multiple="Bonferroni over the pruning fractions of each signal strength"),
    Claim("yang-above", "Above a threshold the network still fits the training data, by "
          "memorizing noise, and is no better than chance", "Yang et al. (2023)", "TEXT",
          (9,), "neighbours", "some fraction of the grid lies past every seed's threshold",
          "past every seed's threshold every run fits its training set and is within the "
          "level of chance (reproduced); every run fits and at least half are at chance "
          "(partly)",
          "the level (3, 5, 10 points); every seed, the even and the odd half",
          lambda s: above(s), _settings, labkit="`lk.prune_thresholds`"),
    Claim("bridge-gfs-dense", "(Ours) At equal kept size, GFS after pre-training keeps "
          "the dense network's test error", "chapter 9", "DERIVED (the book's question)",
          (9,), "neighbours", "as above",
          "GFS's pruned network (full pre-training, before any training) minus dense, "
          "paired by seed, 95% t-interval, at every signal strength: inside +-tol "
          "(reproduced), some entirely outside (not reproduced)",
          "kept fraction; tol 1, 2, 3 points",
          lambda s: bridge(s), _bridge_settings, labkit="`lk.bridge_summary`"),
]
