"""Greedy Forward Selection (Algorithm 1, eqs. 9-11), exact and vectorized.

At step ``j`` (``j`` neurons chosen, running sum ``s_j = sum_{i in S_j} Phi_i``) GFS adds
the neuron ``i`` minimising ``loss((s_j + Phi_i) / (j + 1))``, with replacement by default.

Squared loss ``l(z) = (1/m)||z - y||^2`` (eq. 8). With ``u_j = s_j - (j+1) y`` (our
derivation, book chapter 2)::

    l((s_j + Phi_i)/(j+1)) = (||u_j||^2 + 2 <u_j, Phi_i> + ||Phi_i||^2) / (m (j+1)^2)

so one step is one matrix-vector product ``Phi @ u_j`` (a single pass over the ``N x m``
neuron-output matrix) plus ``O(N)`` work, and ``u_{j+1} = u_j + Phi_i - y``.

Binary cross-entropy (Section 5, MNIST): rows of ``Phi`` are pre-sigmoid contributions;
the candidate logits ``(s_j + Phi_i)/(j+1)`` are formed in one broadcast per chunk of rows
and scored by ``mean(softplus(z) - y z)``, again one pass over ``Phi`` per step.

Ties go to the lowest index. Scores within a few rounding units of the minimum count as
tied, so that duplicated neurons tie whatever order the BLAS kernel summed in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

LOSSES = ("mse", "bce")
_CHUNK_ELEMENTS = 1 << 22  # BCE candidate block: 4M entries (16 MiB in float32)


@dataclass(frozen=True, repr=False)
class GFSResult:
    """Outcome of :func:`greedy_forward_selection`.

    ``order``: the ``k`` selected indices in selection order; ``counts``: multiplicity of
    every neuron (length ``N``, sums to ``k``); ``losses``: loss of the pruned output after
    each step (length ``k``).
    """

    order: np.ndarray
    counts: np.ndarray
    losses: np.ndarray
    loss: str
    replacement: bool

    @property
    def k(self) -> int:
        return len(self.order)

    def __repr__(self) -> str:
        distinct = int((self.counts > 0).sum())
        return (f"GFSResult(loss={self.loss!r}, k={self.k}, distinct={distinct}, "
                f"final_loss={self.losses[-1]:.6g})")


def _as_tensors(Phi, y):
    Phi = torch.as_tensor(Phi).detach()
    if not Phi.is_floating_point():
        Phi = Phi.to(torch.get_default_dtype())
    y = torch.as_tensor(y, device=Phi.device).to(Phi.dtype)
    if Phi.ndim != 2:
        raise ValueError(f"Phi: expected a 2-D array of shape (N, m), got shape {tuple(Phi.shape)}")
    if y.shape != (Phi.shape[1],):
        raise ValueError(f"y: expected shape ({Phi.shape[1]},) to match Phi (N, m), "
                         f"got {tuple(y.shape)}")
    return Phi, y


def _check_args(N: int, k, loss: str, replacement: bool) -> None:
    """Argument checks shared with the distributed implementation (chapter 8), so a bad
    call fails the same way whichever runs it."""
    if loss not in LOSSES:
        raise ValueError(f"loss: unknown loss {loss!r}; allowed: {', '.join(LOSSES)}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k: must be a positive integer, got {k!r}")
    if not replacement and k > N:
        raise ValueError(f"k: {k} exceeds the number of neurons N={N}, which is the most "
                         "that can be selected with replacement=False")


def _check_labels(y: torch.Tensor, loss: str) -> None:
    if loss == "bce" and ((y < 0) | (y > 1)).any():
        raise ValueError("y: binary cross-entropy needs labels in [0, 1]")


def _first_min(scores: torch.Tensor, tol: torch.Tensor) -> torch.Tensor:
    """Index (a 0-d tensor, so CUDA never waits on the host) of the lowest-index score
    within ``tol`` of the minimum."""
    near = scores <= scores.min() + tol
    return torch.argmax(near.to(torch.uint8))


def _matvec(Phi: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """``Phi @ u``, the one pass over the neuron outputs per step: torch's product on every
    device (on CPU it runs on all cores and was faster than NumPy's on 2 cores: 0.77 against
    0.86 ms at m = 5,000, N = 2,000, float32; ``benchmarks/gfs_two_layer.py``). The
    distributed scorer (chapter 8) uses it on its block of rows."""
    return Phi @ u


def _row_sq_norms(Phi: torch.Tensor) -> torch.Tensor:
    """``||Phi_i||^2`` for every row, without an ``N x m`` temporary."""
    if Phi.device.type == "cpu":
        P = Phi.numpy()
        return torch.from_numpy(np.einsum("ij,ij->i", P, P))
    return torch.einsum("ij,ij->i", Phi, Phi)


def _sq_norm(v: torch.Tensor) -> torch.Tensor:
    """``||v||^2`` as a 0-d tensor: NumPy's dot on CPU, the one the CPU loop uses."""
    if v.device.type == "cpu":
        return torch.from_numpy(np.asarray(v.numpy() @ v.numpy()))
    return v @ v


def _mse_cpu(Phi: torch.Tensor, y: torch.Tensor, k: int, replacement: bool):
    """The squared-loss loop of :func:`greedy_forward_selection` on CPU: the same
    expressions as the torch loop, but everything except the product ``Phi @ u`` in NumPy.
    Why: a step is that one pass over ``Phi`` plus ``O(N + m)`` work, and each of the ~20
    small torch operations cost ~10 us (waiting on the thread pool the product had just
    used; a 2.6 us ``norm`` took ~60 us in the loop), a third of a step at N = 2,000. NumPy
    does them in ~1 us each (``benchmarks/gfs_two_layer.py``). The distributed scorer
    (chapter 8) uses the same kernels (:func:`_matvec`, :func:`_row_sq_norms`,
    :func:`_sq_norm`), so that its scores are the same numbers."""
    P, yv = Phi.numpy(), y.numpy()
    N, m = P.shape
    eps = float(np.finfo(P.dtype).eps)
    sq = _row_sq_norms(Phi).numpy()
    row_norm_max = np.sqrt(sq.max())
    taken = np.zeros(N, dtype=bool)
    order = np.empty(k, dtype=np.int64)
    losses = np.empty(k, dtype=np.float64)
    u = -yv
    for j in range(k):
        # the constant ||u||^2 is left out of the scores
        scores = 2 * _matvec(Phi, torch.from_numpy(u)).numpy() + sq
        tol = 16 * eps * (2 * np.sqrt(u @ u) * row_norm_max + row_norm_max**2)
        if not replacement:
            scores[taken] = np.inf
        i = int(np.argmax(scores <= scores.min() + tol))
        order[j], taken[i] = i, True
        u_sel = u + P[i]
        losses[j] = (u_sel @ u_sel) / (m * (j + 1) ** 2)
        u = u_sel - yv
    return order, losses


def _bce_scores(Phi: torch.Tensor, s: torch.Tensor, y: torch.Tensor, j: int) -> torch.Tensor:
    rows = max(1, _CHUNK_ELEMENTS // Phi.shape[1])
    out = torch.empty(Phi.shape[0], dtype=Phi.dtype, device=Phi.device)
    for lo in range(0, Phi.shape[0], rows):
        Z = (Phi[lo:lo + rows] + s) / (j + 1)
        out[lo:lo + rows] = (F.softplus(Z) - y * Z).mean(1)
    return out


def greedy_forward_selection(Phi, y, k: int, *, loss: str = "mse",
                             replacement: bool = True) -> GFSResult:
    """Algorithm 1: pick ``k`` neurons greedily (a multiset when ``replacement=True``).

    ``Phi`` has shape ``(N, m)``, row ``i`` = neuron ``i``'s outputs over the ``m`` data
    points (NumPy or torch, any device); ``y`` has shape ``(m,)``. ``loss="mse"`` is
    ``(1/m)||z - y||^2``; ``loss="bce"`` is the binary cross-entropy of ``sigmoid(z)``
    against ``y`` in ``[0, 1]``. ``replacement=False`` forbids re-selection.
    Chapters 2, 3, 4 and 6.
    """
    Phi, y = _as_tensors(Phi, y)
    N, m = Phi.shape
    _check_args(N, k, loss, replacement)
    _check_labels(y, loss)

    if loss == "mse" and Phi.device.type == "cpu":
        order, losses = _mse_cpu(Phi, y, k, replacement)
        return GFSResult(order, np.bincount(order, minlength=N), losses, loss, replacement)

    eps = torch.finfo(Phi.dtype).eps
    dev = Phi.device
    taken = torch.zeros(N, dtype=torch.bool, device=dev)
    order = torch.empty(k, dtype=torch.long, device=dev)
    losses = torch.empty(k, dtype=torch.float64, device=dev)
    if loss == "mse":
        sq = _row_sq_norms(Phi)
        row_norm_max = sq.max().sqrt()
        u = -y.clone()
    else:
        s = torch.zeros_like(y)

    for j in range(k):
        if loss == "mse":
            scores = 2 * _matvec(Phi, u) + sq  # the constant ||u||^2 is left out
            tol = 16 * eps * (2 * _sq_norm(u).sqrt() * row_norm_max + row_norm_max**2)
        else:
            scores = _bce_scores(Phi, s, y, j)
            tol = 16 * eps * (1 + scores.abs().min())
        if not replacement:
            scores = scores.masked_fill(taken, float("inf"))
        i = _first_min(scores, tol)
        order[j], taken[i] = i, True
        if loss == "mse":
            u_sel = u + Phi[i]
            losses[j] = _sq_norm(u_sel) / (m * (j + 1) ** 2)
            u = u_sel - y
        else:
            s = s + Phi[i]
            z = s / (j + 1)
            losses[j] = (F.softplus(z) - y * z).mean()

    order = order.cpu().numpy()
    counts = np.bincount(order, minlength=N)
    return GFSResult(order, counts, losses.cpu().numpy(), loss, replacement)
