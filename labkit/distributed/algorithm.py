"""Distributed greedy forward selection, one rank's loop (Appendix D, Algorithm 2; chapter 8).

The ``N`` candidate neurons are split into ``P`` contiguous blocks, one per process (rank),
whose sizes differ by at most one (:func:`partition_neurons`); every rank holds the labels
``y`` (``m`` samples) and the rows of ``Phi`` (``N x m`` neuron outputs) of its own block.
One step of Algorithm 2:

1. every rank scores its own candidates with the exact scorer of :mod:`labkit.algorithms.gfs`
(squared
   loss: one ``Phi_block @ u``; binary cross-entropy: chunked softplus);
2. ``all_reduce(MIN)`` of each rank's best score (for the cross-entropy also of its smallest
   ``|score|``, which sets the tie tolerance);
3. every rank names its lowest candidate within the tolerance of the global best, and an
   ``all_reduce(MIN)`` of these global indices picks the winner: the lowest global index,
   the rule of :func:`labkit.algorithms.gfs.greedy_forward_selection`;
4. the owner ``broadcast``s the winner's row (``m`` values); every rank updates the shared
   iterate.

Steps 2-3 take two collectives, not one, because centralized GFS breaks ties among all scores
within a tolerance of the *global* minimum, which no rank knows before step 2. The per-row
scores are the same numbers the centralized code computes, so the selections and losses are
identical to centralized GFS (tested in ``tests/test_distributed.py``), and with them every
guarantee of chapters 2-3. :func:`bytes_per_step` counts what the collectives move.
"""

from __future__ import annotations

import bisect
import math
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from labkit.algorithms.gfs import (
    LOSSES,
    GFSResult,
    _as_tensors,
    _BCEScores,
    _check_args,
    _check_labels,
    _matvec,
    _row_sq_norms,
    _sq_norm,
)

_INDEX_BYTES = 8  # the winner's global index travels as int64


class DistributedGFSError(RuntimeError):
    """A rank of a distributed GFS run failed, or a collective timed out.

    ``outcomes`` (set by :func:`labkit.distributed.spawn_gfs`) maps each rank to its exit
    code, its error message (``None`` if it wrote none) and whether the launcher had to
    terminate it."""

    outcomes: dict | None = None


# ------------------------------------------------------------------------------ partition


def _check_nprocs(P) -> int:
    if isinstance(P, bool) or not isinstance(P, (int, np.integer)) or P < 1:
        raise ValueError(f"nprocs: must be a positive integer (the number of processes P), "
                         f"got {P!r}")
    return int(P)


def partition_neurons(N: int, P: int) -> list[tuple[int, int]]:
    """Contiguous blocks ``[lo, hi)`` of the ``N`` neurons for ``P`` ranks, sizes differing
    by at most one (the first ``N % P`` blocks get the extra row). With ``P > N`` the last
    ``P - N`` blocks are empty; those ranks still join every collective. Chapter 8."""
    P = _check_nprocs(P)
    if isinstance(N, bool) or not isinstance(N, (int, np.integer)) or N < 1:
        raise ValueError(f"N: must be a positive integer (the number of neurons), got {N!r}")
    q, r = divmod(int(N), P)
    bounds, lo = [], 0
    for p in range(P):
        hi = lo + q + (p < r)
        bounds.append((lo, hi))
        lo = hi
    return bounds


def backend_for(device) -> str:
    """gloo for CPU tensors, NCCL for CUDA tensors."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def _check_inputs(Phi, y, k, loss, replacement):
    """The input checks of :func:`labkit.algorithms.gfs.greedy_forward_selection`, same order
    and same
    messages, so that a bad call fails the same way whichever implementation runs it."""
    Phi, y = _as_tensors(Phi, y)
    _check_args(Phi.shape[0], k, loss, replacement)
    _check_labels(y, loss)
    return Phi, y


# -------------------------------------------------------------------------- communication


def bytes_per_step(m: int, P: int, *, itemsize: int = 8, loss: str = "mse") -> int:
    """Payload bytes the collectives of one step move: what the ranks hand to them, summed
    over ranks. Per rank, ``all_reduce`` of its best score (and, for ``bce``, its smallest
    ``|score|``: ``itemsize`` each) and of its candidate index (8 bytes); once per step the
    owner's broadcast row (``m * itemsize``). ``P = 1`` moves nothing across processes.
    Not counted: the transport's own headers and copies, and the one-off start-up
    (``P * 8`` bytes of block sizes, ``P * itemsize`` for the largest row norm). Chapter 8.
    """
    _check_nprocs(P)
    if loss not in LOSSES:
        raise ValueError(f"loss: unknown loss {loss!r}; allowed: {', '.join(LOSSES)}")
    if P == 1:
        return 0
    n_scores = 1 if loss == "mse" else 2
    return P * (n_scores * itemsize + _INDEX_BYTES) + m * itemsize


def _collective(what: str, step: int, rank: int, timeout_s, fn, *args, **kwargs) -> None:
    try:
        fn(*args, **kwargs)
    except RuntimeError as err:  # gloo and NCCL errors (DistBackendError) are RuntimeErrors
        limit = f" ({timeout_s:g} s)" if timeout_s else ""
        raise DistributedGFSError(
            f"rank {rank}: {what} at step {step} failed: a peer process died or did not "
            f"answer within the process-group timeout{limit}. Cause: {err}") from err


# ----------------------------------------------------------------------------- one rank


def distributed_gfs(Phi_block, y, k: int, *, loss: str = "mse", replacement: bool = True,
                    group=None, timeout_s: float | None = None):
    """Algorithm 2 (Appendix D) on one rank of an initialised process group; call it on
    every rank, rank ``r`` passing block ``r`` of the rows of ``Phi`` (contiguous, in rank
    order; any sizes, including empty) and the full labels ``y``.

    Returns ``(result, timings)``: the same :class:`labkit.algorithms.gfs.GFSResult` on every rank,
    equal to ``greedy_forward_selection(Phi, y, k, loss=loss, replacement=replacement)`` on
    the stacked blocks, and this rank's per-step seconds ``score_s`` (its own candidates),
    ``comm_s`` (the three collectives, waiting for slower ranks included) and ``step_s``.
    ``group`` (default: the default group) must hold every rank, in global rank order;
    ``timeout_s`` is its timeout, quoted in errors. A failed peer or a timeout raises
    :class:`DistributedGFSError`. Chapter 8.
    """
    Phi_block, y = _as_tensors(Phi_block, y)
    rank, P = dist.get_rank(group), dist.get_world_size(group)
    dev, dtype = Phi_block.device, Phi_block.dtype
    n_local, m = Phi_block.shape

    def coll(what, step, fn, *args, **kwargs):
        _collective(what, step, rank, timeout_s, fn, *args, group=group, **kwargs)

    shapes = [torch.zeros(2, dtype=torch.long, device=dev) for _ in range(P)]
    coll("start-up all_gather of block shapes", -1, dist.all_gather, shapes,
         torch.tensor([n_local, m], device=dev))
    sizes = [int(s[0]) for s in shapes]
    widths = {int(s[1]) for s in shapes}
    if len(widths) != 1:
        raise ValueError(f"Phi_block: every rank's block needs the same number of columns m; "
                         f"got m = {sorted(widths)} across ranks")
    starts = np.concatenate([[0], np.cumsum(sizes)]).tolist()
    offset, N = starts[rank], starts[-1]
    _check_args(N, k, loss, replacement)
    _check_labels(y, loss)

    eps = torch.finfo(dtype).eps
    inf = torch.tensor(math.inf, dtype=dtype, device=dev)
    taken = torch.zeros(n_local, dtype=torch.bool, device=dev)
    order = np.empty(k, dtype=np.int64)
    losses = torch.empty(k, dtype=torch.float64, device=dev)
    times = {key: np.empty(k) for key in ("score_s", "comm_s", "step_s")}
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    row = torch.empty(m, dtype=dtype, device=dev)
    if loss == "mse":
        sq = _row_sq_norms(Phi_block)
        # centralized GFS scales its tie tolerance by the largest row norm over ALL rows
        sq_max = (sq.max() if n_local else torch.zeros((), dtype=dtype, device=dev)).reshape(1)
        coll("start-up all_reduce of the largest row norm", -1, dist.all_reduce, sq_max,
             op=dist.ReduceOp.MAX)
        row_norm_max = sq_max[0].sqrt()
        u = -y.clone()
    else:
        s = torch.zeros_like(y)
        bce_scores = _BCEScores(Phi_block, y)

    for j in range(k):
        t0 = time.perf_counter()
        # the expressions below are those of greedy_forward_selection, term for term, so
        # that scores and tolerances are the same floating-point numbers
        if loss == "mse":
            scores = 2 * _matvec(Phi_block, u) + sq
            tol = 16 * eps * (2 * _sq_norm(u).sqrt() * row_norm_max + row_norm_max**2)
            best = torch.empty(1, dtype=dtype, device=dev)
        else:
            scores = bce_scores(s, j)
            best = torch.empty(2, dtype=dtype, device=dev)
            best[1] = scores.abs().min() if n_local else inf
        if not replacement:
            scores = scores.masked_fill(taken, math.inf)
        best[0] = scores.min() if n_local else inf
        sync()
        t1 = time.perf_counter()

        coll("all_reduce of the best scores", j, dist.all_reduce, best, op=dist.ReduceOp.MIN)
        if loss == "bce":
            tol = 16 * eps * (1 + best[1])
        near = scores <= best[0] + tol
        first = int(torch.argmax(near.to(torch.uint8))) if n_local else 0
        cand = offset + first if n_local and bool(near[first]) else N
        index = torch.tensor([cand], dtype=torch.long, device=dev)
        coll("all_reduce of the candidate indices", j, dist.all_reduce, index,
             op=dist.ReduceOp.MIN)
        i = int(index.item())
        owner = bisect.bisect_right(starts, i) - 1
        if rank == owner:
            row.copy_(Phi_block[i - offset])
            taken[i - offset] = True
        coll("broadcast of the selected row", j, dist.broadcast, row, src=owner)
        t2 = time.perf_counter()

        order[j] = i
        if loss == "mse":
            u_sel = u + row
            losses[j] = _sq_norm(u_sel) / (m * (j + 1) ** 2)
            u = u_sel - y
        else:
            s = s + row
            z = s / (j + 1)
            losses[j] = (F.softplus(z) - y * z).mean()
        sync()
        t3 = time.perf_counter()
        times["score_s"][j], times["comm_s"][j], times["step_s"][j] = t1 - t0, t2 - t1, t3 - t0

    counts = np.bincount(order, minlength=N)
    return GFSResult(order, counts, losses.cpu().numpy(), loss, replacement), times
