"""Lemma 1, Lemma 2 and Theorem 1 as computable quantities (chapter 3).

Our re-derivation of Lemma 1 (the paper's statement was lost; the proof follows its
surviving skeleton, eqs. 13-15): for the GFS iterates ``z_k`` (with replacement), any
``z*`` in the marginal polytope and ``D = diam(M)``::

    l(z_k) - l(z*) <= (l(z_1) - l(z*)) / k + D^2 (H_k - 1) / (m k),   H_k = sum_{j<=k} 1/j.

With ``z*`` the dense output this is the three-term form
``l(z_k) <= l(z_1)/k + D^2 (H_k - 1)/(m k) + (1 - 1/k) L_dense``, which implies our reading
of the paper's ``l(z_1)/k + D^2 ln(k)/(m k) + L_dense`` because ``H_k - 1 <= ln k``. The same
proof, comparing GFS with the ``a``-average of the vertices instead of one vertex, holds with
``D^2`` replaced by ``V = sum_i a_i ||Phi_i - z*||^2 <= D^2 / 2`` for any weights ``a`` with
``z* = a @ Phi`` (chapter 3's remark; ``tests/test_bounds.py``), so no instance can use more
than half of the diameter term; :func:`adversarial_instances` are instances that use 3/8.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from labkit.algorithms.gfs import _as_tensors, greedy_forward_selection

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


def lemma1_bound(Phi, y, k: int, *, gfs=None, z_star=None) -> Lemma1Bound:
    """Lemma 1's three terms for ``k = 1..k`` on the neuron-output matrix ``Phi`` (shape
    ``(N, m)``, the :func:`greedy_forward_selection` convention), squared loss, with ``z*``
    the dense output ``mean_i Phi_i`` unless ``z_star`` (a point of the polytope, shape
    ``(m,)``) is given: then ``dense_term`` is ``(1 - 1/k) l(z*)``, ``init`` is
    ``l(z_1)/k`` as before, and ``total = l(z*) + (l(z_1) - l(z*))/k + diameter term``.
    ``gfs`` may pass an existing GFS result for ``(Phi, y)`` to avoid recomputing it."""
    Phi, y = _as_tensors(Phi, y)
    Phi, y = Phi.to(torch.float64), y.to(torch.float64)
    m = Phi.shape[1]
    if gfs is None:
        gfs = greedy_forward_selection(Phi, y, k)
    if len(gfs.losses) < k or gfs.loss != "mse" or not gfs.replacement:
        raise ValueError("gfs: must be a squared-loss, with-replacement GFS result of at "
                         f"least k={k} steps (Lemma 1 holds for that algorithm)")
    D, _ = diameter(Phi)
    target = Phi.mean(0) if z_star is None else torch.as_tensor(z_star, dtype=torch.float64)
    if target.shape != (m,):
        raise ValueError(f"z_star: must be a point of R^m, shape ({m},), got "
                         f"{tuple(target.shape)}")
    dense = float(((target - y) ** 2).mean())
    ks = np.arange(1, k + 1)
    losses = np.asarray(gfs.losses[:k], dtype=np.float64)
    init = losses[0] / ks
    diameter_term = D**2 * (harmonic(k) - 1) / (m * ks)
    dense_term = (1 - 1 / ks) * dense
    paper_form = losses[0] / ks + D**2 * np.log(ks) / (m * ks) + dense
    return Lemma1Bound(init, diameter_term, dense_term, init + diameter_term + dense_term,
                       paper_form, losses, D, dense, m)


def lemma3_b_bound(losses, step_b, N: int) -> np.ndarray:
    """Lemma 3's movement bound on the output weights (our statement, chapter 3): for the
    network ``f = (1/N) sum_i b_i sigma(w_i . x)`` with ``|sigma| <= 1`` and loss
    ``L = (1/m) ||f - y||^2``, ``dL/db_i = (2/(m N)) sum_j r_j sigma(w_i . x_j)``, so by
    Cauchy-Schwarz ``|dL/db_i| <= (2/N) sqrt(L)``, and gradient descent with step ``step_b``
    on ``b`` gives, for every neuron and iteration ``t``,

        ``|b_i(t) - b_i(0)| <= (2 step_b / N) sum_{s < t} sqrt(L(s))``.

    ``losses``: ``L(0), ..., L(T)`` along one run (e.g. :func:`labkit.train_batched`'s
    history). Returns the bound at ``t = 0, ..., T``. With Lemma 2 and ``|sigma| <= 1`` it
    caps the diameter term: ``D_t^2 / m <= 4 (max_i |b_i(0)| + bound_t)^2``."""
    losses = np.asarray(losses, dtype=np.float64)
    if losses.ndim != 1 or len(losses) == 0 or np.any(losses < 0):
        raise ValueError("losses: must be a non-empty 1-d sequence of non-negative losses")
    if not step_b > 0:
        raise ValueError(f"step_b: must be positive, got {step_b!r}")
    cumulative = np.concatenate([[0.0], np.cumsum(np.sqrt(losses[:-1]))])
    return 2 * float(step_b) / N * cumulative


ADVERSARIAL = Path(__file__).resolve().parents[2] / "results" / "lemma1_adversarial.json"


def adversarial_instances(path=ADVERSARIAL) -> list[dict]:
    """Small instances on which GFS uses a large part of Lemma 1's diameter term, found by
    the seeded offline search ``tools/lemma1_adversarial.py`` (issue 17) and stored in the
    repository (nothing is searched at run time). Each is a dict with ``Phi`` (``N x m``),
    ``y`` and ``z_star`` (the minimizer of the loss over the polytope) as float64 arrays,
    the step ``k_star`` where the usage ``u`` of the diameter term peaks, and how it was
    found. Chapter 3 and ``tests/test_bounds.py`` read them."""
    data = json.loads(Path(path).read_text())
    out = []
    for rec in data["instances"]:
        item = dict(rec)
        for key in ("Phi", "y", "z_star", "z_star_weights"):
            item[key] = np.asarray(rec[key], dtype=np.float64)
        out.append(item)
    return out


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
