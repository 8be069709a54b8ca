"""Lemma 1, Lemma 2 and Theorem 1 as computable quantities (chapter 3).

Our re-derivation of Lemma 1 (the paper's statement was lost; the proof follows its
surviving skeleton, eqs. 13-15): for the GFS iterates ``z_k`` (with replacement), any
``z*`` in the marginal polytope and ``D = diam(M)``::

    l(z_k) - l(z*) <= (l(z_1) - l(z*)) / k + D^2 (H_k - 1) / (m k),   H_k = sum_{j<=k} 1/j.

With ``z*`` the dense output this is the three-term form
``l(z_k) <= l(z_1)/k + D^2 (H_k - 1)/(m k) + (1 - 1/k) L_dense``, which implies the paper's
``l(z_1)/k + D^2 ln(k)/(m k) + L_dense`` because ``H_k - 1 <= ln k``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from labkit.gfs import _as_tensors, greedy_forward_selection

_GRAM_ELEMENTS = 1 << 24  # rows per Gram block: at most 16M entries (128 MiB in float64)


def harmonic(k: int) -> np.ndarray:
    """``H_1, ..., H_k``."""
    return np.cumsum(1.0 / np.arange(1, k + 1))


def diameter(Phi) -> tuple[float, tuple[int, int]]:
    """Lemma 2: the diameter of ``M = conv{Phi_i}`` is the largest distance between two
    vertices. Computed exactly over all pairs from blocks of the Gram matrix (vectorized,
    chunked so that ``N = 10,000`` fits in memory), in float64; the winning pair's distance
    is then recomputed directly to avoid cancellation. Returns ``(D, (i, j))``."""
    Phi = torch.as_tensor(Phi).to(torch.float64)
    N = Phi.shape[0]
    sq = (Phi * Phi).sum(1)
    rows = max(1, _GRAM_ELEMENTS // N)
    best, pair = -1.0, (0, 0)
    for lo in range(0, N, rows):
        block = sq[lo:lo + rows, None] + sq[None, :] - 2 * (Phi[lo:lo + rows] @ Phi.T)
        flat = int(torch.argmax(block))
        value = float(block.flatten()[flat])
        if value > best:
            best, pair = value, (lo + flat // N, flat % N)
    i, j = pair
    return float((Phi[i] - Phi[j]).norm()), (min(i, j), max(i, j))


@dataclass(frozen=True, repr=False)
class Lemma1Bound:
    """Per-step terms of Lemma 1 with ``z*`` = the dense output, for ``k = 1..K``.

    ``init`` = ``l(z_1)/k``; ``diameter_term`` = ``D^2 (H_k - 1)/(m k)``; ``dense_term`` =
    ``(1 - 1/k) L_dense``; ``total`` = their sum; ``paper_form`` = the looser
    ``l(z_1)/k + D^2 ln(k)/(m k) + L_dense``; ``losses`` = the GFS losses it bounds.
    """

    init: np.ndarray
    diameter_term: np.ndarray
    dense_term: np.ndarray
    total: np.ndarray
    paper_form: np.ndarray
    losses: np.ndarray
    D: float
    dense_loss: float
    m: int

    def __repr__(self) -> str:
        ratio = float(np.max(self.losses / self.total))
        return (f"Lemma1Bound(k={len(self.total)}, D={self.D:.6g}, "
                f"dense_loss={self.dense_loss:.6g}, max loss/bound={ratio:.4f})")


def lemma1_bound(Phi, y, k: int, *, gfs=None) -> Lemma1Bound:
    """Lemma 1's three terms for ``k = 1..k`` on the neuron-output matrix ``Phi`` (shape
    ``(N, m)``, the :func:`greedy_forward_selection` convention), squared loss, with ``z*``
    the dense output ``mean_i Phi_i``. ``gfs`` may pass an existing GFS result for
    ``(Phi, y)`` to avoid recomputing it."""
    Phi, y = _as_tensors(Phi, y)
    Phi, y = Phi.to(torch.float64), y.to(torch.float64)
    m = Phi.shape[1]
    if gfs is None:
        gfs = greedy_forward_selection(Phi, y, k)
    if len(gfs.losses) < k or gfs.loss != "mse" or not gfs.replacement:
        raise ValueError("gfs: must be a squared-loss, with-replacement GFS result of at "
                         f"least k={k} steps (Lemma 1 holds for that algorithm)")
    D, _ = diameter(Phi)
    dense = float(((Phi.mean(0) - y) ** 2).mean())
    ks = np.arange(1, k + 1)
    losses = np.asarray(gfs.losses[:k], dtype=np.float64)
    init = losses[0] / ks
    diameter_term = D**2 * (harmonic(k) - 1) / (m * ks)
    dense_term = (1 - 1 / ks) * dense
    paper_form = losses[0] / ks + D**2 * np.log(ks) / (m * ks) + dense
    return Lemma1Bound(init, diameter_term, dense_term, init + diameter_term + dense_term,
                       paper_form, losses, D, dense, m)


def theorem1_neurons(eps: float, c: float, a: float = 0.0) -> int:
    """Theorem 1's neuron count: the smallest ``k`` such that ``(a + c ln k')/k' <= eps``
    for every ``k' >= k`` (the guarantee holds from ``k`` on).

    With ``a = 0`` this is the paper's ``k >= -(c/eps) W_{-1}(-eps/c)`` (Lambert W, lower
    branch); in general ``k = -(c/eps) W_{-1}(-(eps/c) e^{-a/c})``, our derivation. Use
    ``c = D^2/m`` and ``a = l(z_1)`` to bound the excess of Lemma 1 over the dense loss.
    """
    from scipy.special import lambertw

    if not eps > 0:
        raise ValueError(f"eps: must be positive, got {eps!r}")
    if not c > 0:
        raise ValueError(f"c: must be positive, got {c!r}")
    if a < 0:
        raise ValueError(f"a: must be non-negative, got {a!r}")
    arg = -(eps / c) * np.exp(-a / c)
    if arg < -1 / np.e:  # eps exceeds max_k (a + c ln k)/k = c e^(a/c - 1): every k works
        return 1
    k = float(-(c / eps) * lambertw(arg, -1).real)
    k_int = max(1, int(np.ceil(k - 1e-9)))
    while (a + c * np.log(k_int)) / k_int > eps:  # guard against rounding in W
        k_int += 1
    return k_int


def neurons_needed(losses, target: float) -> int | None:
    """The smallest ``k`` from which on every recorded GFS loss is at most ``target``
    (``None`` when the last one is still above it). Chapter 3, to compare with
    :func:`theorem1_neurons`."""
    above = np.flatnonzero(np.asarray(losses) > target)
    if len(above) == 0:
        return 1
    return None if above[-1] == len(losses) - 1 else int(above[-1] + 2)
