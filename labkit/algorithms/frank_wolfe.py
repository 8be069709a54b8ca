"""Frank-Wolfe over the marginal polytope and exhaustive search, for chapter 2.

The marginal polytope is ``M = conv{Phi_1, ..., Phi_N}`` (eq. 7). Frank-Wolfe with step
``1/(j+1)`` moves from ``z_j`` towards a vertex ``s_j``: ``z_{j+1} = z_j + (s_j - z_j)/(j+1)``.

- ``oracle="linear"``: the classical oracle ``s_j = argmin_v <grad l(z_j), v>``;
- ``oracle="exact"``: ``s_j = argmin_v l(z_j + (v - z_j)/(j+1))``, an exact line evaluation
  over the vertices. This is Greedy Forward Selection (eqs. 9-11).

Both are written plainly (one loss evaluation per vertex for the exact oracle) so that they
serve as an independent implementation next to the vectorized :mod:`labkit.algorithms.gfs`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

ORACLES = ("linear", "exact")


def squared_loss(z: np.ndarray, y: np.ndarray) -> float:
    """``l(z) = (1/m)||z - y||^2`` (eq. 8)."""
    return float(np.mean((z - y) ** 2))


@dataclass(frozen=True)
class FWResult:
    """``order[j]`` is the vertex chosen at step ``j``; ``iterates[j]`` is ``z_{j+1}``."""

    order: np.ndarray
    iterates: np.ndarray
    losses: np.ndarray


def frank_wolfe(Phi, y, k: int, *, oracle: str = "linear") -> FWResult:
    """Run ``k`` Frank-Wolfe steps with step size ``1/(j+1)`` from ``z_0 = 0``.

    The first step has size 1, so ``z_1`` is a vertex whatever ``z_0`` is; ``z_0`` only
    enters the linear oracle's first gradient. Ties go to the lowest index.
    """
    if oracle not in ORACLES:
        raise ValueError(f"oracle: unknown oracle {oracle!r}; allowed: {', '.join(ORACLES)}")
    if k < 1:
        raise ValueError(f"k: must be a positive integer, got {k!r}")
    Phi, y = np.asarray(Phi, dtype=np.float64), np.asarray(y, dtype=np.float64)
    N, m = Phi.shape
    z = np.zeros(m)
    order, iterates = [], []
    for j in range(k):
        if oracle == "linear":
            grad = 2 * (z - y) / m
            i = int(np.argmin(Phi @ grad))
        else:
            trial = [squared_loss(z + (Phi[v] - z) / (j + 1), y) for v in range(N)]
            i = int(np.argmin(trial))
        z = z + (Phi[i] - z) / (j + 1)
        order.append(i)
        iterates.append(z.copy())
    iterates = np.array(iterates)
    losses = np.array([squared_loss(zj, y) for zj in iterates])
    return FWResult(np.array(order), iterates, losses)


def best_multiset(Phi, y, k: int) -> tuple[tuple[int, ...], float]:
    """The multiset of ``k`` neurons with the smallest squared loss, by exhaustive search
    over all ``C(N + k - 1, k)`` multisets (tiny ``N`` and ``k`` only: the combinatorial
    problem of eq. 6)."""
    Phi, y = np.asarray(Phi, dtype=np.float64), np.asarray(y, dtype=np.float64)
    N = Phi.shape[0]
    n_multisets = int(np.prod([(N + i) / (i + 1) for i in range(k)]).round())
    if n_multisets > 2_000_000:
        raise ValueError(f"k: exhaustive search over {n_multisets} multisets is too large; "
                         "use smaller N or k")
    best, best_loss = None, np.inf
    for S in itertools.combinations_with_replacement(range(N), k):
        loss = squared_loss(Phi[list(S)].mean(0), y)
        if loss < best_loss:
            best, best_loss = S, loss
    return best, best_loss


def polytope_min(Phi, y, *, penalty: float = 1e4) -> tuple[np.ndarray, float]:
    """The minimum of the squared loss over the whole marginal polytope: the relaxation
    ``min_{z in M} l(z)`` of eq. (6), i.e. the best convex combination of neurons.

    Solved as simplex-constrained least squares: non-negative least squares
    (``scipy.optimize.nnls``) with the row ``penalty * (sum(a) - 1)`` appended, then the
    weights renormalized to sum to one. Returns ``(weights, loss)``.
    """
    from scipy.optimize import nnls

    Phi, y = np.asarray(Phi, dtype=np.float64), np.asarray(y, dtype=np.float64)
    scale = penalty * max(1.0, float(np.abs(Phi).max()))
    A = np.vstack([Phi.T, scale * np.ones(Phi.shape[0])])
    a, _ = nnls(A, np.append(y, scale), maxiter=50 * Phi.shape[0])
    a = a / a.sum()
    return a, squared_loss(a @ Phi, y)
