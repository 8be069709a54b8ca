"""Search for instances on which greedy forward selection comes close to Lemma 1 (issue 17).

Lemma 1 (``labkit/algorithms/bounds.py``) bounds the GFS iterates ``z_k`` (squared loss
``l(z) = |z - y|^2 / m``, neuron outputs ``Phi``, with replacement) for any ``z*`` in the
polytope ``M = conv{Phi_i}`` of diameter ``D``::

    l(z_k) - l(z*) <= (l(z_1) - l(z*)) / k + D^2 (H_k - 1) / (m k).

On random instances GFS uses a few per cent of the diameter term, so a test that finds no
violation there cannot tell Lemma 1 from a lemma whose diameter term is divided by 10. This
script searches small instances (``N`` = 2..8 rows, ``m`` = 1..4, ``k`` <= 20) for a large
*usage* of the diameter term, for ``k >= 2``::

    u_k = [l(z_k) - l(z*) - (l(z_1) - l(z*)) / k] / [D^2 (H_k - 1) / (m k)],

with ``z*`` the minimizer of ``l`` over ``M`` (the best choice: ``u_k`` decreases in
``l(z*)``). Lemma 1 says ``u_k <= 1``; a bound with the diameter term divided by ``c`` is
violated exactly where ``u_k > 1/c``. The proof of Lemma 1 gives more: the diameter term
holds with ``D^2`` replaced by the variance ``V = sum_i a_i |Phi_i - z*|^2`` of any weights
``a`` with ``z* = a @ Phi``, and ``V = (1/2) sum_ij a_i a_j |Phi_i - Phi_j|^2 < D^2 / 2``.
So ``u_k < 1/2`` on every instance: the bound with ``D^2 / 2`` is itself true and no
instance can violate it; only divisors ``c > 2`` can be shown to be too strong.

The search is deterministic for a given ``--seed`` and ``--budget`` (a number of objective
evaluations, not a time): random starts and a few structured ones (the 1-D pair
``{-1, 1/3}``, ``u_2 = 1/8``; a triangle with ``u_2 = 1/6``, the best for ``k = 2`` when
``y`` lies in ``M``; regular simplices; and the apex construction of
:func:`apex_over_simplex`, ``u_2 -> (m - 1) / (2 m)``, ``3/8`` at ``m = 4``), each improved
by a (1+1) evolution strategy on the flattened ``(Phi, y)`` and the best polished by
Nelder-Mead (GFS is piecewise smooth: derivative-free methods). A step ``k`` counts only
if every GFS choice up to ``k`` beats the runner-up by ``MARGIN * D^2 / m`` (the search asks
for twice that), so that the stored instances hold no ties and every GFS implementation
follows the same path. The best distinct instances, rows that do not matter pruned and
``z*`` from an exact active-set enumeration, are written (floats as repr: exact) to
``results/lemma1_adversarial.json`` (:func:`labkit.adversarial_instances`) for
``tests/test_bounds.py`` and chapter 3; they only read it.
With the defaults the best usage found is the apex construction's, about ``0.375``: the
weakened bounds with ``c = 5`` and ``c = 10`` are violated, the one with ``c = 2`` cannot be.

    python tools/lemma1_adversarial.py [--seed 0] [--budget 200000] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import time
from itertools import combinations
from pathlib import Path

import numpy as np
from scipy.optimize import minimize, nnls

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "results" / "lemma1_adversarial.json"
K_MAX = 20  # steps searched
MARGIN = 1e-6  # every GFS choice up to k_star wins by this much, in units of D^2 / m
SEARCH_MARGIN = 2 * MARGIN  # the search asks for more, so that rounding cannot undo a win
RESTART_EVALS = 1500  # (1+1)-ES evaluations per start
POLISH_EVALS = 2500  # Nelder-Mead evaluations for each of the best starts
N_POLISH = 8
N_KEEP = 8


def loss(z, y) -> float:
    return float(np.mean((z - y) ** 2))


def plain_gfs(Phi, y, k):
    """GFS with replacement, from the definition: at step ``j`` every candidate
    ``(s + Phi_i) / j`` is formed and the one of least loss kept (first index on a tie).
    Returns the iterates ``(k, m)`` and each step's margin: the runner-up's loss minus the
    winner's (``inf`` with one row)."""
    N, m = Phi.shape
    s, iterates, margins = np.zeros(m), np.empty((k, m)), np.full(k, np.inf)
    for j in range(k):
        L = np.mean(((s + Phi) / (j + 1) - y) ** 2, axis=1)
        i = int(np.argmin(L))
        if N > 1:
            margins[j] = np.partition(L, 1)[1] - L[i]
        s = s + Phi[i]
        iterates[j] = s / (j + 1)
    return iterates, margins


def diameter_sq(Phi) -> float:
    diff = Phi[:, None, :] - Phi[None, :, :]
    return float(np.max(np.sum(diff * diff, axis=2)))


def polytope_min_fast(Phi, y) -> np.ndarray:
    """Weights of an (approximate) minimizer of ``l`` over ``M``: simplex-constrained least
    squares as non-negative least squares with a heavy sum-to-one row. Used in the search;
    a slightly worse ``z*`` only lowers the usage."""
    scale = 1e4 * max(1.0, float(np.abs(Phi).max()))
    A = np.vstack([Phi.T, np.full(Phi.shape[0], scale)])
    a, _ = nnls(A, np.append(y, scale), maxiter=50 * Phi.shape[0])
    return a / a.sum() if a.sum() > 0 else np.full(len(a), 1 / len(a))


def polytope_min_exact(Phi, y) -> np.ndarray:
    """Weights of the exact minimizer of ``l`` over ``M``: the minimizer lies in the relative
    interior of a face spanned by at most ``m + 1`` affinely independent vertices, where it
    is the projection of ``y`` onto the face's affine hull; every such set is tried."""
    N, m = Phi.shape
    best, best_a = np.inf, None
    for r in range(1, min(N, m + 1) + 1):
        for S in combinations(range(N), r):
            P = Phi[list(S)]
            B = (P[1:] - P[0]).T
            if r > 1 and np.linalg.matrix_rank(B) < r - 1:
                continue
            b = np.linalg.lstsq(B, y - P[0], rcond=None)[0] if r > 1 else np.zeros(0)
            a_S = np.concatenate([[1 - b.sum()], b])
            if a_S.min() < -1e-12:
                continue
            a = np.zeros(N)
            a[list(S)] = np.clip(a_S, 0, None)
            a /= a.sum()
            value = loss(a @ Phi, y)
            if value < best:
                best, best_a = value, a
    fast = polytope_min_fast(Phi, y)
    return fast if loss(fast @ Phi, y) < best else best_a


def evaluate(Phi, y, weights, k=K_MAX, margin=MARGIN) -> dict:
    """Usage ``u_k`` and ratio loss/bound for ``k = 1..k``, with ``z* = weights @ Phi``.
    ``u[0]`` (``k = 1``) is ``nan``; ``valid[j]``: every choice up to step ``j + 1`` won by
    the margin."""
    m = Phi.shape[1]
    z_star = weights @ Phi
    D2 = diameter_sq(Phi)
    iterates, margins = plain_gfs(Phi, y, k)
    ks = np.arange(1, k + 1)
    H = np.cumsum(1.0 / ks)
    excess = np.array([loss(z, y) for z in iterates]) - loss(z_star, y)
    diam = D2 * (H - 1) / (m * ks)
    with np.errstate(divide="ignore", invalid="ignore"):
        u = (excess - excess[0] / ks) / diam
        ratio = excess / (excess[0] / ks + diam)
    u[0] = np.nan
    valid = np.minimum.accumulate(margins) >= margin * D2 / m
    return dict(u=u, ratio=ratio, valid=valid, z_star=z_star, D2=D2)


def best_usage(ev) -> tuple[float, int]:
    """The largest usage over the valid steps ``k >= 2`` and its ``k`` (``-inf, 0`` if none)."""
    u = np.where(ev["valid"], ev["u"], -np.inf)
    u[0] = -np.inf
    j = int(np.argmax(u))
    return float(u[j]), j + 1


def unpack(x, N, m):
    return x[:N * m].reshape(N, m), x[N * m:]


def objective(x, N, m, exact=False, margin=SEARCH_MARGIN) -> float:
    Phi, y = unpack(x, N, m)
    if not np.all(np.isfinite(x)) or diameter_sq(Phi) < 1e-12:
        return -np.inf
    weights = polytope_min_exact(Phi, y) if exact else polytope_min_fast(Phi, y)
    return best_usage(evaluate(Phi, y, weights, margin=margin))[0]


def normalize(x, N, m):
    """Translate (rows' mean to 0) and scale (``D = 1``): the usage is invariant under both."""
    Phi, y = unpack(x, N, m)
    c, D = Phi.mean(0), np.sqrt(diameter_sq(Phi))
    return np.concatenate([((Phi - c) / D).ravel(), (y - c) / D])


def structured_starts():
    """``(name, Phi, y)`` starts from hand-made instances."""
    yield "1-D pair {-1, 1/3}", np.array([[-1.0], [1 / 3]]), np.zeros(1)
    s3 = np.sqrt(3.0)
    yield "triangle, u_2 = 1/6", np.array([[1.0, 0.0], [-2.0, s3], [-2.0, -s3]]), np.zeros(2)
    for m in (2, 3, 4):
        P = regular_simplex(m)
        yield f"regular {m}-simplex, y near a vertex", P, 0.8 * P[0]
    for m in (2, 3, 4):
        yield f"apex over a regular {m - 1}-simplex, y far below", *apex_over_simplex(m)


def regular_simplex(n: int) -> np.ndarray:
    """The ``n + 1`` vertices of a regular ``n``-simplex in ``R^n``, centred at 0, of
    circumradius 1."""
    V = np.eye(n + 1) - 1 / (n + 1)
    P = V @ np.linalg.svd(V)[2][:n].T
    return P / np.linalg.norm(P[0])


def apex_over_simplex(m: int, h: float = 0.01):
    """``u_2 -> (m - 1) / (2 m)`` as ``h -> 0`` (our construction): a regular
    ``(m - 1)``-simplex of circumradius 1 in the plane ``x_m = 0`` (its centre 0 is ``z*``),
    an apex ``p = h e_m`` and ``y = -t e_m``, so that ``|z - y|^2 - t^2 = |z|^2 + 2 t z_m``.
    With ``gamma = h^2 + 2 t h`` the apex is ``z_1`` (``gamma < 1``) and repeating it at
    step 2 costs ``gamma``, a face vertex ``(1 + 2 gamma - h^2) / 4``; at the tie
    ``2 gamma = 1 - h^2`` the usage is ``(1 - h^2) / D^2`` with ``D^2 = 2m / (m - 1)``, the
    bound ``V / D^2`` of the proof with ``V = 1``. ``gamma`` is set a little below the tie
    so that the apex wins step 2 by ``4 * MARGIN * D^2 / m``."""
    face = regular_simplex(m - 1) if m > 1 else np.zeros((1, 0))
    Phi = np.vstack([np.hstack([face, np.zeros((m, 1))]), np.eye(m)[-1:] * h])
    D2 = diameter_sq(Phi)
    gamma = (1 - h**2 - 16 * MARGIN * D2) / 2
    t = (gamma - h**2) / (2 * h)
    return Phi, -t * np.eye(m)[-1]


def one_plus_one(x, N, m, evals, rng):
    """(1+1) evolution strategy with the 1/5 success rule; sparse or dense Gaussian moves;
    ties accepted (plateaus). Returns ``(x, f)``."""
    f = objective(x, N, m)
    sigma = 0.1
    for _ in range(evals):
        step = rng.normal(size=x.size) * sigma
        if rng.random() < 0.5:
            step *= rng.random(x.size) < 2.0 / x.size
        x_new = x + step
        f_new = objective(x_new, N, m)
        if f_new >= f:
            x, f = normalize(x_new, N, m), f_new
            sigma *= np.exp(1 / 3)
        else:
            sigma *= np.exp(-1 / 12)
        sigma = min(max(sigma, 1e-7), 0.5)
        if sigma <= 1e-7:
            sigma = 0.05
    return x, f


def prune(Phi, y):
    """Drop rows whose removal does not lower the usage (smaller, equally hard instances)."""
    changed = True
    while changed and len(Phi) > 2:
        changed = False
        f = objective(np.concatenate([Phi.ravel(), y]), *Phi.shape, exact=True)
        for i in range(len(Phi)):
            P = np.delete(Phi, i, axis=0)
            if objective(np.concatenate([P.ravel(), y]), *P.shape, exact=True) >= f - 1e-12:
                Phi, changed = P, True
                break
    return Phi, y


def search(seed: int, budget: int, log=print):
    rng = np.random.default_rng(seed)
    starts = [(name, Phi, y) for name, Phi, y in structured_starts()]
    n_random = max(0, (budget - N_POLISH * POLISH_EVALS) // RESTART_EVALS - len(starts))
    for r in range(n_random):
        N, m = int(rng.integers(2, 9)), int(rng.integers(1, 5))
        Phi = rng.normal(size=(N, m))
        inside = rng.random() < 0.5
        y = rng.dirichlet(np.ones(N)) @ Phi if inside else rng.normal(size=m)
        starts.append((f"random start {r}", Phi, y))
    found = []
    for name, Phi, y in starts:
        N, m = Phi.shape
        x, f = one_plus_one(normalize(np.concatenate([Phi.ravel(), y]), N, m), N, m,
                            RESTART_EVALS, rng)
        found.append(dict(start=name, N=N, m=m, x=x, f=f))
    found.sort(key=lambda r: -r["f"])
    log(f"{len(starts)} starts; best after the evolution strategy: "
        + ", ".join(f"{r['f']:.4f}" for r in found[:N_POLISH]))
    for r in found[:N_POLISH]:
        res = minimize(lambda x, r=r: -objective(x, r["N"], r["m"]), r["x"],
                       method="Nelder-Mead",
                       options=dict(maxfev=POLISH_EVALS, xatol=1e-10, fatol=1e-12))
        x = normalize(res.x, r["N"], r["m"])
        f = objective(x, r["N"], r["m"])
        if f > r["f"]:
            r["x"], r["f"] = x, f
    return found


def finalize(found, seed: int):
    """Exact ``z*``, pruned rows, the stored record; best distinct instances first."""
    records = []
    for r in sorted(found, key=lambda r: -r["f"]):
        Phi, y = prune(*unpack(r["x"], r["N"], r["m"]))
        weights = polytope_min_exact(Phi, y)
        ev = evaluate(Phi, y, weights)
        u, k_star = best_usage(ev)
        if not u > 0:
            continue
        key = (Phi.shape, k_star, round(u, 3))
        if any(rec["key"] == key for rec in records):
            continue
        records.append(dict(
            key=key, N=int(Phi.shape[0]), m=int(Phi.shape[1]), k_star=k_star, u=u,
            ratio=float(np.nanmax(np.where(ev["valid"][1:], ev["ratio"][1:], np.nan))),
            ratio_at_k_star=float(ev["ratio"][k_star - 1]),
            Phi=Phi.tolist(), y=y.tolist(), z_star=ev["z_star"].tolist(),
            z_star_weights=weights.tolist(), found_by=f"seed {seed}, {r['start']}"))
        if len(records) == N_KEEP:
            break
    for rec in records:
        del rec["key"]
    return records


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=int, default=200000,
                        help="objective evaluations in all (default 200000, about a minute)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    records = finalize(search(args.seed, args.budget), args.seed)
    print(f"\n{'#':>2} {'N':>2} {'m':>2} {'k*':>3} {'usage u':>10} {'loss/bound':>10}  found by")
    for n, rec in enumerate(records):
        print(f"{n:>2} {rec['N']:>2} {rec['m']:>2} {rec['k_star']:>3} {rec['u']:>10.6f} "
              f"{rec['ratio']:>10.6f}  {rec['found_by']}")
    best = max(rec["u"] for rec in records)
    print(f"\nbest usage u = {best:.6f} (> 1/2: {best > 1 / 2}, > 1/5: {best > 1 / 5}, "
          f"> 1/10: {best > 1 / 10}); tightest loss/bound for k >= 2: "
          f"{max(rec['ratio'] for rec in records):.6f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    data = dict(
        description="Instances on which GFS comes close to Lemma 1 "
                    "(tools/lemma1_adversarial.py; issue 17). u = usage of the diameter "
                    "term at k_star, z* = z_star_weights @ Phi, the minimizer over the polytope.",
        command=f"python tools/lemma1_adversarial.py --seed {args.seed} "
                f"--budget {args.budget}",
        k_max=K_MAX, margin=MARGIN, instances=records)
    args.out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {args.out} ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
