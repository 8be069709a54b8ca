"""How the pre-training threshold grows with the dataset size: the statistics of chapter 4
(Theorem 3 says ``T* ~ kappa^2 log m``), on per-run values, never on means.

- :func:`fit_boxcox`: the growth law ``T = a + b (m^p - 1)/p`` (``p = 0``: ``a + b log m``;
  ``p = 1``: linear), Gaussian errors, with the profile-likelihood interval for ``p``, the
  likelihood-ratio test of ``p = 0``, and runs that never reached the threshold within the
  horizon treated as right-censored (a censored, Tobit-type likelihood), not dropped;
  with ``lower``, a threshold read on a checkpoint grid enters as the interval it is known
  to lie in, ``(previous checkpoint, checkpoint]`` (an interval-censored likelihood), and
  :func:`lack_of_fit` tests the law against a free mean per ``m`` under the same likelihood
  (book design, section 11: tied seeds on a grid carry no information about spread);
- :func:`bootstrap_p`: ``p`` refitted on data resampled by seed (every run of a drawn seed
  comes along, since the runs of one seed share its data and initialization);
- :func:`compare_laws`: AIC of the two two-parameter laws ``a + b log m`` and ``c m^p``;
- :func:`holdout_error`: each law fitted without the largest ``m`` and asked to predict it;
- :func:`t_interval`, :func:`paired_difference`: intervals for few seeds (Student's ``t``),
  and the comparison of two widths run on the same seeds;
- :func:`form_test`: Theorem 3's form, ``log T = c_0 + c_1 log kappa^2 + c_2 log log m``
  (the theorem predicts ``c_1 = c_2 = 1``), by least squares with ``t`` intervals.

Tested against independent computations on synthetic data with a known ``p``
(``tests/test_growth.py``); the interval's coverage on chapter 6's checkpoint grid, for the
interval-censored and the exact-value fit, is simulated by ``tools/coverage_sim.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

P_GRID = np.linspace(-1.5, 2.5, 401)
COARSE_GRID = np.linspace(-1.5, 2.5, 81)  # per bootstrap resample


def boxcox_term(m, p: float) -> np.ndarray:
    """``(m^p - 1)/p``, and ``log m`` at ``p = 0`` (its limit)."""
    m = np.asarray(m, dtype=float)
    return np.log(m) if abs(p) < 1e-12 else np.expm1(p * np.log(m)) / p


def _check(m, T, censored):
    m, T = np.asarray(m, dtype=float), np.asarray(T, dtype=float)
    if m.shape != T.shape or m.ndim != 1:
        raise ValueError(f"m, T: need two 1-D arrays of the same length (one entry per run), "
                         f"got shapes {m.shape} and {T.shape}")
    if (m <= 0).any():
        raise ValueError("m: dataset sizes must be positive")
    if not np.isfinite(T).all():
        raise ValueError("T: thresholds must be finite (give a censored run its horizon)")
    c = np.zeros(len(T), bool) if censored is None else np.asarray(censored, dtype=bool)
    if c.shape != T.shape:
        raise ValueError(f"censored: need one flag per run ({len(T)}), got shape {c.shape}")
    if len(np.unique(m)) < 3 or (~c).sum() < 4:
        raise ValueError("m, T: need at least 3 distinct m and 4 uncensored runs to fit a "
                         "growth law with a free p")
    return m, T, c


def _check_lower(T, c, lower) -> np.ndarray | None:
    """``lower``: for each run, the largest value its threshold is known to exceed (the
    previous checkpoint); ``None``, or every ``lower == T``, means exact values."""
    if lower is None:
        return None
    L = np.asarray(lower, dtype=float)
    if L.shape != T.shape:
        raise ValueError(f"lower: need one bound per run ({len(T)}), got shape {L.shape}")
    if not np.isfinite(L[~c]).all() or (L[~c] > T[~c]).any():
        raise ValueError("lower: each bound must be finite and at most its run's T (the "
                         "threshold lies in (lower, T])")
    return None if np.array_equal(L[~c], T[~c]) else L


def _interval_logprob(L, U, mu, s):
    """``log P(L < T <= U)`` for ``T ~ N(mu, s^2)``, stable in either tail."""
    a, b = (L - mu) / s, (U - mu) / s
    # in the upper tail use the survival function: P = sf(a) - sf(b) = cdf(-a) - cdf(-b)
    upper = a > 0
    hi = special.log_ndtr(np.where(upper, -a, b))
    lo = special.log_ndtr(np.where(upper, -b, a))
    return hi + np.log1p(-np.exp(np.minimum(lo - hi, 0.0)) + 1e-300)


def _loglik_fixed_p(x, T, c, L=None) -> tuple[float, np.ndarray]:
    """Maximum log-likelihood over ``(a, b, sigma)`` of ``T = a + b x + N(0, sigma^2)``,
    where runs flagged in ``c`` only say ``T > (their value)`` and, with ``L``, a run with
    ``L < T`` says ``L < T <= (its value)``. Returns it and the maximizer ``(a, b,
    sigma)``."""
    return _loglik_design(np.column_stack([np.ones_like(x), x]), T, c, L)


def _loglik_design(X, T, c, L=None) -> tuple[float, np.ndarray]:
    """:func:`_loglik_fixed_p` for any design ``X`` (the mean is ``X @ beta``): the
    maximum log-likelihood and ``(*beta, sigma)``.

    Exact values alone have the closed form. Otherwise the likelihood (Gaussian densities,
    log-survival of right-censored runs, log-probabilities of intervals) is maximized with
    its analytic gradient by L-BFGS-B in ``(beta, log sigma)``, on values divided by their
    spread so that every coordinate is of order one (the Tobit and interval likelihoods
    are concave in Olsen's ``(beta/sigma, 1/sigma)``, so the maximum is unique)."""
    mid = T if L is None else np.where(c, T, (T + L) / 2)
    beta, *_ = np.linalg.lstsq(X[~c], mid[~c], rcond=None)
    resid = mid[~c] - X[~c] @ beta
    sigma = max(math.sqrt(float(resid @ resid) / (~c).sum()), 1e-12)
    if L is None and not c.any():  # closed form: the Gaussian maximum likelihood
        n = len(T)
        return -0.5 * n * (math.log(2 * math.pi * sigma**2) + 1), np.array([*beta, sigma])
    k = X.shape[1]
    L = T if L is None else L
    exact, interval = ~c & (L >= T), ~c & (L < T)
    # work in units of the data's spread; an exact value's density carries 1/scale back
    scale = max(float(np.std(mid)), float(np.max(np.abs(mid))) * 1e-6, 1e-12)
    # and each column of the design in units of its own size (m^p reaches 10^7)
    cols = np.maximum(np.abs(X).max(axis=0), 1e-300)
    X = X / cols
    beta = beta * cols
    Xe, Xc, Xi = X[exact], X[c], X[interval]
    Te, Tc, Li, Ui = T[exact] / scale, T[c] / scale, L[interval] / scale, T[interval] / scale
    floor = -math.inf
    if interval.any():
        # the grid's spacing bounds how small sigma can usefully get: below a thousandth of
        # the narrowest interval every interval term is already 0 or -inf
        width = float(np.min(Ui - Li))
        sigma = max(sigma, width * scale / 4)
        floor = math.log(width * 1e-3)
    half_log_2pi = 0.5 * math.log(2 * math.pi)
    CEIL = math.log(1e4)  # noise 10^4 times the data's spread: far past any maximum

    def nll(theta):
        b, log_s = theta[:k], min(max(theta[k], floor), CEIL)
        s = math.exp(log_s)
        g_b, g_s, total = np.zeros(k), 0.0, 0.0
        if len(Te):
            z = (Te - Xe @ b) / s
            total += -0.5 * float(z @ z) - len(z) * (log_s + half_log_2pi)
            g_b += Xe.T @ (z / s)
            g_s += float(z @ z) - len(z)
        if len(Tc):  # log P(T > Tc) = log Phi((mu - Tc)/s)
            w = (Xc @ b - Tc) / s
            lw = special.log_ndtr(w)
            lam = np.exp(-0.5 * w**2 - half_log_2pi - lw)
            total += float(lw.sum())
            g_b += Xc.T @ (lam / s)
            g_s += -float(lam @ w)
        if len(Ui):  # log P(L < T <= U)
            mu = Xi @ b
            a, bb = (Li - mu) / s, (Ui - mu) / s
            lp = _interval_logprob(Li, Ui, mu, s)
            pa = np.exp(-0.5 * a**2 - half_log_2pi - lp)
            pb = np.exp(-0.5 * bb**2 - half_log_2pi - lp)
            total += float(lp.sum())
            g_b += Xi.T @ (-(pb - pa) / s)
            g_s += -float((bb * pb - a * pa).sum())
        if not floor <= theta[k] <= CEIL:
            g_s = 0.0
        grad = -np.array([*g_b, g_s])
        if not (math.isfinite(total) and np.isfinite(grad).all()):
            # a line-search probe far in a tail: refuse it, the search steps back
            return 1e300, np.zeros(k + 1)
        return -total, grad

    start = np.array([*(beta / scale), math.log(sigma / scale)])
    bounds = [(None, None)] * k + [(None if floor == -math.inf else floor, CEIL)]
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        res = optimize.minimize(nll, start, jac=True, method="L-BFGS-B", bounds=bounds,
                                options={"maxiter": 5000, "ftol": 1e-15, "gtol": 1e-10})
    loglik = -float(res.fun) - len(Te) * math.log(scale)
    return loglik, np.array([*(res.x[:k] * scale / cols),
                             math.exp(max(res.x[k], floor)) * scale])


def lack_of_fit(m, T, *, censored=None, lower=None, level: float = 0.95) -> dict:
    """Does the Box-Cox law fit at all? The likelihood-ratio test of the fitted law against
    a free mean at each distinct ``m`` (common noise), under the same (censored,
    interval-censored) likelihood: ``2 (l_free - l_law) ~ chi2(#m - 3)``. A small
    ``pvalue`` says the law's shape is wrong, whatever its ``p``."""
    m, T, c = _check(m, T, censored)
    L = _check_lower(T, c, lower)
    fit = fit_boxcox(m, T, censored=c, lower=lower, level=level, grid=COARSE_GRID)
    sizes = np.unique(m)
    if len(sizes) < 4:
        raise ValueError("m: need at least 4 distinct m for a lack-of-fit test (3 are "
                         "spent on the law)")
    onehot = (m[:, None] == sizes[None, :]).astype(float)
    l_free, _ = _loglik_design(onehot, T, c, L)
    stat = max(2 * (l_free - fit.loglik), 0.0)
    df = len(sizes) - 3
    return {"stat": stat, "df": df, "pvalue": float(stats.chi2.sf(stat, df)),
            "loglik_law": fit.loglik, "loglik_free": l_free}


@dataclass(frozen=True)
class BoxCoxFit:
    """A fitted ``T = a + b (m^p - 1)/p``: the estimates, the profile-likelihood interval
    for ``p`` (``-inf``/``inf`` where it runs past the searched range), the likelihood-ratio
    test of ``p = 0`` (the log law), the profile on the grid, and how many runs were
    censored."""

    p: float
    a: float
    b: float
    sigma: float
    loglik: float
    p_interval: tuple[float, float]
    level: float
    lr_stat_p0: float
    lr_pvalue_p0: float
    n: int
    censored: int
    grid: np.ndarray
    profile: np.ndarray

    def predict(self, m) -> np.ndarray:
        return self.a + self.b * boxcox_term(m, self.p)


def fit_boxcox(m, T, *, censored=None, lower=None, level: float = 0.95,
               grid=P_GRID) -> BoxCoxFit:
    """Fit the Box-Cox growth law to one threshold per run (``m[i]``, ``T[i]``), runs in
    ``censored`` having reached no threshold by their ``T[i]`` (the horizon), and, with
    ``lower``, each other run's threshold known only to lie in ``(lower[i], T[i]]`` (read on
    a checkpoint grid: ``lower`` is the previous checkpoint). ``p`` is the maximizer of the
    profile log-likelihood (grid, then refined); its interval is where the profile stays
    within ``chi2_1(level) / 2`` of the maximum (Wilks)."""
    m, T, c = _check(m, T, censored)
    L = _check_lower(T, c, lower)
    grid = np.asarray(grid, dtype=float)
    profile = np.array([_loglik_fixed_p(boxcox_term(m, p), T, c, L)[0] for p in grid])
    i = int(np.argmax(profile))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    best = optimize.minimize_scalar(lambda p: -_loglik_fixed_p(boxcox_term(m, p), T, c, L)[0],
                                    bounds=(lo, hi), method="bounded",
                                    options={"xatol": 1e-8})
    p_hat, l_hat = float(best.x), -float(best.fun)
    if profile[i] > l_hat:
        p_hat, l_hat = float(grid[i]), float(profile[i])
    cut = stats.chi2.ppf(level, 1) / 2

    def gap(p):
        return l_hat - _loglik_fixed_p(boxcox_term(m, p), T, c, L)[0] - cut

    inside = l_hat - profile <= cut
    left = [j for j in range(i) if not inside[j]]
    right = [j for j in range(i + 1, len(grid)) if not inside[j]]
    p_lo = optimize.brentq(gap, grid[left[-1]], p_hat) if left else -math.inf
    p_hi = optimize.brentq(gap, p_hat, grid[right[0]]) if right else math.inf
    l0, _ = _loglik_fixed_p(boxcox_term(m, 0.0), T, c, L)
    stat = max(2 * (l_hat - l0), 0.0)
    _, (a, b, sigma) = _loglik_fixed_p(boxcox_term(m, p_hat), T, c, L)
    return BoxCoxFit(p_hat, float(a), float(b), float(sigma), l_hat, (p_lo, p_hi), level,
                     stat, float(stats.chi2.sf(stat, 1)), len(T), int(c.sum()), grid, profile)


def bootstrap_p(m, T, seeds, *, censored=None, lower=None, n_boot: int = 500,
                seed: int = 0, grid=COARSE_GRID) -> np.ndarray:
    """``p`` refitted on ``n_boot`` resamples of the seeds (with replacement; a drawn seed
    brings all its runs), under the same likelihood as :func:`fit_boxcox` (``lower``:
    interval-censored). Resamples that cannot be fitted (too few distinct ``m``) are
    skipped; the returned array holds the others."""
    m, T, c = _check(m, T, censored)
    L = T if lower is None else np.asarray(lower, dtype=float)
    seeds = np.asarray(seeds)
    ids = np.unique(seeds)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_boot):
        idx = np.concatenate([np.flatnonzero(seeds == s) for s in rng.choice(ids, len(ids))])
        try:
            out.append(fit_boxcox(m[idx], T[idx], censored=c[idx],
                                  lower=None if lower is None else L[idx], grid=grid).p)
        except ValueError:
            continue
    return np.array(out)


def compare_laws(m, T) -> pd.DataFrame:
    """The two two-parameter laws on one value per run: ``a + b log m`` (least squares) and
    ``c m^p`` (nonlinear least squares), their residual sums of squares and Gaussian AIC
    (three parameters each with the noise variance); ``delta_aic`` is the gap to the best."""
    m, T, _ = _check(m, T, None)
    n = len(T)
    A = np.column_stack([np.ones_like(m), np.log(m)])
    (a, b), *_ = np.linalg.lstsq(A, T, rcond=None)
    rss_log = float(np.sum((A @ [a, b] - T) ** 2))
    pos = T > 0
    start = np.polyfit(np.log(m[pos]), np.log(T[pos]), 1) if pos.sum() >= 2 else [1.0, 0.0]
    (c, p), _ = optimize.curve_fit(lambda x, c, p: c * x**p, m, T,
                                   p0=[math.exp(start[1]), start[0]], maxfev=20000)
    rss_pow = float(np.sum((c * m**p - T) ** 2))
    rows = [("a + b log m", {"a": a, "b": b}, rss_log), ("c m^p", {"c": c, "p": p}, rss_pow)]
    table = pd.DataFrame([{"law": law, "params": params, "rss": rss,
                           # an exact fit (rss 0) has AIC -inf, not a domain error
                           "aic": n * math.log(max(rss, 1e-300) / n) + 2 * 3}
                          for law, params, rss in rows])
    table["delta_aic"] = table["aic"] - table["aic"].min()
    return table.set_index("law")


def holdout_error(m, T, *, censored=None) -> pd.DataFrame:
    """Each law fitted without the largest ``m`` and asked for its mean threshold there:
    the prediction, the observed mean of the uncensored runs, and the relative error."""
    m, T, c = _check(m, T, censored)
    top = m == m.max()
    if (~(top | c)).sum() < 4 or len(np.unique(m[~top])) < 3:
        raise ValueError("m: need at least 3 distinct m below the largest to hold it out")
    observed = float(T[top & ~c].mean())
    fit = fit_boxcox(m[~top], T[~top], censored=c[~top])
    log_law = compare_laws(m[~top & ~c], T[~top & ~c]).loc["a + b log m", "params"]
    pow_law = compare_laws(m[~top & ~c], T[~top & ~c]).loc["c m^p", "params"]
    preds = {"Box-Cox (p fitted)": float(fit.predict(m.max())),
             "a + b log m": log_law["a"] + log_law["b"] * math.log(m.max()),
             "c m^p": pow_law["c"] * m.max() ** pow_law["p"]}
    return pd.DataFrame([{"law": k, "predicted": v, "observed": observed,
                          "relative_error": v / observed - 1} for k, v in preds.items()]
                        ).set_index("law")


def t_interval(values, level: float = 0.95, *, bounds: tuple[float, float] | None = None
               ) -> tuple[float, float, float]:
    """Mean and Student-``t`` interval of a few values (seeds): ``mean -+ t s / sqrt(n)``.

    ``bounds``: the range of the quantity (a fraction in ``(0, 1)``, an error, a number
    of iterations ``>= 0``); the interval is cut to it (book design, section 11: an
    interval never leaves its quantity's range). The cut loses no coverage: the mean
    lies in the range, so the part cut away never holds it."""
    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        raise ValueError("values: need at least 2 values for an interval")
    half = stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))
    lo, hi = float(v.mean() - half), float(v.mean() + half)
    if bounds is not None:
        a, b = bounds
        if not a <= b:
            raise ValueError(f"bounds: need low <= high, got {bounds}")
        if (v < a).any() or (v > b).any():
            raise ValueError(f"values: outside the quantity's range {bounds}")
        lo, hi = max(lo, a), min(hi, b)
    return float(v.mean()), lo, hi


def paired_difference(a, b, level: float = 0.95) -> dict:
    """``a - b`` over runs paired by seed (two widths on the same seeds): the mean
    difference, its ``t`` interval and the two-sided ``p``-value of no difference."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    mean, lo, hi = t_interval(d, level)
    sd = d.std(ddof=1)
    if sd == 0:  # every pair differs by the same amount (e.g. both at 100% accuracy)
        pvalue = 1.0 if mean == 0 else 0.0
    else:
        pvalue = float(2 * stats.t.sf(abs(mean / (sd / math.sqrt(len(d)))), len(d) - 1))
    return {"mean": mean, "lo": lo, "hi": hi, "n": len(d), "pvalue": pvalue}


def form_test(T, kappa2, m, level: float = 0.95) -> pd.DataFrame:
    """Least squares of ``log T`` on ``log kappa^2`` and ``log log m`` (runs with
    ``T > 0`` and ``m > e``): each coefficient with its ``t`` interval. Theorem 3's form
    ``T ~ kappa^2 log m`` predicts both slopes equal to 1."""
    T, kappa2, m = (np.asarray(v, dtype=float) for v in (T, kappa2, m))
    keep = (T > 0) & (m > math.e) & (kappa2 > 0)
    y = np.log(T[keep])
    X = np.column_stack([np.ones(keep.sum()), np.log(kappa2[keep]), np.log(np.log(m[keep]))])
    n, k = X.shape
    if n <= k:
        raise ValueError(f"T: need more than {k} runs with T > 0 and m > e, got {n}")
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ coef
    s2 = float(resid @ resid) / (n - k)
    se = np.sqrt(np.diag(s2 * np.linalg.inv(X.T @ X)))
    q = stats.t.ppf(0.5 + level / 2, n - k)
    return pd.DataFrame({"coef": coef, "se": se, "lo": coef - q * se, "hi": coef + q * se},
                        index=["intercept", "log kappa^2", "log log m"])
