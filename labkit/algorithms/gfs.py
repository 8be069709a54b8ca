"""Greedy Forward Selection (Algorithm 1, eqs. 9-11), exact and vectorized.

At step ``j`` (``j`` neurons chosen, running sum ``s_j = sum_{i in S_j} Phi_i``) GFS adds
the neuron ``i`` minimising ``loss((s_j + Phi_i) / (j + 1))``, with replacement by default.

Squared loss ``l(z) = (1/m)||z - y||^2`` (eq. 8). With ``u_j = s_j - (j+1) y`` (our
derivation, book chapter 2)::

    l((s_j + Phi_i)/(j+1)) = (||u_j||^2 + 2 <u_j, Phi_i> + ||Phi_i||^2) / (m (j+1)^2)

so one step is one matrix-vector product ``Phi @ u_j`` (a single pass over the ``N x m``
neuron-output matrix) plus ``O(N)`` work, and ``u_{j+1} = u_j + Phi_i - y``.

Binary cross-entropy (Section 5, MNIST): rows of ``Phi`` are pre-sigmoid contributions;
the candidate logits ``z = (s_j + Phi_i)/(j+1)`` are scored by ``mean(softplus(z) - y z)``,
one pass over ``Phi`` per step (:class:`_BCEScores` says how it is made cheap).

Ties go to the lowest index. Scores within a few rounding units of the minimum count as
tied, so that duplicated neurons tie whatever order the BLAS kernel summed in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

LOSSES = ("mse", "bce")
# BCE candidate logits per block of rows: 4 MiB of float32 on CPU (it stays in the cache
# between the block's passes; 1M entries measured fastest of 64K..4M on 2 cores), larger on
# a GPU, where each pass is a kernel launch
_CHUNK_ELEMENTS = {"cpu": 1 << 20, "cuda": 1 << 24}
_PRODUCT_BLOCK = 64  # sigmoids multiplied before one log: >= 2**-64, far from underflow


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


class _BCEScores:
    """The BCE scores of every candidate at step ``j``: ``mean_c softplus(z_c) - y_c z_c``
    with ``z = (s_j + Phi_i)/(j+1)``, in float arithmetic, for GFS and the distributed
    scorer (chapter 8), which calls it on its block of rows.

    Why not ``F.softplus``: its ``log1p`` is scalar code here, 13 ns per entry on one core
    against 0.3 ns for ``sigmoid`` (``benchmarks/gfs_bce.py``). With
    ``softplus(z) = relu(z) + log(1 + exp(-|z|))``, ``relu(z) = (z + |z|)/2`` and
    ``log(1 + exp(-|z|)) = -log(sigmoid(|z|))``, the score of row ``i`` is ::

        ( (sum_c Phi_ic + sum s)/(j+1) + sum_c |z_c| ) / 2  -  sum_c log sigmoid(|z_c|)
          - (<Phi_i, y> + <s, y>)/(j+1),  all over m

    The row sums of ``Phi`` and of ``Phi * y`` are computed once. Per step and block of rows
    there remain one pass to form ``|z|`` (and sum it), one ``sigmoid``, and a product of
    every :data:`_PRODUCT_BLOCK` sigmoids before a single ``log``: each sigmoid lies in
    ``[1/2, 1]``, so a product of 64 stays above ``2**-64`` and costs relative error
    ``~64 eps`` in it, ``~64 eps / m`` in the score (below the tie tolerance). Padding
    columns are ones (``log 1 = 0``). Each row's numbers depend only on that row, whatever
    block it falls in, so a block of rows scores as the whole matrix does."""

    def __init__(self, Phi: torch.Tensor, y: torch.Tensor):
        N, m = Phi.shape
        self.Phi, self.y, self.m = Phi, y, m
        self.m_pad = -(-m // _PRODUCT_BLOCK) * _PRODUCT_BLOCK
        self.rows = max(1, _CHUNK_ELEMENTS.get(Phi.device.type, 1 << 24) // self.m_pad)
        self.buf = torch.ones(min(self.rows, N), self.m_pad, dtype=Phi.dtype,
                              device=Phi.device)
        # row reductions, not a matrix-vector product: MKL's GEMV rounds a row differently
        # with where the row block starts, and a block must score as the whole matrix
        self.Phi_sum = Phi.sum(1)
        self.Phi_y = torch.empty_like(self.Phi_sum)
        for lo in range(0, N, self.rows):
            n = min(self.rows, N - lo)
            Z = self.buf[:n, :m]
            torch.mul(Phi[lo:lo + n], y, out=Z)
            torch.sum(Z, 1, out=self.Phi_y[lo:lo + n])

    def __call__(self, s: torch.Tensor, j: int) -> torch.Tensor:
        Phi, m, N = self.Phi, self.m, self.Phi.shape[0]
        c = 1.0 / (j + 1)
        sc = s * c
        abs_sum = torch.empty(N, dtype=Phi.dtype, device=Phi.device)
        log_sum = torch.empty_like(abs_sum)
        for lo in range(0, N, self.rows):
            n = min(self.rows, N - lo)
            Z = self.buf[:n, :m]
            torch.add(sc, Phi[lo:lo + n], alpha=c, out=Z)
            Z.abs_()
            torch.sum(Z, 1, out=abs_sum[lo:lo + n])
            torch.sigmoid(Z, out=Z)
            blocks = self.buf[:n].view(n, -1, _PRODUCT_BLOCK).prod(2)
            torch.sum(blocks.log_(), 1, out=log_sum[lo:lo + n])
        z_sum = (self.Phi_sum + s.sum()) * c
        yz_sum = (self.Phi_y + self.y @ s) * c
        return ((z_sum + abs_sum) / 2 - log_sum - yz_sum) / m


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
        bce_scores = _BCEScores(Phi, y)

    for j in range(k):
        if loss == "mse":
            scores = 2 * _matvec(Phi, u) + sq  # the constant ||u||^2 is left out
            tol = 16 * eps * (2 * _sq_norm(u).sqrt() * row_norm_max + row_norm_max**2)
        else:
            scores = bce_scores(s, j)
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
