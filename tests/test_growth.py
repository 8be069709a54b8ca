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
