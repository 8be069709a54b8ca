"""labkit.algorithms.growth (chapter 4's statistics) against independent computations on synthetic
thresholds with a known growth law: direct likelihood maximization with another optimizer,
scipy's t distribution and paired t-test, the normal equations, and the generating ``p``."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize, stats

from labkit.algorithms import growth

M = np.array([32, 64, 128, 256, 512, 1024])


def synthetic(p: float, *, seeds: int = 10, a: float = 40.0, b: float = None,
              noise: float = 0.05, rng_seed: int = 0):
    """One threshold per (m, seed): T = a + b (m^p - 1)/p, with a per-seed offset and
    multiplicative noise."""
    rng = np.random.default_rng(rng_seed)
    b = b if b is not None else (60.0 if p == 0 else 60.0 * p / (1024**p - 1) * math.log(1024))
    m = np.repeat(M, seeds).astype(float)
    seed = np.tile(np.arange(seeds), len(M))
    offset = rng.normal(0, 2.0, seeds)[seed]
    T = (a + b * growth.boxcox_term(m, p)) * (1 + noise * rng.normal(size=len(m))) + offset
    return m, T, seed


def test_boxcox_term_limits():
    m = np.array([2.0, 10.0, 1000.0])
    np.testing.assert_allclose(growth.boxcox_term(m, 0.0), np.log(m))
    np.testing.assert_allclose(growth.boxcox_term(m, 1e-9), np.log(m), rtol=1e-6)
    np.testing.assert_allclose(growth.boxcox_term(m, 1.0), m - 1)


@pytest.mark.parametrize("p_true", [0.0, 0.5])
def test_profile_interval_covers_the_generating_p(p_true):
    m, T, _ = synthetic(p_true)
    fit = growth.fit_boxcox(m, T)
    lo, hi = fit.p_interval
    assert lo < p_true < hi, (fit.p, fit.p_interval)
    assert hi - lo < 1.0  # the grid of m = 32..1024 with 10 seeds can tell 0 from 0.5
    # the likelihood-ratio test of the log law: keeps it for log data, rejects it for p = 0.5
    assert (fit.lr_pvalue_p0 > 0.05) if p_true == 0 else (fit.lr_pvalue_p0 < 0.01)


def test_interval_edge_is_where_wilks_says():
    """At the interval's ends the profile has dropped by exactly chi2_1(0.95)/2."""
    m, T, _ = synthetic(0.5, rng_seed=3)
    fit = growth.fit_boxcox(m, T)
    for p in fit.p_interval:
        drop = fit.loglik - growth._loglik_fixed_p(growth.boxcox_term(m, p), T,
                                                   np.zeros(len(T), bool))[0]
        assert drop == pytest.approx(stats.chi2.ppf(0.95, 1) / 2, abs=1e-6)


def _direct_loglik(x, T, c):
    """The same maximum likelihood by a different route: BFGS on the raw parameters from
    a deliberately poor start."""
    def nll(theta):
        mu, s = theta[0] + theta[1] * x, math.exp(theta[2])
        return -(stats.norm.logpdf(T[~c], mu[~c], s).sum() + stats.norm.logsf(T[c], mu[c], s).sum())
    best = min((optimize.minimize(nll, start, method="BFGS") for start in
                ([0.0, 1.0, math.log(T.std())], [T.mean(), 0.0, 0.0])), key=lambda r: r.fun)
    return -best.fun


@pytest.mark.parametrize("censor", [False, True])
def test_profile_likelihood_matches_a_direct_maximization(censor):
    m, T, _ = synthetic(0.3, rng_seed=1)
    c = np.zeros(len(T), bool)
    if censor:  # runs at the largest m stopped at a horizon below their threshold
        horizon = np.quantile(T[m == M.max()], 0.5)
        c = (m == M.max()) & (T > horizon)
        T = np.where(c, horizon, T)
    for p in (0.0, 0.3, 1.0):
        x = growth.boxcox_term(m, p)
        ours, _ = growth._loglik_fixed_p(x, T, c)
        assert ours == pytest.approx(_direct_loglik(x, T, c), abs=1e-5)


def test_censored_runs_are_not_dropped():
    """Thresholds past the horizon at the two largest m: the censored fit still covers the
    generating p, while dropping those runs biases p down."""
    m, T, _ = synthetic(0.5, rng_seed=2)
    horizon = 0.9 * T[m == 512].mean()
    c = T > horizon
    T_obs = np.where(c, horizon, T)
    fit = growth.fit_boxcox(m, T_obs, censored=c)
    assert fit.censored == int(c.sum()) > 0
    assert fit.p_interval[0] < 0.5 < fit.p_interval[1]
    dropped = growth.fit_boxcox(m[~c], T_obs[~c])
    assert dropped.p < fit.p


def test_t_interval_and_paired_difference_against_scipy():
    rng = np.random.default_rng(4)
    v = rng.normal(10, 2, 7)
    mean, lo, hi = growth.t_interval(v)
    ref = stats.t.interval(0.95, len(v) - 1, loc=v.mean(), scale=stats.sem(v))
    assert (lo, hi) == pytest.approx(ref) and mean == pytest.approx(v.mean())
    a, b = rng.normal(5, 1, 10), rng.normal(5.5, 1, 10)
    got = growth.paired_difference(a, b)
    assert got["pvalue"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert got["mean"] == pytest.approx((a - b).mean())


def test_paired_difference_of_constant_pairs_warns_nothing():
    """Pairs that all differ by the same amount (both widths at 100% accuracy): a zero
    spread, an interval of one point and no division warning."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        same = growth.paired_difference(np.ones(6), np.ones(6))
        shifted = growth.paired_difference(np.full(6, 2.0), np.ones(6))
    assert (same["mean"], same["lo"], same["hi"], same["pvalue"]) == (0, 0, 0, 1.0)
    assert shifted["lo"] == shifted["hi"] == 1.0 and shifted["pvalue"] == 0.0


def test_compare_laws_prefers_the_generating_law():
    m, T, _ = synthetic(0.0, noise=0.02)
    table = growth.compare_laws(m, T)
    assert table.loc["a + b log m", "delta_aic"] == 0
    rss = table.loc["c m^p", "rss"]
    assert table.loc["c m^p", "aic"] == pytest.approx(len(T) * math.log(rss / len(T)) + 6)
    m, T, _ = synthetic(1.0, a=5.0, b=0.5, noise=0.02)
    assert growth.compare_laws(m, T).loc["c m^p", "delta_aic"] == 0


def test_holdout_predicts_an_exact_law():
    m = np.repeat(M, 3).astype(float)
    T = 20 + 30 * np.log(m)
    table = growth.holdout_error(m, T)
    assert abs(table.loc["a + b log m", "relative_error"]) < 1e-9
    assert abs(table.loc["Box-Cox (p fitted)", "relative_error"]) < 1e-3


def test_form_test_recovers_the_theorems_slopes():
    """T = 3 kappa^2 log m with noise, kappa^2 drawn independently of m: both slopes 1,
    checked against the normal equations solved directly."""
    rng = np.random.default_rng(5)
    m = np.repeat(M, 8).astype(float)
    kappa2 = rng.uniform(5, 500, len(m))
    T = 3 * kappa2 * np.log(m) * np.exp(0.05 * rng.normal(size=len(m)))
    table = growth.form_test(T, kappa2, m)
    for name in ("log kappa^2", "log log m"):
        assert table.loc[name, "lo"] < 1 < table.loc[name, "hi"]
    X = np.column_stack([np.ones(len(m)), np.log(kappa2), np.log(np.log(m))])
    direct = np.linalg.solve(X.T @ X, X.T @ np.log(T))
    np.testing.assert_allclose(table["coef"], direct, rtol=1e-8)
    # a wrong form is rejected: T growing like m, not log m
    T_lin = 3 * kappa2 * m * np.exp(0.05 * rng.normal(size=len(m)))
    wrong = growth.form_test(T_lin, kappa2, m)
    assert not wrong.loc["log log m", "lo"] < 1 < wrong.loc["log log m", "hi"]


def test_bootstrap_resamples_whole_seeds():
    m, T, seed = synthetic(0.5, rng_seed=6)
    ps = growth.bootstrap_p(m, T, seed, n_boot=60, seed=1)
    assert len(ps) == 60 and abs(np.median(ps) - growth.fit_boxcox(m, T).p) < 0.15


@pytest.mark.parametrize("args, words", [
    (dict(m=[1, 2, 3], T=[1, 2]), ["m, T", "same length"]),
    (dict(m=[0, 2, 3, 4], T=[1, 2, 3, 4]), ["m: dataset sizes must be positive"]),
    (dict(m=[2, 2, 3, 3], T=[1, 2, 3, 4]), ["at least 3 distinct m"]),
    (dict(m=[2, 3, 4, 5], T=[1, 2, np.inf, 4]), ["T: thresholds must be finite"]),
])
def test_bad_input_names_the_field(args, words):
    with pytest.raises(ValueError) as err:
        growth.fit_boxcox(**args)
    assert all(w in str(err.value) for w in words), str(err.value)


# -- thresholds read on a checkpoint grid (issue 36, item 5) ---------------------------------

CHECKPOINTS = np.array([0, 250, 500, 1000, 1500, 2000, 3000, 4000, 5000, 6000, 7000, 8000])
SIZES = np.array([1000, 5000, 10000, 25000, 50000])


def on_grid(p: float, seeds: int, sigma: float, rng):
    """Thresholds from ``T = 300 + b (m^p - 1)/p + N(0, sigma^2)`` (2,300 at the largest m),
    read as chapter 6 reads them: the first checkpoint at or past the crossing, known only
    to lie in (previous checkpoint, checkpoint]."""
    m = np.repeat(SIZES, seeds).astype(float)
    b = 2000.0 / growth.boxcox_term(50000, p)
    T = 300.0 + b * growth.boxcox_term(m, p) + rng.normal(0, sigma, len(m))
    i = np.clip(np.searchsorted(CHECKPOINTS, T), 1, len(CHECKPOINTS) - 1)
    return m, CHECKPOINTS[i].astype(float), CHECKPOINTS[i - 1].astype(float)


def test_interval_likelihood_against_a_direct_maximization():
    """At fixed p, the interval-censored maximum log-likelihood equals a direct maximization
    of sum log(Phi(U) - Phi(L)) written with scipy.stats and another optimizer."""
    rng = np.random.default_rng(3)
    m, U, L = on_grid(0.5, 3, 150.0, rng)
    c = np.zeros(len(m), bool)
    x = growth.boxcox_term(m, 0.5)
    ours, _ = growth._loglik_design(np.column_stack([np.ones_like(x), x]), U, c, L)

    def nll(theta):
        mu, s = theta[0] + theta[1] * x, math.exp(theta[2])
        return -np.log(stats.norm.cdf(U, mu, s) - stats.norm.cdf(L, mu, s) + 1e-300).sum()

    start = [300.0, 2000.0 / growth.boxcox_term(50000, 0.5), math.log(200.0)]
    ref = optimize.minimize(nll, start, method="Powell",
                            options={"xtol": 1e-10, "ftol": 1e-12, "maxfev": 50000})
    assert ours >= -ref.fun - 1e-4  # ours is the maximum (the reference may stop short)
    assert abs(ours - (-ref.fun)) < 1e-2


def test_narrow_intervals_give_the_exact_value_fit():
    m, T, _ = synthetic(0.5)
    exact = growth.fit_boxcox(m, T, grid=growth.COARSE_GRID)
    narrow = growth.fit_boxcox(m, T, lower=T - 1e-3, grid=growth.COARSE_GRID)
    assert abs(narrow.p - exact.p) < 0.02
    np.testing.assert_allclose(narrow.p_interval, exact.p_interval, atol=0.03)


def test_lower_bounds_are_checked():
    m, T, _ = synthetic(0.5)
    with pytest.raises(ValueError, match="^lower: each bound"):
        growth.fit_boxcox(m, T, lower=T + 1)
    with pytest.raises(ValueError, match="^lower: need one bound per run"):
        growth.fit_boxcox(m, T, lower=T[:3])


def test_grid_ties_make_exact_value_intervals_too_narrow():
    """Ten seeds per size on chapter 6's checkpoint grid, noise below the grid's spacing (so
    seeds tie): the interval-censored 95% interval of p covers the generating p = 1 in most
    of 30 simulations, the exact-value Gaussian fit (which reads tied seeds as no spread) in
    far fewer. (The issue's full check, 200 simulations per design at 3 and 10 seeds and
    both laws, is not run here: about 1 s a simulation.)"""
    rng = np.random.default_rng(0)
    hits = {"interval": 0, "exact": 0}
    for _ in range(30):
        m, U, L = on_grid(1.0, 10, 150.0, rng)
        fit_i = growth.fit_boxcox(m, U, lower=L, grid=growth.COARSE_GRID)
        fit_e = growth.fit_boxcox(m, U, grid=growth.COARSE_GRID)
        hits["interval"] += fit_i.p_interval[0] <= 1.0 <= fit_i.p_interval[1]
        hits["exact"] += fit_e.p_interval[0] <= 1.0 <= fit_e.p_interval[1]
    assert hits["interval"] >= 24, hits  # >= 80% of 30
    assert hits["exact"] <= 21, hits  # <= 70% of 30


def test_lack_of_fit_rejects_a_shape_no_growth_law_has():
    rng = np.random.default_rng(1)
    m = np.repeat(SIZES, 10).astype(float)
    # up, down, up: no monotone Box-Cox curve follows it
    bumps = {1000: 1000.0, 5000: 3000.0, 10000: 1200.0, 25000: 3200.0, 50000: 3300.0}
    T = np.array([bumps[int(v)] for v in m]) + rng.normal(0, 100.0, len(m))
    assert growth.lack_of_fit(m, T)["pvalue"] < 1e-3
    m, U, L = on_grid(0.0, 10, 150.0, rng)
    result = growth.lack_of_fit(m, U, lower=L)
    assert result["df"] == 2 and result["pvalue"] > 0.01


def test_committed_coverage_simulation():
    """The issue's coverage check, 200 simulations per design (tools/coverage_sim.py,
    committed; about 7 minutes): on chapter 6's grid, the interval-censored 95% interval
    of p covers the generating p in at least 90% of simulations for both laws at 3 and 10
    seeds; the exact-value fit falls below 90% in at least one design. The record must come
    from the current statistics code (its digest), else rerun the tool."""
    import json
    from pathlib import Path

    from labkit.infra.store import code_digest

    path = Path(__file__).resolve().parent.parent / "results" / "coverage" / "growth_p.json"
    record = json.loads(path.read_text())
    assert record["code"] == code_digest("algorithms/growth.py"), \
        "growth.py changed since the simulation: run python tools/coverage_sim.py"
    rows = record["summary"]
    assert {(r["p"], r["seeds"]) for r in rows} == {(0.0, 3), (0.0, 10), (1.0, 3), (1.0, 10)}
    assert all(r["sims"] == 200 for r in rows)
    assert all(r["coverage_interval"] >= 0.90 for r in rows), rows
    assert min(r["coverage_exact"] for r in rows) < 0.90, rows
    # the summary is what the runs say
    for r in rows:
        runs = [x for x in record["runs"] if x["p"] == r["p"] and x["seeds"] == r["seeds"]]
        assert np.mean([x["interval"]["covers"] for x in runs]) == r["coverage_interval"]
