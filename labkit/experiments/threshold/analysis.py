"""Reading Theorem 3's threshold off a sweep of chapter 4 (:func:`labkit.run_threshold`).

Two thresholds per run, both from data the run recorded, neither fixed by its definition:

- ``T_dense`` (Theorem 3's own quantity): the first step at which the dense loss is at most
  ``delta``, read from the loss of **every** step in the cell (no interpolation). Theorem 3
  says the pruned loss is guaranteed ``O(ln k / k)`` once the dense term of Lemma 1 has
  decayed to that level; ``delta`` stands for it. A run that never gets there within the
  horizon is right-censored at the horizon.
- ``T_prune`` (what pruning sees): the first checkpoint at which the GFS loss with ``k``
  neurons is within a relative ``tol`` of its plateau, the plateau being the median GFS loss
  over the checkpoints of the second half of the horizon. Valid only when the threshold
  falls in the first half (so the plateau is read at least 2x past it); otherwise the run is
  censored at half the horizon. ``T_prune = 0`` means the pruned loss was at its plateau
  before any pre-training: a left-censored value that carries no growth information, so
  the fits drop it (and say how many).

Beside them, the derivation's predictions (chapter 4's theorem): ``T_bound``, the linear
rate's bound ``log(L0/delta) / (-2 log(1 - lr/kappa^2))`` under Theorem 2's step, and
``T_lin``, the exact first crossing of the second-layer-only linear model (computed in the
cell from the SVD of ``Phi_0``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

RUN_KEYS = ["scaling", "d", "N", "m", "seed"]
PER_SEED = ["sigma_min", "sigma_max", "kappa", "kappa_inf", "L0", "sigma_min_end"]


def _delta_columns(df: pd.DataFrame, prefix: str) -> dict[float, str]:
    return {float(c[len(prefix):]): c for c in df.columns if c.startswith(prefix)}


def pruned_column(df: pd.DataFrame, k: int | None = None) -> str:
    """The column of GFS losses at ``k`` neurons (default: the largest recorded)."""
    ks = sorted(int(c.split("_")[1]) for c in df.columns if c.startswith("pruned_"))
    if not ks:
        raise ValueError("df: no pruned_<k> columns; is this a run_threshold table?")
    k = ks[-1] if k is None else k
    if k not in ks:
        raise ValueError(f"k: {k} was not recorded; allowed: {', '.join(map(str, ks))}")
    return f"pruned_{k}"


def prune_threshold(t, pruned, tol: float) -> tuple[float, bool, float, float]:
    """The rule for ``T_prune`` on one run's checkpoints ``t`` (ascending) and GFS losses:
    returns ``(T, censored, plateau, drift)``. ``drift``: the relative change of the GFS loss
    over the second half (last checkpoint against the first one in that half), which shows
    whether the horizon is long enough for a plateau."""
    t, pruned = np.asarray(t, float), np.asarray(pruned, float)
    if not tol > 0:
        raise ValueError(f"tol: must be positive, got {tol!r}")
    late = t >= t[-1] / 2
    plateau = float(np.median(pruned[late]))
    drift = float(pruned[late][-1] / pruned[late][0] - 1)
    within = np.flatnonzero(pruned <= plateau * (1 + tol))
    T = float(t[within[0]])
    if T > t[-1] / 2:
        return float(t[-1] / 2), True, plateau, drift
    return T, False, plateau, drift


def theorem_bound(L0, kappa, delta: float, lr: float = 1.0) -> np.ndarray:
    """The derivation's threshold under Theorem 2's step (``lr`` a fraction of it): the
    loss contracts by at least ``(1 - lr/kappa^2)^2`` per step, so it is at most ``delta``
    after ``log(L0/delta) / (-2 log(1 - lr/kappa^2))`` steps (0 where ``L0 <= delta``)."""
    L0, kappa = np.asarray(L0, float), np.asarray(kappa, float)
    steps = np.log(L0 / delta) / (-2 * np.log1p(-lr / kappa**2))
    return np.maximum(steps, 0.0)


def threshold_runs(df: pd.DataFrame, *, delta: float, tol: float, k: int | None = None,
              horizon: int | None = None, lr_theorem: float = 1.0) -> pd.DataFrame:
    """One row per run (``scaling, d, N, m, seed``): the per-seed quantities, ``T_dense`` at
    ``delta`` with its censoring flag, ``T_lin`` and ``T_bound`` (theorem step only),
    ``T_prune`` at ``tol`` (with ``prune_censored``, ``prune_zero``, ``plateau``, ``drift``),
    the final weight movement and Lemma 3's ``phi_norm2``."""
    dense_cols, lin_cols = _delta_columns(df, "T_dense_"), _delta_columns(df, "T_lin_")
    if delta not in dense_cols:
        raise ValueError(f"delta: {delta!r} was not recorded; allowed: "
                         f"{', '.join(f'{d:g}' for d in sorted(dense_cols))}")
    col = pruned_column(df, k)
    cp = df[df["kind"] == "checkpoint"]
    horizon = int(cp["t"].max()) if horizon is None else horizon
    rows = []
    for key, g in cp.groupby(RUN_KEYS):
        g = g.sort_values("t")
        last = g.iloc[-1]
        T, cens, plateau, drift = prune_threshold(g["t"], g[col], tol)
        T_dense = float(last[dense_cols[delta]])
        row = dict(zip(RUN_KEYS, key, strict=True))
        row.update({c: float(last[c]) for c in PER_SEED})
        row.update({
            "T_dense": float(horizon) if T_dense < 0 else T_dense,
            "dense_censored": T_dense < 0,
            "T_lin": float(last[lin_cols[delta]]),
            "T_prune": T, "prune_censored": cens, "prune_zero": T == 0 and not cens,
            "plateau": plateau, "drift": drift, "pruned_0": float(g[col].iloc[0]),
            "rel_first": float(last["rel_first"]), "rel_second": float(last["rel_second"]),
            "max_b_move": float(last["max_b_move"]), "phi_norm2": float(last["phi_norm2"])})
        rows.append(row)
    out = pd.DataFrame(rows)
    theorem = out["scaling"] == "theorem"
    out["T_bound"] = np.where(theorem, theorem_bound(out["L0"], out["kappa"], delta,
                                                     lr_theorem), np.nan)
    out.loc[out["T_lin"] < 0, "T_lin"] = np.nan
    return out


def threshold_sensitivity(df: pd.DataFrame, *, deltas=None, tols=(0.05, 0.1, 0.2), ks=None,
                horizon: int | None = None) -> pd.DataFrame:
    """How the thresholds move with their settings: per ``(scaling, d, N, m)``, the median
    over seeds of ``T_dense`` at every recorded ``delta`` (with the number censored) and of
    ``T_prune`` at every ``tol`` and recorded ``k`` (with the numbers censored and zero)."""
    deltas = sorted(_delta_columns(df, "T_dense_")) if deltas is None else deltas
    ks = sorted(int(c.split("_")[1]) for c in df.columns
                if c.startswith("pruned_")) if ks is None else ks
    frames = []
    for delta in deltas:
        r = threshold_runs(df, delta=delta, tol=tols[0], horizon=horizon)
        frames.append(_median(r, "T_dense", "dense_censored", None, "delta", delta))
    for tol in tols:
        for k in ks:
            r = threshold_runs(df, delta=deltas[0], tol=tol, k=k, horizon=horizon)
            frames.append(_median(r, "T_prune", "prune_censored", "prune_zero",
                                  "tol, k", f"{tol:g}, {k}"))
    return pd.concat(frames, ignore_index=True)


def _median(r, value, censored, zero, setting, level) -> pd.DataFrame:
    g = r.groupby(["scaling", "d", "N", "m"])
    out = g[value].median().rename("median").to_frame()
    out["censored"] = g[censored].sum()
    out["zero"] = g[zero].sum() if zero else 0
    out.insert(0, "threshold", value)
    out.insert(1, "setting", setting)
    out.insert(2, "level", level)
    return out.reset_index()


def growth_table(runs: pd.DataFrame, value: str = "T_dense", *, by=("scaling", "d", "N"),
                 n_boot: int = 200, level: float = 0.95, lower: str | None = None,
                 grid=None) -> pd.DataFrame:
    """How ``value`` grows with ``m``, one row per group of ``by``: the Box-Cox fit on the
    per-seed values (:func:`labkit.algorithms.growth.fit_boxcox`, censored runs in the likelihood,
    runs with a threshold of 0 dropped), ``p`` with its profile-likelihood interval, the
    likelihood-ratio test of ``p = 0`` (the log law), a 90% percentile interval of ``p``
    over seed resamples, the AIC gap of the power law over the log law on the uncensored
    runs (negative: the power law fits better), and the leave-the-largest-``m``-out
    relative errors. ``lower``: the column holding, for each run, the value its
    threshold is known to exceed (the previous checkpoint of a grid-read threshold): the
    fit, the test of ``p = 0`` and the bootstrap then use the interval-censored likelihood
    and a ``lack_of_fit`` column tests the law against a free mean per ``m``. ``grid``: the
    profile grid of ``p``."""
    from labkit.algorithms import growth

    if lower is not None and lower not in runs:
        raise ValueError(f"lower: no column {lower!r} in runs (columns: "
                         f"{', '.join(runs.columns)})")
    grid = growth.P_GRID if grid is None else grid

    censored = {"T_dense": "dense_censored", "T_prune": "prune_censored"}[value]
    rows = []
    for key, g in runs.groupby(list(by)):
        zero = (g[value] <= 0) & ~g[censored]
        g = g[~zero]
        row = dict(zip(by, key, strict=True))
        row.update(runs=len(g), censored=int(g[censored].sum()), dropped_zero=int(zero.sum()))
        low = None if lower is None else g[lower]
        try:
            fit = growth.fit_boxcox(g["m"], g[value], censored=g[censored], lower=low,
                                    level=level, grid=grid)
        except ValueError as err:  # too few usable runs: say so in the table
            rows.append({**row, "note": str(err).split(": ", 1)[-1]})
            continue
        if low is not None:
            try:
                row["lack_of_fit"] = growth.lack_of_fit(
                    g["m"], g[value], censored=g[censored], lower=low)["pvalue"]
            except ValueError:
                row["lack_of_fit"] = np.nan
        boot = growth.bootstrap_p(g["m"], g[value], g["seed"], censored=g[censored],
                                  lower=low, n_boot=n_boot)
        free = g[~g[censored]]
        aic = growth.compare_laws(free["m"], free[value])["aic"]
        try:
            hold = growth.holdout_error(g["m"], g[value], censored=g[censored])
            hold = hold["relative_error"]
        except ValueError:
            hold = pd.Series(np.nan, index=["Box-Cox (p fitted)", "a + b log m", "c m^p"])
        row.update(p=fit.p, p_lo=fit.p_interval[0], p_hi=fit.p_interval[1], a=fit.a, b=fit.b,
                   lr_pvalue_p0=fit.lr_pvalue_p0,
                   boot_lo=float(np.quantile(boot, 0.05)) if len(boot) else np.nan,
                   boot_hi=float(np.quantile(boot, 0.95)) if len(boot) else np.nan,
                   daic_pow_minus_log=float(aic["c m^p"] - aic["a + b log m"]),
                   holdout_log=float(hold["a + b log m"]), holdout_pow=float(hold["c m^p"]),
                   note="")
        rows.append(row)
    return pd.DataFrame(rows)


def form_table(runs: pd.DataFrame, value: str = "T_dense", level: float = 0.95
               ) -> pd.DataFrame:
    """Theorem 3's *form* on the runs of each step rule that reached the threshold: least
    squares of ``log T`` on ``log kappa^2`` and ``log log m`` (the theorem's
    ``T ~ kappa^2 log m`` predicts slopes 1 and 1; the derivation in the book's
    normalization predicts 1 and 0), with ``t`` intervals."""
    from labkit.algorithms import growth

    censored = {"T_dense": "dense_censored", "T_prune": "prune_censored"}[value]
    frames = []
    for scaling, g in runs.groupby("scaling"):
        g = g[~g[censored] & (g[value] > 0)]
        table = growth.form_test(g[value], g["kappa"] ** 2, g["m"], level)
        table.insert(0, "scaling", scaling)
        table.insert(1, "runs", len(g))
        frames.append(table.rename_axis("term").reset_index())
    return pd.concat(frames, ignore_index=True)


def width_table(runs: pd.DataFrame, value: str = "T_dense", level: float = 0.95
                ) -> pd.DataFrame:
    """Does the threshold depend on the width? At every ``(scaling, d, m)`` run at two
    widths, the paired difference (same seeds) narrower minus wider, with its ``t`` interval
    and ``p``-value (:func:`labkit.algorithms.growth.paired_difference`); censored pairs are
    left out
    and counted."""
    from labkit.algorithms import growth

    censored = {"T_dense": "dense_censored", "T_prune": "prune_censored"}[value]
    rows = []
    for (scaling, d, m), g in runs.groupby(["scaling", "d", "m"]):
        widths = sorted(g["N"].unique())
        if len(widths) < 2:
            continue
        narrow, wide = (g[g["N"] == N].set_index("seed") for N in (widths[0], widths[-1]))
        ok = ~(narrow[censored] | wide[censored])
        row = {"scaling": scaling, "d": d, "m": m, "N_narrow": widths[0],
               "N_wide": widths[-1], "censored_pairs": int((~ok).sum())}
        if ok.sum() >= 2:
            diff = growth.paired_difference(narrow.loc[ok, value], wide.loc[ok, value], level)
            row.update(mean_narrow=float(narrow.loc[ok, value].mean()),
                       mean_wide=float(wide.loc[ok, value].mean()),
                       diff=diff["mean"], lo=diff["lo"], hi=diff["hi"], pvalue=diff["pvalue"])
        rows.append(row)
    # a grid with one width has no pairs: an empty table with the columns still there
    return pd.DataFrame(rows, columns=["scaling", "d", "m", "N_narrow", "N_wide",
                                       "censored_pairs", "mean_narrow", "mean_wide", "diff",
                                       "lo", "hi", "pvalue"])
