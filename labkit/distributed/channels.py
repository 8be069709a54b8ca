"""Distributed channel GFS on ``torch.distributed`` (Appendix D, where the paper prunes
ResNet34 blocks this way; chapter 8).

Every rank holds the whole network, the same mini-batches and the same random candidate
pool (the generators are seeded alike). In each greedy step the pool of a group is split
into contiguous shares (:func:`~labkit.distributed.partition_neurons`), each rank scores
its share with the exact batched scorer of :mod:`labkit.deep.prune`, and one
``all_reduce(SUM)`` of a vector that is zero outside each rank's share gives every rank all
the scores (adding zeros is exact). Every rank then applies the centralized tie rule
(:func:`labkit.deep.channel_gfs.pick`) to the same numbers and updates the same mask, so the
selections are those of the centralized run (tested with 1, 2 and 3 processes). A rank
that dies makes the others' next ``all_reduce`` fail within the process-group timeout:
a :class:`~labkit.distributed.DistributedGFSError`, not a hang.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.distributed as dist

from labkit.deep.graph import Traced
from labkit.deep.prune import Accuracy, SeededBatches, prune_channels, score_candidates
from labkit.distributed.algorithm import _check_nprocs, _collective, partition_neurons
from labkit.distributed.launch import DEFAULT_TIMEOUT_S, launch, rank_session
from labkit.infra.runtime import get_device


class ShareScorer:
    """A ``scorer`` for :func:`~labkit.deep.prune.prune_channels` that scores this
    rank's share of the candidates and gathers every rank's scores. ``times`` collects one
    ``(group, n_candidates, score_s, comm_s)`` per step."""

    def __init__(self, rank: int, P: int, group=None, timeout_s: float | None = None,
                 rows_per_pass: int = 1024):
        self.rank, self.P, self.pg, self.timeout_s = rank, P, group, timeout_s
        self.rows_per_pass, self.times, self._traced = rows_per_pass, [], {}

    def __call__(self, model, group, x, y, counts, cands) -> torch.Tensor:
        traced = self._traced.get(id(model))
        if traced is None:
            traced = self._traced[id(model)] = Traced(model)
        lo, hi = partition_neurons(len(cands), self.P)[self.rank]
        t0 = time.perf_counter()
        scores = torch.zeros(len(cands), dtype=x.dtype, device=x.device)
        if hi > lo:
            scores[lo:hi] = score_candidates(traced, group, x, y, counts, cands[lo:hi],
                                             rows_per_pass=self.rows_per_pass)
        t1 = time.perf_counter()
        if self.P > 1:
            _collective("all_reduce of the candidate scores", len(self.times), self.rank,
                        self.timeout_s, dist.all_reduce, scores, group=self.pg)
        self.times.append((group.name, len(cands), t1 - t0, time.perf_counter() - t1))
        return scores


def _worker(rank, P, port, model, batches, accuracy, opts, device, timeout_s, threads,
            outdir):
    """One spawned rank: prune the replicated model with a :class:`ShareScorer`; rank 0
    saves the pruned model and the report, every rank its step times."""
    with rank_session(rank, P, port, device, timeout_s, threads) as (dev, pg):
        scorer = ShareScorer(rank, P, pg, timeout_s, opts.pop("rows_per_pass", 1024))
        small, report = prune_channels(model.to(dev), batches.to(dev), accuracy.to(dev),
                                       scorer=scorer, **opts)
        torch.save(scorer.times, Path(outdir) / f"times_{rank}.pt")
        if rank == 0:
            torch.save({"model": small.cpu(), "report": report}, Path(outdir) / "result.pt")


def spawn_prune_channels(model, batches: SeededBatches, accuracy: Accuracy, *,
                         nprocs: int = 2, device=None, timeout_s: float = DEFAULT_TIMEOUT_S,
                         threads: int | None = None, deadline_s: float | None = None,
                         **opts):
    """:func:`~labkit.deep.prune.prune_channels` with each step's candidates split
    across ``nprocs`` freshly spawned processes (gloo on CPU, NCCL with one GPU per rank).
    ``batches`` and ``accuracy`` are the picklable helpers every rank rebuilds; ``opts``
    go to ``prune_channels`` (``eps``, ``budget``, ``groups``, ``n_candidates``, ``seed``,
    ``rows_per_pass``). Returns ``(small, report, times)``, ``times[r]`` being rank ``r``'s
    ``(group, n_candidates, score_s, comm_s)`` per step. A failing rank raises
    :class:`~labkit.distributed.DistributedGFSError` naming every rank's outcome."""
    P = _check_nprocs(nprocs)
    if not isinstance(batches, SeededBatches) or not isinstance(accuracy, Accuracy):
        raise ValueError("batches, accuracy: must be labkit.deep.prune.SeededBatches and "
                         "Accuracy (every process rebuilds them), got "
                         f"{type(batches).__name__} and {type(accuracy).__name__}")
    if not timeout_s > 0:
        raise ValueError(f"timeout_s: must be positive seconds, got {timeout_s!r}")
    dev = get_device(device=None if device is None else str(device))
    if threads is None:
        import os

        threads = max(1, (os.cpu_count() or 1) // P)
    model = model.cpu()

    def read(out: Path):
        saved = torch.load(out / "result.pt", weights_only=False)
        times = [torch.load(out / f"times_{r}.pt", weights_only=False) for r in range(P)]
        return saved["model"], saved["report"], times

    args = (model, batches.to("cpu"), accuracy.to("cpu"), dict(opts), dev.type)
    return launch(_worker, [args] * P, timeout_s=timeout_s, threads=threads,
                  deadline_s=deadline_s, read=read)
